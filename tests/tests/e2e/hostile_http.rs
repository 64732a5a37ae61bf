//! Hostile input through the HTTP routers, merged as the local server
//! merges them (order-webhook, coupon-validate, customer-api, admin-api) on
//! the in-memory store with a seeded shop:
//!
//! - random methods, paths (real routes with odd segments, percent-encoded
//!   bytes, invalid UTF-8, very long), query strings, headers (with and
//!   without valid credentials) and bodies (arbitrary bytes, or real
//!   payloads mutated): never a panic, never a 5xx, and every 4xx a route
//!   answers is the JSON error `{"error": {"code", "message"}}` (the
//!   unsubscribe page answers humans in HTML unless asked for JSON; a path
//!   no route matches is the router's bare 404/405, see docs/reliability.md);
//! - real webhook payloads mutated and signed with the shop's secret, so
//!   they pass the signature and reach the parsers and the ledger: never a
//!   5xx, and every account still agrees with its ledger afterwards;
//! - every admin route without authorisation; every body past its route's
//!   limit; the signature attacks and app proxy tampering the functions'
//!   own tests do not cover.
//!
//! `HOSTILE_CASES` (default 4,000) sets the cases of each property.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tower::ServiceExt;

use admin_api::AdminAuth;
use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::ShopId;
use cashback_core::money::Currency;
use cashback_edge::auth::hash_api_key;
use cashback_platforms::{sign_base64, sign_generic};
use cashback_store::MemoryStore;
use cashback_test_support::doubles::{KeptNotifier, SeqCodes};
use cashback_test_support::fixtures::program;
use cashback_test_support::samples::{
    self, DEMO_SECRET, DEMO_SECRET_REF, DEMO_SHOP, GENERIC_SIGNED_AT,
};
use cashback_test_support::world::{seed_balance, whole_ledger};
use customer_api::CustomerApiConfig;
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::WebhookState;

const API_KEY: &str = "cbk_hostile_test_key_0123456789";
const ADMIN_TOKEN: &str = "hostile-admin-token";
const APP_SECRET: &[u8] = b"hostile-shopify-app-secret";
const ANN_CODE: &str = "CB-ANN0000000001";
const OTHER_SHOP: &str = "other.myshopify.com";
const OTHER_SECRET: &str = "other-shop-webhook-secret";
const OTHER_SECRET_REF: &str = "env:CASHBACK_SECRET_OTHER_SHOP";

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4000)
}

/// The moment requests arrive: just after the generic samples were signed.
fn now() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(GENERIC_SIGNED_AT + 10, 0)
        .single()
        .unwrap_or_default()
}

struct Fixture {
    app: Router,
    store: Arc<MemoryStore>,
}

/// The demo shop (and another, with its own secret) and Ann with 30.00 on
/// her code, behind all four routers.
async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    for (shop, reference) in [(DEMO_SHOP, DEMO_SECRET_REF), (OTHER_SHOP, OTHER_SECRET_REF)] {
        let id = ShopId::parse(shop).unwrap_or_else(|e| panic!("{e}"));
        store
            .create_shop(&Shop {
                shop: id.clone(),
                platform: Platform::Shopify,
                currency: Currency::USD,
                name: "Demo Store".into(),
                webhook_secret_ref: reference.into(),
                api_key_hash: hash_api_key(API_KEY),
                created_at: now(),
                guest_id_key: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .put_program(&id, &program(), 0, now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    seed_balance(store.as_ref(), &program(), "ann", ANN_CODE, "30.00").await;
    let ctx = Context::new(
        store.clone(),
        Arc::new(KeptNotifier::default()),
        Arc::new(SeqCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([
            (DEMO_SECRET_REF, DEMO_SECRET),
            (OTHER_SECRET_REF, OTHER_SECRET),
        ])),
        300,
    ));
    let webhook = WebhookState::new(ctx.clone(), secrets).with_clock(Arc::new(now));
    let app = Router::new()
        .merge(order_webhook::router(webhook))
        .merge(coupon_validate::router(ctx.clone()))
        .merge(customer_api::router_with(
            ctx.clone(),
            CustomerApiConfig {
                shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(
                    APP_SECRET.to_vec(),
                )),
                proxy_max_age_seconds: customer_api::DEFAULT_PROXY_MAX_AGE_SECONDS,
            },
        ))
        .merge(admin_api::router_with(
            ctx,
            AdminAuth::Token(hash_api_key(ADMIN_TOKEN)),
        ));
    Fixture { app, store }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body,
    }
}

