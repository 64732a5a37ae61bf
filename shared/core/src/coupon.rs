//! Cashback coupons: codes that take nothing off the cart but promise
//! cashback on the order ("10% back, up to 20.00").
//!
//! At checkout a coupon is checked against the cart it is given and previews
//! the cashback; nothing is reserved. The cashback is credited when the order
//! that used it is paid (or fulfilled), and follows the program's issuance.
//! Usage limits count uses although the cart discount is 0; per customer they
//! count by customer id and by normalised email, so a new email address does
//! not reset them; a cancelled order gives its use back.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::Code;
use crate::money::{percent_of, Money, MoneyError};
use crate::program::FieldError;

/// A merchant's cashback offer behind a code, as the admin API stores it.
/// Amounts are plain decimals in the shop's currency, at its minor unit
/// (checked by [`CashbackCoupon::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashbackCoupon {
    /// What the customer types at checkout; unique in the shop, stored lower
    /// case and matched case-insensitively.
    pub code: Code,
    /// The offer's name as customers and the merchant see it, 1 to 80
    /// characters.
    pub display_name: String,
    /// The merchant's own note about the coupon, for the dashboard.
    #[serde(default)]
    pub description: String,
    /// The promise shown to the customer ("10% back, up to 20.00").
    #[serde(default)]
    pub offer_text: String,
    /// How much cashback the coupon gives.
    pub reward: CouponReward,
    /// The least eligible cart value (after the program's exclusions) the
    /// coupon needs; 0 = no minimum.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub min_cart_value: Decimal,
    /// Uses allowed across all customers; None = unlimited.
    #[serde(default)]
    pub usage_limit_total: Option<u32>,
    /// Uses allowed per customer; None = unlimited.
    #[serde(default)]
    pub usage_limit_per_customer: Option<u32>,
    /// Payment methods (gateway names) the coupon works with; empty = any.
    #[serde(default)]
    pub payment_methods: Vec<String>,
    /// First moment the coupon works (inclusive), judged at the order's own
    /// time; None = no start.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    /// Moment the coupon stops working (exclusive); None = no end.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Only an approved coupon gives cashback; new coupons start as drafts.
    #[serde(default)]
    pub status: CouponStatus,
    /// Whether other discount codes may share the cart or order.
    #[serde(default)]
    pub stacking: Stacking,
}

/// The cashback a coupon promises. The customer pays the full price: the
/// reward is credited on the order, following the program's issuance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CouponReward {
    /// A flat amount whatever the cart, once the minimum cart value is met.
    Fixed {
        /// Cashback given, more than zero, in the shop's currency.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// A share of the eligible cart value, rounded toward zero.
    Percentage {
        /// Per cent of the eligible value, more than 0 and at most 100.
        #[serde(with = "rust_decimal::serde::str")]
        percent: Decimal,
        /// Most cashback the coupon gives; 0 = no cap.
        #[serde(default, with = "rust_decimal::serde::str")]
        max_cashback: Decimal,
    },
}

/// Where a coupon is in the merchant's review: only `Approved` works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponStatus {
    /// Being written; refused at checkout and on orders.
    #[default]
    Draft,
    /// Live: gives cashback within its dates and limits.
    Approved,
    /// Stopped by the merchant for now; refused like a draft until approved
    /// again.
    Paused,
}

/// Whether a coupon shares a cart with other discount codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stacking {
    /// Works only when no other discount code is on the cart: neither
    /// another cashback coupon nor an ordinary discount code.
    #[default]
    Exclusive,
    /// Works beside any other discount codes.
    Stackable,
}

/// How often a coupon has been used, as the store counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CouponUsage {
    /// Uses by everyone, for `usage_limit_total`.
    pub total: u32,
    /// Uses by this customer's id.
    pub by_customer: u32,
    /// Uses by this customer's normalised email (any account).
    pub by_email: u32,
}

