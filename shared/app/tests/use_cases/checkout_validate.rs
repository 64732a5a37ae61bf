//! Checkout validation through the use case on the in-memory store: every
//! refusal reason with its figure, both kinds of code, the cashback preview,
//! the round-trip budget of DESIGN section 7, and the limit on guessing.

use chrono::Duration;
use rust_decimal_macros::dec;
use serde_json::json;

use cashback_app::checkout::{validate, CodeKind, Refusal, GUESS_LIMIT, GUESS_WINDOW_SECONDS};
use cashback_app::store::Store;
use cashback_app::AppError;
use cashback_core::coupon::{CouponRefusal, CouponStatus, Stacking};
use cashback_core::ids::Email;
use cashback_core::order::DiscountKind;
use cashback_core::program::Tier;
use cashback_core::redeem::CodeRefusal;

use crate::support::*;

const CODE: &str = "CB-ANN0000000001";

async fn world_with_ann(program: cashback_core::program::Program, balance: &str) -> World {
    let world = world(program.clone()).await;
    seed_balance(&world, &program, "ann", CODE, balance).await;
    world
}

/// The request with Ann's email, as a guest checkout that knows it sends it.
fn by_email(
    mut request: cashback_app::checkout::ValidateRequest,
) -> cashback_app::checkout::ValidateRequest {
    request.email = Some(Email::parse("ann@example.com").unwrap());
    request
}

/// Validates with a caller of its own, so no test shares a rate-limit count.
async fn check(
    world: &World,
    request: &cashback_app::checkout::ValidateRequest,
    caller: &str,
) -> cashback_app::checkout::Validation {
    validate(&world.ctx, &shop(), request, caller, t0())
        .await
        .unwrap()
}

fn code_refusal(validation: &cashback_app::checkout::Validation) -> CodeRefusal {
    match validation.refusal.clone() {
        Some(Refusal::Code(refusal)) => refusal,
        other => panic!("expected a code refusal, got {other:?}"),
    }
}

fn coupon_refusal(validation: &cashback_app::checkout::Validation) -> CouponRefusal {
    match validation.refusal.clone() {
        Some(Refusal::Coupon(refusal)) => refusal,
        other => panic!("expected a coupon refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_balance_code_takes_what_the_balance_covers_and_previews_the_cashback_on_the_rest() {
    let world = world_with_ann(program(), "30.00").await;
    let answer = check(
        &world,
        &validate_request("cb-ann0000000001", Some("ann"), "100.00"),
        "t1",
    )
    .await;
    assert!(answer.valid);
    assert_eq!(answer.kind, Some(CodeKind::CustomerBalance));
    assert_eq!(answer.discount, usd("30.00"));
    assert_eq!(answer.balance_before, Some(usd("30.00")));
    assert_eq!(answer.balance_after, Some(usd("0.00")));
    // 10% of what is left to pay: the code's own discount leaves the base.
    assert_eq!(answer.cashback.program, usd("7.00"));
    assert_eq!(answer.cashback.total, usd("7.00"));
    assert_eq!(answer.hold, None);
}

#[tokio::test]
async fn the_customers_tier_sets_the_rate_of_the_preview() {
    let mut program = program();
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(0),
        percent: dec!(20),
    }];
    let world = world_with_ann(program, "10.00").await;
    let answer = check(&world, &validate_request(CODE, Some("ann"), "110.00"), "t2").await;
    assert_eq!(answer.cashback.program, usd("20.00"));
}

#[tokio::test]
async fn an_unknown_code_is_refused_without_a_kind() {
    let world = world_with_ann(program(), "10.00").await;
    let answer = check(
        &world,
        &validate_request("CB-NOPE", Some("ann"), "50.00"),
        "t3",
    )
    .await;
    assert!(!answer.valid);
    assert_eq!(answer.kind, None);
    assert_eq!(code_refusal(&answer), CodeRefusal::UnknownCode);
    assert_eq!(answer.discount, usd("0.00"));
    // The order still earns from the program.
    assert_eq!(answer.cashback.total, usd("5.00"));
}

