//! What the router tests share: a shop on the in-memory store with a known
//! API key, a customer with a balance, and requests sent through the router.
#![allow(dead_code)]

pub use cashback_test_support::seeded::*;

use axum::body::Body;
use axum::http::Request;

pub fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::empty()).unwrap()
}
