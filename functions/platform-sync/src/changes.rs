//! What a change means for the platform's codes.
//!
//! An account change calls for a sync when it moves what the code must be
//! ([`desired_code`](cashback_app::platform_codes::desired_code) reads the
//! code, the spendable balance, the owner's email and whether the owner is
//! a guest); every other write of the account (a tier, lifetime figures,
//! pending cashback, a reminder) is left alone, so the platform sees one
//! call per balance change, not one per write. A ledger entry is always
//! written with its account, whose change stands for both.

use serde_json::Value;

use cashback_app::changes::{Change, ChangeKind};
use cashback_core::ids::{Code, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Money;
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
    let moved = match (before.as_deref(), after.as_deref()) {
        (Some(before), Some(after)) => code_inputs(before) != code_inputs(after),
        (None, Some(after)) => after.code.is_some(),
        (Some(before), None) => before.code.is_some(),
        (None, None) => false,
    };
    if !moved {
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
    // merchant ends them on the platform; docs/platform-sync.md).
    if !changed || new.platform_sync.is_off() {
        return None;
    }
    crate::shops::shop_of_pk(pk)
}
