//! The Store port: what the use cases need from persistence.
//!
//! Every use case follows one shape, which is what keeps DynamoDB to its
//! budget: gather what it needs in ONE [`Store::read`] (a consistent batch
//! get), decide in the pure core, then commit everything the decision
//! changed in ONE [`Store::write`] (a single transaction). A write names the
//! version of each account and order it read; if another writer got there
//! first the write fails with [`StoreError::Conflict`] and the use case
//! starts again from a fresh read. A write may carry a guard key (the
//! platform event's business key): if the guard exists the whole write is a
//! [`WriteOutcome::Duplicate`] and nothing changes.
//!
//! This file is the port alone: the trait, its errors and the scheduling
//! vocabulary of [`Store::due`]. What the port carries lives beside it and
//! is re-exported here, so `cashback_app::store::X` names all of it:
//! - [`crate::records`]: shops, coupons, catalog products, API keys, [`Versioned`];
//! - [`crate::sets`]: the read and write sets ([`ReadRequest`], [`WriteSet`], ...);
//! - [`crate::reports`]: the running aggregates reports read ([`ShopAggregates`], ...).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::ids::{Code, CustomerId, Email, OrderId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;

pub use crate::records::*;
pub use crate::reports::*;
pub use crate::sets::*;

/// Scheduled work, read from a sparse index by time bucket and shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueKind {
    /// Pending cashback to release (order items).
    Release,
    /// A reminder email (account items).
    Reminder,
    /// Balance or holds to expire (account items).
    Expiry,
    /// A released order's "cashback ready" email waiting for the paced
    /// email pass (order items).
    Ready,
    /// A birthday, anniversary, win-back or milestone bonus (account items).
    Bonus,
}

/// Something due, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRef {
    /// The shop the work is in.
    pub shop: ShopId,
    /// The account, for account items (reminders, expiry).
    pub customer: Option<CustomerId>,
    /// The order, for order items (release).
    pub order: Option<OrderId>,
    /// When the work falls due.
    pub due_at: DateTime<Utc>,
}

/// A shop's code sync as the platform-sync function records it
/// (docs/platform-sync.md): what the dashboard's status panel and the admin
/// API's `GET /v1/shops/{shop}/platform-sync` show. One small record per
/// shop, written at most once per stream batch and once per run step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// When a customer's code was last put on the platform.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Syncs given up on since the last finished reconcile (the platform
    /// kept failing or refused; their records go back to the stream, and
    /// what keeps failing is parked on the function's queue). A finished
    /// reconcile, which repairs them, sets it back to 0.
    pub parked: u64,
    /// Why the newest of them was given up on, and when.
    pub parked_reason: Option<String>,
    /// When the newest of them was given up on.
    pub parked_at: Option<DateTime<Utc>>,
    /// The last reconcile's figures (over all its steps so far).
    pub reconcile: Option<ReconcileRecord>,
}

/// A reconcile's figures, summed over its steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileRecord {
    /// When its first step ran.
    pub started_at: DateTime<Utc>,
    /// When its last step so far ran.
    pub at: DateTime<Utc>,
    /// Codes compared with the ledger.
    pub checked: u64,
    /// Codes found out of step.
    pub drifted: u64,
    /// Drifted codes set back to the ledger's state.
    pub repaired: u64,
    /// Codes that could not be compared or repaired.
    pub failed: u64,
    /// Whether it went through every account.
    pub finished: bool,
}

/// What a batch or a run step adds to a shop's [`SyncRecord`]; each part
/// that is None leaves its fields alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncNote {
    /// A code was put at this time (`last_synced_at` takes it: the last
    /// note written wins).
    pub synced_at: Option<DateTime<Utc>>,
    /// Syncs given up on: added to `parked`, the reason and time replace
    /// the newest.
    pub parked: Option<ParkedSyncs>,
    /// A reconcile step's figures.
    pub reconcile: Option<ReconcileStep>,
}

/// Syncs given up on in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedSyncs {
    /// How many.
    pub count: u64,
    /// Why the last of them was given up on.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One step of a reconcile: the first step (`first`) replaces the record's
