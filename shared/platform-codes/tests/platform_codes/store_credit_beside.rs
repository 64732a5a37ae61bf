//! Cashback beside the store credit that is the customer's own: credit
//! the shop or another app gave, a card payment refunded to store credit,
//! credit running out. Only the cashback share moves with the ledger; the
//! rest is never taken, and never pays a clawback's debt.

use chrono::Duration;
use rust_decimal_macros::dec;

use cashback_app::admin::adjust;
use cashback_app::platform_codes::PlatformSync;
use cashback_core::platform_code::ExistingStoreCredit;

use super::store_credit::{ann, program, shop, usd, with_a_released_balance, World};

/// Credit the shop gave Ann before the engine read her account stays hers:
/// the engine puts her cashback beside it, a payment spends the cashback
/// first, and a change of mode takes away only what is left of cashback.
#[tokio::test]
async fn store_credit_from_elsewhere_is_kept_apart_and_cashback_is_spent_first() {
    let w = World::new().await;
    w.credit_by_hand("30.00").await;
    w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
    w.sync_and_check_beside("earn", dec!(30.00)).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check_beside("release", dec!(30.00)).await;
    assert_eq!(w.balance_of(&ann()), dec!(42.00));
    // 20.00 paid with store credit: 12.00 of cashback first, then 8.00 of hers.
    assert!(w
        .fake
        .pay_with_store_credit("1001", "USD", dec!(20.00), "2"));
    w.sync_and_check_beside("a payment beyond the cashback", dec!(22.00))
        .await;
    let account = w.account().await;
    assert_eq!(account.available, usd("0.00"));
    assert_eq!(account.debt, usd("0.00"));
    assert_eq!(account.lifetime_used, usd("12.00"));
    // New cashback goes beside what is left of hers.
    w.paid(&ann(), "3", "70.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check_beside("more cashback", dec!(22.00)).await;
    assert_eq!(w.balance_of(&ann()), dec!(29.00));
    // Leaving store-credit mode empties the cashback only (7.00 moves to a
    // discount code); her 22.00 stays.
    w.switch_to(PlatformSync::DiscountCode).await;
    w.backfill().await;
    assert_eq!(w.balance_of(&ann()), dec!(22.00));
    assert_eq!(w.account().await.available, usd("7.00"));
}

/// A shop moving from an app that kept rewards as store credit, whose
/// balances it imported, counts the store credit already there as the
/// ledger's cashback (up to the spendable balance): the balance is never
/// given twice, and what is beyond it stays the customer's.
#[tokio::test]
async fn store_credit_counted_as_cashback_is_never_given_twice() {
    for (held, sent, own) in [
        (dec!(15.00), 0, dec!(3.00)),
        (dec!(12.00), 0, dec!(0)),
        (dec!(4.00), 1, dec!(0)),
    ] {
        let mut counted = program();
        counted.existing_store_credit = Some(ExistingStoreCredit::CountedAsCashback);
        let w = World::with(counted, 50).await;
        w.credit_by_hand(&held.to_string()).await;
        // The ledger holds 12.00 before the engine first reads her account.
        w.paid(&ann(), "1", "120.00", &["shopify_payments"]).await;
        w.advance(Duration::days(2));
        w.release().await;
        let before = w.credit_transactions();
        w.sync_and_check_beside("first read", own).await;
        assert_eq!(w.credit_transactions(), before + sent, "held {held}");
        assert_eq!(w.balance_of(&ann()), dec!(12.00) + own, "held {held}");
    }
}

/// An imported balance under the program's minimum, counted as cashback:
/// it is cashback (the share opens at the spendable balance, not at the
/// minimum's 0), so it leaves the store credit like cashback below the
/// minimum does, and comes back with the next cashback, never twice.
#[tokio::test]
async fn store_credit_counted_as_cashback_below_the_minimum_is_cashback() {
    let mut counted = program();
    counted.existing_store_credit = Some(ExistingStoreCredit::CountedAsCashback);
    let w = World::with(counted, 50).await;
    w.credit_by_hand("4.00").await;
    w.paid(&ann(), "1", "40.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("under the minimum").await;
    assert_eq!(w.balance_of(&ann()), dec!(0));
    w.paid(&ann(), "2", "20.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("above it").await;
    assert_eq!(w.balance_of(&ann()), dec!(6.00));
}

/// A card payment refunded to store credit is the customer's own money:
/// it pays no clawback's debt and leaves their lifetime use alone. Money
/// given back by the order that spent cashback is cashback, up to what that
/// order took, however Shopify labels it (a plain credit here, not a
/// reverted payment), so it pays the debt first.
#[tokio::test]
async fn a_card_payment_refunded_to_store_credit_is_the_customers_and_pays_no_debt() {
    let w = with_a_released_balance().await;
    assert!(w
        .fake
        .pay_with_store_credit("1001", "USD", dec!(12.00), "2"));
    w.sync_and_check("cashback spent on order 2").await;
    // Order 1, which earned it, is refunded whole: 12.00 owed.
    w.refund("1", "120.00", "r1").await;
    w.sync_and_check("the clawback").await;
    assert_eq!(w.account().await.debt, usd("12.00"));
    // Order 3, paid by card, refunded to store credit.
    assert!(w
        .fake
        .refund_to_store_credit("1001", "USD", dec!(30.00), "3"));
    w.sync_and_check_beside("a card payment refunded to store credit", dec!(30.00))
        .await;
    let account = w.account().await;
    assert_eq!(account.debt, usd("12.00"), "hers pays no debt");
    assert_eq!(account.lifetime_used, usd("12.00"));
    assert_eq!(account.available, usd("0.00"));
    // Order 2 refunded to store credit as a plain credit: what it took of
    // cashback comes back as cashback and pays the debt.
    assert!(w
        .fake
        .refund_to_store_credit("1001", "USD", dec!(12.00), "2"));
    w.sync_and_check_beside("the spending order refunded", dec!(30.00))
        .await;
    let account = w.account().await;
    assert_eq!(account.debt, usd("0.00"), "the debt is paid first");
    assert_eq!(account.available, usd("0.00"), "never spendable twice");
    assert_eq!(account.lifetime_used, usd("0.00"));
    // Beyond what it took (its card part): hers.
    assert!(w
        .fake
        .refund_to_store_credit("1001", "USD", dec!(5.00), "2"));
    w.sync_and_check_beside("order 2 refunded beyond its cashback", dec!(35.00))
        .await;
    assert_eq!(w.account().await.available, usd("0.00"));
}

/// The shop's own credit running out takes nothing from the cashback. A
/// debit by hand larger than what is the customer's took cashback: the
/// engine does not guess it back from a read (a read can be older than
/// what another sync followed); it says so, and the ledger's later debits
/// take at most what is there, so the customer is never stuck.
#[tokio::test]
async fn the_shops_own_credit_expiring_or_debited_by_hand_leaves_the_cashback() {
    let w = with_a_released_balance().await;
    w.credit_by_hand("10.00").await;
    w.sync_and_check_beside("hers", dec!(10.00)).await;
    assert!(w.fake.expire_store_credit("1001", "USD", dec!(4.00)));
    w.sync_and_check_beside("hers running out", dec!(6.00))
        .await;
    assert_eq!(w.account().await.available, usd("12.00"));
    w.debit_by_hand("10.00").await;
    assert_eq!(w.balance_of(&ann()), dec!(8.00));
    w.sync_of(&ann()).await.unwrap();
    assert_eq!(w.balance_of(&ann()), dec!(8.00), "not guessed back");
    assert_eq!(w.account().await.store_credit_share, Some(usd("12.00")));
    // The cashback taken back whole: the debit takes what is there.
    adjust(
        &w.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"-12.00","reason":"correction"}"#,
        "k-hand",
        "admin",
        w.now(),
    )
    .await
    .unwrap();
    w.sync_of(&ann()).await.unwrap();
    assert_eq!(w.balance_of(&ann()), dec!(0));
    w.sync_of(&ann()).await.unwrap();
    assert_eq!(w.balance_of(&ann()), dec!(0));
}

/// A debit by hand that took 4.00 of cashback, recorded by the merchant as
/// an adjustment taken on the platform: the ledger and the share both move
/// by it, nothing is sent, and what Ann earns next reaches her store
/// credit in full. Such an adjustment is refused as a credit, and outside
/// store-credit mode.
#[tokio::test]
async fn a_debit_by_hand_is_recorded_as_taken_on_the_platform() {
    let w = with_a_released_balance().await;
    w.credit_by_hand("6.00").await;
    w.sync_and_check_beside("hers", dec!(6.00)).await;
    w.debit_by_hand("10.00").await;
    let taken = |amount: &str, flag: &str, key: &str| {
        let body = format!(
            r#"{{"amount":"{amount}","reason":"taken by hand","taken_on_platform":{flag}}}"#
        );
        let (ctx, now, key) = (w.ctx.clone(), w.now(), key.to_string());
        async move { adjust(&ctx, &shop(), &ann(), &body, &key, "admin", now).await }
    };
    let refused = taken("4.00", "true", "k-credit").await;
    assert!(
        matches!(refused, Err(ref e) if format!("{e:?}").contains("taken_on_platform")),
        "{refused:?}"
    );
    let recorded = taken("-4.00", "true", "k-taken").await.unwrap();
    assert_eq!(recorded.status, 201, "{:?}", recorded.body);
    let moves = |w: &World| {
        let calls = w.fake.stats().calls;
        calls.get("store_credit_credit").copied().unwrap_or(0)
            + calls.get("store_credit_debit").copied().unwrap_or(0)
    };
    let before = moves(&w);
    w.sync_and_check("recorded").await;
    assert_eq!(w.account().await.available, usd("8.00"));
    assert_eq!(w.balance_of(&ann()), dec!(8.00));
    assert_eq!(moves(&w), before, "nothing sent");
    w.paid(&ann(), "3", "30.00", &["shopify_payments"]).await;
    w.advance(Duration::days(2));
    w.release().await;
    w.sync_and_check("earned after").await;
    assert_eq!(w.balance_of(&ann()), dec!(11.00));
}
