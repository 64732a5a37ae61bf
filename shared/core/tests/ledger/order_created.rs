//! Worked examples of an order's created event (Shopify `orders/create`):
//! the balance code's discount is recorded when the order is placed, once
//! for the order whichever of created, paid and fulfilled comes first,
//! at most what is spendable while the order is unpaid; two checkouts that
//! both spent the same balance leave the rest as the owner's debt once the
//! second is paid, recovered from their next cashback. The order as paid,
//! not as placed, is what earns.

use crate::support::*;
use cashback_core::ids::Code;
use cashback_core::ledger::EntryKind;
use cashback_core::money::Currency;
use cashback_core::order::{AppliedCode, DiscountKind, Order, OrderEvent};
use cashback_core::program::{Issuance, Program};
use rust_decimal_macros::dec;

/// 10% cashback, credited at once (so the debt rule shows on the spot).
fn ten_percent_immediate() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.issuance = Issuance::Immediate;
    program
}

/// Ann's books with 30.00 to spend.
fn ann_with_30() -> Books {
    let mut books = Books::new(ten_percent_immediate());
    let program = books.program.clone();
    let credited = books
        .account
        .adjust(usd("30.00"), "welcome", "k1", &program, t0())
        .unwrap();
    books.entries.extend(credited.entries);
    books
}

/// An order of one 100.00 line on which Ann's code took `discount`.
fn with_code(id: &str, price: &str, discount: &str) -> Order {
    let mut placed = order(id, vec![line("a", price, 1, discount)]);
    placed.discount_codes.push(AppliedCode {
        code: Code::parse("CB-ANN").unwrap(),
        amount: usd(discount),
        kind: DiscountKind::Order,
    });
    placed
}

fn redeems(books: &Books) -> usize {
    books
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Redeem)
        .count()
}

