//! What a change means for the platform's codes.
//!
//! An account change calls for a code sync when it moves what the code must be
//! ([`desired_code`](cashback_app::platform_codes::desired_code) reads the
//! code, the spendable balance, the owner's email and whether the owner is
//! a guest); every other write of the account (a tier, lifetime figures,
//! pending cashback, a reminder) leaves the code alone, so the platform
//! sees one call per balance change, not one per write (such a write still
//! moves the Klaviyo profile's figures, for the shops that have it). A ledger entry is always
//! written with its account, whose change stands for both.

use serde_json::Value;

use cashback_app::changes::{Change, ChangeKind};
use cashback_core::ids::{Code, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Money;
use cashback_core::platform_code::PlatformSync;
use cashback_core::program::Program;

use crate::Intent;

/// What the platform's code is made of, of an account.
fn code_inputs(account: &Account) -> (Option<&Code>, Money, Option<&str>, bool) {
    (
        account.code.as_ref(),
        account.spendable(),
        account.email.as_ref().map(|e| e.as_str()),
        account.customer.is_guest(),
    )
}

/// The intent a change calls for, if any.
pub fn intent_of(change: &Change) -> Option<Intent> {
    let ChangeKind::Account { before, after } = &change.kind else {
        return None;
    };
    let moves_code = match (before.as_deref(), after.as_deref()) {
        (Some(before), Some(after)) => code_inputs(before) != code_inputs(after),
        (None, Some(after)) => after.code.is_some(),
        (Some(before), None) => before.code.is_some(),
        (None, None) => false,
    };
    // Any other write of an account still moves the marketing profile's
    // figures (tier, lifetime figures, pending cashback).
    if !moves_code && after.is_none() {
        return None;
    }
    let previous = before.as_ref().and_then(|b| b.code.clone());
    let current = after.as_ref().and_then(|a| a.code.clone());
    Some(Intent {
        item: change.sequence.clone(),
        shop: change.shop.clone(),
        customer: change.customer.clone(),
        // A replaced (or erased) code is ended on the platform.
        previous_code: previous.filter(|p| Some(p) != current.as_ref()),
        moves_code,
    })
}

/// The intents of a run of changes (the in-memory store's log, or a
/// decoded stream batch), in feed order.
pub fn intents_of_changes(changes: &[Change]) -> Vec<Intent> {
    changes.iter().filter_map(intent_of).collect()
}

/// The program as a stream image holds it (the store keeps it whole in `doc`).
fn program_of(image: Option<&Value>) -> Option<Program> {
    let doc = image?.get("doc")?.get("S")?.as_str()?;
    serde_json::from_str(doc).ok()
}

/// The shop whose current program changed what its codes must be (the
/// redemption rules, or whether codes are kept on the platform at all);
/// None for any other record.
pub fn program_rules_changed(record: &Value) -> Option<ShopId> {
    let dynamodb = record.get("dynamodb")?;
    let keys = dynamodb.get("Keys")?;
    let sk = keys.get("sk")?.get("S")?.as_str()?;
    if sk != cashback_store::keys::PROGRAM_SK {
        return None;
    }
    let pk = keys.get("pk")?.get("S")?.as_str()?;
    let new = program_of(dynamodb.get("NewImage"))?;
    let old = program_of(dynamodb.get("OldImage"));
    let changed = match &old {
        None => true,
        Some(old) => {
            old.platform_sync != new.platform_sync
                || serde_json::to_value(&old.redemption).ok()
                    != serde_json::to_value(&new.redemption).ok()
        }
    };
    // A program that stops syncing leaves the codes as they are (the
    // merchant ends them on the platform; docs/platform-sync.md), but
    // store credit the engine put is emptied: nothing would read its
    // payments any more.
    let leaves_store_credit = new.platform_sync.is_off()
        && old
            .as_ref()
            .is_some_and(|old| old.platform_sync == PlatformSync::StoreCredit);
    if !changed || (new.platform_sync.is_off() && !leaves_store_credit) {
        return None;
    }
    crate::shops::shop_of_pk(pk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::CustomerId;
    use cashback_core::money::Currency;
    use rust_decimal_macros::dec;

    fn program_record(old: Option<&Program>, new: &Program) -> Value {
        let image = |p: &Program| {
            serde_json::json!({
                "pk": {"S": "SHOP#demo.myshopify.com"}, "sk": {"S": "PROGRAM"},
                "doc": {"S": serde_json::to_string(p).unwrap()}
            })
        };
        let mut dynamodb = serde_json::json!({
            "Keys": {"pk": {"S": "SHOP#demo.myshopify.com"}, "sk": {"S": "PROGRAM"}},
            "NewImage": image(new),
            "SequenceNumber": "7",
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = image(old);
        }
        serde_json::json!({ "eventName": "MODIFY", "dynamodb": dynamodb })
    }

    #[test]
    fn a_program_change_of_the_redemption_rules_re_puts_the_shops_codes() {
        let mut old = Program::new(Currency::USD);
        old.platform_sync = PlatformSync::DiscountCode;
        let mut new = old.clone();
        new.redemption.min_order_subtotal = dec!(25);
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        assert_eq!(
            program_rules_changed(&program_record(Some(&old), &new)),
            Some(shop.clone())
        );
        // Turning sync on, too.
        let mut off = old.clone();
        off.platform_sync = PlatformSync::Off;
        assert_eq!(
            program_rules_changed(&program_record(Some(&off), &old)),
            Some(shop)
        );
        // Earning rules, or sync turned off: nothing to re-put.
        let mut earning = old.clone();
        earning.earning.merchant_percent = dec!(12);
        assert_eq!(
            program_rules_changed(&program_record(Some(&old), &earning)),
            None
        );
        assert_eq!(
            program_rules_changed(&program_record(Some(&old), &off)),
            None
        );
        // Off after store credit: the store credit is emptied.
        let mut credit = old.clone();
        credit.platform_sync = PlatformSync::StoreCredit;
        assert_eq!(
            program_rules_changed(&program_record(Some(&credit), &off)),
            Some(ShopId::parse("demo.myshopify.com").unwrap())
        );
    }

    fn change(before: Option<&Account>, after: Option<&Account>) -> Change {
        Change {
            shop: ShopId::parse("demo.myshopify.com").unwrap(),
            customer: CustomerId::parse("c1").unwrap(),
            sequence: "00000000000000000009".into(),
            kind: ChangeKind::Account {
                before: before.cloned().map(Box::new),
                after: after.cloned().map(Box::new),
            },
        }
    }

    #[test]
    fn only_a_write_that_moves_the_code_calls_for_a_sync() {
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        let mut account = Account::open(shop, CustomerId::parse("c1").unwrap(), Currency::USD);
        account.code = Some(Code::parse("CB-ONE").unwrap());
        let mut tier = account.clone();
        tier.tier = Some(1);
        let profile_only = intent_of(&change(Some(&account), Some(&tier))).unwrap();
        assert!(
            !profile_only.moves_code,
            "a tier moves the profile, not the code"
        );
        let mut credited = account.clone();
        credited.available = Money::parse("5.00", Currency::USD).unwrap();
        let intent = intent_of(&change(Some(&account), Some(&credited))).unwrap();
        assert!(intent.moves_code);
        assert_eq!(intent.previous_code, None);
        let mut renewed = credited.clone();
        renewed.code = Some(Code::parse("CB-TWO").unwrap());
        let intent = intent_of(&change(Some(&credited), Some(&renewed))).unwrap();
        assert_eq!(intent.previous_code, account.code);
        // An erased account ends its code.
        let intent = intent_of(&change(Some(&renewed), None)).unwrap();
        assert_eq!(intent.previous_code, renewed.code);
    }
}
