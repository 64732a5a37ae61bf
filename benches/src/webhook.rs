//! The order webhook as the benches drive it: the whole axum router (the one
//! lambda_http serves) on the in-memory store, a notifier that discards,
//! fixed secrets and a fixed clock; Shopify `orders/paid` deliveries of ten
//! line items, each for a new order unless a duplicate is the point; and
//! the floor to compare with: parsing the same body into a
//! `serde_json::Value` and one HMAC-SHA256 of it, the work no handler can
//! skip.
//!
//! The fixed clock keeps the warm cache of shops and programs fresh for the
//! whole run, as in a warm container between refreshes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use serde_json::{json, Value};
use sha2::Sha256;
use tower::ServiceExt;

use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::ShopId;
use cashback_core::money::Currency;
use cashback_core::program::Program;
use cashback_store::MemoryStore;
use cashback_test_support::samples::{
    self, Stage, DEMO_SECRET, DEMO_SECRET_REF, DEMO_SHOP, GENERIC_SIGNED_AT,
};
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::{router, WebhookState};

use crate::{DiscardNotifier, UniqueCodes};

/// Line items per delivery.
pub const LINES: usize = 10;

/// The moment every delivery is received (the samples' signing time + 10 s).
pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(GENERIC_SIGNED_AT + 10, 0).unwrap()
}

/// The demo shop's API key in the benches (checkout and customer view
/// events of the cold start runs); stored as its SHA-256, as keys are.
pub const BENCH_API_KEY: &str = "cbk_bench_api_key_0123456789abcdef";

/// The hex SHA-256 of [`BENCH_API_KEY`], as the shop record keeps it.
pub fn bench_api_key_hash() -> String {
    use sha2::Digest;
    Sha256::digest(BENCH_API_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn demo_shop() -> ShopId {
    ShopId::parse(DEMO_SHOP).unwrap()
}

/// 10% cashback, pending 30 days.
pub fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program
}

/// The webhook on a store of the caller's choosing.
pub struct WebhookWorld {
    pub router: Router,
    pub ctx: Context,
    pub store: Arc<dyn Store>,
}

/// The demo shop with `program` on `store`, and the router over them.
pub async fn world_on(store: Arc<dyn Store>, program: &Program) -> WebhookWorld {
    store
        .create_shop(&Shop {
            shop: demo_shop(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: DEMO_SECRET_REF.into(),
            api_key_hash: bench_api_key_hash(),
            created_at: now(),
            guest_id_key: None,
        })
        .await
        .expect("the demo shop is created");
    store
        .put_program(&demo_shop(), program, 0, now())
        .await
        .expect("the program is stored");
    let ctx = Context::new(
        store.clone(),
        Arc::new(DiscardNotifier::default()),
        Arc::new(UniqueCodes::default()),
        AppConfig::default(),
    );
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([(DEMO_SECRET_REF, DEMO_SECRET)])),
        300,
    ));
    let at = now();
    let state = WebhookState::new(ctx.clone(), secrets).with_clock(Arc::new(move || at));
    WebhookWorld {
        router: router(state),
        ctx,
        store,
    }
}

/// The webhook on a new in-memory store.
pub async fn world() -> WebhookWorld {
    world_on(Arc::new(MemoryStore::new()), &program()).await
}

fn money_set(amount: &str) -> Value {
    json!({
        "shop_money": { "amount": amount, "currency_code": "USD" },
        "presentment_money": { "amount": amount, "currency_code": "USD" }
    })
}

/// A Shopify order of [`LINES`] lines (12.00 each, 10% off with TRAIL10,
/// 6.00 shipping) as the samples write it, for `order` and `customer`.
pub fn paid_order(order: u64, customer: u64, stage: Stage) -> Value {
    let mut body = samples::shopify_order_with(order, &format!("#{order}"), stage);
    let template = body["line_items"][0].clone();
    let lines: Vec<Value> = (0..LINES as u64)
        .map(|n| {
            let mut line = template.clone();
            let id = 14_820_553_000_100_000 + n;
            line["id"] = json!(id);
            line["admin_graphql_api_id"] = json!(format!("gid://shopify/LineItem/{id}"));
            line["product_id"] = json!(8_801_000_001_000u64 + n);
            line["variant_id"] = json!(4_401_000_001_000u64 + n);
            line["sku"] = json!(format!("SKU-{n:03}"));
            line["quantity"] = json!(1);
            line["current_quantity"] = json!(1);
            line["price"] = json!("12.00");
            line["price_set"] = money_set("12.00");
            line["discount_allocations"][0]["amount"] = json!("1.20");
            line["discount_allocations"][0]["amount_set"] = money_set("1.20");
            line
        })
        .collect();
    body["line_items"] = Value::Array(lines);
    for (field, amount) in [
        ("total_line_items_price", "120.00"),
        ("total_discounts", "12.00"),
        ("subtotal_price", "108.00"),
        ("total_price", "114.00"),
    ] {
        body[field] = json!(amount);
        body[format!("{field}_set")] = money_set(amount);
    }
    body["discount_codes"][0]["amount"] = json!("12.00");
    let email = format!("c{customer}@example.com");
    body["email"] = json!(email);
    body["contact_email"] = json!(email);
    body["customer"]["id"] = json!(customer);
    body["customer"]["email"] = json!(email);
    body
}

/// The compact body of an `orders/paid` delivery, as Shopify sends it.
pub fn paid_body(order: u64, customer: u64) -> String {
    paid_order(order, customer, Stage::Paid).to_string()
}

/// `POST /webhooks/shopify` with `body`, signed with the demo secret.
pub fn request(topic: &str, body: &str) -> Request<Body> {
    let mut builder =
        Request::post("/webhooks/shopify").header("content-length", body.len().to_string());
    for (name, value) in samples::shopify_delivery(topic, body, DEMO_SECRET) {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(body.to_string()))
        .expect("a valid request")
}

/// Sends one request through the router and reads the whole answer, as
/// lambda_http does before it serialises the response.
pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, bytes_of::Bytes) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body is in memory")
        .to_bytes();
    (status, body)
}

/// The answer's summary as JSON (for the sanity checks made before timing).
pub fn summary(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The floor: the body parsed into a `Value`, and one HMAC-SHA256 of it.
pub fn floor(body: &[u8], secret: &[u8]) -> (Value, [u8; 32]) {
    let value: Value = serde_json::from_slice(body).expect("the body is JSON");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    (value, mac.finalize().into_bytes().into())
}

/// The order ids deliveries use: far from the samples' own.
pub fn order_id(n: u64) -> u64 {
    6_000_000_000_000_000_000 + n
}

/// The customers deliveries rotate through; [`warm_customers`] gives each
/// an account first, so a measured delivery credits an existing account
/// (the common case: the new-customer path is measured on its own).
pub const CUSTOMERS: u64 = 100;

pub fn customer_id(n: u64) -> u64 {
    7_000_000_000_000_000_000 + (n % CUSTOMERS)
}

/// One paid order per customer, so every customer has an account.
pub async fn warm_customers(world: &WebhookWorld) {
    for n in 0..CUSTOMERS {
        let body = paid_body(order_id(u64::MAX / 2 + n), customer_id(n));
        let (status, answer) = send(&world.router, request("orders/paid", &body)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(summary(&answer)["applied"], 1, "warm-up order applied");
    }
}

/// Re-exported so callers need not name the bytes crate.
pub mod bytes_of {
    pub use axum::body::Bytes;
}
