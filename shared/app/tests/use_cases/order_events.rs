//! The order-event use case on the in-memory store: ledger effects, emails,
//! duplicates, delivery order and round trips.

use crate::support::*;
use cashback_app::events::{handle_order_event, EventOutcome};
use cashback_app::store::{ReadRequest, Store};
use cashback_app::AppError;
use cashback_core::coupon::{CashbackCoupon, CouponReward, CouponStatus, Stacking};
use cashback_core::ids::{Code, CustomerId, Email, OrderId};
use cashback_core::order::{AppliedCode, CustomerRef, DiscountKind, OrderEvent};
use rust_decimal_macros::dec;

async fn account(world: &World, id: &str) -> cashback_core::ledger::Account {
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![CustomerId::parse(id).unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts[&CustomerId::parse(id).unwrap()].value.clone()
}

#[tokio::test]
async fn a_paid_order_opens_an_account_with_a_code_earns_pending_and_emails_the_customer() {
    let world = world(program()).await;
    let paid = OrderEvent::Paid(order(
        "1001",
        "ann",
        vec![line("1", "80.00", 1), line("2", "20.00", 1)],
    ));
    let outcome = handle_order_event(&world.ctx, &shop(), &paid, t0())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        EventOutcome::Applied {
            entries: 1,
            emails: 1
        }
    );
    let ann = account(&world, "ann").await;
    assert_eq!(ann.pending, usd("10.00"));
    let code = ann.code.clone().expect("a code is issued with the account");
    assert!(code.display().starts_with("CB-"));
    let sent = world.notifier.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind.name(), "earned");
    assert_eq!(sent[0].to, Email::parse("ann@example.com").unwrap());
    assert!(sent[0]
        .unsubscribe_url
        .as_deref()
        .unwrap()
        .contains("/unsubscribe?sig="));
}

#[tokio::test]
async fn an_order_event_costs_one_read_and_one_transaction_and_a_duplicate_no_write() {
    let world = world(program()).await;
    let paid = OrderEvent::Paid(order("1001", "ann", vec![line("1", "100.00", 1)]));
    // Warm the shop/program cache, as a warm container has it.
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("999", "bob", vec![line("1", "1.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    let before = world.store.request_counts();
    handle_order_event(&world.ctx, &shop(), &paid, t0())
        .await
        .unwrap();
    let after = world.store.request_counts();
    assert_eq!(
        (
            after.reads - before.reads,
            after.writes - before.writes,
            after.total() - before.total()
        ),
        (1, 1, 2)
    );
    let outcome = handle_order_event(&world.ctx, &shop(), &paid, t0())
        .await
        .unwrap();
    assert_eq!(outcome, EventOutcome::Duplicate);
    let again = world.store.request_counts();
    assert_eq!(
        (again.reads - after.reads, again.writes - after.writes),
        (1, 0),
        "a duplicate costs its read only"
    );
    let cancel = OrderEvent::Cancelled(order("1001", "ann", vec![line("1", "100.00", 1)]));
    handle_order_event(&world.ctx, &shop(), &cancel, t0())
        .await
        .unwrap();
    let cancelled = world.store.request_counts();
    assert_eq!(
        (
            cancelled.reads - again.reads,
            cancelled.writes - again.writes
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn a_refund_needs_a_second_read_only_because_it_names_no_customer() {
    let world = world(program()).await;
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("1001", "ann", vec![line("1", "50.00", 2)])),
        t0(),
    )
    .await
    .unwrap();
    let before = world.store.request_counts();
    handle_order_event(
        &world.ctx,
        &shop(),
        &refund("1001", "r1", &[("1", 1)]),
        t0(),
    )
    .await
    .unwrap();
    let after = world.store.request_counts();
    assert_eq!(
        (after.reads - before.reads, after.writes - before.writes),
        (2, 1)
    );
    assert_eq!(account(&world, "ann").await.pending, usd("5.00"));
    assert_eq!(world.notifier.kinds(), ["earned", "clawed_back"]);
}

#[tokio::test]
async fn a_refund_before_its_order_is_kept_and_settled_when_the_order_arrives() {
    let world = world(program()).await;
    let outcome = handle_order_event(
        &world.ctx,
        &shop(),
        &refund("1001", "r1", &[("2", 1)]),
        t0(),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, EventOutcome::Applied { entries: 0, .. }));
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order(
            "1001",
            "ann",
            vec![line("1", "40.00", 1), line("2", "60.00", 1)],
        )),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(account(&world, "ann").await.pending, usd("4.00"));
}

#[tokio::test]
async fn a_guest_order_earns_on_the_normalised_email() {
    let world = world(program()).await;
    let mut guest = order("1001", "x", vec![line("1", "30.00", 1)]);
    guest.customer = CustomerRef {
        id: None,
        email: Some(Email::parse(" Guest@Example.com").unwrap()),
    };
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(guest.clone()), t0())
        .await
        .unwrap();
    let id = CustomerId::for_guest(&Email::parse("guest@example.com").unwrap());
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(read.accounts[&id].value.pending, usd("3.00"));
    guest.customer = CustomerRef::default();
    guest.order_id = OrderId::parse("1002").unwrap();
    let outcome = handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(guest), t0())
        .await
        .unwrap();
    assert!(matches!(outcome, EventOutcome::Ignored { .. }));
}

