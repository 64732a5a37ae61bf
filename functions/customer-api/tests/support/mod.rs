//! What the router tests share: a shop on the in-memory store with a known
//! API key, a customer with a balance, and requests sent through the router.
#![allow(dead_code)]

#[path = "../../../coupon-validate/tests/support/common.rs"]
mod common;

pub use common::*;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::empty()).unwrap()
}

/// The status, the headers and the body as text (for the HTML pages).
pub async fn send_text(
    router: Router,
    request: Request<Body>,
) -> (StatusCode, Response<()>, String) {
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        Response::from_parts(parts, ()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}
