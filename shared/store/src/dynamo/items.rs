//! Domain values as items, and back: the item layout of docs/data-model.md.
//!
//! Each item carries `entity_type` and its domain value as JSON in `doc`.
//! What DynamoDB itself must see (versions for conditions, balances for
//! relative updates and their conditions, counts, index keys) is copied out
//! of the doc into typed attributes; on the way back those attributes win
//! over the doc, since an update expression may have moved them since.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use cashback_app::store::{AccountWrite, CouponRecord, DueKind, DueRef, Versioned};
use cashback_core::earn::LineValue;
use cashback_core::ids::{CustomerId, LineId, OrderId, RefundId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry, Lot};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{RefundBasis, RefundedLine};
use cashback_core::orders::{OrderRecord, RecordedRefund};

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
    if !account.lots.is_empty() {
        item.insert(LOTS.into(), s(encode_lots(&account.lots)));
    }
    item.insert(DOC.into(), account_doc(account)?);
    Ok(item)
}

/// The account's lots, compact, on its item: `{credited}/{expiry}/{left}`
/// per lot, oldest first, separated by spaces. `credited` is the Unix
/// time in seconds (with its fraction when it has one), `expiry` the day
/// `YYYYMMDD` when it is a midnight (every lot's own expiry is: the end of
/// a UTC day), `t{seconds}` when a hold moved it elsewhere, `-` for never;
/// `left` the amount in the account's currency. Exact: every field comes
/// back as it was (about 25-35 bytes a lot instead of about 130 as JSON).
pub(crate) const LOTS: &str = "lots";

fn time_text(at: DateTime<Utc>) -> String {
    let seconds = at.timestamp();
    let nanos = at.timestamp_subsec_nanos();
    if nanos == 0 {
        seconds.to_string()
    } else {
        let fraction = format!("{nanos:09}");
        format!("{seconds}.{}", fraction.trim_end_matches('0'))
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let (seconds, fraction) = match text.split_once('.') {
        Some((s, f)) => (s, f),
        None => (text, ""),
    };
    if fraction.len() > 9 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    DateTime::from_timestamp(seconds.parse().ok()?, nanos)
}

pub(crate) fn encode_lots(lots: &[Lot]) -> String {
    let rows: Vec<String> = lots
        .iter()
        .map(|lot| {
            let expiry = match lot.expires_at {
                None => "-".to_string(),
                Some(at) if at.time() == chrono::NaiveTime::MIN => at.format("%Y%m%d").to_string(),
                Some(at) => format!("t{}", time_text(at)),
            };
            format!(
                "{}/{expiry}/{}",
                time_text(lot.credited_at),
                money_text(&lot.remaining)
            )
        })
        .collect();
    rows.join(" ")
}

fn decode_lots(item: &Item, text: &str, currency: Currency) -> Result<Vec<Lot>, StoreError> {
    let bad = |row: &str| corrupt(item, format!("lot {row:?}"));
    text.split(' ')
        .filter(|row| !row.is_empty())
        .map(|row| {
            let mut parts = row.split('/');
            let (Some(credited), Some(expiry), Some(left), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(row));
            };
            let expires_at = match expiry {
                "-" => None,
                _ => Some(match expiry.strip_prefix('t') {
                    Some(time) => parse_time(time).ok_or_else(|| bad(row))?,
                    None => chrono::NaiveDate::parse_from_str(expiry, "%Y%m%d")
                        .map_err(|_| bad(row))?
                        .and_time(chrono::NaiveTime::MIN)
                        .and_utc(),
                }),
            };
            Ok(Lot {
                credited_at: parse_time(credited).ok_or_else(|| bad(row))?,
                expires_at,
                remaining: parse_money(item, left, currency)?,
            })
        })
        .collect()
}

/// The account's balances kept as number attributes: left out of its doc
/// (the attributes are what an update moves) and given back from them.
const ACCOUNT_BALANCES: [&str; 5] = [AVAILABLE, PENDING, DEBT, LIFETIME_ISSUED, LIFETIME_USED];

