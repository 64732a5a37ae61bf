//! Store credit under chaos: 20 customers, each holding store credit of
//! their own before the engine, 300 balance changes (cashback given and
//! taken back, payments with store credit, payments given back, card
//! payments refunded to store credit) synced while the fake Shopify
//! throttles, fails with 5xx, answers too late (after applying), applies
//! and answers 503, and two syncs of one customer run at once. Every
//! customer must end with their cashback plus exactly their own money,
//! the share equal to the ledger's target: nothing credited twice, nothing
//! of theirs taken.
//!
//! Prints the figures: `cargo test -p cashback-platform-codes --test
//! platform_codes store_credit_chaos -- --nocapture`.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use cashback_app::admin::adjust;
use cashback_app::platform_codes::store_credit::IN_FLIGHT;
use cashback_app::platform_codes::PlatformCodes;
use cashback_core::ids::CustomerId;
use cashback_test_support::fakes::faults::FaultRates;

use cashback_test_support::fakes::shopify::FakeShopify;

use super::store_credit::{program, shop, usd, World};

const CUSTOMERS: u64 = 20;
const CHANGES: u64 = 300;
const OWN: Decimal = dec!(10.00);

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn customer(n: u64) -> CustomerId {
    CustomerId::parse(&(2001 + n).to_string()).unwrap()
}

fn dollars(cents: u64) -> Decimal {
    Decimal::new(cents as i64, 2)
}

