//! API keys as an attacker holding one would use them, through the routers
//! merged as the local server merges them (coupon-validate, customer-api,
//! admin-api) on the in-memory store:
//!
//! - a `checkout` key validates and holds, and reads no customer's code,
//!   balance or ledger; a `portal_server` key reads one customer's view and
//!   cannot validate or hold;
//! - a revoked key is refused at once in the container that revoked it, and
//!   in any other as soon as its cache is fresh;
//! - the key a shop was onboarded with keeps working with both scopes, is
//!   listed with its last use, and can be revoked like the others.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use admin_api::AdminAuth;
use cashback_app::events::handle_order_event;
use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{CustomerId, Email, LineId, OrderId, ShopId};
use cashback_core::money::Currency;
use cashback_core::money::Money;
use cashback_core::order::{CustomerRef, Line, Order, OrderEvent};
use cashback_edge::auth::hash_api_key;
use cashback_store::MemoryStore;
use cashback_test_support::doubles::{KeptNotifier, SeqCodes};
use cashback_test_support::fixtures::program;
use cashback_test_support::world::seed_balance;

const SHOP: &str = "demo.myshopify.com";
const ORIGINAL_KEY: &str = "cbk_original_onboarding_key_0123456789";
const ADMIN_TOKEN: &str = "keys-admin-token";
const ANN_CODE: &str = "CB-ANN0000000001";

