//! A balance code is its owner's: through the router, a checkout that names
//! nobody, or someone else, gets no quote of the owner's balance and places
//! no hold on it, unless the program lets anyone spend the code.

use axum::http::StatusCode;
use serde_json::{json, Value};

use cashback_app::store::ReadRequest;
use cashback_core::ids::CustomerId;
use coupon_validate::router;

use crate::support::*;

async fn validate(ctx: &cashback_app::Context, request: Value) -> Value {
    let (status, _, json) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

async fn anns_holds(ctx: &cashback_app::Context) -> usize {
    let ann = CustomerId::parse("ann").unwrap();
    let read = ctx
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![ann.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts[&ann].value.holds.len()
}

#[tokio::test]
async fn a_stranger_naming_nobody_gets_no_quote_and_no_hold_on_someones_code() {
    let ctx = memory_context("30.00").await;
    let mut request = body(ANN_CODE, None, "25.00");
    request["reserve"] = json!({"checkout_id": "chk-stranger"});
    let json = validate(&ctx, request).await;
    assert_eq!(json["valid"], false);
    assert_eq!(json["refusal"], json!({"reason": "customer_required"}));
    assert_eq!(json["discount"]["amount"], "0.00");
    assert_eq!(
        json["balance_before"],
        Value::Null,
        "the balance is not shown"
    );
    assert_eq!(json["hold"], Value::Null);
    assert_eq!(anns_holds(&ctx).await, 0);
}

#[tokio::test]
async fn another_customer_or_another_email_is_refused() {
    let ctx = memory_context("30.00").await;
    let json = validate(&ctx, body(ANN_CODE, Some("bob"), "25.00")).await;
    assert_eq!(json["refusal"]["reason"], "other_customer");
    let mut request = body(ANN_CODE, None, "25.00");
    request["email"] = json!("bob@example.com");
    request["reserve"] = json!({"checkout_id": "chk-bob"});
    let json = validate(&ctx, request).await;
    assert_eq!(json["refusal"]["reason"], "other_customer");
    assert_eq!(json["hold"], Value::Null);
    assert_eq!(anns_holds(&ctx).await, 0);
}

#[tokio::test]
async fn the_owners_email_is_enough_for_a_guest_checkout() {
    let ctx = memory_context("30.00").await;
    let mut request = body(ANN_CODE, None, "25.00");
    request["email"] = json!("ANN@example.com");
    let json = validate(&ctx, request).await;
    assert_eq!(json["valid"], true, "{json}");
    assert_eq!(json["discount"]["amount"], "25.00");
}
