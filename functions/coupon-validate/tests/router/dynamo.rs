//! A sample of the router tests on DynamoDB (moto): the same answers and
//! the same round trips as on the in-memory store. Skipped without
//! `MOTO_ENDPOINT`, unless `REQUIRE_MOTO=1`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use cashback_app::checkout::GUESS_LIMIT;
use cashback_app::store::{ReadRequest, Store};
use cashback_core::ids::CustomerId;
use coupon_validate::router;

use crate::support::*;
use cashback_test_support::moto;

async fn dynamo_context(
    test: &str,
) -> Option<(Arc<cashback_store::DynamoStore>, cashback_app::Context)> {
    let store = Arc::new(moto::fresh_store(test).await?);
    let ctx = seed(store.clone(), "30.00").await;
    // Warm the shop, program and key caches, as a warm container has them
    // (the key's last use is then recorded for the next few minutes).
    let now = chrono::Utc::now();
    let known = ctx.shop_program(&shop(), now).await.unwrap().shop;
    cashback_app::api_keys::authenticate(
        &ctx,
        &known,
        Some(API_KEY),
        cashback_app::store::KeyScope::Checkout,
        now,
    )
    .await
    .unwrap();
    Some((store, ctx))
}

#[tokio::test]
async fn on_dynamodb_a_validation_with_the_customer_id_costs_one_read() {
    let Some((store, ctx)) = dynamo_context("validate_one_read").await else {
        return;
    };
    let before = store.request_counts();
    let (status, _, json) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body(ANN_CODE, Some("ann"), "100.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["discount"]["amount"], "30.00");
    let after = store.request_counts();
    assert_eq!(after.total() - before.total(), 1);
}

#[tokio::test]
async fn on_dynamodb_a_reserve_adds_one_write_and_a_repeat_replaces_the_hold() {
    let Some((store, ctx)) = dynamo_context("validate_reserve").await else {
        return;
    };
    // A guest checkout that knows the owner's email (the code is the
    // owner's alone: a request naming nobody is refused).
    let mut request = body(ANN_CODE, None, "25.00");
    request["email"] = json!(ANN_EMAIL);
    request["reserve"] = json!({"checkout_id": "chk-1"});
    let before = store.request_counts();
    let (status, _, first) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["hold"]["amount"]["amount"], "25.00");
    let after = store.request_counts();
    // Without the customer id: two reads, then the one write.
    assert_eq!(
        (after.reads - before.reads, after.writes - before.writes),
        (2, 1)
    );
    request["cart"]["subtotal"] = json!("28.00");
    request["cart"]["lines"][0]["unit_price"] = json!("28.00");
    let (_, _, second) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(second["hold"]["amount"]["amount"], "28.00");
    let ann = CustomerId::parse("ann").unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let account = &read.accounts[&ann].value;
    assert_eq!(account.holds.len(), 1);
    assert_eq!(account.held(), usd("28.00"));
}

#[tokio::test]
async fn on_dynamodb_parallel_checkouts_never_hold_more_than_is_available() {
    let Some((store, ctx)) = dynamo_context("validate_parallel").await else {
        return;
    };
    let mut tasks = Vec::new();
    for n in 0..4 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = body(ANN_CODE, Some("ann"), "20.00");
            request["reserve"] = json!({"checkout_id": format!("chk-{n}")});
            send(
                router(ctx),
                post(
                    &validate_uri("demo.myshopify.com"),
                    Some(API_KEY),
                    request.to_string(),
                ),
            )
            .await
        }));
    }
    let mut granted = rust_decimal::Decimal::ZERO;
    for task in tasks {
        let (status, _, json) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        if let Some(amount) = json["hold"]["amount"]["amount"].as_str() {
            granted += amount.parse::<rust_decimal::Decimal>().unwrap();
        }
    }
    let ann = CustomerId::parse("ann").unwrap();
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let account = &read.accounts[&ann].value;
    assert_eq!(account.held().amount(), granted);
    assert_eq!(granted, rust_decimal_macros::dec!(30));
}

#[tokio::test]
async fn on_dynamodb_repeated_unknown_codes_get_429() {
    let Some((_, ctx)) = dynamo_context("validate_guessing").await else {
        return;
    };
    let guess = |n: u64| {
        let mut request = body(&format!("CB-GUESS{n}"), None, "25.00");
        request["caller"] = json!("dynamo-guesser");
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        )
    };
    for n in 0..GUESS_LIMIT {
        let (status, _, _) = send(router(ctx.clone()), guess(n)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, response, _) = send(router(ctx), guess(99)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn on_dynamodb_the_largest_validation_is_one_batch_get_and_a_larger_one_none() {
    let Some((store, ctx)) = dynamo_context("validate_bounded_reads").await else {
        return;
    };
    let with_discounts = |count: usize| {
        let mut request = body(ANN_CODE, Some("ann"), "25.00");
        request["cart"]["other_discounts"] = (0..count)
            .map(|n| json!({"kind": "order", "amount": "0.01", "code": format!("c{n}")}))
            .collect();
        request.to_string()
    };
    let before = store.request_counts();
    let (status, _, json) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            with_discounts(cashback_app::checkout::MAX_OTHER_DISCOUNTS),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(store.request_counts().reads - before.reads, 1);
    let before = store.request_counts();
    let (status, _, _) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            with_discounts(5000),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(store.request_counts().total() - before.total(), 0);
}
