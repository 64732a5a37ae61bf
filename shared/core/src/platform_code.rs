//! The customer's balance code as the shop's own platform must hold it, so
//! the code works at a checkout that never asks the engine (DESIGN.md
//! section 9).
//!
//! [`desired_code`] is the one rule that turns an account and its program
//! into that state: the amount is always the absolute spendable balance
//! (never a difference), so applying it twice, late or out of order cannot
//! double anything. Below the program's minimum balance the code is kept but
//! inactive. [`PlatformSync`] is the program's switch; what a platform's
//! discount code cannot express is refused by the program's validation.

use serde::{Deserialize, Serialize};

use crate::ids::{Code, CustomerId, Email};
use crate::ledger::Account;
use crate::money::Money;
use crate::program::{CodeUsers, Program};

/// Whether and how the balance code is kept on the shop's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformSync {
    /// The code lives only in the engine (validate at checkout): the
    /// behaviour of every program written before platform sync existed.
    #[default]
    Off,
    /// One platform discount code per customer (Shopify basic code
    /// discount, WooCommerce fixed-cart coupon) carrying the spendable
    /// balance as a fixed amount off the order.
    DiscountCode,
    /// Shopify only: the spendable balance mirrored as the customer's
    /// native store credit (a payment method at checkout, for customers
    /// signed in with new customer accounts). What a store credit cannot
    /// express is refused by the program's validation
    /// ([`store_credit_refusals`]); [`store_credit_target`] is the balance
    /// the account on the platform must hold.
    StoreCredit,
}

impl PlatformSync {
    /// Off is left out of a program's JSON, so programs read and written
    /// before this setting existed round-trip unchanged.
    pub fn is_off(&self) -> bool {
        *self == PlatformSync::Off
    }
}

/// Why a program setting cannot be kept with [`PlatformSync::DiscountCode`].
pub const MAX_PERCENT_UNSUPPORTED: &str = "cannot be kept with platform_sync \"discount_code\": \
     a platform discount code takes a fixed amount (the whole balance, up to the subtotal), \
     it cannot cap itself at a percent of the order";

/// Why a program setting cannot be kept with [`PlatformSync::StoreCredit`]:
/// store credit is a payment method, not a discount.
pub const STORE_CREDIT_MAX_PERCENT: &str = "cannot be kept with platform_sync \"store_credit\": \
     store credit is a payment method the customer applies up to the order's total, \
     it cannot cap itself at a percent of the order";
/// See [`STORE_CREDIT_MAX_PERCENT`].
pub const STORE_CREDIT_MIN_SUBTOTAL: &str = "must be 0 with platform_sync \"store_credit\": \
     store credit is a payment method, usable on any order, it has no minimum subtotal";
/// See [`STORE_CREDIT_MAX_PERCENT`].
pub const STORE_CREDIT_COMBINES: &str = "must be true with platform_sync \"store_credit\": \
     store credit is a payment method, it always combines with every discount";
/// See [`STORE_CREDIT_MAX_PERCENT`].
pub const STORE_CREDIT_OWNER_ONLY: &str =
    "must be \"owner_only\" with platform_sync \"store_credit\": \
     store credit belongs to one customer account on the platform and only its owner, \
     signed in, can spend it";

/// Why a store-credit program must say what happens to store credit its
/// customers already hold.
pub const STORE_CREDIT_EXISTING: &str =
    "is required with platform_sync \"store_credit\": say what the store credit \
     customers already hold is: \"kept_apart\" (theirs: given by the shop or \
     another app; the engine adds cashback beside it and never takes it) or \
     \"counted_as_cashback\" (the cashback the ledger holds, up to its spendable \
     balance: balances moved from an app that kept rewards as store credit and \
     imported into the engine, which would otherwise be given twice)";

/// What the store credit a customer holds when the engine first reads
/// their account is ([`PlatformSync::StoreCredit`]); the program must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExistingStoreCredit {
    /// The customer's own (the merchant's or another app's credit, a
    /// payment refunded to store credit): the engine adds cashback beside
    /// it and never takes it away.
    KeptApart,
    /// The cashback the ledger holds, up to the spendable balance (a shop
    /// moving from an app that kept rewards as store credit, whose balances
    /// were imported): only what the ledger is owed beyond it is credited.
    CountedAsCashback,
}

/// The program settings [`PlatformSync::StoreCredit`] cannot express, as
/// (field, reason); empty for any other mode.
pub fn store_credit_refusals(program: &Program) -> Vec<(&'static str, &'static str)> {
    let mut refusals = Vec::new();
    if program.platform_sync != PlatformSync::StoreCredit {
        return refusals;
    }
    if program.existing_store_credit.is_none() {
        refusals.push(("existing_store_credit", STORE_CREDIT_EXISTING));
    }
    let rules = &program.redemption;
    if rules.max_percent_of_order.is_some() {
        refusals.push(("redemption.max_percent_of_order", STORE_CREDIT_MAX_PERCENT));
    }
    if !rules.min_order_subtotal.is_zero() {
        refusals.push(("redemption.min_order_subtotal", STORE_CREDIT_MIN_SUBTOTAL));
    }
    if !rules.combine_with_shipping {
        refusals.push(("redemption.combine_with_shipping", STORE_CREDIT_COMBINES));
    }
    if !rules.combine_with_order {
        refusals.push(("redemption.combine_with_order", STORE_CREDIT_COMBINES));
    }
    if !rules.combine_with_product {
        refusals.push(("redemption.combine_with_product", STORE_CREDIT_COMBINES));
    }
    if rules.usable_by != CodeUsers::OwnerOnly {
        refusals.push(("redemption.usable_by", STORE_CREDIT_OWNER_ONLY));
    }
    refusals
}

