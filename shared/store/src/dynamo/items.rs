//! Domain values as items, and back: the item layout of docs/data-model.md.
//!
//! Each item carries `entity_type` and its domain value as JSON in `doc`.
//! What DynamoDB itself must see (versions for conditions, balances for
//! relative updates and their conditions, counts, index keys) is copied out
//! of the doc into typed attributes; on the way back those attributes win
//! over the doc, since an update expression may have moved them since.

use chrono::{DateTime, SecondsFormat, Utc};

use cashback_app::store::{AccountWrite, CouponRecord, DueKind, DueRef, Versioned};
use cashback_core::ids::{CustomerId, OrderId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::orders::OrderRecord;

use cashback_app::store::StoreError;

use super::attr::*;
use super::schema::{due_index, DueIndex, EXPIRY_INDEX, REMINDER_INDEX};
use crate::keys;

pub(crate) const SHOP: &str = "shop";
pub(crate) const CUSTOMER: &str = "customer";
pub(crate) const ORDER_ID: &str = "order_id";
pub(crate) const CURRENCY: &str = "currency";
pub(crate) const USES: &str = "uses";
pub(crate) const COUNT: &str = "count";
pub(crate) const RESPONSE: &str = "response";
pub(crate) const BUCKET: &str = "bucket";

/// The balances kept as numbers on the account item. `held` is derived
/// from the holds in the doc and kept only for the condition and for
/// people reading the table; the others are authoritative.
pub(crate) const AVAILABLE: &str = "available";
pub(crate) const PENDING: &str = "pending";
pub(crate) const DEBT: &str = "debt";
pub(crate) const HELD: &str = "held";
pub(crate) const LIFETIME_ISSUED: &str = "lifetime_issued";
pub(crate) const LIFETIME_USED: &str = "lifetime_used";

/// The index key attributes placing an item in a due index, or None.
pub(crate) fn due_attributes(
    index: DueIndex,
    item_pk: &str,
    due_at: DateTime<Utc>,
) -> [(&'static str, String); 2] {
    let bucket = cashback_app::store::due_bucket(due_at);
    let shard = keys::shard_of(item_pk);
    [
        (index.pk, keys::due_pk(index.kind, &bucket, shard)),
        (index.sk, keys::due_sort_key(due_at, item_pk)),
    ]
}

/// The account item as a write leaves it (at `expected_version + 1`): every
/// attribute a creation puts, and an update sets to the same values.
pub(crate) fn account_item(shop: &ShopId, write: &AccountWrite) -> Result<Item, StoreError> {
    let account = &write.account;
    let pk = keys::account_key(shop, &account.customer);
    let mut item = key(&pk, keys::ACCOUNT_SK);
    item.insert(ENTITY_TYPE.into(), s("ACCOUNT"));
    item.insert(SHOP.into(), s(shop.as_str()));
    item.insert(CUSTOMER.into(), s(account.customer.as_str()));
    item.insert(CURRENCY.into(), s(account.currency.code()));
    item.insert(VERSION.into(), n_u64(write.expected_version + 1));
    for (name, value) in [
        (AVAILABLE, account.available.amount()),
        (PENDING, account.pending.amount()),
        (DEBT, account.debt.amount()),
        (HELD, account.held().amount()),
        (LIFETIME_ISSUED, account.lifetime_issued.amount()),
        (LIFETIME_USED, account.lifetime_used.amount()),
    ] {
        item.insert(name.into(), n_decimal(value));
    }
    let dues = [
        (REMINDER_INDEX, write.reminder_due_at),
        (EXPIRY_INDEX, write.expiry_due_at()),
    ];
    for (index, due) in dues {
        if let Some(at) = due {
            for (name, value) in due_attributes(index, &pk, at) {
                item.insert(name.into(), s(value));
            }
        }
    }
    item.insert(DOC.into(), to_doc(account)?);
    Ok(item)
}

pub(crate) fn version_of(item: &Item) -> Result<u64, StoreError> {
    get_u64(item, VERSION).map(|v| v.unwrap_or(0))
}

pub(crate) fn decode_account(item: &Item) -> Result<Versioned<Account>, StoreError> {
    let mut account: Account = get_doc(item)?;
    let currency = account.currency;
    // The numbers were moved by relative updates: they are the balances.
    for (name, field) in [
        (AVAILABLE, &mut account.available),
        (PENDING, &mut account.pending),
        (DEBT, &mut account.debt),
        (LIFETIME_ISSUED, &mut account.lifetime_issued),
        (LIFETIME_USED, &mut account.lifetime_used),
    ] {
        if let Some(value) = get_money(item, name, currency)? {
            *field = value;
        }
    }
    Ok(Versioned {
        value: account,
        version: version_of(item)?,
    })
}

pub(crate) fn decode_order(item: &Item) -> Result<Versioned<OrderRecord>, StoreError> {
    Ok(Versioned {
        value: get_doc(item)?,
        version: version_of(item)?,
    })
}

/// A coupon item, or None for a bare use counter left by a use of a
/// coupon that was never created (see `write::coupon_updates`).
pub(crate) fn decode_coupon(item: &Item) -> Result<Option<Versioned<CouponRecord>>, StoreError> {
    if !item.contains_key(DOC) {
        return Ok(None);
    }
    let mut record: CouponRecord = get_doc(item)?;
    record.uses = get_count(item, USES)?;
    Ok(Some(Versioned {
        value: record,
        version: version_of(item)?,
    }))
}

pub(crate) fn decode_customer(item: &Item) -> Result<CustomerId, StoreError> {
    let raw = require_s(item, CUSTOMER)?;
    CustomerId::parse(raw).map_err(|e| corrupt(item, format!("customer: {e}")))
}

pub(crate) fn decode_entry(item: &Item) -> Result<LedgerEntry, StoreError> {
    get_doc(item)
}

/// A due index item as the `DueRef` it stands for. The due time is the
/// index sort key's prefix (`{time}#{item pk}`).
pub(crate) fn decode_due(kind: DueKind, item: &Item) -> Result<DueRef, StoreError> {
    let index = due_index(kind);
    let sort = require_s(item, index.sk)?;
    let time = sort.split('#').next().unwrap_or_default();
    let due_at = DateTime::parse_from_rfc3339(time)
        .map_err(|e| corrupt(item, format!("due time {time:?}: {e}")))?
        .with_timezone(&Utc);
    let shop =
        ShopId::parse(require_s(item, SHOP)?).map_err(|e| corrupt(item, format!("shop: {e}")))?;
    let customer = get_s(item, CUSTOMER)
        .map(CustomerId::parse)
        .transpose()
        .map_err(|e| corrupt(item, format!("customer: {e}")))?;
    let order = get_s(item, ORDER_ID)
        .map(OrderId::parse)
        .transpose()
        .map_err(|e| corrupt(item, format!("order: {e}")))?;
    Ok(DueRef {
        shop,
        customer,
        order,
        due_at,
    })
}

/// The ledger entry item: the doc plus its kind and deltas as attributes,
/// so the table can be read (and audited) without decoding JSON.
pub(crate) fn ledger_item(
    shop: &ShopId,
    customer: &CustomerId,
    entry: &LedgerEntry,
) -> Result<Item, StoreError> {
    let mut item = key(
        keys::account_key(shop, customer),
        keys::ledger_sort_key(entry),
    );
    let kind = serde_json::to_value(entry.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    item.insert(ENTITY_TYPE.into(), s("LEDGER"));
    item.insert("kind".into(), s(kind));
    item.insert(
        "at".into(),
        s(entry.at.to_rfc3339_opts(SecondsFormat::Micros, true)),
    );
    item.insert(
        "available_delta".into(),
        n_decimal(entry.available_delta.amount()),
    );
    item.insert(
        "pending_delta".into(),
        n_decimal(entry.pending_delta.amount()),
    );
    item.insert("debt_delta".into(), n_decimal(entry.debt_delta.amount()));
    if let Some(order) = &entry.order_id {
        item.insert(ORDER_ID.into(), s(order.as_str()));
    }
    item.insert(DOC.into(), to_doc(entry)?);
    Ok(item)
}
