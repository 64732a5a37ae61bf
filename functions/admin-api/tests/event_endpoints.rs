//! Outgoing event endpoints through the real admin router: created,
//! listed, rotated, deleted, their deliveries read; and the attacks: a URL
//! into the engine's own network, another shop's endpoint or deliveries,
//! a secret leaking into a list, a delivery or a log line.

mod support;

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use chrono::{Duration, Utc};

use admin_api::{router_with_checks, AdminAuth, EndpointChecks};
use cashback_app::outgoing::endpoints::{DeliveryRecord, DeliveryStatus};
use cashback_app::outgoing::url::{Resolve, UrlPolicy};
use cashback_app::outgoing::EventKind;
use cashback_app::store::Store;
use cashback_core::ids::ShopId;
use cashback_edge::auth::hash_api_key;
use cashback_store::MemoryStore;
use cashback_test_support::fixtures::demo_shop_record;
use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com/event-endpoints";
const OTHER: &str = "/v1/shops/other.myshopify.com/event-endpoints";

/// The tests here run one at a time. A log line first reached on one thread
/// while another thread is setting up its capturing subscriber can be cached
/// as wanted by no subscriber (tracing's callsite registration races the new
/// subscriber's interest rebuild), and the log test then misses it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Names resolved from a table: `rebind.example.com` points inside.
struct Table;

#[async_trait::async_trait]
impl Resolve for Table {
    async fn resolve(&self, host: &str) -> Vec<IpAddr> {
        match host {
            "rebind.example.com" => vec!["10.0.0.5".parse().unwrap()],
            "metadata.example.com" => vec!["169.254.169.254".parse().unwrap()],
            "v6.example.com" => vec!["::1".parse().unwrap()],
            "merchant.example.com" => vec!["93.184.215.14".parse().unwrap()],
            _ => Vec::new(),
        }
    }
}

fn app(ctx: &cashback_app::Context) -> axum::Router {
    router_with_checks(
        ctx.clone(),
        AdminAuth::Token(hash_api_key(TOKEN)),
        EndpointChecks {
            resolver: Arc::new(Table),
            policy: UrlPolicy::PublicOnly,
        },
    )
}

/// The demo shop, and another shop on the same store.
async fn two_shops() -> (Arc<MemoryStore>, cashback_app::Context) {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    let mut other = demo_shop_record("env:OTHER", String::new(), Utc::now());
    other.shop = ShopId::parse("other.myshopify.com").unwrap();
    store.create_shop(&other).await.unwrap();
    (store, ctx)
}

async fn create(ctx: &cashback_app::Context, base: &str, url: &str) -> Answer {
    let body = serde_json::json!({ "url": url, "description": "orders system" }).to_string();
    send(app(ctx), request("POST", base, Some(&body), &[])).await
}

#[tokio::test]
async fn an_endpoint_is_created_listed_rotated_and_deleted_and_its_secret_shown_only_twice() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (store, ctx) = two_shops().await;
    let created = create(&ctx, BASE, "https://merchant.example.com/hooks").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.headers["cache-control"], "no-store");
    let id = created.json["id"].as_str().unwrap().to_string();
    let secret = created.json["secret"].as_str().unwrap().to_string();
    assert!(id.starts_with("ep_"));
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64);
    assert_eq!(created.json["url"], "https://merchant.example.com/hooks");

    let listed = send(app(&ctx), request("GET", BASE, None, &[])).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json["items"][0]["id"], id.as_str());
    assert!(!listed.json.to_string().contains(&secret));
    assert!(listed.json["items"][0].get("secret").is_none());

    let rotated = send(
        app(&ctx),
        request("POST", &format!("{BASE}/{id}/rotate-secret"), None, &[]),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.json);
    assert_eq!(rotated.headers["cache-control"], "no-store");
    let new_secret = rotated.json["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let until = rotated.json["previous_secret_valid_until"]
        .as_str()
        .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(until).unwrap();
    let grace = until.with_timezone(&Utc) - Utc::now();
    assert!(grace > Duration::hours(23) && grace <= Duration::hours(24));
    let listed = send(app(&ctx), request("GET", BASE, None, &[])).await;
    assert!(!listed.json.to_string().contains(new_secret));
    assert!(!listed.json.to_string().contains(&secret));

    // A leaked secret is revoked at once: the next rotation keeps no
    // previous secret, nor the one still in its grace.
    for bad in ["25", "-1", "one", "1.5"] {
        let refused = send(
            app(&ctx),
            request(
                "POST",
                &format!("{BASE}/{id}/rotate-secret?previous_valid_hours={bad}"),
                None,
                &[],
            ),
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.json
        );
        assert_eq!(
            refused.json["error"]["fields"][0]["field"],
            "previous_valid_hours"
        );
    }
    let revoked = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/{id}/rotate-secret?previous_valid_hours=0"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.json);
    assert!(revoked.json["previous_secret_valid_until"].is_null());
    let kept = store
        .event_endpoints()
        .unwrap()
        .list_endpoints(&shop())
        .await
        .unwrap();
    assert_eq!(kept[0].secret, revoked.json["secret"].as_str().unwrap());
    assert_eq!(kept[0].previous_secret, None);
    assert_eq!(kept[0].signing_secrets(Utc::now()).len(), 1);

    let deleted = send(
        app(&ctx),
        request("DELETE", &format!("{BASE}/{id}"), None, &[]),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = send(
        app(&ctx),
        request("DELETE", &format!("{BASE}/{id}"), None, &[]),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let listed = send(app(&ctx), request("GET", BASE, None, &[])).await;
    assert_eq!(listed.json["items"], serde_json::json!([]));
}

#[tokio::test]
async fn urls_into_the_engines_own_network_are_refused_with_the_field_named() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (store, ctx) = two_shops().await;
    for url in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://169.254.169.254/",
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://2130706433/",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/",
        "https://[fe80::1]/",
        "https://intranet/",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://rebind.example.com/hook",
        "https://metadata.example.com/",
        "https://v6.example.com/",
        "http://merchant.example.com/hook",
        "https://merchant.example.com:8443/hook",
        "https://user:pass@merchant.example.com/",
        "file:///etc/passwd",
        "gopher://merchant.example.com/",
    ] {
        let answer = create(&ctx, BASE, url).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{url}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "invalid_fields", "{url}");
        assert_eq!(answer.json["error"]["fields"][0]["field"], "url", "{url}");
    }
    let endpoints = store.event_endpoints().unwrap();
    assert!(endpoints.list_endpoints(&shop()).await.unwrap().is_empty());
    let reason = create(&ctx, BASE, "https://rebind.example.com/hook").await;
    let message = reason.json["error"]["fields"][0]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("10.0.0.5"), "{message}");
}

