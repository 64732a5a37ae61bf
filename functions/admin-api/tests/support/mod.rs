//! What the admin router tests share: a shop on a store of the test's
//! choosing, the admin token, and requests sent through the router.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::Utc;
use http_body_util::BodyExt;
use tower::ServiceExt;

use admin_api::{router_with, AdminAuth};
use cashback_app::events::handle_order_event;
use cashback_app::store::Store;
use cashback_app::{AppConfig, Context};
use cashback_core::ids::*;
use cashback_core::money::Currency;
use cashback_core::order::{CustomerRef, Line, Order, OrderEvent};
use cashback_edge::auth::hash_api_key;

pub const TOKEN: &str = "admin-test-token";

pub use cashback_test_support::doubles::{CountingCodes, Silent};
use cashback_test_support::fixtures::demo_shop_record;
pub use cashback_test_support::fixtures::{program, shop, usd};

/// A shop with the 10 % program on `store`.
pub async fn seed(store: Arc<dyn Store>) -> Context {
    let at = cashback_test_support::seeded::t0();
    store
        .create_shop(&demo_shop_record("env:DEMO", String::new(), at))
        .await
        .unwrap();
    store.put_program(&shop(), &program(), 0, at).await.unwrap();
    Context::new(
        store,
        Arc::new(Silent),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    )
}

/// Customer `who` pays `price` now (the account and its code are opened).
pub async fn pay(ctx: &Context, order_id: &str, who: &str, price: &str) {
    let now = Utc::now();
    let amount = usd(price);
    let placed = Order {
        order_id: OrderId::parse(order_id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse(who).unwrap()),
            email: Some(Email::parse(&format!("{who}@example.com")).unwrap()),
        },
        currency: Currency::USD,
        lines: vec![Line {
            line_id: LineId::parse("1").unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: 1,
            unit_price: amount,
            discount: usd("0"),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }],
        subtotal: amount,
        shipping: usd("0"),
        total: amount,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: now,
    };
    handle_order_event(ctx, &shop(), &OrderEvent::Paid(placed), now)
        .await
        .unwrap();
}

pub fn app(ctx: &Context) -> Router {
    router_with(ctx.clone(), AdminAuth::Token(hash_api_key(TOKEN)))
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: serde_json::Value,
}

pub async fn send(router: Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        json,
    }
}

/// A request with the admin token, extra headers, and a JSON body if any.
pub fn request(
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// A query value, percent-encoded (cursors hold `#`, `+`, `/`, `=`).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub const ADMIN_ARN: &str = "arn:aws:iam::123456789012:user/back-office";

/// A request as API Gateway hands it on after its IAM authorizer allowed
/// `arn`: no admin token, the caller in the request context.
pub fn iam_request(method: &str, uri: &str, body: Option<&str>, arn: &str) -> Request<Body> {
    let mut request = request(method, uri, body, &[]);
    request.headers_mut().remove("authorization");
    let context: lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext =
        serde_json::from_value(serde_json::json!({
            "routeKey": "ANY /v1/shops/{shop}/program",
            "accountId": "123456789012",
            "stage": "$default",
            "requestId": "r-1",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "time": "05/Jan/2026:09:00:00 +0000",
            "timeEpoch": 0,
            "http": {"method": method, "path": uri, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.20", "userAgent": "test"},
            "authorizer": {"iam": {"accessKey": "AKIA", "accountId": "123456789012",
                                   "callerId": "AIDA", "userArn": arn, "userId": "AIDA"}},
        }))
        .unwrap();
    request
        .extensions_mut()
        .insert(lambda_http::request::RequestContext::ApiGatewayV2(context));
    request
}
