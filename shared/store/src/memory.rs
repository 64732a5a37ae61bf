//! The in-memory Store: the reference semantics of the port, for local runs
//! (the embedded default) and for the thousands of random histories the
//! tests replay. Everything happens under one mutex, so a write is atomic
//! exactly as a DynamoDB transaction is: all of it or none of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

use cashback_app::store::*;
use cashback_core::ids::{Code, CustomerId, Email, OrderId, ProductId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;

use cashback_app::changes::{Change, ChangeKind};
use cashback_app::coupon_shards::{self, CouponShard};
use cashback_app::coupon_uses::CouponOrderUse;
use cashback_app::marketing::QueuedEvent;
use cashback_app::referral::ReferralNote;

use crate::keys;

mod outgoing;

/// One due index partition: (bucket, shard) -> sort key -> item.
type DuePartitions = BTreeMap<(String, u32), BTreeMap<String, DueRef>>;

#[derive(Default)]
struct Tables {
    shops: HashMap<ShopId, Shop>,
    programs: HashMap<ShopId, Versioned<Program>>,
    program_history: HashMap<(ShopId, u64), Program>,
    coupons: HashMap<(ShopId, Code), Versioned<CouponRecord>>,
    coupon_uses: HashMap<(ShopId, Code, UsageKey), u32>,
    accounts: HashMap<(ShopId, CustomerId), Versioned<Account>>,
    /// Per account, entries by their sort key (time, id).
    ledgers: HashMap<(ShopId, CustomerId), BTreeMap<String, LedgerEntry>>,
    orders: HashMap<(ShopId, OrderId), Versioned<OrderRecord>>,
    code_owners: HashMap<(ShopId, Code), CustomerId>,
    referral_owners: HashMap<(ShopId, Code), CustomerId>,
    email_owners: HashMap<(ShopId, Email), CustomerId>,
    guards: HashMap<String, (DateTime<Utc>, Option<String>)>,
    notifications: HashMap<String, ()>,
    /// kind -> (bucket, shard) -> sort key -> item
    due: HashMap<DueKind, DuePartitions>,
    /// Where each item currently sits in the due index, to move it.
    due_position: HashMap<(DueKind, String), (String, u32, String)>,
    checkpoints: HashMap<String, String>,
    /// Parked due items by shop and sort key.
    parked: BTreeMap<(ShopId, String), ParkedItem>,
    counters: HashMap<String, (u64, DateTime<Utc>)>,
    catalog: HashMap<(ShopId, ProductId), CatalogProduct>,
    /// Running aggregates, added by the report aggregator as it adds them
    /// to DynamoDB (the shards are summed here: nothing contends in memory).
    day_figures: HashMap<(ShopId, NaiveDate), DayFigures>,
    /// The same sums by month (keyed by the month's first day).
    month_figures: HashMap<(ShopId, NaiveDate), DayFigures>,
    customer_counts: HashMap<ShopId, CustomerCounts>,
    /// The last feed position added per customer (exactly once).
    report_marks: HashMap<(ShopId, CustomerId), String>,
    api_keys: BTreeMap<(ShopId, String), ApiKeyRecord>,
    /// When each uninstalled shop was uninstalled (DynamoDB keeps it on
    /// the shop's item).
    uninstalled: HashMap<ShopId, DateTime<Utc>>,
    /// Referral credits by (shop, referrer, referred order), versioned by
    /// their settled part.
    referral_credits: HashMap<(ShopId, CustomerId, OrderId), Versioned<ReferralNote>>,
    /// Orders' uses of unlimited coupons, by (shop, code, order).
    coupon_order_uses: HashMap<(ShopId, Code, OrderId), CouponOrderUse>,
    /// Limited coupons' sub-counters, by (shop, code, shard).
    coupon_shards: HashMap<(ShopId, Code, u32), CouponShard>,
    /// The code sync's record per shop.
    sync_records: HashMap<ShopId, SyncRecord>,
    /// The change feed, as the table's stream would carry it, until taken.
    changes: Vec<Change>,
    /// Changes logged so far: the next one's sequence number.
    changes_logged: u64,
    /// The marketing events written with the changes (the outbox), in
    /// write order, until taken.
    marketing_events: Vec<(ShopId, QueuedEvent)>,
    /// Outgoing event endpoints, deliveries and pending retries.
    outgoing: outgoing::OutgoingTables,
    /// When the last write that said so was decided: the time the feed's
    /// consumer settles referral credits at (on AWS, the stream record's).
    last_written_at: Option<DateTime<Utc>>,
}

impl Tables {
    fn log_change(&mut self, shop: &ShopId, customer: &CustomerId, kind: ChangeKind) {
        self.changes_logged += 1;
        self.changes.push(Change {
            shop: shop.clone(),
            customer: customer.clone(),
            sequence: format!("{:020}", self.changes_logged),
            kind,
        });
    }
}

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    reads: AtomicU64,
    writes: AtomicU64,
    queries: AtomicU64,
    other: AtomicU64,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StoreError> {
        self.tables
            .lock()
            .map_err(|_| StoreError::Other("in-memory store poisoned by a panic".into()))
    }

    /// The changes committed since the last call, in write order: the
    /// in-memory stand-in for the table's stream (`cashback_app::changes`).
    pub fn take_changes(&self) -> Vec<Change> {
        self.lock()
            .map(|mut t| std::mem::take(&mut t.changes))
            .unwrap_or_default()
    }

    /// The marketing events written since the last call, in write order
    /// (what the table's stream delivers as outbox items on DynamoDB).
    pub fn take_marketing_events(&self) -> Vec<(ShopId, QueuedEvent)> {
        self.lock()
            .map(|mut t| std::mem::take(&mut t.marketing_events))
            .unwrap_or_default()
    }

    /// Number of accounts held (for sizing checks in benchmarks and tests).
    pub fn account_count(&self) -> usize {
        self.lock().map(|t| t.accounts.len()).unwrap_or(0)
    }
}

