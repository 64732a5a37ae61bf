//! A shop's secret reference that names a variable outside the secret
//! prefix, or a short secret, is never used to verify a delivery: the
//! webhook answers 500 (misconfigured on our side) and writes nothing.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::support::*;
use cashback_app::store::{Platform, Shop};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::ShopId;
use cashback_core::money::Currency;
use cashback_test_support::samples::{self, Stage};
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::{router, WebhookState};

/// A shop whose reference is `reference`, the source holding `value` for
/// it, and a delivery for that shop signed with `value`.
async fn forged_delivery(reference: &str, value: &str) -> (StatusCode, serde_json::Value, u64) {
    let store = memory_store();
    let shop = ShopId::parse("forged.myshopify.com").unwrap();
    store
        .create_shop(&Shop {
            shop: shop.clone(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Forged".into(),
            webhook_secret_ref: reference.into(),
            api_key_hash: String::new(),
            guest_id_key: None,
            created_at: now(),
        })
        .await
        .unwrap();
    store
        .put_program(&shop, &program(), 0, now())
        .await
        .unwrap();
    let ctx = Context::new(
        store.clone(),
        Arc::new(KeptNotifier::default()),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([(reference, value)])),
        300,
    ));
    let at = now();
    let router =
        router(WebhookState::new(ctx.clone(), secrets.clone()).with_clock(Arc::new(move || at)));
    let body = samples::shopify_order(Stage::Paid).to_string();
    let headers = with_header(
        &samples::shopify_delivery("orders/paid", &body, value),
        "X-Shopify-Shop-Domain",
        Some(shop.as_str()),
    );
    let before = store.request_counts().writes;
    let world = World {
        store: store.clone(),
        ctx,
        secrets,
        router,
    };
    let (status, json) = send(&world, request("shopify", &headers, body)).await;
    (status, json, store.request_counts().writes - before)
}

#[tokio::test]
async fn a_reference_to_a_variable_everyone_knows_never_verifies_a_forgery() {
    // `env:AWS_REGION` would make "us-east-1" the shop's secret: anyone
    // could sign its deliveries.
    let (status, json, writes) = forged_delivery("env:AWS_REGION", "us-east-1").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{json}");
    assert_eq!(writes, 0);
    // Even a long value is refused while the name is outside the prefix.
    let (status, _, writes) = forged_delivery(
        "env:AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(writes, 0);
}

#[tokio::test]
async fn a_short_secret_is_refused_and_a_proper_one_accepted() {
    let (status, _, writes) = forged_delivery("env:CASHBACK_SECRET_SHORT", "guessable").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(writes, 0);
    let (status, json, _) =
        forged_delivery("env:CASHBACK_SECRET_FORGED", "a-proper-0123456789-secret").await;
    assert_eq!(status, StatusCode::OK, "{json}");
}
