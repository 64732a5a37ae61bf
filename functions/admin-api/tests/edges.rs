//! Inputs a caller controls: a secret reference outside the secret prefix
//! at onboarding (refused, nothing created), and page cursors that are not
//! ones the API returned, on DynamoDB through moto (a 400 naming the
//! `cursor` field, now from a typed store error instead of a message match).

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_store::MemoryStore;

use cashback_test_support::moto;
use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

#[tokio::test]
async fn onboarding_refuses_an_env_reference_outside_the_secret_prefix() {
    let ctx = seed(Arc::new(MemoryStore::new())).await;
    for reference in [
        "env:AWS_SECRET_ACCESS_KEY",
        "env:AWS_REGION",
        "env:CASHBACK_LINK_SECRET",
    ] {
        let body = format!(
            r#"{{"shop":"fresh.myshopify.com","platform":"shopify","name":"Fresh","currency":"USD","webhook_secret_ref":"{reference}"}}"#
        );
        let answer = send(app(&ctx), request("POST", "/v1/shops", Some(&body), &[])).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{reference}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "invalid_fields");
        let fields = answer.json["error"]["fields"].to_string();
        assert!(fields.contains("webhook_secret_ref"), "{fields}");
        assert!(fields.contains("CASHBACK_SECRET_"), "{fields}");
    }
    let fresh = cashback_core::ids::ShopId::parse("fresh.myshopify.com").unwrap();
    assert!(ctx.store.get_shop(&fresh).await.unwrap().is_none());
}

#[tokio::test]
async fn on_dynamodb_a_malformed_cursor_is_400_not_500() {
    let Some(store) = moto::fresh_store("admin_api_cursor").await else {
        return;
    };
    let ctx = seed(Arc::new(store)).await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    pay(&ctx, "o-2", "bob", "40.00").await;
    pay(&ctx, "o-3", "ann", "60.00").await;
    let ledger = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers/ann/ledger?limit=1"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(ledger.status, StatusCode::OK);
    let ann_cursor = ledger.json["next_cursor"].as_str().unwrap().to_string();

    for (what, uri) in [
        (
            "not base64",
            format!("{BASE}/customers/ann/ledger?cursor=%25%25%25"),
        ),
        (
            "base64, not JSON",
            format!("{BASE}/customers/ann/ledger?cursor=bm90IGpzb24"),
        ),
        (
            "another customer's",
            format!("{BASE}/customers/bob/ledger?cursor={}", encode(&ann_cursor)),
        ),
        ("coupons", format!("{BASE}/coupons?cursor=zzz")),
        ("profiles", format!("{BASE}/profiles?cursor=e30")),
    ] {
        let answer = send(app(&ctx), request("GET", &uri, None, &[])).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.json
        );
        assert_eq!(answer.json["error"]["code"], "invalid_fields", "{what}");
        assert_eq!(
            answer.json["error"]["fields"][0]["field"], "cursor",
            "{what}"
        );
    }
}