#[test]
fn an_order_created_with_the_code_spends_the_balance_at_once_and_its_paid_event_not_again() {
    let mut books = ann_with_30();
    let placed = with_code("1", "100.00", "20.00");
    let applied = books.apply(&OrderEvent::Created(placed.clone()), t0());
    assert!(!applied.duplicate);
    // 30.00 - 20.00 spent: the next checkout (once the code is synced) sees 10.00.
    assert_eq!(books.balances(), (usd("10.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("20.00"));
    assert_eq!(books.orders[0].redeemed, usd("20.00"));
    assert!(books.orders[0].earned.is_none(), "created earns nothing");
    books.check();

    // Paid: earns 10% of 80.00 = 8.00, spends nothing more.
    books.apply(&OrderEvent::Paid(placed.clone()), days(1));
    assert_eq!(books.balances(), (usd("18.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("20.00"));
    books.apply(&OrderEvent::Fulfilled(placed.clone()), days(2));
    assert_eq!(books.balances(), (usd("18.00"), usd("0.00"), usd("0.00")));
    assert_eq!(redeems(&books), 1, "one redemption for the order");
    // A second created delivery (past the guard's lifetime) changes nothing.
    assert!(books.apply(&OrderEvent::Created(placed), days(3)).duplicate);
    assert_eq!(redeems(&books), 1);
    books.check();
}

#[test]
fn two_checkouts_that_both_spent_the_same_balance_leave_the_rest_as_the_owners_debt() {
    let mut books = ann_with_30();
    // Both checkouts saw the 30.00 code before either order lowered it.
    let first = with_code("1", "100.00", "30.00");
    let second = with_code("2", "50.00", "30.00");
    books.apply(&OrderEvent::Created(first.clone()), t0());
    books.apply(&OrderEvent::Created(second.clone()), t0());
    assert_eq!(
        books.balances(),
        (usd("0.00"), usd("0.00"), usd("0.00")),
        "30.00 taken by the first; unpaid, the second charges no debt"
    );
    assert_eq!(books.orders[1].redeemed, usd("0.00"));
    assert_eq!(books.orders[1].shortfall, usd("0.00"));
    assert!(
        !books.orders[1].redemption_settled,
        "the rest waits for payment"
    );
    assert_eq!(books.account.lifetime_used, usd("30.00"));
    assert_eq!(redeems(&books), 1);
    books.check();
    // The first's paid event spends nothing more and earns 10% of 70.00.
    books.apply(&OrderEvent::Paid(first), days(1));
    assert_eq!(books.balances(), (usd("7.00"), usd("0.00"), usd("0.00")));
    // The second's paid event charges its 30.00: 7.00 from the balance,
    // 23.00 owed, never free; its cashback (10% of 20.00) pays the debt first.
    books.apply(&OrderEvent::Paid(second.clone()), days(1));
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("21.00")));
    assert_eq!(books.orders[1].redeemed, usd("7.00"));
    assert_eq!(books.orders[1].shortfall, usd("23.00"));
    assert_eq!(books.account.lifetime_used, usd("60.00"));
    assert_eq!(redeems(&books), 2);
    books.check();
    // Fulfilled spends nothing more.
    books.apply(&OrderEvent::Fulfilled(second.clone()), days(2));
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("21.00")));
    assert_eq!(redeems(&books), 2);
    // Cancelling the second order takes its shortfall back first.
    books.apply(&OrderEvent::Cancelled(second), days(2));
    assert_eq!(books.account.debt, usd("0.00"));
    books.check();
}

#[test]
fn unpaid_orders_with_the_code_never_put_its_owner_in_debt() {
    let mut books = ann_with_30();
    // A stranger places three orders with Ann's code, never paying them.
    for id in ["1", "2", "3"] {
        books.apply(&OrderEvent::Created(with_code(id, "100.00", "30.00")), t0());
    }
    assert_eq!(books.balances(), (usd("0.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("30.00"));
    assert_eq!(redeems(&books), 1, "orders 2 and 3 charge nothing");
    books.check();
}

#[test]
fn the_paid_event_relearns_the_order_as_placed() {
    let mut books = Books::new(ten_percent_immediate());
    // Placed with two lines, one removed before payment.
    let placed = order(
        "1",
        vec![
            line("a", "180.00", 1, "0.00"),
            line("b", "20.00", 1, "0.00"),
        ],
    );
    let paid = order("1", vec![line("b", "20.00", 1, "0.00")]);
    books.apply(&OrderEvent::Created(placed.clone()), t0());
    books.apply(&OrderEvent::Paid(paid), days(1));
    assert_eq!(books.balances(), (usd("2.00"), usd("0.00"), usd("0.00")));
    // Earned on the order as paid; a later event does not relearn it.
    books.apply(&OrderEvent::Fulfilled(placed), days(2));
    assert_eq!(books.balances(), (usd("2.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.orders[0].eligible(), usd("20.00"));
    books.check();
}

#[test]
fn a_paid_event_before_the_created_event_redeems_once() {
    let mut books = ann_with_30();
    let placed = with_code("1", "100.00", "20.00");
    books.apply(&OrderEvent::Paid(placed.clone()), t0());
    assert_eq!(books.balances(), (usd("18.00"), usd("0.00"), usd("0.00")));
    assert!(books.apply(&OrderEvent::Created(placed), t0()).duplicate);
    assert_eq!(books.balances(), (usd("18.00"), usd("0.00"), usd("0.00")));
    assert_eq!(redeems(&books), 1);
    books.check();
}

#[test]
fn a_created_event_after_the_cancellation_spends_nothing() {
    let mut books = ann_with_30();
    let placed = with_code("1", "100.00", "20.00");
    books.apply(&OrderEvent::Cancelled(placed.clone()), t0());
    assert!(books.apply(&OrderEvent::Created(placed), t0()).duplicate);
    assert_eq!(books.balances(), (usd("30.00"), usd("0.00"), usd("0.00")));
    assert_eq!(redeems(&books), 0);
    books.check();
}

#[test]
fn an_order_created_then_cancelled_unpaid_gives_the_balance_back() {
    let mut books = ann_with_30();
    let placed = with_code("1", "100.00", "20.00");
    books.apply(&OrderEvent::Created(placed.clone()), t0());
    assert_eq!(books.account.available, usd("10.00"));
    books.apply(&OrderEvent::Cancelled(placed), days(1));
    assert_eq!(books.balances(), (usd("30.00"), usd("0.00"), usd("0.00")));
    assert_eq!(books.account.lifetime_used, usd("0.00"));
    books.check();
}