#[tokio::test]
async fn an_unknown_shop_is_an_error_and_writes_nothing() {
    let world = world(program()).await;
    let other = cashback_core::ids::ShopId::parse("other.myshopify.com").unwrap();
    let result = handle_order_event(
        &world.ctx,
        &other,
        &OrderEvent::Paid(order("1", "ann", vec![line("1", "1.00", 1)])),
        t0(),
    )
    .await;
    assert!(matches!(result, Err(AppError::UnknownShop(_))));
    assert_eq!(world.store.request_counts().writes, 0);
}

#[tokio::test]
async fn a_cashback_coupon_on_the_order_adds_its_cashback_and_counts_a_use() {
    let world = world(program()).await;
    let coupon = CashbackCoupon {
        code: Code::parse("BACK5").unwrap(),
        display_name: "5 back".into(),
        description: String::new(),
        offer_text: String::new(),
        reward: CouponReward::Fixed { amount: dec!(5) },
        min_cart_value: dec!(0),
        usage_limit_total: Some(1),
        usage_limit_per_customer: None,
        payment_methods: vec![],
        starts_at: None,
        ends_at: None,
        status: CouponStatus::Approved,
        stacking: Stacking::Exclusive,
    };
    world
        .store
        .put_coupon(
            &shop(),
            &cashback_app::store::CouponRecord {
                coupon,
                uses: 0,
                created_at: t0(),
                updated_at: t0(),
            },
            0,
        )
        .await
        .unwrap();
    let with_coupon = |id: &str, who: &str| {
        let mut o = order(id, who, vec![line("1", "100.00", 1)]);
        o.discount_codes.push(AppliedCode {
            code: Code::parse("back5").unwrap(),
            amount: usd("0"),
            kind: DiscountKind::Order,
        });
        OrderEvent::Paid(o)
    };
    handle_order_event(&world.ctx, &shop(), &with_coupon("1", "ann"), t0())
        .await
        .unwrap();
    assert_eq!(account(&world, "ann").await.pending, usd("15.00"));
    // The single use is gone: the next order earns only the program's cashback.
    handle_order_event(&world.ctx, &shop(), &with_coupon("2", "bob"), t0())
        .await
        .unwrap();
    assert_eq!(account(&world, "bob").await.pending, usd("10.00"));
}