#[tokio::test]
async fn a_string_that_cannot_be_a_code_is_an_unknown_code() {
    let world = world_with_ann(program(), "10.00").await;
    let answer = check(
        &world,
        &validate_request("no such code!", None, "50.00"),
        "t4",
    )
    .await;
    assert_eq!(code_refusal(&answer), CodeRefusal::UnknownCode);
}

#[tokio::test]
async fn another_customers_code_is_refused_and_reveals_nothing_of_their_balance() {
    let world = world_with_ann(program(), "40.00").await;
    let answer = check(&world, &validate_request(CODE, Some("bob"), "100.00"), "t5").await;
    assert!(!answer.valid);
    assert_eq!(answer.kind, Some(CodeKind::CustomerBalance));
    assert_eq!(code_refusal(&answer), CodeRefusal::OtherCustomer);
    assert_eq!(answer.balance_before, None);
    assert_eq!(answer.balance_after, None);
}

#[tokio::test]
async fn a_cart_below_the_minimum_subtotal_is_refused_with_the_minimum() {
    let mut program = program();
    program.redemption.min_order_subtotal = dec!(50);
    let world = world_with_ann(program, "10.00").await;
    let answer = check(&world, &validate_request(CODE, Some("ann"), "40.00"), "t6").await;
    assert_eq!(
        code_refusal(&answer),
        CodeRefusal::BelowMinimumSubtotal {
            minimum: usd("50.00"),
            subtotal: usd("40.00"),
        }
    );
    assert_eq!(
        answer.message.as_deref(),
        Some("minimum subtotal 50.00 USD")
    );
    let wire = serde_json::to_value(&answer).unwrap();
    assert_eq!(wire["refusal"]["reason"], "below_minimum_subtotal");
    assert_eq!(
        wire["refusal"]["minimum"],
        json!({"amount": "50.00", "currency": "USD"})
    );
    assert_eq!(wire["valid"], false);
    assert_eq!(wire["kind"], "customer_balance");
}

#[tokio::test]
async fn a_balance_below_the_minimum_balance_is_refused_with_both_figures() {
    let mut program = program();
    program.redemption.min_balance = dec!(5);
    let world = world_with_ann(program, "4.99").await;
    let answer = check(&world, &validate_request(CODE, Some("ann"), "40.00"), "t7").await;
    assert_eq!(
        code_refusal(&answer),
        CodeRefusal::BelowMinimumBalance {
            minimum: usd("5.00"),
            balance: usd("4.99"),
        }
    );
    assert_eq!(answer.balance_before, Some(usd("4.99")));
}

