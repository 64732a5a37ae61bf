//! A seeded shop on the in-memory store (the world the HTTP functions'
//! tests share) and requests sent through the pages router.
#![allow(dead_code)]

pub mod webdriver;

pub use cashback_test_support::seeded::*;

use axum::body::Body;
use axum::http::Request;

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn post_form(uri: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}
