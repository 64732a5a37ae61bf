//! The referral reward on the referrer's account, credited off the referred
//! buyer's transaction.
//!
//! The referred order decides the reward ([`crate::orders`]: its first
//! earning order, self-referral refused, nothing for nothing eligible) and
//! keeps it on its record ([`ReferralRecord`]): granted, taken back in
//! proportion to its refunds, voided by its cancellation, released with
//! the order. The order's transaction writes what the reward has come to as
//! a [`ReferralCredit`]: an item of its own in the referrer's partition,
//! keyed by the referred order, that no other customer's order writes. The
//! referrer's account is not in that transaction, so a popular referrer is
//! never an item every referred buyer's order holds.
//!
//! The change feed then brings the referrer's account up to the credit in a
//! transaction of its own ([`settle_referral`]): the daily cap, the reward
//! (pending under the program's issuance, or available), what the order's
//! refunds took back (from the reward's pending first, then from available,
//! the rest as the referrer's debt) and the release. What has been applied
//! so far is kept beside the credit ([`ReferralSettled`]), written with the
//! account under the version read: a redelivered change, or two consumers
//! at once, apply each step once, and a credit that moved on meanwhile is
//! brought up to date by its next change. The credit lags the order by the
//! feed's delay (seconds).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CustomerId, OrderId};
use crate::ledger::{Account, Applied, Deltas, EntryKind, Funding, Journal, LedgerError};
use crate::money::Money;
use crate::orders::{OrderRecord, ReferralRecord};
use crate::program::Program;

/// What a referred order grants its referrer, as its last write left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralCredit {
    /// The referred order.
    pub order_id: OrderId,
    /// Whose referral code brought the buyer.
    pub referrer: CustomerId,
    /// The buyer (never paid for referring themselves).
    pub buyer: Option<CustomerId>,
    /// The whole reward granted.
    pub reward: Money,
    /// Taken back so far by the order's refunds and cancellation.
    pub clawed_back: Money,
    /// Granted pending (released with the order), else available at once.
    pub issued_pending: bool,
    /// The order's pending cashback, and the reward with it, was released.
    pub released: bool,
    /// When the order granted it: the day the referrer's cap counts it on.
    pub granted_at: Option<DateTime<Utc>>,
}

impl ReferralCredit {
    /// The credit an order's record grants, if it names a referrer.
    pub fn of(record: &OrderRecord) -> Option<ReferralCredit> {
        let referral = record.referral.as_ref()?;
        Some(ReferralCredit {
            order_id: record.order_id.clone(),
            referrer: referral.referrer.clone(),
            buyer: record.customer.clone(),
            reward: referral.reward,
            clawed_back: referral.clawed_back,
            issued_pending: referral.issued_pending,
            released: record.released,
            granted_at: referral.granted_at,
        })
    }
}

/// Where the referrer's account stands on one credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettledState {
    /// Nothing applied yet.
    Waiting,
    /// The reward was credited (or taken back whole before it landed).
    Credited,
    /// Refused when it landed (the referrer's daily cap, a self-referral):
    /// nothing is ever applied.
    Refused,
}

/// What has been applied to the referrer's account for one credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralSettled {
    /// Credited, refused, or not yet.
    pub state: SettledState,
    /// The reward's part still pending on the referrer's account.
    pub pending: Money,
    /// Taken back from the referrer so far.
    pub clawed_back: Money,
}

impl ReferralSettled {
    /// Where a credit starts when its order first writes it. `before` is
    /// the order's referral as read, before the event: a reward granted
    /// before rewards were credited off the order's transaction
    /// (`granted_at` None) is already on the referrer's account as it was
    /// then, so the credit starts from there and nothing lands twice.
    pub fn initial(before: Option<&ReferralRecord>, credit: &ReferralCredit) -> ReferralSettled {
        match before.filter(|r| r.granted_at.is_none()) {
            Some(legacy) => ReferralSettled {
                state: SettledState::Credited,
                pending: legacy.pending,
                clawed_back: legacy.clawed_back,
            },
            None => ReferralSettled {
                state: SettledState::Waiting,
                pending: Money::zero(credit.reward.currency()),
                clawed_back: Money::zero(credit.reward.currency()),
            },
        }
    }
}

