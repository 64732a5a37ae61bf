//! Worked stories through the ledger: earn, release, redeem, refund, cancel.

use crate::support::*;
use cashback_core::coupon::CouponCredit;
use cashback_core::ids::{CheckoutId, Code, LineId, OrderId, RefundId};
use cashback_core::ledger::{Effect, EntryKind, LedgerError};
use cashback_core::money::Currency;
use cashback_core::order::{
    AppliedCode, DiscountKind, Order, OrderEvent, Refund, RefundBasis, RefundedLine,
};
use cashback_core::program::{Issuance, Program, Promotion, Tier, Trigger};
use rust_decimal_macros::dec;

fn five_percent() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(5);
    program
}

fn ten_percent() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program
}

#[test]
fn a_paid_order_earns_pending_cashback_that_is_released_after_30_days() {
    let mut books = Books::new(five_percent());
    let paid = OrderEvent::Paid(order("1001", vec![line("1", "100.00", 1, "0.00")]));
    let applied = books.apply(&paid, t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("5.00"), usd("0.00")));
    assert!(applied.effects.contains(&Effect::Earned {
        order_id: paid.order_id().clone(),
        amount: usd("5.00"),
        release_at: Some(days(30)),
    }));
    assert!(books.release_due(days(29)).entries.is_empty());
    let released = books.release_due(days(30));
    assert_eq!(released.entries[0].kind, EntryKind::Release);
    assert_eq!(books.balances(), (usd("5.00"), usd("0.00"), usd("0.00")));
    assert!(
        books.release_due(days(31)).entries.is_empty(),
        "a release happens once"
    );
    books.check();
}

#[test]
fn a_late_delivery_is_never_due_before_it_was_recorded() {
    let mut books = Books::new(Program {
        issuance: Issuance::Pending { days: 1 },
        ..five_percent()
    });
    let paid = OrderEvent::Paid(order("1001", vec![line("1", "100.00", 1, "0.00")]));
    // Paid at t0, delivered 3 days late: due at once, not 2 days ago.
    books.apply(&paid, days(3));
    assert_eq!(books.orders[0].release_at, Some(days(3)));
    assert!(books.release_due(days(3)).entries.len() == 1);
    books.check();
}

#[test]
fn a_second_delivery_of_any_event_changes_nothing() {
    let mut books = Books::new(five_percent());
    let paid = OrderEvent::Paid(order("1001", vec![line("1", "100.00", 2, "0.00")]));
    let refund = refund_lines("1001", "r1", &[("1", 1)]);
    books.apply(&paid, t0());
    books.apply(&refund, t0());
    let before = books.balances();
    assert!(books.apply(&paid, t0()).duplicate);
    assert!(books.apply(&refund, t0()).duplicate);
    assert_eq!(books.balances(), before);
    books.check();
}

#[test]
fn refunding_half_the_order_claws_back_half_the_cashback_from_pending() {
    let mut books = Books::new(ten_percent());
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "50.00", 2, "0.00")])),
        t0(),
    );
    books.apply(&refund_lines("1", "r1", &[("a", 1)]), t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("5.00"), usd("0.00")));
    books.check();
}

#[test]
fn a_full_refund_in_pieces_claws_back_exactly_what_was_earned() {
    let mut books = Books::new(ten_percent());
    // 10% of 33.33 is 3.33; thirds of it round down, the last refund evens it out.
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "11.11", 3, "0.00")])),
        t0(),
    );
    assert_eq!(books.account.pending, usd("3.33"));
    for (n, id) in ["r1", "r2", "r3"].iter().enumerate() {
        books.apply(&refund_lines("1", id, &[("a", 1)]), t0());
        books.check();
        if n < 2 {
            assert!(books.account.pending.is_positive());
        }
    }
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.orders[0].clawed_back, usd("3.33"));
}

