//! What every use case is given: the ports, configuration, and the warm
//! container's cache of shops and programs.
//!
//! The cache is why an order event costs one read: a shop and its program
//! change rarely, so a warm Lambda keeps them for a short TTL instead of
//! reading them for every webhook. A program change reaches every container
//! within the TTL; earned cashback is never recomputed, so an order decided
//! under the previous program keeps what it earned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use cashback_core::ids::{Code, ShopId, GENERATED_CODE_LENGTH};
use cashback_core::program::Program;

use crate::error::AppError;
use crate::notify::Notifier;
use crate::store::{Shop, Store, Versioned};

/// Random bytes for new customer codes. Production uses the OS CSPRNG;
/// tests can pass a deterministic source.
pub trait CodeSource: Send + Sync {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH];
}

/// Printed before every referral code.
pub const REFERRAL_CODE_PREFIX: &str = "REF";

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Printed before every generated customer code ("CB-...").
    pub code_prefix: String,
    /// Public base URL of the API, for links in emails (unsubscribe).
    pub public_base_url: String,
    /// Key that signs unsubscribe links.
    pub link_secret: Vec<u8>,
    /// How long shops and programs stay cached in a warm container.
    pub cache_ttl_seconds: i64,
    /// How many times a use case retries after losing to a concurrent writer.
    pub max_attempts: u32,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            code_prefix: "CB".into(),
            public_base_url: "http://127.0.0.1:3000".into(),
            link_secret: b"development-only-link-secret".to_vec(),
            cache_ttl_seconds: 60,
            max_attempts: 25,
        }
    }
}

#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub notifier: Arc<dyn Notifier>,
    pub codes: Arc<dyn CodeSource>,
    pub config: Arc<AppConfig>,
    cache: Arc<Mutex<HashMap<ShopId, CachedShop>>>,
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
    pub shop: Shop,
    pub program: Program,
}

impl Context {
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
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
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
            .ok_or_else(|| AppError::NoProgram(shop.to_string()))?;
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
        let found = self
            .store
            .get_shop(shop)
            .await?
            .ok_or_else(|| AppError::UnknownShop(shop.to_string()))?;
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

    /// Forgets a shop's cached program (after the admin API changed it here).
    pub fn invalidate(&self, shop: &ShopId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(shop);
        }
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
