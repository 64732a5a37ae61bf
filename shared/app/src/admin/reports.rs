//! Reports: issued, redeemed, liability, customers and rates over a period,
//! from the running aggregates the report aggregator keeps.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use cashback_core::ids::ShopId;
use cashback_core::money::{Currency, Money};

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::{field, known_shop, tier_name, MAX_REPORT_DAYS};

/// Issued or clawed back cashback, by who funds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Funded {
    /// All of it.
    pub total: Decimal,
    /// The merchant's part: the total less the partner's.
    pub merchant: Decimal,
    /// The partner's match (docs/reports.md).
    pub partner: Decimal,
}

/// What the shop owes its customers at the end of a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Liability {
    /// End of this day (UTC).
    pub at: NaiveDate,
    /// Spendable balances.
    pub available: Decimal,
    /// Cashback earned, not yet released.
    pub pending: Decimal,
    /// available + pending.
    pub total: Decimal,
    /// The total split pro rata of net funding to date (docs/reports.md).
    pub merchant: Decimal,
    /// The partner's part of the total.
    pub partner: Decimal,
    /// Clawbacks not yet recovered and balance code shortfalls charged to
    /// their owners: not part of the liability.
    pub debt: Decimal,
}

/// How many customers are in one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierCount {
    /// None: customers in no tier.
    pub tier: Option<usize>,
    /// The tier's name in the program.
    pub name: String,
    /// Customers in it now.
    pub customers: i64,
}

/// The shop's customers, as the counters stand now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomersReport {
    /// Customers with an account.
    pub total: i64,
    /// Customers with at least one earning order.
    pub earned: i64,
    /// Customers with two or more earning orders.
    pub repeat: i64,
    /// Customers per tier.
    pub by_tier: Vec<TierCount>,
}

/// Manual adjustments in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjusted {
    /// Credited by hand.
    pub credited: Decimal,
    /// Debited by hand.
    pub debited: Decimal,
}

/// Merchant-funded bonuses credited in the period, apart from earned
/// cashback, by kind (docs/bonuses.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BonusesReport {
    /// All of them.
    pub total: Decimal,
    /// Birthday bonuses.
    pub birthday: Decimal,
    /// First-order anniversary bonuses.
    pub anniversary: Decimal,
    /// Win-back bonuses.
    pub win_back: Decimal,
    /// Milestone bonuses.
    pub milestone: Decimal,
}

/// A period's figures; every definition is in docs/reports.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The shop reported on.
    pub shop: ShopId,
    /// The currency of every amount.
    pub currency: Currency,
    /// The first day of the period (UTC).
    pub from: NaiveDate,
    /// The last day of the period (UTC), inclusive.
    pub to: NaiveDate,
    /// Cashback earned (program, coupons, referral rewards), by funder.
    pub issued: Funded,
    /// Cashback that became spendable (released, or issued straight to available).
    pub released: Decimal,
    /// Balance spent on orders.
    pub redeemed: Decimal,
    /// Of `redeemed`, what balance codes granted beyond their owner's
    /// balance and charged to the owner as debt (two checkouts spending the
    /// same balance before either order lowered the code).
    pub redeemed_as_debt: Decimal,
    /// Spent balance given back by cancellations and refunds.
    pub restored: Decimal,
    /// Cashback taken back, by funder.
    pub clawed_back: Funded,
    /// Balance that expired unspent.
    pub expired: Decimal,
    /// Manual adjustments.
    pub adjusted: Adjusted,
    /// Bonuses credited, by kind; not part of `issued` nor `released`.
    pub bonuses: BonusesReport,
    /// What is owed at the end of the period.
    pub liability: Liability,
    /// expired / released; None when nothing was released.
    pub breakage_rate: Option<Decimal>,
    /// (redeemed - restored) / released; None when nothing was released.
    pub redemption_rate: Option<Decimal>,
    /// Customers now: the counters are current, not as of `to`.
    pub customers: CustomersReport,
    /// repeat / earned, of the customers now; None when nobody earned.
    pub repeat_purchase_rate: Option<Decimal>,
}

fn at_minor_unit(value: Decimal, currency: Currency) -> Decimal {
    let mut value = value;
    value.rescale(currency.minor_units());
    value
}

fn rate(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    (!denominator.is_zero()).then(|| (numerator / denominator).round_dp(4).normalize())
}

/// Period sums of one shop's day figures.
#[derive(Default)]
struct Sums {
    figures: DayFigures,
}

impl Sums {
    fn issued(&self) -> Funded {
        let earn = &self.figures.earn;
        let total = earn.available + earn.pending;
        // The partner funds its match; the merchant everything else
        // (program percent, fixed rules, coupons, referrals).
        Funded {
            total,
            merchant: total - earn.partner,
            partner: earn.partner,
        }
    }

    fn clawed_back(&self) -> Funded {
        let c = &self.figures.clawback;
        // What the clawbacks took from the customer's position (balances
        // less debt). Debt recovered later moves balance and debt alike
        // and counts nothing new.
        let total = c.debt - c.available - c.pending;
        Funded {
            total,
            merchant: total + c.partner,
            partner: -c.partner,
        }
    }

    /// Cashback that became spendable: pending released, and cashback
    /// credited straight to available (immediate issuance, referrals).
    fn released(&self) -> Decimal {
        self.figures.release.available + self.figures.earn.available
    }

    /// What balance codes charged: the balance taken, and the shortfall
    /// charged to the code's owner as debt (granted, never free).
    fn redeemed(&self) -> Decimal {
        self.figures.redeem.debt - self.figures.redeem.available
    }