#[test]
fn a_refund_arriving_before_its_order_still_ends_in_the_right_balance() {
    let history = |events: Vec<OrderEvent>| {
        let mut books = Books::new(ten_percent());
        for event in &events {
            books.apply(event, t0());
        }
        books.check();
        books.balances()
    };
    let paid = OrderEvent::Paid(order(
        "1",
        vec![line("a", "40.00", 1, "0.00"), line("b", "60.00", 1, "0.00")],
    ));
    let refund = refund_lines("1", "r1", &[("b", 1)]);
    let clean = history(vec![paid.clone(), refund.clone()]);
    assert_eq!(clean, (usd("0.00"), usd("4.00"), usd("0.00")));
    assert_eq!(history(vec![refund, paid]), clean);
}

#[test]
fn a_refund_after_release_and_spending_becomes_debt_paid_from_the_next_cashback() {
    let mut books = Books::new(ten_percent());
    let mut first = order("1", vec![line("a", "100.00", 1, "0.00")]);
    first.occurred_at = t0();
    books.apply(&OrderEvent::Paid(first), t0());
    books.release_due(days(30));
    assert_eq!(books.account.available, usd("10.00"));
    // The customer spends it all on order 2.
    let mut second = order("2", vec![line("b", "50.00", 1, "10.00")]);
    second.discount_codes.push(AppliedCode {
        code: Code::parse("cb-ann").unwrap(),
        amount: usd("10.00"),
        kind: DiscountKind::Order,
    });
    second.occurred_at = days(31);
    books.apply(&OrderEvent::Paid(second), days(31));
    assert_eq!(books.account.available, usd("0.00"));
    assert_eq!(books.account.pending, usd("4.00"));
    // Order 1 is refunded in full: nothing left to take, so it becomes debt.
    let applied = books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(32));
    assert_eq!(books.balances(), (usd("0.00"), usd("4.00"), usd("10.00")));
    assert!(applied
        .effects
        .iter()
        .any(|e| matches!(e, Effect::ClawedBack { debt, .. } if *debt == usd("10.00"))));
    // Order 2's pending is not touched by order 1's refund; its release pays debt first.
    books.release_due(days(61));
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("6.00")));
    books.check();
}

#[test]
fn the_code_on_an_order_redeems_balance_and_converts_the_checkout_hold() {
    let mut books = Books::new(Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    });
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "600.00", 1, "0.00")])),
        t0(),
    );
    assert_eq!(books.account.available, usd("60.00"));
    let checkout = CheckoutId::parse("chk-1").unwrap();
    books
        .account
        .place_hold(checkout.clone(), usd("50.00"), days(1), 900)
        .unwrap();
    assert_eq!(books.account.spendable(), usd("10.00"));
    let mut second = order("2", vec![line("b", "50.00", 1, "50.00")]);
    second.checkout_id = Some(checkout);
    second.discount_codes.push(AppliedCode {
        code: Code::parse("CB-ANN").unwrap(),
        amount: usd("50.00"),
        kind: DiscountKind::Order,
    });
    books.apply(&OrderEvent::Paid(second), days(1));
    assert_eq!(books.account.available, usd("10.00"));
    assert!(books.account.holds.is_empty());
    assert_eq!(books.account.lifetime_used, usd("50.00"));
    books.check();
}

#[test]
fn a_discount_larger_than_the_balance_is_a_shortfall_charged_as_debt_never_a_negative_balance() {
    let mut books = Books::new(Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    });
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "80.00", 1, "0.00")])),
        t0(),
    );
    let mut second = order("2", vec![line("b", "50.00", 1, "20.00")]);
    second.discount_codes.push(AppliedCode {
        code: Code::parse("CB-ANN").unwrap(),
        amount: usd("20.00"),
        kind: DiscountKind::Order,
    });
    books.apply(&OrderEvent::Paid(second), t0());
    assert_eq!(
        books.balances(),
        (usd("0.00"), usd("0.00"), usd("9.00")),
        "8.00 taken, 12.00 owed, then 10% of 30.00 earned pays 3.00 of the debt"
    );
    assert_eq!(books.orders[1].redeemed, usd("8.00"));
    assert_eq!(books.orders[1].shortfall, usd("12.00"));
    assert_eq!(books.orders[1].charged(), usd("20.00"));
    books.check();
}

