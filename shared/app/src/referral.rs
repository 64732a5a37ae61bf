//! Referrals: a customer's own cashback code, brought by a new customer to
//! their first order, earns the code's owner the program's referral reward.
//!
//! The code comes from the order's `referral_code` (a cart attribute or meta
//! field) or from its discount codes, and counts only when it belongs to a
//! customer other than the buyer (same account or same email address is a
//! self-referral, which pays nothing). Code owners are resolved in the order
//! event's single read; the referrer's account costs one more read, made only
//! when a reward is actually due.
//!
//! Once per referred customer, without a guard item of its own: the reward
//! is due on the event that moves the buyer's `orders_earned` from 0 to 1.
//! That counter never goes down, and the buyer's account is written in the
//! same transaction under its read version, so two deliveries racing for the
//! first order cannot both see 0 and both commit. The referrer's credit is an
//! [`AccountWrite`] in that transaction too: the referral happens with the
//! order, or not at all.
//!
//! The reward is credited available at once (an `earn` entry with no order,
//! noted as a referral) rather than following the program's pending period:
//! pending cashback is released per order record, and the referred order is
//! not the referrer's. Clawback debt the referrer owes is paid from it first,
//! as from any cashback. A later refund of the referred order does not take
//! the reward back.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use cashback_core::earn::referral_reward;
use cashback_core::ids::{Code, CustomerId, Email, OrderId};
use cashback_core::ledger::{Account, EntryKind, Funding, LedgerEntry, LedgerError, Lot};
use cashback_core::money::Money;
use cashback_core::order::{Order, OrderEvent};
use cashback_core::program::Program;

/// The codes of an order that might be a referrer's, to resolve to their
/// owners in the event's read. None when the program pays no referrals or
/// the event cannot be a first earning order.
pub fn candidate_codes(program: &Program, event: &OrderEvent) -> Vec<Code> {
    let order = match event {
        OrderEvent::Paid(order) | OrderEvent::Fulfilled(order) if program.referral.is_some() => {
            order
        }
        _ => return Vec::new(),
    };
    let mut codes: Vec<Code> = order.referral_code.iter().cloned().collect();
    for applied in &order.discount_codes {
        if !codes.contains(&applied.code) {
            codes.push(applied.code.clone());
        }
    }
    codes
}

/// The customer who referred this order's buyer: the owner of the order's
/// referral code, else of the first discount code owned by someone else.
/// A code of the buyer's own is never a referral.
pub fn referrer_of(
    order: &Order,
    buyer: &CustomerId,
    owners: &HashMap<Code, CustomerId>,
) -> Option<CustomerId> {
    order
        .referral_code
        .iter()
        .chain(order.discount_codes.iter().map(|applied| &applied.code))
        .filter_map(|code| owners.get(code))
        .find(|owner| *owner != buyer)
        .cloned()
}

/// Whether this event made the buyer's first order earn: the moment a
/// referral pays.
pub fn is_first_earning_order(orders_earned_before: u32, buyer_after: &Account) -> bool {
    orders_earned_before == 0 && buyer_after.orders_earned >= 1
}

/// Two accounts of one person (a guest account and a registered one share
/// the email): referring oneself through the other pays nothing.
pub fn same_person(referrer: &Account, buyer_email: Option<&Email>) -> bool {
    matches!((&referrer.email, buyer_email), (Some(a), Some(b)) if a == b)
}