fn page<T: Clone>(items: Vec<(String, T)>, cursor: Option<String>, limit: u32) -> Page<T> {
    let limit = limit.max(1) as usize;
    let start = cursor.as_deref();
    let mut selected: Vec<(String, T)> = items
        .into_iter()
        .filter(|(key, _)| start.is_none_or(|after| key.as_str() > after))
        .take(limit + 1)
        .collect();
    let next = if selected.len() > limit {
        selected.truncate(limit);
        selected.last().map(|(key, _)| key.clone())
    } else {
        None
    };
    Page {
        items: selected.into_iter().map(|(_, item)| item).collect(),
        next,
    }
}

impl Tables {
    fn place_due(&mut self, kind: DueKind, item_key: String, due: Option<DueRef>) {
        if let Some((bucket, shard, sort)) = self.due_position.remove(&(kind, item_key.clone())) {
            if let Some(partition) = self
                .due
                .get_mut(&kind)
                .and_then(|b| b.get_mut(&(bucket, shard)))
            {
                partition.remove(&sort);
            }
        }
        if let Some(due) = due {
            let bucket = due_bucket(due.due_at);
            let shard = keys::shard_of(&item_key);
            let sort = keys::due_sort_key(due.due_at, &item_key);
            self.due
                .entry(kind)
                .or_default()
                .entry((bucket.clone(), shard))
                .or_default()
                .insert(sort.clone(), due);
            self.due_position
                .insert((kind, item_key), (bucket, shard, sort));
        }
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn event_endpoints(&self) -> Option<&dyn cashback_app::outgoing::EndpointStore> {
        Some(self)
    }

    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let mut result = ReadResult::default();
        if let Some(order) = &request.order {
            result.order = tables.orders.get(&(shop.clone(), order.clone())).cloned();
            result.order_lines_stored = result
                .order
                .as_ref()
                .is_some_and(|o| !o.value.lines.is_empty());
            result.order_refunds_stored =
                result.order.as_ref().map_or(0, |o| o.value.refunds.len());
        }
        for customer in &request.accounts {
            if let Some(account) = tables.accounts.get(&(shop.clone(), customer.clone())) {
                result.accounts.insert(customer.clone(), account.clone());
            }
        }
        for code in &request.coupons {
            if let Some(coupon) = tables.coupons.get(&(shop.clone(), code.clone())) {
                result.coupons.insert(code.clone(), coupon.clone());
            }
        }
        for (code, usage) in &request.coupon_uses {
            let count = tables
                .coupon_uses
                .get(&(shop.clone(), code.clone(), usage.clone()))
                .copied()
                .unwrap_or(0);
            result
                .coupon_uses
                .insert((code.clone(), usage.clone()), count);
        }
        for code in &request.code_owners {
            if let Some(owner) = tables.code_owners.get(&(shop.clone(), code.clone())) {
                result.code_owners.insert(code.clone(), owner.clone());
            }
        }
        for code in &request.referral_owners {
            if let Some(owner) = tables.referral_owners.get(&(shop.clone(), code.clone())) {
                result.referral_owners.insert(code.clone(), owner.clone());
            }
        }
        for email in &request.email_owners {
            if let Some(owner) = tables.email_owners.get(&(shop.clone(), email.clone())) {
                result.email_owners.insert(email.clone(), owner.clone());
            }
        }
        for product in &request.products {
            if let Some(found) = tables.catalog.get(&(shop.clone(), product.clone())) {
                result.products.insert(product.clone(), found.clone());
            }
        }
        for counter in &request.counters {
            let count = tables.counters.get(counter).map_or(0, |(count, _)| *count);
            result.counters.insert(counter.clone(), count);
        }
        for (code, order) in &request.coupon_order_uses {
            let key = (shop.clone(), code.clone(), order.clone());
            if let Some(used) = tables.coupon_order_uses.get(&key) {
                result
                    .coupon_order_uses
                    .insert((code.clone(), order.clone()), *used);
            }
        }
        for (code, shard) in &request.coupon_shards {
            let found = tables
                .coupon_shards
                .get(&(shop.clone(), code.clone(), *shard))
                .copied()
                .unwrap_or_default();
            result.coupon_shards.insert((code.clone(), *shard), found);
        }
        for (referrer, order) in &request.referral_credits {
            let key = (shop.clone(), referrer.clone(), order.clone());
            if let Some(note) = tables.referral_credits.get(&key) {
                result
                    .referral_credits
                    .insert((referrer.clone(), order.clone()), note.clone());
            }
        }
        Ok(result)
    }

    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;

