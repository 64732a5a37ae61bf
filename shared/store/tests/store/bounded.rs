//! Items that stay small whatever the history (DESIGN.md section 7): a
//! loyal customer's 10,000 orders through the real order-event use case,
//! then the account item this adapter would store for them, measured with
//! DynamoDB's size rules (`cashback_store::dynamo::size`).

use std::sync::Arc;

use chrono::Duration;

use cashback_app::events::handle_order_event;
use cashback_app::store::*;
use cashback_core::ids::*;
use cashback_core::money::Currency;
use cashback_core::order::*;
use cashback_core::program::{Issuance, Program};
use cashback_store::dynamo::size::item_size;
use cashback_store::dynamo::{encode_account, encode_order};
use cashback_store::MemoryStore;
use cashback_test_support::doubles::Silent;
use cashback_test_support::fixtures::{shop, t0, usd};
use cashback_test_support::jobs::context;

/// One paid order of `amount` for `customer`, at `at`.
pub fn paid(id: &str, customer: &str, amount: &str, at: chrono::DateTime<chrono::Utc>) -> Order {
    let total = usd(amount);
    Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse(customer).unwrap()),
            email: Some(Email::parse(&format!("{customer}@example.com")).unwrap()),
        },
        currency: Currency::USD,
        lines: vec![Line {
            line_id: LineId::parse("1").unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: 1,
            unit_price: total,
            discount: usd("0"),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }],
        subtotal: total,
        shipping: usd("0"),
        total,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: at,
    }
}

/// The account item's size after `orders` orders, one an hour, each
/// crediting its cashback at once.
async fn account_item_after(orders: u32) -> (usize, usize) {
    let mut program = cashback_test_support::fixtures::program();
    program.issuance = Issuance::Immediate;
    let memory = Arc::new(MemoryStore::new());
    let ctx = context(memory.clone(), Arc::new(Silent), &program).await;
    for n in 0..orders {
        let at = t0() + Duration::hours(i64::from(n));
        let order = paid(&format!("o{n}"), "loyal", "25.00", at);
        handle_order_event(&ctx, &shop(), &OrderEvent::Paid(order), at)
            .await
            .unwrap();
    }
    account_size(&memory, &program, "loyal").await
}

/// The encoded account item's size and its number of lots.
pub async fn account_size(
    memory: &MemoryStore,
    program: &Program,
    customer: &str,
) -> (usize, usize) {
    let id = CustomerId::parse(customer).unwrap();
    let read = memory
        .read(&shop(), &ReadRequest::account(&id))
        .await
        .unwrap();
    let account = read.accounts[&id].clone();
    let lots = account.value.lots.len();
    let item = encode_account(&shop(), &AccountWrite::of(program, account)).unwrap();
    (item_size(&item), lots)
}

#[tokio::test]
async fn a_customer_with_ten_thousand_orders_keeps_an_account_item_under_2_kb() {
    let (bytes, lots) = account_item_after(10_000).await;
    println!("account item after 10,000 orders: {bytes} bytes, {lots} lot(s)");
    assert_eq!(lots, 1, "nothing expires: one lot");
    assert!(bytes < 2048, "account item of {bytes} bytes");
    // About the size after a handful: only the figures' digits grow.
    let (few, _) = account_item_after(3).await;
    assert!(
        bytes <= few + 64,
        "{bytes} bytes after 10,000, {few} after 3"
    );
}

/// The order items this adapter would store for a 250-line order after 30
/// refunds of two lines each, all through the order-event use case: the
/// lines item (written once, at the first event) and the state item every
/// event rewrites.
pub async fn big_order_items() -> (usize, usize) {
    let record = big_order_record().await;
    let (state, lines) = encode_order(&shop(), &OrderWrite::of(record, false)).unwrap();
    (
        item_size(&state),
        lines.as_ref().map(item_size).unwrap_or(0),
    )
}

/// The record of that order after its refunds, in memory.
pub async fn big_order_record() -> Versioned<cashback_core::orders::OrderRecord> {
    let program = cashback_test_support::fixtures::program();
    let memory = Arc::new(MemoryStore::new());
    let ctx = context(memory.clone(), Arc::new(Silent), &program).await;
    let mut order = paid("5001", "loyal", "4.00", t0());
    let line = order.lines[0].clone();
    order.lines = (1..=250)
        .map(|n| Line {
            line_id: LineId::parse(&format!("1400000{n:04}")).unwrap(),
            ..line.clone()
        })
        .collect();
    order.subtotal = usd("1000.00");
    order.total = usd("1000.00");
    handle_order_event(&ctx, &shop(), &OrderEvent::Paid(order), t0())
        .await
        .unwrap();
    for k in 0..30 {
        let lines = [2 * k + 1, 2 * k + 2]
            .into_iter()
            .map(|n| RefundedLine {
                line_id: LineId::parse(&format!("1400000{n:04}")).unwrap(),
                quantity: 1,
            })
            .collect();
        let refund = OrderEvent::Refunded(Refund {
            refund_id: RefundId::parse(&format!("9100000{k:04}")).unwrap(),
            order_id: OrderId::parse("5001").unwrap(),
            basis: RefundBasis::Lines { lines },
            occurred_at: t0(),
        });
        handle_order_event(&ctx, &shop(), &refund, t0() + Duration::minutes(k))
            .await
            .unwrap();
    }
    let read = memory
        .read(
            &shop(),
            &ReadRequest::order(OrderId::parse("5001").unwrap()),
        )
        .await
        .unwrap();
    let record = read.order.unwrap();
    assert_eq!(record.value.refunds.len(), 30);
    record
}

