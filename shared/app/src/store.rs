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

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::coupon::CashbackCoupon;
use cashback_core::ids::{Code, CustomerId, Email, OrderId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::Currency;
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;

/// A value and the version it was read at. Version 0 means "does not exist
/// yet": writing it creates it, and fails if someone created it meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

impl<T> Versioned<T> {
    pub fn new(value: T) -> Versioned<T> {
        Versioned { value, version: 0 }
    }
}

/// A shop that has been onboarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shop {
    pub shop: ShopId,
    pub platform: Platform,
    pub currency: Currency,
    pub name: String,
    /// Where the webhook secrets live (an env var or SSM parameter name):
    /// never the secret itself.
    pub webhook_secret_ref: String,
    /// SHA-256 (hex) of the shop's API key; the key is shown once.
    pub api_key_hash: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Shopify,
    Woocommerce,
    Generic,
}

/// A cashback coupon with its running use count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRecord {
    pub coupon: CashbackCoupon,
    pub uses: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whose uses of a coupon a counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "by", content = "key", rename_all = "snake_case")]
pub enum UsageKey {
    Customer(CustomerId),
    /// A normalised email, so a new account with the same address does not
    /// reset the per-customer limit.
    Email(Email),
}

/// What a use case wants in its single read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadRequest {
    pub order: Option<OrderId>,
    pub accounts: Vec<CustomerId>,
    pub coupons: Vec<Code>,
    pub coupon_uses: Vec<(Code, UsageKey)>,
    /// Codes to resolve to the customer they belong to.
    pub code_owners: Vec<Code>,
    /// Emails to resolve to the customer (the latest account using it).
    pub email_owners: Vec<Email>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    pub order: Option<Versioned<OrderRecord>>,
    pub accounts: HashMap<CustomerId, Versioned<Account>>,
    pub coupons: HashMap<Code, Versioned<CouponRecord>>,
    pub coupon_uses: HashMap<(Code, UsageKey), u32>,
    pub code_owners: HashMap<Code, CustomerId>,
    pub email_owners: HashMap<Email, CustomerId>,
}

/// The new state of an account and the entries that got it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountWrite {
    pub account: Account,
    /// The version read; 0 to create the account.
    pub expected_version: u64,
    pub entries: Vec<LedgerEntry>,
    /// When the next reminder is due (the program decides), or None.
    pub reminder_due_at: Option<DateTime<Utc>>,
    /// The account's code changes: the new code must be free; the old one
    /// is released.
    pub code_change: Option<CodeChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    pub new_code: Code,
    pub old_code: Option<Code>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderWrite {
    pub record: OrderRecord,
    pub expected_version: u64,
}

/// One use of a coupon taken (+1) or given back (-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponUseChange {
    pub code: Code,
    pub customer: CustomerId,
    pub email: Option<Email>,
    pub delta: i32,
    /// Limits checked by the store on +1, so two orders racing for the last
    /// use cannot both get it.
    pub limit_total: Option<u32>,
    pub limit_per_customer: Option<u32>,
}

/// A guard makes a write happen at most once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub key: String,
    /// When the guard may be forgotten (DynamoDB TTL).
    pub expires_at: DateTime<Utc>,
    /// Stored with the guard and handed back on a duplicate (e.g. the first
    /// response to an idempotent API call).
    pub response: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    pub guard: Option<Guard>,
    pub accounts: Vec<AccountWrite>,
    pub order: Option<OrderWrite>,
    pub coupon_uses: Vec<CouponUseChange>,
    /// Emails recorded as sent by this change (each key at most once; a key
    /// already recorded fails the write as a duplicate).
    pub notifications: Vec<String>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.guard.is_none()
            && self.accounts.is_empty()
            && self.order.is_none()
            && self.coupon_uses.is_empty()
            && self.notifications.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    /// The guard (or a notification key) existed: nothing was written.
    /// Carries the guard's stored response, if any.
    Duplicate {
        response: Option<String>,
    },
}

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
}

/// Something due, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueRef {
    pub shop: ShopId,
    pub customer: Option<CustomerId>,
    pub order: Option<OrderId>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass back to continue. None when there is no more.
    pub next: Option<String>,
}

/// Due work is spread over this many shards per hour bucket, so one hot
/// hour does not land on one index partition.
pub const DUE_SHARDS: u32 = 4;

/// The hour bucket a due time falls in: `2026-11-23T10`.
pub fn due_bucket(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed an item this write read: read again and retry.
    #[error("concurrent change to {0}")]
    Conflict(String),
    /// A coupon's use limit would be passed.
    #[error("coupon use limit reached for {0}")]
    CouponLimit(String),
    /// A code is taken by another account.
    #[error("code already in use")]
    CodeTaken,
    /// The item to create already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The store refused a write that would make a balance negative: the
    /// decision was made on stale data. Retry from a fresh read.
    #[error("balance condition failed for {0}")]
    BalanceCondition(String),
    /// Throttled or a transient service failure: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item could not be decoded: a bug or manual edit, never retried.
    #[error("corrupt item {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("store request failed: {0}")]
    Other(String),
}

impl StoreError {
    /// Retrying from a fresh read may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict(_) | StoreError::BalanceCondition(_)
        )
    }

    pub fn is_retryable(&self) -> bool {
        self.is_conflict() || matches!(self, StoreError::Unavailable(_))
    }
}

/// Round trips made so far, by operation; tests assert budgets with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub reads: u64,
    pub writes: u64,
    pub queries: u64,
    pub other: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.queries + self.other
    }
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// One consistent batch read.
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError>;

    /// One atomic write of everything a decision changed.
    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError>;

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError>;

    /// Creates a shop; AlreadyExists if it does.
    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError>;

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

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError>;

    /// Adds one to a counter that lives until `expires_at`; returns the count.
    /// For rate limits (unknown codes per caller per window).
    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Round trips so far (tests assert budgets with it).
    fn request_counts(&self) -> RequestCounts;
}
