//! The account and its immutable ledger.
//!
//! One [`Account`] per (shop, customer) holds the balances; every change to
//! them is written as [`LedgerEntry`]s that carry the deltas, so that
//! `available`, `pending` and `debt` always equal the sums of their entries.
//! Available balance is kept as dated lots, oldest first, so spending and
//! expiry both take the oldest money first.
//!
//! Lots are merged by expiry moment: a credit expires at the end of an
//! expiry period, one UTC day up to 31-day expiries and longer beyond (see
//! [`Lot::expiry`]), and a credit expiring with the newest lot is added to
//! it instead of starting another. Two neighbouring lots with the same
//! expiry are spent and expired exactly as one, so merging changes no
//! amount; it bounds the lots by the moments on which balance expires (one
//! lot when nothing expires, about 32 at most otherwise), so the account
//! stays small whatever its history.
//!
//! Invariants (checked by [`Account::check`], property-tested):
//! - available, pending and debt equal the sums of the entries' deltas;
//! - available, pending, held and debt are never negative; held <= available;
//! - the lots add up to available, and no two neighbouring lots share an
//!   expiry.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::bonuses::{BonusKey, BonusKind, BonusState};
use crate::ids::{CheckoutId, Code, CustomerId, Email, OrderId, ShopId};
use crate::money::{Currency, Money, MoneyError};
use crate::program::Program;
use crate::reminders::ReminderState;

/// Why a change was refused. The accounts passed in may be partly changed
/// when one comes back: the caller drops them and stores nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Amounts that do not add up: mixed currencies inside the figures, or
    /// out of range.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A hold or a merchant's debit asked for more than the account can
    /// spend (available less other checkouts' holds).
    #[error("only {spendable} can be spent")]
    InsufficientBalance {
        /// What could have been taken, for the error message.
        spendable: Money,
    },
    /// An account supplied for an order is not the one the order record
    /// names (its buyer, its code's payer or its referrer): a caller's
    /// wiring fault, refused so no one else's balance moves.
    #[error("order {order} belongs to another customer")]
    CustomerMismatch {
        /// The order whose record names another customer.
        order: OrderId,
    },
    /// An amount in another currency than the account's ledger.
    #[error("the account is in {account} but the amount is in {amount}")]
    CurrencyMismatch {
        /// The account's (the shop's) currency.
        account: Currency,
        /// The currency of the amount offered.
        amount: Currency,
    },
    /// A hold of zero or less, or a manual adjustment of zero.
    #[error("amount must be positive")]
    NotPositive,
    /// The order moves money on an account the caller did not supply.
    #[error("order {order} needs the account of {customer}")]
    PartyMissing {
        /// The order being applied or released.
        order: OrderId,
        /// The customer whose account must be loaded and passed in.
        customer: CustomerId,
    },
}

/// What a ledger entry records; the kinds of DESIGN.md's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Cashback earned on an order (pending or available).
    Earn,
    /// Pending cashback became available.
    Release,
    /// Balance spent on an order through the customer's code.
    Redeem,
    /// Spent balance given back after a refund or cancellation.
    Restore,
    /// Cashback taken back after a refund or cancellation, or debt recovered.
    Clawback,
    /// A merchant's manual credit or debit.
    Adjust,
    /// Available balance past the program's expiry.
    Expire,
    /// A merchant-funded bonus (birthday, anniversary, win-back, milestone;
    /// the kind is named by the entry's key, see
    /// [`BonusKey::kind_of_entry`](crate::bonuses::BonusKey::kind_of_entry)).
    /// Not earned on an order: no cashback on it, no clawback of it.
    Bonus,
}

/// Who pays for an earned (or clawed back) amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    /// The merchant's part (program and coupon cashback, referral rewards):
    /// positive on an earn, negative on a clawback (given back).
    pub merchant: Money,
    /// The matching partner's part, signed like `merchant`; the two add up
    /// to the entry's whole amount.
    pub partner: Money,
}