/// Why a coupon does not apply, with the figure that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CouponRefusal {
    /// The coupon is a draft or paused.
    #[error("this coupon is not active")]
    NotActive,
    /// Checked before the coupon's start.
    #[error("this coupon starts at {starts_at}")]
    NotStarted {
        /// When the coupon starts working.
        starts_at: DateTime<Utc>,
    },
    /// Checked at or after the coupon's end.
    #[error("this coupon ended at {ended_at}")]
    Ended {
        /// When the coupon stopped working.
        ended_at: DateTime<Utc>,
    },
    /// The eligible cart value is under the coupon's minimum.
    #[error("minimum cart value {minimum}")]
    BelowMinimumCart {
        /// The minimum eligible value, in the shop's currency.
        minimum: Money,
    },
    /// Every use the coupon allows across all customers is taken.
    #[error("this coupon has been used up")]
    UsageLimitReached {
        /// Uses allowed in total.
        limit: u32,
    },
    /// This customer (by id or by email) has used up their share.
    #[error("you have already used this coupon {limit} times")]
    CustomerLimitReached {
        /// Uses allowed per customer.
        limit: u32,
    },
    /// None of the cart's or order's gateways is one the coupon allows,
    /// or none is known.
    #[error("this coupon does not work with this payment method")]
    PaymentMethodNotAllowed {
        /// The gateway names the coupon works with, to show the customer.
        allowed: Vec<String>,
    },
    /// An exclusive coupon met another discount code.
    #[error("this coupon cannot be combined with other coupons")]
    NotCombinable,
    /// The cart is priced in another currency than the shop's ledger.
    #[error("the cart is in {cart} but the shop's cashback is in {shop}")]
    CurrencyMismatch {
        /// The cart's currency code.
        cart: String,
        /// The shop's (ledger's) currency code.
        shop: String,
    },
}

/// The cart facts a coupon is checked against.
#[derive(Debug, Clone)]
pub struct CouponCheck<'a> {
    /// The cart's eligible base under the program's exclusions.
    pub eligible: Money,
    /// The payment methods: a checkout's one method, or every gateway an
    /// order was paid through (a gift card and a card); empty when unknown.
    pub payment_methods: &'a [String],
    /// Other discount codes on the same cart or order: cashback coupons and
    /// ordinary codes alike (automatic discounts have no code and do not
    /// count).
    pub other_coupons: usize,
    /// The coupon's uses so far, as the store counts them, this customer's
    /// included.
    pub usage: CouponUsage,
    /// True when the customer is known (by id or email); false for an
    /// anonymous preview, where per-customer limits cannot be checked yet.
    pub customer_known: bool,
    /// The moment the dates are judged at: the checkout's now, or the
    /// order's own time when it is credited.
    pub at: DateTime<Utc>,
}