/// figures, a later one adds to them; the last (`finished`) also sets
/// `parked` back to 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileStep {
    /// The run's first step (it started from the first account).
    pub first: bool,
    /// The run's last step (no account left).
    pub finished: bool,
    /// When the step ran.
    pub at: DateTime<Utc>,
    /// Codes compared in the step.
    pub checked: u64,
    /// Codes found out of step.
    pub drifted: u64,
    /// Codes set back.
    pub repaired: u64,
    /// Codes not compared or not repaired.
    pub failed: u64,
}

impl SyncRecord {
    /// The record after `note` (the in-memory adapter's rule; DynamoDB's
    /// update expression does the same).
    pub fn noted(mut self, note: &SyncNote) -> SyncRecord {
        if let Some(at) = note.synced_at {
            self.last_synced_at = Some(at);
        }
        if let Some(parked) = &note.parked {
            self.parked += parked.count;
            self.parked_reason = Some(parked.reason.clone());
            self.parked_at = Some(parked.at);
        }
        if let Some(step) = &note.reconcile {
            let record = match self.reconcile.take() {
                Some(mut record) if !step.first => {
                    record.checked += step.checked;
                    record.drifted += step.drifted;
                    record.repaired += step.repaired;
                    record.failed += step.failed;
                    record.at = step.at;
                    record.finished = step.finished;
                    record
                }
                _ => ReconcileRecord {
                    started_at: step.at,
                    at: step.at,
                    checked: step.checked,
                    drifted: step.drifted,
                    repaired: step.repaired,
                    failed: step.failed,
                    finished: step.finished,
                },
            };
            self.reconcile = Some(record);
            if step.finished {
                self.parked = 0;
            }
        }
        self
    }
}

/// A due item a scheduled job gave up on (its data is corrupt, its shop is
/// unknown, or it failed run after run): recorded here with why, and taken
/// out of its due index, so the job's checkpoint moves on and later runs do
/// not read it again. Listed per shop ([`Store::list_parked`]); an operator
/// repairs the data and writes the account or order again, which files it
/// anew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedItem {
    /// The job that parked it (its checkpoint's name).
    pub job: String,
    /// The kind of work it was.
    pub kind: DueKind,
    /// The index item, as the job read it.
    pub due: DueRef,
    /// Why it was parked: the last error, with its causes.
    pub reason: String,
    /// Runs that failed on it, the last included.
    pub attempts: u32,
    /// When it was parked (the run's time).
    pub parked_at: DateTime<Utc>,
}

impl ParkedItem {
    /// Orders a shop's parked items, one per index item: kind, then the
    /// order or customer, then the due time.
    pub fn sort_key(&self) -> String {
        let kind = match self.kind {
            DueKind::Release => "release",
            DueKind::Reminder => "reminder",
            DueKind::Expiry => "expiry",
            DueKind::Ready => "ready",
            DueKind::Bonus => "bonus",
        };
        let item = match (&self.due.order, &self.due.customer) {
            (Some(order), _) => format!("order:{order}"),
            (None, Some(customer)) => format!("customer:{customer}"),
            (None, None) => "none".to_string(),
        };
        format!("{kind}#{item}#{}", self.due.due_at.to_rfc3339())
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// Opaque; pass back to continue. None when there is no more.
    pub next: Option<String>,
}

/// Due work is spread over this many shards per hour bucket, so one hot
/// hour does not land on one index partition.
pub const DUE_SHARDS: u32 = 4;

/// The hour bucket a due time falls in (`2026-11-23T10`): the core's rule,
/// named as the port's `due` queries take it.
pub use cashback_core::due::bucket as due_bucket;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed an item this write read: read again and retry.
    #[error("concurrent change to {0}")]
    Conflict(String),
    /// A coupon's use limit would be passed.
    #[error("coupon use limit reached for {0}")]
    CouponLimit(Code),
    /// A code is taken by another account.
    #[error("code already in use")]
    CodeTaken,
    /// The item to create already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The store refused a write that would make a balance negative: the
    /// decision was made on stale data. Retry from a fresh read.
    #[error("balance condition failed for account {0}")]
    BalanceCondition(CustomerId),
    /// Throttled or a transient service failure: retry later. The
    /// service's own error is kept as the source.
    #[error(transparent)]
    Unavailable(Unreachable),
    /// An item could not be decoded: a bug or manual edit, never retried.
    #[error("corrupt item {key}: {message}")]
    Corrupt {
        /// The item's key (codes and emails redacted).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// Any other failure: not retried.
    #[error("store request failed: {0}")]
    Other(String),
    /// A page cursor the caller sent is not one this store returned for
    /// that query (garbled, cut short, or from another list): the caller's
    /// mistake, answered 400.
    #[error("the page cursor is not valid: {0}")]
    InvalidCursor(String),
}

/// Why the store could not be reached: what failed, and the service's own
/// error (the SDK's, with its cause chain) kept as the source, so a log of
/// the chain shows it. Built from a message alone with `.into()`.
#[derive(Debug, Clone)]
pub struct Unreachable {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Unreachable {
    /// The failure `message`, caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Unreachable {
        Unreachable {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store unavailable: {}", self.message)
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Unreachable {
    fn from(message: String) -> Unreachable {
        Unreachable {
            message,
            source: None,
        }
    }
}

impl From<&str> for Unreachable {
    fn from(message: &str) -> Unreachable {
        Unreachable::from(message.to_string())
    }
}

impl StoreError {
    /// Retrying from a fresh read may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict(_) | StoreError::BalanceCondition(_)
        )
    }

