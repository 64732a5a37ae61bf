//! The customer's own code at checkout: how much of their balance it may take
//! off a given cart, or the typed reason it is refused.
//!
//! The discount is the smallest of: the spendable balance (available minus
//! what other checkouts hold), the cart's subtotal, and the program's cap as a
//! percent of the order. What is not used stays on the code.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{percent_of, Money, MoneyError};
use crate::order::{Cart, DiscountKind};
use crate::program::Program;

/// Why the code cannot be used on this cart, with the figure that failed, so
/// a checkout can show "minimum subtotal 50.00".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum CodeRefusal {
    /// No account has this code: mistyped, or never issued at this shop.
    #[error("unknown code")]
    UnknownCode,
    /// The cart's subtotal is under the program's redemption minimum.
    #[error("minimum subtotal {minimum}")]
    BelowMinimumSubtotal {
        /// The least subtotal the code works on.
        minimum: Money,
        /// The cart's subtotal (merchandise after other discounts).
        subtotal: Money,
    },
    /// The spendable balance has not reached the program's minimum yet.
    #[error("the code works once {minimum} has accrued")]
    BelowMinimumBalance {
        /// The balance the code needs before it works.
        minimum: Money,
        /// The balance spendable now (available less other checkouts' holds).
        balance: Money,
    },
    /// Nothing is spendable: no available balance, or all of it held by
    /// other checkouts.
    #[error("no balance left on this code")]
    NoBalance,
    /// The cart carries a discount of a kind the program does not let the
    /// code combine with.
    #[error("this code cannot be combined with a {kind:?} discount")]
    NotCombinable {
        /// The kind of the first discount that may not be combined.
        kind: DiscountKind,
    },
    /// The cart is priced in another currency than the balance.
    #[error("the cart is in {cart} but the balance is in {balance}")]
    CurrencyMismatch {
        /// The cart's currency code.
        cart: String,
        /// The balance's (the shop's) currency code.
        balance: String,
    },
    /// The program lets only the owner spend the code, and the request named
    /// another customer or email.
    #[error("this code belongs to another customer")]
    OtherCustomer,
    /// Only its owner may spend the code, and the request named nobody.
    #[error("sign in to use this code: it works only for its owner")]
    CustomerRequired,
}

/// What the code takes off this cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedemptionQuote {
    /// What the code takes off the cart: the smallest of the spendable
    /// balance, the subtotal and the program's percent cap.
    pub discount: Money,
    /// Balance this checkout could spend before the discount.
    pub balance_before: Money,
    /// What stays on the code after the discount, for the next order.
    pub balance_after: Money,
    /// What the customer still pays for merchandise.
    pub subtotal_after: Money,
}

/// Quotes the customer's code against a cart. `spendable` is the available
/// balance less holds of other checkouts.
pub fn quote(
    program: &Program,
    spendable: Money,
    cart: &Cart,
) -> Result<RedemptionQuote, CodeRefusal> {
    let rules = &program.redemption;
    let currency = program.currency;
    if cart.currency != currency || spendable.currency() != currency {
        return Err(CodeRefusal::CurrencyMismatch {
            cart: cart.currency.to_string(),
            balance: currency.to_string(),
        });
    }
    for discount in &cart.other_discounts {
        let allowed = match discount.kind {
            DiscountKind::Shipping => rules.combine_with_shipping,
            DiscountKind::Order => rules.combine_with_order,
            DiscountKind::Product => rules.combine_with_product,
        };
        if !allowed {
            return Err(CodeRefusal::NotCombinable {
                kind: discount.kind,
            });
        }
    }
    let subtotal = cart.subtotal.clamp_non_negative();
    if subtotal.amount() < rules.min_order_subtotal {
        return Err(CodeRefusal::BelowMinimumSubtotal {
            minimum: Money::round_toward_zero(rules.min_order_subtotal, currency),
            subtotal,
        });
    }
    if !spendable.is_positive() {
        return Err(CodeRefusal::NoBalance);
    }
    if spendable.amount() < rules.min_balance {
        return Err(CodeRefusal::BelowMinimumBalance {
            minimum: Money::round_toward_zero(rules.min_balance, currency),
            balance: spendable,
        });
    }
    let mut discount = spendable.min(subtotal).map_err(mismatch)?;
    if let Some(percent) = rules.max_percent_of_order {
        let cap = Money::round_toward_zero(percent_of(subtotal.amount(), percent), currency);
        discount = discount.min(cap).map_err(mismatch)?;
    }
    let balance_after = spendable.checked_sub(discount).map_err(mismatch)?;
    let subtotal_after = subtotal.checked_sub(discount).map_err(mismatch)?;
    Ok(RedemptionQuote {
        discount,
        balance_before: spendable,
        balance_after,
        subtotal_after,
    })
}