/// One immutable change to an account. Ids are deterministic
/// (`{effect key}:{n}`), so replaying an event cannot mint new entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `{effect key}:{n}`: a replay of the same change yields the same ids,
    /// so the store keeps one copy.
    pub entry_id: String,
    /// When the engine applied the change (the "now" it was given).
    pub at: DateTime<Utc>,
    /// What kind of change this is.
    pub kind: EntryKind,
    /// The order the change belongs to; None for adjustments, expiry and
    /// debt recovered outside an order.
    #[serde(default)]
    pub order_id: Option<OrderId>,
    /// Signed change to spendable balance: positive credits, negative debits.
    pub available_delta: Money,
    /// Signed change to pending (earned, not yet released) cashback.
    pub pending_delta: Money,
    /// Signed change to clawback debt: positive when a clawback or a code's
    /// shortfall could not be covered, negative when debt is paid.
    pub debt_delta: Money,
    /// Who funds the money earned or clawed back, on earn and clawback
    /// entries (for liability by funder); None elsewhere.
    #[serde(default)]
    pub funding: Option<Funding>,
    /// A line for people reading the history: an adjustment's reason and
    /// author, "shortfall ... charged as debt", ... Never parsed.
    #[serde(default)]
    pub note: Option<String>,
}

/// Available balance credited with one expiry, spent and expired oldest
/// first. Credits expiring on the same day as the newest lot are added to
/// it (see [`Account`]'s lots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// When the first credit (release, immediate earn, restore, goodwill)
    /// of the lot landed; lots are kept in this order.
    pub credited_at: DateTime<Utc>,
    /// When what is left of it expires: the end of the expiry period the
    /// program's `expiry_days` after the credit ends in ([`Lot::expiry`]); None:
    /// never. Moved later while a live hold holds it.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// What is left unspent, always positive: empty lots are dropped.
    pub remaining: Money,
}

impl Lot {
    /// When a credit made at `at` expires under `program`: `expiry_days`
    /// later, rounded up to the end of an expiry period (the next midnight
    /// that starts one; see [`Lot::expiry_period_days`]), so every credit
    /// of one period expires at one moment and shares one lot. Rounding up
    /// never takes balance earlier than the days promised.
    pub fn expiry(program: &Program, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let days = program.expiry_days?;
        let due = at + Duration::days(i64::from(days));
        let period = Duration::days(i64::from(Self::expiry_period_days(days))).num_seconds();
        let seconds = due.timestamp();
        if seconds.rem_euclid(period) == 0 && due.timestamp_subsec_nanos() == 0 {
            return Some(due);
        }
        let next = (seconds.div_euclid(period) + 1) * period;
        // Unreachable for the dates a credit has (`expiry_days` is at most
        // 3650); the unrounded moment is still never early.
        Some(DateTime::from_timestamp(next, 0).unwrap_or(due))
    }

    /// How many days one expiry period spans under `expiry_days`: one day
    /// up to 31 days of expiry, and longer for longer expiries, so that
    /// balance expires on at most 32 moments in any `expiry_days` window
    /// and an account holds at most about 32 lots whatever its history (a
    /// 365-day expiry rounds up to 12-day periods: up to 11 days more than
    /// promised, never less). Periods are counted from 1970-01-01 UTC, so
    /// every account of a shop shares the same expiry moments.
    pub fn expiry_period_days(expiry_days: u32) -> u32 {
        expiry_days.div_ceil(MAX_EXPIRY_MOMENTS).max(1)
    }
}

/// The number of expiry periods an `expiry_days` window is cut into at
/// most (see [`Lot::expiry_period_days`]): 31, so a month of expiry still
/// expires day by day.
const MAX_EXPIRY_MOMENTS: u32 = 31;

/// Balance a checkout reserved while the customer pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The checkout holding it; at most one hold per checkout per account.
    pub checkout_id: CheckoutId,
    /// Balance reserved, positive; shrinks if the balance under it goes.
    pub amount: Money,
    /// When it lapses if no order turns it into a redemption first.
    pub expires_at: DateTime<Utc>,
}

