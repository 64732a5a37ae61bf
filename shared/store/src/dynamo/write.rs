//! `Store::write`: everything one decision changed, in ONE TransactWriteItems.
//!
//! The write set becomes a list of transaction items, each with the
//! condition that makes it safe, in the order the in-memory store checks
//! them (guard, notifications, then per account: the account, its new code,
//! its ledger entries; then the order; then coupon counts). When DynamoDB
//! cancels the transaction it gives one reason per item in that same order,
//! so the first failed condition maps to the same error the in-memory store
//! returns, and a failed guard (asked for with ALL_OLD) hands back the
//! stored response without another read.
//!
//! Balances move relatively: `available = available + :delta`, where the
//! delta is the sum of the entries written with it, under the condition
//! that the version is the one read AND the balance covers what the delta
//! takes away (and what the holds reserve). So DynamoDB itself refuses a
//! negative balance, whatever the decision upstream believed.
//!
//! Limits respected here: at most 100 items per transaction (refused with
//! an error before sending, never split: a split write is not atomic), one
//! operation per item per transaction (duplicates are merged or refused),
//! 4 MB per transaction and 400 KB per item (docs are small JSON).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use cashback_app::store::*;
use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};
use cashback_core::money::Money;

use super::attr::*;
use super::errors::{cancellation_reasons, from_sdk, is_condition_failed, is_conflict_code};
use super::items::*;
use super::read::usage_sk;
use super::schema::{BONUS_INDEX, EXPIRY_INDEX, READY_INDEX, RELEASE_INDEX, REMINDER_INDEX};
use super::DynamoStore;
use crate::keys;

/// TransactWriteItems takes at most 100 items.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// How long a "sent" marker is kept. The port gives no expiry for them; two
/// years outlives every reminder series and release a program can set up.
const NOTIFICATION_RETENTION_DAYS: i64 = 730;

/// How long a marketing event's outbox item is kept: the change feed
/// delivers it within seconds and retries it for the stream's 24 hours;
/// two days outlive that, and the customer's address it holds goes soon
/// after (a customer's redaction leaves the items to their TTL).
const MARKETING_EVENT_RETENTION_DAYS: i64 = 2;

/// What each transaction item is, to read a cancellation reason by index.
#[derive(Debug, Clone)]
enum Role {
    Guard,
    Notification,
    Account {
        customer: CustomerId,
        expected: u64,
    },
    CodeClaim,
    LedgerEntry {
        entry_id: String,
    },
    Order {
        order: OrderId,
        expected: u64,
    },
    CouponCount {
        code: Code,
    },
    /// A refund's record, created once.
    Refund,
    ReferralCredit {
        order: OrderId,
    },
    CouponUseCounted {
        code: Code,
    },
    /// Unconditional (email owner): cannot fail a condition.
    Plain,
}

#[derive(Default)]
struct Plan {
    items: Vec<TransactWriteItem>,
    roles: Vec<Role>,
}

impl Plan {
    fn push(&mut self, item: TransactWriteItem, role: Role) {
        self.items.push(item);
        self.roles.push(role);
    }
}

fn build_error(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("cannot build {what}: {error}"))
}

