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

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use cashback_core::coupon::CashbackCoupon;
use cashback_core::ids::{Code, CollectionId, CustomerId, Email, OrderId, ProductId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::money::{Currency, Money};
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

/// The prefix every `env:` secret reference must name a variable under:
/// a shop's reference can then never point at another setting of the
/// function (its AWS keys, the link secret, or a value anyone knows such as
/// `AWS_REGION`, which would let anyone sign that shop's webhooks).
pub const ENV_SECRET_PREFIX: &str = "CASHBACK_SECRET_";

/// The shortest webhook secret accepted.
pub const MIN_WEBHOOK_SECRET_LENGTH: usize = 16;

/// Why a `webhook_secret_ref` cannot be used, or None when it can:
/// `env:CASHBACK_SECRET_<NAME>` or `ssm:/parameter/name`.
pub fn secret_ref_problem(reference: &str) -> Option<String> {
    let reference = reference.trim();
    if let Some(name) = reference.strip_prefix("env:") {
        let suffix = name.strip_prefix(ENV_SECRET_PREFIX).unwrap_or_default();
        let valid =
            !suffix.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (!valid).then(|| {
            format!("env: must name a variable {ENV_SECRET_PREFIX}<NAME> (letters, digits and _)")
        })
    } else if let Some(name) = reference.strip_prefix("ssm:") {
        // SSM names: letters, digits and .-_/ ; at most 2048 characters.
        let valid = !name.is_empty()
            && name.len() <= 2048
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        (!valid).then(|| "ssm: needs a parameter name such as /cashback/shop/webhook".to_string())
    } else {
        Some(format!(
            "expected env:{ENV_SECRET_PREFIX}<NAME> or ssm:/parameter/name"
        ))
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
    /// The shop's secret for guest ids (hex), made at onboarding and never
    /// shown. None for shops onboarded before guest ids were keyed: their
    /// guests keep the unkeyed ids their accounts already have.
    #[serde(default)]
    pub guest_id_key: Option<String>,
}

impl Shop {
    /// The account a guest (an email, no customer id) earns on at this shop.
    pub fn guest_id(&self, email: &Email) -> CustomerId {
        match self.guest_id_key.as_deref().filter(|k| !k.is_empty()) {
            Some(key) => CustomerId::for_guest_keyed(email, key.as_bytes()),
            None => CustomerId::for_guest(email),
        }
    }
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
    /// Balance codes to resolve to the customer they belong to. A code its
    /// owner has replaced still resolves (an order placed with it is still
    /// theirs to pay); the owner's account names the current one.
    pub code_owners: Vec<Code>,
    /// Referral codes to resolve to the customer who shares them. A
    /// separate index from balance codes: one never reads as the other.
    pub referral_owners: Vec<Code>,
    /// Emails to resolve to the customer (the latest account using it).
    pub email_owners: Vec<Email>,
    /// Products to look up in the imported catalog (to enrich order lines
    /// with collections and compare-at prices in the same read).
    pub products: Vec<ProductId>,
    /// Rate-limit counters (as [`Store::increment_counter`] names them) to
    /// read with the rest: a limit checked at no extra round trip.
    pub counters: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadResult {
    pub order: Option<Versioned<OrderRecord>>,
    pub accounts: HashMap<CustomerId, Versioned<Account>>,
    pub coupons: HashMap<Code, Versioned<CouponRecord>>,
    pub coupon_uses: HashMap<(Code, UsageKey), u32>,
    pub code_owners: HashMap<Code, CustomerId>,
    pub referral_owners: HashMap<Code, CustomerId>,
    pub email_owners: HashMap<Email, CustomerId>,
    /// The requested products the catalog knows.
    pub products: HashMap<ProductId, CatalogProduct>,
    /// Each requested counter's count (0 for one never incremented).
    pub counters: HashMap<String, u64>,
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
    /// stops working at checkout but stays its owner's in the index, so an
    /// order already placed with it is still charged to them.
    pub code_change: Option<CodeChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    pub new_code: Code,
    pub old_code: Option<Code>,
    /// A referral code to claim for the account (must be free in the
    /// referral index; claiming it again for the same account is a no-op).
    pub referral_code: Option<Code>,
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
    /// A page cursor the caller sent is not one this store returned for
    /// that query (garbled, cut short, or from another list): the caller's
    /// mistake, answered 400.
    #[error("the page cursor is not valid: {0}")]
    InvalidCursor(String),
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

    /// Imports catalog products, each replacing what was stored for it.
    /// Not atomic across the batch; each product is written whole, so a
    /// retried import converges.
    async fn put_catalog(
        &self,
        _shop: &ShopId,
        _products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        Err(unsupported("put_catalog"))
    }

    /// The shop's day figures for every day up to and including `up_to`,
    /// and its customer counters now: a bounded number of queries (one per
    /// aggregate shard), never a scan of the ledger.
    async fn aggregates(
        &self,
        _shop: &ShopId,
        _up_to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        Err(unsupported("aggregates"))
    }

    /// A page of the shop's accounts, in customer id order (for exports).
    async fn list_accounts(
        &self,
        _shop: &ShopId,
        _cursor: Option<String>,
        _limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        Err(unsupported("list_accounts"))
    }

    /// Stores a new API key record; AlreadyExists if its id is taken.
    async fn create_api_key(&self, _shop: &ShopId, _key: &ApiKeyRecord) -> Result<(), StoreError> {
        Err(unsupported("create_api_key"))
    }

    /// Every key record of a shop, revoked ones too, in id order (a shop
    /// holds at most a few dozen: one query).
    async fn list_api_keys(&self, _shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        Err(unsupported("list_api_keys"))
    }

    /// Marks a key revoked at `at`, once: a second revocation keeps the first time.
    async fn revoke_api_key(
        &self,
        _shop: &ShopId,
        _key_id: &str,
        _at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        Err(unsupported("revoke_api_key"))
    }

    /// Records that a key was used at `at` (never moves the time back); a
    /// key that does not exist is left alone.
    async fn touch_api_key(
        &self,
        _shop: &ShopId,
        _key_id: &str,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Err(unsupported("touch_api_key"))
    }
}

// ---- API keys with scopes: several live keys per shop, each stored as its
// ---- SHA-256, with what it may do, when it was last used and revoked.

/// What an API key may do. A key holds one or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// A checkout: validate a code it was given and hold balance for it.
    Checkout,
    /// The shop's portal server: read one customer's view of their cashback.
    PortalServer,
}

impl KeyScope {
    pub const ALL: [KeyScope; 2] = [KeyScope::Checkout, KeyScope::PortalServer];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Checkout => "checkout",
            KeyScope::PortalServer => "portal_server",
        }
    }
}