#[tokio::test]
async fn a_250_line_order_with_30_refunds_keeps_its_lines_apart_from_its_small_state() {
    let (state, lines) = big_order_items().await;
    println!("250-line order after 30 refunds: state item {state} bytes, lines item {lines} bytes");
    // Before: one item of about 41 KB (82 WCU) rewritten by every event.
    assert!(
        lines < 12 * 1024,
        "lines item of {lines} bytes, written once"
    );
    assert!(state < 1024, "state item of {state} bytes");
}

/// A customer's account after 10,000 orders over `over_days` (spread
/// evenly, each credited at once) under `expiry_days` of expiry, the
/// expiry run once a day as the scheduled job would: at most one lot per
/// expiry period on which balance expires (about 31 whatever the expiry).
pub async fn orders_under_expiry(
    expiry_days: u32,
    over_days: i64,
) -> (Program, cashback_core::ledger::Account) {
    let mut program = cashback_test_support::fixtures::program();
    program.issuance = Issuance::Immediate;
    program.expiry_days = Some(expiry_days);
    let memory = Arc::new(MemoryStore::new());
    let ctx = context(memory.clone(), Arc::new(Silent), &program).await;
    let id = CustomerId::parse("loyal").unwrap();
    let mut day = 0;
    for n in 0..10_000i64 {
        let at = t0() + Duration::seconds(n * over_days * 86_400 / 10_000);
        let today = (at - t0()).num_days();
        if today != day {
            day = today;
            expire(&memory, &program, &id, at).await;
        }
        let order = paid(&format!("o{n}"), "loyal", "25.00", at);
        handle_order_event(&ctx, &shop(), &OrderEvent::Paid(order), at)
            .await
            .unwrap();
    }
    let read = memory
        .read(&shop(), &ReadRequest::account(&id))
        .await
        .unwrap();
    let account = read.accounts[&id].value.clone();
    let mut entries = Vec::new();
    let mut cursor = None;
    loop {
        let page = memory.ledger(&shop(), &id, cursor, 1000).await.unwrap();
        entries.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(account.check(&entries), Ok(()), "ledger invariants");
    (program, account)
}

/// What the expiry job does for one account at `now`.
async fn expire(
    memory: &MemoryStore,
    program: &Program,
    id: &CustomerId,
    now: chrono::DateTime<chrono::Utc>,
) {
    let read = memory
        .read(&shop(), &ReadRequest::account(id))
        .await
        .unwrap();
    let Some(mut account) = read.accounts.get(id).cloned() else {
        return;
    };
    let applied = account.value.expire_balance(now).unwrap();
    if applied.entries.is_empty() {
        return;
    }
    let outcome = memory
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite::of(program, account).with_entries(applied.entries)],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

/// The account item's size and lots after 10,000 orders over `over_days`
/// under `expiry_days` of expiry, printed with `what`.
async fn account_under_expiry(expiry_days: u32, over_days: i64, what: &str) -> (usize, usize) {
    let (program, account) = orders_under_expiry(expiry_days, over_days).await;
    let lots = account.lots.len();
    let item = encode_account(
        &shop(),
        &AccountWrite::of(&program, Versioned::new(account)),
    )
    .unwrap();
    let bytes = item_size(&item);
    println!("account item after 10,000 orders {what}: {bytes} bytes, {lots} lots");
    (bytes, lots)
}

#[tokio::test]
async fn a_year_of_orders_under_30_day_expiry_keeps_the_account_item_under_2_kb() {
    let (bytes, lots) = account_under_expiry(30, 365, "in a year, 30-day expiry").await;
    assert!(
        lots >= 30,
        "one lot per day on which balance expires: {lots}"
    );
    assert!(bytes < 2048, "account item of {bytes} bytes");
}

/// Under a year's expiry a daily customer's balance expires on a moment
/// per 12-day period, not per day: two years of orders (the first year's
/// credits expiring during the second) leave about 31 lots, not 365.
#[tokio::test]
async fn two_years_of_orders_under_a_year_of_expiry_keep_the_account_item_under_2_kb() {
    let (bytes, lots) = account_under_expiry(365, 730, "in two years, 365-day expiry").await;
    assert!(lots <= 33, "one lot per 12-day expiry period: {lots}");
    assert!(bytes < 2048, "account item of {bytes} bytes");
}
