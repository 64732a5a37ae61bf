//! How much cashback an order earns, and who pays for it.
//!
//! eligible base = merchandise after every discount (the cashback code's own
//! included), without shipping, tax, gift cards and excluded lines;
//! percent = merchant (or tier) + partner match + active promotions;
//! earned = base x percent + the best fixed rule met, capped per order,
//! rounded toward zero to the minor unit. The partner funds its match; the
//! merchant funds the rest.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{percent_of, Currency, Money, MoneyError};
use crate::order::Line;
use crate::program::{Exclusions, Program, ReferralReward};

/// Why a line does not count toward cashback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionReason {
    /// The line sells a gift card, and the program excludes gift cards.
    GiftCard,
    /// Its product is in the program's excluded products.
    Product,
    /// Its variant is in the program's excluded variants.
    Variant,
    /// Its SKU is in the program's excluded SKUs.
    Sku,
    /// Its vendor is in the program's excluded vendors.
    Vendor,
    /// One of its collections is in the program's excluded collections.
    Collection,
    /// It sells below its compare-at price, and the program excludes sale
    /// items.
    SaleItem,
}

impl Exclusions {
    /// The first exclusion that takes the line out of the eligible base, in
    /// the order of [`ExclusionReason`]'s variants; None when it earns.
    pub fn reason_to_exclude(&self, line: &Line) -> Option<ExclusionReason> {
        if self.gift_cards && line.gift_card {
            return Some(ExclusionReason::GiftCard);
        }
        if line
            .product_id
            .as_ref()
            .is_some_and(|p| self.product_ids.contains(p))
        {
            return Some(ExclusionReason::Product);
        }
        if line
            .variant_id
            .as_ref()
            .is_some_and(|v| self.variant_ids.contains(v))
        {
            return Some(ExclusionReason::Variant);
        }
        if line
            .sku
            .as_deref()
            .is_some_and(|sku| self.skus.iter().any(|s| s.eq_ignore_ascii_case(sku.trim())))
        {
            return Some(ExclusionReason::Sku);
        }
        if line.vendor.as_deref().is_some_and(|vendor| {
            self.vendors
                .iter()
                .any(|v| v.eq_ignore_ascii_case(vendor.trim()))
        }) {
            return Some(ExclusionReason::Vendor);
        }
        if line
            .collection_ids
            .iter()
            .any(|c| self.collection_ids.contains(c))
        {
            return Some(ExclusionReason::Collection);
        }
        if self.sale_items && line.on_sale() {
            return Some(ExclusionReason::SaleItem);
        }
        None
    }
}

/// A line's share of the order: what it cost and what of that earns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineValue {
    /// The order's line, which line refunds name.
    pub line_id: crate::ids::LineId,
    /// Units bought, the denominator of a partial line refund.
    pub quantity: u32,
    /// What the line's merchandise cost after its discounts and included
    /// tax, never negative: the measure for restoring spent credit.
    pub merchandise: Money,
    /// The part of `merchandise` that earns: all of it, or zero when the
    /// line is excluded. The measure for clawbacks.
    pub eligible: Money,
}

/// The eligible base of a set of lines, line by line.
pub fn line_values(
    lines: &[Line],
    exclusions: &Exclusions,
    currency: Currency,
) -> Result<Vec<LineValue>, MoneyError> {
    lines
        .iter()
        .map(|line| {
            let merchandise = line.net_merchandise()?;
            if merchandise.currency() != currency {
                return Err(MoneyError::CurrencyMismatch {
                    left: currency,
                    right: merchandise.currency(),
                });
            }
            let eligible = if exclusions.reason_to_exclude(line).is_some() {
                Money::zero(currency)
            } else {
                merchandise
            };
            Ok(LineValue {
                line_id: line.line_id.clone(),
                quantity: line.quantity,
                merchandise,
                eligible,
            })
        })
        .collect()
}