/// One customer's cashback at one shop: balances, lifetime figures, their
/// code and reminder state. Changed only through the functions of this crate,
/// which return the [`LedgerEntry`]s explaining every change. Amounts are in
/// `currency` and never negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The shop the account belongs to.
    pub shop: ShopId,
    /// The platform's customer id, or a guest id derived from the email.
    pub customer: CustomerId,
    /// The shop's currency, which every amount here is in.
    pub currency: Currency,
    /// Where reminders and notices go; None: no email can be sent.
    #[serde(default)]
    pub email: Option<Email>,
    /// The customer's balance code, which spends `available` at checkout;
    /// None until one is issued.
    #[serde(default)]
    pub code: Option<Code>,
    /// Spendable balance (including what checkouts hold); the sum of
    /// `lots`.
    pub available: Money,
    /// Earned cashback not yet released: the sum of the account's orders'
    /// pending (and referral rewards pending).
    pub pending: Money,
    /// Clawbacks that could not be taken; paid first from new cashback.
    pub debt: Money,
    /// Cashback credited, net of clawbacks.
    pub lifetime_issued: Money,
    /// Balance spent at checkout, net of restores.
    pub lifetime_used: Money,
    /// Eligible spend, net of refunds; sets the tier.
    pub lifetime_eligible_spend: Money,
    /// The tier the customer is in, as an index into
    /// [`Program::tiers`](crate::program::Program::tiers); None below every
    /// tier or when the program has none.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<usize>,
    /// `available` as dated credits, oldest first: spending and expiry take
    /// from the front. Neighbours never share an expiry (they are merged),
    /// so there are at most as many lots as days on which balance expires.
    #[serde(default)]
    pub lots: Vec<Lot>,
    /// Balance reserved by checkouts in progress; expired holds linger until
    /// the next change or the scheduled job removes them.
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Where the reminder series stands.
    #[serde(default)]
    pub reminders: ReminderState,
    /// Orders that earned, for "first order" referrals and repeat rates.
    #[serde(default)]
    pub orders_earned: u32,
    /// Who last gave the account a new code by hand (the admin API's
    /// caller), when anyone did.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_changed_by: Option<String>,
    /// The code this customer shares to refer others (never their balance
    /// code: sharing it spends nothing).
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_code: Option<Code>,
    /// The day (UTC) of the referral rewards counted in `referrals_on_day`,
    /// for the program's per-referrer daily cap.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referral_day: Option<NaiveDate>,
    /// Referral rewards earned on `referral_day`; starts again at the next
    /// day with a reward.
    #[serde(default)]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub referrals_on_day: u32,
    /// How many expiry entries the account has had: it names each one, so
    /// two expirations at the same moment never share an entry id (lots
    /// credited at the same instant cannot tell them apart).
    #[serde(default)]
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub expirations: u64,
    /// The last time the expiry warnings were decided: every warning due at
    /// or before it was sent or passed over for a more urgent one
    /// (`expiry_warnings`). None: none decided yet.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_warned_until: Option<DateTime<Utc>>,
    /// The birthday and what the bonuses remember (see [`crate::bonuses`]).
    #[serde(default)]
    #[serde(skip_serializing_if = "BonusState::is_unset")]
    pub bonus: BonusState,
    /// The part of the customer's store credit on the platform that is
    /// this ledger's cashback (store-credit mode; see
    /// [`crate::store_credit`]). None: the engine has not opened it.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_credit_share: Option<Money>,
}

/// What a change asks of the world besides the ledger: emails, coupon counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// An order earned cashback: the "earned" email.
    Earned {
        /// The order that earned.
        order_id: OrderId,
        /// Cashback earned, program and coupons together.
        amount: Money,
        /// When it will be released; None when it is available at once.
        release_at: Option<DateTime<Utc>>,
    },
    /// Pending cashback became available: the "cashback ready" email, and a
    /// new reminder series.
    Released {
        /// The order whose cashback was released.
        order_id: OrderId,
        /// Cashback released, before any debt it paid.
        amount: Money,
    },
    /// A refund or cancellation took cashback back: the clawback email.
    ClawedBack {
        /// The order refunded or cancelled.
        order_id: OrderId,
        /// Cashback taken back by this change, positive.
        amount: Money,
        /// The part of `amount` the balances could not cover, now owed.
        debt: Money,
    },
    /// The customer moved up a tier: the upgrade email (never sent for a
    /// move down).
    TierUpgraded {
        /// The new tier, as an index into the program's tiers.
        tier: usize,
    },
    /// An order used a cashback coupon: count one use for its limits.
    CouponUsed {
        /// The coupon's code.
        code: Code,
    },
    /// A cancelled order gives its coupon use back.
    CouponUseReturned {
        /// The coupon's code.
        code: Code,
    },
    /// A hold shrank because the balance behind it was spent or taken back.
    HoldReduced {
        /// The checkout whose hold shrank; it must validate again.
        checkout_id: CheckoutId,
        /// How much the hold lost.
        amount: Money,
    },
}

