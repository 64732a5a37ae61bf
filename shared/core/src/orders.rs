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

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::coupon::CouponCredit;
use crate::earn::{earn, line_values, LineValue};
use crate::ids::{Code, CustomerId, OrderId, RefundId};
use crate::ledger::{Account, Applied, Deltas, Effect, EntryKind, Funding, Journal, LedgerError};
use crate::money::{Currency, Money};
use crate::order::{Order, OrderEvent, Refund, RefundBasis};
use crate::program::{Issuance, Program, Trigger};

/// What the engine did for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub currency: Currency,
    /// Whose account the order earns on; unknown until an event names them
    /// (a refund carries no customer).
    #[serde(default)]
    pub customer: Option<CustomerId>,
    /// The order's lines as first seen, with their eligible values.
    #[serde(default)]
    pub lines: Vec<LineValue>,
    /// What the customer paid in all, for amount-only refunds.
    #[serde(default)]
    pub total: Option<Money>,
    /// Shipping charged, so an amount refund is measured against the
    /// merchandise only (`total - shipping`).
    #[serde(default)]
    pub shipping: Option<Money>,
    /// When the order itself happened (its paid event's time): coupons and
    /// promotions are judged then, even when fulfilment earns much later.
    #[serde(default)]
    pub placed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub seen_paid: bool,
    #[serde(default)]
    pub seen_fulfilled: bool,
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default)]
    pub earned: Option<EarnedRecord>,
    /// This order's cashback still pending.
    pub pending: Money,
    #[serde(default)]
    pub release_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub released: bool,
    /// Earned cashback taken back so far (voided pending included).
    pub clawed_back: Money,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarnedRecord {
    pub total: Money,
    pub funding: Funding,
    pub coupons: Vec<CouponCredit>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRefund {
    pub refund_id: RefundId,
    pub basis: RefundBasis,
}

impl OrderRecord {
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
        }
    }

    pub fn eligible(&self) -> Money {
        Money::sum(self.currency, self.lines.iter().map(|l| &l.eligible))
            .unwrap_or(Money::zero(self.currency))
    }

    fn merchandise(&self) -> Money {
        Money::sum(self.currency, self.lines.iter().map(|l| &l.merchandise))
            .unwrap_or(Money::zero(self.currency))
    }

    /// The time an order's coupons and promotions are judged at: when it
    /// was placed (paid), not when a later fulfilment made it earn.
    pub fn judged_at(&self, order: &Order) -> DateTime<Utc> {
        self.placed_at
            .map_or(order.occurred_at, |placed| placed.min(order.occurred_at))
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
        !self.cancelled
            && !self.released
            && self.pending.is_positive()
            && self.release_at.is_some_and(|at| at <= now)
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
    pub program: &'a Program,
    /// When the engine applies the event (entries are stamped with it).
    pub now: DateTime<Utc>,
    /// Cashback from coupons on this order, already checked by the caller.
    pub coupons: &'a [CouponCredit],
}

/// Applies a platform event to an order and its customer's account.
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
    if let Some(account) = account.as_deref() {
        if record
            .customer
            .as_ref()
            .is_some_and(|c| c != &account.customer)
        {
            return Err(LedgerError::CustomerMismatch {
                order: record.order_id.clone(),
            });
        }
    }
    let mut journal = Journal::new(event.effect_key(), ctx.now, record.currency);
    match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) => {
            let paid = matches!(event, OrderEvent::Paid(_));
            let already = if paid {
                record.seen_paid
            } else {
                record.seen_fulfilled
            };
            if already {
                return Ok(Applied::duplicate());
            }
            learn_order(ctx.program, record, order, account.as_deref())?;
            if paid {
                record.seen_paid = true;
                record.placed_at.get_or_insert(order.occurred_at);
            } else {
                record.seen_fulfilled = true;
            }
            let Some(account) = account else {
                return Ok(journal.finish());
            };
            if record.cancelled {
                return Ok(journal.finish());
            }
            settle_redemption(account, record, order, &mut journal)?;
            // Refunds recorded before this event give back the credit spent on
            // the order now, whether or not this event is the one that earns.
            settle_refunds(ctx.program, account, record, &mut journal)?;
            let trigger = if paid {
                Trigger::Paid
            } else {
                Trigger::Fulfilled
            };
            if trigger == ctx.program.trigger && record.earned.is_none() {
                credit_earned(ctx, account, record, order, &mut journal)?;
                settle_refunds(ctx.program, account, record, &mut journal)?;
            }
        }
        OrderEvent::Refunded(refund) => {
            if record
                .refunds
                .iter()
                .any(|r| r.refund_id == refund.refund_id)
            {
                return Ok(Applied::duplicate());
            }
            record_refund(record, refund);
            if let (Some(account), false) = (account, record.cancelled) {
                settle_refunds(ctx.program, account, record, &mut journal)?;
            }
        }
        OrderEvent::Cancelled(order) => {
            if record.cancelled {
                return Ok(Applied::duplicate());
            }
            learn_order(ctx.program, record, order, account.as_deref())?;
            record.cancelled = true;
            if let Some(account) = account {
                cancel(ctx.program, account, record, &mut journal)?;
            }
        }
    }
    Ok(journal.finish())
}

