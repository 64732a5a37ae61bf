//! Order events applied to the ledger: earn, redeem, refund, cancel, release.
//!
//! Each order has an [`OrderRecord`] that remembers what the engine did for
//! it: what it earned and from which base, what is still pending, what was
//! clawed back, what the customer's code took off it and what was restored.
//! That record makes every event idempotent and order-independent:
//! - a second delivery of an event changes nothing;
//! - a refund that arrives before its order is kept and settled when the
//!   order arrives; a cancellation that arrives first means the order never
//!   earns;
//! - clawbacks and restores are computed cumulatively from all refunds so
//!   far (`earned x refunded eligible / original eligible`), so a full refund
//!   takes back exactly what was earned, whatever the rounding on the way.
//!
//! An order may move money on three accounts ([`Parties`]): the buyer's
//! (earn, clawback), the balance code owner's (the discount is debited from
//! the owner whoever bought; a shortfall is their debt; refunds restore to
//! them) and the referrer's (the referral reward, pending with the order and
//! taken back with it).

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::coupon::CouponCredit;
use crate::earn::{earn, line_values, referral_reward, LineValue};
use crate::ids::{Code, CustomerId, OrderId, RefundId};
use crate::ledger::{Account, Applied, Deltas, Effect, EntryKind, Funding, Journal, LedgerError};
use crate::money::{Currency, Money};
use crate::order::{Order, OrderEvent, Refund, RefundBasis};
use crate::program::{Issuance, Program, Trigger};

/// What the engine did for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The platform's id of the order.
    pub order_id: OrderId,
    /// The shop's currency, which every amount of the record is in.
    pub currency: Currency,
    /// Whose account the order earns on; unknown until an event names them
    /// (a refund carries no customer).
    #[serde(default)]
    pub customer: Option<CustomerId>,
    /// The order's lines with their eligible values: as first seen, except
    /// that lines learnt from the order as placed (orders/create) are
    /// replaced by the paid or fulfilled event's, the order as paid.
    #[serde(default)]
    pub lines: Vec<LineValue>,
    /// `lines`, `total` and `shipping` were learnt from the order as placed
    /// (a Created event), before payment: the next paid, fulfilled or
    /// cancelled event replaces them (an unpaid order can still be edited,
    /// and an edit before payment produces no refund).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lines_as_placed: bool,
    /// What the customer paid in all, for amount-only refunds.
    #[serde(default)]
    pub total: Option<Money>,
    /// Shipping charged, so an amount refund is measured against the
    /// merchandise only (`total - shipping`).
    #[serde(default)]
    pub shipping: Option<Money>,
    /// When the order itself was placed (the platform's placement time on
    /// whichever event came first, else its paid event's time): coupons and
    /// promotions are judged then, even when fulfilment earns much later.
    #[serde(default)]
    pub placed_at: Option<DateTime<Utc>>,
    /// The paid event was applied: a second one changes nothing.
    #[serde(default)]
    pub seen_paid: bool,
    /// The fulfilled event was applied: a second one changes nothing.
    #[serde(default)]
    pub seen_fulfilled: bool,
    /// The order was cancelled; a paid or fulfilled event that comes after
    /// earns nothing.
    #[serde(default)]
    pub cancelled: bool,
    /// What the order earned, once its trigger event was applied (even when
    /// that was nothing); None before.
    #[serde(default)]
    pub earned: Option<EarnedRecord>,
    /// This order's cashback still pending.
    pub pending: Money,
    /// When the pending cashback is released: the order's own time plus the
    /// program's pending days, never before the engine recorded it.
    #[serde(default)]
    pub release_at: Option<DateTime<Utc>>,
    /// The cashback was made available (by the release job, or at once under
    /// immediate issuance); a release happens once.
    #[serde(default)]
    pub released: bool,
    /// Earned cashback taken back so far (voided pending included).
    pub clawed_back: Money,
    /// Every refund applied (or waiting for its order), each once; the
    /// clawback is computed from all of them together.
    #[serde(default)]
    pub refunds: Vec<RecordedRefund>,
    /// Whether the customer's code on this order has been settled.
    #[serde(default)]
    pub redemption_settled: bool,
    /// Balance the customer's code took off this order.
    pub redeemed: Money,
    /// Discount the platform gave that the balance could not cover.
    pub shortfall: Money,
    /// Redeemed balance given back after refunds or cancellation.
    pub restored: Money,
    /// Eligible spend counted in the customer's lifetime spend, net.
    pub spend_counted: Money,
    /// Whose balance the order's balance code was debited from: the code's
    /// owner, whoever bought. Refunds and cancellation restore to them.
    /// None when no balance code was settled (and on records written
    /// before the owner was kept, where it was always the buyer).
    #[serde(default)]
    pub paid_by: Option<CustomerId>,
    /// The shortfall was charged to the payer as debt, so a refund or a
    /// cancellation gives it back with the rest of the redemption.
    #[serde(default)]
    pub shortfall_charged: bool,
    /// The referral reward this order pays the buyer's referrer.
    #[serde(default)]
    pub referral: Option<ReferralRecord>,
    /// The owners of the order's other balance codes when the codes of
    /// several owners were combined on it (the first owner is `paid_by`):
    /// each is charged for their own codes, and given back in proportion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub co_payers: Vec<CoPayment>,
    /// The "cashback ready" email of this order's release, recorded with
    /// the release and not sent yet: the release job's paced email pass
    /// finds the order by it (see `due::ready`) and clears it when it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_email: Option<ReadyEmail>,
    /// What the order's store credit payments took of cashback, and what
    /// of it came back (store-credit mode; see [`crate::store_credit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_credit: Option<crate::store_credit::StoreCreditUse>,
}

/// A "cashback ready" email waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyEmail {
    /// What became spendable (the release less the debt it paid).
    pub amount: Money,
    /// When the release happened; the email is due from then.
    pub since: DateTime<Utc>,
}

/// What one further owner's balance codes charged them on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoPayment {
    /// The further owner charged.
    pub customer: CustomerId,
    /// Balance their codes took off the order.
    pub redeemed: Money,
    /// The discount their balance could not cover, charged as their debt.
    pub shortfall: Money,
    /// Given back to them after refunds or cancellation.
    pub restored: Money,
}

impl CoPayment {
    /// What their codes charged them in all.
    pub fn charged(&self) -> Money {
        self.redeemed
            .checked_add(self.shortfall)
            .unwrap_or(self.redeemed)
    }
}

