//! What the router tests share: a shop on the in-memory store with a known
//! API key, a customer with a balance, and requests sent through the router.
#![allow(dead_code)]

pub use cashback_test_support::seeded::*;

use axum::body::Body;
use axum::http::Request;

pub fn post(uri: &str, key: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(body.into()).unwrap()
}

pub fn validate_uri(shop: &str) -> String {
    format!("/v1/shops/{shop}/coupons/validate")
}

/// A request body for `code` on a one-line cart.
pub fn body(code: &str, customer: Option<&str>, subtotal: &str) -> serde_json::Value {
    serde_json::json!({
        "code": code,
        "customer_id": customer,
        "currency": "USD",
        "cart": {
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": subtotal}],
            "subtotal": subtotal,
            "payment_method": "shopify_payments",
        },
    })
}
