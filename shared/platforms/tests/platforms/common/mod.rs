//! Shared helpers for the integration tests: load a fixture, sign it the way
//! each platform does, build headers, and write amounts tersely.

#![allow(dead_code)]

use cashback_core::money::{Currency, Money};
use cashback_platforms::{sign_base64, sign_generic, Headers};
use chrono::{DateTime, Utc};

pub const SECRET: &str = "shpss_9f2c41d07e8b4a6d";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

pub fn money(amount: &str, currency: Currency) -> Money {
    Money::parse(amount, currency).unwrap()
}

pub fn usd(amount: &str) -> Money {
    money(amount, Currency::USD)
}

pub fn eur(amount: &str) -> Money {
    money(amount, Currency::EUR)
}

pub fn gbp(amount: &str) -> Money {
    money(amount, Currency::GBP)
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

pub fn shopify_headers(topic: &str, body: &[u8]) -> Headers {
    Headers::new()
        .with("x-shopify-topic", topic)
        .with(
            "x-shopify-shop-domain",
            "northridge-outfitters.myshopify.com",
        )
        .with(
            "x-shopify-hmac-sha256",
            sign_base64(SECRET.as_bytes(), body),
        )
        .with("x-shopify-api-version", "2026-01")
        .with(
            "x-shopify-webhook-id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        )
        .with("x-shopify-event-id", "98880550-7158-44d4-b7cd-2c97c8a091b5")
        .with("x-shopify-triggered-at", "2026-03-14T14:22:33.123Z")
}

pub fn woo_headers(topic: &str, body: &[u8]) -> Headers {
    Headers::new()
        .with("X-WC-Webhook-Source", "https://tea.example.org/")
        .with("X-WC-Webhook-Topic", topic)
        .with("X-WC-Webhook-Resource", "order")
        .with("X-WC-Webhook-Event", "updated")
        .with(
            "X-WC-Webhook-Signature",
            sign_base64(SECRET.as_bytes(), body),
        )
        .with("X-WC-Webhook-ID", "14")
        .with(
            "X-WC-Webhook-Delivery-ID",
            "8d3a0f4c1b2e9f7a6c5d4e3b2a190817",
        )
}

/// The clock the generic fixtures are "received" at.
pub const GENERIC_NOW: i64 = 1_780_000_000;

pub fn generic_headers(body: &[u8]) -> Headers {
    Headers::new()
        .with("X-Cashback-Shop", "demo-store.example")
        .with(
            "X-Cashback-Signature",
            sign_generic(SECRET.as_bytes(), GENERIC_NOW - 5, body),
        )
}

pub fn generic_now() -> DateTime<Utc> {
    DateTime::from_timestamp(GENERIC_NOW, 0).unwrap()
}
