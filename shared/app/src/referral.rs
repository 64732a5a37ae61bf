//! Referrals: which customer, if any, an order's referral code names.
//!
//! Only a referral code refers: the `referral_code` cart attribute (Shopify
//! note attribute, WooCommerce meta, generic field) naming a code from the
//! referral index. Every account gets its own referral code ("REF-...")
//! when the program pays referrals, separate from its balance code: sharing
//! it spends nothing, and a balance code (in the discount codes or in the
//! attribute) never refers anyone.
//!
//! The reward itself is the core's rule (`cashback_core::orders`): paid on
//! the buyer's first earning order, pending with that order under the
//! program's issuance, released with it, taken back in proportion to its
//! refunds and voided by its cancellation; self-referral (same customer id
//! or email) and the referrer's daily cap pay nothing. It is recorded on the
//! referred order, and for now the referrer's account is written in the
//! referred buyer's transaction (docs/webhooks.md says what that costs).

use std::collections::HashMap;

use cashback_core::ids::{Code, CustomerId};
use cashback_core::ledger::Account;
use cashback_core::order::OrderEvent;
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;

use crate::store::Versioned;

/// The referral code an earning event carries, to resolve in the event's
/// read. None when the program pays no referrals.
pub fn referral_code(program: &Program, event: &OrderEvent) -> Option<Code> {
    match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) if program.referral.is_some() => {
            order.referral_code.clone()
        }
        _ => None,
    }
}

/// The referrer whose account this event needs: the owner of the order's
/// referral code, when the order may still be its buyer's first earning
/// one. The core decides whether it pays.
pub fn referrer_named(
    program: &Program,
    event: &OrderEvent,
    record: &OrderRecord,
    buyer: Option<&Versioned<Account>>,
    owners: &HashMap<Code, CustomerId>,
) -> Option<CustomerId> {
    let code = referral_code(program, event)?;
    let first_order =
        record.earned.is_none() && buyer.is_none_or(|account| account.value.orders_earned == 0);
    if !first_order {
        return None;
    }
    owners.get(&code).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::{LineId, OrderId, ShopId};
    use cashback_core::money::{Currency, Money};
    use cashback_core::order::{AppliedCode, CustomerRef, DiscountKind, Order};
    use cashback_core::program::ReferralReward;
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn code(text: &str) -> Code {
        Code::parse(text).unwrap()
    }

    fn paying() -> Program {
        let mut program = Program::new(Currency::USD);
        program.referral = Some(ReferralReward::Fixed { amount: dec!(5) });
        program
    }

    fn order(referral: Option<&str>, discounts: &[&str]) -> Order {
        Order {
            order_id: OrderId::parse("1001").unwrap(),
            customer: CustomerRef {
                id: Some(CustomerId::parse("buyer").unwrap()),
                email: None,
            },
            currency: Currency::USD,
            lines: vec![cashback_core::order::Line {
                line_id: LineId::parse("l1").unwrap(),
                product_id: None,
                variant_id: None,
                sku: None,
                vendor: None,
                quantity: 1,
                unit_price: usd("100.00"),
                discount: usd("0"),
                included_tax: None,
                gift_card: false,
                compare_at_price: None,
                collection_ids: Vec::new(),
            }],
            subtotal: usd("100.00"),
            shipping: usd("0"),
            total: usd("100.00"),
            discount_codes: discounts
                .iter()
                .map(|c| AppliedCode {
                    code: code(c),
                    amount: usd("5.00"),
                    kind: DiscountKind::Order,
                })
                .collect(),
            checkout_id: None,
            payment_methods: Vec::new(),
            placed_at: None,
            referral_code: referral.map(code),
            occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
        }
    }

    #[test]
    fn only_the_referral_attribute_is_resolved_and_only_when_referrals_pay() {
        let event = OrderEvent::Paid(order(Some("REF-ANA"), &["CB-ANA", "SUMMER"]));
        assert_eq!(referral_code(&Program::new(Currency::USD), &event), None);
        assert_eq!(referral_code(&paying(), &event), Some(code("REF-ANA")));
        let discount_only = OrderEvent::Paid(order(None, &["CB-ANA"]));
        assert_eq!(referral_code(&paying(), &discount_only), None);
        let cancelled = OrderEvent::Cancelled(order(Some("REF-ANA"), &[]));
        assert_eq!(referral_code(&paying(), &cancelled), None);
    }

    #[test]
    fn a_referrer_is_named_only_by_the_referral_index_on_a_possible_first_order() {
        let ana = CustomerId::parse("ana").unwrap();
        let owners: HashMap<Code, CustomerId> = [(code("REF-ANA"), ana.clone())].into();
        let event = OrderEvent::Paid(order(Some("REF-ANA"), &[]));
        let record = OrderRecord::new(OrderId::parse("1001").unwrap(), Currency::USD);
        assert_eq!(
            referrer_named(&paying(), &event, &record, None, &owners),
            Some(ana)
        );
        let mut buyer = Account::open(
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse("buyer").unwrap(),
            Currency::USD,
        );
        buyer.orders_earned = 1;
        let returning = Versioned::new(buyer);
        assert_eq!(
            referrer_named(&paying(), &event, &record, Some(&returning), &owners),
            None
        );
        // A balance code in the attribute is not in the referral index.
        let balance = OrderEvent::Paid(order(Some("CB-ANA"), &[]));
        assert_eq!(
            referrer_named(&paying(), &balance, &record, None, &owners),
            None
        );
    }
}
