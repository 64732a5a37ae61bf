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
//!
//! A notice's event ([`QueuedEvent`], written with the change that decided
//! it when the program's email channel sends events) is recorded in the
//! Klaviyo account of the shop whose partition holds it ([`track_events`]),
//! its `unique_id` the notice's key: a record retried after a 429, a 5xx or
//! a timeout sends the same id again, and Klaviyo counts it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use cashback_app::marketing::{
    push_customer_profile, Marketing, MarketingSettings, PushError, QueuedEvent,
};
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
#[derive(Clone, Copy)]
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

/// The marketing event an outbox item's creation carries, if the record is
/// one: `Some(Err)` for one that cannot be read (failed back, then parked).
pub(crate) fn event_of_record(
    record: &serde_json::Value,
) -> Option<Result<(ShopId, QueuedEvent), String>> {
    let entity = record
        .get("dynamodb")?
        .get("NewImage")?
        .get("entity_type")?
        .get("S")?
        .as_str()?;
    if entity != "MARKETING_EVENT" {
        return None;
    }
    let decoded =
        serde_json::from_value::<aws_lambda_events::dynamodb::EventRecord>(record.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| {
                cashback_store::dynamo::stream::decode_marketing_event(&r)
                    .map_err(|e| e.to_string())
            });
    match decoded {
        Ok(Some(found)) => Some(Ok(found)),
        // A later image (its TTL's removal): nothing to send.
        Ok(None) => None,
        Err(error) => Some(Err(error)),
    }
}

/// What a batch's events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsOutcome {
    /// Events Klaviyo took (a repeated unique id included: it counts once).
    pub tracked: usize,
    /// Events that cannot be sent: the shop has no usable Klaviyo key, or
    /// Klaviyo refused the event (logged as errors, not retried).
    pub dropped: usize,
    /// The records of events that failed and may succeed later (failed
    /// back to Lambda: retried, then parked).
    pub failed: Vec<String>,
}

/// Records each event (`(record, shop, event)`) in its shop's Klaviyo
/// account, a few at once; each shop's adapter keeps Klaviyo's burst and
/// steady limits and waits out a 429's Retry-After up to its policy. The
/// shop is the record's partition's, so an event only ever reaches the
/// account of the shop it was decided for.
pub async fn track_events(
    connections: Option<&MarketingConnections>,
    events: Vec<(String, ShopId, QueuedEvent)>,
    concurrency: usize,
) -> EventsOutcome {
    use futures::stream::StreamExt;
    let mut outcome = EventsOutcome::default();
    if events.is_empty() {
        return outcome;
    }
    let Some(connections) = connections else {
        tracing::error!(
            events = events.len(),
            "marketing events dropped: CASHBACK_KLAVIYO_CREDENTIALS is not set on this function"
        );
        outcome.dropped = events.len();
        return outcome;
    };
    // Each shop's events in feed order, one at a time, through one adapter
    // (one limiter): after a 429 nothing more reaches that account before
    // its Retry-After. Shops run side by side.
    let mut shops: Vec<(ShopId, Vec<(String, QueuedEvent)>)> = Vec::new();
    for (item, shop, queued) in events {
        match shops.iter_mut().find(|(s, _)| *s == shop) {
            Some((_, list)) => list.push((item, queued)),
            None => shops.push((shop, vec![(item, queued)])),
        }
    }
    let results: Vec<Vec<(String, Pushed)>> = futures::stream::iter(shops)
        .map(|(shop, events)| async move {
            let marketing = match connections.for_shop(&shop).await {
                Ok(Some((marketing, _))) => marketing,
                Ok(None) => {
                    tracing::error!(shop = %shop, "marketing events dropped: the shop has no Klaviyo key");
                    return all(events, Pushed::Skipped);
                }
                Err(error @ MarketingConnectError::Unavailable(_)) => {
                    tracing::warn!(shop = %shop, error = %error, "marketing events: parameter unreadable; retried");
                    return all(events, Pushed::Failed);
                }
                Err(error) => {
                    tracing::error!(shop = %shop, error = %error, "marketing events dropped: the shop's Klaviyo setting is not usable");
                    return all(events, Pushed::Skipped);
                }
            };
            let mut done = Vec::with_capacity(events.len());
            for (item, queued) in events {
                let pushed = match marketing.track(&queued.event()).await {
                    Ok(()) => Pushed::Done,
                    Err(error) if error.is_retryable() => {
                        tracing::warn!(shop = %shop, key = %queued.key, error = %error, "marketing event failed; retried");
                        Pushed::Failed
                    }
                    Err(error) => {
                        tracing::error!(shop = %shop, key = %queued.key, error = %error, "marketing event refused");
                        Pushed::Skipped
                    }
                };
                done.push((item, pushed));
            }
            done
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let results = results.into_iter().flatten();
    for (item, pushed) in results {
        match pushed {
            Pushed::Done => outcome.tracked += 1,
            Pushed::Skipped => outcome.dropped += 1,
            Pushed::Failed => outcome.failed.push(item),
        }
    }
    tracing::info!(
        tracked = outcome.tracked,
        dropped = outcome.dropped,
        failed = outcome.failed.len(),
        "marketing events"
    );
    outcome
}

/// Every event of a shop ended the same way.
fn all(events: Vec<(String, QueuedEvent)>, pushed: Pushed) -> Vec<(String, Pushed)> {
    events.into_iter().map(|(item, _)| (item, pushed)).collect()
}