/// An API key as stored: never the key, only its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_` and 16 hex digits; names the key in the admin API and logs.
    pub key_id: String,
    /// What the merchant calls it ("WooCommerce checkout").
    pub name: String,
    pub scopes: Vec<KeyScope>,
    pub hash: String,
    /// The key's first characters, so a merchant can tell keys apart.
    pub hint: String,
    pub created_at: DateTime<Utc>,
    /// Who created it (an IAM principal, or "admin-token").
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Recorded at most every few minutes per container, so a busy key is
    /// not a hot item (`cashback_app::api_keys::LAST_USED_EVERY_SECONDS`).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKeyRecord {
    pub fn allows(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// What a revocation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked by this call.
    Now,
    /// Revoked before, at this time.
    Already(DateTime<Utc>),
    /// No such key.
    Missing,
}

// ---- Additions for the admin API (issue 8). Every new method has a default
// ---- body, so adapters and wrappers written before them still compile; the
// ---- two adapters in shared/store implement them all.

/// What the merchant imported about a product, for the exclusions the
/// platform's order payload cannot express (collections, compare-at price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogProduct {
    pub product_id: ProductId,
    #[serde(default)]
    pub collection_ids: Vec<CollectionId>,
    /// Price before a sale, in the shop's currency; a line sold below it is
    /// a sale item.
    #[serde(default)]
    pub compare_at_price: Option<Money>,
}

