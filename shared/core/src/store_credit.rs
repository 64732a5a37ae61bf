//! Which part of a customer's store credit on the platform is cashback
//! (store-credit mode, [`PlatformSync::StoreCredit`]).
//!
//! The platform keeps one store credit balance per customer, and cashback
//! is only part of it: the merchant, another app, or a card payment
//! refunded to store credit may put money there that is the customer's
//! own. The account keeps the cashback part
//! ([`Account::store_credit_share`]), and the engine only ever brings that
//! part to the ledger's balance, never the whole balance:
//! - its own credits and debits move the share by their amounts
//!   ([`Account::store_credit_sent`]);
//! - a payment with store credit spends cashback first, up to the share;
//!   the rest is the customer's own ([`Account::pay_with_store_credit`]),
//!   and the order records what it took of cashback ([`StoreCreditUse`]);
//! - money an order gives back to store credit is cashback up to what that
//!   order took of it and has not had back; the rest (a card payment
//!   refunded to store credit, the customer's own store credit given back)
//!   is the customer's ([`Account::store_credit_given_back`]);
//! - anything else (the merchant's own credits and debits, their expiry)
//!   is the customer's.
//!
//! What an order took is kept on the order's record, so no number of
//! other orders can push it out: cashback spent and given back always pays
//! a clawback's debt first, however the refund is labelled.
//!
//! [`PlatformSync::StoreCredit`]: crate::platform_code::PlatformSync::StoreCredit

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::{Account, Applied, LedgerError};
use crate::money::{Currency, Money};
use crate::orders::OrderRecord;
use crate::platform_code::ExistingStoreCredit;
use crate::program::Program;

/// What an order's store credit payments took of cashback, and what of it
/// its refunds and voids gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCreditUse {
    /// Cashback its store credit payments took.
    pub cashback_spent: Money,
    /// Cashback given back to store credit since.
    pub cashback_returned: Money,
}

impl StoreCreditUse {
    /// Nothing taken, nothing given back.
    pub fn none(currency: Currency) -> StoreCreditUse {
        StoreCreditUse {
            cashback_spent: Money::zero(currency),
            cashback_returned: Money::zero(currency),
        }
    }

    /// Cashback the order took that has not come back.
    pub fn returnable(&self) -> Money {
        self.cashback_spent
            .checked_sub(self.cashback_returned)
            .map(Money::clamp_non_negative)
            .unwrap_or(Money::zero(self.cashback_spent.currency()))
    }
}

/// How one of an order's store credit transactions was taken into the
/// ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCreditSplit {
    /// The ledger's entries (none when nothing was cashback).
    pub applied: Applied,
    /// The part that was cashback; the rest was the customer's own.
    pub cashback: Money,
    /// A payment: the cashback part the balance could not cover, now owed.
    /// Money given back: the debt it paid.
    pub debt: Money,
}

impl StoreCreditSplit {
    fn customers_own(currency: Currency) -> StoreCreditSplit {
        StoreCreditSplit {
            applied: Applied::default(),
            cashback: Money::zero(currency),
            debt: Money::zero(currency),
        }
    }
}

/// The share of an account the engine reads for the first time: what the
/// program says the store credit held then (`held`) is, never more than
/// the ledger's target for it.
pub fn opening_share(existing: ExistingStoreCredit, held: Money, target: Money) -> Money {
    let zero = Money::zero(target.currency());
    match existing {
        ExistingStoreCredit::KeptApart => zero,
        ExistingStoreCredit::CountedAsCashback => held
            .min(target)
            .map(Money::clamp_non_negative)
            .unwrap_or(zero),
    }
}

impl Account {
    /// Opens the store credit share at `share` when it is not open yet;
    /// true when this call opened it.
    pub fn open_store_credit_share(&mut self, share: Money) -> Result<bool, LedgerError> {
        self.same_currency(share)?;
        if self.store_credit_share.is_some() {
            return Ok(false);
        }
        self.store_credit_share = Some(share.clamp_non_negative());
        Ok(true)
    }

    /// The engine's own credit (`credited`) or debit of `amount` landed on
    /// the platform: the share moves by it. A share not opened yet stays
    /// so: it opens at the balance, which holds this call.
    pub fn store_credit_sent(&mut self, credited: bool, amount: Money) -> Result<(), LedgerError> {
        self.same_currency(amount)?;
        let Some(share) = self.store_credit_share else {
            return Ok(());
        };
        self.store_credit_share = Some(if credited {
            share.checked_add(amount)?
        } else {
            share.checked_sub(amount)?.clamp_non_negative()
        });
        Ok(())
    }

    /// The merchant took `amount` of cashback from the customer's store
    /// credit by hand on the platform (and says so with the same debit of
    /// the ledger): the share no longer holds it, so nothing is sent.
    pub fn store_credit_taken_by_hand(&mut self, amount: Money) -> Result<(), LedgerError> {
        self.same_currency(amount)?;
        if let Some(share) = self.store_credit_share {
            let taken = amount.clamp_non_negative().min(share)?;
            self.store_credit_share = Some(share.checked_sub(taken)?);
        }
        Ok(())
    }