/// The account as its item's `doc`, written small: without its lots (in
/// `lots`, compact), the balances the item keeps as numbers, and the
/// currency of each amount (the account's own, given back when read).
pub(crate) fn account_doc(account: &Account) -> Result<AttributeValue, StoreError> {
    let encode_error =
        |e: serde_json::Error| StoreError::Other(format!("cannot encode account: {e}"));
    let mut value = serde_json::to_value(account).map_err(encode_error)?;
    if let serde_json::Value::Object(map) = &mut value {
        map.remove(LOTS);
        for name in ACCOUNT_BALANCES {
            map.remove(name);
        }
    }
    drop_currency(&mut value, account.currency.code());
    serde_json::to_string(&value)
        .map(AttributeValue::S)
        .map_err(encode_error)
}

pub(crate) fn version_of(item: &Item) -> Result<u64, StoreError> {
    get_u64(item, VERSION).map(|v| v.unwrap_or(0))
}

pub(crate) fn decode_account(item: &Item) -> Result<Versioned<Account>, StoreError> {
    let raw = require_s(item, DOC)?;
    let bad = |e: serde_json::Error| corrupt(item, format!("doc does not decode: {e}"));
    let mut value: serde_json::Value = serde_json::from_str(raw).map_err(bad)?;
    let code = value
        .get(CURRENCY)
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .ok_or_else(|| corrupt(item, "account without a currency"))?;
    let currency =
        Currency::parse(&code).map_err(|_| corrupt(item, format!("currency {code:?}")))?;
    add_currency(&mut value, &code);
    if let serde_json::Value::Object(map) = &mut value {
        // Written before the doc was made small, the doc has them itself.
        let zero = serde_json::to_value(Money::zero(currency)).map_err(bad)?;
        for name in ACCOUNT_BALANCES {
            map.entry(name).or_insert_with(|| zero.clone());
        }
    }
    let mut account: Account = serde_json::from_value(value).map_err(bad)?;
    if let Some(text) = get_s(item, LOTS) {
        account.lots = decode_lots(item, text, currency)?;
    }
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

/// The order's lines, kept in their own item (written once) as rows
/// `[line id, units, merchandise, eligible]` in the record's currency.
#[derive(Serialize, Deserialize)]
struct LineRow(LineId, u32, String, String);

/// A refund's record: `[refund id, lines or null, amount or null]`, the
/// lines as `[line id, units]` (its item's `doc`; the state item's
/// `refunds` before refunds had items).
#[derive(Serialize, Deserialize)]
struct RefundRow(RefundId, Option<Vec<(LineId, u32)>>, Option<String>);

pub(crate) const REFUNDS: &str = "refunds";
/// How many refund items the order has (on its state item, so a read
/// knows whether to fetch them).
pub(crate) const REFUND_COUNT: &str = "refund_count";
/// A refund item's place among its order's refunds.
pub(crate) const SEQ: &str = "seq";
pub(crate) const LINE_COUNT: &str = "line_count";
/// Once-only markers of the emails the order's events recorded (see
/// `write::notice_on_order`): short hashes of their keys, a string set.
pub(crate) const NOTIFIED: &str = "notified";

fn money_text(money: &Money) -> String {
    money.amount().normalize().to_string()
}

fn parse_money(item: &Item, text: &str, currency: Currency) -> Result<Money, StoreError> {
    Decimal::from_str_exact(text)
        .ok()
        .and_then(|d| Money::new(d, currency).ok())
        .ok_or_else(|| corrupt(item, format!("amount {text:?}")))
}

/// The LINES item's `doc`: the record's lines as compact rows.
pub(crate) fn encode_lines(record: &OrderRecord) -> Result<AttributeValue, StoreError> {
    let rows: Vec<LineRow> = record
        .lines
        .iter()
        .map(|l| {
            LineRow(
                l.line_id.clone(),
                l.quantity,
                money_text(&l.merchandise),
                money_text(&l.eligible),
            )
        })
        .collect();
    to_doc(&rows)
}

fn decode_lines(item: &Item, currency: Currency) -> Result<Vec<LineValue>, StoreError> {
    let rows: Vec<LineRow> = get_doc(item)?;
    rows.into_iter()
        .map(|LineRow(line_id, quantity, merchandise, eligible)| {
            Ok(LineValue {
                line_id,
                quantity,
                merchandise: parse_money(item, &merchandise, currency)?,
                eligible: parse_money(item, &eligible, currency)?,
            })
        })
        .collect()
}

/// One refund as its row: `[refund id, lines or null, amount or null]`.
fn refund_row(refund: &RecordedRefund) -> RefundRow {
    let lines = |lines: &[RefundedLine]| {
        Some(
            lines
                .iter()
                .map(|l| (l.line_id.clone(), l.quantity))
                .collect(),
        )
    };
    let (lines, amount) = match &refund.basis {
        RefundBasis::Lines { lines: l } => (lines(l), None),
        RefundBasis::Amount { amount } => (None, Some(money_text(amount))),
        RefundBasis::LinesAndAmount { lines: l, amount } => (lines(l), Some(money_text(amount))),
    };
    RefundRow(refund.refund_id.clone(), lines, amount)
}

fn from_refund_row(
    item: &Item,
    RefundRow(refund_id, lines, amount): RefundRow,
    currency: Currency,
) -> Result<RecordedRefund, StoreError> {
    let lines = lines.map(|lines| {
        lines
            .into_iter()
            .map(|(line_id, quantity)| RefundedLine { line_id, quantity })
            .collect()
    });
    let amount = amount
        .map(|a| parse_money(item, &a, currency))
        .transpose()?;
    let basis = match (lines, amount) {
        (Some(lines), None) => RefundBasis::Lines { lines },
        (None, Some(amount)) => RefundBasis::Amount { amount },
        (Some(lines), Some(amount)) => RefundBasis::LinesAndAmount { lines, amount },
        (None, None) => return Err(corrupt(item, "a refund with neither lines nor amount")),
    };
    Ok(RecordedRefund { refund_id, basis })
}

/// The refund items of the record's refunds from the `stored`-th on: each
/// written once, in the order's partition, with its place among the
/// order's refunds (`seq`) and its row in `doc`.
pub(crate) fn refund_items(
    shop: &ShopId,
    record: &OrderRecord,
    stored: usize,
) -> Result<Vec<Item>, StoreError> {
    let pk = keys::order_key(shop, &record.order_id);
    record
        .refunds
        .iter()
        .enumerate()
        .skip(stored)
        .map(|(seq, refund)| {
            let mut item = key(&pk, keys::order_refund_sk(&refund.refund_id));
            item.insert(ENTITY_TYPE.into(), s("ORDER_REFUND"));
            item.insert(SEQ.into(), n_u64(seq as u64));
            item.insert(DOC.into(), to_doc(&refund_row(refund))?);
            Ok(item)
        })
        .collect()
}

/// The order's refunds from their items, in the order they were recorded.
fn decode_refund_items(
    items: &[Item],
    currency: Currency,
) -> Result<Vec<RecordedRefund>, StoreError> {
    let mut refunds = items
        .iter()
        .map(|item| {
            let seq = get_u64(item, SEQ)?.unwrap_or(0);
            Ok((seq, from_refund_row(item, get_doc(item)?, currency)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    refunds.sort_by_key(|(seq, _)| *seq);
    Ok(refunds.into_iter().map(|(_, refund)| refund).collect())
}

/// The compact rows of refunds an order state item carried before they
/// had items of their own (still read; the next write moves them out).
fn decode_refunds(
    item: &Item,
    text: &str,
    currency: Currency,
) -> Result<Vec<RecordedRefund>, StoreError> {
    let rows: Vec<RefundRow> = serde_json::from_str(text)
        .map_err(|e| corrupt(item, format!("refunds do not decode: {e}")))?;
    rows.into_iter()
        .map(|row| from_refund_row(item, row, currency))
        .collect()
}

/// The record's figures that have no default: left out of the state doc
/// when zero, given back as zero when read.
const ORDER_FIGURES: [&str; 6] = [
    "pending",
    "clawed_back",
    "redeemed",
    "shortfall",
    "restored",
    "spend_counted",
];

/// Every amount in the record's currency loses its `currency` (an object
/// holding only `amount` gets it back when read).
fn drop_currency(value: &mut serde_json::Value, currency: &str) {
    match value {
        serde_json::Value::Object(map) => {
            let is_money = map.len() == 2
                && map.contains_key("amount")
                && map.get("currency").and_then(|c| c.as_str()) == Some(currency);
            if is_money {
                map.remove("currency");
            } else {
                map.values_mut().for_each(|v| drop_currency(v, currency));
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| drop_currency(v, currency));
        }
        _ => {}
    }
}

fn add_currency(value: &mut serde_json::Value, currency: &str) {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 1 && map.contains_key("amount") {
                map.insert("currency".into(), currency.into());
            } else {
                map.values_mut().for_each(|v| add_currency(v, currency));
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| add_currency(v, currency));
        }
        _ => {}
    }
}

/// The order's state as its item's `doc`: the record without its lines
/// (their own item) and refunds (compact, in `refunds`), written small so
/// the item stays under 1 KB: fields at their default (none, false, empty,
/// a zero figure) are left out, and amounts carry no currency (the
/// record's own, given back when read).
pub(crate) fn order_state_doc(record: &OrderRecord) -> Result<AttributeValue, StoreError> {
    let mut state = record.clone();
    state.lines = Vec::new();
    state.refunds = Vec::new();
    let encode_error =
        |e: serde_json::Error| StoreError::Other(format!("cannot encode order: {e}"));
    let mut value = serde_json::to_value(&state).map_err(encode_error)?;
    if let serde_json::Value::Object(map) = &mut value {
        let zero = serde_json::to_value(Money::zero(record.currency)).map_err(encode_error)?;
        map.retain(|name, field| {
            let default = match field {
                serde_json::Value::Null => true,
                serde_json::Value::Bool(b) => !*b,
                serde_json::Value::Array(items) => items.is_empty(),
                _ => ORDER_FIGURES.contains(&name.as_str()) && *field == zero,
            };
            !default
        });
    }
    drop_currency(&mut value, record.currency.code());
    serde_json::to_string(&value)
        .map(AttributeValue::S)
        .map_err(encode_error)
}

/// The record in a state item's `doc`, as `order_state_doc` wrote it (or
/// whole, as written before it was made small).
fn decode_order_state(item: &Item) -> Result<OrderRecord, StoreError> {
    let raw = require_s(item, DOC)?;
    let bad = |e: serde_json::Error| corrupt(item, format!("doc does not decode: {e}"));
    let mut value: serde_json::Value = serde_json::from_str(raw).map_err(bad)?;
    let currency = value
        .get("currency")
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .ok_or_else(|| corrupt(item, "order without a currency"))?;
    add_currency(&mut value, &currency);
    let zero = Currency::parse(&currency)
        .ok()
        .and_then(|c| serde_json::to_value(Money::zero(c)).ok())
        .ok_or_else(|| corrupt(item, format!("currency {currency:?}")))?;
    if let serde_json::Value::Object(map) = &mut value {
        for name in ORDER_FIGURES {
            map.entry(name).or_insert_with(|| zero.clone());
        }
    }
    serde_json::from_value(value).map_err(bad)
}

/// The order from its state item, its LINES item when it has lines, and
/// its refund items (`refund_count` of them). An item written before the
/// lines and refunds moved out keeps them in its doc (or its refunds in
/// `refunds`), which still reads.
pub(crate) fn decode_order(
    item: &Item,
    lines: Option<&Item>,
    refunds: &[Item],
) -> Result<Versioned<OrderRecord>, StoreError> {
    let mut record = decode_order_state(item)?;
    if let Some(text) = get_s(item, REFUNDS) {
        record.refunds = decode_refunds(item, text, record.currency)?;
    }
    let counted = get_u64(item, REFUND_COUNT)?.unwrap_or(0);
    if counted > 0 || !refunds.is_empty() {
        if refunds.len() as u64 != counted {
            return Err(corrupt(
                item,
                "the order's refunds do not match their count",
            ));
        }
        record.refunds = decode_refund_items(refunds, record.currency)?;
    }
    let expected = get_u64(item, LINE_COUNT)?.unwrap_or(0);
    if record.lines.is_empty() && expected > 0 {
        let lines_item = lines.ok_or_else(|| corrupt(item, "the order's lines are missing"))?;
        record.lines = decode_lines(lines_item, record.currency)?;
        if record.lines.len() as u64 != expected {
            return Err(corrupt(item, "the order's lines do not match their count"));
        }
    }
    Ok(Versioned {
        value: record,
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