/// The balance the customer's store credit account on the platform must
/// hold: the spendable balance while the code is active, nothing below the
/// program's minimum balance.
pub fn store_credit_target(desired: &DesiredCode) -> Money {
    if desired.active {
        desired.amount
    } else {
        Money::zero(desired.amount.currency())
    }
}

/// Who may use the synced code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeOwner {
    /// The platform's customer id; None for a guest account (an email only).
    pub customer: Option<CustomerId>,
    /// The owner's email, for platforms that restrict a coupon by address
    /// (WooCommerce's `email_restrictions`).
    pub email: Option<Email>,
}

/// Which other discounts the code combines with at the platform's checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Combines {
    /// With shipping discounts (free shipping codes).
    pub shipping: bool,
    /// With other order-level discounts.
    pub order: bool,
    /// With product-level discounts (sales on items).
    pub product: bool,
}

/// The state a customer's code must have on the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredCode {
    /// The customer's balance code, as the platform must know it.
    pub code: Code,
    /// The owner's account (the engine's customer id), for the code's title.
    pub account: CustomerId,
    /// The absolute spendable balance: what the code takes off at most.
    pub amount: Money,
    /// Whether the code works: false while the balance is below the
    /// program's minimum (or zero).
    pub active: bool,
    /// Set when only the owner may use the code (owner_only programs).
    pub restricted_to: Option<CodeOwner>,
    /// The order subtotal the code needs, in the shop's currency.
    pub min_subtotal: Money,
    /// From the program's redemption combination switches.
    pub combines: Combines,
}