#[test]
fn cancelling_voids_pending_and_restores_spent_credit() {
    let mut books = Books::new(ten_percent());
    books
        .account
        .adjust(usd("20.00"), "welcome", "k1", &books.program.clone(), t0())
        .map(|a| books.entries.extend(a.entries))
        .unwrap();
    let mut placed = order("1", vec![line("a", "100.00", 1, "20.00")]);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("CB-ANN").unwrap(),
        amount: usd("20.00"),
        kind: DiscountKind::Order,
    });
    books.apply(&OrderEvent::Paid(placed.clone()), t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("8.00"), usd("0.00")));
    books.apply(&OrderEvent::Cancelled(placed.clone()), days(1));
    assert_eq!(books.balances(), (usd("20.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("0.00"));
    assert!(
        books
            .apply(&OrderEvent::Cancelled(placed), days(1))
            .duplicate
    );
    books.check();
}

#[test]
fn a_cancellation_before_the_paid_event_means_the_order_never_earns() {
    let mut books = Books::new(ten_percent());
    let placed = order("1", vec![line("a", "100.00", 1, "0.00")]);
    books.apply(&OrderEvent::Cancelled(placed.clone()), t0());
    books.apply(&OrderEvent::Paid(placed), t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("0.00")));
    books.check();
}

#[test]
fn with_a_fulfilled_trigger_payment_redeems_but_only_fulfilment_earns() {
    let mut books = Books::new(Program {
        trigger: Trigger::Fulfilled,
        ..ten_percent()
    });
    let placed = order("1", vec![line("a", "100.00", 1, "0.00")]);
    books.apply(&OrderEvent::Paid(placed.clone()), t0());
    assert_eq!(books.account.pending, usd("0.00"));
    books.apply(&OrderEvent::Fulfilled(placed), days(2));
    assert_eq!(books.account.pending, usd("10.00"));
    books.check();
}

#[test]
fn immediate_issuance_pays_debt_first_and_restarts_the_reminder_series() {
    let mut books = Books::new(Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    });
    books.account.debt = usd("3.00");
    books.entries.push(cashback_core::ledger::LedgerEntry {
        entry_id: "seed".into(),
        at: t0(),
        kind: EntryKind::Clawback,
        order_id: None,
        available_delta: usd("0"),
        pending_delta: usd("0"),
        debt_delta: usd("3.00"),
        funding: None,
        note: None,
    });
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        days(1),
    );
    assert_eq!(books.balances(), (usd("7.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.reminders.series_started_at, Some(days(1)));
    books.check();
}

#[test]
fn crossing_a_tier_threshold_upgrades_the_customer_for_the_next_order() {
    let mut program = five_percent();
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(500),
        percent: dec!(10),
    }];
    let mut books = Books::new(program);
    let first = books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "500.00", 1, "0.00")])),
        t0(),
    );
    assert_eq!(
        books.orders[0].pending,
        usd("25.00"),
        "the tier before the order sets its rate"
    );
    assert!(first.effects.contains(&Effect::TierUpgraded { tier: 0 }));
    books.apply(
        &OrderEvent::Paid(order("2", vec![line("b", "100.00", 1, "0.00")])),
        t0(),
    );
    assert_eq!(books.orders[1].pending, usd("10.00"));
}

#[test]
fn coupon_cashback_is_credited_with_the_order_and_its_use_returned_on_cancel() {
    let mut books = Books::new(five_percent());
    let placed = order("1", vec![line("a", "100.00", 1, "0.00")]);
    let coupons = [CouponCredit {
        code: Code::parse("BACK10").unwrap(),
        cashback: usd("10.00"),
    }];
    let applied = books.apply_with_coupons(&OrderEvent::Paid(placed.clone()), t0(), &coupons);
    assert_eq!(books.account.pending, usd("15.00"));
    assert!(applied.effects.contains(&Effect::CouponUsed {
        code: Code::parse("back10").unwrap()
    }));
    let cancelled = books.apply(&OrderEvent::Cancelled(placed), t0());
    assert!(cancelled.effects.contains(&Effect::CouponUseReturned {
        code: Code::parse("back10").unwrap()
    }));
    assert_eq!(books.account.pending, usd("0.00"));
    books.check();
}