impl CatalogProduct {
    /// Fills in what the platform left out of a line: what the platform
    /// itself says about the line wins over the imported catalog.
    pub fn enrich(&self, line: &mut cashback_core::order::Line) {
        if line.collection_ids.is_empty() {
            line.collection_ids = self.collection_ids.clone();
        }
        if line.compare_at_price.is_none() {
            line.compare_at_price = self.compare_at_price;
        }
    }
}

/// Most products one `put_catalog` call takes (the API's batch size).
pub const MAX_CATALOG_BATCH: usize = 500;

/// Running aggregates are spread over this many items per shop and day
/// (by a hash of the customer), so concurrent transactions for different
/// customers rarely touch the same aggregate item (DynamoDB cancels
/// transactions that touch one item at the same moment).
pub const AGGREGATE_SHARDS: u32 = 4;

/// The aggregate shard a customer's changes are added to.
pub fn aggregate_shard(customer: &CustomerId) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(customer.as_str().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % AGGREGATE_SHARDS
}

/// Sums of one kind of ledger entry: the deltas as the entries carry them
/// (signed), the funding split, and the positive available deltas alone
/// (an adjustment's credits, apart from its debits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSums {
    pub available: Decimal,
    pub pending: Decimal,
    pub debt: Decimal,
    pub merchant: Decimal,
    pub partner: Decimal,
    pub credited: Decimal,
}

impl KindSums {
    /// Field names as stored (attribute `{kind}_{field}` in DynamoDB).
    pub const FIELDS: [&'static str; 6] = [
        "available",
        "pending",
        "debt",
        "merchant",
        "partner",
        "credited",
    ];

    pub fn get(&self, field: &str) -> Option<Decimal> {
        Some(match field {
            "available" => self.available,
            "pending" => self.pending,
            "debt" => self.debt,
            "merchant" => self.merchant,
            "partner" => self.partner,
            "credited" => self.credited,
            _ => return None,
        })
    }

    pub fn get_mut(&mut self, field: &str) -> Option<&mut Decimal> {
        Some(match field {
            "available" => &mut self.available,
            "pending" => &mut self.pending,
            "debt" => &mut self.debt,
            "merchant" => &mut self.merchant,
            "partner" => &mut self.partner,
            "credited" => &mut self.credited,
            _ => return None,
        })
    }

    fn add(&mut self, other: &KindSums) {
        for field in KindSums::FIELDS {
            if let (Some(mine), Some(theirs)) = (self.get_mut(field), other.get(field)) {
                *mine += theirs;
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        KindSums::FIELDS
            .iter()
            .all(|f| self.get(f).is_none_or(|v| v.is_zero()))
    }
}

/// One shop's ledger entries of one day (UTC), summed by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    pub earn: KindSums,
    pub release: KindSums,
    pub redeem: KindSums,
    pub restore: KindSums,
    pub clawback: KindSums,
    pub adjust: KindSums,
    pub expire: KindSums,
}

impl DayFigures {
    /// Kind names as stored (the `{kind}` of `{kind}_{field}`).
    pub const KINDS: [&'static str; 7] = [
        "earn", "release", "redeem", "restore", "clawback", "adjust", "expire",
    ];

    pub fn kind(&self, name: &str) -> Option<&KindSums> {
        Some(match name {
            "earn" => &self.earn,
            "release" => &self.release,
            "redeem" => &self.redeem,
            "restore" => &self.restore,
            "clawback" => &self.clawback,
            "adjust" => &self.adjust,
            "expire" => &self.expire,
            _ => return None,
        })
    }