/// What the platform's code must be for this account under this program,
/// or None when the account has no code yet or the program does not sync.
pub fn desired_code(account: &Account, program: &Program) -> Option<DesiredCode> {
    if program.platform_sync == PlatformSync::Off {
        return None;
    }
    let code = account.code.clone()?;
    let rules = &program.redemption;
    let amount = account.spendable();
    let active = amount.is_positive() && amount.amount() >= rules.min_balance;
    let restricted_to = match rules.usable_by {
        CodeUsers::OwnerOnly => Some(CodeOwner {
            customer: (!account.customer.is_guest()).then(|| account.customer.clone()),
            email: account.email.clone(),
        }),
        CodeUsers::Anyone => None,
    };
    Some(DesiredCode {
        code,
        account: account.customer.clone(),
        amount,
        active,
        restricted_to,
        min_subtotal: Money::round_toward_zero(rules.min_order_subtotal, account.currency),
        combines: Combines {
            shipping: rules.combine_with_shipping,
            order: rules.combine_with_order,
            product: rules.combine_with_product,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CheckoutId, ShopId};
    use crate::ledger::Hold;
    use crate::money::Currency;
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    fn usd(amount: rust_decimal::Decimal) -> Money {
        Money::new(amount, Currency::USD).unwrap()
    }

    fn account(available: rust_decimal::Decimal) -> Account {
        let mut account = Account::open(
            ShopId::parse("shop.myshopify.com").unwrap(),
            CustomerId::parse("42").unwrap(),
            Currency::USD,
        );
        account.code = Some(Code::parse("CB-ABC").unwrap());
        account.email = Some(Email::parse("ann@example.com").unwrap());
        account.available = usd(available);
        account
    }

    fn syncing() -> Program {
        let mut program = Program::new(Currency::USD);
        program.platform_sync = PlatformSync::DiscountCode;
        program
    }

    #[test]
    fn nothing_is_synced_while_the_program_keeps_sync_off() {
        assert_eq!(
            desired_code(&account(dec!(10)), &Program::new(Currency::USD)),
            None
        );
    }

    #[test]
    fn the_code_carries_the_spendable_balance_net_of_holds() {
        let mut account = account(dec!(25));
        account.holds.push(Hold {
            checkout_id: CheckoutId::parse("c1").unwrap(),
            amount: usd(dec!(5)),
            expires_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        });
        let desired = desired_code(&account, &syncing()).unwrap();
        assert_eq!(desired.amount, usd(dec!(20)));
        assert!(desired.active);
        let owner = desired.restricted_to.unwrap();
        assert_eq!(owner.customer.unwrap().as_str(), "42");
        assert_eq!(owner.email.unwrap().as_str(), "ann@example.com");
    }

    #[test]
    fn below_the_minimum_balance_the_code_is_kept_inactive() {
        let mut program = syncing();
        program.redemption.min_balance = dec!(10);
        let desired = desired_code(&account(dec!(9.99)), &program).unwrap();
        assert!(!desired.active);
        assert_eq!(desired.amount, usd(dec!(9.99)));
        assert!(desired_code(&account(dec!(10)), &program).unwrap().active);
        assert!(!desired_code(&account(dec!(0)), &syncing()).unwrap().active);
    }

    #[test]
    fn a_gift_card_program_restricts_nobody_and_keeps_its_switches() {
        let mut program = syncing();
        program.redemption.usable_by = CodeUsers::Anyone;
        program.redemption.min_order_subtotal = dec!(50);
        program.redemption.combine_with_order = true;
        let desired = desired_code(&account(dec!(5)), &program).unwrap();
        assert_eq!(desired.restricted_to, None);
        assert_eq!(desired.min_subtotal, usd(dec!(50)));
        assert!(desired.combines.order && desired.combines.shipping);
    }

    #[test]
    fn a_guest_owner_is_restricted_by_email_only() {
        let mut account = account(dec!(5));
        let email = Email::parse("guest@example.com").unwrap();
        account.customer = CustomerId::for_guest(&email);
        let owner = desired_code(&account, &syncing())
            .unwrap()
            .restricted_to
            .unwrap();
        assert_eq!(owner.customer, None);
    }

    #[test]
    fn an_account_without_a_code_has_nothing_to_sync() {
        let mut account = account(dec!(5));
        account.code = None;
        assert_eq!(desired_code(&account, &syncing()), None);
    }

    fn store_credit() -> Program {
        let mut program = Program::new(Currency::USD);
        program.platform_sync = PlatformSync::StoreCredit;
        program.existing_store_credit = Some(ExistingStoreCredit::KeptApart);
        program.redemption.combine_with_order = true;
        program
    }

    #[test]
    fn store_credit_mirrors_the_spendable_balance_and_nothing_below_the_minimum() {
        let mut program = store_credit();
        program.redemption.min_balance = dec!(10);
        let desired = desired_code(&account(dec!(12.50)), &program).unwrap();
        assert_eq!(store_credit_target(&desired), usd(dec!(12.50)));
        let desired = desired_code(&account(dec!(9.99)), &program).unwrap();
        assert_eq!(store_credit_target(&desired), usd(dec!(0)));
    }

    #[test]
    fn store_credit_refuses_what_a_payment_method_cannot_express() {
        assert!(store_credit().validate().is_ok());
        let json = r#"{"currency":"USD","platform_sync":"store_credit","existing_store_credit":"counted_as_cashback","redemption":{"combine_with_order":true}}"#;
        let read = Program::from_json(json).unwrap();
        assert_eq!(read.platform_sync, PlatformSync::StoreCredit);
        assert_eq!(
            read.existing_store_credit,
            Some(ExistingStoreCredit::CountedAsCashback)
        );
        // The defaults keep order discounts apart and do not say what the
        // store credit already held is: refused, with the reasons.
        let mut program = Program::new(Currency::USD);
        program.platform_sync = PlatformSync::StoreCredit;
        let errors = program.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["existing_store_credit", "redemption.combine_with_order"]
        );
        assert_eq!(errors.0[0].message, STORE_CREDIT_EXISTING);
        assert_eq!(errors.0[1].message, STORE_CREDIT_COMBINES);
        let mut program = store_credit();
        program.redemption.max_percent_of_order = Some(dec!(50));
        program.redemption.min_order_subtotal = dec!(20);
        program.redemption.usable_by = CodeUsers::Anyone;
        let errors = program.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "redemption.max_percent_of_order",
                "redemption.min_order_subtotal",
                "redemption.usable_by"
            ]
        );
        assert_eq!(errors.0[0].message, STORE_CREDIT_MAX_PERCENT);
        // The same settings are fine with a discount code (but the cap).
        program.platform_sync = PlatformSync::Off;
        assert!(program.validate().is_ok());
    }

    #[test]
    fn discount_code_sync_refuses_a_cap_as_a_percent_of_the_order() {
        let mut program = syncing();
        program.redemption.max_percent_of_order = Some(dec!(50));
        let errors = program.validate().unwrap_err();
        assert_eq!(errors.0[0].field, "redemption.max_percent_of_order");
        assert_eq!(errors.0[0].message, MAX_PERCENT_UNSUPPORTED);
        program.platform_sync = PlatformSync::Off;
        assert!(program.validate().is_ok());
        let json = r#"{"currency":"USD","platform_sync":"discount_code","redemption":{"max_percent_of_order":"20"}}"#;
        assert!(Program::from_json(json).is_err());
        let json = r#"{"currency":"USD","platform_sync":"discount_code"}"#;
        assert_eq!(
            Program::from_json(json).unwrap().platform_sync,
            PlatformSync::DiscountCode
        );
        assert_eq!(
            Program::from_json(r#"{"currency":"USD"}"#)
                .unwrap()
                .platform_sync,
            PlatformSync::Off
        );
    }
}