    /// A payment of `amount` with store credit, read back from the
    /// platform, under its once-only `key`: cashback first, up to the
    /// share; the rest was the customer's own and moves nothing here. The
    /// cashback part is spent from the ledger whole (what the balance
    /// cannot cover is the owner's debt, see [`Account::spend_on_platform`])
    /// and recorded on the order, when it is known. An account whose share
    /// was never opened (synced before the share was kept) counts the
    /// whole payment as cashback, as the engine then owned the whole
    /// balance.
    pub fn pay_with_store_credit(
        &mut self,
        amount: Money,
        order: Option<&mut OrderRecord>,
        note: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<StoreCreditSplit, LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let cashback = match self.store_credit_share {
            None => amount,
            Some(share) => amount.min(share.clamp_non_negative())?,
        };
        if !cashback.is_positive() {
            return Ok(StoreCreditSplit::customers_own(self.currency));
        }
        if let Some(share) = self.store_credit_share {
            self.store_credit_share = Some(share.checked_sub(cashback)?.clamp_non_negative());
        }
        let order_id = order.as_ref().map(|order| order.order_id.clone());
        let (applied, debt) =
            self.spend_on_platform(cashback, order_id.as_ref(), note, key, now)?;
        if let Some(order) = order {
            let used = order
                .store_credit
                .get_or_insert(StoreCreditUse::none(self.currency));
            used.cashback_spent = used.cashback_spent.checked_add(cashback)?;
        }
        Ok(StoreCreditSplit {
            applied,
            cashback,
            debt,
        })
    }

