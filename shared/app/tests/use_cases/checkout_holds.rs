//! Holds placed at checkout: they lower what other checkouts can spend, a
//! repeated reserve replaces its own hold, an expired hold frees its
//! balance, parallel checkouts can never hold more than is available, and
//! the paid order turns its checkout's hold into the redemption.

use std::sync::Arc;

use chrono::Duration;

use cashback_app::checkout::validate;
use cashback_app::events::handle_order_event;
use cashback_core::ids::{CheckoutId, Code};
use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent};

use crate::support::*;

const CODE: &str = "CB-ANN0000000001";

async fn world_with_ann(balance: &str) -> World {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", CODE, balance).await;
    world
}

async fn reserve(
    world: &World,
    checkout: &str,
    subtotal: &str,
    at: chrono::DateTime<chrono::Utc>,
    ttl: Option<u32>,
) -> cashback_app::checkout::Validation {
    let request = reserving(validate_request(CODE, Some("ann"), subtotal), checkout, ttl);
    validate(&world.ctx, &shop(), &request, "holds", at)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hold_lowers_what_another_checkout_can_spend() {
    let world = world_with_ann("30.00").await;
    let first = reserve(&world, "chk-a", "20.00", t0(), None).await;
    let hold = first.hold.expect("a hold was placed");
    assert_eq!(hold.amount, usd("20.00"));
    assert_eq!(hold.checkout_id, CheckoutId::parse("chk-a").unwrap());
    assert_eq!(
        hold.expires_at,
        t0() + Duration::seconds(i64::from(program().hold_ttl_seconds))
    );
    let second = reserve(&world, "chk-b", "100.00", t0(), None).await;
    assert_eq!(second.discount, usd("10.00"));
    assert_eq!(second.balance_before, Some(usd("10.00")));
    let third = reserve(&world, "chk-c", "100.00", t0(), None).await;
    assert!(!third.valid, "nothing is left for a third checkout");
    let account = stored_account(&world, "ann").await;
    assert_eq!(account.held(), usd("30.00"));
}

#[tokio::test]
async fn a_repeated_reserve_for_the_same_checkout_replaces_its_hold() {
    let world = world_with_ann("30.00").await;
    reserve(&world, "chk-a", "20.00", t0(), None).await;
    let again = reserve(&world, "chk-a", "25.00", t0() + Duration::seconds(30), None).await;
    assert_eq!(again.discount, usd("25.00"));
    // Its own previous hold was its to re-use.
    assert_eq!(again.balance_before, Some(usd("30.00")));
    let account = stored_account(&world, "ann").await;
    assert_eq!(account.holds.len(), 1);
    assert_eq!(account.held(), usd("25.00"));
}

#[tokio::test]
async fn an_expired_hold_no_longer_counts() {
    let world = world_with_ann("30.00").await;
    reserve(&world, "chk-a", "20.00", t0(), Some(60)).await;
    let later = t0() + Duration::seconds(61);
    let other = reserve(&world, "chk-b", "100.00", later, None).await;
    assert_eq!(other.discount, usd("30.00"));
    let account = stored_account(&world, "ann").await;
    assert_eq!(account.holds.len(), 1, "the expired hold was dropped");
    assert_eq!(
        account.holds[0].checkout_id,
        CheckoutId::parse("chk-b").unwrap()
    );
}

#[tokio::test]
async fn a_hold_lasts_no_longer_than_the_cap() {
    let world = world_with_ann("30.00").await;
    let answer = reserve(&world, "chk-a", "20.00", t0(), Some(7 * 24 * 3600)).await;
    let hold = answer.hold.unwrap();
    assert_eq!(
        hold.expires_at,
        t0() + Duration::seconds(i64::from(cashback_app::checkout::MAX_HOLD_TTL_SECONDS))
    );
}

#[tokio::test]
async fn a_cart_that_no_longer_qualifies_frees_its_checkouts_hold() {
    let mut program = program();
    program.redemption.min_order_subtotal = rust_decimal_macros::dec!(50);
    let world = world(program.clone()).await;
    seed_balance(&world, &program, "ann", CODE, "30.00").await;
    reserve(&world, "chk-a", "60.00", t0(), None).await;
    assert_eq!(stored_account(&world, "ann").await.held(), usd("30.00"));
    let shrunk = reserve(&world, "chk-a", "40.00", t0(), None).await;
    assert!(!shrunk.valid);
    assert_eq!(shrunk.hold, None);
    assert!(stored_account(&world, "ann").await.holds.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_checkouts_never_hold_more_than_is_available() {
    let world = Arc::new(world_with_ann("50.00").await);
    let mut tasks = Vec::new();
    for n in 0..12 {
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            reserve(&world, &format!("chk-{n}"), "20.00", t0(), None).await
        }));
    }
    let mut granted = usd("0.00");
    for task in tasks {
        let answer = task.await.unwrap();
        if let Some(hold) = answer.hold {
            assert_eq!(hold.amount, answer.discount);
            granted = granted.checked_add(hold.amount).unwrap();
        }
    }
    let account = stored_account(&world, "ann").await;
    assert_eq!(account.held(), granted, "every hold answered is stored");
    assert!(account.held().amount() <= account.available.amount());
    // 50.00 at 20.00 a cart: two whole holds and the 10.00 left, nothing more.
    assert_eq!(granted, usd("50.00"));
    assert_eq!(account.holds.len(), 3);
}

#[tokio::test]
async fn the_paid_order_turns_its_checkouts_hold_into_the_redemption() {
    let world = world_with_ann("30.00").await;
    reserve(&world, "chk-a", "100.00", t0(), None).await;
    let mut paid = order("o1", "ann", vec![line("1", "100.00", 1)]);
    paid.checkout_id = Some(CheckoutId::parse("chk-a").unwrap());
    paid.discount_codes = vec![AppliedCode {
        code: Code::parse(CODE).unwrap(),
        amount: usd("30.00"),
        kind: DiscountKind::Order,
    }];
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(paid), t0())
        .await
        .unwrap();
    let account = stored_account(&world, "ann").await;
    assert!(account.holds.is_empty());
    assert_eq!(account.available, usd("0.00"));
    assert_eq!(account.lifetime_used, usd("30.00"));
}