#[test]
fn holds_compete_for_one_balance() {
    let mut books = Books::new(five_percent());
    books
        .account
        .adjust(usd("10.00"), "seed", "k", &books.program.clone(), t0())
        .map(|a| books.entries.extend(a.entries))
        .unwrap();
    let a = CheckoutId::parse("a").unwrap();
    let b = CheckoutId::parse("b").unwrap();
    books
        .account
        .place_hold(a.clone(), usd("7.00"), t0(), 900)
        .unwrap();
    assert_eq!(
        books.account.place_hold(b.clone(), usd("5.00"), t0(), 900),
        Err(LedgerError::InsufficientBalance {
            spendable: usd("3.00")
        })
    );
    // The same checkout replaces its own hold rather than adding one.
    books
        .account
        .place_hold(a.clone(), usd("9.00"), t0(), 900)
        .unwrap();
    assert_eq!(books.account.held(), usd("9.00"));
    // After the TTL the hold no longer counts.
    books
        .account
        .place_hold(b, usd("10.00"), days(1), 900)
        .unwrap();
    assert_eq!(books.account.held(), usd("10.00"));
    books.check();
}

#[test]
fn balance_expires_oldest_first_after_the_program_expiry() {
    let mut program = Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    };
    program.expiry_days = Some(90);
    let mut books = Books::new(program);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    books.apply(
        &OrderEvent::Paid(order("2", vec![line("b", "50.00", 1, "0.00")])),
        days(30),
    );
    // Spend 4.00: it comes out of the oldest lot.
    books
        .account
        .adjust(
            usd("-4.00"),
            "test debit",
            "d",
            &books.program.clone(),
            days(31),
        )
        .map(|a| books.entries.extend(a.entries))
        .unwrap();
    // Credits expire 90 days on, rounded up to the end of their 3-day
    // expiry period (periods counted from 1970-01-01): t0 + 90 days is
    // 2026-04-01 noon, whose period ends at 2026-04-04 00:00.
    let at = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let first_expiry = at("2026-04-04T00:00:00Z");
    let early = books
        .account
        .expire_balance(first_expiry - chrono::Duration::seconds(1));
    assert!(
        early.unwrap().entries.is_empty(),
        "not before the period ends"
    );
    let expired = books.account.expire_balance(first_expiry).unwrap();
    books.entries.extend(expired.entries.clone());
    assert_eq!(expired.entries[0].available_delta, usd("-6.00"));
    assert_eq!(books.account.available, usd("5.00"));
    assert_eq!(
        books.account.next_expiry(),
        Some(at("2026-05-04T00:00:00Z"))
    );
    books.check();
}

#[test]
fn a_debit_adjustment_cannot_overdraw() {
    let mut books = Books::new(five_percent());
    let program = books.program.clone();
    assert!(matches!(
        books
            .account
            .adjust(usd("-1.00"), "oops", "k", &program, t0()),
        Err(LedgerError::InsufficientBalance { .. })
    ));
    books.check();
}

#[test]
fn two_expirations_at_the_same_moment_write_distinct_entries() {
    let mut program = Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    };
    program.expiry_days = Some(30);
    let mut books = Books::new(program);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    let moment = days(31);
    let first = books.account.expire_balance(moment).unwrap();
    // A credit recorded afterwards with an earlier time (a replayed schedule
    // time), already past its expiry at the same moment.
    books.apply(
        &OrderEvent::Paid(order("2", vec![line("b", "50.00", 1, "0.00")])),
        days(0) + chrono::Duration::hours(1),
    );
    let second = books.account.expire_balance(moment).unwrap();
    assert_eq!(second.entries.len(), 1);
    assert_ne!(first.entries[0].entry_id, second.entries[0].entry_id);
    assert!(books
        .account
        .expire_balance(moment)
        .unwrap()
        .entries
        .is_empty());
    books.entries.extend(first.entries);
    books.entries.extend(second.entries);
    books.check();
}

