//! Cashback coupons through the admin use cases: created here, they
//! validate at checkout and are credited on the order; codes are unique
//! per shop whatever their case; usage counts are visible.

use crate::support::*;
use cashback_app::admin;
use cashback_app::checkout::validate;
use cashback_app::events::handle_order_event;
use cashback_app::store::Store;
use cashback_app::AppError;
use cashback_core::coupon::CouponStatus;
use cashback_core::ids::{Code, CustomerId};
use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent};
use rust_decimal_macros::dec;

const SUMMER: &str = r#"{"code": "Summer-10", "display_name": "10% back",
    "offer_text": "10% back in cashback, up to 20.00",
    "reward": {"type": "percentage", "percent": "10", "max_cashback": "20.00"},
    "min_cart_value": "30.00", "usage_limit_per_customer": 1}"#;

fn summer() -> Code {
    Code::parse("summer-10").unwrap()
}

#[tokio::test]
async fn a_coupon_created_here_validates_at_checkout_once_approved_and_is_credited() {
    let world = world(program()).await;
    let created = admin::create_coupon(&world.ctx, &shop(), SUMMER, t0())
        .await
        .unwrap();
    assert_eq!(created.coupon.status, CouponStatus::Draft);
    assert_eq!(created.uses, 0);
    // A draft does not work at checkout.
    let draft = validate(
        &world.ctx,
        &shop(),
        &validate_request("SUMMER-10", Some("ann"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(!draft.valid);
    admin::set_coupon_status(&world.ctx, &shop(), &summer(), CouponStatus::Approved, t0())
        .await
        .unwrap();
    let approved = validate(
        &world.ctx,
        &shop(),
        &validate_request("summer-10", Some("ann"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(approved.valid, "{approved:?}");
    assert_eq!(approved.cashback.coupon, usd("10.00"));
    assert_eq!(
        approved.discount,
        usd("0.00"),
        "a cashback coupon takes nothing off"
    );

    // The order that used it earns the coupon's cashback besides the program's.
    let mut placed = order("o-1", "ann", vec![line("1", "100.00", 1)]);
    placed.discount_codes = vec![AppliedCode {
        code: summer(),
        amount: usd("0.00"),
        kind: DiscountKind::Order,
    }];
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed), t0())
        .await
        .unwrap();
    let ann = admin::get_customer(&world.ctx, &shop(), &CustomerId::parse("ann").unwrap())
        .await
        .unwrap();
    assert_eq!(ann.pending, dec!(20.00), "10.00 program + 10.00 coupon");
    // A coupon with no total limit is counted off the order's write: the
    // change feed adds the use, once, seconds later.
    let before = admin::get_coupon(&world.ctx, &shop(), &summer())
        .await
        .unwrap();
    assert_eq!(before.uses, 0, "not in the order's transaction");
    world.store.aggregate_reports().await.unwrap();
    world.store.aggregate_reports().await.unwrap();
    let used = admin::get_coupon(&world.ctx, &shop(), &summer())
        .await
        .unwrap();
    assert_eq!(used.uses, 1, "the use count is visible");
    // Pausing keeps the count and stops the coupon.
    let paused =
        admin::set_coupon_status(&world.ctx, &shop(), &summer(), CouponStatus::Paused, t0())
            .await
            .unwrap();
    assert_eq!(
        (paused.coupon.status, paused.uses),
        (CouponStatus::Paused, 1)
    );
    let refused = validate(
        &world.ctx,
        &shop(),
        &validate_request("summer-10", Some("bob"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(!refused.valid);
}

#[tokio::test]
async fn coupon_codes_are_unique_per_shop_whatever_their_case() {
    let world = world(program()).await;
    admin::create_coupon(&world.ctx, &shop(), SUMMER, t0())
        .await
        .unwrap();
    let again = SUMMER.replace("Summer-10", "SUMMER-10");
    let error = admin::create_coupon(&world.ctx, &shop(), &again, t0())
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::Conflict(_)), "{error:?}");
    // Nor may a coupon take a customer's own code.
    seed_balance(&world, &program(), "ann", "CB-ANN", "5.00").await;
    let theirs = SUMMER.replace("Summer-10", "cb-ann");
    let error = admin::create_coupon(&world.ctx, &shop(), &theirs, t0())
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::Conflict(_)), "{error:?}");
}

#[tokio::test]
async fn coupon_fields_are_validated_by_name_and_the_code_cannot_be_renamed() {
    let world = world(program()).await;
    let bad = r#"{"code": "x", "display_name": "",
        "reward": {"type": "percentage", "percent": "150"},
        "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}"#;
    match admin::create_coupon(&world.ctx, &shop(), bad, t0()).await {
        Err(AppError::InvalidFields(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["display_name", "reward.percent", "ends_at"]);
        }
        other => panic!("{other:?}"),
    }
    admin::create_coupon(&world.ctx, &shop(), SUMMER, t0())
        .await
        .unwrap();
    let renamed = SUMMER.replace("Summer-10", "winter");
    match admin::update_coupon(&world.ctx, &shop(), &summer(), &renamed, None, t0()).await {
        Err(AppError::InvalidFields(fields)) => assert_eq!(fields[0].field, "code"),
        other => panic!("{other:?}"),
    }
    let edited = SUMMER.replace("\"10% back\"", "\"Ten back\"");
    let updated = admin::update_coupon(&world.ctx, &shop(), &summer(), &edited, Some(1), t0())
        .await
        .unwrap();
    assert_eq!(
        (updated.version, updated.coupon.display_name.as_str()),
        (2, "Ten back")
    );
    let stale = admin::update_coupon(&world.ctx, &shop(), &summer(), &edited, Some(1), t0())
        .await
        .unwrap_err();
    assert!(matches!(stale, AppError::Conflict(_)));
    let page = admin::list_coupons(&world.ctx, &shop(), None, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

const TRAIL: &str = r#"{"code": "TRAIL5", "display_name": "5 back",
    "reward": {"type": "fixed", "amount": "5.00"}, "status": "approved"TOTAL}"#;

fn trail() -> Code {
    Code::parse("trail5").unwrap()
}

/// TRAIL5 with this total limit (None: unlimited).
fn trail_body(limit: Option<u32>) -> String {
    let total = limit.map_or(String::new(), |n| format!(r#", "usage_limit_total": {n}"#));
    TRAIL.replace("TOTAL", &total)
}

fn with_trail(id: &str, who: &str) -> OrderEvent {
    let mut placed = order(id, who, vec![line("1", "100.00", 1)]);
    placed.discount_codes = vec![AppliedCode {
        code: trail(),
        amount: usd("0.00"),
        kind: DiscountKind::Order,
    }];
    OrderEvent::Paid(placed)
}

/// Whether the customer's order earned the coupon's 5.00 besides the
/// program's 10.00.
async fn earned_coupon(world: &World, who: &str) -> bool {
    let pending = admin::get_customer(&world.ctx, &shop(), &CustomerId::parse(who).unwrap())
        .await
        .unwrap()
        .pending;
    assert!(
        pending == dec!(10.00) || pending == dec!(15.00),
        "{pending}"
    );
    pending == dec!(15.00)
}

/// Orders `{order}-{n}` by customers `{who}-{n}`, for each `n`, one after
/// the other, each with TRAIL5.
async fn pay_with_trail(world: &World, order: &str, who: &str, ns: std::ops::Range<usize>) {
    for n in ns {
        handle_order_event(
            &world.ctx,
            &shop(),
            &with_trail(&format!("{order}-{n}"), &format!("{who}-{n}")),
            t0(),
        )
        .await
        .unwrap();
    }
}

/// How many of customers `c-{n}` earned the coupon.
async fn credited(world: &World, ns: std::ops::Range<usize>) -> usize {
    let mut credited = 0;
    for n in ns {
        if earned_coupon(world, &format!("c-{n}")).await {
            credited += 1;
        }
    }
    credited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_coupon_is_credited_to_exactly_its_limit_of_concurrent_orders() {
    let mut world = world(program()).await;
    // Forty new customers at once: codes that never collide.
    world.ctx = cashback_app::context::Context::new(
        world.store.clone(),
        world.notifier.clone(),
        std::sync::Arc::new(cashback_test_support::doubles::UniqueCodes::default()),
        cashback_app::context::AppConfig::default(),
    );
    admin::create_coupon(&world.ctx, &shop(), &trail_body(Some(7)), t0())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let ctx = world.ctx.clone();
            tokio::spawn(async move {
                handle_order_event(
                    &ctx,
                    &shop(),
                    &with_trail(&format!("o-{n}"), &format!("c-{n}")),
                    t0(),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        credited(&world, 0..40).await,
        7,
        "never past the limit, never refused below it"
    );
    let coupon = admin::get_coupon(&world.ctx, &shop(), &trail())
        .await
        .unwrap();
    assert_eq!(coupon.uses, 7);
    let used_up = validate(
        &world.ctx,
        &shop(),
        &validate_request("TRAIL5", Some("late"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(!used_up.valid, "{used_up:?}");

    // A cancelled order gives its use back (once the feed moved it off
    // its shard): the next order takes it.
    let mut holder = None;
    for n in 0..40 {
        if earned_coupon(&world, &format!("c-{n}")).await {
            holder = Some(n);
            break;
        }
    }
    let holder = holder.expect("an order took a use");
    let OrderEvent::Paid(cancelled) = with_trail(&format!("o-{holder}"), &format!("c-{holder}"))
    else {
        unreachable!("with_trail builds a paid order")
    };
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Cancelled(cancelled), t0())
        .await
        .unwrap();
    world.store.aggregate_reports().await.unwrap();
    let coupon = admin::get_coupon(&world.ctx, &shop(), &trail())
        .await
        .unwrap();
    assert_eq!(coupon.uses, 6);
    handle_order_event(&world.ctx, &shop(), &with_trail("o-late", "late"), t0())
        .await
        .unwrap();
    assert!(earned_coupon(&world, "late").await);
    handle_order_event(&world.ctx, &shop(), &with_trail("o-later", "later"), t0())
        .await
        .unwrap();
    assert!(!earned_coupon(&world, "later").await);
}

#[tokio::test]
async fn a_limit_set_on_a_coupon_counts_the_uses_the_feed_has_not_counted_yet() {
    let world = world(program()).await;
    admin::create_coupon(&world.ctx, &shop(), &trail_body(None), t0())
        .await
        .unwrap();
    pay_with_trail(&world, "u", "u", 0..3).await;
    // The feed has counted none of the three yet.
    let before = admin::get_coupon(&world.ctx, &shop(), &trail())
        .await
        .unwrap();
    assert_eq!(before.uses, 0);
    admin::update_coupon(
        &world.ctx,
        &shop(),
        &trail(),
        &trail_body(Some(4)),
        None,
        t0(),
    )
    .await
    .unwrap();
    pay_with_trail(&world, "n", "n", 0..3).await;
    assert!(earned_coupon(&world, "n-0").await);
    assert!(!earned_coupon(&world, "n-1").await);
    assert!(!earned_coupon(&world, "n-2").await);
    world.store.aggregate_reports().await.unwrap();
    let after = admin::get_coupon(&world.ctx, &shop(), &trail())
        .await
        .unwrap();
    assert_eq!(after.uses, 4, "the limit, not past it");
}

/// A coupon limited before its count was split (its limit counted on its
/// own item, no capped sub-counter): the first time the admin API lists
/// or reads it, it gets its sub-counters, counting the uses already
/// taken, and the limit still holds exactly.
#[tokio::test]
async fn a_coupon_limited_before_the_split_gets_its_sub_counters_when_first_read() {
    let world = world(program()).await;
    admin::create_coupon(&world.ctx, &shop(), &trail_body(Some(5)), t0())
        .await
        .unwrap();
    // As a coupon limited by an earlier version is stored: no caps.
    world
        .store
        .set_coupon_caps(&shop(), &trail(), None)
        .await
        .unwrap();
    pay_with_trail(&world, "o", "c", 0..2).await;
    let uncapped = world.store.coupon_shards(&shop(), &trail()).await.unwrap();
    assert!(uncapped.iter().all(|shard| shard.cap.is_none()));
    let listed = admin::list_coupons(&world.ctx, &shop(), None, None)
        .await
        .unwrap();
    assert_eq!(listed.items[0].uses, 2);
    let capped = world.store.coupon_shards(&shop(), &trail()).await.unwrap();
    assert!(capped.iter().any(|shard| shard.cap.is_some()), "{capped:?}");
    pay_with_trail(&world, "o", "c", 2..10).await;
    assert_eq!(
        credited(&world, 0..10).await,
        5,
        "the limit, across the split"
    );
    world.store.aggregate_reports().await.unwrap();
    let coupon = admin::get_coupon(&world.ctx, &shop(), &trail())
        .await
        .unwrap();
    assert_eq!(coupon.uses, 5);
}

#[tokio::test]
async fn a_coupons_definition_is_read_once_per_container_and_an_edit_here_is_seen() {
    let world = world(program()).await;
    let created = admin::create_coupon(&world.ctx, &shop(), &trail_body(Some(100)), t0())
        .await
        .unwrap();
    handle_order_event(&world.ctx, &shop(), &with_trail("o-1", "ann"), t0())
        .await
        .unwrap();
    assert!(earned_coupon(&world, "ann").await);
    // Paused behind this container's back (another container's edit): the
    // second order decides on the definition it cached, without reading it.
    let mut record = world
        .store
        .read(&shop(), &cashback_app::store::ReadRequest::coupon(&trail()))
        .await
        .unwrap()
        .coupons
        .remove(&trail())
        .unwrap();
    record.value.coupon.status = CouponStatus::Paused;
    world
        .store
        .put_coupon(&shop(), &record.value, created.version)
        .await
        .unwrap();
    handle_order_event(&world.ctx, &shop(), &with_trail("o-2", "bob"), t0())
        .await
        .unwrap();
    assert!(earned_coupon(&world, "bob").await, "the cached definition");
    // Its TTL past, it is read again.
    let later = t0() + chrono::Duration::seconds(world.ctx.config.cache_ttl_seconds);
    handle_order_event(&world.ctx, &shop(), &with_trail("o-3", "cy"), later)
        .await
        .unwrap();
    assert!(
        !earned_coupon(&world, "cy").await,
        "read again after the TTL"
    );
    // An edit made here is seen at once.
    admin::set_coupon_status(&world.ctx, &shop(), &trail(), CouponStatus::Approved, later)
        .await
        .unwrap();
    handle_order_event(&world.ctx, &shop(), &with_trail("o-4", "dee"), later)
        .await
        .unwrap();
    assert!(
        earned_coupon(&world, "dee").await,
        "the edit, not the cache"
    );
}