#[tokio::test]
async fn parallel_deliveries_of_one_event_apply_once() {
    let world = world(program()).await;
    let paid = OrderEvent::Paid(order("1001", "ann", vec![line("1", "100.00", 1)]));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let ctx = world.ctx.clone();
        let paid = paid.clone();
        tasks.push(tokio::spawn(async move {
            handle_order_event(&ctx, &shop(), &paid, t0()).await
        }));
    }
    let mut applied = 0;
    for task in tasks {
        if matches!(task.await.unwrap().unwrap(), EventOutcome::Applied { .. }) {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(account(&world, "ann").await.pending, usd("10.00"));
    assert_eq!(world.notifier.kinds(), ["earned"]);
}

#[tokio::test]
async fn collection_and_sale_exclusions_use_the_imported_catalog_in_the_same_read() {
    let mut program = program();
    program.exclusions.collection_ids =
        vec![cashback_core::ids::CollectionId::parse("clearance").unwrap()];
    program.exclusions.sale_items = true;
    let world = world(program).await;
    world
        .store
        .put_catalog(
            &shop(),
            &[
                cashback_app::store::CatalogProduct {
                    product_id: cashback_core::ids::ProductId::parse("p-clearance").unwrap(),
                    collection_ids: vec![
                        cashback_core::ids::CollectionId::parse("clearance").unwrap()
                    ],
                    compare_at_price: None,
                },
                cashback_app::store::CatalogProduct {
                    product_id: cashback_core::ids::ProductId::parse("p-on-sale").unwrap(),
                    collection_ids: vec![],
                    compare_at_price: Some(usd("80.00")),
                },
            ],
        )
        .await
        .unwrap();
    // Shopify's lines carry neither collections nor compare-at prices.
    let mut lines = vec![
        line("1", "50.00", 1),
        line("2", "60.00", 1),
        line("3", "100.00", 1),
    ];
    lines[0].product_id = Some(cashback_core::ids::ProductId::parse("p-clearance").unwrap());
    lines[1].product_id = Some(cashback_core::ids::ProductId::parse("p-on-sale").unwrap());
    lines[2].product_id = Some(cashback_core::ids::ProductId::parse("p-regular").unwrap());
    // Warm the shop cache so the event's own round trips are counted alone.
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("0", "bob", vec![line("9", "1.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    let before = world.store.request_counts();
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("1001", "ann", lines)),
        t0(),
    )
    .await
    .unwrap();
    let after = world.store.request_counts();
    assert_eq!(
        (after.reads - before.reads, after.writes - before.writes),
        (1, 1)
    );
    // Only the regular 100.00 line earns its 10%.
    assert_eq!(account(&world, "ann").await.pending, usd("10.00"));
}

#[tokio::test]
async fn an_exclusive_cashback_coupon_beside_an_ordinary_discount_code_gives_nothing() {
    let world = world(program()).await;
    seed_coupon(&world, coupon("BACK10", dec!(10)), 0).await;
    let mut placed = order("1", "ann", vec![line("1", "100.00", 1)]);
    for (code, amount) in [("back10", "0"), ("SAVE5", "5.00")] {
        placed.discount_codes.push(AppliedCode {
            code: Code::parse(code).unwrap(),
            amount: usd(amount),
            kind: DiscountKind::Order,
        });
    }
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed), t0())
        .await
        .unwrap();
    // Only the program's 10%: the exclusive coupon had company.
    assert_eq!(account(&world, "ann").await.pending, usd("10.00"));
}

#[tokio::test]
async fn with_a_fulfilled_trigger_a_coupon_is_judged_when_the_order_was_placed() {
    let mut earn_on_fulfilment = program();
    earn_on_fulfilment.trigger = cashback_core::program::Trigger::Fulfilled;
    let world = world(earn_on_fulfilment).await;
    let mut ending = coupon("BACK10", dec!(10));
    ending.ends_at = Some(t0() + chrono::Duration::days(1));
    seed_coupon(&world, ending, 0).await;
    let mut placed = order("1", "ann", vec![line("1", "100.00", 1)]);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("back10").unwrap(),
        amount: usd("0"),
        kind: DiscountKind::Order,
    });
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed.clone()), t0())
        .await
        .unwrap();
    // Shipped three days later, after the coupon ended.
    let shipped_at = t0() + chrono::Duration::days(3);
    let mut fulfilled = placed;
    fulfilled.occurred_at = shipped_at;
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Fulfilled(fulfilled),
        shipped_at,
    )
    .await
    .unwrap();
    assert_eq!(account(&world, "ann").await.pending, usd("20.00"));
}

#[tokio::test]
async fn a_fulfilment_arriving_before_its_paid_event_judges_the_coupon_when_the_order_was_placed() {
    let mut earn_on_fulfilment = program();
    earn_on_fulfilment.trigger = cashback_core::program::Trigger::Fulfilled;
    let world = world(earn_on_fulfilment).await;
    let mut ending = coupon("BACK10", dec!(10));
    ending.ends_at = Some(t0() + chrono::Duration::days(1));
    seed_coupon(&world, ending, 0).await;
    // Placed at t0 (the platform's own time on every event), shipped three
    // days later after the coupon ended; the fulfilment is delivered first.
    let shipped_at = t0() + chrono::Duration::days(3);
    let mut fulfilled = order("1", "ann", vec![line("1", "100.00", 1)]);
    fulfilled.discount_codes.push(AppliedCode {
        code: Code::parse("back10").unwrap(),
        amount: usd("0"),
        kind: DiscountKind::Order,
    });
    fulfilled.placed_at = Some(t0());
    fulfilled.occurred_at = shipped_at;
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Fulfilled(fulfilled.clone()),
        shipped_at,
    )
    .await
    .unwrap();
    assert_eq!(
        account(&world, "ann").await.pending,
        usd("20.00"),
        "the program's 10% and the coupon's, judged at placement"
    );
    // The late paid event changes nothing.
    let mut paid = fulfilled;
    paid.occurred_at = t0();
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(paid), shipped_at)
        .await
        .unwrap();
    assert_eq!(account(&world, "ann").await.pending, usd("20.00"));
}

