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

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    CancellationReason, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use cashback_app::store::*;
use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};
use cashback_core::money::Money;

use super::aggregates::{counter_attributes, day_attributes};
use super::attr::*;
use super::errors::{cancellation_reasons, from_sdk, is_condition_failed, is_conflict_code};
use super::items::*;
use super::read::usage_sk;
use super::schema::{BONUS_INDEX, EXPIRY_INDEX, RELEASE_INDEX, REMINDER_INDEX};
use super::DynamoStore;
use crate::keys;

/// TransactWriteItems takes at most 100 items.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// How long a "sent" marker is kept. The port gives no expiry for them; two
/// years outlives every reminder series and release a program can set up.
const NOTIFICATION_RETENTION_DAYS: i64 = 730;

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
    },
    CouponCount {
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
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let account = &write.account;
    let customer = &account.customer;
    let pk = keys::account_key(shop, customer);
    let (reminder_due, expiry_due) = (write.reminder_due_at, write.expiry_due_at());
    let dues = [
        (REMINDER_INDEX, reminder_due),
        (EXPIRY_INDEX, expiry_due),
        (BONUS_INDEX, write.bonus_due_at()),
    ];
    let held = account.held().amount();
    let refused = refused_locally(account);
    let role = Role::Account {
        customer: customer.clone(),
        expected: write.expected_version,
    };

    if write.expected_version == 0 {
        let mut item = key(&pk, keys::ACCOUNT_SK);
        item.insert(ENTITY_TYPE.into(), s("ACCOUNT"));
        item.insert(SHOP.into(), s(shop.as_str()));
        item.insert(CUSTOMER.into(), s(customer.as_str()));
        item.insert(CURRENCY.into(), s(account.currency.code()));
        item.insert(VERSION.into(), n_u64(1));
        for (name, value) in [
            (AVAILABLE, account.available.amount()),
            (PENDING, account.pending.amount()),
            (DEBT, account.debt.amount()),
            (HELD, held),
            (LIFETIME_ISSUED, account.lifetime_issued.amount()),
            (LIFETIME_USED, account.lifetime_used.amount()),
        ] {
            item.insert(name.into(), n_decimal(value));
        }
        for (index, due) in dues {
            if let Some(at) = due {
                for (name, value) in due_attributes(index, &pk, at) {
                    item.insert(name.into(), s(value));
                }
            }
        }
        item.insert(DOC.into(), to_doc(account)?);
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
                expr.value("doc", to_doc(account)?)
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

fn order_item(
    table: &str,
    shop: &ShopId,
    write: &OrderWrite,
    plan: &mut Plan,
) -> Result<(), StoreError> {
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
    // A Put replaces the whole item: leaving the index attributes out when
    // nothing is pending takes the order out of the release index.
    if let Some(at) = write.release_due_at() {
        for (name, value) in due_attributes(RELEASE_INDEX, &pk, at) {
            item.insert(name.into(), s(value));
        }
    }
    item.insert(DOC.into(), to_doc(record)?);
    let mut expr = Expr::default();
    let condition = if write.expected_version == 0 {
        create_only(&mut expr)
    } else {
        format!(
            "{} = {}",
            expr.name(VERSION),
            expr.value("expected", n_u64(write.expected_version))
        )
    };
    plan.push(
        put(table, item, Some(&condition), &expr)?,
        Role::Order {
            order: record.order_id.clone(),
        },
    );
    Ok(())
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
        coupons
            .entry(change.code.clone())
            .or_default()
            .add(change.delta, change.limit_total);
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

/// The running aggregates a write adds to (docs/reports.md): per shard, one
/// `ADD` per day item its entries fall on, and one to the counters item
/// when the write changes a counter. Unconditional: they ride on the
/// transaction's other conditions, so a refused or duplicate write adds
/// nothing. An account's creation also puts its account index item.
fn aggregate_items(
    table: &str,
    shop: &ShopId,
    writes: &WriteSet,
    before: &HashMap<CustomerId, AccountStats>,
    plan: &mut Plan,
) -> Result<(), StoreError> {
    let changes = aggregate_changes(writes, |write| before.get(&write.account.customer).copied());
    for (shard, change) in changes {
        let pk = keys::aggregate_pk(shop, shard);
        let mut targets: Vec<(String, Vec<(String, AttributeValueOf)>)> = Vec::new();
        for (day, figures) in &change.days {
            let fields = day_attributes(figures)
                .into_iter()
                .map(|(name, value)| (name, AttributeValueOf::Decimal(value)))
                .collect();
            targets.push((keys::aggregate_day_sk(*day), fields));
        }
        let counts: Vec<(String, AttributeValueOf)> = counter_attributes(&change.counts)
            .into_iter()
            .map(|(name, value)| (name, AttributeValueOf::Int(value)))
            .collect();
        if !counts.is_empty() {
            targets.push((keys::COUNTS_SK.to_string(), counts));
        }
        for (sk, fields) in targets {
            let mut expr = Expr::default();
            let mut adds = Vec::new();
            for (n, (name, value)) in fields.into_iter().enumerate() {
                let value = match value {
                    AttributeValueOf::Decimal(d) => n_decimal(d),
                    AttributeValueOf::Int(i) => n_i64(i),
                };
                adds.push(format!(
                    "{} {}",
                    expr.name(&name),
                    expr.value(&format!("v{n}"), value)
                ));
            }
            let expression = format!(
                "SET {} = {}, {} = {} ADD {}",
                expr.name(ENTITY_TYPE),
                expr.value("entity", s("AGGREGATE")),
                expr.name(SHOP),
                expr.value("shop", s(shop.as_str())),
                adds.join(", ")
            );
            plan.push(
                update(table, key(&pk, sk), expression, None, &expr)?,
                Role::Plain,
            );
        }
    }
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

/// A number to ADD: money sums are decimals, counters whole numbers.
enum AttributeValueOf {
    Decimal(Decimal),
    Int(i64),
}

fn plan(
    table: &str,
    shop: &ShopId,
    writes: &WriteSet,
    before: &HashMap<CustomerId, AccountStats>,
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
        account_items(table, shop, write, &mut plan)?;
        if let Some(email) = &write.account.email {
            // The latest account to use an address owns it (last one wins).
            email_owners.insert(keys::email_key(shop, email), write.account.customer.clone());
        }
    }
    for (pk, customer) in email_owners {
        let mut item = key(pk, keys::EMAIL_SK);
        item.insert(ENTITY_TYPE.into(), s("EMAIL"));
        item.insert(CUSTOMER.into(), s(customer.as_str()));
        plan.push(put(table, item, None, &Expr::default())?, Role::Plain);
    }
    if let Some(order) = &writes.order {
        order_item(table, shop, order, &mut plan)?;
    }
    coupon_items(table, shop, &writes.coupon_uses, &mut plan)?;
    aggregate_items(table, shop, writes, before, &mut plan)?;
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
            Role::Order { order } => StoreError::Conflict(format!("order {order}")),
            Role::CouponCount { code } => StoreError::CouponLimit(code.clone()),
            Role::Guard | Role::Notification | Role::Plain => {
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
        let before = self.stats_before(shop, &writes).await?;
        let plan = plan(&self.table, shop, &writes, &before, Utc::now())?;
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
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(plan.items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(output) => {
                self.record_capacity(output.consumed_capacity());
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

    /// Each existing account's tier and earning orders as of the version the
    /// write expects, for the customer counters. Normally handed back by the
    /// use case with the write, as it read them (no request); otherwise read
    /// here, in one BatchGetItem. Either way the transaction's version
    /// condition refuses the write unless the account is still at that
    /// version, so the counters can never be moved from a state the account
    /// was not in.
    async fn stats_before(
        &self,
        shop: &ShopId,
        writes: &WriteSet,
    ) -> Result<HashMap<CustomerId, AccountStats>, StoreError> {
        let mut before = HashMap::new();
        let mut missing = Vec::new();
        for write in writes.accounts.iter().filter(|w| w.expected_version > 0) {
            let customer = &write.account.customer;
            match writes.accounts_read.at(customer, write.expected_version) {
                Some(stats) => {
                    before.insert(customer.clone(), stats);
                }
                None => missing.push(customer.clone()),
            }
        }
        if !missing.is_empty() {
            let keys = missing
                .iter()
                .map(|c| key(keys::account_key(shop, c), keys::ACCOUNT_SK))
                .collect();
            for item in self.batch_get(keys).await? {
                let account = decode_account(&item)?;
                before.insert(
                    account.value.customer.clone(),
                    AccountStats::of(&account.value),
                );
            }
        }
        Ok(before)
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