/// A referral reward hanging on the referred order: pending with the
/// order's own cashback, released with it, taken back in proportion to its
/// refunds and voided by its cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralRecord {
    /// The customer whose referral code brought the buyer.
    pub referrer: CustomerId,
    /// The whole reward granted, before any clawback, in the shop's
    /// currency; merchant-funded.
    pub reward: Money,
    /// The part still pending on the referrer's account.
    pub pending: Money,
    /// Taken back so far (voided pending included).
    pub clawed_back: Money,
    /// When the order granted the reward (the referrer's daily cap counts
    /// it on that day). None on a reward granted before the referrer's
    /// account was credited off the order's transaction: that account was
    /// written with the order (see [`crate::referrals`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<DateTime<Utc>>,
    /// The reward was granted pending (the program's issuance), to be
    /// released with the order; else available at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub issued_pending: bool,
}

/// What an order earned, kept so that clawbacks are exact shares of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnedRecord {
    /// Cashback earned: the program's plus the coupons', rounded toward zero.
    pub total: Money,
    /// Who funds `total`: the partner its match, the merchant the rest
    /// (coupons included); clawbacks split in the same proportion.
    pub funding: Funding,
    /// The coupons that added cashback, so a cancellation gives their uses
    /// back.
    pub coupons: Vec<CouponCredit>,
    /// When the event that earned happened (paid or fulfilled at).
    pub at: DateTime<Utc>,
}

/// A refund as the order record keeps it: enough to recompute the
/// cumulative share refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRefund {
    /// The platform's id of the refund, so a redelivery is recognised.
    pub refund_id: RefundId,
    /// What it gave back.
    pub basis: RefundBasis,
}

impl OrderRecord {
    /// The record of an order no event has touched yet: nothing seen,
    /// earned or spent.
    pub fn new(order_id: OrderId, currency: Currency) -> OrderRecord {
        let zero = Money::zero(currency);
        OrderRecord {
            order_id,
            currency,
            customer: None,
            lines: Vec::new(),
            total: None,
            shipping: None,
            placed_at: None,
            seen_paid: false,
            seen_fulfilled: false,
            cancelled: false,
            earned: None,
            pending: zero,
            release_at: None,
            released: false,
            clawed_back: zero,
            refunds: Vec::new(),
            redemption_settled: false,
            redeemed: zero,
            shortfall: zero,
            restored: zero,
            spend_counted: zero,
            paid_by: None,
            shortfall_charged: false,
            lines_as_placed: false,
            referral: None,
            co_payers: Vec::new(),
            ready_email: None,
            store_credit: None,
        }
    }

    /// The order's eligible base, as learnt (the order as paid): what earns and what
    /// clawbacks are measured against.
    pub fn eligible(&self) -> Money {
        Money::sum(self.currency, self.lines.iter().map(|l| &l.eligible))
            .unwrap_or(Money::zero(self.currency))
    }

    fn merchandise(&self) -> Money {
        Money::sum(self.currency, self.lines.iter().map(|l| &l.merchandise))
            .unwrap_or(Money::zero(self.currency))
    }

    /// The time an order's coupons and promotions are judged at: when it
    /// was placed (the platform's placement time, else its paid event's),
    /// not when a later fulfilment made it earn, whichever event comes first.
    pub fn judged_at(&self, order: &Order) -> DateTime<Utc> {
        order
            .placed_at
            .or(self.placed_at)
            .map_or(order.occurred_at, |placed| placed.min(order.occurred_at))
    }

    /// When the order that earned was placed, as [`OrderRecord::judged_at`]
    /// judged it (the placement time, else the earning event's); None
    /// before it earned.
    pub fn earned_order_at(&self) -> Option<DateTime<Utc>> {
        let earned = self.earned.as_ref()?.at;
        Some(self.placed_at.map_or(earned, |placed| placed.min(earned)))
    }

    /// What an amount refund is measured against: the order's merchandise
    /// as charged (total less shipping), or its total when shipping is not
    /// known.
    fn amount_base(&self) -> Option<Money> {
        let total = self.total?;
        let merchandise = match self.shipping {
            Some(shipping) => total.checked_sub(shipping).ok()?,
            None => total,
        };
        if merchandise.is_positive() {
            Some(merchandise)
        } else if total.is_positive() {
            Some(total)
        } else {
            None
        }
    }

    /// Pending cashback whose release date has come.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.due_at().is_some_and(|at| at <= now)
    }

    /// When this order's pending cashback (the buyer's, and the referral
    /// reward hanging on it) falls due, if any is still pending.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        let referral_pending = self
            .referral
            .as_ref()
            .is_some_and(|r| r.pending.is_positive());
        if self.cancelled || self.released || !(self.pending.is_positive() || referral_pending) {
            return None;
        }
        self.release_at
    }

    /// What the order's balance codes charged their owner: the balance taken
    /// and the shortfall charged as debt. Refunds restore it in proportion.
    pub fn charged(&self) -> Money {
        if self.shortfall_charged {
            self.redeemed
                .checked_add(self.shortfall)
                .unwrap_or(self.redeemed)
        } else {
            self.redeemed
        }
    }

    /// The fractions of the order's eligible base and of its merchandise
    /// refunded so far, each between 0 and 1.
    fn refunded_fractions(&self) -> (Decimal, Decimal) {
        let eligible = self.eligible().amount();
        let merchandise = self.merchandise().amount();
        // Units first, per line, so a line refunded in three parts counts as
        // exactly its whole value rather than three rounded thirds.
        let mut units_refunded = vec![0u32; self.lines.len()];
        let mut amount_refunded = Decimal::ZERO;
        for refund in &self.refunds {
            let (lines, amount) = match &refund.basis {
                RefundBasis::Lines { lines } => (lines.as_slice(), None),
                RefundBasis::Amount { amount } => (&[][..], Some(amount)),
                RefundBasis::LinesAndAmount { lines, amount } => (lines.as_slice(), Some(amount)),
            };
            if let Some(amount) = amount {
                amount_refunded += amount.amount().abs();
            }
            for refunded in lines {
                if let Some(index) = self
                    .lines
                    .iter()
                    .position(|l| l.line_id == refunded.line_id)
                {
                    // A line cannot be refunded more times than it was bought.
                    units_refunded[index] = units_refunded[index]
                        .saturating_add(refunded.quantity)
                        .min(self.lines[index].quantity);
                }
            }
        }
        let mut refunded_eligible = Decimal::ZERO;
        let mut refunded_merchandise = Decimal::ZERO;
        for (line, units) in self.lines.iter().zip(&units_refunded) {
            if *units == 0 || line.quantity == 0 {
                continue;
            }
            if *units == line.quantity {
                refunded_eligible += line.eligible.amount();
                refunded_merchandise += line.merchandise.amount();
            } else {
                let share = Decimal::from(*units) / Decimal::from(line.quantity);
                refunded_eligible += line.eligible.amount() * share;
                refunded_merchandise += line.merchandise.amount() * share;
            }
        }
        // Money refunded without lines is taken as merchandise, measured
        // against what the merchandise cost: refunding all of it refunds the
        // whole order's cashback, whatever the shipping.
        let amount_fraction = match self.amount_base() {
            Some(base) => amount_refunded / base.amount(),
            None => Decimal::ZERO,
        };
        let fraction = |refunded: Decimal, whole: Decimal| {
            let by_lines = if whole.is_zero() {
                Decimal::ZERO
            } else {
                refunded / whole
            };
            (by_lines + amount_fraction).min(Decimal::ONE)
        };
        (
            fraction(refunded_eligible, eligible),
            fraction(refunded_merchandise, merchandise),
        )
    }
}

