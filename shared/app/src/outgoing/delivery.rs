//! Delivering events: each event to each of its shop's endpoints, signed,
//! at least once, with retries; and to the shop-wide event bus.
//!
//! A request is `POST`ed with the body as JSON and these headers:
//! - `X-Cashback-Event-Id`: the stable id (the same on every attempt and
//!   every redelivery: a receiver drops what it has seen);
//! - `X-Cashback-Event-Kind`: the kind;
//! - `X-Cashback-Shop`: the shop;
//! - `X-Cashback-Timestamp`: the unix seconds the signature was made at;
//! - `X-Cashback-Signature`: `t=<timestamp>,v1=<hex HMAC-SHA256(secret,
//!   "<timestamp>.<body>")>`, the scheme of our inbound generic webhooks,
//!   with one `v1=` per signing secret (two during a rotation's grace).
//!
//! Retries: a failed attempt (no answer, or not 2xx) is tried again at once
//! with a short backoff, within the batch's time budget; then a pending
//! record is stored and the scheduled run tries it at growing intervals
//! ([`retry_delay`]), and after [`DeliverySettings::max_attempts`] the
//! delivery is parked: recorded as such, logged with
//! [`PARKED_LOG`] and `alert =` [`PARKED_ALERT`] (an alarm counts them),
//! never tried again.
//!
//! Each endpoint's events of a batch are one chain, in feed order; chains
//! run side by side ([`CONCURRENT_DELIVERIES`] at a time), so a slow or
//! failing endpoint delays no other endpoint's (no other shop's)
//! deliveries. Within a chain, once an event has failed its attempts or the
//! budget is spent, the rest are scheduled without an attempt: a dead
//! endpoint costs a batch one event's attempts.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use cashback_core::ids::ShopId;

use super::endpoints::{
    DeliveryRecord, DeliveryStatus, EndpointRecord, EndpointStore, PendingDelivery,
    DELIVERY_RECORD_DAYS,
};
use super::events::{Balance, EventKind, OutgoingEvent};
use super::url::{check_before_delivery, Resolve, UrlPolicy};
use crate::changes::sequence_order;
use crate::store::{ReadRequest, Store, StoreError};

/// The event id header.
pub const EVENT_ID_HEADER: &str = "X-Cashback-Event-Id";
/// The event kind header.
pub const EVENT_KIND_HEADER: &str = "X-Cashback-Event-Kind";
/// The shop header (as on inbound generic webhooks).
pub const SHOP_HEADER: &str = "X-Cashback-Shop";
/// The signature's timestamp, also inside the signature header.
pub const TIMESTAMP_HEADER: &str = "X-Cashback-Timestamp";
/// The signature header (as on inbound generic webhooks).
pub const SIGNATURE_HEADER: &str = "X-Cashback-Signature";
/// The log line of a delivery given up.
pub const PARKED_LOG: &str = "event delivery parked";
/// The `alert` field of that line, which template.yaml's metric filter counts.
pub const PARKED_ALERT: &str = "event_delivery_parked";

/// How many deliveries run at once in one invocation.
pub const CONCURRENT_DELIVERIES: usize = 16;

/// `t=<t>,v1=<hex>[,v1=<hex>...]`: one signature per secret, over
/// `"<t>.<body>"`.
pub fn sign(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mut header = format!("t={t}");
    for secret in secrets {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// Why a POST got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

/// Sends one HTTP POST; answers the status code.
#[async_trait::async_trait]
pub trait EventSender: Send + Sync {
    /// Whether POSTs can be sent at all (a client that cannot be built):
    /// checked before a batch, so such a failure fails the batch, retried
    /// with its records kept, rather than counting as every endpoint's
    /// delivery attempt.
    fn ready(&self) -> Result<(), SendError> {
        Ok(())
    }

    /// POSTs `body` to `url` with `headers`.
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<u16, SendError>;
}

/// Publishes events to the shop-wide event bus (EventBridge).
#[async_trait::async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes every event, or fails (the caller retries them all).
    async fn publish(&self, events: &[OutgoingEvent]) -> Result<(), SendError>;
}

/// How hard deliveries are tried.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts within the batch before a retry is scheduled.
    pub attempts_in_batch: u32,
    /// The pause after the first failed attempt; doubled after each.
    pub first_backoff: StdDuration,
    /// No in-batch attempt starts after this much time.
    pub budget: StdDuration,
    /// Attempts in all, after which the delivery is parked.
    pub max_attempts: u32,
    /// The first scheduled retry's delay; each later one is 4 times longer.
    pub retry_base: Duration,
    /// What endpoints may point at (checked again before each attempt).
    pub policy: UrlPolicy,
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings {
            attempts_in_batch: 3,
            first_backoff: StdDuration::from_millis(200),
            budget: StdDuration::from_secs(20),
            max_attempts: 8,
            retry_base: Duration::minutes(1),
            policy: UrlPolicy::PublicOnly,
        }
    }
}

