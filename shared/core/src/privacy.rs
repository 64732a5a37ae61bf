//! What erasing a customer's personal data leaves of their account.
//!
//! A customer's (or the platform's) redaction request erases what
//! identifies the person and keeps the money: the account's balances,
//! lots, holds and its immutable ledger entries stay, so the shop's books
//! still balance and a balance already owed is still honoured (or still
//! owed). The account stays under the platform's customer id, which the
//! platform itself has deleted by then; a guest's account id is already a
//! keyed hash of the email, not the email.
//!
//! This is the one place that lists an account's personal fields: a new
//! one (a birthday, a name) is cleared here too.

use crate::ledger::Account;

/// The account with every personal field cleared: the email (so no email
/// can be sent and the email-owner index can be forgotten) and the
/// birthday (with who gave it and from when it pays). Money, history, code
/// and referral code (random, not personal) are kept, and so is the last
/// birthday year paid (a year alone names no one, and it keeps a bonus
/// from being paid twice).
pub fn redact(account: &Account) -> Account {
    let mut redacted = account.clone();
    redacted.email = None;
    redacted.bonus.birthday = None;
    redacted.bonus.birthday_source = None;
    redacted.bonus.birthday_from = None;
    redacted
}

/// Whether the account still holds personal data [`redact`] would clear.
pub fn holds_personal_data(account: &Account) -> bool {
    account.email.is_some() || account.bonus.birthday.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CustomerId, Email, ShopId};
    use crate::money::{Currency, Money};

    #[test]
    fn redaction_clears_the_email_and_keeps_every_amount() {
        let mut account = Account::open(
            ShopId::parse("shop.example").unwrap(),
            CustomerId::parse("42").unwrap(),
            Currency::USD,
        );
        account.email = Some(Email::parse("ann@example.com").unwrap());
        account.available = Money::parse("12.30", Currency::USD).unwrap();
        account.debt = Money::parse("1.00", Currency::USD).unwrap();
        account.bonus.birthday = Some(crate::bonuses::Birthday::new(2, 29).unwrap());
        assert!(holds_personal_data(&account));
        let redacted = redact(&account);
        assert_eq!(redacted.email, None);
        assert_eq!(redacted.bonus.birthday, None, "a birthday is personal data");
        assert!(!holds_personal_data(&redacted));
        let mut restored = redacted.clone();
        restored.email = account.email.clone();
        restored.bonus = account.bonus.clone();
        assert_eq!(restored, account, "nothing else changed");
    }
}