/// Cumulative share of `whole`, exact at a full refund, rounded toward zero
/// otherwise.
fn share_of(whole: Money, fraction: Decimal) -> Money {
    if fraction >= Decimal::ONE {
        whole
    } else {
        Money::round_toward_zero(whole.amount() * fraction, whole.currency())
    }
}

/// What applying an event needs besides the account and the order.
pub struct EventContext<'a> {
    /// The shop's program as it stands now (its rules apply to the event).
    pub program: &'a Program,
    /// When the engine applies the event (entries are stamped with it).
    pub now: DateTime<Utc>,
    /// Cashback from coupons on this order, already checked by the caller.
    pub coupons: &'a [CouponCredit],
}

/// The most owners whose balance codes one order charges, each on their own
/// account (more than any platform lets combine); the codes of any further
/// owner are charged to the buyer, never given away.
pub const MAX_CODE_OWNERS: usize = 5;

/// The accounts an order event moves money on. The caller resolves them in
/// the event's read; the rules of who pays and who is paid live here.
#[derive(Default)]
pub struct Parties<'a> {
    /// The buyer's account; None for an order that names nobody (a guest
    /// without an email) or a refund before its order is known.
    pub buyer: Option<&'a mut Account>,
    /// The owner of the order's balance code when it is not the buyer (on
    /// later events: the account in `record.paid_by`). The discount is
    /// debited from them, whoever bought.
    pub code_owner: Option<&'a mut Account>,
    /// The order's discount codes that are the payer's balance codes (the
    /// code owner's, else the buyer's; current or replaced by a new one).
    pub balance_codes: Vec<Code>,
    /// The referrer the order's referral code names (on later events: the
    /// account in `record.referral`). Self-referral and the daily cap are
    /// checked here.
    pub referrer: Option<&'a mut Account>,
    /// The owners of the order's other balance codes, when codes of several
    /// owners are combined on one order (on later events: the customers in
    /// `record.co_payers`). Each is charged for their own codes.
    pub co_owners: Vec<CoOwner<'a>>,
}

/// A further owner of balance codes on an order.
pub struct CoOwner<'a> {
    /// Who owns the codes.
    pub customer: CustomerId,
    /// Their account; None when they are the buyer (charged on `buyer`).
    pub account: Option<&'a mut Account>,
    /// Their codes on this order.
    pub codes: Vec<Code>,
}

/// Each party's entries and effects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderApplied {
    /// The buyer's entries (earn, clawback; redeem and restore when the code
    /// is their own) and effects.
    pub buyer: Applied,
    /// The code owner's entries when not the buyer: redeem, restore.
    pub code_owner: Applied,
    /// The referrer's entries: the referral reward and its clawback.
    pub referrer: Applied,
    /// Each co-owner's entries, in the order of `Parties::co_owners`.
    pub co_owners: Vec<Applied>,
}

impl OrderApplied {
    /// The event had been applied before: nothing changed on any account.
    pub fn duplicate(&self) -> bool {
        self.buyer.duplicate
    }

    fn duplicate_event() -> OrderApplied {
        OrderApplied {
            buyer: Applied::duplicate(),
            ..OrderApplied::default()
        }
    }
}

/// The parties with a journal each (entry ids stay unique per account).
struct Sides<'a> {
    buyer: Option<&'a mut Account>,
    owner: Option<&'a mut Account>,
    referrer: Option<&'a mut Account>,
    buyer_journal: Journal,
    owner_journal: Journal,
    referrer_journal: Journal,
    co_owners: Vec<(CoOwner<'a>, Journal)>,
}

