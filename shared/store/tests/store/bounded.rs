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
use cashback_store::dynamo::encode_account;
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
pub async fn account_size(memory: &MemoryStore, program: &Program, customer: &str) -> (usize, usize) {
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
    assert!(bytes <= few + 64, "{bytes} bytes after 10,000, {few} after 3");
}