/// The order's or cart's eligible base: the sum of its lines' eligible
/// values, in `currency` (a line in another currency is an error).
pub fn eligible_base(
    lines: &[Line],
    exclusions: &Exclusions,
    currency: Currency,
) -> Result<Money, MoneyError> {
    let values = line_values(lines, exclusions, currency)?;
    Money::sum(currency, values.iter().map(|v| &v.eligible))
}

/// What an order earns from the program, with the funding split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earned {
    /// Cashback the order earns from the program, rounded toward zero to the
    /// minor unit, after the per-order cap; coupons come on top.
    pub total: Money,
    /// The merchant's part of `total`: `total - partner_funded`, so the two
    /// always add up exactly.
    pub merchant_funded: Money,
    /// The partner's matching part, rounded toward zero and shrunk in
    /// proportion under the cap; the partner gives it back on clawbacks.
    pub partner_funded: Money,
    /// The percent that applied (merchant or tier + partner + promotions).
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
    /// Tier whose rate applied, if any, as an index into
    /// [`Program::tiers`].
    pub tier: Option<usize>,
    /// The per-order cap cut the cashback down.
    pub capped: bool,
}

impl Earned {
    /// An order that earns nothing: no eligible base, or under the program's
    /// minimum order.
    pub fn nothing(currency: Currency) -> Earned {
        Earned {
            total: Money::zero(currency),
            merchant_funded: Money::zero(currency),
            partner_funded: Money::zero(currency),
            percent: Decimal::ZERO,
            tier: None,
            capped: false,
        }
    }
}

/// Cashback for an eligible base, given the customer's lifetime eligible spend
/// before this order and when the order happened (for promotions).
pub fn earn(
    program: &Program,
    eligible: Money,
    lifetime_spend_before: Money,
    at: DateTime<Utc>,
) -> Result<Earned, MoneyError> {
    let currency = program.currency;
    if eligible.currency() != currency {
        return Err(MoneyError::CurrencyMismatch {
            left: currency,
            right: eligible.currency(),
        });
    }
    let base = eligible.amount();
    if base <= Decimal::ZERO || base < program.earning.min_order_subtotal {
        return Ok(Earned::nothing(currency));
    }
    let tier = program.tier_for(lifetime_spend_before.amount());
    let own_percent = tier
        .map(|index| program.tiers[index].percent)
        .unwrap_or(program.earning.merchant_percent);
    let promotion_percent: Decimal = program
        .promotions
        .iter()
        .filter(|p| p.is_active(at))
        .map(|p| p.bonus_percent)
        .sum();
    let partner_percent = program.earning.partner_match_percent;
    let percent = own_percent + promotion_percent + partner_percent;

    let fixed = program
        .earning
        .fixed_rules
        .iter()
        .filter(|rule| base >= rule.min_order)
        .map(|rule| rule.amount)
        .max()
        .unwrap_or(Decimal::ZERO);

    let partner_exact = percent_of(base, partner_percent);
    let uncapped = percent_of(base, percent) + fixed;
    let (exact, capped) = match program.earning.cap_per_order {
        Some(cap) if uncapped > cap => (cap, true),
        _ => (uncapped, false),
    };
    let total = Money::round_toward_zero(exact, currency);
    // Under a cap every funder gives up the same share of what it would have paid.
    let partner_share = if capped && !uncapped.is_zero() {
        partner_exact * exact / uncapped
    } else {
        partner_exact
    };
    let partner_funded = Money::round_toward_zero(partner_share, currency).min(total)?;
    let merchant_funded = total.checked_sub(partner_funded)?;
    Ok(Earned {
        total,
        merchant_funded,
        partner_funded,
        percent,
        tier,
        capped,
    })
}

