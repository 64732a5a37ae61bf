//! Lots merged by expiry day against lots never merged: over random
//! credits (under changing expiry settings), debits, holds and expiry runs,
//! the merged account spends, holds and expires exactly what a reference
//! that keeps one lot per credit would (its lots are the reference's with
//! neighbours of one expiry added together), and under one expiry setting
//! keeps no more lots than there are distinct expiries.

use crate::support::*;
use cashback_core::ids::CheckoutId;
use cashback_core::ledger::{Account, Lot};
use cashback_core::money::{Currency, Money};
use cashback_core::program::Program;
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Debug, Clone)]
enum Step {
    Credit { cents: u32, expiry: Option<u32> },
    Debit { cents: u32 },
    Hold { checkout: u8, cents: u32 },
    Expire,
}

fn money_cents(cents: u32) -> Money {
    Money::new(Decimal::new(i64::from(cents), 2), Currency::USD).unwrap()
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u32..10_000, prop::option::of(prop::sample::select(vec![1u32, 2, 3, 30]))).prop_map(|(cents, expiry)| Step::Credit { cents, expiry }),
        2 => (1u32..10_000).prop_map(|cents| Step::Debit { cents }),
        1 => (0u8..3, 1u32..5_000).prop_map(|(checkout, cents)| Step::Hold { checkout, cents }),
        2 => Just(Step::Expire),
    ]
}

/// One lot per credit, never merged: the rules as they were written
/// before merging, spent and expired oldest first.
#[derive(Default)]
struct Reference {
    lots: Vec<(Option<DateTime<Utc>>, Decimal)>,
}

impl Reference {
    fn total(&self) -> Decimal {
        self.lots.iter().map(|(_, r)| *r).sum()
    }

    fn take(&mut self, mut amount: Decimal) {
        for lot in &mut self.lots {
            let part = lot.1.min(amount);
            lot.1 -= part;
            amount -= part;
        }
        self.lots.retain(|(_, r)| *r > Decimal::ZERO);
    }

    /// What `expire_balance` takes: due lots, oldest first, never what a
    /// live hold holds; the rest of a due lot waits for the last hold.
    fn expire(&mut self, now: DateTime<Utc>, account_before: &Account) -> Decimal {
        let live: Vec<_> = account_before
            .holds
            .iter()
            .filter(|h| h.expires_at > now)
            .collect();
        let held: Decimal = live.iter().map(|h| h.amount.amount()).sum();
        let last_hold = live.iter().map(|h| h.expires_at).max();
        let is_due = |at: &Option<DateTime<Utc>>| at.is_some_and(|at| at <= now);
        let due: Decimal = self.lots.iter().filter(|l| is_due(&l.0)).map(|l| l.1).sum();
        let amount = due.min((self.total() - held).max(Decimal::ZERO));
        let mut left = amount;
        for lot in self.lots.iter_mut().filter(|l| is_due(&l.0)) {
            let part = lot.1.min(left);
            lot.1 -= part;
            left -= part;
        }
        self.lots.retain(|(_, r)| *r > Decimal::ZERO);
        if let Some(until) = last_hold {
            for lot in &mut self.lots {
                if is_due(&lot.0) {
                    lot.0 = Some(until);
                }
            }
        }
        amount
    }