fn mismatch(error: MoneyError) -> CodeRefusal {
    match error {
        MoneyError::CurrencyMismatch { left, right } => CodeRefusal::CurrencyMismatch {
            cart: right.to_string(),
            balance: left.to_string(),
        },
        _ => CodeRefusal::NoBalance,
    }
}

/// Percent of `whole` that `part` is, for reports (0 when `whole` is zero).
pub fn share(part: Decimal, whole: Decimal) -> Decimal {
    if whole.is_zero() {
        Decimal::ZERO
    } else {
        part * Decimal::ONE_HUNDRED / whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::order::CartDiscount;
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn cart(subtotal: &str) -> Cart {
        Cart {
            currency: Currency::USD,
            lines: Vec::new(),
            subtotal: usd(subtotal),
            shipping: None,
            other_discounts: Vec::new(),
            payment_method: None,
        }
    }

    #[test]
    fn eight_of_balance_on_a_50_order_leaves_42_to_pay_and_nothing_on_the_code() {
        let q = quote(&Program::new(Currency::USD), usd("8.00"), &cart("50.00")).unwrap();
        assert_eq!(q.discount, usd("8.00"));
        assert_eq!(q.subtotal_after, usd("42.00"));
        assert_eq!(q.balance_after, usd("0.00"));
    }

    #[test]
    fn sixty_of_balance_on_a_50_order_takes_50_and_leaves_10() {
        let q = quote(&Program::new(Currency::USD), usd("60.00"), &cart("50.00")).unwrap();
        assert_eq!(q.discount, usd("50.00"));
        assert_eq!(q.subtotal_after, usd("0.00"));
        assert_eq!(q.balance_after, usd("10.00"));
    }

    #[test]
    fn a_40_cart_is_refused_by_a_50_minimum_with_the_reason() {
        let mut program = Program::new(Currency::USD);
        program.redemption.min_order_subtotal = dec!(50);
        let refusal = quote(&program, usd("10.00"), &cart("40.00")).unwrap_err();
        assert_eq!(
            refusal,
            CodeRefusal::BelowMinimumSubtotal {
                minimum: usd("50.00"),
                subtotal: usd("40.00")
            }
        );
        assert_eq!(refusal.to_string(), "minimum subtotal 50.00 USD");
    }

    #[test]
    fn the_code_works_only_once_the_minimum_balance_accrued() {
        let mut program = Program::new(Currency::USD);
        program.redemption.min_balance = dec!(5);
        assert!(matches!(
            quote(&program, usd("4.99"), &cart("100.00")),
            Err(CodeRefusal::BelowMinimumBalance { .. })
        ));
        assert!(quote(&program, usd("5.00"), &cart("100.00")).is_ok());
    }

    #[test]
    fn an_empty_balance_is_refused() {
        assert_eq!(
            quote(&Program::new(Currency::USD), usd("0.00"), &cart("100.00")),
            Err(CodeRefusal::NoBalance)
        );
    }

    #[test]
    fn the_percent_cap_limits_the_discount() {
        let mut program = Program::new(Currency::USD);
        program.redemption.max_percent_of_order = Some(dec!(25));
        let q = quote(&program, usd("60.00"), &cart("50.00")).unwrap();
        assert_eq!(q.discount, usd("12.50"));
        assert_eq!(q.balance_after, usd("47.50"));
    }

    #[test]
    fn combination_switches_refuse_other_discount_kinds() {
        let program = Program::new(Currency::USD);
        let mut with_order_discount = cart("100.00");
        with_order_discount.other_discounts.push(CartDiscount {
            kind: DiscountKind::Order,
            amount: usd("10.00"),
            code: None,
        });
        assert_eq!(
            quote(&program, usd("10.00"), &with_order_discount),
            Err(CodeRefusal::NotCombinable {
                kind: DiscountKind::Order
            })
        );
        let mut with_shipping = cart("100.00");
        with_shipping.other_discounts.push(CartDiscount {
            kind: DiscountKind::Shipping,
            amount: usd("5.00"),
            code: None,
        });
        assert!(quote(&program, usd("10.00"), &with_shipping).is_ok());
    }

    #[test]
    fn a_cart_in_another_currency_is_refused() {
        let mut euro_cart = cart("100.00");
        euro_cart.currency = Currency::EUR;
        assert!(matches!(
            quote(&Program::new(Currency::USD), usd("10.00"), &euro_cart),
            Err(CodeRefusal::CurrencyMismatch { .. })
        ));
    }
}