#[tokio::test]
async fn a_refund_recorded_before_its_paid_event_makes_the_paid_event_announce_the_net_and_no_passing_tier(
) {
    let mut tiered = program();
    tiered.tiers = vec![cashback_core::program::Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(250),
        percent: dec!(15),
    }];
    let world = world(tiered).await;
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "ann", vec![line("1", "100.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    // Half of order 2 is refunded before its paid event arrives.
    handle_order_event(&world.ctx, &shop(), &refund("2", "r1", &[("1", 1)]), t0())
        .await
        .unwrap();
    world.notifier.sent.lock().unwrap().clear();
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("2", "ann", vec![line("1", "100.00", 2)])),
        t0(),
    )
    .await
    .unwrap();
    let ann = account(&world, "ann").await;
    assert_eq!(
        ann.pending,
        usd("20.00"),
        "10.00 + 20.00 earned - 10.00 back"
    );
    assert_eq!(ann.tier, None, "200.00 net spent: below Gold");
    let sent = world.notifier.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter().map(|n| n.kind.name()).collect::<Vec<_>>(),
        ["earned"],
        "one email with the net, no clawback of what was never announced, no tier"
    );
    match &sent[0].kind {
        cashback_app::notify::NotificationKind::Earned { amount, .. } => {
            assert_eq!(*amount, usd("10.00"));
        }
        other => panic!("not an earned email: {other:?}"),
    }
}

#[tokio::test]
async fn everyone_starts_in_the_lowest_tier_and_only_a_move_up_is_announced() {
    let mut tiered = program();
    tiered.tiers = vec![
        cashback_core::program::Tier {
            name: "Bronze".into(),
            min_lifetime_spend: dec!(0),
            percent: dec!(10),
        },
        cashback_core::program::Tier {
            name: "Silver".into(),
            min_lifetime_spend: dec!(500),
            percent: dec!(12),
        },
    ];
    let world = world(tiered).await;
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "ann", vec![line("1", "100.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(world.notifier.kinds(), ["earned"], "no welcome to Bronze");
    assert_eq!(account(&world, "ann").await.tier, Some(0));
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("2", "ann", vec![line("1", "400.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    let mut kinds = world.notifier.kinds();
    kinds.sort();
    assert_eq!(kinds, ["earned", "earned", "tier_upgraded"]);
}

#[tokio::test]
async fn an_immediate_earn_that_pays_debt_announces_only_what_became_spendable() {
    use cashback_app::store::{AccountWrite, WriteSet};
    let mut immediate = program();
    immediate.issuance = cashback_core::program::Issuance::Immediate;
    let world = world(immediate.clone()).await;
    seed_balance(&world, &immediate, "ann", "CB-ANN", "1.00").await;
    let id = CustomerId::parse("ann").unwrap();
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let mut ann = read.accounts[&id].clone();
    ann.value.debt = usd("6.00");
    let debt = cashback_core::ledger::LedgerEntry {
        entry_id: "seed-debt".into(),
        at: t0(),
        kind: cashback_core::ledger::EntryKind::Clawback,
        order_id: None,
        available_delta: usd("0"),
        pending_delta: usd("0"),
        debt_delta: usd("6.00"),
        funding: None,
        note: None,
    };
    world
        .store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: ann.value.clone(),
                    expected_version: ann.version,
                    entries: vec![debt],
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    handle_order_event(
        &world.ctx,
        &shop(),
        &OrderEvent::Paid(order("1", "ann", vec![line("1", "100.00", 1)])),
        t0(),
    )
    .await
    .unwrap();
    let ann = account(&world, "ann").await;
    assert_eq!((ann.available, ann.debt), (usd("5.00"), usd("0.00")));
    let sent = world.notifier.sent.lock().unwrap().clone();
    match &sent[..] {
        [email] => match &email.kind {
            cashback_app::notify::NotificationKind::Earned { amount, .. } => {
                assert_eq!(*amount, usd("4.00"), "10.00 earned, 6.00 of it paid debt");
            }
            other => panic!("not an earned email: {other:?}"),
        },
        other => panic!("expected one email, got {other:?}"),
    }
}