    /// Neighbours with one expiry as one lot: what the merged account keeps.
    fn merged(&self) -> Vec<(Option<DateTime<Utc>>, Decimal)> {
        let mut merged: Vec<(Option<DateTime<Utc>>, Decimal)> = Vec::new();
        for (at, remaining) in &self.lots {
            match merged.last_mut() {
                Some(last) if last.0 == *at => last.1 += *remaining,
                _ => merged.push((*at, *remaining)),
            }
        }
        merged
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn merging_lots_never_changes_what_is_spendable_or_expires(
        steps in prop::collection::vec((arb_step(), 0i64..30), 1..60)
    ) {
        let mut program = Program::new(Currency::USD);
        let mut account = Account::open(
            cashback_core::ids::ShopId::parse("shop-1").unwrap(),
            cashback_core::ids::CustomerId::parse("cust-1").unwrap(),
            Currency::USD,
        );
        let mut reference = Reference::default();
        let mut now = t0();
        let mut expiries = std::collections::BTreeSet::new();
        let mut settings = std::collections::BTreeSet::new();
        for (n, (step, hours)) in steps.iter().enumerate() {
            now += Duration::hours(*hours);
            match step {
                Step::Credit { cents, expiry } => {
                    program.expiry_days = *expiry;
                    settings.insert(*expiry);
                    let amount = money_cents(*cents);
                    account.adjust(amount, "credit", &format!("c{n}"), &program, now).unwrap();
                    let expires = Lot::expiry(&program, now);
                    expiries.insert(expires);
                    reference.lots.push((expires, amount.amount()));
                }
                Step::Debit { cents } => {
                    let wanted = money_cents(*cents).min(account.spendable()).unwrap();
                    if wanted.is_positive() {
                        account.adjust(wanted.negated(), "debit", &format!("d{n}"), &program, now).unwrap();
                        reference.take(wanted.amount());
                    }
                }
                Step::Hold { checkout, cents } => {
                    let checkout = CheckoutId::parse(&format!("chk{checkout}")).unwrap();
                    let _ = account.place_hold(checkout, money_cents(*cents), now, 900);
                }
                Step::Expire => {
                    let before = account.clone();
                    let applied = account.expire_balance(now).unwrap();
                    let expired: Decimal = applied.entries.iter().map(|e| -e.available_delta.amount()).sum();
                    let want = reference.expire(now, &before);
                    prop_assert_eq!(expired, want, "expired amount at step {}", n);
                    for lot in &reference.lots {
                        expiries.insert(lot.0);
                    }
                }
            }
            prop_assert_eq!(account.available.amount(), reference.total());
            let held: Decimal = account.holds.iter().map(|h| h.amount.amount()).sum();
            prop_assert_eq!(account.spendable().amount(), (reference.total() - held).max(Decimal::ZERO));
            let kept: Vec<_> = account.lots.iter().map(|l| (l.expires_at, l.remaining.amount())).collect();
            prop_assert_eq!(kept, reference.merged());
            if settings.len() <= 1 {
                // Under one expiry setting, lots are in expiry order: one per expiry.
                prop_assert!(account.lots.len() <= expiries.len());
            }
            prop_assert!(account.lots.windows(2).all(|p| p[0].expires_at != p[1].expires_at));
        }
    }
}

#[test]
fn credits_that_never_expire_are_one_lot_whatever_their_number() {
    let program = Program::new(Currency::USD);
    let mut account = Account::open(
        cashback_core::ids::ShopId::parse("shop-1").unwrap(),
        cashback_core::ids::CustomerId::parse("cust-1").unwrap(),
        Currency::USD,
    );
    for n in 0..1_000 {
        account
            .adjust(usd("1.00"), "credit", &format!("c{n}"), &program, days(n))
            .unwrap();
    }
    assert_eq!(account.lots.len(), 1);
    assert_eq!(account.lots[0].remaining, usd("1000.00"));
    assert_eq!(
        account.lots[0].credited_at,
        t0(),
        "the first credit dates it"
    );
}

#[test]
fn credits_of_one_day_expire_together_at_its_end() {
    let mut program = Program::new(Currency::USD);
    program.expiry_days = Some(30);
    let mut account = Account::open(
        cashback_core::ids::ShopId::parse("shop-1").unwrap(),
        cashback_core::ids::CustomerId::parse("cust-1").unwrap(),
        Currency::USD,
    );
    // t0 is noon: credits at noon and at 23:59 share the day; 00:01 does not.
    for (n, at) in [
        t0(),
        t0() + Duration::minutes(719),
        t0() + Duration::minutes(721),
    ]
    .into_iter()
    .enumerate()
    {
        account
            .adjust(usd("1.00"), "credit", &format!("c{n}"), &program, at)
            .unwrap();
    }
    let end_of_day_30 = days(30) + Duration::hours(12);
    let expiries: Vec<_> = account
        .lots
        .iter()
        .map(|l| (l.expires_at, l.remaining))
        .collect();
    assert_eq!(
        expiries,
        vec![
            (Some(end_of_day_30), usd("2.00")),
            (Some(end_of_day_30 + Duration::days(1)), usd("1.00")),
        ]
    );
}

proptest! {
    /// A credit never expires before the days promised, at most one expiry
    /// period after them, always at a midnight that starts a period, and
    /// under 32 days of expiry at the end of the day it falls on.
    #[test]
    fn an_expiry_is_rounded_up_to_its_period_and_never_early(
        expiry_days in 1u32..=3650,
        seconds in 0i64..(20 * 365 * 86_400),
        nanos in prop::sample::select(vec![0u32, 1, 500_000_000]),
    ) {
        let mut program = Program::new(Currency::USD);
        program.expiry_days = Some(expiry_days);
        let at = t0() + Duration::seconds(seconds) + Duration::nanoseconds(i64::from(nanos));
        let promised = at + Duration::days(i64::from(expiry_days));
        let period = Lot::expiry_period_days(expiry_days);
        let expires = Lot::expiry(&program, at).unwrap();
        prop_assert!(expires >= promised);
        prop_assert!(expires < promised + Duration::days(i64::from(period)));
        prop_assert_eq!(expires.timestamp_subsec_nanos(), 0);
        prop_assert_eq!(expires.timestamp().rem_euclid(i64::from(period) * 86_400), 0);
        if expiry_days <= 31 {
            prop_assert_eq!(period, 1);
        }
        // At most 32 expiry moments in any window of `expiry_days`.
        prop_assert!(expiry_days.div_ceil(period) <= 31);
    }
}

/// A customer credited every day for ten years under a year's expiry, the
/// expiry run daily: lots stay one per 12-day period, never more than 33,
/// whatever the history's length.
#[test]
fn a_daily_credit_under_a_year_of_expiry_keeps_about_thirty_lots() {
    let mut program = Program::new(Currency::USD);
    program.expiry_days = Some(365);
    let mut account = Account::open(
        cashback_core::ids::ShopId::parse("shop-1").unwrap(),
        cashback_core::ids::CustomerId::parse("cust-1").unwrap(),
        Currency::USD,
    );
    let mut most = 0;
    for n in 0..3_650 {
        account
            .adjust(usd("1.00"), "credit", &format!("c{n}"), &program, days(n))
            .unwrap();
        account.expire_balance(days(n)).unwrap();
        most = most.max(account.lots.len());
    }
    assert!(most <= 33, "{most} lots");
    // Every credit of the last year is still there; nothing older is.
    let left = account.available.amount();
    assert!(
        left >= usd("365.00").amount() && left <= usd("377.00").amount(),
        "{left}"
    );
    let total: Decimal = account.lots.iter().map(|l| l.remaining.amount()).sum();
    assert_eq!(total, left);
}
