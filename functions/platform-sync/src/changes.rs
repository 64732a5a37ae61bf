//! What a stream record means for the platform's codes.

use serde_json::Value;

use cashback_core::ids::ShopId;
use cashback_core::program::Program;

use crate::Intent;

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

/// The sync intents an account record calls for.
pub fn intents_of(_record: &Value, _item: &str) -> Vec<Intent> {
    Vec::new()
}