        // Check every condition first; write only if all hold.
        if let Some(guard) = &writes.guard {
            let key = keys::guard_key(shop, &guard.key);
            if let Some((_, response)) = tables.guards.get(&key) {
                return Ok(WriteOutcome::Duplicate {
                    response: response.clone(),
                });
            }
        }
        for notification in &writes.notifications {
            if tables
                .notifications
                .contains_key(&keys::notification_key(shop, notification))
            {
                return Ok(WriteOutcome::Duplicate { response: None });
            }
        }
        for write in &writes.accounts {
            let key = (shop.clone(), write.account.customer.clone());
            let current = tables.accounts.get(&key);
            let current_version = current.map(|a| a.version).unwrap_or(0);
            if current_version != write.expected_version {
                return Err(StoreError::Conflict(format!(
                    "account {}",
                    write.account.customer
                )));
            }
            let account = &write.account;
            let negative = [account.available, account.pending, account.debt]
                .iter()
                .any(|balance| balance.is_negative());
            if negative || account.held().amount() > account.available.amount() {
                return Err(StoreError::BalanceCondition(write.account.customer.clone()));
            }
            if let Some(change) = &write.code_change {
                let owner = tables
                    .code_owners
                    .get(&(shop.clone(), change.new_code.clone()));
                if owner.is_some_and(|o| o != &write.account.customer) {
                    return Err(StoreError::CodeTaken);
                }
                if let Some(referral) = &change.referral_code {
                    let owner = tables
                        .referral_owners
                        .get(&(shop.clone(), referral.clone()));
                    if owner.is_some_and(|o| o != &write.account.customer) {
                        return Err(StoreError::CodeTaken);
                    }
                }
            }
            let ledger = tables.ledgers.get(&key);
            for entry in &write.entries {
                let sort = keys::ledger_sort_key(entry);
                if ledger.is_some_and(|l| l.contains_key(&sort)) {
                    return Err(StoreError::Conflict(format!(
                        "ledger entry {}",
                        entry.entry_id
                    )));
                }
            }
        }
        if let Some(order) = &writes.order {
            let current_version = tables
                .orders
                .get(&(shop.clone(), order.record.order_id.clone()))
                .map(|o| o.version)
                .unwrap_or(0);
            if current_version != order.expected_version {
                return Err(StoreError::Conflict(format!(
                    "order {}",
                    order.record.order_id
                )));
            }
        }
        for counted in &writes.coupon_uses_counted {
            let key = (shop.clone(), counted.code.clone(), counted.order.clone());
            let used = tables.coupon_order_uses.get(&key);
            if !used.is_some_and(|u| u.taken == counted.taken && u.counted != counted.taken) {
                return Err(StoreError::Conflict(format!(
                    "use of coupon {} by order {}",
                    counted.code, counted.order
                )));
            }
        }
        if let Some(settle) = &writes.referral_settled {
            let key = (shop.clone(), settle.referrer.clone(), settle.order.clone());
            let current = tables.referral_credits.get(&key).map(|n| n.version);
            if current.is_none_or(|version| version != settle.expected_version) {
                return Err(StoreError::Conflict(format!(
                    "referral credit of order {}",
                    settle.order
                )));
            }
        }
        for change in &writes.coupon_uses {
            if change.delta > 0 {
                match change.shard {
                    // The shard's cap alone decides, as DynamoDB's
                    // condition on that one item does.
                    Some(shard) => {
                        let key = (shop.clone(), change.code.clone(), shard);
                        let found = tables.coupon_shards.get(&key).copied();
                        if !found.unwrap_or_default().has_room() {
                            return Err(StoreError::CouponLimit(change.code.clone()));
                        }
                    }
                    None => {
                        let coupon = tables.coupons.get(&(shop.clone(), change.code.clone()));
                        let uses = coupon.map(|c| c.value.uses).unwrap_or(0);
                        if change.limit_total.is_some_and(|limit| uses >= limit) {
                            return Err(StoreError::CouponLimit(change.code.clone()));
                        }
                    }
                }
                if let Some(limit) = change.limit_per_customer {
                    let mut keys_to_check = vec![UsageKey::Customer(change.customer.clone())];
                    keys_to_check.extend(change.email.clone().map(UsageKey::Email));
                    for usage in keys_to_check {
                        let count = tables
                            .coupon_uses
                            .get(&(shop.clone(), change.code.clone(), usage))
                            .copied()
                            .unwrap_or(0);
                        if count >= limit {
                            return Err(StoreError::CouponLimit(change.code.clone()));
                        }
                    }
                }
            }
        }