/// What a referrer earns when a referred customer's first order is paid.
pub fn referral_reward(program: &Program, referred_eligible: Money) -> Money {
    let currency = program.currency;
    match &program.referral {
        None => Money::zero(currency),
        Some(ReferralReward::Fixed { amount }) => Money::round_toward_zero(*amount, currency),
        Some(ReferralReward::Percent { percent }) => {
            Money::round_toward_zero(percent_of(referred_eligible.amount(), *percent), currency)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LineId, ProductId};
    use crate::program::{FixedRule, Promotion, Tier};
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    fn percent_program(percent: Decimal) -> Program {
        let mut program = Program::new(Currency::USD);
        program.earning.merchant_percent = percent;
        program
    }

    pub(crate) fn line(id: &str, price: &str, quantity: u32, discount: &str) -> Line {
        Line {
            line_id: LineId::parse(id).unwrap(),
            product_id: Some(ProductId::parse(&format!("p{id}")).unwrap()),
            variant_id: None,
            sku: None,
            vendor: None,
            quantity,
            unit_price: usd(price),
            discount: usd(discount),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }
    }

    #[test]
    fn ten_percent_of_1500_capped_at_200_gives_150() {
        let mut program = percent_program(dec!(10));
        program.earning.cap_per_order = Some(dec!(200));
        let earned = earn(&program, usd("1500.00"), usd("0"), at()).unwrap();
        assert_eq!(earned.total, usd("150.00"));
        assert!(!earned.capped);
    }

    #[test]
    fn the_cap_limits_a_large_order() {
        let mut program = percent_program(dec!(10));
        program.earning.cap_per_order = Some(dec!(100));
        let earned = earn(&program, usd("1500.00"), usd("0"), at()).unwrap();
        assert_eq!(earned.total, usd("100.00"));
        assert!(earned.capped);
    }

    #[test]
    fn a_flat_50_on_orders_of_500_or_more() {
        let mut program = percent_program(dec!(0));
        program.earning.fixed_rules = vec![
            FixedRule {
                amount: dec!(10),
                min_order: dec!(100),
            },
            FixedRule {
                amount: dec!(50),
                min_order: dec!(500),
            },
        ];
        assert_eq!(
            earn(&program, usd("500.00"), usd("0"), at()).unwrap().total,
            usd("50.00")
        );
        assert_eq!(
            earn(&program, usd("499.99"), usd("0"), at()).unwrap().total,
            usd("10.00")
        );
        assert_eq!(
            earn(&program, usd("99.99"), usd("0"), at()).unwrap().total,
            usd("0.00")
        );
    }

    #[test]
    fn merchant_5_percent_plus_a_5_percent_match_gives_10_percent_with_both_shares() {
        let mut program = percent_program(dec!(5));
        program.earning.partner_match_percent = dec!(5);
        let earned = earn(&program, usd("200.00"), usd("0"), at()).unwrap();
        assert_eq!(earned.percent, dec!(10));
        assert_eq!(earned.total, usd("20.00"));
        assert_eq!(earned.merchant_funded, usd("10.00"));
        assert_eq!(earned.partner_funded, usd("10.00"));
    }

    #[test]
    fn under_a_cap_both_funders_shrink_in_proportion() {
        let mut program = percent_program(dec!(6));
        program.earning.partner_match_percent = dec!(4);
        program.earning.cap_per_order = Some(dec!(50));
        let earned = earn(&program, usd("1000.00"), usd("0"), at()).unwrap();
        assert_eq!(earned.total, usd("50.00"));
        assert_eq!(earned.partner_funded, usd("20.00"));
        assert_eq!(earned.merchant_funded, usd("30.00"));
    }

    #[test]
    fn five_percent_of_100_is_5() {
        let earned = earn(&percent_program(dec!(5)), usd("100.00"), usd("0"), at()).unwrap();
        assert_eq!(earned.total, usd("5.00"));
    }

    #[test]
    fn ten_percent_of_33_33_is_3_33() {
        let earned = earn(&percent_program(dec!(10)), usd("33.33"), usd("0"), at()).unwrap();
        assert_eq!(earned.total, usd("3.33"));
    }

    #[test]
    fn nothing_is_earned_below_the_minimum_order() {
        let mut program = percent_program(dec!(10));
        program.earning.min_order_subtotal = dec!(25);
        assert!(earn(&program, usd("24.99"), usd("0"), at())
            .unwrap()
            .total
            .is_zero());
        assert_eq!(
            earn(&program, usd("25.00"), usd("0"), at()).unwrap().total,
            usd("2.50")
        );
    }

    #[test]
    fn the_tier_before_the_order_sets_its_rate() {
        let mut program = percent_program(dec!(5));
        program.tiers = vec![Tier {
            name: "Gold".into(),
            min_lifetime_spend: dec!(1000),
            percent: dec!(8),
        }];
        assert_eq!(
            earn(&program, usd("100.00"), usd("999.99"), at())
                .unwrap()
                .total,
            usd("5.00")
        );
        let gold = earn(&program, usd("100.00"), usd("1000.00"), at()).unwrap();
        assert_eq!(gold.total, usd("8.00"));
        assert_eq!(gold.tier, Some(0));
    }

    #[test]
    fn an_active_promotion_adds_its_bonus_and_an_ended_one_does_not() {
        let mut program = percent_program(dec!(5));
        program.promotions = vec![Promotion {
            name: "Spring".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
            bonus_percent: dec!(3),
        }];
        assert_eq!(
            earn(&program, usd("100.00"), usd("0"), at()).unwrap().total,
            usd("8.00")
        );
        let later = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        assert_eq!(
            earn(&program, usd("100.00"), usd("0"), later)
                .unwrap()
                .total,
            usd("5.00")
        );
    }

    #[test]
    fn the_eligible_base_leaves_out_gift_cards_excluded_lines_and_sale_items() {
        let mut program = percent_program(dec!(10));
        program.exclusions.skus = vec!["WRAP".into()];
        program.exclusions.sale_items = true;
        let mut gift = line("1", "50.00", 1, "0.00");
        gift.gift_card = true;
        let mut wrap = line("2", "5.00", 1, "0.00");
        wrap.sku = Some("wrap".into());
        let mut sale = line("3", "20.00", 1, "0.00");
        sale.compare_at_price = Some(usd("30.00"));
        let shirt = line("4", "40.00", 2, "8.00");
        let base = eligible_base(
            &[gift, wrap, sale, shirt],
            &program.exclusions,
            Currency::USD,
        )
        .unwrap();
        assert_eq!(base, usd("72.00"));
    }

    #[test]
    fn included_tax_is_not_merchandise() {
        let mut taxed = line("1", "120.00", 1, "0.00");
        taxed.included_tax = Some(usd("20.00"));
        let base = eligible_base(
            &[taxed],
            &Program::new(Currency::USD).exclusions,
            Currency::USD,
        )
        .unwrap();
        assert_eq!(base, usd("100.00"));
    }

    #[test]
    fn a_line_in_another_currency_is_an_error() {
        let mut foreign = line("1", "10.00", 1, "0.00");
        foreign.unit_price = Money::parse("10.00", Currency::EUR).unwrap();
        foreign.discount = Money::zero(Currency::EUR);
        assert!(eligible_base(&[foreign], &Exclusions::default(), Currency::USD).is_err());
    }

    #[test]
    fn referral_rewards_are_fixed_or_a_percent_of_the_first_order() {
        let mut program = percent_program(dec!(5));
        assert!(referral_reward(&program, usd("100.00")).is_zero());
        program.referral = Some(ReferralReward::Fixed { amount: dec!(15) });
        assert_eq!(referral_reward(&program, usd("100.00")), usd("15.00"));
        program.referral = Some(ReferralReward::Percent { percent: dec!(7.5) });
        assert_eq!(referral_reward(&program, usd("33.33")), usd("2.49"));
    }
}