/// What every answer must be: no 5xx; a 4xx from a route is the JSON error.
/// Returns whether the answer was the router's own bare 404/405.
fn check_answer(
    answer: &Answer,
    method: &str,
    path: &str,
    what: &str,
) -> Result<bool, TestCaseError> {
    let text = String::from_utf8_lossy(&answer.body);
    prop_assert!(
        !answer.status.is_server_error(),
        "{what}: {} {text}",
        answer.status
    );
    if !answer.status.is_client_error() || method == "HEAD" {
        // HEAD is GET without the body.
        return Ok(false);
    }
    if answer.body.is_empty()
        && matches!(
            answer.status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        )
    {
        return Ok(true);
    }
    if path.contains("/unsubscribe") && answer.content_type.starts_with("text/html") {
        return Ok(false);
    }
    let json: serde_json::Value = serde_json::from_slice(&answer.body).map_err(|e| {
        TestCaseError::fail(format!("{what}: {} not JSON ({e}): {text}", answer.status))
    })?;
    prop_assert!(
        json["error"]["code"].is_string() && json["error"]["message"].is_string(),
        "{what}: {} without the error shape: {text}",
        answer.status
    );
    Ok(false)
}

// ------------------------------------------------------------ strategies

const ROUTES: &[&str] = &[
    "/webhooks/{}",
    "/v1/shops/{}/coupons/validate",
    "/v1/shops/{}/customers/{}/cashback",
    "/v1/shops/{}/customers/{}/unsubscribe",
    "/v1/shops",
    "/v1/shops/{}/program",
    "/v1/shops/{}/program/versions/{}",
    "/v1/shops/{}/coupons",
    "/v1/shops/{}/coupons/{}",
    "/v1/shops/{}/coupons/{}/pause",
    "/v1/shops/{}/coupons/{}/approve",
    "/v1/shops/{}/customers",
    "/v1/shops/{}/customers/{}",
    "/v1/shops/{}/customers/{}/ledger",
    "/v1/shops/{}/customers/{}/adjustments",
    "/v1/shops/{}/customers/{}/regenerate-code",
    "/v1/shops/{}/customers/{}/profile",
    "/v1/shops/{}/profiles",
    "/v1/shops/{}/catalog",
    "/v1/shops/{}/reports",
    "/v1/shops/{}/imports",
    "/v1/shops/{}/imports/dry-run",
    "/v1/shops/{}/exports/customers",
    "/v1/shops/{}/exports/customers/{}/ledger",
    "/v1/shops/{}/exports/report",
    "/{}/{}",
    "/{}",
];

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            DEMO_SHOP.to_string(),
            OTHER_SHOP.to_string(),
            "shopify".into(),
            "woocommerce".into(),
            "generic".into(),
            "ann".into(),
            ANN_CODE.to_string(),
            "welcome".into(),
            "1".into(),
        ]),
        2 => "[a-zA-Z0-9._~-]{0,40}",
        2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| percent_encode(&b)),
        1 => prop::sample::select(vec![
            "%ff%fe".to_string(),
            "%zz".into(),
            "%".into(),
            "..".into(),
            "%2e%2e".into(),
            "%00".into(),
            "a".repeat(3000),
            "-1".into(),
            "18446744073709551616".into(),
            "%E2%80%AE".into(),
        ]),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "limit",
            "cursor",
            "email",
            "code",
            "from",
            "to",
            "day",
            "signature",
            "shop",
            "timestamp",
            "logged_in_customer_id",
            "sig",
            "path_prefix",
            "customer_id",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![
        "[a-zA-Z0-9._~-]{0,30}",
        prop::collection::vec(any::<u8>(), 0..30).prop_map(|b| percent_encode(&b)),
        Just("%zz%".to_string()),
        Just("-5".to_string()),
        Just("99999999999999999999".to_string()),
    ];
    prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn header() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "authorization",
            "content-type",
            "content-length",
            "accept",
            "if-match",
            "idempotency-key",
            "x-shopify-hmac-sha256",
            "x-shopify-shop-domain",
            "x-shopify-topic",
            "x-shopify-webhook-id",
            "x-shopify-event-id",
            "x-wc-webhook-signature",
            "x-wc-webhook-source",
            "x-wc-webhook-topic",
            "x-cashback-signature",
            "x-cashback-shop",
        ])
        .prop_map(str::to_string),
        "x-[a-z-]{1,16}",
    ];
    let value = prop_oneof![
        Just(format!("Bearer {API_KEY}")),
        Just(format!("Bearer {ADMIN_TOKEN}")),
        Just("application/json".to_string()),
        Just(DEMO_SHOP.to_string()),
        Just("orders/paid".to_string()),
        Just("t=1,v1=00".to_string()),
        "[0-9]{1,22}",
        "[ -~]{0,80}",
    ];
    (name, value)
}