impl CashbackCoupon {
    /// Checks the coupon as the merchant wrote it, before it is stored:
    /// every problem found, each named by its JSON field (`reward.percent`),
    /// so the dashboard can show it beside the field. `minor_units` is the
    /// shop currency's, which amounts may not be finer than.
    pub fn validate(&self, minor_units: u32) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: &str| {
            errors.push(FieldError {
                field: field.to_string(),
                message: message.to_string(),
            });
        };
        let amount_ok =
            |value: Decimal| !value.is_sign_negative() && value.normalize().scale() <= minor_units;
        if self.display_name.trim().is_empty() || self.display_name.chars().count() > 80 {
            fail("display_name", "must be 1 to 80 characters");
        }
        match &self.reward {
            CouponReward::Fixed { amount } => {
                if !amount_ok(*amount) || amount.is_zero() {
                    fail(
                        "reward.amount",
                        "must be more than zero, at the currency's minor unit",
                    );
                }
            }
            CouponReward::Percentage {
                percent,
                max_cashback,
            } => {
                if *percent <= Decimal::ZERO || *percent > Decimal::ONE_HUNDRED {
                    fail("reward.percent", "must be more than 0 and at most 100");
                }
                if !amount_ok(*max_cashback) {
                    fail("reward.max_cashback", "must be zero (no cap) or more");
                }
            }
        }
        if !amount_ok(self.min_cart_value) {
            fail("min_cart_value", "must be zero or more");
        }
        if let (Some(start), Some(end)) = (self.starts_at, self.ends_at) {
            if end <= start {
                fail("ends_at", "must be after starts_at");
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The cashback this coupon gives on a cart, or why it does not apply.
    pub fn evaluate(&self, check: &CouponCheck<'_>) -> Result<Money, CouponRefusal> {
        let currency = check.eligible.currency();
        if self.status != CouponStatus::Approved {
            return Err(CouponRefusal::NotActive);
        }
        if let Some(starts_at) = self.starts_at {
            if check.at < starts_at {
                return Err(CouponRefusal::NotStarted { starts_at });
            }
        }
        if let Some(ended_at) = self.ends_at {
            if check.at >= ended_at {
                return Err(CouponRefusal::Ended { ended_at });
            }
        }
        if self.stacking == Stacking::Exclusive && check.other_coupons > 0 {
            return Err(CouponRefusal::NotCombinable);
        }
        if !self.payment_methods.is_empty() {
            // Paid through several gateways: allowed if any of them is.
            let allowed = check.payment_methods.iter().any(|method| {
                let method = method.trim();
                !method.is_empty()
                    && self
                        .payment_methods
                        .iter()
                        .any(|m| m.trim().eq_ignore_ascii_case(method))
            });
            if !allowed {
                return Err(CouponRefusal::PaymentMethodNotAllowed {
                    allowed: self.payment_methods.clone(),
                });
            }
        }
        if let Some(limit) = self.usage_limit_total {
            if check.usage.total >= limit {
                return Err(CouponRefusal::UsageLimitReached { limit });
            }
        }
        if let (Some(limit), true) = (self.usage_limit_per_customer, check.customer_known) {
            if check.usage.by_customer.max(check.usage.by_email) >= limit {
                return Err(CouponRefusal::CustomerLimitReached { limit });
            }
        }
        if check.eligible.amount() < self.min_cart_value {
            return Err(CouponRefusal::BelowMinimumCart {
                minimum: Money::round_toward_zero(self.min_cart_value, currency),
            });
        }
        Ok(self.cashback_on(check.eligible))
    }

    fn cashback_on(&self, eligible: Money) -> Money {
        let currency = eligible.currency();
        match &self.reward {
            CouponReward::Fixed { amount } => Money::round_toward_zero(*amount, currency),
            CouponReward::Percentage {
                percent,
                max_cashback,
            } => {
                let exact = percent_of(eligible.amount().max(Decimal::ZERO), *percent);
                let capped = if max_cashback.is_zero() {
                    exact
                } else {
                    exact.min(*max_cashback)
                };
                Money::round_toward_zero(capped, currency)
            }
        }
    }
}

/// Cashback a coupon adds to an order, decided when the order is credited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponCredit {
    /// The coupon's code, as on the order.
    pub code: Code,
    /// Cashback it adds to the order's earn, in the shop's currency, already
    /// rounded toward zero; not matched by the partner.
    pub cashback: Money,
}

/// Sums coupon credits, in the order's currency.
pub fn total_coupon_cashback(credits: &[CouponCredit], zero: Money) -> Result<Money, MoneyError> {
    Money::sum(zero.currency(), credits.iter().map(|c| &c.cashback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()
    }

    fn coupon(reward: CouponReward) -> CashbackCoupon {
        CashbackCoupon {
            code: Code::parse("BACK10").unwrap(),
            display_name: "10% back".into(),
            description: String::new(),
            offer_text: String::new(),
            reward,
            min_cart_value: Decimal::ZERO,
            usage_limit_total: None,
            usage_limit_per_customer: None,
            payment_methods: Vec::new(),
            starts_at: None,
            ends_at: None,
            status: CouponStatus::Approved,
            stacking: Stacking::Exclusive,
        }
    }

    fn check(eligible: &str) -> CouponCheck<'static> {
        CouponCheck {
            eligible: usd(eligible),
            payment_methods: &[],
            other_coupons: 0,
            usage: CouponUsage::default(),
            customer_known: true,
            at: now(),
        }
    }

    fn ten_percent_capped_at(cap: Decimal) -> CashbackCoupon {
        coupon(CouponReward::Percentage {
            percent: dec!(10),
            max_cashback: cap,
        })
    }

    #[test]
    fn percentage_cashback_is_capped_and_zero_means_no_cap() {
        assert_eq!(
            ten_percent_capped_at(dec!(20)).evaluate(&check("500.00")),
            Ok(usd("20.00"))
        );
        assert_eq!(
            ten_percent_capped_at(dec!(0)).evaluate(&check("500.00")),
            Ok(usd("50.00"))
        );
        assert_eq!(
            ten_percent_capped_at(dec!(0)).evaluate(&check("33.33")),
            Ok(usd("3.33"))
        );
    }

    #[test]
    fn fixed_cashback_does_not_depend_on_the_cart() {
        let fixed = coupon(CouponReward::Fixed { amount: dec!(5) });
        assert_eq!(fixed.evaluate(&check("12.00")), Ok(usd("5.00")));
    }

    #[test]
    fn only_approved_coupons_work() {
        for status in [CouponStatus::Draft, CouponStatus::Paused] {
            let mut c = ten_percent_capped_at(dec!(0));
            c.status = status;
            assert_eq!(c.evaluate(&check("100.00")), Err(CouponRefusal::NotActive));
        }
    }

    #[test]
    fn the_schedule_bounds_the_coupon() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.starts_at = Some(now() + chrono::Duration::days(1));
        assert!(matches!(
            c.evaluate(&check("100.00")),
            Err(CouponRefusal::NotStarted { .. })
        ));
        c.starts_at = None;
        c.ends_at = Some(now());
        assert!(matches!(
            c.evaluate(&check("100.00")),
            Err(CouponRefusal::Ended { .. })
        ));
    }