/// The delay before the scheduled retry that follows `attempts` attempts:
/// `retry_base x 4^k` for the k-th scheduled retry, at most 12 hours.
/// With the defaults (3 in the batch, 8 in all): 1 min, 4 min, 16 min,
/// 64 min, 4 h 16 min, then parked, about 5.5 hours after the event.
pub fn retry_delay(settings: &DeliverySettings, attempts: u32) -> Duration {
    let k = attempts.saturating_sub(settings.attempts_in_batch).min(10);
    let delay = settings.retry_base * 4i32.pow(k);
    delay.min(Duration::hours(12))
}

/// What the ports a delivery needs are.
pub struct Deliverer<'a> {
    /// Endpoints, deliveries and pending retries.
    pub endpoints: &'a dyn EndpointStore,
    /// The HTTP client.
    pub sender: &'a dyn EventSender,
    /// Resolves endpoint names before each attempt.
    pub resolver: &'a dyn Resolve,
    /// How hard to try.
    pub settings: DeliverySettings,
}

/// What a batch or a scheduled run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// Deliveries answered 2xx.
    pub delivered: u64,
    /// Deliveries that failed and were scheduled again.
    pub retrying: u64,
    /// Deliveries given up.
    pub parked: u64,
    /// Feed positions of events whose outcome could not be stored: the
    /// stream must deliver them again (the earliest is the batch item
    /// failure).
    pub failed: BTreeSet<String>,
}

impl DeliveryOutcome {
    /// The earliest feed position that must be delivered again.
    pub fn first_failed(&self) -> Option<String> {
        self.failed
            .iter()
            .min_by(|a, b| sequence_order(a, b))
            .cloned()
    }
}

/// One attempt's result.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
}

impl Attempt {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Deliverer<'_> {
    async fn attempt(
        &self,
        endpoint: &EndpointRecord,
        event_id: &str,
        kind: EventKind,
        body: &str,
        now: DateTime<Utc>,
    ) -> Attempt {
        if let Err(error) =
            check_before_delivery(&endpoint.url, self.settings.policy, self.resolver).await
        {
            return Attempt {
                status: None,
                error: Some(format!("refused before sending: {error}")),
            };
        }
        let timestamp = Utc::now().timestamp();
        let headers = [
            (EVENT_ID_HEADER, event_id.to_string()),
            (EVENT_KIND_HEADER, kind.as_str().to_string()),
            (SHOP_HEADER, endpoint.shop.to_string()),
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (
                SIGNATURE_HEADER,
                sign(&endpoint.signing_secrets(now), timestamp, body.as_bytes()),
            ),
        ];
        match self
            .sender
            .post(&endpoint.url, &headers, body.as_bytes())
            .await
        {
            Ok(status) if (200..300).contains(&status) => Attempt {
                status: Some(status),
                error: None,
            },
            Ok(status) => Attempt {
                status: Some(status),
                error: Some(format!("answered {status}")),
            },
            Err(error) => Attempt {
                status: None,
                error: Some(error.0),
            },
        }
    }