    /// Retrying (from a fresh read, or later) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.is_conflict() || matches!(self, StoreError::Unavailable(_))
    }
}

/// Round trips made so far, by operation; tests assert budgets with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Batch and single reads.
    pub reads: u64,
    /// Transactions and single writes.
    pub writes: u64,
    /// Queries (due work, lists, aggregates).
    pub queries: u64,
    /// Everything else.
    pub other: u64,
}

impl RequestCounts {
    /// All round trips.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.queries + self.other
    }
}

/// The port: what the use cases need from persistence. Implemented by the
/// DynamoDB and in-memory adapters of shared/store, which the conformance
/// suite holds to the same behaviour.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// One consistent batch read.
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError>;

    /// One atomic write of everything a decision changed.
    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError>;

    /// A shop, if onboarded.
    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError>;

    /// Creates a shop; AlreadyExists if it does.
    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError>;

    /// The shop's current program and its version.
    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError>;

    /// Replaces the program if it is still at `expected_version` (0 to
    /// create), keeping the previous version; returns the new version.
    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// A previous program version, as it was.
    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError>;

    /// Creates (expected 0) or updates a coupon.
    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError>;

    /// A limited coupon's sub-counters ([`crate::coupon_shards`]), all
    /// [`SHARDS`](crate::coupon_shards::SHARDS) of them in shard order
    /// (count 0 and no cap for one never written), read consistently in
    /// one call.
    async fn coupon_shards(
        &self,
        shop: &ShopId,
        code: &Code,
    ) -> Result<Vec<crate::coupon_shards::CouponShard>, StoreError>;

    /// Sets the caps of a coupon's sub-counters for a total limit of
    /// `limit` ([`crate::coupon_shards::caps`]), counting every use
    /// already taken: the shards' counts, the coupon's own count, and the
    /// orders' uses the change feed has not counted yet. None removes the
    /// caps (the coupon is no longer limited; the counts stay). Refused
    /// with [`StoreError::Conflict`] when a shard took more than its new
    /// cap meanwhile (read again and retry).
    async fn set_coupon_caps(
        &self,
        shop: &ShopId,
        code: &Code,
        limit: Option<u32>,
    ) -> Result<(), StoreError>;

    /// A page of the shop's coupons, in code order.
    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError>;

    /// An account's ledger, newest first.
    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError>;

    /// Work of `kind` in one bucket and shard that is due at or before `up_to`.
    async fn due(
        &self,
        kind: DueKind,
        bucket: &str,
        shard: u32,
        up_to: DateTime<Utc>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<DueRef>, StoreError>;

    /// A scheduled job's checkpoint: the last bucket it finished.
    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError>;

    /// Records the last bucket a scheduled job finished.
    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError>;

    /// Parks a due item: records `item` (parking it again replaces the
    /// record) and takes the account or order it names out of that kind's
    /// due index if it is still filed at `item.due.due_at` (one written
    /// since stays where that write filed it).
    async fn park(&self, item: &ParkedItem) -> Result<(), StoreError>;

    /// A page of the shop's parked items, in [`ParkedItem::sort_key`] order.
    async fn list_parked(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError>;

    /// Adds one to a counter that lives until `expires_at`; returns the count.
    /// For rate limits (unknown codes per caller per window).
    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Round trips so far (tests assert budgets with it).
    fn request_counts(&self) -> RequestCounts;

    /// Imports catalog products, each replacing what was stored for it.
    /// Not atomic across the batch; each product is written whole, so a
    /// retried import converges.
    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError>;

    /// The shop's figures for every day up to and including `to`, and its
    /// customer counters now, as a report of `from..=to` reads them: whole
    /// months as month items where [`ShopAggregates::whole_month`] allows,
    /// days elsewhere. A bounded number of queries, never a scan of the
    /// ledger; a report over years reads a few dozen month items.
    async fn aggregates(
        &self,
        shop: &ShopId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError>;

    /// A page of the shop's accounts, in customer id order (for exports).
    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError>;

    /// Stores a new API key record; AlreadyExists if its id is taken.
    async fn create_api_key(&self, shop: &ShopId, key: &ApiKeyRecord) -> Result<(), StoreError>;

    /// Every key record of a shop, revoked ones too, in id order (a shop
    /// holds at most a few dozen: one query).
    async fn list_api_keys(&self, shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Marks a key revoked at `at`, once: a second revocation keeps the first time.
    async fn revoke_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError>;

    /// Records that a key was used at `at` (never moves the time back); a
    /// key that does not exist is left alone.
    async fn touch_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    // ---- The shop's lifecycle and its customers' privacy (Shopify's
    // ---- app/uninstalled and compliance topics; docs/compliance.md). Each
    // ---- has a refusing default so a store that does not keep them says so.

    /// Marks the shop uninstalled at `at` (None: installed again). Kept on
    /// the shop's record; code syncing reads it with
    /// [`Store::shop_uninstalled_at`]. A shop that does not exist is
    /// [`StoreError::Other`].
    async fn set_shop_uninstalled(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let _ = (shop, at);
        Err(StoreError::Other(
            "this store does not keep the shop's installation".into(),
        ))
    }

    /// When the shop was uninstalled, if it is now.
    async fn shop_uninstalled_at(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let _ = shop;
        Err(StoreError::Other(
            "this store does not keep the shop's installation".into(),
        ))
    }

    /// Forgets that `email` belongs to `customer` (the email-owner index),
    /// when it still does; an address owned by another account, or by
    /// none, is left alone. Idempotent.
    async fn forget_email(
        &self,
        shop: &ShopId,
        email: &Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        let _ = (shop, email, customer);
        Err(StoreError::Other(
            "this store cannot forget an email".into(),
        ))
    }

    /// Deletes every item of the shop: its record, program and versions,
    /// coupons and their counters, accounts, ledgers, orders, code, email
    /// and referral indexes, catalog, aggregates, API keys, event guards
    /// and notification markers. Idempotent and resumable: a call that
    /// fails part way deletes the rest when repeated. The shop's record
    /// goes last, so a repeated request still finds (and verifies) it.
    /// Returns how many items were deleted.
    async fn delete_shop_data(&self, shop: &ShopId) -> Result<u64, StoreError> {
        let _ = shop;
        Err(StoreError::Other("this store cannot delete a shop".into()))
    }

    /// Where the shop's outgoing event endpoints and their deliveries are
    /// kept (docs/outgoing-events.md); None for a store that keeps none.
    fn event_endpoints(&self) -> Option<&dyn crate::outgoing::EndpointStore> {
        None
    }

    // ---- The code sync's record per shop (docs/platform-sync.md). A
    // ---- refusing default, as above.

    /// Adds `note` to the shop's [`SyncRecord`] (made on first use).
    async fn note_sync(&self, shop: &ShopId, note: &SyncNote) -> Result<(), StoreError> {
        let _ = (shop, note);
        Err(StoreError::Other(
            "this store does not keep the code sync's record".into(),
        ))
    }

    /// The shop's [`SyncRecord`] (the default one when nothing was noted).
    async fn sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        let _ = shop;
        Err(StoreError::Other(
            "this store does not keep the code sync's record".into(),
        ))
    }
}
