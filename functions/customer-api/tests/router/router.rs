//! The customer-api router end to end on the in-memory store: the view with
//! the shop's API key or a Shopify app proxy signature (good, bad, another
//! customer, stale, another shop), and the unsubscribe link.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;

use cashback_app::notices::unsubscribe_signature;
use cashback_app::store::ReadRequest;
use cashback_core::ids::CustomerId;
use customer_api::{proxy, router_with, CustomerApiConfig};

use crate::support::*;

const SECRET: &[u8] = b"hush";

fn config() -> CustomerApiConfig {
    CustomerApiConfig {
        shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(SECRET.to_vec())),
        proxy_max_age_seconds: 300,
    }
}

fn cashback_uri(shop: &str, customer: &str, query: &str) -> String {
    format!("/v1/shops/{shop}/customers/{customer}/cashback?{query}")
}

/// A query as Shopify's app proxy forwards it, signed with `secret`.
fn proxied(shop: &str, logged_in: &str, timestamp: i64, secret: &[u8]) -> String {
    let mut params: Vec<(String, String)> = [
        ("shop", shop.to_string()),
        ("logged_in_customer_id", logged_in.to_string()),
        ("path_prefix", "/apps/cashback".to_string()),
        ("timestamp", timestamp.to_string()),
        ("limit", "5".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let signature = proxy::sign(secret, &params);
    params.push(("signature".into(), signature));
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn with_the_shops_api_key_the_view_answers_200() {
    let ctx = memory_context("30.00").await;
    let (status, response, json) = send(
        router_with(ctx, config()),
        get(
            &cashback_uri("demo.myshopify.com", "ann", ""),
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "private, no-store");
    assert_eq!(json["enrolled"], true);
    assert_eq!(json["available"]["amount"], "30.00");
    assert_eq!(json["spendable"]["amount"], "30.00");
    assert_eq!(json["code"], ANN_CODE);
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["earn_percent"], "10");
    assert_eq!(json["entries"][0]["kind"], "adjust");
    assert!(
        json["entries"][0].get("note").is_none(),
        "merchant notes stay private"
    );
}

#[tokio::test]
async fn without_a_valid_key_or_signature_the_view_is_a_401() {
    let ctx = memory_context("30.00").await;
    for key in [None, Some("cbk_wrong")] {
        let (status, _, json) = send(
            router_with(ctx.clone(), config()),
            get(&cashback_uri("demo.myshopify.com", "ann", ""), key),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn a_signed_app_proxy_request_for_the_logged_in_customer_answers_200() {
    let ctx = memory_context("30.00").await;
    let query = proxied("demo.myshopify.com", "ann", Utc::now().timestamp(), SECRET);
    let (status, _, json) = send(
        router_with(ctx, config()),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["available"]["amount"], "30.00");
}

/// The app secret as SSM gives it on Lambda: read by the first proxied
/// request, not at start; the first read fails (a throttled SSM).
struct FlakySsm(std::sync::atomic::AtomicU32);

#[async_trait::async_trait]
impl cashback_app::secret_keys::KeyLoader for FlakySsm {
    async fn load(&self) -> Result<cashback_app::secret_keys::KeySet, String> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return Err("SSM parameter /cashback/app-secret could not be read (Throttling)".into());
        }
        Ok(cashback_app::secret_keys::KeySet {
            current: SECRET.to_vec(),
            previous: Vec::new(),
        })
    }
}

#[tokio::test]
async fn the_app_secret_is_read_by_the_first_proxied_request_and_a_failed_read_is_a_503() {
    let ctx = memory_context("30.00").await;
    let loader = std::sync::Arc::new(FlakySsm(std::sync::atomic::AtomicU32::new(0)));
    let config = CustomerApiConfig {
        shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::on_first_use(
            loader.clone(),
        )),
        proxy_max_age_seconds: 300,
    };
    let router = router_with(ctx, config);
    // The API key path never reads it.
    let (status, _, _) = send(
        router.clone(),
        get(
            &cashback_uri("demo.myshopify.com", "ann", ""),
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(loader.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    let query = proxied("demo.myshopify.com", "ann", Utc::now().timestamp(), SECRET);
    let uri = cashback_uri("demo.myshopify.com", "ann", &query);
    let (status, _, json) = send(router.clone(), get(&uri, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    let (status, _, json) = send(router.clone(), get(&uri, None)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // A forged request is still refused once the secret is known.
    let forged = proxied(
        "demo.myshopify.com",
        "ann",
        Utc::now().timestamp(),
        b"guessed",
    );
    let (status, _, _) = send(
        router,
        get(&cashback_uri("demo.myshopify.com", "ann", &forged), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(loader.0.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_proxy_request_signed_with_another_secret_or_altered_is_a_401() {
    let ctx = memory_context("30.00").await;
    let now = Utc::now().timestamp();
    let forged = proxied("demo.myshopify.com", "ann", now, b"guessed");
    let altered = proxied("demo.myshopify.com", "bob", now, SECRET)
        .replace("logged_in_customer_id=bob", "logged_in_customer_id=ann");
    for query in [forged, altered] {
        let (status, _, json) = send(
            router_with(ctx.clone(), config()),
            get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(json["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn a_logged_in_customer_cannot_see_another_customers_cashback() {
    let ctx = memory_context("30.00").await;
    let query = proxied("demo.myshopify.com", "bob", Utc::now().timestamp(), SECRET);
    let (status, _, json) = send(
        router_with(ctx, config()),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["error"]["code"], "forbidden");
}

#[tokio::test]
async fn a_proxy_request_without_a_logged_in_customer_is_a_401() {
    let ctx = memory_context("30.00").await;
    let query = proxied("demo.myshopify.com", "", Utc::now().timestamp(), SECRET);
    let (status, _, _) = send(
        router_with(ctx, config()),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_stale_proxy_request_is_a_401() {
    let ctx = memory_context("30.00").await;
    let query = proxied(
        "demo.myshopify.com",
        "ann",
        Utc::now().timestamp() - 3600,
        SECRET,
    );
    let (status, _, _) = send(
        router_with(ctx, config()),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_proxy_request_signed_for_another_shop_is_a_403() {
    let ctx = memory_context("30.00").await;
    let query = proxied("other.myshopify.com", "ann", Utc::now().timestamp(), SECRET);
    let (status, _, _) = send(
        router_with(ctx, config()),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_an_app_secret_proxy_requests_are_refused() {
    let ctx = memory_context("30.00").await;
    let query = proxied("demo.myshopify.com", "ann", Utc::now().timestamp(), SECRET);
    let disabled = CustomerApiConfig {
        shopify_app_secret: None,
        proxy_max_age_seconds: 300,
    };
    let (status, _, _) = send(
        router_with(ctx, disabled),
        get(&cashback_uri("demo.myshopify.com", "ann", &query), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_unknown_shop_is_a_404_and_a_bad_limit_a_400() {
    let ctx = memory_context("30.00").await;
    let (status, _, json) = send(
        router_with(ctx.clone(), config()),
        get(
            &cashback_uri("other.myshopify.com", "ann", ""),
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "unknown_shop");
    let (status, _, _) = send(
        router_with(ctx, config()),
        get(
            &cashback_uri("demo.myshopify.com", "ann", "limit=lots"),
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_ledger_pages_through_the_api_with_the_cursor_it_returns() {
    let ctx = memory_context("30.00").await;
    let (_, _, first) = send(
        router_with(ctx.clone(), config()),
        get(
            &cashback_uri("demo.myshopify.com", "ann", "limit=1"),
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 1);
    // One entry in all: there is no second page.
    assert_eq!(first["next_cursor"], serde_json::Value::Null);
}

fn unsubscribe_uri(customer: &str, signature: &str) -> String {
    format!("/v1/shops/demo.myshopify.com/customers/{customer}/unsubscribe?sig={signature}")
}

fn unsubscribe_request(method: &str, uri: &str, json: bool) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if json {
        request = request.header("accept", "application/json");
    }
    request.body(Body::empty()).unwrap()
}

async fn unsubscribed(ctx: &cashback_app::Context) -> bool {
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts[&ann].value.reminders.unsubscribed
}

#[tokio::test]
async fn the_email_link_asks_first_then_unsubscribes_once() {
    let ctx = memory_context("30.00").await;
    let signature = unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let uri = unsubscribe_uri("ann", &signature);
    let (status, _, page) = send_text(
        router_with(ctx.clone(), config()),
        unsubscribe_request("GET", &uri, false),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<form method=\"post\">"));
    assert!(
        !unsubscribed(&ctx).await,
        "opening the link changes nothing"
    );

    let (status, _, page) = send_text(
        router_with(ctx.clone(), config()),
        unsubscribe_request("POST", &uri, false),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("You are unsubscribed"));
    assert!(unsubscribed(&ctx).await);

    let (status, _, json) = send(
        router_with(ctx, config()),
        unsubscribe_request("POST", &uri, true),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "already_unsubscribed");
}

#[tokio::test]
async fn a_forged_unsubscribe_link_is_a_403_and_changes_nothing() {
    let ctx = memory_context("30.00").await;
    let uri = unsubscribe_uri("ann", "deadbeef");
    for method in ["GET", "POST"] {
        let (status, _, page) = send_text(
            router_with(ctx.clone(), config()),
            unsubscribe_request(method, &uri, false),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(page.contains("This link is not valid"));
        let (status, _, json) = send(
            router_with(ctx.clone(), config()),
            unsubscribe_request(method, &uri, true),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(json["error"]["code"], "forbidden");
    }
    assert!(!unsubscribed(&ctx).await);
}
