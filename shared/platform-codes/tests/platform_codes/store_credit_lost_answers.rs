//! Store credit calls whose answer was lost (a timeout, a 5xx after
//! applying), and accounts from before the cashback share was kept: the
//! share moves by each call that landed exactly once, never by one that
//! did not, and never by another call of the same amount.

use chrono::Duration;
use rust_decimal_macros::dec;

use cashback_app::admin::adjust;
use cashback_app::platform_codes::store_credit::IN_FLIGHT;
use cashback_app::store::{AccountWrite, AccountsRead, ReadRequest, WriteSet};
use cashback_test_support::fakes::faults::Fault;

use super::store_credit::{ann, program, shop, usd, with_a_released_balance, World};

async fn adjust_by(w: &World, amount: &str, key: &str) {
    adjust(
        &w.ctx,
        &shop(),
        &ann(),
        &format!(r#"{{"amount":"{amount}","reason":"test"}}"#),
        key,
        "admin",
        w.now(),
    )
    .await
    .unwrap();
}

/// Ann's account as the version before the share kept it: no share.
async fn forget_the_share(w: &World) {
    let read = w
        .ctx
        .store
        .read(&shop(), &ReadRequest::account(&ann()))
        .await
        .unwrap();
    let stored = read.accounts[&ann()].clone();
    let mut next = stored.value.clone();
    next.store_credit_share = None;
    w.ctx
        .store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite::new(&program(), next, stored.version)],
                accounts_read: AccountsRead::one(&stored),
                now: Some(w.now()),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

/// A credit whose answer was lost, left pending by the version before the
/// share: settling it does not open the share at the call's amount; the
/// share opens at the balance, which holds the call, and nothing is sent
/// twice.
#[tokio::test]
async fn a_call_pending_from_before_the_share_is_not_counted_twice() {
    let w = with_a_released_balance().await;
    adjust_by(&w, "6.00", "k1").await;
    w.fake.land_next_store_credit_call_late();
    assert!(w.sync_of(&ann()).await.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(w.balance_of(&ann()), dec!(18.00), "landed late");
    forget_the_share(&w).await;
    w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
    w.sync_and_check("settled, then opened").await;
    assert_eq!(w.balance_of(&ann()), dec!(18.00));
}

/// Ann's 12.00 of cashback is taken back and given again; the new credit
/// of 12.00 fails with a 5xx without landing. The earlier credit of the
/// same amount (the engine's own, a few seconds before) is not taken for
/// it: the credit is sent again, and her own 20.00 stays hers.
#[tokio::test]
async fn a_lost_call_is_never_taken_for_an_earlier_call_of_the_same_amount() {
    let w = with_a_released_balance().await;
    w.credit_by_hand("20.00").await;
    w.sync_and_check_beside("hers", dec!(20.00)).await;
    adjust_by(&w, "-12.00", "k1").await;
    let calls = |w: &World| w.fake.stats().calls.values().copied().sum::<u64>();
    let before = calls(&w);
    w.sync_and_check_beside("taken back", dec!(20.00)).await;
    let reads = calls(&w) - before - 1;
    adjust_by(&w, "12.00", "k2").await;
    for _ in 0..reads {
        w.fake.push_pass();
    }
    w.fake.push_fault(Fault::ServerError);
    assert!(w.sync_of(&ann()).await.is_err());
    assert_eq!(w.balance_of(&ann()), dec!(20.00), "the credit did not land");
    w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
    w.sync_and_check_beside("sent again", dec!(20.00)).await;
    assert_eq!(w.balance_of(&ann()), dec!(32.00));
}

/// A program in store-credit mode saved before the program had to say
/// what store credit already held is: nothing is guessed for a customer
/// read for the first time (their sync fails, to be parked and alarmed).
#[tokio::test]
async fn a_program_that_does_not_say_what_store_credit_is_held_opens_no_account() {
    let w = with_a_released_balance().await;
    let mut unsaid = program();
    unsaid.existing_store_credit = None;
    w.ctx
        .store
        .put_program(&shop(), &unsaid, 1, w.now())
        .await
        .unwrap();
    w.advance(Duration::minutes(5));
    let bob = cashback_core::ids::CustomerId::parse("1002").unwrap();
    w.paid(&bob, "7", "100.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    let synced = w.sync_of(&bob).await;
    assert!(synced.is_err(), "{synced:?}");
    assert!(
        format!("{synced:?}").contains("existing_store_credit"),
        "{synced:?}"
    );
    assert_eq!(w.fake.store_credit_balance("1002", "USD"), None);
    // Ann, whose share is open, still follows her ledger.
    adjust_by(&w, "3.00", "k1").await;
    w.sync_and_check("an open account").await;
    assert_eq!(w.account().await.available, usd("15.00"));
}
