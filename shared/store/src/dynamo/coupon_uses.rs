//! Uses of coupons with no total limit, off the coupon's count item: one
//! item per (coupon, order) beside the coupon's per-customer counters
//! (`SHOP#{shop}#COUPON#{code}`, `ORDER#{order}`), written by the order's
//! transaction instead of the coupon's `uses` (a new key of the order's own:
//! it conflicts with nobody). The change feed's consumer adds each to the
//! coupon's `uses` once (`cashback_app::coupon_uses`): `counted` says
//! whether the count has the use, and moves with the count under the
//! condition that it had not.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use cashback_app::coupon_uses::{CouponOrderUse, CouponUseCounted};
use cashback_app::store::{CouponUseChange, StoreError};
use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};

use super::attr::*;
use crate::keys;

/// The use item's entity type.
pub(crate) const ENTITY: &str = "COUPON_USE";
const TAKEN: &str = "taken";
const COUNTED: &str = "counted";
const CODE: &str = "code";
const ORDER: &str = "order_id";
const CUSTOMER_ATTR: &str = "customer";

/// Whether a change is recorded as the order's own use item (no total
/// limit, an order named) rather than on the coupon's count.
pub(crate) fn off_the_count(change: &CouponUseChange) -> bool {
    change.limit_total.is_none() && change.order.is_some()
}

pub(crate) fn use_key(shop: &ShopId, code: &Code, order: &OrderId) -> Item {
    key(
        keys::coupon_use_pk(shop, code),
        keys::coupon_order_use_sk(order),
    )
}

fn update(
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

/// The order's use item: taken (or given back). A use given back that was
/// never recorded here was counted on the coupon when taken, so a new item
/// starts counted exactly when it is not taken.
pub(crate) fn use_item(
    table: &str,
    shop: &ShopId,
    change: &CouponUseChange,
    order: &OrderId,
) -> Result<TransactWriteItem, StoreError> {
    let taken = change.delta > 0;
    let mut expr = Expr::default();
    let expression = format!(
        "SET {entity} = {entity_value}, {code} = {code_value}, {order} = {order_value}, \
         {customer} = {customer_value}, {taken} = {taken_value}, \
         {counted} = if_not_exists({counted}, {counted_if_new})",
        entity = expr.name(ENTITY_TYPE),
        entity_value = expr.value("entity", s(ENTITY)),
        code = expr.name(CODE),
        code_value = expr.value("code", s(change.code.as_str())),
        order = expr.name(ORDER),
        order_value = expr.value("order", s(order.as_str())),
        customer = expr.name(CUSTOMER_ATTR),
        customer_value = expr.value("customer", s(change.customer.as_str())),
        taken = expr.name(TAKEN),
        taken_value = expr.value(
            "taken",
            aws_sdk_dynamodb::types::AttributeValue::Bool(taken)
        ),
        counted = expr.name(COUNTED),
        counted_if_new = expr.value(
            "counted_if_new",
            aws_sdk_dynamodb::types::AttributeValue::Bool(!taken)
        ),
    );
    update(
        table,
        use_key(shop, &change.code, order),
        expression,
        None,
        &expr,
    )
}

/// A use the feed counts now: the use item marked counted, under the
/// condition that it is as read and was not.
pub(crate) fn counted_item(
    table: &str,
    shop: &ShopId,
    counted: &CouponUseCounted,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let taken_name = expr.name(TAKEN);
    let counted_name = expr.name(COUNTED);
    let now = expr.value(
        "now",
        aws_sdk_dynamodb::types::AttributeValue::Bool(counted.taken),
    );
    let expression = format!("SET {counted_name} = {now}");
    let condition = format!("{taken_name} = {now} AND {counted_name} <> {now}");
    update(
        table,
        use_key(shop, &counted.code, &counted.order),
        expression,
        Some(condition),
        &expr,
    )
}

/// The coupon's count moved by what the feed counts now (ADD on a coupon
/// that does not exist leaves a bare counter, which reads as no coupon).
pub(crate) fn count_item(
    table: &str,
    shop: &ShopId,
    code: &Code,
    delta: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let expression = format!(
        "ADD {} {}",
        expr.name(USES_ATTR),
        expr.value("delta", n_i64(delta))
    );
    update(
        table,
        key(keys::shop_pk(shop), keys::coupon_sk(code)),
        expression,
        None,
        &expr,
    )
}

const USES_ATTR: &str = "uses";

fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(corrupt(item, format!("{name} is not a boolean"))),
    }
}

pub(crate) fn decode_use(item: &Item) -> Result<CouponOrderUse, StoreError> {
    Ok(CouponOrderUse {
        taken: get_bool(item, TAKEN)?,
        counted: get_bool(item, COUNTED)?,
    })
}

/// The shop, customer, coupon and order of a use item (for the feed).
pub(crate) fn identify(item: &Item) -> Result<(ShopId, CustomerId, Code, OrderId), StoreError> {
    let pk = get_s(item, PK).ok_or_else(|| corrupt(item, "no pk"))?;
    let shop = pk
        .strip_prefix("SHOP#")
        .and_then(|rest| rest.split_once("#COUPON#"))
        .map(|(shop, _)| shop)
        .ok_or_else(|| corrupt(item, "pk is not a coupon's"))?;
    let shop = ShopId::parse(shop).map_err(|e| corrupt(item, format!("shop: {e}")))?;
    let customer = CustomerId::parse(require_s(item, CUSTOMER_ATTR)?)
        .map_err(|e| corrupt(item, format!("customer: {e}")))?;
    let code =
        Code::parse(require_s(item, CODE)?).map_err(|e| corrupt(item, format!("code: {e}")))?;
    let order = OrderId::parse(require_s(item, ORDER)?)
        .map_err(|e| corrupt(item, format!("order: {e}")))?;
    Ok((shop, customer, code, order))
}