/// A conditional Put that returns the old item if its condition fails.
fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    expr: &Expr,
) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_string))
        .set_expression_attribute_names(condition.and(expr.names()))
        .set_expression_attribute_values(condition.and(expr.values()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| build_error("Put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
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
        .map_err(|e| build_error("Update", e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

fn create_only(pk_only: &mut Expr) -> String {
    format!("attribute_not_exists({})", pk_only.name(PK))
}

/// The sum of one delta over a write's entries, in the account's currency.
fn delta(
    write: &AccountWrite,
    pick: impl Fn(&cashback_core::ledger::LedgerEntry) -> Money,
) -> Result<Decimal, StoreError> {
    let deltas: Vec<Money> = write.entries.iter().map(pick).collect();
    Money::sum(write.account.currency, deltas.iter())
        .map(|m| m.amount())
        .map_err(|e| {
            StoreError::Other(format!("ledger entries of {}: {e}", write.account.customer))
        })
}

/// The checks the in-memory store makes on the new account itself. When one
/// fails, the account item gets a condition that cannot hold, so the failure
/// is reported by DynamoDB in its place among the others (a duplicate guard
/// still wins) instead of being decided here first.
fn refused_locally(account: &cashback_core::ledger::Account) -> bool {
    account.available.is_negative()
        || account.pending.is_negative()
        || account.debt.is_negative()
        || account.held().amount() > account.available.amount()
}

fn account_items(
    table: &str,
    shop: &ShopId,
    write: &AccountWrite,
    written_at: Option<DateTime<Utc>>,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let account = &write.account;
    let customer = &account.customer;
    let pk = keys::account_key(shop, customer);
    let due = write.due_filed_at(written_at);
    let (reminder_due, expiry_due) = (due.reminder, due.expiry);
    let dues = [
        (REMINDER_INDEX, reminder_due),
        (EXPIRY_INDEX, expiry_due),
        (BONUS_INDEX, due.bonus),
    ];
    let held = account.held().amount();
    let refused = refused_locally(account);
    let role = Role::Account {
        customer: customer.clone(),
        expected: write.expected_version,
    };

    if write.expected_version == 0 {
        let item = account_item(shop, write)?;
        let mut expr = Expr::default();
        let mut condition = create_only(&mut expr);
        if refused {
            // Cannot hold on an item that does not exist yet: see `refused_locally`.
            condition.push_str(&format!(" AND attribute_exists({})", expr.name(PK)));
        }
        plan.push(put(table, item, Some(&condition), &expr)?, role);
    } else {
        let da = delta(write, |e| e.available_delta)?;
        let dp = delta(write, |e| e.pending_delta)?;
        let dd = delta(write, |e| e.debt_delta)?;
        // What the stored balance must cover: what the delta takes, and for
        // `available` also what the holds reserve (held <= available after).
        let need_a = Decimal::ZERO.max(-da).max(held - da);
        let need_p = Decimal::ZERO.max(-dp);
        let need_d = Decimal::ZERO.max(-dd);

        let mut expr = Expr::default();
        let mut set = vec![
            format!(
                "{} = {}",
                expr.name(DOC),
                expr.value("doc", account_doc(account)?)
            ),
            format!(
                "{} = {}",
                expr.name(VERSION),
                expr.value("version", n_u64(write.expected_version + 1))
            ),
            format!(
                "{} = {}",
                expr.name(HELD),
                expr.value("held", n_decimal(held))
            ),
            format!(
                "{} = {}",
                expr.name(LIFETIME_ISSUED),
                expr.value("li", n_decimal(account.lifetime_issued.amount()))
            ),
            format!(
                "{} = {}",
                expr.name(LIFETIME_USED),
                expr.value("lu", n_decimal(account.lifetime_used.amount()))
            ),
            format!(
                "{} = {}",
                expr.name(ENTITY_TYPE),
                expr.value("entity", s("ACCOUNT"))
            ),
        ];
        for (name, label, value) in [(AVAILABLE, "da", da), (PENDING, "dp", dp), (DEBT, "dd", dd)] {
            let placeholder = expr.name(name);
            let value = expr.value(label, n_decimal(value));
            set.push(format!("{placeholder} = {placeholder} + {value}"));
        }
        let mut remove = Vec::new();
        // The lots, compact beside the doc (see `items::encode_lots`).
        if account.lots.is_empty() {
            remove.push(expr.name(LOTS));
        } else {
            let placeholder = expr.name(LOTS);
            let value = expr.value("lots", s(encode_lots(&account.lots)));
            set.push(format!("{placeholder} = {value}"));
        }
        for (index, due) in dues {
            match due {
                Some(at) => {
                    for (name, value) in due_attributes(index, &pk, at) {
                        let placeholder = expr.name(name);
                        let value = expr.value(name, s(value));
                        set.push(format!("{placeholder} = {value}"));
                    }
                }
                None => {
                    remove.push(expr.name(index.pk));
                    remove.push(expr.name(index.sk));
                }
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut condition = format!(
            "{} = {} AND {} >= {} AND {} >= {} AND {} >= {}",
            expr.name(VERSION),
            expr.value("expected", n_u64(write.expected_version)),
            expr.name(AVAILABLE),
            expr.value("need_a", n_decimal(need_a)),
            expr.name(PENDING),
            expr.value("need_p", n_decimal(need_p)),
            expr.name(DEBT),
            expr.value("need_d", n_decimal(need_d)),
        );
        if refused {
            // Cannot hold on an item that exists: see `refused_locally`.
            condition.push_str(&format!(" AND attribute_not_exists({})", expr.name(PK)));
        }
        plan.push(
            update(
                table,
                key(&pk, keys::ACCOUNT_SK),
                expression,
                Some(condition),
                &expr,
            )?,
            role,
        );
    }

    if let Some(change) = &write.code_change {
        let mut item = key(keys::code_key(shop, &change.new_code), keys::CODE_SK);
        item.insert(ENTITY_TYPE.into(), s("CODE"));
        item.insert(CUSTOMER.into(), s(customer.as_str()));
        let mut expr = Expr::default();
        let condition = format!(
            "attribute_not_exists({}) OR {} = {}",
            expr.name(PK),
            expr.name(CUSTOMER),
            expr.value("me", s(customer.as_str()))
        );
        plan.push(put(table, item, Some(&condition), &expr)?, Role::CodeClaim);
        // The replaced code stays in the index, still its owner's: an order
        // placed with it is charged to them; checkout refuses it because the
        // account names another code.
        if let Some(referral) = &change.referral_code {
            let mut item = key(keys::referral_key(shop, referral), keys::REFERRAL_SK);
            item.insert(ENTITY_TYPE.into(), s("REFERRAL_CODE"));
            item.insert(CUSTOMER.into(), s(customer.as_str()));
            let mut expr = Expr::default();
            let condition = format!(
                "attribute_not_exists({}) OR {} = {}",
                expr.name(PK),
                expr.name(CUSTOMER),
                expr.value("me", s(customer.as_str()))
            );
            plan.push(put(table, item, Some(&condition), &expr)?, Role::CodeClaim);
        }
    }

    // Entries are immutable: a second write of the same entry is a conflict.
    // Within one write the last of two equal sort keys wins, as in memory.
    let mut entries = BTreeMap::new();
    for entry in &write.entries {
        entries.insert(keys::ledger_sort_key(entry), entry);
    }
    for entry in entries.values() {
        let mut expr = Expr::default();
        let condition = create_only(&mut expr);
        plan.push(
            put(
                table,
                ledger_item(shop, customer, entry)?,
                Some(&condition),
                &expr,
            )?,
            Role::LedgerEntry {
                entry_id: entry.entry_id.clone(),
            },
        );
    }
    Ok(())
}

/// Whether a notification's once-only key is carried on the order item
/// rather than an item of its own: the keys of an order's emails name the
/// order (`earned:{customer}:{order}`, `ready:...`, `clawback:...:{order}:{n}`)
/// and are only ever recorded with a write of that order, so its item is
/// where a later write of the same key finds them.
fn notice_on_order(key: &str, order: &OrderId) -> bool {
    key.split(':').nth(2) == Some(order.as_str())
}

/// A short, stable name for a once-only key on the order item: 16 hex
/// digits of its SHA-256 (a string set of these stays small).
fn marker(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The order's state item (an Update: it keeps the notification markers
/// already on it) and, the first time the record has lines, the lines
/// item. The state's condition is the event's guard: the version read, and
/// none of the order's email keys recorded yet.
fn order_items(
    table: &str,
    shop: &ShopId,
    write: &OrderWrite,
    notified: &[&String],
    written_at: Option<DateTime<Utc>>,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let record = &write.record;
    let (state, lines) = order_item_set(shop, write, written_at)?;
    let mut refunds = refund_items(shop, record, write.refunds_stored)?;
    // A refund's clawback email is marked on the refund's own record (new,
    // and created once), not on the state: the state's markers stay a
    // handful (earned, ready, a cancel's clawback) whatever the refunds.
    let (on_refund, notified): (Vec<&String>, Vec<&String>) = notified
        .iter()
        .copied()
        .partition(|key| !refunds.is_empty() && key.starts_with("clawback:"));
    if let Some(last) = refunds.last_mut() {
        if !on_refund.is_empty() {
            let markers = on_refund.iter().map(|key| marker(key)).collect();
            last.insert(NOTIFIED.into(), AttributeValue::Ss(markers));
        }
    }
    let mut expr = Expr::default();
    let mut set = Vec::new();
    let mut attributes: Vec<(&String, &AttributeValue)> = state
        .iter()
        .filter(|(name, _)| name.as_str() != PK && name.as_str() != SK)
        .collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    for (n, (name, value)) in attributes.into_iter().enumerate() {
        let placeholder = expr.name(name);
        let value = expr.value(&format!("a{n}"), value.clone());
        set.push(format!("{placeholder} = {value}"));
    }
    // What the item had and the write leaves out goes: refunds kept on it
    // before they had items, or nothing pending (out of the release index).
    let remove: Vec<String> = [REFUNDS, REFUND_COUNT, RELEASE_INDEX.pk, RELEASE_INDEX.sk]
        .into_iter()
        .filter(|name| !state.contains_key(*name))
        .map(|name| expr.name(name))
        .collect();
    let mut expression = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    let mut condition = if write.expected_version == 0 {
        create_only(&mut expr)
    } else {
        format!(
            "{} = {}",
            expr.name(VERSION),
            expr.value("expected", n_u64(write.expected_version))
        )
    };
    let markers: Vec<String> = notified.iter().map(|key| marker(key)).collect();
    if !markers.is_empty() {
        let attribute = expr.name(NOTIFIED);
        for (n, m) in markers.iter().enumerate() {
            let value = expr.value(&format!("m{n}"), s(m.clone()));
            condition.push_str(&format!(" AND NOT contains({attribute}, {value})"));
        }
        let all = expr.value("markers", AttributeValue::Ss(markers));
        expression.push_str(&format!(" ADD {attribute} {all}"));
    }
    plan.push(
        update(
            table,
            key(keys::order_key(shop, &record.order_id), keys::ORDER_SK),
            expression,
            Some(condition),
            &expr,
        )?,
        Role::Order {
            order: record.order_id.clone(),
            expected: write.expected_version,
        },
    );
    if let Some(item) = lines {
        plan.push(put(table, item, None, &Expr::default())?, Role::Plain);
    }
    // Each new refund's record, written once: its key is the refund's, so
    // a refund recorded before refuses the write (a duplicate).
    for item in refunds {
        let mut expr = Expr::default();
        let condition = create_only(&mut expr);
        plan.push(put(table, item, Some(&condition), &expr)?, Role::Refund);
    }
    Ok(())
}

/// The order's state item as a write leaves it (without the email markers
/// it keeps), and its lines item when this write is the one to put it:
/// the first time the record has lines. The lines are the order's as first
/// seen, so no later write touches them.
pub(crate) fn order_item_set(
    shop: &ShopId,
    write: &OrderWrite,
    written_at: Option<DateTime<Utc>>,
) -> Result<(Item, Option<Item>), StoreError> {
    let record = &write.record;
    let pk = keys::order_key(shop, &record.order_id);
    let mut item = key(&pk, keys::ORDER_SK);
    item.insert(ENTITY_TYPE.into(), s("ORDER"));
    item.insert(SHOP.into(), s(shop.as_str()));
    item.insert(ORDER_ID.into(), s(record.order_id.as_str()));
    if let Some(customer) = &record.customer {
        item.insert(CUSTOMER.into(), s(customer.as_str()));
    }
    item.insert(VERSION.into(), n_u64(write.expected_version + 1));
    item.insert(LINE_COUNT.into(), n_u64(record.lines.len() as u64));
    // The refunds are items of their own (`refund_items`): the state only
    // counts them, so it stays the same size whatever the refunds.
    if !record.refunds.is_empty() {
        item.insert(REFUND_COUNT.into(), n_u64(record.refunds.len() as u64));
    }
    // Index attributes the write leaves out are removed (order_items):
    // nothing pending takes the order out of the release index. Released
    // with its ready email unsent, the order takes the same index
    // attributes under the ready kind (never both at once).
    let filed = match write.release_filed_at(written_at) {
        Some(at) => Some((RELEASE_INDEX, at)),
        None => write.ready_filed_at(written_at).map(|at| (READY_INDEX, at)),
    };
    if let Some((index, at)) = filed {
        for (name, value) in due_attributes(index, &pk, at) {
            item.insert(name.into(), s(value));
        }
    }
    item.insert(DOC.into(), order_state_doc(record)?);
    let lines = (!write.lines_stored && !record.lines.is_empty())
        .then(|| -> Result<Item, StoreError> {
            let mut lines = key(&pk, keys::ORDER_LINES_SK);
            lines.insert(ENTITY_TYPE.into(), s("ORDER_LINES"));
            lines.insert(DOC.into(), encode_lines(record)?);
            Ok(lines)
        })
        .transpose()?;
    Ok((item, lines))
}

/// One counter item's change: the net delta of every change to it in this
/// write, and the strictest limit any of its +1 changes carries. Each limit
/// is checked against the count before the write, as in memory.
#[derive(Default)]
struct CountChange {
    delta: i64,
    limit: Option<u32>,
}

impl CountChange {
    fn add(&mut self, delta: i32, limit: Option<u32>) {
        self.delta += i64::from(delta);
        if delta > 0 {
            if let Some(limit) = limit {
                self.limit = Some(self.limit.map_or(limit, |l| l.min(limit)));
            }
        }
    }
}

/// Use counts: the coupon's `uses` and the per-customer (and per-email)
/// counters, each changed with ADD under its limit. ADD on a coupon that
/// does not exist leaves a bare counter item, which reads as no coupon,
/// exactly as the in-memory store ignores such a change.
fn coupon_items(
    table: &str,
    shop: &ShopId,
    changes: &[CouponUseChange],
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let mut coupons: BTreeMap<Code, CountChange> = BTreeMap::new();
    let mut counters: BTreeMap<(Code, String), CountChange> = BTreeMap::new();
    for change in changes {
        // A shard takes the use under its own cap (the coupon's total limit
        // is what the caps sum to).
        if let Some(shard) = super::coupon_uses::taking_shard(change) {
            plan.push(
                super::coupon_uses::shard_take_item(table, shop, &change.code, shard)?,
                Role::CouponCount {
                    code: change.code.clone(),
                },
            );
        }
        match change
            .order
            .as_ref()
            .filter(|_| super::coupon_uses::use_item_written(change))
        {
            // The order's own use item: counted by the feed, or by the
            // shard that took it.
            Some(order) => plan.push(
                super::coupon_uses::use_item(table, shop, change, order)?,
                Role::Plain,
            ),
            None if super::coupon_uses::taking_shard(change).is_some() => {}
            None => coupons
                .entry(change.code.clone())
                .or_default()
                .add(change.delta, change.limit_total),
        }
        let mut usages = vec![UsageKey::Customer(change.customer.clone())];
        usages.extend(change.email.clone().map(UsageKey::Email));
        for usage in usages {
            counters
                .entry((change.code.clone(), usage_sk(&usage)))
                .or_default()
                .add(change.delta, change.limit_per_customer);
        }
    }
    let keyed = coupons
        .into_iter()
        .map(|(code, change)| {
            let item_key = key(keys::shop_pk(shop), keys::coupon_sk(&code));
            (code, item_key, USES, change)
        })
        .chain(counters.into_iter().map(|((code, sk), change)| {
            let item_key = key(keys::coupon_use_pk(shop, &code), sk);
            (code, item_key, COUNT, change)
        }));
    for (code, item_key, attribute, change) in keyed {
        if change.delta == 0 && change.limit.is_none() {
            continue;
        }
        let mut expr = Expr::default();
        let counted = expr.name(attribute);
        let expression = format!("ADD {counted} {}", expr.value("delta", n_i64(change.delta)));
        let condition = change.limit.map(|limit| {
            let limit_value = expr.value("limit", n_u64(u64::from(limit)));
            if limit == 0 {
                // Nothing is below 0, counted or not: refused, as in memory.
                format!("{counted} < {limit_value}")
            } else {
                format!("attribute_not_exists({counted}) OR {counted} < {limit_value}")
            }
        });
        plan.push(
            update(table, item_key, expression, condition, &expr)?,
            Role::CouponCount { code },
        );
    }
    Ok(())
}

/// The account index item of each account the write creates (so exports
/// page through a shop's accounts without a scan). One small item per
/// account, never shared with another customer's write. The report
/// aggregates are not written here: the report aggregator sums them off the
/// write path, from the table's stream (docs/reports.md).
fn account_index_items(
    table: &str,
    shop: &ShopId,
    writes: &WriteSet,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    for write in writes.accounts.iter().filter(|w| w.expected_version == 0) {
        let customer = &write.account.customer;
        let mut item = key(
            keys::account_index_pk(shop),
            keys::account_index_sk(customer),
        );
        item.insert(ENTITY_TYPE.into(), s("ACCOUNT_INDEX"));
        item.insert(CUSTOMER.into(), s(customer.as_str()));
        plan.push(put(table, item, None, &Expr::default())?, Role::Plain);
    }
    Ok(())
}

fn plan(
    table: &str,
    shop: &ShopId,
    writes: &WriteSet,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    if let Some(guard) = &writes.guard {
        let mut item = key(keys::guard_key(shop, &guard.key), keys::GUARD_SK);
        item.insert(ENTITY_TYPE.into(), s("GUARD"));
        item.insert(TTL.into(), n_i64(guard.expires_at.timestamp()));
        if let Some(response) = &guard.response {
            item.insert(RESPONSE.into(), s(response.clone()));
        }
        let mut expr = Expr::default();
        let condition = create_only(&mut expr);
        plan.push(put(table, item, Some(&condition), &expr)?, Role::Guard);
    }
    let expires = now + Duration::days(NOTIFICATION_RETENTION_DAYS);
    let mut notifications: Vec<&String> = writes.notifications.iter().collect();
    notifications.sort();
    notifications.dedup();
    // The order's own emails are marked on the order item (see
    // `notice_on_order`); the others get a marker item each.
    let (on_order, notifications): (Vec<&String>, Vec<&String>) =
        notifications.into_iter().partition(|key| {
            writes
                .order
                .as_ref()
                .is_some_and(|o| notice_on_order(key, &o.record.order_id))
        });
    for notification in notifications {
        let mut item = key(
            keys::notification_key(shop, notification),
            keys::NOTIFICATION_SK,
        );
        item.insert(ENTITY_TYPE.into(), s("NOTIFICATION"));
        item.insert(TTL.into(), n_i64(expires.timestamp()));
        let mut expr = Expr::default();
        let condition = create_only(&mut expr);
        plan.push(
            put(table, item, Some(&condition), &expr)?,
            Role::Notification,
        );
    }
    // The notices' events for the shop's marketing tool: one outbox item
    // each in the customer's partition, read from the change feed by the
    // platform-sync function. Unconditional: the notice's key above makes
    // the write once-only.
    for event in &writes.marketing_events {
        let mut item = key(
            keys::account_key(shop, &event.customer),
            keys::marketing_event_sk(&event.key),
        );
        item.insert(ENTITY_TYPE.into(), s(MARKETING_EVENT_ENTITY));
        let doc = serde_json::to_string(event)
            .map_err(|e| StoreError::Other(format!("marketing event {}: {e}", event.key)))?;
        item.insert(DOC.into(), s(doc));
        let expires = now + Duration::days(MARKETING_EVENT_RETENTION_DAYS);
        item.insert(TTL.into(), n_i64(expires.timestamp()));
        plan.push(put(table, item, None, &Expr::default())?, Role::Plain);
    }
    let mut email_owners = BTreeMap::new();
    for (n, write) in writes.accounts.iter().enumerate() {
        if writes.accounts[..n]
            .iter()
            .any(|w| w.account.customer == write.account.customer)
        {
            return Err(StoreError::Other(format!(
                "two writes to account {} in one write set",
                write.account.customer
            )));
        }
        account_items(table, shop, write, writes.now, &mut plan)?;
        if let Some(email) = &write.account.email {
            // The latest account to take an address owns it (last one wins);
            // an account written with the email it was read with leaves its
            // owner item alone.
            if !writes
                .accounts_read
                .email_unchanged(&write.account, write.expected_version)
            {
                email_owners.insert(keys::email_key(shop, email), write.account.customer.clone());
            }
        }
    }
    for (pk, customer) in email_owners {
        let mut item = key(pk, keys::EMAIL_SK);
        item.insert(ENTITY_TYPE.into(), s("EMAIL"));
        item.insert(CUSTOMER.into(), s(customer.as_str()));
        plan.push(put(table, item, None, &Expr::default())?, Role::Plain);
    }
    if let Some(order) = &writes.order {
        order_items(table, shop, order, &on_order, writes.now, &mut plan)?;
    }
    coupon_items(table, shop, &writes.coupon_uses, &mut plan)?;
    account_index_items(table, shop, writes, &mut plan)?;
    for (item, order) in super::referrals::transaction_items(table, shop, writes)? {
        plan.push(item, Role::ReferralCredit { order });
    }
    let mut counted: BTreeMap<(Code, Option<u32>), i64> = BTreeMap::new();
    for use_counted in &writes.coupon_uses_counted {
        plan.push(
            super::coupon_uses::counted_item(table, shop, use_counted)?,
            Role::CouponUseCounted {
                code: use_counted.code.clone(),
            },
        );
        *counted
            .entry((use_counted.code.clone(), use_counted.shard))
            .or_default() += if use_counted.taken { 1 } else { -1 };
    }
    for ((code, shard), delta) in counted.into_iter().filter(|(_, delta)| *delta != 0) {
        plan.push(
            super::coupon_uses::count_item(table, shop, &code, shard, delta)?,
            Role::Plain,
        );
    }
    Ok(plan)
}

/// What a cancelled transaction means, in the in-memory store's order of
/// precedence: a duplicate first, then the first failed condition.
enum Cancelled {
    Outcome(WriteOutcome),
    Error(StoreError),
    /// The guard's condition failed but its old item did not come back.
    GuardWithoutItem,
}

fn interpret(reasons: &[CancellationReason], roles: &[Role]) -> Cancelled {
    let failed = |want: fn(&Role) -> bool| {
        reasons
            .iter()
            .zip(roles)
            .find(|(reason, role)| want(role) && is_condition_failed(reason))
    };
    if let Some((reason, _)) = failed(|r| matches!(r, Role::Guard)) {
        return match reason.item() {
            Some(old) => Cancelled::Outcome(WriteOutcome::Duplicate {
                response: get_s(old, RESPONSE).map(str::to_string),
            }),
            None => Cancelled::GuardWithoutItem,
        };
    }
    if failed(|r| matches!(r, Role::Notification)).is_some() {
        return Cancelled::Outcome(WriteOutcome::Duplicate { response: None });
    }
    // The order item at the version expected refused only for an email
    // marker it already carries: a duplicate, as a marker item's would be.
    let order_duplicate = reasons.iter().zip(roles).any(|(reason, role)| match role {
        Role::Order { expected, .. } if is_condition_failed(reason) => reason
            .item()
            .is_some_and(|old| *expected > 0 && version_of(old).ok() == Some(*expected)),
        _ => false,
    });
    if order_duplicate {
        return Cancelled::Outcome(WriteOutcome::Duplicate { response: None });
    }
    // A refund already recorded, the order otherwise as read: a duplicate.
    if let Some((_, Role::Refund)) = failed(|_| true) {
        return Cancelled::Outcome(WriteOutcome::Duplicate { response: None });
    }
    if let Some((reason, role)) = failed(|_| true) {
        let error = match role {
            Role::Account { customer, expected } => {
                let stored = reason.item().map(|old| version_of(old).unwrap_or(0));
                match stored {
                    // The version matched, so the balances refused the change.
                    Some(version) if *expected > 0 && version == *expected => {
                        StoreError::BalanceCondition(customer.clone())
                    }
                    // A new account refused while still absent: its own balances.
                    None if *expected == 0 => StoreError::BalanceCondition(customer.clone()),
                    _ => StoreError::Conflict(format!("account {customer}")),
                }
            }
            Role::CodeClaim => StoreError::CodeTaken,
            Role::LedgerEntry { entry_id } => {
                StoreError::Conflict(format!("ledger entry {entry_id}"))
            }
            Role::Order { order, .. } => StoreError::Conflict(format!("order {order}")),
            Role::CouponCount { code } => StoreError::CouponLimit(code.clone()),
            Role::ReferralCredit { order } => {
                StoreError::Conflict(format!("referral credit of order {order}"))
            }
            Role::CouponUseCounted { code } => {
                StoreError::Conflict(format!("a use of coupon {code} counted meanwhile"))
            }
            Role::Guard | Role::Notification | Role::Plain | Role::Refund => {
                StoreError::Other("an unconditional item failed its condition".into())
            }
        };
        return Cancelled::Error(error);
    }
    let codes: Vec<&str> = reasons
        .iter()
        .filter_map(|r| r.code())
        .filter(|c| *c != "None")
        .collect();
    let summary = reasons
        .iter()
        .filter(|r| r.code().is_some_and(|c| c != "None"))
        .map(|r| format!("{}: {}", r.code().unwrap_or("?"), r.message().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ");
    if codes.iter().any(|c| is_conflict_code(c)) {
        Cancelled::Error(StoreError::Conflict(format!(
            "transaction conflict ({summary})"
        )))
    } else if codes.iter().any(|c| super::errors::is_transient_code(c)) {
        Cancelled::Error(StoreError::Unavailable(
            format!("transaction throttled ({summary})").into(),
        ))
    } else {
        Cancelled::Error(StoreError::Other(format!(
            "transaction cancelled ({summary})"
        )))
    }
}

impl DynamoStore {
    pub(crate) async fn transact(
        &self,
        shop: &ShopId,
        writes: WriteSet,
    ) -> Result<WriteOutcome, StoreError> {
        let plan = plan(&self.table, shop, &writes, Utc::now())?;
        if plan.items.is_empty() {
            return Ok(WriteOutcome::Committed);
        }
        if plan.items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Other(format!(
                "a write of {} items is over DynamoDB's limit of {MAX_TRANSACTION_ITEMS} per transaction",
                plan.items.len()
            )));
        }
        let items = plan.items.len();
        // The SDK fills ClientRequestToken itself and keeps it across its own
        // retries, so a retry of a transaction that did commit succeeds
        // instead of tripping over its own guard.
        match self.transact_items(plan.items).await {
            Ok(()) => {
                tracing::debug!(items, "transaction committed");
                Ok(WriteOutcome::Committed)
            }
            Err(error) => {
                let Some(reasons) = cancellation_reasons(&error) else {
                    return Err(from_sdk("TransactWriteItems", error));
                };
                match interpret(&reasons, &plan.roles) {
                    Cancelled::Outcome(outcome) => {
                        tracing::info!(items, "duplicate write refused by its guard");
                        Ok(outcome)
                    }
                    Cancelled::Error(error) => {
                        tracing::info!(items, %error, "transaction cancelled");
                        Err(error)
                    }
                    Cancelled::GuardWithoutItem => {
                        // Only an emulator that ignores ALL_OLD gets here.
                        let guard = writes
                            .guard
                            .as_ref()
                            .map(|g| g.key.clone())
                            .unwrap_or_default();
                        let response = self.guard_response(shop, &guard).await?;
                        Ok(WriteOutcome::Duplicate { response })
                    }
                }
            }
        }
    }

    async fn guard_response(
        &self,
        shop: &ShopId,
        guard: &str,
    ) -> Result<Option<String>, StoreError> {
        let item = self
            .get(key(keys::guard_key(shop, guard), keys::GUARD_SK))
            .await?;
        Ok(item.and_then(|i| get_s(&i, RESPONSE).map(str::to_string)))
    }
}

/// The keys of the items the transaction for `writes` would touch, as this
/// adapter lays them out: what a model of DynamoDB's item-level conflicts
/// (two transactions on one item at once: the later one is cancelled)
/// needs to know of a write, without sending it.
pub fn transaction_keys(
    shop: &ShopId,
    writes: &WriteSet,
) -> Result<Vec<(String, String)>, StoreError> {
    let plan = plan("model", shop, writes, Utc::now())?;
    let key_of = |item: &Item| {
        let text = |name: &str| match item.get(name) {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(value)) => value.clone(),
            _ => String::new(),
        };
        (text(PK), text(SK))
    };
    Ok(plan
        .items
        .iter()
        .filter_map(|item| {
            item.put()
                .map(|put| key_of(put.item()))
                .or_else(|| item.update().map(|update| key_of(update.key())))
                .or_else(|| item.condition_check().map(|check| key_of(check.key())))
                .or_else(|| item.delete().map(|delete| key_of(delete.key())))
        })
        .collect())
}