#[test]
fn lots_credited_at_the_same_instant_expiring_in_two_runs_at_one_moment_write_distinct_entries() {
    let mut program = Program {
        issuance: Issuance::Immediate,
        ..ten_percent()
    };
    program.expiry_days = Some(30);
    let mut books = Books::new(program);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    let moment = days(70);
    let first = books.account.expire_balance(moment).unwrap();
    // A second order recorded at the very instant the first was: its lot is
    // credited at the same time, and expires in a later run at the same moment.
    books.apply(
        &OrderEvent::Paid(order("2", vec![line("b", "50.00", 1, "0.00")])),
        t0(),
    );
    let second = books.account.expire_balance(moment).unwrap();
    assert_eq!((first.entries.len(), second.entries.len()), (1, 1));
    assert_ne!(first.entries[0].entry_id, second.entries[0].entry_id);
    books.entries.extend(first.entries);
    books.entries.extend(second.entries);
    books.check();
}

fn refund_amount(order_id: &str, refund_id: &str, amount: &str) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap(),
        order_id: OrderId::parse(order_id).unwrap(),
        basis: RefundBasis::Amount {
            amount: usd(amount),
        },
        occurred_at: t0(),
    })
}

/// 200.00 of merchandise plus 10.00 shipping, 10% cashback: 20.00 earned.
fn shipped_order() -> Order {
    let mut placed = order(
        "1",
        vec![
            line("a", "100.00", 1, "0.00"),
            line("b", "100.00", 1, "0.00"),
        ],
    );
    placed.shipping = usd("10.00");
    placed.total = usd("210.00");
    placed
}

#[test]
fn money_refunded_without_lines_claws_back_its_share_of_the_merchandise() {
    let mut books = Books::new(ten_percent());
    books.apply(&OrderEvent::Paid(shipped_order()), t0());
    assert_eq!(books.account.pending, usd("20.00"));
    // Half the merchandise's worth refunded as a bare amount: half the cashback.
    books.apply(&refund_amount("1", "r1", "100.00"), t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("10.00"), usd("0.00")));
    books.check();
}

#[test]
fn lines_and_money_refunded_together_claw_back_both_shares() {
    let mut books = Books::new(ten_percent());
    books.apply(&OrderEvent::Paid(shipped_order()), t0());
    books.apply(
        &OrderEvent::Refunded(Refund {
            refund_id: RefundId::parse("r1").unwrap(),
            order_id: OrderId::parse("1").unwrap(),
            basis: RefundBasis::LinesAndAmount {
                lines: vec![RefundedLine {
                    line_id: LineId::parse("a").unwrap(),
                    quantity: 1,
                }],
                amount: usd("50.00"),
            },
            occurred_at: t0(),
        }),
        t0(),
    );
    // Line a is half the merchandise, 50.00 a quarter more: 15.00 of 20.00.
    assert_eq!(books.account.pending, usd("5.00"));
    books.check();
}

#[test]
fn an_amount_refund_of_all_the_merchandise_claws_back_everything_whatever_the_shipping() {
    let mut books = Books::new(ten_percent());
    books.apply(&OrderEvent::Paid(shipped_order()), t0());
    books.apply(&refund_amount("1", "r1", "200.00"), t0());
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("0.00")));
    // Shipping refunded on top changes nothing more.
    books.apply(&refund_amount("1", "r2", "10.00"), t0());
    assert_eq!(books.orders[0].clawed_back, usd("20.00"));
    books.check();
}

#[test]
fn partial_refunds_split_the_clawback_between_funders_exactly() {
    let mut program = five_percent();
    program.earning.partner_match_percent = dec!(5);
    let mut books = Books::new(program);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "33.34", 3, "0.00")])),
        t0(),
    );
    assert_eq!(books.account.pending, usd("10.00"));
    for id in ["r1", "r2", "r3"] {
        books.apply(&refund_lines("1", id, &[("a", 1)]), t0());
    }
    let clawed = |pick: fn(&cashback_core::ledger::Funding) -> cashback_core::money::Money| {
        books
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Clawback)
            .filter_map(|e| e.funding.as_ref())
            .fold(usd("0"), |sum, f| sum.checked_add(pick(f)).unwrap())
    };
    assert_eq!(clawed(|f| f.partner), usd("-5.00"));
    assert_eq!(clawed(|f| f.merchant), usd("-5.00"));
    books.check();
}

