//! Referral credits: one item per referred order in the referrer's
//! partition (`SHOP#{shop}#CUST#{referrer}`, `REFERRED#{order}`), so that
//! the referred buyer's transaction records the reward without the
//! referrer's account (`cashback_app::referral`).
//!
//! Two writers, each on its own attributes: the order's transaction sets
//! the credit (`doc`, what the order grants now) and leaves what was
//! settled alone (`settled` and its `version`, set only when the item is
//! new); the change feed's consumer sets `settled` with the referrer's
//! account, under the settled version it read. Only the referred order's
//! events and its own settlement write the item: it is never shared
//! between customers' orders. Its stream record is the change that
//! settles it ([`super::stream`]).

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use cashback_app::referral::{credit_written, ReferralNote, ReferralSettle};
use cashback_app::store::{StoreError, Versioned, WriteSet};
use cashback_core::ids::{CustomerId, OrderId, ShopId};
use cashback_core::referrals::{ReferralCredit, ReferralSettled};

use super::attr::*;
use crate::keys;

/// The credit's entity type.
pub(crate) const ENTITY: &str = "REFERRAL_CREDIT";
/// What was settled of the credit (JSON).
const SETTLED: &str = "settled";
/// The referred order's id.
const ORDER: &str = "order_id";

/// The credit's key.
pub(crate) fn credit_key(shop: &ShopId, referrer: &CustomerId, order: &OrderId) -> Item {
    key(
        keys::account_key(shop, referrer),
        keys::referral_credit_sk(order),
    )
}

fn transaction_update(
    table: &str,
    key: Item,
    expression: String,
    condition: Option<String>,
    expr: &Expr,
) -> Result<TransactWriteItem, StoreError> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .set_condition_expression(condition)
        .set_expression_attribute_names(expr.names())
        .set_expression_attribute_values(expr.values())
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::Other(format!("cannot build Update: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn json<T: serde::Serialize>(
    value: &T,
) -> Result<aws_sdk_dynamodb::types::AttributeValue, StoreError> {
    to_doc(value)
}

/// The write set's referral credit items, each with the order it is for:
/// the order's credit (from its record) and the settled part the change
/// feed's consumer writes.
pub(crate) fn transaction_items(
    table: &str,
    shop: &ShopId,
    writes: &WriteSet,
) -> Result<Vec<(TransactWriteItem, OrderId)>, StoreError> {
    let mut items = Vec::new();
    if let Some(credit) = writes.order.as_ref().and_then(credit_written) {
        items.push((credit_item(table, shop, &credit)?, credit.order_id.clone()));
    }
    if let Some(settle) = &writes.referral_settled {
        items.push((settle_item(table, shop, settle)?, settle.order.clone()));
    }
    Ok(items)
}

/// The order's credit: set whole, what was settled kept (or started).
fn credit_item(
    table: &str,
    shop: &ShopId,
    credit: &ReferralCredit,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let initial = ReferralSettled::initial(None, credit);
    let expression = format!(
        "SET {entity} = {entity_value}, {doc} = {doc_value}, {order} = {order_value}, \
         {settled} = if_not_exists({settled}, {initial}), \
         {version} = if_not_exists({version}, {zero})",
        entity = expr.name(ENTITY_TYPE),
        entity_value = expr.value("entity", s(ENTITY)),
        doc = expr.name(DOC),
        doc_value = expr.value("doc", json(credit)?),
        order = expr.name(ORDER),
        order_value = expr.value("order", s(credit.order_id.as_str())),
        settled = expr.name(SETTLED),
        initial = expr.value("initial", json(&initial)?),
        version = expr.name(VERSION),
        zero = expr.value("zero", n_u64(0)),
    );
    transaction_update(
        table,
        credit_key(shop, &credit.referrer, &credit.order_id),
        expression,
        None,
        &expr,
    )
}

/// The settled part, under the settled version read.
fn settle_item(
    table: &str,
    shop: &ShopId,
    settle: &ReferralSettle,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let settled = expr.name(SETTLED);
    let version = expr.name(VERSION);
    let expression = format!(
        "SET {settled} = {}, {version} = {}",
        expr.value("settled", json(&settle.settled)?),
        expr.value("next", n_u64(settle.expected_version + 1)),
    );
    let condition = format!(
        "{version} = {}",
        expr.value("expected", n_u64(settle.expected_version))
    );
    transaction_update(
        table,
        credit_key(shop, &settle.referrer, &settle.order),
        expression,
        Some(condition),
        &expr,
    )
}

/// A stored credit, versioned by what was settled of it.
pub(crate) fn decode_note(item: &Item) -> Result<Versioned<ReferralNote>, StoreError> {
    let credit: ReferralCredit = get_doc(item)?;
    let settled_raw = require_s(item, SETTLED)?;
    let settled: ReferralSettled = serde_json::from_str(settled_raw)
        .map_err(|e| corrupt(item, format!("settled does not decode: {e}")))?;
    let version = get_u64(item, VERSION)?.unwrap_or(0);
    Ok(Versioned {
        value: ReferralNote { credit, settled },
        version,
    })
}

/// The referred order a credit item is for.
pub(crate) fn order_of(item: &Item) -> Result<OrderId, StoreError> {
    let raw = require_s(item, ORDER)?;
    OrderId::parse(raw).map_err(|e| corrupt(item, format!("order id: {e}")))
}