/// Brings the referrer's account up to the credit: what `settled` says was
/// applied, to what `credit` grants now. Returns where the credit then
/// stands and the referrer's entries (none when nothing was left to do).
/// `key` names this step's entries (unique per credit and step: the
/// caller uses the order and the settled version).
pub fn settle_referral(
    program: &Program,
    account: &mut Account,
    credit: &ReferralCredit,
    settled: &ReferralSettled,
    key: &str,
    now: DateTime<Utc>,
) -> Result<(ReferralSettled, Applied), LedgerError> {
    if account.customer != credit.referrer {
        return Err(LedgerError::CustomerMismatch {
            order: credit.order_id.clone(),
        });
    }
    let currency = credit.reward.currency();
    let mut next = settled.clone();
    let mut journal = Journal::new(key, now, currency);
    let order_id = &credit.order_id;
    let note = || Some(format!("referral reward for order {order_id}"));
    if next.state == SettledState::Waiting {
        if credit.buyer.as_ref() == Some(&account.customer) || !credit.reward.is_positive() {
            next.state = SettledState::Refused;
        } else if credit.clawed_back.amount() >= credit.reward.amount() {
            // Taken back whole before it landed: nothing moves, nothing
            // counts against the cap.
            next.state = SettledState::Credited;
            next.clawed_back = credit.clawed_back;
        } else if !counts_under_cap(program, account, credit, now) {
            next.state = SettledState::Refused;
        } else {
            account.same_currency(credit.reward)?;
            account.lifetime_issued = account.lifetime_issued.checked_add(credit.reward)?;
            let funding = Some(Funding {
                merchant: credit.reward,
                partner: Money::zero(currency),
            });
            if credit.issued_pending {
                account.pending = account.pending.checked_add(credit.reward)?;
                next.pending = credit.reward;
                journal.record(
                    EntryKind::Earn,
                    Some(order_id),
                    Deltas {
                        pending: Some(credit.reward),
                        funding,
                        note: note(),
                        ..Deltas::default()
                    },
                );
            } else {
                account.credit_available(
                    credit.reward,
                    program,
                    &mut journal,
                    EntryKind::Earn,
                    Some(order_id),
                    Deltas {
                        funding,
                        note: note(),
                        ..Deltas::default()
                    },
                )?;
                account.reminders.restart(now);
            }
            next.state = SettledState::Credited;
        }
    }
    if next.state == SettledState::Credited {
        let delta = credit.clawed_back.checked_sub(next.clawed_back)?;
        if delta.is_positive() {
            let from_pending = delta.min(next.pending)?;
            next.pending = next.pending.checked_sub(from_pending)?;
            account.pending = account.pending.checked_sub(from_pending)?;
            let rest = delta.checked_sub(from_pending)?;
            let from_available = account.take_available(rest, &mut journal)?;
            let to_debt = rest.checked_sub(from_available)?;
            account.debt = account.debt.checked_add(to_debt)?;
            account.lifetime_issued = account
                .lifetime_issued
                .checked_sub(delta)?
                .clamp_non_negative();
            next.clawed_back = credit.clawed_back;
            journal.record(
                EntryKind::Clawback,
                Some(order_id),
                Deltas {
                    available: Some(from_available.negated()),
                    pending: Some(from_pending.negated()),
                    debt: Some(to_debt),
                    funding: Some(Funding {
                        merchant: delta.negated(),
                        partner: Money::zero(currency),
                    }),
                    note: note(),
                },
            );
        }
        if credit.released && next.pending.is_positive() {
            let amount = next.pending;
            next.pending = Money::zero(currency);
            account.pending = account.pending.checked_sub(amount)?;
            account.credit_available(
                amount,
                program,
                &mut journal,
                EntryKind::Release,
                Some(order_id),
                Deltas {
                    pending: Some(amount.negated()),
                    note: note(),
                    ..Deltas::default()
                },
            )?;
            account.reminders.restart(now);
        }
    }
    Ok((next, journal.finish()))
}