#[test]
fn goodwill_is_not_eaten_by_debt_and_a_release_pays_debt_only_from_what_it_releases() {
    let mut books = Books::new(ten_percent());
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    books.release_due(days(30));
    let mut second = order("2", vec![line("b", "50.00", 1, "10.00")]);
    second.discount_codes.push(AppliedCode {
        code: Code::parse("cb-ann").unwrap(),
        amount: usd("10.00"),
        kind: DiscountKind::Order,
    });
    second.occurred_at = days(31);
    books.apply(&OrderEvent::Paid(second), days(31));
    books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(32));
    assert_eq!(books.balances(), (usd("0.00"), usd("4.00"), usd("10.00")));
    let program = books.program.clone();
    let goodwill = books
        .account
        .adjust(usd("10.00"), "sorry", "g1", &program, days(33))
        .unwrap();
    books.entries.extend(goodwill.entries);
    assert_eq!(books.balances(), (usd("10.00"), usd("4.00"), usd("10.00")));
    // The 4.00 released pays 4.00 of debt; the goodwill stays the customer's.
    books.release_due(days(61));
    assert_eq!(books.balances(), (usd("10.00"), usd("0.00"), usd("6.00")));
    books.check();
}

#[test]
fn with_a_fulfilled_trigger_a_refund_before_payment_still_gives_back_spent_credit() {
    let mut books = Books::new(Program {
        trigger: Trigger::Fulfilled,
        ..ten_percent()
    });
    let program = books.program.clone();
    let seed = books
        .account
        .adjust(usd("20.00"), "seed", "s", &program, t0())
        .unwrap();
    books.entries.extend(seed.entries);
    let mut placed = order("1", vec![line("a", "100.00", 1, "20.00")]);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("cb-ann").unwrap(),
        amount: usd("20.00"),
        kind: DiscountKind::Order,
    });
    // The full refund is delivered first; the order is then paid, never fulfilled.
    books.apply(&refund_lines("1", "r1", &[("a", 1)]), t0());
    books.apply(&OrderEvent::Paid(placed), t0());
    assert_eq!(books.balances(), (usd("20.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("0.00"));
    books.check();
}

#[test]
fn with_a_fulfilled_trigger_promotions_are_judged_at_the_orders_own_time() {
    let mut program = Program {
        trigger: Trigger::Fulfilled,
        ..ten_percent()
    };
    program.promotions = vec![Promotion {
        name: "New year".into(),
        starts_at: t0() - chrono::Duration::days(1),
        ends_at: days(1),
        bonus_percent: dec!(5),
    }];
    let mut books = Books::new(program);
    let placed = order("1", vec![line("a", "100.00", 1, "0.00")]);
    books.apply(&OrderEvent::Paid(placed.clone()), t0());
    // Fulfilled after the promotion ended: the order was placed during it.
    let mut fulfilled = placed;
    fulfilled.occurred_at = days(3);
    books.apply(&OrderEvent::Fulfilled(fulfilled), days(3));
    assert_eq!(books.account.pending, usd("15.00"));
    books.check();
}

#[test]
fn a_tier_from_zero_spend_is_where_everyone_starts_not_an_upgrade() {
    let mut program = five_percent();
    program.tiers = vec![
        Tier {
            name: "Bronze".into(),
            min_lifetime_spend: dec!(0),
            percent: dec!(5),
        },
        Tier {
            name: "Silver".into(),
            min_lifetime_spend: dec!(500),
            percent: dec!(8),
        },
    ];
    let mut books = Books::new(program);
    let first = books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    assert_eq!(books.account.tier, Some(0));
    assert!(!first
        .effects
        .iter()
        .any(|e| matches!(e, Effect::TierUpgraded { .. })));
    let second = books.apply(
        &OrderEvent::Paid(order("2", vec![line("b", "400.00", 1, "0.00")])),
        t0(),
    );
    assert!(second.effects.contains(&Effect::TierUpgraded { tier: 1 }));
}

#[test]
fn balance_spent_on_the_platform_is_taken_whole_and_the_rest_is_debt() {
    let mut books = Books::new(five_percent());
    books
        .account
        .adjust(usd("10.00"), "seed", "k", &books.program.clone(), t0())
        .map(|a| books.entries.extend(a.entries))
        .unwrap();
    let order = OrderId::parse("7").unwrap();
    // Covered: taken from the balance.
    let (applied, shortfall) = books
        .account
        .spend_on_platform(usd("4.00"), Some(&order), "store credit spent", "t1", t0())
        .unwrap();
    books.entries.extend(applied.entries.clone());
    assert_eq!(shortfall, usd("0.00"));
    assert_eq!(applied.entries[0].kind, EntryKind::Redeem);
    assert_eq!(books.account.available, usd("6.00"));
    // More than the balance: never refused, the rest is debt.
    let (applied, shortfall) = books
        .account
        .spend_on_platform(usd("9.00"), Some(&order), "store credit spent", "t2", t0())
        .unwrap();
    books.entries.extend(applied.entries);
    assert_eq!(shortfall, usd("3.00"));
    assert_eq!(books.account.available, usd("0.00"));
    assert_eq!(books.account.debt, usd("3.00"));
    assert_eq!(books.account.lifetime_used, usd("13.00"));
    books.check();
}

/// Store credit given back on the platform pays any debt first, a
/// clawback's too, as balance spent through a code does: cashback earned on
/// a returned order, spent, then the spending order cancelled, is never
/// spendable twice.
#[test]
fn store_credit_given_back_pays_a_clawbacks_debt_first() {
    let mut program = five_percent();
    program.issuance = Issuance::Immediate;
    let mut books = Books::new(program);
    books.apply(
        &OrderEvent::Paid(order("1", vec![line("a", "100.00", 1, "0.00")])),
        t0(),
    );
    let spent = OrderId::parse("2").unwrap();
    let (applied, _) = books
        .account
        .spend_on_platform(usd("5.00"), Some(&spent), "store credit spent", "t1", t0())
        .unwrap();
    books.entries.extend(applied.entries);
    books.apply(&refund_lines("1", "r1", &[("a", 1)]), days(1));
    assert_eq!(books.account.debt, usd("5.00"), "the clawback's debt");
    let program = books.program.clone();
    let (applied, paid) = books
        .account
        .restore_from_platform(
            usd("5.00"),
            Some(&spent),
            "reverted",
            "t3",
            &program,
            days(3),
        )
        .unwrap();
    books.entries.extend(applied.entries);
    assert_eq!(paid, usd("5.00"));
    assert_eq!(books.account.debt, usd("0.00"));
    assert_eq!(
        books.account.available,
        usd("0.00"),
        "never spendable twice"
    );
    books.check();
}

#[test]
fn store_credit_given_back_on_the_platform_pays_the_debt_its_payment_made_first() {
    let mut books = Books::new(five_percent());
    books
        .account
        .adjust(usd("5.00"), "seed", "k", &books.program.clone(), t0())
        .map(|a| books.entries.extend(a.entries))
        .unwrap();
    let order = OrderId::parse("7").unwrap();
    // 9.00 spent on a 5.00 balance: 4.00 of debt.
    let (applied, _) = books
        .account
        .spend_on_platform(usd("9.00"), Some(&order), "store credit spent", "t1", t0())
        .unwrap();
    books.entries.extend(applied.entries);
    assert_eq!(books.account.debt, usd("4.00"));
    // The order is refunded back to store credit: the debt goes first.
    let program = books.program.clone();
    let (applied, paid) = books
        .account
        .restore_from_platform(usd("9.00"), Some(&order), "refunded", "t2", &program, t0())
        .unwrap();
    books.entries.extend(applied.entries.clone());
    assert_eq!(paid, usd("4.00"));
    assert_eq!(books.account.debt, usd("0.00"));
    assert_eq!(books.account.available, usd("5.00"));
    assert_eq!(books.account.lifetime_used, usd("0.00"));
    assert!(applied.entries.iter().any(|e| e.kind == EntryKind::Restore));
    // A refund read again (its key) is the store's guard to stop; a zero or
    // foreign amount is refused and changes nothing.
    let before = books.account.clone();
    assert!(books
        .account
        .restore_from_platform(usd("0.00"), None, "zero", "t3", &program, t0())
        .is_err());
    assert!(books
        .account
        .restore_from_platform(
            cashback_core::money::Money::parse("1.00", Currency::EUR).unwrap(),
            None,
            "euros",
            "t4",
            &program,
            t0()
        )
        .is_err());
    assert_eq!(books.account, before);
    books.check();
}
