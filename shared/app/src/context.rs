//! What every use case is given: the ports, configuration, and the warm
//! container's cache of shops and programs.
//!
//! The cache is why an order event costs one read: a shop and its program
//! change rarely, so a warm Lambda keeps them for a short TTL instead of
//! reading them for every webhook. A shop the store does not know is
//! remembered as unknown for the same TTL: a shop onboarded meanwhile is
//! served by every container within a minute. A program change reaches every container
//! within the TTL; earned cashback is never recomputed, so an order decided
//! under the previous program keeps what it earned.
//!
//! Cashback coupons' definitions are cached the same way, by code (a code
//! that is no coupon too, so a balance code costs no coupon read), and
//! forgotten when this container edits the coupon. Only the definition is
//! cached: whether a use may be taken is the store's to decide, on the
//! coupon's counters at the moment of the write ([`crate::coupon_shards`]),
//! so a definition up to a TTL old never lets a use past the limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use cashback_core::ids::{Code, ShopId, GENERATED_CODE_LENGTH};
use cashback_core::program::Program;

use crate::admin::TableExports;
use crate::api_keys::KeyCache;
use crate::checkout::GuessBlocks;
use crate::error::AppError;
use crate::marketing::MarketingAccounts;
use crate::notify::{Notification, Notifier, NotifyError, Sent};
use crate::secret_keys::{KeySet, SecretKeys};
use crate::store::{CouponRecord, Shop, Store, Versioned};

/// Unknown shops remembered at most (a flood of made-up names cannot grow
/// a container's memory past this).
pub const MAX_UNKNOWN_SHOPS: usize = 10_000;

/// Coupon codes (and codes found to be no coupon) cached at most: codes
/// come from carts, so a flood of made-up ones cannot grow a container's
/// memory past this.
pub const MAX_CACHED_COUPONS: usize = 10_000;

/// Random bytes for new customer codes. Production uses the OS CSPRNG;
/// tests can pass a deterministic source.
pub trait CodeSource: Send + Sync {
    /// Fills a new code's random part; every call must give fresh,
    /// unpredictable bytes (a guessable code is someone's balance).
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH];
}

/// Printed before every referral code.
pub const REFERRAL_CODE_PREFIX: &str = "REF";

/// The settings every use case reads, from the function's environment.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Printed before every generated customer code ("CB-...").
    pub code_prefix: String,
    /// Public base URL of the API, for links in emails (unsubscribe).
    pub public_base_url: String,
    /// Keys that sign and check links and forms: given, or read on first
    /// use ([`crate::secret_keys`]).
    pub link_keys: SecretKeys,
    /// How long shops and programs stay cached in a warm container.
    pub cache_ttl_seconds: i64,
    /// How many times a use case retries after losing to a concurrent writer.
    pub max_attempts: u32,
    /// How long a request's use case keeps retrying conflicts and throttles,
    /// attempts and pauses together (`cashback_app::retry`).
    pub retry_budget: std::time::Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            code_prefix: "CB".into(),
            public_base_url: "http://127.0.0.1:3000".into(),
            link_keys: SecretKeys::fixed(KeySet {
                current: b"development-only-link-secret".to_vec(),
                previous: Vec::new(),
            }),
            cache_ttl_seconds: 60,
            max_attempts: 25,
            retry_budget: crate::retry::Backoff::REQUEST.budget,
        }
    }
}

/// Where the HTTP handlers read "now" from: the wall clock on Lambda; the
/// local server's virtual clock there, so every route, webhook and job
/// agrees on the time.
pub type NowSource = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What every use case is handed: the ports, the configuration and the warm
/// container's caches. Cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Context {
    /// Accounts, ledgers, shops and programs, written atomically per use case.
    pub store: Arc<dyn Store>,
    /// Sends the customer emails.
    pub notifier: Arc<dyn Notifier>,
    /// Random bytes for new customer codes.
    pub codes: Arc<dyn CodeSource>,
    /// The settings read at start-up.
    pub config: Arc<AppConfig>,
    /// Exports of the table to S3, where the deployment has them
    /// (DynamoDB and an export bucket).
    pub table_exports: Option<Arc<dyn TableExports>>,
    cache: Arc<Mutex<HashMap<ShopId, CachedShop>>>,
    clock: NowSource,
    /// Shops the store did not know, and when it said so: asked again only
    /// after the cache TTL, so a flood of requests for a made-up shop costs
    /// one read a minute, not one each.
    unknown: Arc<Mutex<HashMap<ShopId, DateTime<Utc>>>>,
    /// Coupon definitions by (shop, code), None for a code that is no
    /// coupon, with when they were read.
    coupons: Arc<Mutex<HashMap<(ShopId, Code), CachedCoupon>>>,
    /// The shops' API keys as this container last read them.
    pub(crate) keys: Arc<KeyCache>,
    /// Sources this container saw guessing codes past the limit.
    pub(crate) guesses: Arc<GuessBlocks>,
    /// Which shops have a Klaviyo key (checked when a program that sends
    /// Klaviyo events is saved); None: Klaviyo is not set up here.
    marketing_accounts: Option<Arc<dyn MarketingAccounts>>,
}