async fn seeded_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let id = ShopId::parse(SHOP).unwrap();
    store
        .create_shop(&Shop {
            shop: id.clone(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: hash_api_key(ORIGINAL_KEY),
            created_at: chrono::Utc::now(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    store
        .put_program(&id, &program(), 0, chrono::Utc::now())
        .await
        .unwrap();
    seed_balance(store.as_ref(), &program(), "ann", ANN_CODE, "30.00").await;
    store
}

/// One container: its own Context (caches) over the shared store.
fn container(store: Arc<MemoryStore>) -> Router {
    container_with_context(store).0
}

fn container_with_context(store: Arc<MemoryStore>) -> (Router, Context) {
    let ctx = Context::new(
        store,
        Arc::new(KeptNotifier::default()),
        Arc::new(SeqCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    let app = Router::new()
        .merge(coupon_validate::router(ctx.clone()))
        .merge(customer_api::router(ctx.clone()))
        .merge(admin_api::router_with(
            ctx.clone(),
            AdminAuth::Token(hash_api_key(ADMIN_TOKEN)),
        ));
    (app, ctx)
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    bearer: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {bearer}"));
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn create_key(app: &Router, name: &str, scopes: &[&str]) -> (String, String) {
    let (status, created) = send(
        app,
        "POST",
        &format!("/v1/shops/{SHOP}/api-keys"),
        ADMIN_TOKEN,
        Some(json!({"name": name, "scopes": scopes})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("hash").is_none(), "the hash is never shown");
    (
        created["key_id"].as_str().unwrap().to_string(),
        created["api_key"].as_str().unwrap().to_string(),
    )
}

fn cashback_uri() -> String {
    format!("/v1/shops/{SHOP}/customers/ann/cashback")
}

fn validate_uri() -> String {
    format!("/v1/shops/{SHOP}/coupons/validate")
}

fn validation(code: &str) -> Value {
    json!({
        "code": code,
        "customer_id": "ann",
        "currency": "USD",
        "cart": {"lines": [{"quantity": 1, "unit_price": "50.00"}], "subtotal": "50.00"},
        "reserve": {"checkout_id": "chk-1"},
    })
}

#[tokio::test]
async fn a_checkout_key_validates_and_holds_but_reads_no_customers_code_or_ledger() {
    let app = container(seeded_store().await);
    let (_, checkout) = create_key(&app, "WooCommerce checkout", &["checkout"]).await;

    // The attack: a leaked checkout key asks for Ann's cashback view (her
    // code, balances and ledger), by customer id.
    let (status, body) = send(&app, "GET", &cashback_uri(), &checkout, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(!body.to_string().to_lowercase().contains("cb-ann"));

    // What it is for still works: validate and hold a code it was given.
    let (status, body) = send(
        &app,
        "POST",
        &validate_uri(),
        &checkout,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(body["hold"]["amount"]["amount"], "30.00");

    // A portal server's key is the other way round.
    let (_, portal) = create_key(&app, "portal", &["portal_server"]).await;
    let (status, body) = send(&app, "GET", &cashback_uri(), &portal, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(
        &app,
        "POST",
        &validate_uri(),
        &portal,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_revoked_key_is_refused_here_at_once_and_in_every_other_container() {
    let store = seeded_store().await;
    let app = container(store.clone());
    let (key_id, key) = create_key(&app, "checkout", &["checkout"]).await;
    let (status, _) = send(
        &app,
        "POST",
        &validate_uri(),
        &key,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, revoked) = send(
        &app,
        "DELETE",
        &format!("/v1/shops/{SHOP}/api-keys/{key_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());

    // The attack: keep using the leaked key after the merchant revoked it.
    let (status, body) = send(
        &app,
        "POST",
        &validate_uri(),
        &key,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "the API key was revoked");
    // Another container (fresh caches, same table) refuses it too.
    let other = container(store);
    let (status, _) = send(
        &other,
        "POST",
        &validate_uri(),
        &key,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Revoking twice keeps the first time; an unknown key is a 404.
    let (status, again) = send(
        &app,
        "DELETE",
        &format!("/v1/shops/{SHOP}/api-keys/{key_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let (status, _) = send(
        &app,
        "DELETE",
        &format!("/v1/shops/{SHOP}/api-keys/key_0000000000000000"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_onboarding_key_keeps_both_scopes_is_listed_with_its_last_use_and_can_be_revoked() {
    let store = seeded_store().await;
    let app = container(store.clone());
    // Nothing migrated by hand: the shop's one key works as before.
    let (status, _) = send(&app, "GET", &cashback_uri(), ORIGINAL_KEY, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &app,
        "POST",
        &validate_uri(),
        ORIGINAL_KEY,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (_, second) = create_key(&app, "second checkout", &["checkout", "checkout"]).await;
    let (status, listed) = send(
        &app,
        "GET",
        &format!("/v1/shops/{SHOP}/api-keys"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    let original = items
        .iter()
        .find(|k| k["scopes"] == json!(["checkout", "portal_server"]))
        .unwrap();
    assert!(original["last_used_at"].is_string(), "{original}");
    let created = items
        .iter()
        .find(|k| k["name"] == "second checkout")
        .unwrap();
    assert_eq!(created["scopes"], json!(["checkout"]));
    assert_eq!(created["created_by"], "admin-token");
    assert!(created["last_used_at"].is_null());
    assert!(!listed.to_string().contains(&hash_api_key(ORIGINAL_KEY)));

    // Rotation: the merchant moves the checkout to the new key and revokes
    // the original one.
    let original_id = original["key_id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        "DELETE",
        &format!("/v1/shops/{SHOP}/api-keys/{original_id}"),
        ADMIN_TOKEN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, "GET", &cashback_uri(), ORIGINAL_KEY, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(
        &app,
        "POST",
        &validate_uri(),
        &second,
        Some(validation(ANN_CODE)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_needs_a_name_and_a_known_scope() {
    let app = container(seeded_store().await);
    for body in [
        json!({"name": "", "scopes": ["checkout"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["admin"]}),
        json!({"name": "x", "scopes": ["checkout"], "hash": "0000"}),
    ] {
        let (status, answer) = send(
            &app,
            "POST",
            &format!("/v1/shops/{SHOP}/api-keys"),
            ADMIN_TOKEN,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_fields");
    }
}

#[tokio::test]
async fn a_guests_cashback_cannot_be_read_from_the_hash_of_their_email() {
    let (app, ctx) = container_with_context(Arc::new(MemoryStore::new()));
    let (status, onboarded) = send(
        &app,
        "POST",
        "/v1/shops",
        ADMIN_TOKEN,
        Some(json!({
            "shop": "keyed.myshopify.com", "platform": "shopify", "name": "Keyed",
            "currency": "USD", "webhook_secret_ref": "env:CASHBACK_SECRET_KEYED",
            "program": {"currency": "USD", "earning": {"merchant_percent": "10"}},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{onboarded}");
    let key = onboarded["api_key"].as_str().unwrap().to_string();
    assert!(!onboarded.to_string().contains("guest_id_key"));

    // A guest (email only) pays 100.00 and earns 10.00, pending.
    let shop = ShopId::parse("keyed.myshopify.com").unwrap();
    let email = Email::parse("Guest@Example.com").unwrap();
    let usd = |a: &str| Money::parse(a, Currency::USD).unwrap();
    let now = chrono::Utc::now();
    let order = Order {
        order_id: OrderId::parse("1001").unwrap(),
        customer: CustomerRef {
            id: None,
            email: Some(email.clone()),
        },
        currency: Currency::USD,
        lines: vec![Line {
            line_id: LineId::parse("1").unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: 1,
            unit_price: usd("100.00"),
            discount: usd("0"),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }],
        subtotal: usd("100.00"),
        shipping: usd("0"),
        total: usd("100.00"),
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: now,
    };
    handle_order_event(&ctx, &shop, &OrderEvent::Paid(order), now)
        .await
        .unwrap();

    // The attack: anyone who knows the address computes its bare SHA-256,
    // the id guests had, and reads the guest's cashback with a portal key.
    let guessed = CustomerId::for_guest(&email);
    let (status, view) = send(
        &app,
        "GET",
        &format!("/v1/shops/keyed.myshopify.com/customers/{guessed}/cashback"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["enrolled"], false, "{view}");
    assert_eq!(view["pending"]["amount"], "0.00");

    // The guest's account is under the shop's keyed id.
    let known = ctx.store.get_shop(&shop).await.unwrap().unwrap();
    let keyed = known.guest_id(&email);
    assert_ne!(keyed, guessed);
    let (_, view) = send(
        &app,
        "GET",
        &format!("/v1/shops/keyed.myshopify.com/customers/{keyed}/cashback"),
        &key,
        None,
    )
    .await;
    assert_eq!(view["pending"]["amount"], "10.00", "{view}");
}