    pub fn kind_mut(&mut self, name: &str) -> Option<&mut KindSums> {
        Some(match name {
            "earn" => &mut self.earn,
            "release" => &mut self.release,
            "redeem" => &mut self.redeem,
            "restore" => &mut self.restore,
            "clawback" => &mut self.clawback,
            "adjust" => &mut self.adjust,
            "expire" => &mut self.expire,
            _ => return None,
        })
    }

    fn of_kind(&mut self, kind: EntryKind) -> &mut KindSums {
        match kind {
            EntryKind::Earn => &mut self.earn,
            EntryKind::Release => &mut self.release,
            EntryKind::Redeem => &mut self.redeem,
            EntryKind::Restore => &mut self.restore,
            EntryKind::Clawback => &mut self.clawback,
            EntryKind::Adjust => &mut self.adjust,
            EntryKind::Expire => &mut self.expire,
        }
    }

    /// Adds one entry to its kind's sums.
    pub fn add_entry(&mut self, entry: &LedgerEntry) {
        let sums = self.of_kind(entry.kind);
        let available = entry.available_delta.amount();
        sums.available += available;
        sums.pending += entry.pending_delta.amount();
        sums.debt += entry.debt_delta.amount();
        if let Some(funding) = &entry.funding {
            sums.merchant += funding.merchant.amount();
            sums.partner += funding.partner.amount();
        }
        if available > Decimal::ZERO {
            sums.credited += available;
        }
    }

    pub fn add(&mut self, other: &DayFigures) {
        for name in DayFigures::KINDS {
            if let (Some(mine), Some(theirs)) = (self.kind_mut(name), other.kind(name)) {
                mine.add(theirs);
            }
        }
    }

    /// Every non-zero `({kind}_{field}, value)`: what an adapter adds.
    pub fn nonzero_fields(&self) -> Vec<(String, Decimal)> {
        let mut fields = Vec::new();
        for name in DayFigures::KINDS {
            if let Some(sums) = self.kind(name) {
                for field in KindSums::FIELDS {
                    if let Some(value) = sums.get(field).filter(|v| !v.is_zero()) {
                        fields.push((format!("{name}_{field}"), value));
                    }
                }
            }
        }
        fields
    }

    /// Sets `{kind}_{field}` (as read back from an adapter); false if the
    /// name is not one of ours.
    pub fn set_field(&mut self, name: &str, value: Decimal) -> bool {
        let Some((kind, field)) = name.split_once('_') else {
            return false;
        };
        match self.kind_mut(kind).and_then(|k| k.get_mut(field)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    pub fn is_zero(&self) -> bool {
        DayFigures::KINDS
            .iter()
            .all(|k| self.kind(k).is_none_or(KindSums::is_zero))
    }
}

/// What the customer counters need to know of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountStats {
    pub tier: Option<usize>,
    pub orders_earned: u32,
}

impl AccountStats {
    pub fn of(account: &Account) -> AccountStats {
        AccountStats {
            tier: account.tier,
            orders_earned: account.orders_earned,
        }
    }
}

/// Customer counters of a shop (or changes to them): accounts, customers
/// who earned on at least one order, on two or more, and accounts by tier
/// (`"none"` or the tier's index as a string).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCounts {
    pub customers: i64,
    pub earners: i64,
    pub repeaters: i64,
    pub tiers: BTreeMap<String, i64>,
}

impl CustomerCounts {
    pub fn tier_key(tier: Option<usize>) -> String {
        tier.map_or_else(|| "none".to_string(), |t| t.to_string())
    }

    /// The change an account write makes to the counters, from the
    /// account's state before (None: the account is new) and after.
    pub fn change(before: Option<AccountStats>, after: &Account) -> CustomerCounts {
        let after = AccountStats::of(after);
        let mut change = CustomerCounts::default();
        let old = before.unwrap_or_default();
        if before.is_none() {
            change.customers = 1;
        }
        let step = |was: bool, is: bool| i64::from(is) - i64::from(was);
        change.earners = step(old.orders_earned >= 1, after.orders_earned >= 1);
        change.repeaters = step(old.orders_earned >= 2, after.orders_earned >= 2);
        if before.is_none() || old.tier != after.tier {
            if before.is_some() {
                *change
                    .tiers
                    .entry(CustomerCounts::tier_key(old.tier))
                    .or_default() -= 1;
            }
            *change
                .tiers
                .entry(CustomerCounts::tier_key(after.tier))
                .or_default() += 1;
        }
        change
    }