/// Real request bodies of every route, for mutation.
fn real_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = samples::all(GENERIC_SIGNED_AT)
        .into_iter()
        .map(|s| s.body.into_bytes())
        .collect();
    for body in [
        r#"{"code":"CB-ANN0000000001","customer_id":"ann","currency":"USD","cart":{"lines":[{"product_id":"p1","quantity":1,"unit_price":"20.00"}],"subtotal":"20.00"},"reserve":{"checkout_id":"chk-1","ttl_seconds":60}}"#,
        r#"{"currency":"USD","earning":{"merchant_percent":"8"}}"#,
        r#"{"code":"WELCOME","display_name":"5 back","reward":{"type":"fixed","amount":"5.00"}}"#,
        r#"{"code":"PCT","display_name":"10%","reward":{"type":"percentage","percent":"10","max_cashback":"20.00"},"usage_limit_total":5}"#,
        r#"{"amount":"5.00","reason":"sorry"}"#,
        r#"{"shop":"fresh.myshopify.com","platform":"woocommerce","name":"Fresh","currency":"USD","webhook_secret_ref":"env:CASHBACK_SECRET_FRESH"}"#,
        r#"{"products":[{"product_id":"p1","collection_ids":["c1"],"compare_at_price":"12.00"}]}"#,
        // The birthday route's body and a program with every bonus, after
        // the bodies the routes below count back from the end.
        r#"{"month":2,"day":29}"#,
        r#"{"currency":"USD","bonuses":{"birthday":{"amount":"5.00","days_before":3},"anniversary":{"amount":"2.00"},"win_back":{"after_days":90,"once_per_days":180,"reward":{"type":"amount","amount":"7.00"}},"milestones":[{"lifetime_spend":"500"},{"lifetime_spend":"1000","amount":"10.00"}],"pays_debt":false}}"#,
    ] {
        bodies.push(body.as_bytes().to_vec());
    }
    bodies
}

/// A real body with a JSON value replaced, a few bytes changed, or cut
/// short (often only one of these, so many still parse).
fn mutated(real: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = real.len();
    let edits = prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ];
    let cut = prop_oneof![3 => Just(None), 1 => any::<prop::sample::Index>().prop_map(Some)];
    let token = prop::option::of((
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            "null",
            "0",
            "-1",
            "1e400",
            "18446744073709551616",
            "4.5",
            "\"\"",
            "\"-1.00\"",
            "[]",
            "{}",
            "true",
            "\"99999999999999999999999999999.99\"",
            "\"1#2\"",
            "\"\\u0000\"",
            "\"NaN\"",
            "\"0.001\"",
            "\"-0.00\"",
            "\"1e5\"",
            "\"\u{202e}\"",
            "\"ANN0000000001\"",
        ]),
    ));
    (0..count, edits, cut, token).prop_map(move |(which, edits, cut, token)| {
        let mut body = real[which].clone();
        if let Some((at, replacement)) = token {
            let text = String::from_utf8_lossy(&body).to_string();
            let starts: Vec<usize> = text.match_indices("\":").map(|(i, _)| i + 2).collect();
            if !starts.is_empty() {
                let start = starts[at.index(starts.len())];
                let end = text[start..]
                    .find([',', '}', ']'])
                    .map_or(text.len(), |offset| start + offset);
                body = format!("{}{}{}", &text[..start], replacement, &text[end..]).into_bytes();
            }
        }
        if !body.is_empty() {
            for (index, byte) in edits {
                let at = index.index(body.len());
                body[at] = byte;
            }
        }
        if let Some(cut) = cut {
            body.truncate(cut.index(body.len() + 1));
        }
        body
    })
}

/// A body: arbitrary bytes, or a real one mutated.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..1024),
        3 => mutated(real_bodies()),
    ]
}

#[derive(Debug, Clone)]
struct Hostile {
    method: &'static str,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn hostile_request() -> impl Strategy<Value = Hostile> {
    (
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
        ]),
        prop::sample::select(ROUTES.to_vec()),
        prop::collection::vec(segment(), 3),
        query(),
        prop::collection::vec(header(), 0..6),
        body(),
    )
        .prop_map(|(method, route, segments, query, headers, body)| {
            let mut path = String::new();
            let mut parts = route.split("{}");
            path.push_str(parts.next().unwrap_or_default());
            for (part, segment) in parts.zip(segments.iter().cycle()) {
                path.push_str(segment);
                path.push_str(part);
            }
            Hostile {
                method,
                path,
                query,
                headers,
                body,
            }
        })
}

fn build(h: &Hostile) -> Option<Request<Body>> {
    let uri = if h.query.is_empty() {
        h.path.clone()
    } else {
        format!("{}?{}", h.path, h.query)
    };
    let mut builder = Request::builder().method(h.method).uri(uri);
    for (name, value) in &h.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(h.body.clone())).ok()
}

