//! The customer's cashback figures pushed to the shop's Klaviyo profile
//! from the same change feed (docs/klaviyo.md), for the shops that have it.
//!
//! A shop has Klaviyo when its parameter exists under the function's
//! `CASHBACK_KLAVIYO_CREDENTIALS` place (`ssm:/cashback/klaviyo/` gives the
//! SecureString `/cashback/klaviyo/{shop}`), holding
//! `{"private_key": "pk_...", "settings": {...}}`: the key and the shop's
//! [`MarketingSettings`] (prefix, naming, email channel; defaults when left
//! out). A shop without one is remembered as such for the cache's life, so
//! the feed costs it one read per container and TTL.
//!
//! Every account write of a customer with an email pushes the profile once
//! per batch (absolute values: a late or repeated push leaves the latest
//! figures); what failed and may succeed later is failed back with the
//! batch's records like a code sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use cashback_app::marketing::{push_customer_profile, Marketing, MarketingSettings, PushError};
use cashback_app::{AppError, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_klaviyo::{KlaviyoConfig, KlaviyoMarketing};
use cashback_platform_codes::{CredentialSource, CredentialsPlace, FetchError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KlaviyoValue {
    private_key: String,
    #[serde(default)]
    settings: MarketingSettings,
    /// Another API base URL (a local fake in tests).
    #[serde(default)]
    base_url: Option<String>,
}

type Connected = Option<(Arc<dyn Marketing>, MarketingSettings)>;

/// Each shop's Klaviyo account, or none, kept for a while.
pub struct MarketingConnections {
    place: CredentialsPlace,
    source: Arc<dyn CredentialSource>,
    ttl: Duration,
    cache: Mutex<HashMap<ShopId, (Connected, Instant)>>,
}

/// Why a shop's Klaviyo account could not be had now.
#[derive(Debug, thiserror::Error)]
pub enum MarketingConnectError {
    /// The parameter could not be read now (retry later).
    #[error("the shop's Klaviyo parameter could not be read: {0}")]
    Unavailable(String),
    /// The parameter is there but not usable (an operator must fix it).
    #[error("the Klaviyo parameter of shop {shop} is not usable: {reason}")]
    Invalid {
        /// The shop.
        shop: ShopId,
        /// What is wrong (never a value).
        reason: String,
    },
}

impl MarketingConnections {
    /// Reads each shop's parameter under `place` from `source`.
    pub fn new(place: CredentialsPlace, source: Arc<dyn CredentialSource>) -> MarketingConnections {
        MarketingConnections {
            place,
            source,
            ttl: Duration::from_secs(900),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The shop's Klaviyo account and settings, or None when it has none.
    pub async fn for_shop(&self, shop: &ShopId) -> Result<Connected, MarketingConnectError> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((connected, at)) = cache.get(shop) {
                if at.elapsed() < self.ttl {
                    return Ok(connected.clone());
                }
            }
        }
        let connected = self.build(shop).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(shop.clone(), (connected.clone(), Instant::now()));
        }
        Ok(connected)
    }

    async fn build(&self, shop: &ShopId) -> Result<Connected, MarketingConnectError> {
        let invalid = |reason: String| MarketingConnectError::Invalid {
            shop: shop.clone(),
            reason,
        };
        let reference = self
            .place
            .reference(shop)
            .map_err(|e| invalid(format!("no valid reference for the shop: {e}")))?;
        let value = match self.source.fetch(&reference).await {
            Ok(value) => value,
            Err(FetchError::Missing) => return Ok(None),
            Err(FetchError::Unavailable(why)) => {
                return Err(MarketingConnectError::Unavailable(why))
            }
            Err(FetchError::Refused(why)) => return Err(invalid(why)),
        };
        let value: KlaviyoValue = serde_json::from_str(&value).map_err(|_| {
            invalid("expected {\"private_key\": \"pk_...\", \"settings\": {...}}".into())
        })?;
        value
            .settings
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        let mut config =
            KlaviyoConfig::new(&value.private_key).map_err(|e| invalid(e.to_string()))?;
        if let Some(url) = &value.base_url {
            config = config
                .with_base_url(url)
                .map_err(|e| invalid(e.to_string()))?;
        }
        let marketing = KlaviyoMarketing::new(config).map_err(|e| invalid(e.to_string()))?;
        Ok(Some((Arc::new(marketing), value.settings)))
    }
}

/// How one customer's push ended.
pub(crate) enum Pushed {
    Done,
    Skipped,
    Failed,
}

/// Pushes one customer's profile if the shop has Klaviyo.
pub(crate) async fn push_one(
    ctx: &Context,
    connections: &MarketingConnections,
    shop: &ShopId,
    customer: &CustomerId,
) -> Pushed {
    let (marketing, settings) = match connections.for_shop(shop).await {
        Ok(Some(connected)) => connected,
        Ok(None) => return Pushed::Skipped,
        Err(error @ MarketingConnectError::Unavailable(_)) => {
            tracing::warn!(shop = %shop, error = %error, "marketing push: parameter unreadable; retried");
            return Pushed::Failed;
        }
        Err(error) => {
            tracing::error!(shop = %shop, error = %error, "marketing push: the shop's Klaviyo setting is not usable");
            return Pushed::Skipped;
        }
    };
    match push_customer_profile(ctx, marketing.as_ref(), &settings, shop, customer).await {
        Ok(_) => Pushed::Done,
        Err(PushError::App(AppError::NotFound(_))) => Pushed::Skipped,
        Err(error) if error.is_retryable() => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error, "marketing push failed; retried");
            Pushed::Failed
        }
        Err(error) => {
            tracing::error!(shop = %shop, customer = %customer, error = %error, "marketing push refused");
            Pushed::Skipped
        }
    }
}