#[tokio::test]
async fn an_empty_balance_is_refused() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", CODE, "1.00").await;
    // Spend it all through a merchant debit.
    let mut account = stored_account(&world, "ann").await;
    let applied = account
        .adjust(usd("-1.00"), "spent", "debit", &program(), t0())
        .unwrap();
    world
        .store
        .write(
            &shop(),
            cashback_app::store::WriteSet {
                accounts: vec![cashback_app::store::AccountWrite {
                    account,
                    expected_version: 1,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let answer = check(&world, &validate_request(CODE, Some("ann"), "40.00"), "t8").await;
    assert_eq!(code_refusal(&answer), CodeRefusal::NoBalance);
}

#[tokio::test]
async fn a_discount_of_a_kind_the_program_does_not_combine_with_is_refused_with_the_kind() {
    let world = world_with_ann(program(), "10.00").await;
    let mut request = validate_request(CODE, Some("ann"), "90.00");
    request.cart.other_discounts = vec![cashback_app::checkout::DiscountInput {
        kind: DiscountKind::Order,
        amount: "10.00".into(),
        code: None,
    }];
    let answer = check(&world, &request, "t9").await;
    assert_eq!(
        code_refusal(&answer),
        CodeRefusal::NotCombinable {
            kind: DiscountKind::Order
        }
    );
}

#[tokio::test]
async fn a_cart_in_another_currency_is_refused_for_either_kind_of_code() {
    let world = world_with_ann(program(), "10.00").await;
    seed_coupon(&world, coupon("BACK10", dec!(10)), 0).await;
    let mut request = validate_request(CODE, Some("ann"), "90.00");
    request.currency = cashback_core::money::Currency::EUR;
    let answer = check(&world, &request, "t10").await;
    assert_eq!(
        code_refusal(&answer),
        CodeRefusal::CurrencyMismatch {
            cart: "EUR".into(),
            balance: "USD".into()
        }
    );
    request.code = "back10".into();
    let answer = check(&world, &request, "t10").await;
    assert_eq!(
        coupon_refusal(&answer),
        CouponRefusal::CurrencyMismatch {
            cart: "EUR".into(),
            shop: "USD".into()
        }
    );
}

#[tokio::test]
async fn a_cashback_coupon_takes_nothing_off_and_adds_its_cashback_to_the_programs() {
    let world = world(program()).await;
    seed_coupon(&world, coupon("BACK10", dec!(10)), 0).await;
    let answer = check(&world, &validate_request("Back10", None, "80.00"), "t11").await;
    assert!(answer.valid);
    assert_eq!(answer.kind, Some(CodeKind::CashbackCoupon));
    assert_eq!(answer.discount, usd("0.00"));
    assert_eq!(answer.cashback.program, usd("8.00"));
    assert_eq!(answer.cashback.coupon, usd("8.00"));
    assert_eq!(answer.cashback.total, usd("16.00"));
    assert_eq!(answer.balance_before, None);
    assert_eq!(
        answer.coupon.map(|c| c.display_name),
        Some("10% back".to_string())
    );
}

#[tokio::test]
async fn every_coupon_refusal_reaches_the_checkout_with_its_figure() {
    let world = world(program()).await;
    let later = t0() + Duration::days(1);
    let mut draft = coupon("DRAFT", dec!(10));
    draft.status = CouponStatus::Draft;
    let mut soon = coupon("SOON", dec!(10));
    soon.starts_at = Some(later);
    let mut over = coupon("OVER", dec!(10));
    over.ends_at = Some(t0());
    let mut big = coupon("BIG", dec!(10));
    big.min_cart_value = dec!(100);
    let mut popular = coupon("POPULAR", dec!(10));
    popular.usage_limit_total = Some(3);
    let mut once = coupon("ONCE", dec!(10));
    once.usage_limit_per_customer = Some(1);
    let mut card = coupon("CARD", dec!(10));
    card.payment_methods = vec!["shopify_payments".into()];
    let mut alone = coupon("ALONE", dec!(10));
    alone.stacking = Stacking::Exclusive;
    let friend = {
        let mut c = coupon("FRIEND", dec!(5));
        c.stacking = Stacking::Stackable;
        c
    };
    for c in [draft, soon, over, big, once.clone(), card, alone, friend] {
        seed_coupon(&world, c, 0).await;
    }
    seed_coupon(&world, popular, 3).await;
    // Ann has used ONCE already: the store counts it by customer.
    world
        .store
        .write(
            &shop(),
            cashback_app::store::WriteSet {
                coupon_uses: vec![cashback_app::store::CouponUseChange {
                    code: once.code.clone(),
                    customer: cashback_core::ids::CustomerId::parse("ann").unwrap(),
                    email: None,
                    delta: 1,
                    limit_total: None,
                    limit_per_customer: None,
                    order: None,
                    shard: None,
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let world = &world;
    let refusal = |code: &str, customer: Option<&str>| {
        let request = validate_request(code, customer, "50.00");
        async move { coupon_refusal(&check(world, &request, "t12").await) }
    };
    assert_eq!(refusal("DRAFT", None).await, CouponRefusal::NotActive);
    assert_eq!(
        refusal("SOON", None).await,
        CouponRefusal::NotStarted { starts_at: later }
    );
    assert_eq!(
        refusal("OVER", None).await,
        CouponRefusal::Ended { ended_at: t0() }
    );
    assert_eq!(
        refusal("BIG", None).await,
        CouponRefusal::BelowMinimumCart {
            minimum: usd("100.00")
        }
    );
    assert_eq!(
        refusal("POPULAR", None).await,
        CouponRefusal::UsageLimitReached { limit: 3 }
    );
    assert_eq!(
        refusal("ONCE", Some("ann")).await,
        CouponRefusal::CustomerLimitReached { limit: 1 }
    );
    assert_eq!(
        refusal("CARD", None).await,
        CouponRefusal::PaymentMethodNotAllowed {
            allowed: vec!["shopify_payments".into()]
        }
    );
    // An exclusive coupon beside another cashback coupon on the cart.
    let mut crowded = validate_request("ALONE", None, "50.00");
    crowded.cart.other_discounts = vec![cashback_app::checkout::DiscountInput {
        kind: DiscountKind::Order,
        amount: "0.00".into(),
        code: Some(cashback_core::ids::Code::parse("FRIEND").unwrap()),
    }];
    assert_eq!(
        coupon_refusal(&check(world, &crowded, "t12").await),
        CouponRefusal::NotCombinable
    );
    // Exclusive means with no other code: an ordinary discount code too.
    let mut with_code = validate_request("ALONE", None, "50.00");
    with_code.cart.other_discounts = vec![cashback_app::checkout::DiscountInput {
        kind: DiscountKind::Order,
        amount: "5.00".into(),
        code: Some(cashback_core::ids::Code::parse("SAVE5").unwrap()),
    }];
    assert_eq!(
        coupon_refusal(&check(world, &with_code, "t12").await),
        CouponRefusal::NotCombinable
    );
    // An automatic discount has no code and is no company.
    with_code.cart.other_discounts[0].code = None;
    assert!(check(world, &with_code, "t12").await.valid);
    // A limited coupon still works for a shopper nobody knows yet.
    let anonymous = check(world, &validate_request("ONCE", None, "50.00"), "t12").await;
    assert!(anonymous.valid);
}

#[tokio::test]
async fn with_the_customer_id_a_validation_costs_one_read_and_nothing_else() {
    let world = world_with_ann(program(), "10.00").await;
    seed_coupon(&world, coupon("BACK10", dec!(10)), 0).await;
    // Warm the shop and program cache as a warm container has it.
    world.ctx.shop_program(&shop(), t0()).await.unwrap();
    for code in [CODE, "BACK10"] {
        let before = world.store.request_counts();
        check(&world, &validate_request(code, Some("ann"), "50.00"), "t13").await;
        let after = world.store.request_counts();
        assert_eq!(after.reads - before.reads, 1, "{code}");
        assert_eq!(after.total() - before.total(), 1, "{code}");
    }
}

#[tokio::test]
async fn without_the_customer_id_a_balance_code_costs_two_reads() {
    let world = world_with_ann(program(), "10.00").await;
    world.ctx.shop_program(&shop(), t0()).await.unwrap();
    let before = world.store.request_counts();
    let answer = check(
        &world,
        &by_email(validate_request(CODE, None, "50.00")),
        "t14",
    )
    .await;
    assert!(answer.valid);
    let after = world.store.request_counts();
    assert_eq!(after.reads - before.reads, 2);
    assert_eq!(after.total() - before.total(), 2);
}

#[tokio::test]
async fn a_reserve_adds_exactly_one_write() {
    let world = world_with_ann(program(), "10.00").await;
    world.ctx.shop_program(&shop(), t0()).await.unwrap();
    for (customer, caller) in [(Some("ann"), "t15a"), (None, "t15b")] {
        let before = world.store.request_counts();
        let answer = check(
            &world,
            &reserving(
                by_email(validate_request(CODE, customer, "50.00")),
                "chk-1",
                None,
            ),
            caller,
        )
        .await;
        assert!(answer.hold.is_some());
        let after = world.store.request_counts();
        assert_eq!(after.writes - before.writes, 1);
        let reads = if customer.is_some() { 1 } else { 2 };
        assert_eq!(after.reads - before.reads, reads);
        assert_eq!(after.total() - before.total(), reads + 1);
    }
}

#[tokio::test]
async fn malformed_amounts_are_refused_by_field() {
    let world = world(program()).await;
    let mut request = validate_request(CODE, None, "50.00");
    request.cart.subtotal = "fifty".into();
    match validate(&world.ctx, &shop(), &request, "t16", t0()).await {
        Err(AppError::InvalidFields(fields)) => assert_eq!(fields[0].field, "cart.subtotal"),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[tokio::test]
async fn repeated_unknown_codes_from_one_caller_get_429_until_the_window_ends() {
    let world = world_with_ann(program(), "10.00").await;
    let guess = |n: u64| validate_request(&format!("CB-GUESS{n}"), None, "50.00");
    for n in 0..GUESS_LIMIT {
        let answer = validate(&world.ctx, &shop(), &guess(n), "guesser", t0())
            .await
            .unwrap();
        assert_eq!(code_refusal(&answer), CodeRefusal::UnknownCode);
    }
    let refused = validate(&world.ctx, &shop(), &guess(99), "guesser", t0()).await;
    let Err(AppError::RateLimited {
        retry_after_seconds,
    }) = refused
    else {
        panic!("expected 429, got {refused:?}");
    };
    assert!(retry_after_seconds > 0 && retry_after_seconds <= GUESS_WINDOW_SECONDS as u64);
    // A blocked caller learns nothing more, not even from a real code.
    let real = validate(
        &world.ctx,
        &shop(),
        &validate_request(CODE, None, "50.00"),
        "guesser",
        t0(),
    )
    .await;
    assert!(matches!(real, Err(AppError::RateLimited { .. })));
    // Others are not affected, and the next window starts afresh.
    assert!(
        validate(&world.ctx, &shop(), &guess(1), "someone else", t0())
            .await
            .is_ok()
    );
    let next_window = t0() + Duration::seconds(GUESS_WINDOW_SECONDS);
    assert!(
        validate(&world.ctx, &shop(), &guess(1), "guesser", next_window)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn honest_validations_never_touch_the_guess_counter() {
    let world = world_with_ann(program(), "10.00").await;
    world.ctx.shop_program(&shop(), t0()).await.unwrap();
    let before = world.store.request_counts();
    for _ in 0..(GUESS_LIMIT * 2) {
        let answer = check(
            &world,
            &validate_request(CODE, Some("ann"), "50.00"),
            "honest",
        )
        .await;
        assert!(answer.valid);
    }
    let after = world.store.request_counts();
    assert_eq!(after.other, before.other);
}

#[tokio::test]
async fn a_balance_code_without_a_customer_id_or_email_is_refused_with_its_reason() {
    let world = world_with_ann(program(), "10.00").await;
    let answer = check(&world, &validate_request(CODE, None, "50.00"), "t40").await;
    assert!(!answer.valid);
    assert_eq!(
        answer.refusal,
        Some(Refusal::Code(CodeRefusal::CustomerRequired))
    );
    assert_eq!(answer.discount, usd("0.00"));
    assert_eq!(answer.balance_before, None, "nothing of the balance shown");
    assert!(stored_account(&world, "ann").await.holds.is_empty());
}

#[tokio::test]
async fn another_customer_or_another_email_cannot_use_an_owner_only_code() {
    let world = world_with_ann(program(), "10.00").await;
    let answer = check(&world, &validate_request(CODE, Some("bob"), "50.00"), "t41").await;
    assert_eq!(
        answer.refusal,
        Some(Refusal::Code(CodeRefusal::OtherCustomer))
    );
    let mut request = validate_request(CODE, None, "50.00");
    request.email = Some(Email::parse("bob@example.com").unwrap());
    let answer = check(&world, &reserving(request, "chk-9", None), "t42").await;
    assert_eq!(
        answer.refusal,
        Some(Refusal::Code(CodeRefusal::OtherCustomer))
    );
    assert!(stored_account(&world, "ann").await.holds.is_empty());
}

#[tokio::test]
async fn when_anyone_may_use_the_code_a_stranger_spends_the_owners_balance() {
    let mut gift = program();
    gift.redemption.usable_by = cashback_core::program::CodeUsers::Anyone;
    let world = world_with_ann(gift, "10.00").await;
    let answer = check(
        &world,
        &reserving(validate_request(CODE, Some("bob"), "50.00"), "chk-1", None),
        "t43",
    )
    .await;
    assert!(answer.valid, "{answer:?}");
    assert_eq!(answer.discount, usd("10.00"));
    assert_eq!(stored_account(&world, "ann").await.held(), usd("10.00"));
}