impl<'a> Sides<'a> {
    fn new(parties: Parties<'a>, key: &str, now: DateTime<Utc>, currency: Currency) -> Sides<'a> {
        Sides {
            buyer: parties.buyer,
            owner: parties.code_owner,
            referrer: parties.referrer,
            buyer_journal: Journal::new(key, now, currency),
            owner_journal: Journal::new(format!("{key}:owner"), now, currency),
            referrer_journal: Journal::new(format!("{key}:referral"), now, currency),
            co_owners: parties
                .co_owners
                .into_iter()
                .map(|co| (co, Journal::new(format!("{key}:owner"), now, currency)))
                .collect(),
        }
    }

    /// A co-owner's account and journal: their own, or the buyer's when
    /// they are the buyer.
    fn co_payer(&mut self, customer: &CustomerId) -> Option<(&mut Account, &mut Journal)> {
        if let Some(owner) = self
            .owner
            .as_deref_mut()
            .filter(|o| &o.customer == customer)
        {
            return Some((owner, &mut self.owner_journal));
        }
        if let Some(buyer) = self
            .buyer
            .as_deref_mut()
            .filter(|b| &b.customer == customer)
        {
            return Some((buyer, &mut self.buyer_journal));
        }
        self.co_owners
            .iter_mut()
            .find(|(co, _)| &co.customer == customer)
            .and_then(|(co, journal)| {
                let account = co.account.as_deref_mut()?;
                (&account.customer == customer).then_some((account, journal))
            })
    }

    /// The account the order's balance codes are charged to: `paid_by` if
    /// the record names it, else the code owner, else the buyer.
    fn payer(&mut self, paid_by: Option<&CustomerId>) -> Option<(&mut Account, &mut Journal)> {
        let fits = |account: &Account| paid_by.is_none_or(|p| p == &account.customer);
        if let Some(owner) = self.owner.as_deref_mut() {
            return fits(owner).then_some((owner, &mut self.owner_journal));
        }
        let buyer = self.buyer.as_deref_mut()?;
        fits(buyer).then_some((buyer, &mut self.buyer_journal))
    }

    fn finish(self) -> OrderApplied {
        OrderApplied {
            buyer: self.buyer_journal.finish(),
            code_owner: self.owner_journal.finish(),
            referrer: self.referrer_journal.finish(),
            co_owners: self
                .co_owners
                .into_iter()
                .map(|(_, journal)| journal.finish())
                .collect(),
        }
    }
}

/// Applies a platform event to an order and its customer's account, the
/// customer's own code being the only balance code the order may spend.
///
/// `account` is None only when the order's customer is not known yet (a
/// refund before its order): the refund is then recorded on the order and
/// settled when the order arrives.
pub fn apply_order_event(
    ctx: &EventContext<'_>,
    account: Option<&mut Account>,
    record: &mut OrderRecord,
    event: &OrderEvent,
) -> Result<Applied, LedgerError> {
    let balance_codes = account
        .as_deref()
        .and_then(|a| a.code.clone())
        .into_iter()
        .collect();
    let parties = Parties {
        buyer: account,
        balance_codes,
        ..Parties::default()
    };
    Ok(apply_order_event_to(ctx, parties, record, event)?.buyer)
}

/// Applies a platform event to an order and every account it moves money
/// on: the buyer's (earn, clawback), the balance code owner's (redeem,
/// restore) and the referrer's (the referral reward).
pub fn apply_order_event_to(
    ctx: &EventContext<'_>,
    parties: Parties<'_>,
    record: &mut OrderRecord,
    event: &OrderEvent,
) -> Result<OrderApplied, LedgerError> {
    let mismatch = |account: Option<&Account>, expected: Option<&CustomerId>| matches!((account, expected), (Some(a), Some(e)) if &a.customer != e);
    if mismatch(parties.buyer.as_deref(), record.customer.as_ref())
        || mismatch(parties.code_owner.as_deref(), record.paid_by.as_ref())
        || mismatch(
            parties.referrer.as_deref(),
            record.referral.as_ref().map(|r| &r.referrer),
        )
    {
        return Err(LedgerError::CustomerMismatch {
            order: record.order_id.clone(),
        });
    }
    let balance_codes = parties.balance_codes.clone();
    let co_codes: Vec<(CustomerId, Vec<Code>)> = parties
        .co_owners
        .iter()
        .map(|co| (co.customer.clone(), co.codes.clone()))
        .collect();
    let mut sides = Sides::new(parties, &event.effect_key(), ctx.now, record.currency);
    match event {
        OrderEvent::Created(order) => {
            // Only the redemption, once for the order whichever of created,
            // paid or fulfilled comes first; a cancelled order spends nothing.
            // An unpaid order charges at most what the owner can spend: the
            // rest, their debt if nothing covers it, waits for payment.
            if record.redemption_settled || record.cancelled {
                return Ok(OrderApplied::duplicate_event());
            }
            let first_seen = record.lines.is_empty() && record.total.is_none();
            learn_order(ctx.program, record, order, sides.buyer.as_deref())?;
            if first_seen {
                record.lines_as_placed = true;
            }
            free_checkout_hold(&mut sides, order);
            settle_redemption(
                &mut sides,
                &balance_codes,
                &co_codes,
                record,
                order,
                Shortfall::Waits,
            )?;
            settle_refunds(ctx.program, &mut sides, record)?;
        }
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) => {
            let paid = matches!(event, OrderEvent::Paid(_));
            let already = if paid {
                record.seen_paid
            } else {
                record.seen_fulfilled
            };
            if already {
                return Ok(OrderApplied::duplicate_event());
            }
            learn_order(ctx.program, record, order, sides.buyer.as_deref())?;
            if paid {
                record.seen_paid = true;
                record
                    .placed_at
                    .get_or_insert(order.placed_at.unwrap_or(order.occurred_at));
            } else {
                record.seen_fulfilled = true;
            }
            free_checkout_hold(&mut sides, order);
            if record.cancelled {
                return Ok(sides.finish());
            }
            settle_redemption(
                &mut sides,
                &balance_codes,
                &co_codes,
                record,
                order,
                Shortfall::Debt,
            )?;
            // Refunds recorded before this event give back the credit spent on
            // the order now, whether or not this event is the one that earns.
            settle_refunds(ctx.program, &mut sides, record)?;
            let trigger = if paid {
                Trigger::Paid
            } else {
                Trigger::Fulfilled
            };
            if trigger == ctx.program.trigger && record.earned.is_none() {
                if let Some(buyer) = sides.buyer.as_deref_mut() {
                    let first_order = buyer.orders_earned == 0;
                    credit_earned(ctx, buyer, record, order, &mut sides.buyer_journal)?;
                    if first_order {
                        credit_referral(ctx.program, &mut sides, record, order)?;
                    }
                    settle_refunds(ctx.program, &mut sides, record)?;
                }
            }
        }
        OrderEvent::Refunded(refund) => {
            if record
                .refunds
                .iter()
                .any(|r| r.refund_id == refund.refund_id)
            {
                return Ok(OrderApplied::duplicate_event());
            }
            record_refund(record, refund);
            if !record.cancelled {
                settle_refunds(ctx.program, &mut sides, record)?;
            }
        }
        OrderEvent::Cancelled(order) => {
            if record.cancelled {
                return Ok(OrderApplied::duplicate_event());
            }
            learn_order(ctx.program, record, order, sides.buyer.as_deref())?;
            record.cancelled = true;
            free_checkout_hold(&mut sides, order);
            cancel(ctx.program, &mut sides, record)?;
        }
    }
    Ok(sides.finish())
}

/// The order ends its checkout: the checkout's hold is freed wherever it
/// sits (the buyer's or the code owner's account), code used or not.
fn free_checkout_hold(sides: &mut Sides<'_>, order: &Order) {
    if let Some(checkout) = &order.checkout_id {
        let co_owners = sides
            .co_owners
            .iter_mut()
            .filter_map(|(co, _)| co.account.as_deref_mut());
        for account in [sides.buyer.as_deref_mut(), sides.owner.as_deref_mut()]
            .into_iter()
            .flatten()
            .chain(co_owners)
        {
            account.release_hold(checkout);
        }
    }
}

/// Remembers who placed the order and its lines, the first time it is seen,
/// or again from the first event after the order as placed (orders/create)
/// that is not one: the order as paid is what earns. Once earned, never
/// recomputed.
fn learn_order(
    program: &Program,
    record: &mut OrderRecord,
    order: &Order,
    account: Option<&Account>,
) -> Result<(), LedgerError> {
    if let Some(placed) = order.placed_at {
        record.placed_at = Some(record.placed_at.map_or(placed, |p| p.min(placed)));
    }
    if record.customer.is_none() {
        record.customer = account
            .map(|a| a.customer.clone())
            .or_else(|| order.customer.account_id());
    }
    let as_placed = record.lines_as_placed && record.earned.is_none();
    if (record.lines.is_empty() && record.total.is_none()) || as_placed {
        record.lines_as_placed = false;
        record.lines = line_values(&order.lines, &program.exclusions, record.currency)?;
        if order.total.currency() != record.currency {
            return Err(LedgerError::CurrencyMismatch {
                account: record.currency,
                amount: order.total.currency(),
            });
        }
        if order.shipping.currency() != record.currency {
            return Err(LedgerError::CurrencyMismatch {
                account: record.currency,
                amount: order.shipping.currency(),
            });
        }
        record.total = Some(order.total);
        record.shipping = Some(order.shipping);
    }
    Ok(())
}