/// Credits the referral reward for `referred`'s first order to the
/// referrer's account and returns the entries. Nothing when the program's
/// reward comes to zero. Debt the referrer owes is recovered first.
pub fn credit_referral(
    program: &Program,
    referrer: &mut Account,
    referred: &CustomerId,
    referred_order: &OrderId,
    referred_eligible: Money,
    now: DateTime<Utc>,
) -> Result<Vec<LedgerEntry>, LedgerError> {
    let reward = referral_reward(program, referred_eligible);
    if !reward.is_positive() {
        return Ok(Vec::new());
    }
    if reward.currency() != referrer.currency {
        return Err(LedgerError::CurrencyMismatch {
            account: referrer.currency,
            amount: reward.currency(),
        });
    }
    let zero = Money::zero(referrer.currency);
    let key = format!("referral:{referred}");
    let mut entries = vec![LedgerEntry {
        entry_id: format!("{key}:0"),
        at: now,
        kind: EntryKind::Earn,
        order_id: None,
        available_delta: reward,
        pending_delta: zero,
        debt_delta: zero,
        funding: Some(Funding {
            merchant: reward,
            partner: zero,
        }),
        note: Some(format!("referral reward for order {referred_order}")),
    }];
    referrer.lifetime_issued = referrer.lifetime_issued.checked_add(reward)?;
    // Debt is paid first from new cashback; only the rest becomes a lot.
    // Taking it from this credit alone leaves older lots (and the holds on
    // them) as they were.
    let recovered = referrer.debt.min(reward)?;
    let kept = reward.checked_sub(recovered)?;
    if recovered.is_positive() {
        referrer.debt = referrer.debt.checked_sub(recovered)?;
        entries.push(LedgerEntry {
            entry_id: format!("{key}:1"),
            at: now,
            kind: EntryKind::Clawback,
            order_id: None,
            available_delta: recovered.negated(),
            pending_delta: zero,
            debt_delta: recovered.negated(),
            funding: None,
            note: Some("clawback debt recovered".into()),
        });
    }
    if kept.is_positive() {
        referrer.available = referrer.available.checked_add(kept)?;
        referrer.lots.push(Lot {
            credited_at: now,
            expires_at: program
                .expiry_days
                .map(|days| now + Duration::days(i64::from(days))),
            remaining: kept,
        });
        // New spendable balance starts a new reminder series, as any
        // cashback made available does.
        referrer.reminders.series_started_at = Some(now);
        referrer.reminders.last_sent = None;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::{LineId, ShopId};
    use cashback_core::money::Currency;
    use cashback_core::order::{AppliedCode, CustomerRef, DiscountKind};
    use cashback_core::program::ReferralReward;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
    }

    fn program(reward: Option<ReferralReward>) -> Program {
        let mut program = Program::new(Currency::USD);
        program.referral = reward;
        program
    }

    fn account(id: &str) -> Account {
        Account::open(
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse(id).unwrap(),
            Currency::USD,
        )
    }

    fn code(text: &str) -> Code {
        Code::parse(text).unwrap()
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
            payment_method: None,
            referral_code: referral.map(code),
            occurred_at: now(),
        }
    }

    #[test]
    fn codes_are_resolved_only_when_the_program_pays_referrals_on_an_earning_event() {
        let event = OrderEvent::Paid(order(Some("CB-ANA"), &["CB-ANA", "SUMMER"]));
        assert!(candidate_codes(&program(None), &event).is_empty());
        let paying = program(Some(ReferralReward::Fixed { amount: dec!(5) }));
        assert_eq!(
            candidate_codes(&paying, &event),
            vec![code("CB-ANA"), code("SUMMER")]
        );
        let cancelled = OrderEvent::Cancelled(order(Some("CB-ANA"), &[]));
        assert!(candidate_codes(&paying, &cancelled).is_empty());
    }

    #[test]
    fn the_referral_code_wins_and_a_code_of_the_buyers_own_is_never_a_referral() {
        let buyer = CustomerId::parse("buyer").unwrap();
        let ana = CustomerId::parse("ana").unwrap();
        let ben = CustomerId::parse("ben").unwrap();
        let owners: HashMap<Code, CustomerId> = [
            (code("CB-ANA"), ana.clone()),
            (code("CB-BEN"), ben.clone()),
            (code("CB-MINE"), buyer.clone()),
        ]
        .into_iter()
        .collect();
        let both = order(Some("CB-BEN"), &["CB-ANA"]);
        assert_eq!(referrer_of(&both, &buyer, &owners), Some(ben));
        let discount_only = order(None, &["CB-MINE", "CB-ANA"]);
        assert_eq!(referrer_of(&discount_only, &buyer, &owners), Some(ana));
        let own = order(Some("CB-MINE"), &["CB-MINE"]);
        assert_eq!(referrer_of(&own, &buyer, &owners), None);
        let unknown = order(Some("NOBODY"), &["SUMMER"]);
        assert_eq!(referrer_of(&unknown, &buyer, &owners), None);
    }

    #[test]
    fn only_the_event_that_makes_the_first_order_earn_pays() {
        let mut buyer = account("buyer");
        assert!(!is_first_earning_order(0, &buyer));
        buyer.orders_earned = 1;
        assert!(is_first_earning_order(0, &buyer));
        buyer.orders_earned = 2;
        assert!(!is_first_earning_order(1, &buyer));
    }

    #[test]
    fn a_fixed_reward_is_credited_available_with_its_entry_and_lot() {
        let program = program(Some(ReferralReward::Fixed { amount: dec!(15) }));
        let mut referrer = account("ana");
        let entries = credit_referral(
            &program,
            &mut referrer,
            &CustomerId::parse("buyer").unwrap(),
            &OrderId::parse("1001").unwrap(),
            usd("80.00"),
            now(),
        )
        .unwrap();
        assert_eq!(referrer.available, usd("15.00"));
        assert_eq!(referrer.lifetime_issued, usd("15.00"));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].entry_id, "referral:buyer:0");
        assert_eq!(entries[0].kind, EntryKind::Earn);
        assert_eq!(referrer.reminders.series_started_at, Some(now()));
        referrer.check(&entries).unwrap();
    }

    #[test]
    fn a_referrer_in_debt_pays_the_debt_first_from_the_reward() {
        let program = program(Some(ReferralReward::Percent { percent: dec!(10) }));
        let mut referrer = account("ana");
        let opening = LedgerEntry {
            entry_id: "opening".into(),
            at: now(),
            kind: EntryKind::Clawback,
            order_id: None,
            available_delta: usd("0"),
            pending_delta: usd("0"),
            debt_delta: usd("3.00"),
            funding: None,
            note: None,
        };
        referrer.debt = usd("3.00");
        let mut entries = vec![opening];
        entries.extend(
            credit_referral(
                &program,
                &mut referrer,
                &CustomerId::parse("buyer").unwrap(),
                &OrderId::parse("1001").unwrap(),
                usd("80.00"),
                now(),
            )
            .unwrap(),
        );
        assert_eq!(referrer.debt, usd("0"));
        assert_eq!(referrer.available, usd("5.00"));
        referrer.check(&entries).unwrap();
    }

    #[test]
    fn a_reward_that_rounds_to_nothing_writes_nothing() {
        let program = program(Some(ReferralReward::Percent { percent: dec!(1) }));
        let mut referrer = account("ana");
        let entries = credit_referral(
            &program,
            &mut referrer,
            &CustomerId::parse("buyer").unwrap(),
            &OrderId::parse("1001").unwrap(),
            usd("0.50"),
            now(),
        )
        .unwrap();
        assert!(entries.is_empty());
        assert!(referrer.available.is_zero());
    }

    #[test]
    fn the_same_email_on_both_accounts_is_a_self_referral() {
        let mut referrer = account("ana");
        let email = Email::parse("ana@example.com").unwrap();
        assert!(!same_person(&referrer, Some(&email)));
        referrer.email = Some(email.clone());
        assert!(same_person(&referrer, Some(&email)));
        assert!(!same_person(&referrer, None));
    }
}