#[derive(Clone)]
struct CachedCoupon {
    record: Option<Versioned<CouponRecord>>,
    fetched_at: DateTime<Utc>,
}

#[derive(Clone)]
struct CachedShop {
    shop: Shop,
    program: Option<Versioned<Program>>,
    fetched_at: DateTime<Utc>,
}

/// A shop with the program in force.
#[derive(Debug, Clone)]
pub struct ShopProgram {
    /// The shop's record.
    pub shop: Shop,
    /// The program in force for the shop now.
    pub program: Program,
}

impl Context {
    /// A context over these ports, with empty caches, reading the wall clock.
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        codes: Arc<dyn CodeSource>,
        config: AppConfig,
    ) -> Context {
        Context {
            store,
            notifier,
            codes,
            config: Arc::new(config),
            table_exports: None,
            cache: Arc::new(Mutex::new(HashMap::new())),
            clock: Arc::new(Utc::now),
            unknown: Arc::new(Mutex::new(HashMap::new())),
            coupons: Arc::new(Mutex::new(HashMap::new())),
            keys: Arc::new(KeyCache::default()),
            guesses: Arc::new(GuessBlocks::default()),
            marketing_accounts: None,
        }
    }

    /// The same context able to export the table to S3.
    pub fn with_table_exports(mut self, exports: Arc<dyn TableExports>) -> Context {
        self.table_exports = Some(exports);
        self
    }

    /// The same context knowing which shops have a Klaviyo key.
    pub fn with_marketing_accounts(mut self, accounts: Arc<dyn MarketingAccounts>) -> Context {
        self.marketing_accounts = Some(accounts);
        self
    }

    /// Which shops have a Klaviyo key, when Klaviyo is set up here.
    pub fn marketing_accounts(&self) -> Option<&dyn MarketingAccounts> {
        self.marketing_accounts.as_deref()
    }

    /// The same context reading "now" from `clock` (every handler that
    /// takes its time from the context follows it).
    pub fn with_clock(mut self, clock: NowSource) -> Context {
        self.clock = clock;
        self
    }

    /// The time a request is handled at.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The shop, from the warm cache when fresh.
    pub async fn shop(&self, shop: &ShopId, now: DateTime<Utc>) -> Result<Shop, AppError> {
        Ok(self.cached(shop, now).await?.shop)
    }

    /// The shop and its program, from the warm cache when fresh.
    pub async fn shop_program(
        &self,
        shop: &ShopId,
        now: DateTime<Utc>,
    ) -> Result<ShopProgram, AppError> {
        let cached = self.cached(shop, now).await?;
        let program = cached
            .program
            .ok_or_else(|| AppError::NoProgram(shop.clone()))?;
        Ok(ShopProgram {
            shop: cached.shop,
            program: program.value,
        })
    }

    async fn cached(&self, shop: &ShopId, now: DateTime<Utc>) -> Result<CachedShop, AppError> {
        let ttl = Duration::seconds(self.config.cache_ttl_seconds);
        if let Some(entry) = self.cache.lock().ok().and_then(|c| c.get(shop).cloned()) {
            if now - entry.fetched_at < ttl && entry.fetched_at <= now {
                return Ok(entry);
            }
        }
        let unknown_since = self.unknown.lock().ok().and_then(|u| u.get(shop).copied());
        if unknown_since.is_some_and(|at| at <= now && now - at < ttl) {
            return Err(AppError::UnknownShop(shop.to_string()));
        }
        let Some(found) = self.store.get_shop(shop).await? else {
            if let Ok(mut unknown) = self.unknown.lock() {
                // Bounded whatever the flood: forget them all and start over.
                if unknown.len() >= MAX_UNKNOWN_SHOPS {
                    unknown.clear();
                }
                unknown.insert(shop.clone(), now);
            }
            return Err(AppError::UnknownShop(shop.to_string()));
        };
        let program = self.store.get_program(shop).await?;
        let entry = CachedShop {
            shop: found,
            program,
            fetched_at: now,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(shop.clone(), entry.clone());
        }
        Ok(entry)
    }

    /// A coupon's definition as this container last read it, if that was
    /// within the cache's TTL: Some(None) for a code known to be no coupon,
    /// None when it must be read. Its `uses` is as old as the definition:
    /// never a reason to take a use (the store's counters decide).
    pub fn cached_coupon(
        &self,
        shop: &ShopId,
        code: &Code,
        now: DateTime<Utc>,
    ) -> Option<Option<Versioned<CouponRecord>>> {
        let ttl = Duration::seconds(self.config.cache_ttl_seconds);
        let cache = self.coupons.lock().ok()?;
        let entry = cache.get(&(shop.clone(), code.clone()))?;
        (entry.fetched_at <= now && now - entry.fetched_at < ttl).then(|| entry.record.clone())
    }

    /// Keeps a coupon's definition as just read (None: the code is no
    /// coupon).
    pub fn remember_coupon(
        &self,
        shop: &ShopId,
        code: &Code,
        record: Option<Versioned<CouponRecord>>,
        now: DateTime<Utc>,
    ) {
        if let Ok(mut cache) = self.coupons.lock() {
            // Bounded whatever the flood: forget them all and start over.
            if cache.len() >= MAX_CACHED_COUPONS {
                cache.clear();
            }
            cache.insert(
                (shop.clone(), code.clone()),
                CachedCoupon {
                    record,
                    fetched_at: now,
                },
            );
        }
    }

    /// Forgets a coupon's cached definition (after it was created or
    /// edited here).
    pub fn invalidate_coupon(&self, shop: &ShopId, code: &Code) {
        if let Ok(mut cache) = self.coupons.lock() {
            cache.remove(&(shop.clone(), code.clone()));
        }
    }

    /// Forgets a shop's cached program (after the admin API changed it here),
    /// or that it was unknown (after it was onboarded here).
    pub fn invalidate(&self, shop: &ShopId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(shop);
        }
        if let Ok(mut unknown) = self.unknown.lock() {
            unknown.remove(shop);
        }
    }

    /// Sends a customer email through the Notifier when the shop's program
    /// sends its emails through SES (`email_channel` `ses` or `both`); with
    /// `klaviyo` nothing is sent (`Ok(None)`): the email's event goes to the
    /// shop's Klaviyo instead, and the caller still records the email as
    /// sent, once. The program is the warm cache's (the one the deciding
    /// use case read); one that cannot be read fails the send as
    /// unavailable rather than guess the channel.
    pub async fn send_email(
        &self,
        notification: &Notification,
    ) -> Result<Option<Sent>, NotifyError> {
        // The program the use case that decided the email just read (its
        // own "now" may not be the context's): no second read.
        let cached = self.cache.lock().ok().and_then(|cache| {
            cache
                .get(&notification.shop)
                .and_then(|entry| entry.program.as_ref())
                .map(|program| program.value.email_channel)
        });
        let channel = match cached {
            Some(channel) => channel,
            None => {
                self.shop_program(&notification.shop, self.now())
                    .await
                    .map_err(|e| NotifyError::Unavailable(format!("the shop's program: {e}")))?
                    .program
                    .email_channel
            }
        };
        if !channel.sends_ses() {
            tracing::debug!(
                shop = %notification.shop,
                kind = notification.kind.name(),
                "email left to the shop's Klaviyo flows"
            );
            return Ok(None);
        }
        self.notifier.send(notification).await.map(Some)
    }

    /// A new secret: 32 random bytes, hex (from the code source: the OS's
    /// CSPRNG in production).
    pub fn new_secret(&self) -> String {
        let mut bytes = Vec::with_capacity(3 * GENERATED_CODE_LENGTH);
        while bytes.len() < 32 {
            bytes.extend_from_slice(&self.codes.random_code_bytes());
        }
        hex::encode(&bytes[..32])
    }

    /// A fresh customer code with 65 bits of randomness.
    pub fn new_code(&self) -> Result<Code, AppError> {
        Code::generate(&self.config.code_prefix, &self.codes.random_code_bytes())
            .map_err(|e| AppError::Invalid(format!("code prefix: {e}")))
    }

    /// A fresh referral code ("REF-..."): as random as a balance code, but
    /// it spends nothing, so customers may share it freely.
    pub fn new_referral_code(&self) -> Result<Code, AppError> {
        Code::generate(REFERRAL_CODE_PREFIX, &self.codes.random_code_bytes())
            .map_err(|e| AppError::Invalid(format!("referral code prefix: {e}")))
    }
}