fn record_refund(record: &mut OrderRecord, refund: &Refund) {
    record.refunds.push(RecordedRefund {
        refund_id: refund.refund_id.clone(),
        basis: refund.basis.clone(),
    });
}

/// Charges the order's balance codes to their owners (the buyer or not):
/// the discount the platform granted with each owner's codes is taken from
/// that owner's available balance, and what the balance cannot cover is
/// their debt, never a gift. The checkout's hold was freed just before, so
/// the redemption uses it.
///
/// Before payment (`Shortfall::Waits`) each owner is charged at most what
/// they can spend, never into debt: an order that is never paid (a manual
/// or cash-on-delivery payment) must not let whoever knows a code put its
/// owner in debt. The redemption then stays open and the paid or fulfilled
/// event charges the rest (`Shortfall::Debt`), as debt where the balance
/// cannot cover it.
fn settle_redemption(
    sides: &mut Sides<'_>,
    balance_codes: &[Code],
    co_codes: &[(CustomerId, Vec<Code>)],
    record: &mut OrderRecord,
    order: &Order,
    shortfall_is: Shortfall,
) -> Result<(), LedgerError> {
    if record.redemption_settled {
        return Ok(());
    }
    let zero = Money::zero(record.currency);
    let mut open = false;
    let used = codes_amount(order, balance_codes, record.currency)?;
    if let Some(amount) = used {
        let Some((payer, journal)) = sides.payer(None) else {
            // The caller resolved an owner it did not supply: settle later.
            return Ok(());
        };
        let charged = if record.paid_by.is_some() {
            record.redeemed.checked_add(record.shortfall)?
        } else {
            zero
        };
        let due = amount.checked_sub(charged)?.clamp_non_negative();
        let (taken, shortfall) = charge(payer, due, shortfall_is, &record.order_id, journal)?;
        record.paid_by = Some(payer.customer.clone());
        record.redeemed = record.redeemed.checked_add(taken)?;
        record.shortfall = record.shortfall.checked_add(shortfall)?;
        record.shortfall_charged = true;
        open |= amount
            .checked_sub(record.redeemed.checked_add(record.shortfall)?)?
            .is_positive();
    }
    for (customer, codes) in co_codes {
        let Some(amount) = codes_amount(order, codes, record.currency)? else {
            continue;
        };
        if record.paid_by.as_ref() == Some(customer) {
            continue;
        }
        let before = record
            .co_payers
            .iter()
            .position(|c| &c.customer == customer);
        let charged = match before {
            Some(at) => record.co_payers[at]
                .redeemed
                .checked_add(record.co_payers[at].shortfall)?,
            None => zero,
        };
        let due = amount.checked_sub(charged)?.clamp_non_negative();
        if before.is_some() && !due.is_positive() {
            continue;
        }
        let Some((payer, journal)) = sides.co_payer(customer) else {
            continue;
        };
        let (taken, shortfall) = charge(payer, due, shortfall_is, &record.order_id, journal)?;
        let co = match before {
            Some(at) => &mut record.co_payers[at],
            None => {
                record.co_payers.push(CoPayment {
                    customer: customer.clone(),
                    redeemed: zero,
                    shortfall: zero,
                    restored: zero,
                });
                let last = record.co_payers.len() - 1;
                &mut record.co_payers[last]
            }
        };
        co.redeemed = co.redeemed.checked_add(taken)?;
        co.shortfall = co.shortfall.checked_add(shortfall)?;
        open |= amount
            .checked_sub(co.redeemed.checked_add(co.shortfall)?)?
            .is_positive();
    }
    record.redemption_settled = !open;
    Ok(())
}

/// What becomes of the part of a balance code's discount the owner's
/// balance cannot cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortfall {
    /// The order is not paid yet: charge only what is spendable; the rest
    /// waits for the paid or fulfilled event.
    Waits,
    /// The order is paid (or fulfilled): the rest is the owner's debt.
    Debt,
}

/// The discount the order's `codes` granted, None when none is on it.
fn codes_amount(
    order: &Order,
    codes: &[Code],
    currency: Currency,
) -> Result<Option<Money>, LedgerError> {
    let used: Vec<&Money> = order
        .discount_codes
        .iter()
        .filter(|applied| codes.contains(&applied.code))
        .map(|applied| &applied.amount)
        .collect();
    if used.is_empty() {
        return Ok(None);
    }
    Ok(Some(Money::sum(currency, used)?))
}

/// Debits `amount` of discount from a code owner: from available balance,
/// the rest as debt (or, while the shortfall waits, only what is
/// spendable). Returns what was taken and the shortfall.
fn charge(
    payer: &mut Account,
    amount: Money,
    shortfall_is: Shortfall,
    order_id: &OrderId,
    journal: &mut Journal,
) -> Result<(Money, Money), LedgerError> {
    payer.same_currency(amount)?;
    let amount = match shortfall_is {
        Shortfall::Debt => amount,
        Shortfall::Waits => amount.min(payer.spendable())?,
    };
    let taken = payer.take_available(amount, journal)?;
    let shortfall = amount.checked_sub(taken)?.clamp_non_negative();
    payer.debt = payer.debt.checked_add(shortfall)?;
    payer.lifetime_used = payer.lifetime_used.checked_add(amount)?;
    if amount.is_positive() {
        journal.record(
            EntryKind::Redeem,
            Some(order_id),
            Deltas {
                available: Some(taken.negated()),
                debt: Some(shortfall),
                note: shortfall
                    .is_positive()
                    .then(|| format!("shortfall {shortfall} charged as debt")),
                ..Deltas::default()
            },
        );
    }
    Ok((taken, shortfall))
}