/// What the ledger says the customer's store credit must hold of cashback.
async fn target(w: &World, who: &CustomerId) -> Decimal {
    let spendable = w.account_of(who).await.spendable().amount();
    if spendable >= dec!(5) {
        spendable
    } else {
        Decimal::ZERO
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_credit_chaos_ends_with_cashback_beside_the_customers_own() {
    // Shopify Plus's restore rate (1,000 points a second): the run is bound
    // by the faults and the syncs, not by waiting for the bucket.
    let w = World::with_shopify(
        program(),
        50,
        FakeShopify::with_bucket(2000.0, 1000.0).await,
    )
    .await;
    // Each customer's own store credit, given before the engine reads it,
    // and 10.00 of cashback released.
    let mut own: HashMap<u64, Decimal> = HashMap::new();
    for n in 0..CUSTOMERS {
        let who = customer(n);
        w.platform
            .store_credit()
            .unwrap()
            .credit(
                &who,
                usd(&OWN.to_string()),
                tokio::time::Instant::now() + StdDuration::from_secs(5),
            )
            .await
            .unwrap();
        own.insert(n, OWN);
        w.paid(
            &who,
            &format!("{}", 100 + n),
            "100.00",
            &["shopify_payments"],
        )
        .await;
    }
    w.advance(Duration::days(2));
    w.release().await;
    for n in 0..CUSTOMERS {
        w.sync_of(&customer(n)).await.unwrap();
    }
    let calls_before = w.fake.stats().calls.values().copied().sum::<u64>();

    w.fake.set_fault_rates(
        FaultRates {
            throttle: 0.03,
            server_error: 0.04,
            timeout: 0.03,
            duplicate: 0.03,
            delay: StdDuration::from_millis(400),
            jitter: StdDuration::from_millis(5),
        },
        7,
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut in_step: HashMap<u64, bool> = (0..CUSTOMERS).map(|n| (n, true)).collect();
    // Payments with store credit not given back yet: (customer, order, amount).
    let mut payments: Vec<(u64, String, Decimal)> = Vec::new();
    let started = Instant::now();
    let (mut syncs, mut failed) = (0u64, 0u64);
    for change in 0..CHANGES {
        let n = rng.below(CUSTOMERS);
        let who = customer(n);
        let account = w.account_of(&who).await;
        let share = account
            .store_credit_share
            .map(|s| s.amount())
            .unwrap_or_default();
        match rng.below(10) {
            // Cashback given (a goodwill credit through the engine).
            0..=3 => {
                let amount = dollars(100 + rng.below(1500));
                adjust(
                    &w.ctx,
                    &shop(),
                    &who,
                    &format!(r#"{{"amount":"{amount}","reason":"chaos"}}"#),
                    &format!("c{change}"),
                    "admin",
                    w.now(),
                )
                .await
                .unwrap();
            }
            // Cashback taken back, within what is spendable.
            4 | 5 => {
                let spendable = account.spendable().amount();
                if spendable >= dec!(0.01) {
                    let cents = (spendable * dec!(100))
                        .trunc()
                        .to_string()
                        .parse::<u64>()
                        .unwrap();
                    let amount = dollars(1 + rng.below(cents));
                    adjust(
                        &w.ctx,
                        &shop(),
                        &who,
                        &format!(r#"{{"amount":"-{amount}","reason":"chaos"}}"#),
                        &format!("c{change}"),
                        "admin",
                        w.now(),
                    )
                    .await
                    .unwrap();
                }
            }
            // A payment with store credit, within the cashback on Shopify
            // (only when the last sync left the customer in step).
            6 | 7 => {
                if in_step[&n] && share >= dec!(0.01) {
                    let cents = (share * dec!(100))
                        .trunc()
                        .to_string()
                        .parse::<u64>()
                        .unwrap();
                    let amount = dollars(1 + rng.below(cents));
                    let order = format!("{}", 5_000 + change);
                    assert!(w
                        .fake
                        .pay_with_store_credit(who.as_str(), "USD", amount, &order));
                    payments.push((n, order, amount));
                }
            }
            // A payment given back, whole.
            8 => {
                if let Some(index) = payments.iter().position(|(p, _, _)| *p == n) {
                    let (_, order, amount) = payments.remove(index);
                    assert!(w.fake.revert_store_credit_payment(
                        who.as_str(),
                        "USD",
                        amount,
                        &order,
                        "ORDER_REFUND"
                    ));
                }
            }
            // A card payment refunded to store credit: theirs.
            _ => {
                let amount = dollars(100 + rng.below(900));
                assert!(w.fake.refund_to_store_credit(
                    who.as_str(),
                    "USD",
                    amount,
                    &format!("{}", 8_000 + change)
                ));
                *own.get_mut(&n).unwrap() += amount;
            }
        }
        // The sync, now and then two at once.
        let ok = if rng.below(5) == 0 {
            let (a, b) = tokio::join!(w.sync_of(&who), w.sync_of(&who));
            syncs += 2;
            failed += u64::from(a.is_err()) + u64::from(b.is_err());
            a.is_ok() || b.is_ok()
        } else {
            let a = w.sync_of(&who).await;
            syncs += 1;
            failed += u64::from(a.is_err());
            a.is_ok()
        };
        in_step.insert(n, ok);
        if change % 10 == 9 {
            w.advance(Duration::seconds(61));
        }
    }
    let elapsed = started.elapsed();
    let injected = w.fake.injected().len();
    w.fake.set_fault_rates(FaultRates::default(), 7);
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    w.advance(Duration::from_std(IN_FLIGHT).unwrap() + Duration::seconds(1));
    for n in 0..CUSTOMERS {
        let who = customer(n);
        let mut last = None;
        for _ in 0..4 {
            last = Some(w.sync_of(&who).await);
            if matches!(last, Some(Ok(_))) {
                break;
            }
            w.advance(Duration::seconds(61));
        }
        assert!(matches!(last, Some(Ok(_))), "customer {n}: {last:?}");
    }
    for n in 0..CUSTOMERS {
        let who = customer(n);
        let cashback = target(&w, &who).await;
        let account = w.account_of(&who).await;
        assert_eq!(
            account.store_credit_share.map(|s| s.amount()),
            Some(cashback),
            "customer {n}: the share is the ledger's target"
        );
        assert_eq!(
            w.balance_of(&who),
            cashback + own[&n],
            "customer {n}: their cashback beside exactly their own"
        );
    }
    let calls = w.fake.stats().calls.values().copied().sum::<u64>() - calls_before;
    println!(
        "store credit chaos: {CHANGES} changes, {syncs} syncs ({failed} failed and retried later), \
         {injected} injected faults, {calls} platform requests ({:.2} per change), {:.1} s",
        calls as f64 / CHANGES as f64,
        elapsed.as_secs_f64()
    );
}
