//! A shop's API keys: several live at once, each with scopes, created,
//! listed and revoked through the admin API, stored only as SHA-256.
//!
//! - `checkout`: validate a code the checkout was given and hold balance
//!   for it (`coupons/validate`). It reads no customer's code, balance or
//!   ledger otherwise.
//! - `portal_server`: read one customer's view (`customers/{id}/cashback`),
//!   for the shop's own server that already knows who is logged in.
//!
//! The key a shop was onboarded with (`Shop::api_key_hash`) keeps working
//! as a key with both scopes, the "original" key; it is listed and revoked
//! like any other (it becomes a stored record the first time it is used,
//! listed or revoked, so nothing has to be migrated by hand).
//!
//! A request's key is checked against the shop's keys as the warm container
//! cached them ([`Context`]'s TTL): a revocation reaches every container
//! within that minute, and at once in the container that revoked it. The
//! last use of a key is written at most every [`LAST_USED_EVERY_SECONDS`]
//! per container, so a busy checkout key is not a hot item.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use cashback_core::ids::ShopId;
use cashback_core::program::FieldError;

use crate::admin::parse_body;
use crate::context::Context;
use crate::error::AppError;
use crate::store::{ApiKeyRecord, KeyScope, Revoked, Shop, StoreError};

/// Live keys a shop may hold at once (revoked ones are kept for the record).
pub const MAX_LIVE_KEYS: usize = 20;
/// A key's last use is written at most this often per container.
pub const LAST_USED_EVERY_SECONDS: i64 = 300;
/// The longest key name.
pub const MAX_NAME_CHARS: usize = 100;

/// The hex SHA-256 of an API key, as stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// A key's id, from its hash: stable, and says nothing of the key.
pub fn key_id_of(hash: &str) -> String {
    format!("key_{}", hash.get(..16).unwrap_or(hash))
}

/// The key the shop was onboarded with, as a record with both scopes.
pub fn original_key(shop: &Shop) -> Option<ApiKeyRecord> {
    let hash = shop.api_key_hash.trim();
    (!hash.is_empty()).then(|| ApiKeyRecord {
        key_id: key_id_of(hash),
        name: "original key (from onboarding)".into(),
        scopes: KeyScope::ALL.to_vec(),
        hash: hash.to_string(),
        hint: "cbk_".into(),
        created_at: shop.created_at,
        created_by: None,
        revoked_at: None,
        last_used_at: None,
    })
}

/// The shop's keys: the stored records, and the original key while it is
/// not one of them.
pub fn shop_keys(shop: &Shop, stored: &[ApiKeyRecord]) -> Vec<ApiKeyRecord> {
    let mut keys = stored.to_vec();
    if let Some(original) = original_key(shop) {
        if !keys.iter().any(|k| k.key_id == original.key_id) {
            keys.push(original);
        }
    }
    keys
}

/// Why a request's key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// No key came with the request.
    #[error("an API key is required (Authorization: Bearer ...)")]
    Missing,
    /// No key of this shop has that value (it may be another shop's).
    #[error("the API key is not valid for this shop")]
    Unknown,
    /// The key was revoked; it stays refused.
    #[error("the API key was revoked")]
    Revoked,
    /// The key is genuine but lacks the scope this request needs.
    #[error("the API key may not be used for this ({})", .0.as_str())]
    NotAllowed(KeyScope),
}

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key is refused: answer 401 or 403.
    #[error(transparent)]
    Refused(KeyRefusal),
    /// The shop's keys could not be read: answer 5xx, the key may be good.
    #[error(transparent)]
    Failed(#[from] AppError),
}

/// The key a request was accepted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The id of the accepted key (not the key itself), for logs and last use.
    pub key_id: String,
    /// What the key may do.
    pub scopes: Vec<KeyScope>,
}

/// A shop's stored key records and when they were read.
type StoredKeys = (Vec<ApiKeyRecord>, DateTime<Utc>);

/// What a warm container remembers of keys: each shop's stored records
/// (fetched for the cache TTL) and when it last recorded each key's use.
#[derive(Default)]
pub struct KeyCache {
    stored: Mutex<HashMap<ShopId, StoredKeys>>,
    touched: Mutex<HashMap<(ShopId, String), DateTime<Utc>>>,
}