fn credit_earned(
    ctx: &EventContext<'_>,
    account: &mut Account,
    record: &mut OrderRecord,
    order: &Order,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    let program = ctx.program;
    let eligible = record.eligible();
    // Promotions are judged at the order's own time, not at a later fulfilment.
    let from_program = earn(
        program,
        eligible,
        account.lifetime_eligible_spend,
        record.judged_at(order),
    )?;
    let from_coupons = Money::sum(account.currency, ctx.coupons.iter().map(|c| &c.cashback))?;
    // A win-back's extra percent waiting on the account: the merchant's, on
    // this order's eligible base, outside the program's cap.
    let extra_percent = if eligible.is_positive() {
        account.bonus.take_extra_percent(record.judged_at(order))
    } else {
        None
    };
    let from_win_back = Money::round_toward_zero(
        eligible.amount() * extra_percent.unwrap_or_default() / rust_decimal::Decimal::ONE_HUNDRED,
        account.currency,
    );
    let total = from_program
        .total
        .checked_add(from_coupons)?
        .checked_add(from_win_back)?;
    // Coupons are the merchant's own offers: the partner matches only the program.
    let funding = Funding {
        merchant: from_program
            .merchant_funded
            .checked_add(from_coupons)?
            .checked_add(from_win_back)?,
        partner: from_program.partner_funded,
    };
    record.earned = Some(EarnedRecord {
        total,
        funding,
        coupons: ctx.coupons.to_vec(),
        at: order.occurred_at,
    });
    for coupon in ctx.coupons {
        journal.effect(Effect::CouponUsed {
            code: coupon.code.clone(),
        });
    }

    let spend_before = account.lifetime_eligible_spend.amount();
    account.lifetime_eligible_spend = account.lifetime_eligible_spend.checked_add(eligible)?;
    record.spend_counted = eligible;
    update_tier(program, account, journal);
    account.orders_earned += 1;
    let (spend_after, order_at) = (
        account.lifetime_eligible_spend.amount(),
        record.judged_at(order),
    );
    // A milestone this order crosses is paid once its cashback is released.
    let released_at = match program.issuance {
        Issuance::Pending { days } => release_time(order, days, journal.at()),
        Issuance::Immediate => journal.at(),
    };
    account.bonus.order_earned(
        &program.bonuses,
        spend_before,
        spend_after,
        order_at,
        total.amount(),
        released_at,
        journal.at(),
    );

    if !total.is_positive() {
        return Ok(());
    }
    if program.issuance == Issuance::Immediate {
        // Released at once: it counts toward the bonuses now.
        account
            .bonus
            .order_released(&program.bonuses, order_at, journal.at());
    }
    account.lifetime_issued = account.lifetime_issued.checked_add(total)?;
    let order_id = record.order_id.clone();
    match program.issuance {
        Issuance::Pending { days } => {
            // Never due before the engine recorded it: a delivery that comes
            // late (or a replay) would otherwise fall due in the past, behind
            // the scheduled job's checkpoint, and wait forever.
            let release_at = release_time(order, days, journal.at());
            account.pending = account.pending.checked_add(total)?;
            record.pending = total;
            record.release_at = Some(release_at);
            journal.record(
                EntryKind::Earn,
                Some(&order_id),
                Deltas {
                    pending: Some(total),
                    funding: Some(funding),
                    ..Deltas::default()
                },
            );
            journal.effect(Effect::Earned {
                order_id,
                amount: total,
                release_at: Some(release_at),
            });
        }
        Issuance::Immediate => {
            record.released = true;
            account.credit_available(
                total,
                program,
                journal,
                EntryKind::Earn,
                Some(&order_id),
                Deltas {
                    funding: Some(funding),
                    ..Deltas::default()
                },
            )?;
            account.reminders.restart(journal.at());
            journal.effect(Effect::Earned {
                order_id,
                amount: total,
                release_at: None,
            });
        }
    }
    Ok(())
}

fn update_tier(program: &Program, account: &mut Account, journal: &mut Journal) {
    let tier = program.tier_for(account.lifetime_eligible_spend.amount());
    // Everyone starts in the lowest tier (the one for no spend, if the
    // program has a tier from 0): reaching it is no upgrade.
    let before = account.tier.or(program.tier_for(Decimal::ZERO));
    if tier > before {
        if let Some(index) = tier {
            journal.effect(Effect::TierUpgraded { tier: index });
        }
    }
    // Refunds can move a customer down again; only upgrades are announced.
    account.tier = tier;
}

/// Pays the buyer's referrer the program's referral reward on the buyer's
/// first earning order, following the program's issuance. Nothing for a
/// self-referral (same customer id or same email), past the referrer's
/// daily cap, for an order with nothing eligible, or when the reward comes
/// to nothing.
fn credit_referral(
    program: &Program,
    sides: &mut Sides<'_>,
    record: &mut OrderRecord,
    order: &Order,
) -> Result<(), LedgerError> {
    let (Some(buyer), Some(referrer)) = (sides.buyer.as_deref(), sides.referrer.as_deref_mut())
    else {
        return Ok(());
    };
    if record.referral.is_some() || is_self_referral(referrer, buyer, order) {
        return Ok(());
    }
    // An order with nothing eligible (gift cards, excluded products) refers
    // nobody: a fixed reward would be minted at no cost to the buyer, and
    // its refunds, measured in eligible spend, would take none of it back.
    if !record.eligible().is_positive() {
        return Ok(());
    }
    let reward = referral_reward(program, record.eligible());
    if !reward.is_positive() {
        return Ok(());
    }
    referrer.same_currency(reward)?;
    let journal = &mut sides.referrer_journal;
    let day = journal.at().date_naive();
    if referrer.referral_day != Some(day) {
        referrer.referral_day = Some(day);
        referrer.referrals_on_day = 0;
    }
    if referrer.referrals_on_day >= program.referral_daily_cap {
        return Ok(());
    }
    referrer.referrals_on_day += 1;
    referrer.lifetime_issued = referrer.lifetime_issued.checked_add(reward)?;
    let funding = Funding {
        merchant: reward,
        partner: Money::zero(record.currency),
    };
    let note = Some(format!("referral reward for order {}", record.order_id));
    let order_id = record.order_id.clone();
    let mut referral = ReferralRecord {
        referrer: referrer.customer.clone(),
        reward,
        pending: Money::zero(record.currency),
        clawed_back: Money::zero(record.currency),
        granted_at: Some(journal.at()),
        issued_pending: matches!(program.issuance, Issuance::Pending { .. }),
    };
    match program.issuance {
        Issuance::Pending { days } => {
            let release_at = release_time(order, days, journal.at());
            record.release_at = Some(record.release_at.unwrap_or(release_at));
            referrer.pending = referrer.pending.checked_add(reward)?;
            referral.pending = reward;
            journal.record(
                EntryKind::Earn,
                Some(&order_id),
                Deltas {
                    pending: Some(reward),
                    funding: Some(funding),
                    note,
                    ..Deltas::default()
                },
            );
        }
        Issuance::Immediate => {
            referrer.credit_available(
                reward,
                program,
                journal,
                EntryKind::Earn,
                Some(&order_id),
                Deltas {
                    funding: Some(funding),
                    note,
                    ..Deltas::default()
                },
            )?;
            referrer.reminders.restart(journal.at());
        }
    }
    record.referral = Some(referral);
    Ok(())
}

/// Referring oneself pays nothing: the same account, or another account
/// with the same mailbox (a guest account and a registered one). Addresses
/// tagged with `+` (`ann+1@example.com`) reach the untagged mailbox, yet
/// each makes a new guest account, so the tag is left out of the comparison.
fn is_self_referral(referrer: &Account, buyer: &Account, order: &Order) -> bool {
    if referrer.customer == buyer.customer {
        return true;
    }
    let Some(referrer_email) = &referrer.email else {
        return false;
    };
    let referrer_mailbox = mailbox(referrer_email.as_str());
    [buyer.email.as_ref(), order.customer.email.as_ref()]
        .into_iter()
        .flatten()
        .any(|email| mailbox(email.as_str()) == referrer_mailbox)
}