/// The result of applying one change.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The new ledger entries, in the order they happened; the caller stores
    /// them with the account in one write.
    pub entries: Vec<LedgerEntry>,
    /// What the caller must do besides storing: emails, coupon counters.
    pub effects: Vec<Effect>,
    /// The change had been applied before: nothing was done.
    pub duplicate: bool,
}

impl Applied {
    /// The answer to a change seen before: no entries, no effects.
    pub fn duplicate() -> Applied {
        Applied {
            duplicate: true,
            ..Applied::default()
        }
    }

    /// Whether the change did nothing worth storing or telling anyone.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.effects.is_empty()
    }

    /// Appends another change's entries and effects after this one's.
    pub fn merge(&mut self, other: Applied) {
        self.entries.extend(other.entries);
        self.effects.extend(other.effects);
    }
}

/// Collects the entries of one change under one key, numbering them.
pub(crate) struct Journal {
    key: String,
    at: DateTime<Utc>,
    currency: Currency,
    pub(crate) applied: Applied,
}

#[derive(Default)]
pub(crate) struct Deltas {
    pub available: Option<Money>,
    pub pending: Option<Money>,
    pub debt: Option<Money>,
    pub funding: Option<Funding>,
    pub note: Option<String>,
}

impl Journal {
    pub(crate) fn new(key: impl Into<String>, at: DateTime<Utc>, currency: Currency) -> Journal {
        Journal {
            key: key.into(),
            at,
            currency,
            applied: Applied::default(),
        }
    }

    pub(crate) fn at(&self) -> DateTime<Utc> {
        self.at
    }

    pub(crate) fn record(&mut self, kind: EntryKind, order_id: Option<&OrderId>, deltas: Deltas) {
        let zero = Money::zero(self.currency);
        let entry = LedgerEntry {
            entry_id: format!("{}:{}", self.key, self.applied.entries.len()),
            at: self.at,
            kind,
            order_id: order_id.cloned(),
            available_delta: deltas.available.unwrap_or(zero),
            pending_delta: deltas.pending.unwrap_or(zero),
            debt_delta: deltas.debt.unwrap_or(zero),
            funding: deltas.funding,
            note: deltas.note,
        };
        self.applied.entries.push(entry);
    }

    pub(crate) fn effect(&mut self, effect: Effect) {
        self.applied.effects.push(effect);
    }

    pub(crate) fn finish(self) -> Applied {
        self.applied
    }
}

impl Account {
    /// A new, empty account: every figure zero, no code, no tier yet.
    pub fn open(shop: ShopId, customer: CustomerId, currency: Currency) -> Account {
        let zero = Money::zero(currency);
        Account {
            shop,
            customer,
            currency,
            email: None,
            code: None,
            available: zero,
            pending: zero,
            debt: zero,
            lifetime_issued: zero,
            lifetime_used: zero,
            lifetime_eligible_spend: zero,
            tier: None,
            lots: Vec::new(),
            holds: Vec::new(),
            reminders: ReminderState::default(),
            orders_earned: 0,
            code_changed_by: None,
            referral_code: None,
            referral_day: None,
            referrals_on_day: 0,
            expirations: 0,
            expiry_warned_until: None,
            bonus: BonusState::default(),
            store_credit_share: None,
        }
    }

    /// Balance reserved by checkouts.
    pub fn held(&self) -> Money {
        Money::sum(self.currency, self.holds.iter().map(|h| &h.amount))
            .unwrap_or(Money::zero(self.currency))
    }

    /// Balance a new checkout may use: available less every hold.
    pub fn spendable(&self) -> Money {
        self.available
            .checked_sub(self.held())
            .map(Money::clamp_non_negative)
            .unwrap_or(Money::zero(self.currency))
    }

    /// Balance a given checkout may use: its own hold counts as its own.
    pub fn spendable_for(&self, checkout: &CheckoutId) -> Money {
        let own = self
            .holds
            .iter()
            .filter(|h| &h.checkout_id == checkout)
            .map(|h| h.amount)
            .next()
            .unwrap_or(Money::zero(self.currency));
        self.spendable().checked_add(own).unwrap_or(own)
    }