impl KeyCache {
    /// Forgets a shop's keys (after a change made in this container).
    pub fn invalidate(&self, shop: &ShopId) {
        if let Ok(mut stored) = self.stored.lock() {
            stored.remove(shop);
        }
    }

    /// True (and remembered) when the key's last use is due to be written.
    fn touch_due(&self, shop: &ShopId, key_id: &str, now: DateTime<Utc>) -> bool {
        let Ok(mut touched) = self.touched.lock() else {
            return false;
        };
        let id = (shop.clone(), key_id.to_string());
        let due = touched.get(&id).is_none_or(|last| {
            now - *last >= Duration::seconds(LAST_USED_EVERY_SECONDS) || *last > now
        });
        if due {
            if touched.len() >= 10_000 {
                touched.clear();
            }
            touched.insert(id, now);
        }
        due
    }
}

async fn stored_keys(
    ctx: &Context,
    shop: &ShopId,
    now: DateTime<Utc>,
) -> Result<Vec<ApiKeyRecord>, AppError> {
    let ttl = Duration::seconds(ctx.config.cache_ttl_seconds);
    if let Some((keys, at)) = ctx
        .keys
        .stored
        .lock()
        .ok()
        .and_then(|c| c.get(shop).cloned())
    {
        if at <= now && now - at < ttl {
            return Ok(keys);
        }
    }
    let keys = ctx.store.list_api_keys(shop).await?;
    if let Ok(mut cache) = ctx.keys.stored.lock() {
        cache.insert(shop.clone(), (keys.clone(), now));
    }
    Ok(keys)
}

/// Checks a request's key (`presented`, the Bearer token) for `scope`.
pub async fn authenticate(
    ctx: &Context,
    shop: &Shop,
    presented: Option<&str>,
    scope: KeyScope,
    now: DateTime<Utc>,
) -> Result<Authenticated, AuthError> {
    let presented = presented
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Refused(KeyRefusal::Missing))?;
    let stored = stored_keys(ctx, &shop.shop, now).await?;
    let given = hash_key(presented);
    // Every key is compared, in constant time each, whichever matches.
    let mut found = None;
    for key in shop_keys(shop, &stored) {
        let same = subtle::ConstantTimeEq::ct_eq(key.hash.as_bytes(), given.as_bytes());
        if bool::from(same) {
            found = Some(key);
        }
    }
    let key = found.ok_or(AuthError::Refused(KeyRefusal::Unknown))?;
    if !key.is_live() {
        return Err(AuthError::Refused(KeyRefusal::Revoked));
    }
    if !key.allows(scope) {
        return Err(AuthError::Refused(KeyRefusal::NotAllowed(scope)));
    }
    if ctx.keys.touch_due(&shop.shop, &key.key_id, now) {
        let is_stored = stored.iter().any(|k| k.key_id == key.key_id);
        // A lost last-use time is not worth failing a checkout for.
        if let Err(error) = record_use(ctx, &shop.shop, &key, is_stored, now).await {
            warn!(shop = %shop.shop, key_id = %key.key_id, %error, "key use not recorded");
        }
    }
    Ok(Authenticated {
        key_id: key.key_id,
        scopes: key.scopes,
    })
}

async fn record_use(
    ctx: &Context,
    shop: &ShopId,
    key: &ApiKeyRecord,
    is_stored: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !is_stored {
        let mut record = key.clone();
        record.last_used_at = Some(now);
        match ctx.store.create_api_key(shop, &record).await {
            Ok(()) => return Ok(()),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(error) => return Err(error),
        }
    }
    ctx.store.touch_api_key(shop, &key.key_id, now).await
}

// ------------------------------------------------------------ admin side

/// A new key, as the admin API receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The merchant's label for the key (`checkout widget`).
    pub name: String,
    /// What the key may do; at least one scope.
    pub scopes: Vec<KeyScope>,
}

