//! A seeded shop on the in-memory store (the world the HTTP functions'
//! tests share) and requests sent through the pages router.
#![allow(dead_code)]

#[path = "../../../../functions/coupon-validate/tests/support/common.rs"]
mod common;

pub use common::*;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

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

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn post_form(uri: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}
