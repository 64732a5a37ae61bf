//! Cashback coupons named by the cart attribute `cashback_coupon`, through
//! the webhook router: a cashback coupon takes nothing off, so a Shopify
//! storefront cannot send it as a discount code; the attribute credits
//! its cashback, and a balance code typed there charges nobody.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_app::store::CouponRecord;
use cashback_core::coupon::*;
use cashback_core::ids::Code;
use cashback_test_support::samples::{self, shopify_delivery, Stage, DEMO_SECRET};

fn spring5() -> CashbackCoupon {
    CashbackCoupon {
        code: Code::parse("SPRING5").unwrap(),
        display_name: "5% back".into(),
        description: String::new(),
        offer_text: "Get 5% back".into(),
        reward: CouponReward::Percentage {
            percent: rust_decimal::Decimal::from(5),
            max_cashback: rust_decimal::Decimal::ZERO,
        },
        min_cart_value: rust_decimal::Decimal::ZERO,
        usage_limit_total: None,
        usage_limit_per_customer: None,
        payment_methods: Vec::new(),
        starts_at: None,
        ends_at: None,
        status: CouponStatus::Approved,
        stacking: Stacking::Stackable,
    }
}

async fn paid_with_attribute(world: &World, value: &str) -> Value {
    let mut order = samples::shopify_order(Stage::Paid);
    order["note_attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "cashback_coupon", "value": value}));
    let body = order.to_string();
    let headers = shopify_delivery("orders/paid", &body, DEMO_SECRET);
    let (status, answer) = send(world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn a_cashback_coupon_in_the_cart_attribute_credits_its_cashback() {
    let world = Backend::Memory.world().await;
    world
        .store
        .put_coupon(
            &demo_shop(),
            &CouponRecord {
                coupon: spring5(),
                uses: 0,
                created_at: now(),
                updated_at: now(),
            },
            0,
        )
        .await
        .unwrap();
    paid_with_attribute(&world, "spring5").await;
    let maya = account(&world, &shopify_customer()).await.unwrap();
    // 10% of the program (14.17, as without the coupon) + 5% of the same
    // eligible base from the coupon (7.08).
    assert_eq!(maya.pending, usd("21.25"));
}

#[tokio::test]
async fn a_balance_code_in_the_cart_attribute_charges_nobody() {
    let world = Backend::Memory.world().await;
    seed_customer(
        &world,
        "ann",
        "CB-ANN-BALANCE",
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    paid_with_attribute(&world, "cb-ann-balance").await;
    assert_eq!(
        account(&world, "ann").await.unwrap().available,
        usd("30.00")
    );
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.paid_by, None);
    assert_eq!(
        account(&world, &shopify_customer()).await.unwrap().pending,
        usd("14.17"),
        "the order earns as without the attribute"
    );
}

/// The coupon's use count as the store reads it.
async fn spring5_uses(world: &World) -> u32 {
    let code = Code::parse("SPRING5").unwrap();
    world
        .store
        .read(
            &demo_shop(),
            &cashback_app::store::ReadRequest::coupon(&code),
        )
        .await
        .unwrap()
        .coupons[&code]
        .value
        .uses
}

async fn an_unlimited_coupons_use_is_counted_by_the_feed_once_and_given_back_once(
    backend: Backend,
) {
    let (world, feed) = backend.world_with_reports().await;
    world
        .store
        .put_coupon(
            &demo_shop(),
            &CouponRecord {
                coupon: spring5(),
                uses: 0,
                created_at: now(),
                updated_at: now(),
            },
            0,
        )
        .await
        .unwrap();
    paid_with_attribute(&world, "spring5").await;
    assert_eq!(
        spring5_uses(&world).await,
        0,
        "not in the order's transaction"
    );
    feed.catch_up().await;
    feed.catch_up().await;
    paid_with_attribute(&world, "spring5").await;
    feed.catch_up().await;
    assert_eq!(spring5_uses(&world).await, 1, "counted once");
    let (status, _) = deliver(&world, "shopify-orders-cancelled.json").await;
    assert_eq!(status, StatusCode::OK);
    feed.catch_up().await;
    feed.catch_up().await;
    assert_eq!(spring5_uses(&world).await, 0, "given back once");
}

mod memory {
    #[tokio::test]
    async fn an_unlimited_coupons_use_is_counted_by_the_feed_once_and_given_back_once() {
        super::an_unlimited_coupons_use_is_counted_by_the_feed_once_and_given_back_once(
            super::Backend::Memory,
        )
        .await;
    }
}

mod dynamodb {
    #[tokio::test]
    async fn an_unlimited_coupons_use_is_counted_by_the_feed_once_and_given_back_once() {
        if crate::support::moto_configured("an_unlimited_coupons_use_is_counted") {
            super::an_unlimited_coupons_use_is_counted_by_the_feed_once_and_given_back_once(
                super::Backend::Dynamo,
            )
            .await;
        }
    }
}