    /// Records where a delivery stands after `attempts` attempts, the last
    /// being `last`; schedules or drops its pending retry.
    async fn settle(
        &self,
        mut pending: PendingDelivery,
        last: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<DeliveryStatus, StoreError> {
        let status = if last.ok() {
            DeliveryStatus::Delivered
        } else if pending.attempts >= self.settings.max_attempts {
            DeliveryStatus::Parked
        } else {
            DeliveryStatus::Retrying
        };
        let next_attempt_at = (status == DeliveryStatus::Retrying)
            .then(|| now + retry_delay(&self.settings, pending.attempts));
        let record = DeliveryRecord {
            endpoint_id: pending.endpoint_id.clone(),
            event_id: pending.event_id.clone(),
            kind: pending.kind,
            status,
            attempts: pending.attempts,
            last_error: last.error.clone(),
            last_status: last.status,
            first_attempt_at: pending.first_attempt_at,
            updated_at: now,
            next_attempt_at,
        };
        match next_attempt_at {
            // The pending record first: a crash between the two leaves a
            // retry without its record, never a record without its retry.
            Some(at) => {
                pending.next_attempt_at = at;
                self.endpoints.put_pending(&pending).await?;
            }
            None => self.endpoints.delete_pending(&pending).await?,
        }
        self.endpoints
            .put_delivery(
                &pending.shop,
                &record,
                now + Duration::days(DELIVERY_RECORD_DAYS),
            )
            .await?;
        match status {
            DeliveryStatus::Parked => tracing::error!(
                alert = PARKED_ALERT,
                shop = %pending.shop,
                endpoint = %pending.endpoint_id,
                event = %pending.event_id,
                attempts = pending.attempts,
                error = last.error.as_deref().unwrap_or(""),
                "{PARKED_LOG}"
            ),
            DeliveryStatus::Retrying => tracing::warn!(
                shop = %pending.shop,
                endpoint = %pending.endpoint_id,
                event = %pending.event_id,
                attempts = pending.attempts,
                error = last.error.as_deref().unwrap_or(""),
                "event delivery failed; retry scheduled"
            ),
            DeliveryStatus::Delivered => tracing::info!(
                shop = %pending.shop,
                endpoint = %pending.endpoint_id,
                event = %pending.event_id,
                attempts = pending.attempts,
                "event delivered"
            ),
        }
        Ok(status)
    }

    /// One event to one endpoint: up to `attempts_in_batch` attempts with
    /// backoff while the budget lasts, then settled.
    async fn deliver_one(
        &self,
        endpoint: &EndpointRecord,
        event: &OutgoingEvent,
        body: &str,
        now: DateTime<Utc>,
        started: tokio::time::Instant,
    ) -> Result<DeliveryStatus, StoreError> {
        let mut backoff = self.settings.first_backoff;
        let mut attempts = 0;
        let mut last;
        loop {
            attempts += 1;
            last = self
                .attempt(endpoint, event.id(), event.body.kind, body, now)
                .await;
            if last.ok()
                || attempts >= self.settings.attempts_in_batch
                || started.elapsed() + backoff >= self.settings.budget
            {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let pending = PendingDelivery {
            shop: event.shop.clone(),
            endpoint_id: endpoint.id.clone(),
            event_id: event.id().to_string(),
            kind: event.body.kind,
            body: body.to_string(),
            attempts,
            first_attempt_at: now,
            next_attempt_at: now,
        };
        self.settle(pending, &last, now).await
    }

    /// One endpoint's events of a batch, in order. Once one has failed
    /// every attempt, or the batch's budget is spent, the rest are not
    /// tried now but scheduled at once (attempts 0): a dead or slow endpoint
    /// costs the batch one event's attempts, not every event's.
    async fn deliver_chain(
        &self,
        endpoint: &EndpointRecord,
        items: Vec<(&OutgoingEvent, String)>,
        now: DateTime<Utc>,
        started: tokio::time::Instant,
    ) -> Vec<(String, Result<DeliveryStatus, StoreError>)> {
        let mut results = Vec::with_capacity(items.len());
        let mut failing = false;
        for (event, body) in items {
            let result = if failing || started.elapsed() >= self.settings.budget {
                let reason = if failing {
                    "not attempted: the endpoint failed earlier in the batch"
                } else {
                    "not attempted: the batch's time ran out"
                };
                let pending = PendingDelivery {
                    shop: event.shop.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event_id: event.id().to_string(),
                    kind: event.body.kind,
                    body,
                    attempts: 0,
                    first_attempt_at: now,
                    next_attempt_at: now,
                };
                let last = Attempt {
                    status: None,
                    error: Some(reason.to_string()),
                };
                self.settle(pending, &last, now).await
            } else {
                let result = self.deliver_one(endpoint, event, &body, now, started).await;
                failing = !matches!(result, Ok(DeliveryStatus::Delivered));
                result
            };
            results.push((event.sequence.clone(), result));
        }
        results
    }

    /// Delivers a batch of events to every endpoint of their shops.
    pub async fn deliver(&self, events: &[OutgoingEvent], now: DateTime<Utc>) -> DeliveryOutcome {
        let mut outcome = DeliveryOutcome::default();
        let mut endpoints: HashMap<ShopId, Vec<EndpointRecord>> = HashMap::new();
        for event in events {
            if endpoints.contains_key(&event.shop) {
                continue;
            }
            match self.endpoints.list_endpoints(&event.shop).await {
                Ok(list) => {
                    endpoints.insert(event.shop.clone(), list);
                }
                Err(error) => {
                    tracing::error!(shop = %event.shop, error = %error, "event endpoints cannot be read");
                    outcome.failed.extend(
                        events
                            .iter()
                            .filter(|e| e.shop == event.shop)
                            .map(|e| e.sequence.clone()),
                    );
                    endpoints.insert(event.shop.clone(), Vec::new());
                }
            }
        }
        // Each endpoint's events in feed order, on one chain per endpoint.
        let mut chains: Vec<(&EndpointRecord, Vec<(&OutgoingEvent, String)>)> = Vec::new();
        for event in events {
            let body = match event.json() {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(event = %event.id(), error = %error, "event body cannot be written");
                    continue;
                }
            };
            for endpoint in endpoints.get(&event.shop).into_iter().flatten() {
                match chains
                    .iter_mut()
                    .find(|(e, _)| e.shop == endpoint.shop && e.id == endpoint.id)
                {
                    Some((_, items)) => items.push((event, body.clone())),
                    None => chains.push((endpoint, vec![(event, body.clone())])),
                }
            }
        }
        let started = tokio::time::Instant::now();
        // Futures made in a loop, not by a closure over borrowed tuples, so
        // the whole delivery stays `Send` (a spawned task may run it).
        let mut runs = Vec::with_capacity(chains.len());
        for (endpoint, items) in chains {
            runs.push(self.deliver_chain(endpoint, items, now, started));
        }
        let results: Vec<(String, Result<DeliveryStatus, StoreError>)> = stream::iter(runs)
            .buffer_unordered(CONCURRENT_DELIVERIES)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        for (sequence, result) in results {
            outcome.count(sequence, result);
        }
        outcome
    }

    /// The scheduled run: every pending retry due at `now` (at most
    /// `limit`), one attempt each.
    pub async fn retry_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<DeliveryOutcome, StoreError> {
        let due = self.endpoints.due_pending(now, limit).await?;
        let mut endpoints: HashMap<ShopId, Vec<EndpointRecord>> = HashMap::new();
        for pending in &due {
            if !endpoints.contains_key(&pending.shop) {
                let list = self.endpoints.list_endpoints(&pending.shop).await?;
                endpoints.insert(pending.shop.clone(), list);
            }
        }
        let mut outcome = DeliveryOutcome::default();
        let mut retries = Vec::with_capacity(due.len());
        for mut pending in due {
            let endpoint = endpoints
                .get(&pending.shop)
                .and_then(|list| list.iter().find(|e| e.id == pending.endpoint_id));
            retries.push(async move {
                let key = format!("{}/{}", pending.endpoint_id, pending.event_id);
                let Some(endpoint) = endpoint else {
                    // The endpoint was deleted: nothing more to send.
                    let dropped = self.endpoints.delete_pending(&pending).await;
                    return (key, dropped.map(|()| DeliveryStatus::Parked));
                };
                pending.attempts += 1;
                let last = self
                    .attempt(
                        endpoint,
                        &pending.event_id,
                        pending.kind,
                        &pending.body,
                        now,
                    )
                    .await;
                (key, self.settle(pending, &last, now).await)
            });
        }
        let results: Vec<(String, Result<DeliveryStatus, StoreError>)> = stream::iter(retries)
            .buffer_unordered(CONCURRENT_DELIVERIES)
            .collect()
            .await;
        for (key, result) in results {
            outcome.count(key, result);
        }
        Ok(outcome)
    }
}

impl DeliveryOutcome {
    fn count(&mut self, key: String, result: Result<DeliveryStatus, StoreError>) {
        match result {
            Ok(DeliveryStatus::Delivered) => self.delivered += 1,
            Ok(DeliveryStatus::Retrying) => self.retrying += 1,
            Ok(DeliveryStatus::Parked) => self.parked += 1,
            Err(error) => {
                tracing::error!(at = %key, error = %error, "event delivery outcome cannot be stored");
                self.failed.insert(key);
            }
        }
    }
}

/// Fills the `balance_after` the batch could not pair (the account's write
/// fell in another batch) from a read of the account now.
pub async fn fill_balances(
    store: &dyn Store,
    events: &mut [OutgoingEvent],
) -> Result<(), StoreError> {
    for event in events.iter_mut().filter(|e| e.body.balance_after.is_none()) {
        let read = store
            .read(&event.shop, &ReadRequest::account(&event.customer))
            .await?;
        event.body.balance_after = read
            .accounts
            .get(&event.customer)
            .map(|account| Balance::of(&account.value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_timestamp_and_body_in_hex() {
        // RFC 4231 style check against a value computed with openssl:
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        let header = sign(&["whsec_test"], 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
        let two = sign(&["a", "b"], 1, b"x");
        assert_eq!(two.matches(",v1=").count(), 2);
    }

    #[test]
    fn retries_grow_fourfold_and_stop_at_twelve_hours() {
        let settings = DeliverySettings::default();
        let delays: Vec<i64> = (3..8)
            .map(|attempts| retry_delay(&settings, attempts).num_minutes())
            .collect();
        assert_eq!(delays, [1, 4, 16, 64, 256]);
        assert_eq!(retry_delay(&settings, 30), Duration::hours(12));
    }
}