    pub fn add(&mut self, other: &CustomerCounts) {
        self.customers += other.customers;
        self.earners += other.earners;
        self.repeaters += other.repeaters;
        for (tier, count) in &other.tiers {
            *self.tiers.entry(tier.clone()).or_default() += count;
        }
    }

    /// Every non-zero `(name, value)`: `customers`, `earners`, `repeaters`, `tier_{key}`.
    pub fn nonzero_fields(&self) -> Vec<(String, i64)> {
        let mut fields: Vec<(String, i64)> = [
            ("customers", self.customers),
            ("earners", self.earners),
            ("repeaters", self.repeaters),
        ]
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(n, v)| (n.to_string(), v))
        .collect();
        for (tier, count) in &self.tiers {
            if *count != 0 {
                fields.push((format!("tier_{tier}"), *count));
            }
        }
        fields
    }

    /// Sets a field read back from an adapter; false if it is not one of ours.
    pub fn set_field(&mut self, name: &str, value: i64) -> bool {
        match name {
            "customers" => self.customers = value,
            "earners" => self.earners = value,
            "repeaters" => self.repeaters = value,
            _ => match name.strip_prefix("tier_") {
                Some(tier) => {
                    self.tiers.insert(tier.to_string(), value);
                }
                None => return false,
            },
        }
        true
    }

    pub fn is_zero(&self) -> bool {
        self.nonzero_fields().is_empty()
    }
}

/// What one write adds to one aggregate shard: the day figures of its
/// entries (by the day of each entry) and the change to the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AggregateChange {
    pub days: BTreeMap<NaiveDate, DayFigures>,
    pub counts: CustomerCounts,
}

/// The aggregate changes of a write, by shard: the one rule both adapters
/// apply inside `write`, in the same transaction as the entries. `before`
/// gives an existing account's state as of the version the write expects.
/// Entries with the same time and id count once (the ledger keeps one).
pub fn aggregate_changes(
    writes: &WriteSet,
    before: impl Fn(&AccountWrite) -> Option<AccountStats>,
) -> BTreeMap<u32, AggregateChange> {
    let mut changes: BTreeMap<u32, AggregateChange> = BTreeMap::new();
    for write in &writes.accounts {
        let shard = aggregate_shard(&write.account.customer);
        let change = changes.entry(shard).or_default();
        let mut seen = std::collections::HashSet::new();
        for entry in write.entries.iter().rev() {
            if !seen.insert((entry.at, entry.entry_id.clone())) {
                continue;
            }
            change
                .days
                .entry(entry.at.date_naive())
                .or_default()
                .add_entry(entry);
        }
        let old = if write.expected_version == 0 {
            None
        } else {
            Some(before(write).unwrap_or_default())
        };
        change
            .counts
            .add(&CustomerCounts::change(old, &write.account));
    }
    changes.retain(|_, change| {
        change.days.retain(|_, figures| !figures.is_zero());
        !change.days.is_empty() || !change.counts.is_zero()
    });
    changes
}

/// A shop's aggregates: day figures up to a date, and the counters now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShopAggregates {
    pub days: BTreeMap<NaiveDate, DayFigures>,
    pub counts: CustomerCounts,
}

impl ShopAggregates {
    /// Adds one shard's (or one item's) figures.
    pub fn add_day(&mut self, day: NaiveDate, figures: &DayFigures) {
        self.days.entry(day).or_default().add(figures);
    }
}

/// The error of a port method an adapter (or a test wrapper written before
/// it) does not implement: the default bodies keep the port change additive.
pub(crate) fn unsupported(what: &str) -> StoreError {
    StoreError::Other(format!("{what} is not supported by this store"))
}