        // All conditions hold: apply.
        if let Some(guard) = writes.guard {
            tables.guards.insert(
                keys::guard_key(shop, &guard.key),
                (guard.expires_at, guard.response),
            );
        }
        for notification in &writes.notifications {
            tables
                .notifications
                .insert(keys::notification_key(shop, notification), ());
        }
        for event in &writes.marketing_events {
            tables.marketing_events.push((shop.clone(), event.clone()));
        }
        let written_at = writes.now;
        if written_at.is_some() {
            tables.last_written_at = written_at;
        }
        for write in writes.accounts {
            let customer = write.account.customer.clone();
            let key = (shop.clone(), customer.clone());
            if let Some(change) = &write.code_change {
                // A replaced code stays its owner's: an order placed with it
                // is still charged to them (checkout refuses it).
                tables
                    .code_owners
                    .insert((shop.clone(), change.new_code.clone()), customer.clone());
                if let Some(referral) = &change.referral_code {
                    tables
                        .referral_owners
                        .insert((shop.clone(), referral.clone()), customer.clone());
                }
            }
            // The latest account to take an address owns it; an account
            // written with the email it was read with leaves the owner be.
            if let Some(email) = &write.account.email {
                if !writes
                    .accounts_read
                    .email_unchanged(&write.account, write.expected_version)
                {
                    tables
                        .email_owners
                        .insert((shop.clone(), email.clone()), customer.clone());
                }
            }
            // Where the account sits in the due indexes: the times come
            // with the write (decided by the core).
            let due = write.due_filed_at(written_at);
            let (reminder_due, expiry_due) = (due.reminder, due.expiry);
            let bonus_due = due.bonus;
            let ledger = tables.ledgers.entry(key.clone()).or_default();
            let mut written = Vec::new();
            for entry in write.entries {
                // New by the condition checked above: entries are written once.
                ledger.insert(keys::ledger_sort_key(&entry), entry.clone());
                written.push(ChangeKind::Entry(Box::new(entry)));
            }
            for kind in written {
                tables.log_change(shop, &customer, kind);
            }
            let item_key = keys::account_key(shop, &customer);
            let due_ref = |at: DateTime<Utc>| DueRef {
                shop: shop.clone(),
                customer: Some(customer.clone()),
                order: None,
                due_at: at,
            };
            tables.place_due(
                DueKind::Reminder,
                item_key.clone(),
                reminder_due.map(due_ref),
            );
            tables.place_due(DueKind::Bonus, item_key.clone(), bonus_due.map(due_ref));
            tables.place_due(DueKind::Expiry, item_key, expiry_due.map(due_ref));
            let version = write.expected_version + 1;
            let after = Box::new(write.account.clone());
            let before = tables.accounts.insert(
                key,
                Versioned {
                    value: write.account,
                    version,
                },
            );
            tables.log_change(
                shop,
                &customer,
                ChangeKind::Account {
                    before: before.map(|b| Box::new(b.value)),
                    after: Some(after),
                },
            );
        }
        if let Some(settle) = writes.referral_settled {
            let key = (shop.clone(), settle.referrer.clone(), settle.order.clone());
            if let Some(note) = tables.referral_credits.get_mut(&key) {
                note.value.settled = settle.settled;
                note.version += 1;
            }
            tables.log_change(
                shop,
                &settle.referrer,
                ChangeKind::Referral {
                    order: settle.order,
                },
            );
        }
        if let Some(credit) = writes
            .order
            .as_ref()
            .and_then(cashback_app::referral::credit_written)
        {
            // The order's referral credit: its grant replaced, what was
            // settled of it kept.
            let key = (
                shop.clone(),
                credit.referrer.clone(),
                credit.order_id.clone(),
            );
            let referrer = credit.referrer.clone();
            let order = credit.order_id.clone();
            match tables.referral_credits.get_mut(&key) {
                Some(note) => note.value.credit = credit,
                None => {
                    let settled = cashback_core::referrals::ReferralSettled::initial(None, &credit);
                    tables
                        .referral_credits
                        .insert(key, Versioned::new(ReferralNote { credit, settled }));
                }
            }
            tables.log_change(shop, &referrer, ChangeKind::Referral { order });
        }
        if let Some(order) = writes.order {
            let release_due = order.release_filed_at(written_at);
            let ready_due = order.ready_filed_at(written_at);
            let record = order.record;
            let item_key = keys::order_key(shop, &record.order_id);
            let due = release_due.map(|at| DueRef {
                shop: shop.clone(),
                customer: record.customer.clone(),
                order: Some(record.order_id.clone()),
                due_at: at,
            });
            tables.place_due(DueKind::Release, item_key.clone(), due);
            let ready = ready_due.map(|at| DueRef {
                shop: shop.clone(),
                customer: record.customer.clone(),
                order: Some(record.order_id.clone()),
                due_at: at,
            });
            tables.place_due(DueKind::Ready, item_key, ready);
            tables.orders.insert(
                (shop.clone(), record.order_id.clone()),
                Versioned {
                    value: record,
                    version: order.expected_version + 1,
                },
            );
        }
        for counted in writes.coupon_uses_counted {
            let key = (shop.clone(), counted.code.clone(), counted.order.clone());
            if let Some(used) = tables.coupon_order_uses.get_mut(&key) {
                used.counted = counted.taken;
            }
            let delta = if counted.taken { 1 } else { -1 };
            match counted.shard {
                Some(shard) => {
                    let key = (shop.clone(), counted.code.clone(), shard);
                    let found = tables.coupon_shards.entry(key).or_default();
                    found.count = found.count.saturating_add_signed(delta);
                }
                None => {
                    if let Some(coupon) = tables
                        .coupons
                        .get_mut(&(shop.clone(), counted.code.clone()))
                    {
                        coupon.value.uses = coupon.value.uses.saturating_add_signed(delta);
                    }
                }
            }
        }
        for change in writes.coupon_uses {
            let taken = change.delta > 0;
            match (&change.order, change.shard.filter(|_| taken)) {
                // A limited coupon with sub-counters: the shard takes the
                // use, and the order's use item records which (counted:
                // the feed has nothing to add).
                (order, Some(shard)) => {
                    let key = (shop.clone(), change.code.clone(), shard);
                    let found = tables.coupon_shards.entry(key).or_default();
                    found.count = found.count.saturating_add(1);
                    if let Some(order) = order {
                        tables.coupon_order_uses.insert(
                            (shop.clone(), change.code.clone(), order.clone()),
                            CouponOrderUse {
                                taken: true,
                                counted: true,
                                shard: Some(shard),
                            },
                        );
                        tables.log_change(
                            shop,
                            &change.customer,
                            ChangeKind::CouponUse {
                                code: change.code.clone(),
                                order: order.clone(),
                            },
                        );
                    }
                }
                // No total limit, or a use given back: the order's own
                // item, counted by the change feed
                // (`cashback_app::coupon_uses`), on the shard that took it
                // if one did. A use given back that was never recorded
                // here was counted on the coupon when it was taken.
                (Some(order), None) if change.limit_total.is_none() || !taken => {
                    let taken = change.delta > 0;
                    let key = (shop.clone(), change.code.clone(), order.clone());
                    tables
                        .coupon_order_uses
                        .entry(key)
                        .and_modify(|used| used.taken = taken)
                        .or_insert(CouponOrderUse {
                            taken,
                            counted: !taken,
                            shard: None,
                        });
                    tables.log_change(
                        shop,
                        &change.customer,
                        ChangeKind::CouponUse {
                            code: change.code.clone(),
                            order: order.clone(),
                        },
                    );
                }
                _ => {
                    if let Some(coupon) =
                        tables.coupons.get_mut(&(shop.clone(), change.code.clone()))
                    {
                        coupon.value.uses = coupon.value.uses.saturating_add_signed(change.delta);
                    }
                }
            }
            let mut usage_keys = vec![UsageKey::Customer(change.customer.clone())];
            usage_keys.extend(change.email.clone().map(UsageKey::Email));
            for usage in usage_keys {
                let count = tables
                    .coupon_uses
                    .entry((shop.clone(), change.code.clone(), usage))
                    .or_insert(0);
                *count = count.saturating_add_signed(change.delta);
            }
        }
        Ok(WriteOutcome::Committed)
    }

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        Ok(self.lock()?.shops.get(shop).cloned())
    }

    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        if tables.shops.contains_key(&shop.shop) {
            return Err(StoreError::AlreadyExists(format!("shop {}", shop.shop)));
        }
        tables.shops.insert(shop.shop.clone(), shop.clone());
        Ok(())
    }

    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        Ok(self.lock()?.programs.get(shop).cloned())
    }

    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        _at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let current = tables.programs.get(shop).cloned();
        let current_version = current.as_ref().map(|p| p.version).unwrap_or(0);
        if current_version != expected_version {
            return Err(StoreError::Conflict(format!("program of {shop}")));
        }
        if let Some(previous) = current {
            tables
                .program_history
                .insert((shop.clone(), previous.version), previous.value);
        }
        let version = expected_version + 1;
        tables.programs.insert(
            shop.clone(),
            Versioned {
                value: program.clone(),
                version,
            },
        );
        Ok(version)
    }

    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        if let Some(current) = tables.programs.get(shop).filter(|p| p.version == version) {
            return Ok(Some(current.value.clone()));
        }
        Ok(tables
            .program_history
            .get(&(shop.clone(), version))
            .cloned())
    }

    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let key = (shop.clone(), coupon.coupon.code.clone());
        let current_version = tables.coupons.get(&key).map(|c| c.version).unwrap_or(0);
        if current_version != expected_version {
            return Err(if expected_version == 0 {
                StoreError::AlreadyExists(format!("coupon {}", coupon.coupon.code.display()))
            } else {
                StoreError::Conflict(format!("coupon {}", coupon.coupon.code.display()))
            });
        }
        let mut record = coupon.clone();
        // The use count belongs to the store: an edit never resets it.
        if let Some(existing) = tables.coupons.get(&key) {
            record.uses = existing.value.uses;
        }
        let version = expected_version + 1;
        tables.coupons.insert(
            key,
            Versioned {
                value: record,
                version,
            },
        );
        Ok(version)
    }

    async fn coupon_shards(
        &self,
        shop: &ShopId,
        code: &Code,
    ) -> Result<Vec<CouponShard>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        Ok((0..coupon_shards::SHARDS)
            .map(|shard| {
                tables
                    .coupon_shards
                    .get(&(shop.clone(), code.clone(), shard))
                    .copied()
                    .unwrap_or_default()
            })
            .collect())
    }

    async fn set_coupon_caps(
        &self,
        shop: &ShopId,
        code: &Code,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let shards: Vec<CouponShard> = (0..coupon_shards::SHARDS)
            .map(|shard| {
                tables
                    .coupon_shards
                    .get(&(shop.clone(), code.clone(), shard))
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        let Some(limit) = limit else {
            for shard in 0..coupon_shards::SHARDS {
                if let Some(found) =
                    tables
                        .coupon_shards
                        .get_mut(&(shop.clone(), code.clone(), shard))
                {
                    found.cap = None;
                }
            }
            return Ok(());
        };
        let counted = tables
            .coupons
            .get(&(shop.clone(), code.clone()))
            .map_or(0, |c| c.value.uses);
        // Uses orders took while the coupon was unlimited that the feed has
        // not counted yet are uses all the same.
        let uncounted = tables
            .coupon_order_uses
            .iter()
            .filter(|((s, c, _), used)| {
                s == shop && c == code && used.shard.is_none() && used.taken && !used.counted
            })
            .count();
        let elsewhere = counted.saturating_add(u32::try_from(uncounted).unwrap_or(u32::MAX));
        let caps = coupon_shards::caps(limit, elsewhere, &shards);
        for (shard, cap) in (0..coupon_shards::SHARDS).zip(caps) {
            tables
                .coupon_shards
                .entry((shop.clone(), code.clone(), shard))
                .or_default()
                .cap = Some(cap);
        }
        Ok(())
    }

    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let mut items: Vec<(String, Versioned<CouponRecord>)> = tables
            .coupons
            .iter()
            .filter(|((s, _), _)| s == shop)
            .map(|((_, code), coupon)| (code.as_str().to_string(), coupon.clone()))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(page(items, cursor, limit))
    }

    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let entries = tables.ledgers.get(&(shop.clone(), customer.clone()));
        // Newest first: walk the sort keys backwards; the cursor is the last key seen.
        let limit = limit.max(1) as usize;
        let mut items: Vec<(String, LedgerEntry)> = entries
            .map(|ledger| {
                ledger
                    .iter()
                    .rev()
                    .filter(|(key, _)| cursor.as_deref().is_none_or(|before| key.as_str() < before))
                    .take(limit + 1)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(Page {
            items: items.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    async fn due(
        &self,
        kind: DueKind,
        bucket: &str,
        shard: u32,
        up_to: DateTime<Utc>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<DueRef>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let upper = keys::due_sort_upper_bound(up_to);
        let items: Vec<(String, DueRef)> = tables
            .due
            .get(&kind)
            .and_then(|buckets| buckets.get(&(bucket.to_string(), shard)))
            .map(|partition| {
                partition
                    .range(..=upper)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(page(items, cursor, limit))
    }

    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        Ok(self.lock()?.checkpoints.get(job).cloned())
    }

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        // Checkpoints only move forward, whatever order overlapping runs finish in.
        let current = tables.checkpoints.get(job).cloned();
        if current.as_deref().is_none_or(|c| c < bucket) {
            tables
                .checkpoints
                .insert(job.to_string(), bucket.to_string());
        }
        Ok(())
    }

    async fn park(&self, item: &ParkedItem) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let shop = &item.due.shop;
        let item_key = match (&item.due.order, &item.due.customer) {
            (Some(order), _) => Some(keys::order_key(shop, order)),
            (None, Some(customer)) => Some(keys::account_key(shop, customer)),
            (None, None) => None,
        };
        if let Some(item_key) = item_key {
            let filed = keys::due_sort_key(item.due.due_at, &item_key);
            let still_there = tables
                .due_position
                .get(&(item.kind, item_key.clone()))
                .is_some_and(|(_, _, sort)| *sort == filed);
            if still_there {
                tables.place_due(item.kind, item_key, None);
            }
        }
        tables
            .parked
            .insert((shop.clone(), item.sort_key()), item.clone());
        Ok(())
    }

    async fn list_parked(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let items: Vec<(String, ParkedItem)> = tables
            .parked
            .range((shop.clone(), String::new())..)
            .take_while(|((s, _), _)| s == shop)
            .map(|((_, sort), item)| (sort.clone(), item.clone()))
            .collect();
        Ok(page(items, cursor, limit))
    }

    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let counter = tables
            .counters
            .entry(key.to_string())
            .or_insert((0, expires_at));
        counter.0 += 1;
        Ok(counter.0)
    }

    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        for product in products {
            tables
                .catalog
                .insert((shop.clone(), product.product_id.clone()), product.clone());
        }
        Ok(())
    }

    async fn aggregates(
        &self,
        shop: &ShopId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let mut result = ShopAggregates {
            counts: tables
                .customer_counts
                .get(shop)
                .cloned()
                .unwrap_or_default(),
            ..ShopAggregates::default()
        };
        for ((s, month), figures) in &tables.month_figures {
            if s == shop && ShopAggregates::whole_month(*month, from, to) {
                result.add_month(*month, figures);
            }
        }
        for ((s, day), figures) in &tables.day_figures {
            let whole = ShopAggregates::whole_month(month_of(*day), from, to);
            if s == shop && *day <= to && !whole {
                result.add_day(*day, figures);
            }
        }
        Ok(result)
    }

    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let tables = self.lock()?;
        let mut items: Vec<(String, Versioned<Account>)> = tables
            .accounts
            .iter()
            .filter(|((s, _), _)| s == shop)
            .map(|((_, customer), account)| (customer.as_str().to_string(), account.clone()))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(page(items, cursor, limit.min(100)))
    }

    async fn create_api_key(&self, shop: &ShopId, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let id = (shop.clone(), key.key_id.clone());
        if tables.api_keys.contains_key(&id) {
            return Err(StoreError::AlreadyExists(format!("API key {}", key.key_id)));
        }
        tables.api_keys.insert(id, key.clone());
        Ok(())
    }

    async fn list_api_keys(&self, shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .lock()?
            .api_keys
            .iter()
            .filter(|((s, _), _)| s == shop)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn revoke_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let Some(key) = tables.api_keys.get_mut(&(shop.clone(), key_id.to_string())) else {
            return Ok(Revoked::Missing);
        };
        Ok(match key.revoked_at {
            Some(first) => Revoked::Already(first),
            None => {
                key.revoked_at = Some(at);
                Revoked::Now
            }
        })
    }

    async fn touch_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        if let Some(key) = tables.api_keys.get_mut(&(shop.clone(), key_id.to_string())) {
            if key.last_used_at.is_none_or(|last| last < at) {
                key.last_used_at = Some(at);
            }
        }
        Ok(())
    }

    async fn set_shop_uninstalled(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        if !tables.shops.contains_key(shop) {
            return Err(StoreError::Other(format!("shop {shop} does not exist")));
        }
        match at {
            Some(at) => tables.uninstalled.insert(shop.clone(), at),
            None => tables.uninstalled.remove(shop),
        };
        Ok(())
    }

    async fn shop_uninstalled_at(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        Ok(self.lock()?.uninstalled.get(shop).copied())
    }

    async fn note_sync(&self, shop: &ShopId, note: &SyncNote) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let record = tables.sync_records.remove(shop).unwrap_or_default();
        tables.sync_records.insert(shop.clone(), record.noted(note));
        Ok(())
    }

    async fn sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .lock()?
            .sync_records
            .get(shop)
            .cloned()
            .unwrap_or_default())
    }

    async fn forget_email(
        &self,
        shop: &ShopId,
        email: &Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let key = (shop.clone(), email.clone());
        if tables.email_owners.get(&key) == Some(customer) {
            tables.email_owners.remove(&key);
        }
        Ok(())
    }

    async fn delete_shop_data(&self, shop: &ShopId) -> Result<u64, StoreError> {
        self.other.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let t = &mut *tables;
        let mut deleted = 0u64;
        let mut count = |before: usize, after: usize| deleted += (before - after) as u64;
        macro_rules! drop_where {
            ($map:expr, $keep:expr) => {{
                let before = $map.len();
                $map.retain($keep);
                count(before, $map.len());
            }};
        }
        drop_where!(t.programs, |k, _| k != shop);
        drop_where!(t.program_history, |(k, _), _| k != shop);
        drop_where!(t.coupons, |(k, _), _| k != shop);
        drop_where!(t.coupon_uses, |(k, _, _), _| k != shop);
        drop_where!(t.accounts, |(k, _), _| k != shop);
        drop_where!(t.ledgers, |(k, _), _| k != shop);
        drop_where!(t.orders, |(k, _), _| k != shop);
        drop_where!(t.code_owners, |(k, _), _| k != shop);
        drop_where!(t.referral_owners, |(k, _), _| k != shop);
        drop_where!(t.email_owners, |(k, _), _| k != shop);
        drop_where!(t.referral_credits, |(k, _, _), _| k != shop);
        drop_where!(t.coupon_order_uses, |(k, _, _), _| k != shop);
        drop_where!(t.coupon_shards, |(k, _, _), _| k != shop);
        let guard_prefix = keys::guard_key(shop, "");
        drop_where!(t.guards, |k, _| !k.starts_with(&guard_prefix));
        let notification_prefix = keys::notification_key(shop, "");
        drop_where!(t.notifications, |k, _| !k.starts_with(&notification_prefix));
        for buckets in t.due.values_mut() {
            for partition in buckets.values_mut() {
                drop_where!(partition, |_, due| &due.shop != shop);
            }
        }
        // Due positions are keyed by the item's key (`SHOP#{shop}#CUST#..`,
        // `SHOP#{shop}#ORDER#..`).
        let item_prefix = format!("{}#", keys::shop_pk(shop));
        t.due_position
            .retain(|(_, item_key), _| !item_key.starts_with(&item_prefix));
        drop_where!(t.catalog, |(k, _), _| k != shop);
        drop_where!(t.day_figures, |(k, _), _| k != shop);
        drop_where!(t.customer_counts, |k, _| k != shop);
        drop_where!(t.api_keys, |(k, _), _| k != shop);
        t.uninstalled.remove(shop);
        t.sync_records.remove(shop);
        drop_where!(t.shops, |k, _| k != shop);
        deleted += t.outgoing.forget_shop(shop);
        Ok(deleted)
    }

    fn request_counts(&self) -> RequestCounts {
        RequestCounts {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

#[async_trait::async_trait]
impl ReportStore for MemoryStore {
    async fn add_report_part(&self, part: &ReportPart) -> Result<Added, StoreError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut tables = self.lock()?;
        let refused: Vec<(CustomerId, String)> = part
            .marks
            .iter()
            .filter_map(|mark| {
                tables
                    .report_marks
                    .get(&(part.shop.clone(), mark.customer.clone()))
                    .filter(|last| mark.first.as_str() <= last.as_str())
                    .map(|last| (mark.customer.clone(), last.clone()))
            })
            .collect();
        if !refused.is_empty() {
            return Ok(Added::Before { refused });
        }
        for (day, figures) in &part.sums.days {
            tables
                .day_figures
                .entry((part.shop.clone(), *day))
                .or_default()
                .add(figures);
        }
        for (month, figures) in part.sums.months() {
            tables
                .month_figures
                .entry((part.shop.clone(), month))
                .or_default()
                .add(&figures);
        }
        tables
            .customer_counts
            .entry(part.shop.clone())
            .or_default()
            .add(&part.sums.counts);
        for mark in &part.marks {
            tables.report_marks.insert(
                (part.shop.clone(), mark.customer.clone()),
                mark.last.clone(),
            );
        }
        Ok(Added::Now)
    }
}

impl MemoryStore {
    /// Runs the report aggregator over the changes logged since the last
    /// call, as the table's stream runs it on AWS: the local server calls it
    /// after every request, tests before they read a report.
    pub async fn aggregate_reports(&self) -> Result<cashback_app::aggregator::Outcome, StoreError> {
        let mut total = cashback_app::aggregator::Outcome::default();
        loop {
            let changes = self.take_changes();
            if changes.is_empty() {
                return Ok(total);
            }
            // As the stream's consumer does with each batch: referral
            // credits settled on their referrers' accounts (whose changes
            // come round in the next batch), then the report sums.
            let now = self.lock()?.last_written_at.unwrap_or_else(Utc::now);
            cashback_app::referral::settle_credits(self, &changes, now).await?;
            cashback_app::coupon_uses::count_uses(self, &changes).await?;
            let outcome = cashback_app::aggregator::aggregate(self, None, &changes).await?;
            total.changes += outcome.changes;
            total.added += outcome.added;
            total.skipped += outcome.skipped;
        }
    }
}