    fn restored(&self) -> Decimal {
        self.figures.restore.available
    }

    fn expired(&self) -> Decimal {
        -self.figures.expire.available
    }

    fn adjusted(&self) -> Adjusted {
        let a = &self.figures.adjust;
        Adjusted {
            credited: a.credited,
            debited: a.credited - a.available,
        }
    }

    fn bonuses(&self) -> BonusesReport {
        let b = &self.figures.bonus;
        BonusesReport {
            total: b.credited,
            birthday: b.birthday,
            anniversary: b.anniversary,
            win_back: b.win_back,
            milestone: b.milestone,
        }
    }

    fn available(&self) -> Decimal {
        self.figures.total(Metric::Available)
    }

    fn pending(&self) -> Decimal {
        self.figures.total(Metric::Pending)
    }

    fn debt(&self) -> Decimal {
        self.figures.total(Metric::Debt)
    }
}

/// The liability split: balances are fungible once credited (a lot does
/// not remember who funded it), so what is outstanding is split in the
/// proportion each funder has funded, net, up to that date: the partner's
/// share is its issued match less its clawed back match, over all cashback
/// issued less clawed back plus the merchant's net adjustments. The
/// partner's part rounds toward zero; the merchant carries the rest.
fn split_liability(to_date: &Sums, total: Decimal, currency: Currency) -> (Decimal, Decimal) {
    let issued = to_date.issued();
    let clawed = to_date.clawed_back();
    let adjusted = to_date.adjusted();
    let partner_funded = issued.partner - clawed.partner;
    // Bonuses are the merchant's: they add to what was funded, not the partner's share.
    let all_funded = issued.total - clawed.total + adjusted.credited - adjusted.debited
        + to_date.bonuses().total;
    if all_funded <= Decimal::ZERO || partner_funded <= Decimal::ZERO || total <= Decimal::ZERO {
        return (total, Decimal::ZERO);
    }
    let share = (partner_funded / all_funded).min(Decimal::ONE);
    let partner = Money::round_toward_zero(total * share, currency).amount();
    (total - partner, partner)
}

/// The shop's report for a period (dates inclusive, UTC days), from the
/// running aggregates: whole months and the days around them, no scan.
pub async fn report(
    ctx: &Context,
    shop: &ShopId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Report, AppError> {
    if to < from {
        return Err(AppError::InvalidFields(vec![field(
            "to",
            "must not be before from",
        )]));
    }
    if (to - from).num_days() > MAX_REPORT_DAYS {
        return Err(AppError::InvalidFields(vec![field(
            "to",
            format!("a report covers at most {MAX_REPORT_DAYS} days"),
        )]));
    }
    let known = known_shop(ctx, shop).await?;
    let program = ctx.store.get_program(shop).await?.map(|p| p.value);
    let aggregates = ctx.store.aggregates(shop, from, to).await?;
    let period = Sums {
        figures: aggregates.period(from, to),
    };
    let to_date = Sums {
        figures: aggregates.up_to(to),
    };
    let currency = known.currency;

    let released = period.released();
    let redeemed = period.redeemed();
    let restored = period.restored();
    let expired = period.expired();
    let available = to_date.available();
    let pending = to_date.pending();
    let total = available + pending;
    let (merchant, partner) = split_liability(&to_date, total, currency);

    let counts = &aggregates.counts;
    let mut by_tier: Vec<TierCount> = counts
        .tiers
        .iter()
        .filter(|(_, count)| **count != 0)
        .map(|(key, count)| {
            let tier = key.parse::<usize>().ok();
            TierCount {
                tier,
                name: match tier {
                    Some(index) => tier_name(program.as_ref(), index),
                    None => "no tier".into(),
                },
                customers: *count,
            }
        })
        .collect();
    by_tier.sort_by_key(|t| t.tier.map_or(0, |i| i + 1));

    // Stores may hand sums back normalised ("20"): amounts are shown at
    // the currency's minor unit ("20.00"), as everywhere else.
    let m = |value: Decimal| at_minor_unit(value, currency);
    let funded = |f: Funded| Funded {
        total: m(f.total),
        merchant: m(f.merchant),
        partner: m(f.partner),
    };
    let adjusted = period.adjusted();
    Ok(Report {
        shop: shop.clone(),
        currency,
        from,
        to,
        issued: funded(period.issued()),
        released: m(released),
        redeemed: m(redeemed),
        redeemed_as_debt: m(period.figures.redeem.debt),
        restored: m(restored),
        clawed_back: funded(period.clawed_back()),
        expired: m(expired),
        adjusted: Adjusted {
            credited: m(adjusted.credited),
            debited: m(adjusted.debited),
        },
        bonuses: {
            let b = period.bonuses();
            BonusesReport {
                total: m(b.total),
                birthday: m(b.birthday),
                anniversary: m(b.anniversary),
                win_back: m(b.win_back),
                milestone: m(b.milestone),
            }
        },
        liability: Liability {
            at: to,
            available: m(available),
            pending: m(pending),
            total: m(total),
            merchant: m(merchant),
            partner: m(partner),
            debt: m(to_date.debt()),
        },
        breakage_rate: rate(expired, released),
        redemption_rate: rate(redeemed - restored, released),
        customers: CustomersReport {
            total: counts.customers,
            earned: counts.earners,
            repeat: counts.repeaters,
            by_tier,
        },
        repeat_purchase_rate: rate(
            Decimal::from(counts.repeaters),
            Decimal::from(counts.earners),
        ),
    })
}