/// Remembers who placed the order and its lines, the first time it is seen.
/// Later events never recompute them: earned cashback is not recomputed.
fn learn_order(
    program: &Program,
    record: &mut OrderRecord,
    order: &Order,
    account: Option<&Account>,
) -> Result<(), LedgerError> {
    if record.customer.is_none() {
        record.customer = account
            .map(|a| a.customer.clone())
            .or_else(|| order.customer.account_id());
    }
    if record.lines.is_empty() && record.total.is_none() {
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

/// Spends the customer's balance for their code on this order, turning the
/// checkout's hold into the redemption when there is one.
fn settle_redemption(
    account: &mut Account,
    record: &mut OrderRecord,
    order: &Order,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    if record.redemption_settled {
        return Ok(());
    }
    record.redemption_settled = true;
    let Some(code) = account.code.clone() else {
        return Ok(());
    };
    let used: Vec<&crate::order::AppliedCode> = order
        .discount_codes
        .iter()
        .filter(|applied| applied.code == code)
        .collect();
    let Some(first) = used.first() else {
        return Ok(());
    };
    let amount = Money::sum(account.currency, used.iter().map(|a| &a.amount))?;
    account.same_currency(first.amount)?;
    if let Some(checkout) = &order.checkout_id {
        account.release_hold(checkout);
    }
    let taken = account.take_available(amount, journal)?;
    record.redeemed = taken;
    record.shortfall = amount.checked_sub(taken)?.clamp_non_negative();
    account.lifetime_used = account.lifetime_used.checked_add(taken)?;
    if taken.is_positive() {
        journal.record(
            EntryKind::Redeem,
            Some(&record.order_id),
            Deltas {
                available: Some(taken.negated()),
                note: record
                    .shortfall
                    .is_positive()
                    .then(|| format!("shortfall {}", record.shortfall)),
                ..Deltas::default()
            },
        );
    }
    Ok(())
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
    let total = from_program.total.checked_add(from_coupons)?;
    // Coupons are the merchant's own offers: the partner matches only the program.
    let funding = Funding {
        merchant: from_program.merchant_funded.checked_add(from_coupons)?,
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

    account.lifetime_eligible_spend = account.lifetime_eligible_spend.checked_add(eligible)?;
    record.spend_counted = eligible;
    update_tier(program, account, journal);
    account.orders_earned += 1;

    if !total.is_positive() {
        return Ok(());
    }
    account.lifetime_issued = account.lifetime_issued.checked_add(total)?;
    let order_id = record.order_id.clone();
    match program.issuance {
        Issuance::Pending { days } => {
            // Never due before the engine recorded it: a delivery that comes
            // late (or a replay) would otherwise fall due in the past, behind
            // the scheduled job's checkpoint, and wait forever.
            let release_at =
                (order.occurred_at + Duration::days(i64::from(days))).max(journal.at());
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

/// Brings the order's clawback and restore up to what its refunds so far call for.
fn settle_refunds(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    if record.refunds.is_empty() || (record.lines.is_empty() && record.total.is_none()) {
        return Ok(());
    }
    let (eligible_fraction, merchandise_fraction) = record.refunded_fractions();
    if let Some(earned) = record.earned.clone() {
        // Eligible base of zero (only coupon cashback): use merchandise instead.
        let fraction = if record.eligible().is_zero() {
            merchandise_fraction
        } else {
            eligible_fraction
        };
        claw_back_to(account, record, share_of(earned.total, fraction), journal)?;
        let spend_target = share_of(record.eligible(), Decimal::ONE - eligible_fraction);
        uncount_spend(program, account, record, spend_target, journal)?;
    }
    restore_to(
        program,
        account,
        record,
        share_of(record.redeemed, merchandise_fraction),
        journal,
    )?;
    Ok(())
}

fn cancel(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    if let Some(earned) = record.earned.clone() {
        claw_back_to(account, record, earned.total, journal)?;
        uncount_spend(
            program,
            account,
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
    restore_to(program, account, record, record.redeemed, journal)?;
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

fn restore_to(
    program: &Program,
    account: &mut Account,
    record: &mut OrderRecord,
    target: Money,
    journal: &mut Journal,
) -> Result<(), LedgerError> {
    let delta = target.checked_sub(record.restored)?;
    if !delta.is_positive() {
        return Ok(());
    }
    record.restored = target;
    account.lifetime_used = account
        .lifetime_used
        .checked_sub(delta)?
        .clamp_non_negative();
    let order_id = record.order_id.clone();
    account.credit_available(
        delta,
        program,
        journal,
        EntryKind::Restore,
        Some(&order_id),
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
        return Ok(Applied::duplicate());
    }
    let amount = record.pending;
    let mut journal = Journal::new(
        format!("order:{}:release", record.order_id),
        now,
        record.currency,
    );
    record.pending = Money::zero(record.currency);
    record.released = true;
    account.pending = account.pending.checked_sub(amount)?;
    let order_id = record.order_id.clone();
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
    journal.effect(Effect::Released { order_id, amount });
    Ok(journal.finish())
}

/// Codes of the coupons credited on an order, for usage counters.
pub fn coupons_on(record: &OrderRecord) -> Vec<Code> {
    record
        .earned
        .as_ref()
        .map(|e| e.coupons.iter().map(|c| c.code.clone()).collect())
        .unwrap_or_default()
}
