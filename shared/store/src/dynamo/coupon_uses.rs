//! Uses of coupons with no total limit, off the coupon's count item: one
//! item per (coupon, order) beside the coupon's per-customer counters
//! (`SHOP#{shop}#COUPON#{code}`, `ORDER#{order}`), written by the order's
//! transaction instead of the coupon's `uses` (a new key of the order's own:
//! it conflicts with nobody). The change feed's consumer adds each to the
//! coupon's `uses` once (`cashback_app::coupon_uses`): `counted` says
//! whether the count has the use, and moves with the count under the
//! condition that it had not.
//!
//! A limited coupon's count is split over sub-counters in the same
//! partition (`USES#{shard}`: `count` and `cap`, `cashback_app::coupon_shards`).
//! An order takes its use with `ADD count 1` under `count < cap` on one
//! shard, and writes its use item counted, naming the shard; a use given
//! back is moved off that shard by the feed, as above.

use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use cashback_app::coupon_shards::CouponShard;
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
const SHARD: &str = "shard";
const CAP: &str = "cap";

/// Whether a change is recorded as the order's own use item: every change
/// that names its order but a use taken on the coupon's own count (a
/// coupon limited before its count was split). A use taken on a shard is
/// recorded there too, naming the shard.
pub(crate) fn use_item_written(change: &CouponUseChange) -> bool {
    change.order.is_some()
        && (change.limit_total.is_none() || change.delta <= 0 || change.shard.is_some())
}

/// The shard that takes this change's use, if one does.
pub(crate) fn taking_shard(change: &CouponUseChange) -> Option<u32> {
    change.shard.filter(|_| change.delta > 0)
}

pub(crate) fn shard_key(shop: &ShopId, code: &Code, shard: u32) -> Item {
    key(
        keys::coupon_use_pk(shop, code),
        keys::coupon_shard_sk(shard),
    )
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
/// starts counted exactly when it is not taken. A use a shard takes in the
/// same transaction is counted there: the item says so, and names it.
pub(crate) fn use_item(
    table: &str,
    shop: &ShopId,
    change: &CouponUseChange,
    order: &OrderId,
) -> Result<TransactWriteItem, StoreError> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let taken = change.delta > 0;
    let mut expr = Expr::default();
    let mut expression = format!(
        "SET {entity} = {entity_value}, {code} = {code_value}, {order} = {order_value}, \
         {customer} = {customer_value}, {taken} = {taken_value}",
        entity = expr.name(ENTITY_TYPE),
        entity_value = expr.value("entity", s(ENTITY)),
        code = expr.name(CODE),
        code_value = expr.value("code", s(change.code.as_str())),
        order = expr.name(ORDER),
        order_value = expr.value("order", s(order.as_str())),
        customer = expr.name(CUSTOMER_ATTR),
        customer_value = expr.value("customer", s(change.customer.as_str())),
        taken = expr.name(TAKEN),
        taken_value = expr.value("taken", AttributeValue::Bool(taken)),
    );
    let counted = expr.name(COUNTED);
    match taking_shard(change) {
        Some(shard) => {
            let yes = expr.value("counted", AttributeValue::Bool(true));
            let shard_name = expr.name(SHARD);
            let shard_value = expr.value("shard", n_u64(u64::from(shard)));
            expression.push_str(&format!(
                ", {counted} = {yes}, {shard_name} = {shard_value}"
            ));
        }
        None => {
            let if_new = expr.value("counted_if_new", AttributeValue::Bool(!taken));
            expression.push_str(&format!(", {counted} = if_not_exists({counted}, {if_new})"));
        }
    }
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

/// The coupon's count (or the shard's that took the uses) moved by what
/// the feed counts now (ADD on a coupon that does not exist leaves a bare
/// counter, which reads as no coupon).
pub(crate) fn count_item(
    table: &str,
    shop: &ShopId,
    code: &Code,
    shard: Option<u32>,
    delta: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let (item_key, attribute) = match shard {
        Some(shard) => (shard_key(shop, code, shard), super::items::COUNT),
        None => (key(keys::shop_pk(shop), keys::coupon_sk(code)), USES_ATTR),
    };
    let expression = format!(
        "ADD {} {}",
        expr.name(attribute),
        expr.value("delta", n_i64(delta))
    );
    update(table, item_key, expression, None, &expr)
}

/// One use taken on a shard, under its cap (a shard with no cap, or none
/// at all, refuses).
pub(crate) fn shard_take_item(
    table: &str,
    shop: &ShopId,
    code: &Code,
    shard: u32,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let count = expr.name(super::items::COUNT);
    let cap = expr.name(CAP);
    let expression = format!("ADD {count} {}", expr.value("one", n_u64(1)));
    let condition = format!("{count} < {cap}");
    update(
        table,
        shard_key(shop, code, shard),
        expression,
        Some(condition),
        &expr,
    )
}

/// A shard's cap written for a new limit: its count as read plus its
/// share of the room (`cashback_app::coupon_shards::caps`), under the
/// condition that the shard has not taken more than that meanwhile.
pub(crate) fn cap_item(
    table: &str,
    shop: &ShopId,
    code: &Code,
    shard: u32,
    cap: u32,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let count = expr.name(super::items::COUNT);
    let cap_name = expr.name(CAP);
    let cap_value = expr.value("cap", n_u64(u64::from(cap)));
    let expression = format!(
        "SET {cap_name} = {cap_value}, {count} = if_not_exists({count}, {})",
        expr.value("zero", n_u64(0))
    );
    let condition = format!("attribute_not_exists({count}) OR {count} <= {cap_value}");
    update(
        table,
        shard_key(shop, code, shard),
        expression,
        Some(condition),
        &expr,
    )
}

/// A shard's cap removed (the coupon no longer limited); its count stays.
pub(crate) fn uncap_item(
    table: &str,
    shop: &ShopId,
    code: &Code,
    shard: u32,
) -> Result<TransactWriteItem, StoreError> {
    let mut expr = Expr::default();
    let expression = format!("REMOVE {}", expr.name(CAP));
    update(table, shard_key(shop, code, shard), expression, None, &expr)
}

/// A shard as stored.
pub(crate) fn decode_shard(item: &Item) -> Result<CouponShard, StoreError> {
    let cap = get_u64(item, CAP)?
        .map(|cap| u32::try_from(cap).map_err(|_| corrupt(item, "cap out of range")))
        .transpose()?;
    Ok(CouponShard {
        count: get_count(item, super::items::COUNT)?,
        cap,
    })
}

/// The shard number of a shard's sort key.
pub(crate) fn shard_of(item: &Item) -> Option<u32> {
    get_s(item, SK)?
        .strip_prefix(keys::COUPON_SHARD_SK_PREFIX)?
        .parse()
        .ok()
}

const USES_ATTR: &str = "uses";

fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::Bool(value)) => Ok(*value),
        _ => Err(corrupt(item, format!("{name} is not a boolean"))),
    }
}

pub(crate) fn decode_use(item: &Item) -> Result<CouponOrderUse, StoreError> {
    let shard = get_u64(item, SHARD)?
        .map(|shard| u32::try_from(shard).map_err(|_| corrupt(item, "shard out of range")))
        .transpose()?;
    Ok(CouponOrderUse {
        taken: get_bool(item, TAKEN)?,
        counted: get_bool(item, COUNTED)?,
        shard,
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