    /// Money an order gave back to store credit (a refund, a cancellation,
    /// a failed payment), read back from the platform, under its once-only
    /// `key`: cashback up to what the order's store credit payments took
    /// of it and have not had back, which pays the owner's debt first (see
    /// [`Account::restore_from_platform`]); the rest (a card payment
    /// refunded to store credit, the customer's own store credit given
    /// back) is the customer's and moves nothing here. Money given back
    /// without its order is the customer's. An account whose share was
    /// never opened counts it all as cashback, as the engine then did.
    pub fn store_credit_given_back(
        &mut self,
        amount: Money,
        order: Option<&mut OrderRecord>,
        note: &str,
        key: &str,
        program: &Program,
        now: DateTime<Utc>,
    ) -> Result<StoreCreditSplit, LedgerError> {
        self.same_currency(amount)?;
        if !amount.is_positive() {
            return Err(LedgerError::NotPositive);
        }
        let returnable = order
            .as_ref()
            .and_then(|order| order.store_credit)
            .map(|used| used.returnable())
            .unwrap_or(Money::zero(self.currency));
        let cashback = match self.store_credit_share {
            None => amount,
            Some(_) => amount.min(returnable)?,
        };
        if !cashback.is_positive() {
            return Ok(StoreCreditSplit::customers_own(self.currency));
        }
        if let Some(share) = self.store_credit_share {
            self.store_credit_share = Some(share.checked_add(cashback)?);
        }
        let order_id = order.as_ref().map(|order| order.order_id.clone());
        let (applied, paid) =
            self.restore_from_platform(cashback, order_id.as_ref(), note, key, program, now)?;
        if let Some(order) = order {
            let used = order
                .store_credit
                .get_or_insert(StoreCreditUse::none(self.currency));
            used.cashback_returned = used.cashback_returned.checked_add(cashback)?;
        }
        Ok(StoreCreditSplit {
            applied,
            cashback,
            debt: paid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CustomerId, OrderId, ShopId};
    use crate::money::Currency;
    use chrono::TimeZone;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
    }

    /// An account with `available` spendable and its store credit share.
    fn account(available: &str, share: Option<&str>) -> (Account, Program) {
        let program = Program::new(Currency::USD);
        let mut account = Account::open(
            ShopId::parse("shop.example").unwrap(),
            CustomerId::parse("7").unwrap(),
            Currency::USD,
        );
        if usd(available).is_positive() {
            account
                .adjust(usd(available), "earned", "seed", &program, now())
                .unwrap();
        }
        account.store_credit_share = share.map(usd);
        (account, program)
    }

    fn order(id: &str) -> OrderRecord {
        OrderRecord::new(OrderId::parse(id).unwrap(), Currency::USD)
    }

    #[test]
    fn a_payment_spends_cashback_first_and_the_rest_is_the_customers() {
        let (mut account, _) = account("20.00", Some("20.00"));
        let mut first = order("1001");
        let split = account
            .pay_with_store_credit(usd("35.00"), Some(&mut first), "paid", "t1", now())
            .unwrap();
        assert_eq!((split.cashback, split.debt), (usd("20.00"), usd("0")));
        assert_eq!(account.spendable(), usd("0"));
        assert_eq!(account.store_credit_share, Some(usd("0")));
        assert_eq!(first.store_credit.unwrap().cashback_spent, usd("20.00"));
        // Nothing left of cashback: the next payment is all the customer's.
        let split = account
            .pay_with_store_credit(usd("5.00"), None, "paid", "t2", now())
            .unwrap();
        assert_eq!(split.cashback, usd("0"));
        assert!(split.applied.entries.is_empty());
        assert_eq!(account.lifetime_used, usd("20.00"));
    }

    #[test]
    fn money_given_back_is_cashback_only_up_to_what_its_order_took() {
        let (mut account, program) = account("20.00", Some("20.00"));
        let mut paid = order("1001");
        account
            .pay_with_store_credit(usd("20.00"), Some(&mut paid), "paid", "t1", now())
            .unwrap();
        // A clawback landed after the payment: 15.00 owed.
        account.debt = usd("15.00");
        // A card payment on another order refunded to store credit: the
        // customer's own, it pays no debt and leaves lifetime use alone.
        let mut card = order("1002");
        let split = account
            .store_credit_given_back(usd("50.00"), Some(&mut card), "r", "t2", &program, now())
            .unwrap();
        assert_eq!(split.cashback, usd("0"));
        assert_eq!(account.debt, usd("15.00"));
        assert_eq!(account.lifetime_used, usd("20.00"));
        // The spending order refunded beyond what it took: the cashback part
        // pays the debt first; the rest is the customer's.
        let split = account
            .store_credit_given_back(usd("30.00"), Some(&mut paid), "r", "t3", &program, now())
            .unwrap();
        assert_eq!((split.cashback, split.debt), (usd("20.00"), usd("15.00")));
        assert_eq!(account.debt, usd("0"));
        assert_eq!(account.spendable(), usd("5.00"));
        assert_eq!(account.store_credit_share, Some(usd("20.00")));
        assert_eq!(paid.store_credit.unwrap().returnable(), usd("0"));
        // Given back again: nothing left to return as cashback.
        let split = account
            .store_credit_given_back(usd("10.00"), Some(&mut paid), "r", "t4", &program, now())
            .unwrap();
        assert_eq!(split.cashback, usd("0"));
        // Without its order: the customer's.
        let split = account
            .store_credit_given_back(usd("10.00"), None, "r", "t5", &program, now())
            .unwrap();
        assert_eq!(split.cashback, usd("0"));
    }

    #[test]
    fn an_account_synced_before_the_share_counts_everything_as_cashback() {
        let (mut account, program) = account("10.00", None);
        let split = account
            .pay_with_store_credit(usd("25.00"), None, "paid", "t1", now())
            .unwrap();
        assert_eq!((split.cashback, split.debt), (usd("25.00"), usd("15.00")));
        let split = account
            .store_credit_given_back(usd("25.00"), None, "r", "t2", &program, now())
            .unwrap();
        assert_eq!((split.cashback, split.debt), (usd("25.00"), usd("15.00")));
        assert_eq!(account.store_credit_share, None);
    }

    #[test]
    fn the_opening_share_is_what_the_program_says_the_held_credit_is() {
        let kept = opening_share(ExistingStoreCredit::KeptApart, usd("30"), usd("20"));
        assert_eq!(kept, usd("0"));
        let counted = |held: &str, target: &str| {
            opening_share(
                ExistingStoreCredit::CountedAsCashback,
                usd(held),
                usd(target),
            )
        };
        assert_eq!(counted("30", "20"), usd("20"));
        assert_eq!(counted("12", "20"), usd("12"));
        assert_eq!(counted("-3", "20"), usd("0"));
        let (mut account, _) = account("0", None);
        assert!(account.open_store_credit_share(usd("4")).unwrap());
        assert!(!account.open_store_credit_share(usd("9")).unwrap());
        assert_eq!(account.store_credit_share, Some(usd("4")));
        account.store_credit_sent(true, usd("6")).unwrap();
        account.store_credit_sent(false, usd("15")).unwrap();
        assert_eq!(account.store_credit_share, Some(usd("0")));
        for _ in 0..16 {
            account.store_credit_sent(true, usd("1")).unwrap();
        }
        let shared = account.store_credit_share;
        account.store_credit_taken_by_hand(usd("3")).unwrap();
        assert_eq!(
            account.store_credit_share,
            shared.map(|s| s.checked_sub(usd("3")).unwrap())
        );
        account.store_credit_taken_by_hand(usd("1000")).unwrap();
        assert_eq!(account.store_credit_share, Some(usd("0")));
        // Not opened yet: the share opens later at the balance, which holds
        // the call.
        let (mut legacy, _) = super::tests::account("0", None);
        legacy.store_credit_sent(true, usd("6")).unwrap();
        assert_eq!(legacy.store_credit_share, None);
    }
}