#[tokio::test]
async fn another_shops_endpoint_cannot_be_rotated_deleted_or_read_through_this_shop() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (store, ctx) = two_shops().await;
    let theirs = create(&ctx, OTHER, "https://merchant.example.com/other").await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    let id = theirs.json["id"].as_str().unwrap().to_string();
    let secret = theirs.json["secret"].as_str().unwrap().to_string();
    let endpoints = store.event_endpoints().unwrap();
    let other = ShopId::parse("other.myshopify.com").unwrap();
    endpoints
        .put_delivery(
            &other,
            &DeliveryRecord {
                endpoint_id: id.clone(),
                event_id: "evt_0123".into(),
                kind: EventKind::Earned,
                status: DeliveryStatus::Delivered,
                attempts: 1,
                last_error: None,
                last_status: Some(200),
                first_attempt_at: Utc::now(),
                updated_at: Utc::now(),
                next_attempt_at: None,
            },
            Utc::now() + Duration::days(30),
        )
        .await
        .unwrap();

    for (method, path) in [
        ("POST", format!("{BASE}/{id}/rotate-secret")),
        ("DELETE", format!("{BASE}/{id}")),
        ("GET", format!("{BASE}/{id}/deliveries")),
    ] {
        let answer = send(app(&ctx), request(method, &path, None, &[])).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(!answer.json.to_string().contains("evt_0123"));
    }
    // Theirs is untouched: same secret, still listed, deliveries intact.
    let kept = endpoints.list_endpoints(&other).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].secret, secret);
    assert_eq!(kept[0].previous_secret, None);
    // This shop's list does not show it.
    let listed = send(app(&ctx), request("GET", BASE, None, &[])).await;
    assert_eq!(listed.json["items"], serde_json::json!([]));
    // Their own path reads their deliveries, without any secret.
    let answer = send(
        app(&ctx),
        request("GET", &format!("{OTHER}/{id}/deliveries"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["items"][0]["event_id"], "evt_0123");
    assert_eq!(answer.json["items"][0]["status"], "delivered");
    assert!(!answer.json.to_string().contains(&secret));

    // A body naming another shop is refused; an unknown shop is not found.
    let sneaky = r#"{"url":"https://merchant.example.com/x","shop":"other.myshopify.com"}"#;
    let answer = send(app(&ctx), request("POST", BASE, Some(sneaky), &[])).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = create(
        &ctx,
        "/v1/shops/nobody.myshopify.com/event-endpoints",
        "https://merchant.example.com/x",
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // A made-up id is refused before the store is asked.
    let answer = send(
        app(&ctx),
        request("DELETE", &format!("{BASE}/..%2Fsecret"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

/// Log lines written while a closure runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_is_written_to_the_logs() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_, ctx) = two_shops().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let created = create(&ctx, BASE, "https://merchant.example.com/hooks").await;
    let id = created.json["id"].as_str().unwrap().to_string();
    let first = created.json["secret"].as_str().unwrap().to_string();
    let rotated = send(
        app(&ctx),
        request("POST", &format!("{BASE}/{id}/rotate-secret"), None, &[]),
    )
    .await;
    let second = rotated.json["secret"].as_str().unwrap().to_string();
    send(app(&ctx), request("GET", BASE, None, &[])).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("event endpoint created"), "{logs}");
    assert!(logs.contains("event endpoint secret rotated"));
    assert!(!logs.contains(&first) && !logs.contains(&second));
    assert!(!logs.contains("whsec_"));
}