/// Whether the referrer may still be paid a reward granted on the
/// credit's day, counting it if so. A reward that lands after the
/// referrer's count moved to a later day is paid and not counted (that day
/// is over).
fn counts_under_cap(
    program: &Program,
    account: &mut Account,
    credit: &ReferralCredit,
    now: DateTime<Utc>,
) -> bool {
    let day = credit.granted_at.unwrap_or(now).date_naive();
    match account.referral_day {
        Some(counted) if counted > day => true,
        Some(counted) if counted == day => {
            if account.referrals_on_day >= program.referral_daily_cap {
                return false;
            }
            account.referrals_on_day += 1;
            true
        }
        _ => {
            if program.referral_daily_cap == 0 {
                return false;
            }
            account.referral_day = Some(day);
            account.referrals_on_day = 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ShopId;
    use crate::money::Currency;
    use crate::program::Issuance;
    use chrono::TimeZone;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
    }

    fn ann() -> Account {
        Account::open(
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse("ann").unwrap(),
            Currency::USD,
        )
    }

    fn credit(order: &str) -> ReferralCredit {
        ReferralCredit {
            order_id: OrderId::parse(order).unwrap(),
            referrer: CustomerId::parse("ann").unwrap(),
            buyer: Some(CustomerId::parse("bob").unwrap()),
            reward: usd("5.00"),
            clawed_back: usd("0"),
            issued_pending: true,
            released: false,
            granted_at: Some(t0()),
        }
    }

    fn waiting() -> ReferralSettled {
        ReferralSettled::initial(None, &credit("1"))
    }

    fn program() -> Program {
        let mut program = Program::new(Currency::USD);
        program.issuance = Issuance::Pending { days: 14 };
        program
    }

    /// Settles `credit` from `settled` and checks the account's books.
    fn settle(
        account: &mut Account,
        entries: &mut Vec<crate::ledger::LedgerEntry>,
        credit: &ReferralCredit,
        settled: &ReferralSettled,
        step: u32,
    ) -> ReferralSettled {
        let key = format!("order:{}:referral-credit:{step}", credit.order_id);
        let (next, applied) =
            settle_referral(&program(), account, credit, settled, &key, t0()).unwrap();
        entries.extend(applied.entries);
        account.check(entries).unwrap();
        next
    }

    #[test]
    fn a_credit_lands_once_whatever_the_redeliveries() {
        let (mut account, mut entries) = (ann(), Vec::new());
        let granted = credit("1");
        let settled = settle(&mut account, &mut entries, &granted, &waiting(), 1);
        assert_eq!(settled.state, SettledState::Credited);
        assert_eq!(
            (account.pending, account.lifetime_issued),
            (usd("5.00"), usd("5.00"))
        );
        // The same change again: nothing left to do.
        let again = settle(&mut account, &mut entries, &granted, &settled, 2);
        assert_eq!(again, settled);
        assert_eq!(account.pending, usd("5.00"));
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn a_refund_before_the_credit_lands_is_taken_once_and_a_cancel_moves_nothing() {
        let (mut account, mut entries) = (ann(), Vec::new());
        let mut refunded = credit("1");
        refunded.clawed_back = usd("2.00");
        let settled = settle(&mut account, &mut entries, &refunded, &waiting(), 1);
        assert_eq!(
            (account.pending, account.lifetime_issued),
            (usd("3.00"), usd("3.00"))
        );
        let again = settle(&mut account, &mut entries, &refunded, &settled, 2);
        assert_eq!(again, settled);
        assert_eq!(account.pending, usd("3.00"), "taken back once");
        // Released later: what is left becomes available.
        refunded.released = true;
        settle(&mut account, &mut entries, &refunded, &settled, 3);
        assert_eq!(
            (account.available, account.pending),
            (usd("3.00"), usd("0.00"))
        );

        let (mut account, mut entries) = (ann(), Vec::new());
        let mut cancelled = credit("2");
        cancelled.clawed_back = usd("5.00");
        let settled = settle(&mut account, &mut entries, &cancelled, &waiting(), 1);
        assert_eq!(settled.state, SettledState::Credited);
        assert!(entries.is_empty());
        assert_eq!(account.referrals_on_day, 0, "nothing counted");
        assert_eq!(account.lifetime_issued, usd("0.00"));
    }

    #[test]
    fn a_refund_after_release_takes_from_available_then_as_debt() {
        let (mut account, mut entries) = (ann(), Vec::new());
        let mut granted = credit("1");
        granted.released = true;
        let settled = settle(&mut account, &mut entries, &granted, &waiting(), 1);
        assert_eq!(account.available, usd("5.00"));
        let spent = account
            .adjust(usd("-4.00"), "spent", "d", &program(), t0())
            .unwrap();
        entries.extend(spent.entries);
        granted.clawed_back = usd("5.00");
        settle(&mut account, &mut entries, &granted, &settled, 2);
        assert_eq!(
            (account.available, account.debt),
            (usd("0.00"), usd("4.00"))
        );
    }

    #[test]
    fn the_daily_cap_is_counted_when_the_credit_lands() {
        let mut capped = program();
        capped.referral_daily_cap = 1;
        let mut account = ann();
        let (first, _) =
            settle_referral(&capped, &mut account, &credit("1"), &waiting(), "k1", t0()).unwrap();
        let (second, applied) =
            settle_referral(&capped, &mut account, &credit("2"), &waiting(), "k2", t0()).unwrap();
        assert_eq!(first.state, SettledState::Credited);
        assert_eq!(second.state, SettledState::Refused);
        assert!(applied.entries.is_empty());
        assert_eq!(account.pending, usd("5.00"));
        // A refused credit stays refused, whatever its order does next.
        let mut refunded = credit("2");
        refunded.clawed_back = usd("5.00");
        let (after, applied) =
            settle_referral(&capped, &mut account, &refunded, &second, "k3", t0()).unwrap();
        assert_eq!(after, second);
        assert!(applied.entries.is_empty());
    }

    #[test]
    fn a_credit_naming_its_buyer_as_referrer_pays_nothing() {
        let mut own = credit("1");
        own.buyer = Some(CustomerId::parse("ann").unwrap());
        let mut account = ann();
        let (settled, applied) =
            settle_referral(&program(), &mut account, &own, &waiting(), "k", t0()).unwrap();
        assert_eq!(settled.state, SettledState::Refused);
        assert!(applied.entries.is_empty());
    }

    #[test]
    fn a_reward_granted_before_credits_left_the_order_starts_from_the_account_as_it_was() {
        let legacy = ReferralRecord {
            referrer: CustomerId::parse("ann").unwrap(),
            reward: usd("5.00"),
            pending: usd("5.00"),
            clawed_back: usd("0"),
            granted_at: None,
            issued_pending: false,
        };
        let mut refunded = credit("1");
        refunded.clawed_back = usd("1.00");
        let settled = ReferralSettled::initial(Some(&legacy), &refunded);
        assert_eq!(settled.state, SettledState::Credited);
        // Ann's account already holds the 5.00 pending from the old write.
        let mut account = ann();
        account.pending = usd("5.00");
        account.lifetime_issued = usd("5.00");
        let (_, applied) =
            settle_referral(&program(), &mut account, &refunded, &settled, "k", t0()).unwrap();
        assert_eq!(applied.entries.len(), 1, "only the clawback");
        assert_eq!(account.pending, usd("4.00"));
    }
}