    #[test]
    fn a_cart_below_the_minimum_is_refused_with_the_minimum() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.min_cart_value = dec!(50);
        assert_eq!(
            c.evaluate(&check("40.00")),
            Err(CouponRefusal::BelowMinimumCart {
                minimum: usd("50.00")
            })
        );
    }

    #[test]
    fn usage_limits_hold_although_the_cart_discount_is_zero() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.usage_limit_total = Some(100);
        c.usage_limit_per_customer = Some(1);
        let mut used = check("100.00");
        used.usage.total = 100;
        assert_eq!(
            c.evaluate(&used),
            Err(CouponRefusal::UsageLimitReached { limit: 100 })
        );
        let mut by_email = check("100.00");
        by_email.usage.by_email = 1;
        assert_eq!(
            c.evaluate(&by_email),
            Err(CouponRefusal::CustomerLimitReached { limit: 1 })
        );
        let mut anonymous = by_email.clone();
        anonymous.customer_known = false;
        assert!(c.evaluate(&anonymous).is_ok());
    }

    #[test]
    fn payment_methods_restrict_the_coupon() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.payment_methods = vec!["shopify_payments".into()];
        assert!(matches!(
            c.evaluate(&check("100.00")),
            Err(CouponRefusal::PaymentMethodNotAllowed { .. })
        ));
        let card = ["Shopify_Payments".to_string()];
        let mut paid_by_card = check("100.00");
        paid_by_card.payment_methods = &card;
        assert!(c.evaluate(&paid_by_card).is_ok());
    }

    #[test]
    fn a_payment_method_is_matched_whole_even_with_a_comma_in_its_name() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.payment_methods = vec!["Bank transfer, 3 days".into()];
        let manual = ["gift_card".to_string(), "Bank transfer, 3 days".to_string()];
        let mut order = check("100.00");
        order.payment_methods = &manual;
        assert!(c.evaluate(&order).is_ok());
        c.payment_methods = vec!["Bank transfer".into()];
        assert!(matches!(
            c.evaluate(&order),
            Err(CouponRefusal::PaymentMethodNotAllowed { .. })
        ));
    }

    #[test]
    fn an_order_paid_through_several_gateways_is_allowed_if_any_of_them_is() {
        let mut c = ten_percent_capped_at(dec!(0));
        c.payment_methods = vec!["shopify_payments".into()];
        let allowed_one = ["gift_card".to_string(), "shopify_payments".to_string()];
        let neither = ["gift_card".to_string(), "paypal".to_string()];
        let mut split = check("100.00");
        split.payment_methods = &allowed_one;
        assert!(c.evaluate(&split).is_ok());
        split.payment_methods = &neither;
        assert!(matches!(
            c.evaluate(&split),
            Err(CouponRefusal::PaymentMethodNotAllowed { .. })
        ));
    }

    #[test]
    fn an_exclusive_coupon_refuses_company() {
        let mut c = ten_percent_capped_at(dec!(0));
        let mut crowded = check("100.00");
        crowded.other_coupons = 1;
        assert_eq!(c.evaluate(&crowded), Err(CouponRefusal::NotCombinable));
        c.stacking = Stacking::Stackable;
        assert!(c.evaluate(&crowded).is_ok());
    }

    #[test]
    fn coupon_settings_are_validated_by_field() {
        let mut c = coupon(CouponReward::Percentage {
            percent: dec!(120),
            max_cashback: dec!(-1),
        });
        c.display_name = " ".into();
        let fields: Vec<String> = c
            .validate(2)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["display_name", "reward.percent", "reward.max_cashback"]
        );
    }
}