/// An address without its `+tag`: `ann+1@example.com` is `ann@example.com`.
fn mailbox(email: &str) -> (&str, &str) {
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let untagged = local.split_once('+').map_or(local, |(mailbox, _)| mailbox);
    (untagged, domain)
}

/// When pending cashback of an order falls due: the order's own time plus
/// the program's days, but never before the engine recorded it (a late
/// delivery or a replay would otherwise fall due behind the scheduled
/// job's checkpoint and wait forever).
fn release_time(order: &Order, days: u32, recorded: DateTime<Utc>) -> DateTime<Utc> {
    (order.occurred_at + Duration::days(i64::from(days))).max(recorded)
}

/// Brings the order's clawbacks and restore up to what its refunds so far
/// call for: the buyer's cashback, the referral reward, the spent balance.
///
/// Refunds are measured against the order's lines as paid, the lines it
/// earns on. While only the lines as placed are known (orders/create came
/// first: the paid or fulfilled event replaces them), a refund is recorded
/// and waits for those lines, so one refund is never measured against two
/// sets of lines (a restore made on the placed lines could not be taken
/// back when the paid lines make the refunded share smaller).
fn settle_refunds(
    program: &Program,
    sides: &mut Sides<'_>,
    record: &mut OrderRecord,
) -> Result<(), LedgerError> {
    if record.refunds.is_empty()
        || (record.lines.is_empty() && record.total.is_none())
        || record.lines_as_placed
    {
        return Ok(());
    }
    let (eligible_fraction, merchandise_fraction) = record.refunded_fractions();
    // Eligible base of zero (only coupon cashback): use merchandise instead.
    let earn_fraction = if record.eligible().is_zero() {
        merchandise_fraction
    } else {
        eligible_fraction
    };
    if let (Some(earned), Some(buyer)) = (record.earned.clone(), sides.buyer.as_deref_mut()) {
        let journal = &mut sides.buyer_journal;
        claw_back_to(
            buyer,
            record,
            share_of(earned.total, earn_fraction),
            journal,
        )?;
        let spend_target = share_of(record.eligible(), Decimal::ONE - eligible_fraction);
        uncount_spend(program, buyer, record, spend_target, journal)?;
    }
    if let Some(reward) = record.referral.as_ref().map(|r| r.reward) {
        claw_referral_to(sides, record, share_of(reward, eligible_fraction))?;
    }
    restore_to(program, sides, record, merchandise_fraction)?;
    Ok(())
}

fn cancel(
    program: &Program,
    sides: &mut Sides<'_>,
    record: &mut OrderRecord,
) -> Result<(), LedgerError> {
    if let (Some(earned), Some(buyer)) = (record.earned.clone(), sides.buyer.as_deref_mut()) {
        let journal = &mut sides.buyer_journal;
        claw_back_to(buyer, record, earned.total, journal)?;
        uncount_spend(
            program,
            buyer,
            record,
            Money::zero(record.currency),
            journal,
        )?;
        for coupon in &earned.coupons {
            journal.effect(Effect::CouponUseReturned {
                code: coupon.code.clone(),
            });
        }
    }
    if let Some(reward) = record.referral.as_ref().map(|r| r.reward) {
        claw_referral_to(sides, record, reward)?;
    }
    restore_to(program, sides, record, Decimal::ONE)?;
    Ok(())
}

/// Takes back the referral reward until `target` has been taken in all:
/// from its pending first, then from the referrer's available balance;
/// what cannot be taken becomes the referrer's debt.
fn claw_referral_to(
    sides: &mut Sides<'_>,
    record: &mut OrderRecord,
    target: Money,
) -> Result<(), LedgerError> {
    let Some(referral) = record.referral.as_mut() else {
        return Ok(());
    };
    let delta = target.checked_sub(referral.clawed_back)?;
    if !delta.is_positive() {
        return Ok(());
    }
    let Some(referrer) = sides.referrer.as_deref_mut() else {
        // Not supplied: the order keeps what is taken back, and the
        // referrer's account follows off this transaction
        // ([`crate::referrals::settle_referral`]).
        let from_pending = delta.min(referral.pending)?;
        referral.pending = referral.pending.checked_sub(from_pending)?;
        referral.clawed_back = target;
        return Ok(());
    };
    let journal = &mut sides.referrer_journal;
    let from_pending = delta.min(referral.pending)?;
    referral.pending = referral.pending.checked_sub(from_pending)?;
    referrer.pending = referrer.pending.checked_sub(from_pending)?;
    let rest = delta.checked_sub(from_pending)?;
    let from_available = referrer.take_available(rest, journal)?;
    let to_debt = rest.checked_sub(from_available)?;
    referrer.debt = referrer.debt.checked_add(to_debt)?;
    referrer.lifetime_issued = referrer
        .lifetime_issued
        .checked_sub(delta)?
        .clamp_non_negative();
    referral.clawed_back = target;
    journal.record(
        EntryKind::Clawback,
        Some(&record.order_id),
        Deltas {
            available: Some(from_available.negated()),
            pending: Some(from_pending.negated()),
            debt: Some(to_debt),
            funding: Some(Funding {
                merchant: delta.negated(),
                partner: Money::zero(record.currency),
            }),
            note: Some(format!("referral reward for order {}", record.order_id)),
        },
    );
    Ok(())
}

fn uncount_spend(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    target: Money,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    let drop = record.spend_counted.checked_sub(target)?;
    if drop.is_positive() {
        account.lifetime_eligible_spend = account
            .lifetime_eligible_spend
            .checked_sub(drop)?
            .clamp_non_negative();
        record.spend_counted = target;
        update_tier(program, account, journal);
    }
    Ok(())
}

/// Takes back earned cashback until `target` has been taken in all: from this
/// order's pending first, then from available balance; what cannot be taken
/// becomes debt, never a negative balance.
fn claw_back_to(
    account: &mut Account,
    record: &mut OrderRecord,
    target: Money,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    let Some(earned) = record.earned.clone() else {
        return Ok(());
    };
    let delta = target.checked_sub(record.clawed_back)?;
    if !delta.is_positive() {
        return Ok(());
    }
    let from_pending = delta.min(record.pending)?;
    record.pending = record.pending.checked_sub(from_pending)?;
    account.pending = account.pending.checked_sub(from_pending)?;
    let rest = delta.checked_sub(from_pending)?;
    let from_available = account.take_available(rest, journal)?;
    let to_debt = rest.checked_sub(from_available)?;
    account.debt = account.debt.checked_add(to_debt)?;
    account.lifetime_issued = account
        .lifetime_issued
        .checked_sub(delta)?
        .clamp_non_negative();
    let previous = record.clawed_back;
    record.clawed_back = target;
    // The partner's share is cumulative too (its share of everything taken
    // back so far, less what it already gave back), so refunds in parts add
    // up to exactly its share of the earn.
    let partner_share = |clawed: Money| -> Money {
        if !earned.total.is_positive() {
            Money::zero(record.currency)
        } else if clawed.amount() >= earned.total.amount() {
            earned.funding.partner
        } else {
            Money::round_toward_zero(
                earned.funding.partner.amount() * clawed.amount() / earned.total.amount(),
                record.currency,
            )
        }
    };
    let partner = partner_share(target).checked_sub(partner_share(previous))?;
    journal.record(
        EntryKind::Clawback,
        Some(&record.order_id),
        Deltas {
            available: Some(from_available.negated()),
            pending: Some(from_pending.negated()),
            debt: Some(to_debt),
            funding: Some(Funding {
                merchant: delta.checked_sub(partner)?.negated(),
                partner: partner.negated(),
            }),
            note: None,
        },
    );
    journal.effect(Effect::ClawedBack {
        order_id: record.order_id.clone(),
        amount: delta,
        debt: to_debt,
    });
    Ok(())
}