    pub(crate) fn same_currency(&self, amount: Money) -> Result<(), LedgerError> {
        if amount.currency() == self.currency {
            Ok(())
        } else {
            Err(LedgerError::CurrencyMismatch {
                account: self.currency,
                amount: amount.currency(),
            })
        }
    }

    /// Credits available balance as a new lot, then recovers any clawback
    /// debt from it first: from this credit only, never from balance that
    /// was already there (a merchant's goodwill credit stays the customer's).
    pub(crate) fn credit_available(
        &mut self,
        amount: Money,
        program: &Program,
        journal: &mut Journal,
        kind: EntryKind,
        order_id: Option<&OrderId>,
        mut deltas: Deltas,
    ) -> Result<(), LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Ok(());
        }
        let at = journal.at();
        self.available = self.available.checked_add(amount)?;
        self.add_lot(at, Lot::expiry(program, at), amount)?;
        deltas.available = Some(amount);
        journal.record(kind, order_id, deltas);
        self.recover_debt(amount, journal, order_id)?;
        Ok(())
    }

    /// Adds a credit as the newest lot, or to the newest lot when it expires
    /// at the same moment (merging two neighbours with one expiry changes
    /// nothing that is spent or expired). Neighbours left with one expiry
    /// by older data or by a hold moving an expiry are merged too.
    pub(crate) fn add_lot(
        &mut self,
        at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        amount: Money,
    ) -> Result<(), LedgerError> {
        self.lots.push(Lot {
            credited_at: at,
            expires_at,
            remaining: amount,
        });
        self.merge_lots()
    }

    /// Merges every run of neighbouring lots that expire at the same moment
    /// into its first lot.
    fn merge_lots(&mut self) -> Result<(), LedgerError> {
        let mut merged: Vec<Lot> = Vec::with_capacity(self.lots.len());
        for lot in std::mem::take(&mut self.lots) {
            match merged.last_mut() {
                Some(last) if last.expires_at == lot.expires_at => {
                    last.remaining = last.remaining.checked_add(lot.remaining)?;
                }
                _ => merged.push(lot),
            }
        }
        self.lots = merged;
        Ok(())
    }

    /// Pays clawback debt from up to `credited`, the credit just made.
    fn recover_debt(
        &mut self,
        credited: Money,
        journal: &mut Journal,
        order_id: Option<&OrderId>,
    ) -> Result<(), LedgerError> {
        if !self.debt.is_positive() || !self.available.is_positive() {
            return Ok(());
        }
        let recovered = self.debt.min(self.available)?.min(credited)?;
        self.take_from_lots(recovered)?;
        self.available = self.available.checked_sub(recovered)?;
        self.debt = self.debt.checked_sub(recovered)?;
        journal.record(
            EntryKind::Clawback,
            order_id,
            Deltas {
                available: Some(recovered.negated()),
                debt: Some(recovered.negated()),
                note: Some("clawback debt recovered".into()),
                ..Deltas::default()
            },
        );
        self.shrink_holds(journal);
        Ok(())
    }

    /// Takes up to `amount` of available balance, oldest lots first, and
    /// returns what it took. Holds shrink if the balance under them goes.
    pub(crate) fn take_available(
        &mut self,
        amount: Money,
        journal: &mut Journal,
    ) -> Result<Money, LedgerError> {
        self.same_currency(amount)?;
        let taken = amount.clamp_non_negative().min(self.available)?;
        if taken.is_positive() {
            self.take_from_lots(taken)?;
            self.available = self.available.checked_sub(taken)?;
            self.shrink_holds(journal);
        }
        Ok(taken)
    }

    fn take_from_lots(&mut self, amount: Money) -> Result<(), LedgerError> {
        let mut left = amount;
        for lot in self.lots.iter_mut() {
            if !left.is_positive() {
                break;
            }
            let part = lot.remaining.min(left)?;
            lot.remaining = lot.remaining.checked_sub(part)?;
            left = left.checked_sub(part)?;
        }
        self.lots.retain(|lot| lot.remaining.is_positive());
        Ok(())
    }

    /// Keeps held <= available: the holds expiring soonest give way first.
    fn shrink_holds(&mut self, journal: &mut Journal) {
        let mut excess = match self.held().checked_sub(self.available) {
            Ok(excess) if excess.is_positive() => excess,
            _ => return,
        };
        self.holds.sort_by_key(|h| h.expires_at);
        for hold in self.holds.iter_mut() {
            if !excess.is_positive() {
                break;
            }
            let cut = hold.amount.min(excess).unwrap_or(hold.amount);
            hold.amount = hold.amount.checked_sub(cut).unwrap_or(hold.amount);
            excess = excess.checked_sub(cut).unwrap_or(excess);
            journal.effect(Effect::HoldReduced {
                checkout_id: hold.checkout_id.clone(),
                amount: cut,
            });
        }
        self.holds.retain(|h| h.amount.is_positive());
    }

    /// Places or replaces a checkout's hold. It may take at most what is
    /// spendable besides this checkout's own previous hold.
    pub fn place_hold(
        &mut self,
        checkout_id: CheckoutId,
        amount: Money,
        now: DateTime<Utc>,
        ttl_seconds: u32,
    ) -> Result<Hold, LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        self.expire_holds(now);
        let spendable = self.spendable_for(&checkout_id);
        if amount.amount() > spendable.amount() {
            return Err(LedgerError::InsufficientBalance { spendable });
        }
        self.holds.retain(|h| h.checkout_id != checkout_id);
        let hold = Hold {
            checkout_id,
            amount,
            expires_at: now + Duration::seconds(i64::from(ttl_seconds)),
        };
        self.holds.push(hold.clone());
        Ok(hold)
    }

    /// Frees a checkout's hold; returns it if there was one.
    pub fn release_hold(&mut self, checkout_id: &CheckoutId) -> Option<Hold> {
        let index = self
            .holds
            .iter()
            .position(|h| &h.checkout_id == checkout_id)?;
        Some(self.holds.remove(index))
    }

    /// Frees every hold past its expiry; returns the freed holds.
    pub fn expire_holds(&mut self, now: DateTime<Utc>) -> Vec<Hold> {
        let (expired, active): (Vec<Hold>, Vec<Hold>) = std::mem::take(&mut self.holds)
            .into_iter()
            .partition(|h| h.expires_at <= now);
        self.holds = active;
        expired
    }

    /// Expires available balance past its lot's expiry, oldest first, but
    /// never what a live checkout holds: the platform may already have
    /// granted that discount, and its order will redeem it. The held part
    /// of an expired lot is kept until the last live hold lapses (then it
    /// expires, unless an order spent it first).
    pub fn expire_balance(&mut self, now: DateTime<Utc>) -> Result<Applied, LedgerError> {
        let is_due = |lot: &Lot| lot.expires_at.is_some_and(|at| at <= now);
        let due = Money::sum(
            self.currency,
            self.lots.iter().filter(|l| is_due(l)).map(|l| &l.remaining),
        )?;
        let live: Vec<&Hold> = self.holds.iter().filter(|h| h.expires_at > now).collect();
        let held = Money::sum(self.currency, live.iter().map(|h| &h.amount))?;
        let last_hold = live.iter().map(|h| h.expires_at).max();
        let unheld = self.available.checked_sub(held)?.clamp_non_negative();
        let amount = due.min(unheld)?;
        if !amount.is_positive() {
            self.keep_held_lots(now, last_hold);
            self.merge_lots()?;
            return Ok(Applied::default());
        }
        // Two expirations at the same `now` (a credit landed between two
        // runs replaying one schedule time) are told apart by the account's
        // own count of expirations, so entry ids stay unique even when the
        // lots expired were credited at the same instant.
        self.expirations += 1;
        let key = format!("expire:{}:n{}", now.timestamp(), self.expirations);
        let mut journal = Journal::new(key, now, self.currency);
        let mut left = amount;
        for lot in self.lots.iter_mut().filter(|lot| is_due(lot)) {
            let part = lot.remaining.min(left)?;
            lot.remaining = lot.remaining.checked_sub(part)?;
            left = left.checked_sub(part)?;
        }
        self.lots.retain(|lot| lot.remaining.is_positive());
        self.keep_held_lots(now, last_hold);
        self.merge_lots()?;
        self.available = self.available.checked_sub(amount)?;
        journal.record(
            EntryKind::Expire,
            None,
            Deltas {
                available: Some(amount.negated()),
                ..Deltas::default()
            },
        );
        self.shrink_holds(&mut journal);
        Ok(journal.finish())
    }

    /// What is left of expired lots is held: it expires when the last live
    /// hold lapses, so the expiry schedule never points into the past.
    fn keep_held_lots(&mut self, now: DateTime<Utc>, last_hold: Option<DateTime<Utc>>) {
        if let Some(until) = last_hold {
            for lot in &mut self.lots {
                if lot.expires_at.is_some_and(|at| at <= now) {
                    lot.expires_at = Some(until);
                }
            }
        }
    }

    /// The earliest time some available balance expires.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.lots.iter().filter_map(|lot| lot.expires_at).min()
    }

    /// The earliest time a hold lapses.
    pub fn next_hold_expiry(&self) -> Option<DateTime<Utc>> {
        self.holds.iter().map(|h| h.expires_at).min()
    }

    /// A merchant's manual credit (positive) or debit (negative), with the
    /// reason kept on the entry. A debit can take only what is spendable: it
    /// never overdraws the account nor eats a checkout's hold.
    pub fn adjust(
        &mut self,
        amount: Money,
        reason: &str,
        key: &str,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        self.same_currency(amount)?;
        if amount.is_zero() {
            return Err(LedgerError::NotPositive);
        }
        let mut journal = Journal::new(format!("adjust:{key}"), now, self.currency);
        let note = Some(reason.to_string());
        if amount.is_positive() {
            // A goodwill credit is the merchant's gift: it does not pay debt.
            self.available = self.available.checked_add(amount)?;
            self.add_lot(now, Lot::expiry(program, now), amount)?;
            self.lifetime_issued = self.lifetime_issued.checked_add(amount)?;
            journal.record(
                EntryKind::Adjust,
                None,
                Deltas {
                    available: Some(amount),
                    note,
                    ..Deltas::default()
                },
            );
        } else {
            let debit = amount.negated();
            let spendable = self.spendable();
            if debit.amount() > spendable.amount() {
                return Err(LedgerError::InsufficientBalance { spendable });
            }
            self.take_available(debit, &mut journal)?;
            self.lifetime_issued = self
                .lifetime_issued
                .checked_sub(debit)?
                .clamp_non_negative();
            journal.record(
                EntryKind::Adjust,
                None,
                Deltas {
                    available: Some(amount),
                    note,
                    ..Deltas::default()
                },
            );
        }
        Ok(journal.finish())
    }

    /// Balance the customer already spent on the platform (a payment with
    /// the platform's store credit, read back from it), under its once-only
    /// `key`. Unlike [`Account::adjust`] it is never refused: the money is
    /// gone at the checkout, so what the available balance cannot cover
    /// (a clawback landed before the payment was read) is the owner's debt,
    /// as a balance code's shortfall is once its order is paid. Returns the
    /// entries and that shortfall.
    pub fn spend_on_platform(
        &mut self,
        amount: Money,
        order_id: Option<&OrderId>,
        note: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(Applied, Money), LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let mut journal = Journal::new(format!("spent:{key}"), now, self.currency);
        let taken = self.take_available(amount, &mut journal)?;
        let shortfall = amount.checked_sub(taken)?.clamp_non_negative();
        self.debt = self.debt.checked_add(shortfall)?;
        self.lifetime_used = self.lifetime_used.checked_add(amount)?;
        let note = if shortfall.is_positive() {
            format!("{note}; shortfall {shortfall} charged as debt")
        } else {
            note.to_string()
        };
        journal.record(
            EntryKind::Redeem,
            order_id,
            Deltas {
                available: Some(taken.negated()),
                debt: Some(shortfall),
                note: Some(note),
                ..Deltas::default()
            },
        );
        Ok((journal.finish(), shortfall))
    }

    /// A store credit payment given back on the platform (Shopify reverts
    /// the payment when its order is cancelled or refunded, or the payment
    /// fails), read back from it, under its once-only `key`. Like balance
    /// spent through a code and given back on a refund, it pays the owner's
    /// debt first (a payment beyond the balance, or a clawback that landed
    /// after the balance was spent, is netted by it: what is owed is never
    /// spendable again), then is spendable. Money refunded to store credit
    /// (Shopify refunds any payment so) is followed the same way: the type
    /// of the transaction does not tell it from a payment given back.
    /// Returns the entries and the debt it paid.
    pub fn restore_from_platform(
        &mut self,
        amount: Money,
        order_id: Option<&OrderId>,
        note: &str,
        key: &str,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Result<(Applied, Money), LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let debt_before = self.debt;
        let mut journal = Journal::new(format!("given-back:{key}"), now, self.currency);
        self.lifetime_used = self.lifetime_used.checked_sub(amount)?.clamp_non_negative();
        self.credit_available(
            amount,
            program,
            &mut journal,
            EntryKind::Restore,
            order_id,
            Deltas {
                note: Some(note.to_string()),
                ..Deltas::default()
            },
        )?;
        let paid = debt_before.checked_sub(self.debt)?;
        Ok((journal.finish(), paid))
    }

    /// Credits a bonus of `amount` under its once-only `key`, spendable at
    /// once and funded by the merchant. Like a goodwill credit it pays no
    /// debt unless the program's `bonuses.pays_debt` says so; it earns no
    /// cashback and no order's refund takes it back (it belongs to no
    /// order). Entry ids are `{key}:{n}`, so a replay mints nothing new.
    pub fn credit_bonus(
        &mut self,
        kind: BonusKind,
        key: &BonusKey,
        amount: Money,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Result<Applied, LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let mut journal = Journal::new(key.as_str(), now, self.currency);
        let deltas = Deltas {
            funding: Some(Funding {
                merchant: amount,
                partner: Money::zero(self.currency),
            }),
            note: Some(format!("{} bonus", kind.as_str().replace('_', "-"))),
            ..Deltas::default()
        };
        self.lifetime_issued = self.lifetime_issued.checked_add(amount)?;
        if program.bonuses.pays_debt {
            self.credit_available(
                amount,
                program,
                &mut journal,
                EntryKind::Bonus,
                None,
                deltas,
            )?;
        } else {
            self.available = self.available.checked_add(amount)?;
            self.add_lot(now, Lot::expiry(program, now), amount)?;
            journal.record(
                EntryKind::Bonus,
                None,
                Deltas {
                    available: Some(amount),
                    ..deltas
                },
            );
        }
        Ok(journal.finish())
    }

    /// Checks the account against its own ledger: the sums, the signs, the
    /// holds and the lots. Returns every broken invariant.
    pub fn check(&self, entries: &[LedgerEntry]) -> Result<(), Vec<String>> {
        let mut broken = Vec::new();
        let sum = |pick: fn(&LedgerEntry) -> Money| {
            Money::sum(
                self.currency,
                entries.iter().map(pick).collect::<Vec<_>>().iter(),
            )
        };
        match sum(|e| e.available_delta) {
            Ok(total) if total == self.available => {}
            other => broken.push(format!(
                "available {} != entries {:?}",
                self.available, other
            )),
        }
        match sum(|e| e.pending_delta) {
            Ok(total) if total == self.pending => {}
            other => broken.push(format!("pending {} != entries {:?}", self.pending, other)),
        }
        match sum(|e| e.debt_delta) {
            Ok(total) if total == self.debt => {}
            other => broken.push(format!("debt {} != entries {:?}", self.debt, other)),
        }
        for (name, value) in [
            ("available", self.available),
            ("pending", self.pending),
            ("debt", self.debt),
            ("held", self.held()),
        ] {
            if value.is_negative() {
                broken.push(format!("{name} is negative: {value}"));
            }
        }
        if self.held().amount() > self.available.amount() {
            broken.push(format!(
                "held {} exceeds available {}",
                self.held(),
                self.available
            ));
        }
        match Money::sum(self.currency, self.lots.iter().map(|l| &l.remaining)) {
            Ok(total) if total == self.available => {}
            other => broken.push(format!("lots {:?} != available {}", other, self.available)),
        }
        if self.lots.iter().any(|l| !l.remaining.is_positive()) {
            broken.push("an empty or negative lot is kept".into());
        }
        if self
            .lots
            .windows(2)
            .any(|pair| pair[0].expires_at == pair[1].expires_at)
        {
            broken.push("two neighbouring lots share an expiry".into());
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken)
        }
    }
}

// The account item is rewritten by every write: fields at their default are
// left out of its document (each has `serde(default)`, so they read back).
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}