/// A key as the admin API shows it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// The key's id, to name it when revoking.
    pub key_id: String,
    /// The merchant's label for the key.
    pub name: String,
    /// What the key may do.
    pub scopes: Vec<KeyScope>,
    /// The key's first characters.
    pub hint: String,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (the admin principal); None for the original key.
    pub created_by: Option<String>,
    /// When it was last used, written at most every
    /// [`LAST_USED_EVERY_SECONDS`] per container, so up to that much stale.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; None while it works.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyView {
    /// The view of a stored key.
    pub fn of(record: &ApiKeyRecord) -> KeyView {
        KeyView {
            key_id: record.key_id.clone(),
            name: record.name.clone(),
            scopes: record.scopes.clone(),
            hint: record.hint.clone(),
            created_at: record.created_at,
            created_by: record.created_by.clone(),
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// A key just created: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedKey {
    /// The key's record.
    #[serde(flatten)]
    pub key: KeyView,
    /// The key itself, shown this once and never again: only its hash is stored.
    pub api_key: String,
}

async fn known_shop(ctx: &Context, shop: &ShopId) -> Result<Shop, AppError> {
    ctx.store
        .get_shop(shop)
        .await?
        .ok_or_else(|| AppError::UnknownShop(shop.to_string()))
}

/// Creates a key for `secret` (made by the caller from the OS's random
/// source; only its hash is kept) with the body's name and scopes.
pub async fn create(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    secret: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<CreatedKey, AppError> {
    let new: NewKey = parse_body(body)?;
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError {
            field: "name".into(),
            message: format!("must be 1 to {MAX_NAME_CHARS} characters"),
        });
    }
    let mut scopes = new.scopes.clone();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        errors.push(FieldError {
            field: "scopes".into(),
            message: "must name at least one of checkout, portal_server".into(),
        });
    }
    if !errors.is_empty() {
        return Err(AppError::InvalidFields(errors));
    }
    let known = known_shop(ctx, shop).await?;
    let stored = ctx.store.list_api_keys(shop).await?;
    let live = shop_keys(&known, &stored)
        .iter()
        .filter(|k| k.is_live())
        .count();
    if live >= MAX_LIVE_KEYS {
        return Err(AppError::Conflict(format!(
            "the shop has {live} live keys, the most it may hold: revoke one first"
        )));
    }
    let hash = hash_key(secret);
    let record = ApiKeyRecord {
        key_id: key_id_of(&hash),
        name: name.to_string(),
        scopes,
        hint: secret.trim().chars().take(8).collect(),
        hash,
        created_at: now,
        created_by: Some(principal.to_string()),
        revoked_at: None,
        last_used_at: None,
    };
    ctx.store.create_api_key(shop, &record).await?;
    ctx.keys.invalidate(shop);
    info!(shop = %shop, key_id = %record.key_id, scopes = ?record.scopes, by = principal, "API key created");
    Ok(CreatedKey {
        key: KeyView::of(&record),
        api_key: secret.trim().to_string(),
    })
}

/// Every key of the shop, live ones first, newest first.
pub async fn list(ctx: &Context, shop: &ShopId) -> Result<Vec<KeyView>, AppError> {
    let known = known_shop(ctx, shop).await?;
    let stored = ctx.store.list_api_keys(shop).await?;
    let mut keys = shop_keys(&known, &stored);
    keys.sort_by(|a, b| {
        (a.revoked_at.is_some(), std::cmp::Reverse(a.created_at))
            .cmp(&(b.revoked_at.is_some(), std::cmp::Reverse(b.created_at)))
    });
    Ok(keys.iter().map(KeyView::of).collect())
}

/// Revokes a key: refused from then on (within the cache TTL in other
/// containers). Revoking twice keeps the first time.
pub async fn revoke(
    ctx: &Context,
    shop: &ShopId,
    key_id: &str,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let mut outcome = ctx.store.revoke_api_key(shop, key_id, now).await?;
    if outcome == Revoked::Missing {
        // The original key, never stored yet: stored now, revoked.
        if let Some(mut original) = original_key(&known).filter(|k| k.key_id == key_id) {
            original.revoked_at = Some(now);
            outcome = match ctx.store.create_api_key(shop, &original).await {
                Ok(()) => Revoked::Now,
                Err(StoreError::AlreadyExists(_)) => {
                    ctx.store.revoke_api_key(shop, key_id, now).await?
                }
                Err(error) => return Err(error.into()),
            };
        }
    }
    if outcome == Revoked::Missing {
        return Err(AppError::NotFound(format!("API key {key_id}")));
    }
    ctx.keys.invalidate(shop);
    info!(shop = %shop, key_id, by = principal, "API key revoked");
    let stored = ctx.store.list_api_keys(shop).await?;
    stored
        .iter()
        .find(|k| k.key_id == key_id)
        .map(KeyView::of)
        .ok_or_else(|| AppError::NotFound(format!("API key {key_id}")))
}