/// Gives each code owner back `fraction` of what the order's balance codes
/// charged them, cumulatively; debt (the shortfall charged first) is paid
/// from it.
fn restore_to(
    program: &Program,
    sides: &mut Sides<'_>,
    record: &mut OrderRecord,
    fraction: Decimal,
) -> Result<(), LedgerError> {
    let order_id = record.order_id.clone();
    let target = share_of(record.charged(), fraction);
    let delta = target.checked_sub(record.restored)?;
    if delta.is_positive() {
        // The payer's account not supplied: restored on a later event.
        if let Some((payer, journal)) = sides.payer(record.paid_by.as_ref()) {
            record.restored = target;
            give_back(program, payer, delta, &order_id, journal)?;
        }
    }
    for co in &mut record.co_payers {
        let target = share_of(co.charged(), fraction);
        let delta = target.checked_sub(co.restored)?;
        if !delta.is_positive() {
            continue;
        }
        if let Some((payer, journal)) = sides.co_payer(&co.customer) {
            co.restored = target;
            give_back(program, payer, delta, &order_id, journal)?;
        }
    }
    Ok(())
}

fn give_back(
    program: &Program,
    payer: &mut Account,
    delta: Money,
    order_id: &OrderId,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    payer.lifetime_used = payer.lifetime_used.checked_sub(delta)?.clamp_non_negative();
    payer.credit_available(
        delta,
        program,
        journal,
        EntryKind::Restore,
        Some(order_id),
        Deltas::default(),
    )
}

/// Releases an order's pending cashback once its date has come: pending to
/// available, exactly once. Debt is recovered from it first, and the
/// reminder series restarts.
pub fn release_pending(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    now: DateTime<Utc>,
) -> Result<Applied, LedgerError> {
    release_order(program, account, None, record, now).map(|(buyer, _)| buyer)
}

/// Releases an order's pending cashback, exactly once, and marks the
/// referral reward hanging on it released on the order: the referrer's
/// account follows off this transaction
/// ([`crate::referrals::settle_referral`]). Returns the buyer's entries.
pub fn release_order_alone(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    now: DateTime<Utc>,
) -> Result<Applied, LedgerError> {
    release(program, account, Referrer::Deferred, record, now).map(|(buyer, _)| buyer)
}

/// Who takes the referral reward hanging on a released order.
enum Referrer<'a> {
    /// This account, in the same write (None: missing, an error when a
    /// reward is pending).
    Here(Option<&'a mut Account>),
    /// The referrer's account follows off this write.
    Deferred,
}

/// Releases an order's pending cashback and the referral reward hanging on
/// it, together and exactly once. Returns the buyer's and the referrer's
/// entries. The referrer's account must be supplied when a reward is
/// pending.
pub fn release_order(
    program: &Program,
    account: &mut Account,
    referrer: Option<&mut Account>,
    record: &mut OrderRecord,
    now: DateTime<Utc>,
) -> Result<(Applied, Applied), LedgerError> {
    release(program, account, Referrer::Here(referrer), record, now)
}

fn release(
    program: &Program,
    account: &mut Account,
    referrer: Referrer<'_>,
    record: &mut OrderRecord,
    now: DateTime<Utc>,
) -> Result<(Applied, Applied), LedgerError> {
    if record
        .customer
        .as_ref()
        .is_some_and(|c| c != &account.customer)
    {
        return Err(LedgerError::CustomerMismatch {
            order: record.order_id.clone(),
        });
    }
    if !record.is_due(now) {
        return Ok((Applied::duplicate(), Applied::default()));
    }
    let key = format!("order:{}:release", record.order_id);
    let order_id = record.order_id.clone();
    let mut referrer_journal = Journal::new(format!("{key}:referral"), now, record.currency);
    if let (Some(referral), Referrer::Deferred) = (record.referral.as_mut(), &referrer) {
        referral.pending = Money::zero(record.currency);
    }
    let referrer = match referrer {
        Referrer::Here(account) => account,
        Referrer::Deferred => None,
    };
    if let Some(referral) = record.referral.as_mut().filter(|r| r.pending.is_positive()) {
        let Some(referrer) = referrer.filter(|r| r.customer == referral.referrer) else {
            return Err(LedgerError::PartyMissing {
                order: order_id,
                customer: referral.referrer.clone(),
            });
        };
        let amount = referral.pending;
        referral.pending = Money::zero(record.currency);
        referrer.pending = referrer.pending.checked_sub(amount)?;
        referrer.credit_available(
            amount,
            program,
            &mut referrer_journal,
            EntryKind::Release,
            Some(&order_id),
            Deltas {
                pending: Some(amount.negated()),
                note: Some(format!("referral reward for order {order_id}")),
                ..Deltas::default()
            },
        )?;
        referrer.reminders.restart(now);
    }
    let amount = record.pending;
    let mut journal = Journal::new(key, now, record.currency);
    record.pending = Money::zero(record.currency);
    record.released = true;
    if amount.is_positive() {
        account.pending = account.pending.checked_sub(amount)?;
        account.credit_available(
            amount,
            program,
            &mut journal,
            EntryKind::Release,
            Some(&order_id),
            Deltas {
                pending: Some(amount.negated()),
                ..Deltas::default()
            },
        )?;
        account.reminders.restart(now);
        if let Some(order_at) = record.earned_order_at() {
            account
                .bonus
                .order_released(&program.bonuses, order_at, now);
        }
        journal.effect(Effect::Released { order_id, amount });
    }
    Ok((journal.finish(), referrer_journal.finish()))
}

/// Codes of the coupons credited on an order, for usage counters.
pub fn coupons_on(record: &OrderRecord) -> Vec<Code> {
    record
        .earned
        .as_ref()
        .map(|e| e.coupons.iter().map(|c| c.code.clone()).collect())
        .unwrap_or_default()
}
