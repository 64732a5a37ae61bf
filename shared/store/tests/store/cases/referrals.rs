//! Referral credits: written by their referred order's write, settled by
//! the change feed's consumer under the settled version it read.

use cashback_app::referral::ReferralSettle;
use cashback_app::store::*;
use cashback_core::ids::OrderId;
use cashback_core::money::Currency;
use cashback_core::orders::{OrderRecord, ReferralRecord};
use cashback_core::referrals::SettledState;

use super::{customer, shop, t0, usd};

fn referred(clawed_back: &str, granted: bool) -> OrderRecord {
    let mut record = OrderRecord::new(OrderId::parse("r1").unwrap(), Currency::USD);
    record.customer = Some(customer("bob"));
    record.referral = Some(ReferralRecord {
        referrer: customer("ann"),
        reward: usd("5.00"),
        pending: usd("5.00").checked_sub(usd(clawed_back)).unwrap(),
        clawed_back: usd(clawed_back),
        granted_at: granted.then(t0),
        issued_pending: true,
    });
    record
}

async fn write_order(store: &dyn Store, record: OrderRecord, expected_version: u64) {
    store
        .write(
            &shop(),
            WriteSet {
                order: Some(OrderWrite {
                    record,
                    expected_version,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                now: Some(t0()),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

async fn read_credit(
    store: &dyn Store,
    order: &str,
) -> Option<Versioned<cashback_app::referral::ReferralNote>> {
    let key = (customer("ann"), OrderId::parse(order).unwrap());
    store
        .read(
            &shop(),
            &ReadRequest {
                referral_credits: vec![key.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap()
        .referral_credits
        .remove(&key)
}

fn settle(settled: &cashback_core::referrals::ReferralSettled, expected_version: u64) -> WriteSet {
    WriteSet {
        referral_settled: Some(ReferralSettle {
            referrer: customer("ann"),
            order: OrderId::parse("r1").unwrap(),
            settled: settled.clone(),
            expected_version,
        }),
        ..WriteSet::default()
    }
}

pub async fn a_referral_credit_is_written_with_its_order_and_settled_under_its_version(
    store: &dyn Store,
) {
    write_order(store, referred("0", true), 0).await;
    let note = read_credit(store, "r1").await.expect("the order's credit");
    assert_eq!(note.version, 0);
    assert_eq!(note.value.credit.reward, usd("5.00"));
    assert_eq!(note.value.credit.buyer, Some(customer("bob")));
    assert_eq!(note.value.settled.state, SettledState::Waiting);

    // Settled once under the version read; a stale settle is a conflict.
    let mut settled = note.value.settled.clone();
    settled.state = SettledState::Credited;
    settled.pending = usd("5.00");
    store.write(&shop(), settle(&settled, 0)).await.unwrap();
    let stale = store.write(&shop(), settle(&settled, 0)).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let note = read_credit(store, "r1").await.unwrap();
    assert_eq!((note.version, &note.value.settled), (1, &settled));

    // The order written again (a refund): its credit moves, what was
    // settled stays.
    write_order(store, referred("2.00", true), 1).await;
    let note = read_credit(store, "r1").await.unwrap();
    assert_eq!(note.value.credit.clawed_back, usd("2.00"));
    assert_eq!((note.version, &note.value.settled), (1, &settled));

    // A settle of a credit that does not exist writes nothing.
    let mut missing = settle(&settled, 0);
    if let Some(settle) = missing.referral_settled.as_mut() {
        settle.order = OrderId::parse("nope").unwrap();
    }
    assert!(store.write(&shop(), missing).await.is_err());
    assert!(read_credit(store, "nope").await.is_none());
}

pub async fn a_reward_granted_with_the_referrers_account_writes_no_credit(store: &dyn Store) {
    write_order(store, referred("0", false), 0).await;
    assert!(read_credit(store, "r1").await.is_none());
}