/// Every account of the demo shop agrees with its ledger.
async fn every_account_agrees_with_its_ledger(store: &MemoryStore) -> usize {
    let shop = ShopId::parse(DEMO_SHOP).unwrap_or_else(|e| panic!("{e}"));
    let mut cursor = None;
    let mut checked = 0;
    loop {
        let page = store
            .list_accounts(&shop, cursor, 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for account in &page.items {
            let customer = account.value.customer.to_string();
            let ledger = whole_ledger(store, &customer).await;
            account
                .value
                .check(&ledger)
                .unwrap_or_else(|broken| panic!("{customer}: {broken:?}"));
            checked += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return checked,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

// ------------------------------------------------------------ properties

#[test]
fn random_methods_paths_headers_and_bodies_never_panic_nor_answer_5xx() {
    let rt = runtime();
    let fixture = rt.block_on(fixture());
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let counts = Mutex::new((0u32, 0u32, 0u32, 0u32));
    runner
        .run(&hostile_request(), |h| {
            let Some(request) = build(&h) else {
                return Ok(());
            };
            let answer = rt.block_on(send(&fixture.app, request));
            let bare = check_answer(&answer, h.method, &h.path, &format!("{h:?}"))?;
            if let Ok(mut c) = counts.lock() {
                c.0 += 1;
                if answer.status.is_success() {
                    c.1 += 1;
                } else if bare {
                    c.3 += 1;
                } else {
                    c.2 += 1;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (sent, ok, refused, bare) = counts.into_inner().unwrap_or_default();
    eprintln!(
        "hostile figures: random requests={sent} 2xx={ok} 4xx_json={refused} router_404_405={bare}"
    );
    rt.block_on(every_account_agrees_with_its_ledger(&fixture.store));
}

#[test]
fn mutated_webhooks_signed_with_the_shops_secret_never_answer_5xx_and_keep_the_ledger_whole() {
    let rt = runtime();
    let mutated_sample_bodies = || {
        let bodies: Vec<Vec<u8>> = samples::all(GENERIC_SIGNED_AT)
            .into_iter()
            .map(|s| s.body.into_bytes())
            .collect();
        let count = bodies.len();
        (0..count).prop_flat_map(move |which| (Just(which), mutated(vec![bodies[which].clone()])))
    };
    let fixture = rt.block_on(fixture());
    let samples = samples::all(GENERIC_SIGNED_AT);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let counts = Mutex::new((0u32, 0u32, 0u32));
    runner
        .run(&mutated_sample_bodies(), |(which, body)| {
            let sample = &samples[which];
            let (header, signature) = match sample.platform {
                "shopify" => (
                    "X-Shopify-Hmac-Sha256",
                    sign_base64(DEMO_SECRET.as_bytes(), &body),
                ),
                "woocommerce" => (
                    "X-WC-Webhook-Signature",
                    sign_base64(DEMO_SECRET.as_bytes(), &body),
                ),
                _ => (
                    "X-Cashback-Signature",
                    sign_generic(DEMO_SECRET.as_bytes(), GENERIC_SIGNED_AT, &body),
                ),
            };
            let path = format!("/webhooks/{}", sample.platform);
            let mut builder = Request::post(&path);
            for (name, value) in &sample.headers {
                if !name.eq_ignore_ascii_case(header) {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            let request = builder
                .header(header, signature)
                .body(Body::from(body))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let answer = rt.block_on(send(&fixture.app, request));
            check_answer(&answer, "POST", &path, sample.file)?;
            prop_assert_ne!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "the signature is good"
            );
            if let Ok(mut c) = counts.lock() {
                c.0 += 1;
                if answer.status.is_success() {
                    c.1 += 1;
                } else {
                    c.2 += 1;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let accounts = rt.block_on(every_account_agrees_with_its_ledger(&fixture.store));
    let (sent, ok, refused) = counts.into_inner().unwrap_or_default();
    eprintln!(
        "hostile figures: signed mutated webhooks={sent} 2xx={ok} 4xx_json={refused} accounts_checked={accounts}"
    );
}

/// A request to a real route with valid credentials and that route's own
/// body, mutated, or a random query: the paths past authorisation.
fn targeted_request() -> impl Strategy<Value = Hostile> {
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let key = format!("Bearer {API_KEY}");
    let bodies = real_bodies();
    // The last two are the bonus bodies (birthday, program with bonuses).
    let (birthday, bonus_program) = (
        bodies[bodies.len() - 2].clone(),
        bodies[bodies.len() - 1].clone(),
    );
    let n = bodies.len() - 2;
    // (method, path, authorization, the real bodies it takes)
    let base = "/v1/shops/demo.myshopify.com";
    let routes: Vec<(&'static str, String, String, Vec<Vec<u8>>)> = vec![
        (
            "POST",
            format!("{base}/coupons/validate"),
            key.clone(),
            vec![bodies[n - 7].clone()],
        ),
        (
            "PUT",
            format!("{base}/program"),
            admin.clone(),
            vec![bodies[n - 6].clone(), bonus_program],
        ),
        (
            "PUT",
            format!("{base}/customers/ann/birthday"),
            admin.clone(),
            vec![birthday],
        ),
        (
            "POST",
            format!("{base}/coupons"),
            admin.clone(),
            vec![bodies[n - 5].clone(), bodies[n - 4].clone()],
        ),
        (
            "PUT",
            format!("{base}/coupons/welcome"),
            admin.clone(),
            vec![bodies[n - 5].clone(), bodies[n - 4].clone()],
        ),
        (
            "POST",
            format!("{base}/customers/ann/adjustments"),
            admin.clone(),
            vec![bodies[n - 3].clone()],
        ),
        (
            "POST",
            "/v1/shops".to_string(),
            admin.clone(),
            vec![bodies[n - 2].clone()],
        ),
        (
            "POST",
            format!("{base}/catalog"),
            admin.clone(),
            vec![bodies[n - 1].clone()],
        ),
        (
            "GET",
            format!("{base}/customers"),
            admin.clone(),
            Vec::new(),
        ),
        (
            "GET",
            format!("{base}/customers/ann/ledger"),
            admin.clone(),
            Vec::new(),
        ),
        ("GET", format!("{base}/profiles"), admin.clone(), Vec::new()),
        ("GET", format!("{base}/reports"), admin.clone(), Vec::new()),
        ("GET", format!("{base}/coupons"), admin.clone(), Vec::new()),
        (
            "GET",
            format!("{base}/customers/ann/cashback"),
            key.clone(),
            Vec::new(),
        ),
        (
            "GET",
            format!("{base}/customers/ann/unsubscribe"),
            String::new(),
            Vec::new(),
        ),
        (
            "POST",
            format!("{base}/customers/ann/unsubscribe"),
            String::new(),
            Vec::new(),
        ),
    ];
    let count = routes.len();
    (0..count).prop_flat_map(move |which| {
        let (method, path, authorization, bodies) = routes[which].clone();
        let body = if bodies.is_empty() {
            Just(Vec::new()).boxed()
        } else {
            mutated(bodies).boxed()
        };
        (
            Just((method, path, authorization)),
            body,
            query(),
            prop::option::of("[ -~]{0,40}"),
            any::<bool>(),
        )
            .prop_map(
                |((method, path, authorization), body, query, idempotency, json)| {
                    let mut headers =
                        vec![("content-type".to_string(), "application/json".to_string())];
                    if !authorization.is_empty() {
                        headers.push(("authorization".to_string(), authorization));
                    }
                    if let Some(key) = idempotency {
                        headers.push(("idempotency-key".to_string(), key));
                    }
                    if json {
                        headers.push(("accept".to_string(), "application/json".to_string()));
                    }
                    Hostile {
                        method,
                        path,
                        query,
                        headers,
                        body,
                    }
                },
            )
    })
}

#[test]
fn real_routes_with_valid_credentials_and_mutated_bodies_or_queries_never_answer_5xx() {
    let rt = runtime();
    let fixture = rt.block_on(fixture());
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let counts = Mutex::new((0u32, 0u32, 0u32));
    runner
        .run(&targeted_request(), |h| {
            let Some(request) = build(&h) else {
                return Ok(());
            };
            let answer = rt.block_on(send(&fixture.app, request));
            let bare = check_answer(&answer, h.method, &h.path, &format!("{h:?}"))?;
            prop_assert!(
                !bare,
                "{h:?}: a real route answered the router's bare 404/405"
            );
            if let Ok(mut c) = counts.lock() {
                c.0 += 1;
                if answer.status.is_success() {
                    c.1 += 1;
                } else {
                    c.2 += 1;
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (sent, ok, refused) = counts.into_inner().unwrap_or_default();
    eprintln!("hostile figures: targeted requests={sent} 2xx={ok} 4xx_json={refused}");
    rt.block_on(every_account_agrees_with_its_ledger(&fixture.store));
}

// ------------------------------------------------------------ authorisation

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/shops"),
    ("GET", "/v1/shops/demo.myshopify.com/program"),
    ("PUT", "/v1/shops/demo.myshopify.com/program"),
    ("GET", "/v1/shops/demo.myshopify.com/program/versions/1"),
    ("GET", "/v1/shops/demo.myshopify.com/coupons"),
    ("POST", "/v1/shops/demo.myshopify.com/coupons"),
    ("GET", "/v1/shops/demo.myshopify.com/coupons/welcome"),
    ("PUT", "/v1/shops/demo.myshopify.com/coupons/welcome"),
    ("POST", "/v1/shops/demo.myshopify.com/coupons/welcome/pause"),
    (
        "POST",
        "/v1/shops/demo.myshopify.com/coupons/welcome/approve",
    ),
    (
        "GET",
        "/v1/shops/demo.myshopify.com/customers?email=ann%40example.com",
    ),
    ("GET", "/v1/shops/demo.myshopify.com/customers/ann"),
    ("GET", "/v1/shops/demo.myshopify.com/customers/ann/ledger"),
    (
        "POST",
        "/v1/shops/demo.myshopify.com/customers/ann/adjustments",
    ),
    (
        "POST",
        "/v1/shops/demo.myshopify.com/customers/ann/regenerate-code",
    ),
    ("GET", "/v1/shops/demo.myshopify.com/customers/ann/profile"),
    ("PUT", "/v1/shops/demo.myshopify.com/customers/ann/birthday"),
    ("GET", "/v1/shops/demo.myshopify.com/profiles"),
    ("POST", "/v1/shops/demo.myshopify.com/catalog"),
    ("PUT", "/v1/shops/demo.myshopify.com/catalog"),
    (
        "GET",
        "/v1/shops/demo.myshopify.com/reports?from=2026-01-01&to=2026-01-31",
    ),
    ("POST", "/v1/shops/demo.myshopify.com/imports"),
    ("POST", "/v1/shops/demo.myshopify.com/imports/dry-run"),
    ("GET", "/v1/shops/demo.myshopify.com/exports/customers"),
    (
        "GET",
        "/v1/shops/demo.myshopify.com/exports/customers/ann/ledger",
    ),
    (
        "GET",
        "/v1/shops/demo.myshopify.com/exports/report?from=2026-01-01&to=2026-01-31",
    ),
];

#[tokio::test]
async fn every_admin_route_refuses_a_request_without_the_admin_token_and_writes_nothing() {
    let fixture = fixture().await;
    let before = fixture.store.request_counts();
    let body = r#"{"amount":"500.00","reason":"free money"}"#;
    let credentials: [Option<String>; 7] = [
        None,
        Some("Bearer not-the-token".into()),
        // The shop's own API key opens the checkout and portal routes only.
        Some(format!("Bearer {API_KEY}")),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.into()),
        Some("Bearer ".into()),
        Some(format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
    ];
    let mut refused = 0;
    for (method, uri) in ADMIN_ROUTES {
        for credential in &credentials {
            let mut builder = Request::builder()
                .method(*method)
                .uri(*uri)
                .header("content-type", "application/json")
                .header("idempotency-key", "k-hostile");
            if let Some(value) = credential {
                builder = builder.header("authorization", value.as_str());
            }
            let request = builder
                .body(Body::from(body))
                .unwrap_or_else(|e| panic!("{e}"));
            let answer = send(&fixture.app, request).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {credential:?}"
            );
            let json: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(json["error"]["code"], "unauthorized", "{method} {uri}");
            refused += 1;
        }
    }
    let after = fixture.store.request_counts();
    assert_eq!(after.writes, before.writes, "a refused request wrote");
    assert_eq!(
        after.reads, before.reads,
        "a refused request read ledger data"
    );
    assert_eq!(refused, ADMIN_ROUTES.len() * credentials.len());
}

// ------------------------------------------------------------ oversized bodies

#[tokio::test]
async fn every_route_that_takes_a_body_refuses_one_past_its_limit_with_a_json_413() {
    let fixture = fixture().await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let key = format!("Bearer {API_KEY}");
    // The admin routes that read a body (pause, approve and
    // regenerate-code take none).
    let mut routes: Vec<(&str, String, String, usize)> = ADMIN_ROUTES
        .iter()
        .filter(|(method, uri)| {
            *method != "GET"
                && !uri.ends_with("/pause")
                && !uri.ends_with("/approve")
                && !uri.ends_with("/regenerate-code")
        })
        .map(|(method, uri)| {
            (
                *method,
                uri.to_string(),
                admin.clone(),
                admin_api::MAX_BODY_BYTES,
            )
        })
        .collect();
    routes.push((
        "POST",
        "/v1/shops/demo.myshopify.com/coupons/validate".into(),
        key.clone(),
        coupon_validate::MAX_BODY_BYTES,
    ));
    for platform in ["shopify", "woocommerce", "generic"] {
        routes.push((
            "POST",
            format!("/webhooks/{platform}"),
            String::new(),
            cashback_platforms::MAX_BODY_BYTES,
        ));
    }
    let before = fixture.store.request_counts();
    for (method, uri, authorization, limit) in &routes {
        // Sent whole with no length announced, then announced only.
        for announced in [false, true] {
            let mut builder = Request::builder()
                .method(*method)
                .uri(uri.as_str())
                .header("content-type", "application/json")
                .header("idempotency-key", "k-big");
            for (name, value) in samples::shopify_delivery("orders/paid", "", DEMO_SECRET) {
                builder = builder.header(name, value);
            }
            if !authorization.is_empty() {
                builder = builder.header("authorization", authorization.as_str());
            }
            let body = if announced {
                builder = builder.header("content-length", (limit + 1).to_string());
                Vec::new()
            } else {
                let mut big = b"{\"pad\":\"".to_vec();
                big.resize(limit + 1, b'a');
                big
            };
            let answer = send(
                &fixture.app,
                builder
                    .body(Body::from(body))
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await;
            // The webhook and the checkout refuse on the announced length
            // before reading; the admin routes read what is sent (hyper
            // reads exactly the announced length), here nothing.
            let refuses_on_announce =
                uri.starts_with("/webhooks/") || uri.ends_with("/coupons/validate");
            let refused_whole = answer.status == StatusCode::PAYLOAD_TOO_LARGE;
            assert!(
                refused_whole
                    || (announced && !refuses_on_announce && answer.status.is_client_error()),
                "{method} {uri} (announced: {announced}): {} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
            let json: serde_json::Value = serde_json::from_slice(&answer.body)
                .unwrap_or_else(|e| panic!("{method} {uri}: not JSON: {e}"));
            assert!(json["error"]["code"].is_string(), "{method} {uri}: {json}");
        }
    }
    assert_eq!(fixture.store.request_counts().writes, before.writes);
}

// ------------------------------------------------------------ signatures

async fn assert_webhook_refused(
    fixture: &Fixture,
    what: &str,
    platform: &str,
    headers: Vec<(String, String)>,
    body: &str,
) {
    let before = fixture.store.request_counts();
    let mut builder = Request::post(format!("/webhooks/{platform}"));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let answer = send(
        &fixture.app,
        builder
            .body(Body::from(body.to_string()))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["error"]["code"], "invalid_signature", "{what}");
    assert_eq!(
        fixture.store.request_counts().writes,
        before.writes,
        "{what} wrote"
    );
}

fn replace_header(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    out.push((name.to_string(), value.to_string()));
    out
}

#[tokio::test]
async fn signature_attacks_the_webhook_tests_leave_out_are_refused_with_401() {
    let fixture = fixture().await;
    let generic = samples::named("generic-order-paid.json", GENERIC_SIGNED_AT)
        .unwrap_or_else(|| panic!("generic sample"));
    let body = generic.body.clone();
    let signed = |secret: &str, t: i64| {
        replace_header(
            &generic.headers,
            "X-Cashback-Signature",
            &sign_generic(secret.as_bytes(), t, body.as_bytes()),
        )
    };
    assert_webhook_refused(
        &fixture,
        "generic: another shop's secret",
        "generic",
        signed(OTHER_SECRET, GENERIC_SIGNED_AT),
        &body,
    )
    .await;
    assert_webhook_refused(
        &fixture,
        "generic: signed ten minutes ahead",
        "generic",
        signed(DEMO_SECRET, GENERIC_SIGNED_AT + 610),
        &body,
    )
    .await;
    assert_webhook_refused(
        &fixture,
        "generic: signed ten minutes ago",
        "generic",
        signed(DEMO_SECRET, GENERIC_SIGNED_AT - 600),
        &body,
    )
    .await;
    let good = sign_generic(DEMO_SECRET.as_bytes(), GENERIC_SIGNED_AT, body.as_bytes());
    let retimed = good.replacen(
        &format!("t={GENERIC_SIGNED_AT}"),
        &format!("t={}", GENERIC_SIGNED_AT + 5),
        1,
    );
    assert_webhook_refused(
        &fixture,
        "generic: timestamp changed after signing",
        "generic",
        replace_header(&generic.headers, "X-Cashback-Signature", &retimed),
        &body,
    )
    .await;
    assert_webhook_refused(
        &fixture,
        "generic: v1 empty",
        "generic",
        replace_header(
            &generic.headers,
            "X-Cashback-Signature",
            &format!("t={GENERIC_SIGNED_AT},v1="),
        ),
        &body,
    )
    .await;
    assert_webhook_refused(
        &fixture,
        "generic: no header",
        "generic",
        generic
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("X-Cashback-Signature"))
            .cloned()
            .collect(),
        &body,
    )
    .await;

    let woo = samples::named("woocommerce-order-created.json", GENERIC_SIGNED_AT)
        .unwrap_or_else(|| panic!("woo sample"));
    let woo_good = sign_base64(DEMO_SECRET.as_bytes(), woo.body.as_bytes());
    for (what, value) in [
        (
            "woocommerce: truncated",
            woo_good[..woo_good.len() - 6].to_string(),
        ),
        ("woocommerce: not base64", "@@not base64@@".to_string()),
        ("woocommerce: hex instead of base64", hex::encode([0u8; 32])),
        (
            "woocommerce: another shop's secret",
            sign_base64(OTHER_SECRET.as_bytes(), woo.body.as_bytes()),
        ),
    ] {
        assert_webhook_refused(
            &fixture,
            what,
            "woocommerce",
            replace_header(&woo.headers, "X-WC-Webhook-Signature", &value),
            &woo.body,
        )
        .await;
    }

    // Shopify: signed with the demo shop's secret but claiming the other
    // shop, whose secret differs; and a good signature on the wrong platform.
    let shopify = samples::named("shopify-orders-paid.json", GENERIC_SIGNED_AT)
        .unwrap_or_else(|| panic!("shopify sample"));
    assert_webhook_refused(
        &fixture,
        "shopify: claims another shop",
        "shopify",
        replace_header(&shopify.headers, "X-Shopify-Shop-Domain", OTHER_SHOP),
        &shopify.body,
    )
    .await;
    let as_woo = vec![
        (
            "X-WC-Webhook-Source".to_string(),
            format!("https://{DEMO_SHOP}/"),
        ),
        (
            "X-WC-Webhook-Topic".to_string(),
            "order.created".to_string(),
        ),
        (
            "X-WC-Webhook-Signature".to_string(),
            sign_base64(b"guess", shopify.body.as_bytes()),
        ),
    ];
    assert_webhook_refused(
        &fixture,
        "woocommerce headers, guessed secret",
        "woocommerce",
        as_woo,
        &shopify.body,
    )
    .await;
}

// ------------------------------------------------------------ app proxy

fn proxied_uri(customer: &str, params: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let signature = customer_api::proxy::sign(APP_SECRET, &owned);
    let mut query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v.as_bytes())))
        .collect();
    query.push(format!("signature={signature}"));
    format!(
        "/v1/shops/{DEMO_SHOP}/customers/{customer}/cashback?{}",
        query.join("&")
    )
}

#[tokio::test]
async fn app_proxy_requests_with_repeated_or_future_signed_parameters_are_refused() {
    let fixture = fixture().await;
    let now = Utc::now().timestamp().to_string();
    let future = (Utc::now().timestamp() + 3600).to_string();
    let get = |uri: String| {
        Request::get(uri)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The honest request works, so the refusals below are about the tampering.
    let honest = send(
        &fixture.app,
        get(proxied_uri(
            "ann",
            &[
                ("shop", DEMO_SHOP),
                ("logged_in_customer_id", "ann"),
                ("path_prefix", "/apps/cashback"),
                ("timestamp", &now),
            ],
        )),
    )
    .await;
    assert_eq!(
        honest.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&honest.body)
    );

    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            // A shopper adds their own logged_in_customer_id before the one
            // Shopify appends; Shopify signs both, joined by a comma.
            "repeated logged_in_customer_id",
            vec![
                ("shop", DEMO_SHOP),
                ("logged_in_customer_id", "ann"),
                ("logged_in_customer_id", "bob"),
                ("timestamp", &now),
            ],
        ),
        (
            // A shop the attacker owns signs; the victim shop goes first.
            "repeated shop",
            vec![
                ("shop", DEMO_SHOP),
                ("shop", OTHER_SHOP),
                ("logged_in_customer_id", "ann"),
                ("timestamp", &now),
            ],
        ),
        (
            "repeated timestamp",
            vec![
                ("shop", DEMO_SHOP),
                ("logged_in_customer_id", "ann"),
                ("timestamp", &now),
                ("timestamp", "1"),
            ],
        ),
        (
            "timestamp an hour ahead",
            vec![
                ("shop", DEMO_SHOP),
                ("logged_in_customer_id", "ann"),
                ("timestamp", &future),
            ],
        ),
        (
            "timestamp not a number",
            vec![
                ("shop", DEMO_SHOP),
                ("logged_in_customer_id", "ann"),
                ("timestamp", "soon"),
            ],
        ),
    ];
    for (what, params) in cases {
        let answer = send(&fixture.app, get(proxied_uri("ann", &params))).await;
        assert!(
            matches!(
                answer.status,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            "{what}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(json["error"]["code"].is_string(), "{what}");
        assert!(
            json.get("available").is_none(),
            "{what}: a balance was shown"
        );
    }
}
