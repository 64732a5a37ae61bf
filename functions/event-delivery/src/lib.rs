//! The event-delivery Lambda (docs/outgoing-events.md): two triggers, one
//! function.
//!
//! - The table's stream (new and old images): each batch's changes become
//!   events ([`cashback_app::outgoing::events_from_changes`]), published to
//!   the event bus, then POSTed, signed, to every endpoint of their shop
//!   ([`Deliverer::deliver`]), with a few quick retries inside the batch.
//! - A schedule (every minute): the pending retries that fell due, one
//!   attempt each ([`Deliverer::retry_due`]); parked after the last.
//!
//! Errors: a record that cannot be decoded, an event the bus refused, or a
//! delivery whose outcome could not be stored is reported as a batch item
//! failure at the earliest such record, so the event source mapping
//! retries from there (bisecting) and, once its retries are spent,
//! describes the batch on the failures queue (alarmed). Events redelivered
//! that way keep their ids. A failing endpoint is never a batch failure: its
//! retries are kept in the table, so one merchant's outage holds up no one.
//!
//! # Layout
//! - [`HttpSender`]: the `EventSender` port over the shared HTTPS client.
//! - [`EventBridgeBus`]: the `EventBus` port over PutEvents.
//! - [`function_handler`]: a stream batch; [`retry_handler`]: the schedule.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::Utc;
use hyper::header::HeaderName;
use hyper::Method;

use cashback_app::changes::{sequence_order, Change};
use cashback_app::error::error_chain;
use cashback_app::on_first_use::OnFirstUse;
use cashback_app::outgoing::delivery::{
    fill_balances, Deliverer, DeliveryOutcome, DeliverySettings, EventBus, EventSender, SendError,
};
use cashback_app::outgoing::url::Resolve;
use cashback_app::outgoing::{events_from_changes, OutgoingEvent};
use cashback_app::store::{Store, StoreError};
use cashback_platform_codes::http::HttpClient;
use cashback_store::dynamo::stream::decode;

/// The event bus's name (template.yaml's `CashbackEventBus`).
pub const BUS_ENV: &str = "CASHBACK_EVENT_BUS";

/// Every event's `source` on the bus.
pub const BUS_SOURCE: &str = "cashback.engine";

/// PutEvents takes at most 10 entries per call (and 256 KB; an event body
/// is about 1 KB).
pub const PUT_EVENTS_MAX: usize = 10;

/// Pending retries one scheduled run takes at most (a run every minute).
pub const RETRIES_PER_RUN: u32 = 500;

/// Why a batch or a run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The store failed (retried by the event source mapping or the next run).
    #[error("event delivery failed: {0}")]
    Store(#[from] StoreError),
    /// A scheduled event without its `time`: "now" is never guessed.
    #[error("the schedule's event has no time")]
    MissingTime,
    /// No POST can be sent (the HTTPS client could not be built): retried,
    /// the records kept, no delivery attempt counted.
    #[error("event delivery cannot send: {0}")]
    Sender(SendError),
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        let retryable = match &error {
            HandlerError::Store(store) => store.is_retryable(),
            HandlerError::MissingTime => false,
            HandlerError::Sender(_) => true,
        };
        lambda_runtime::Diagnostic {
            error_type: if retryable {
                "Retryable"
            } else {
                "NonRetryable"
            }
            .into(),
            error_message: error.to_string(),
        }
    }
}

/// What the handlers need, built once per container.
pub struct Deps {
    /// The table: accounts (balances a batch could not pair) and the
    /// endpoint store it keeps.
    pub store: Arc<dyn Store>,
    /// POSTs to the endpoints.
    pub sender: Arc<dyn EventSender>,
    /// The event bus; None when no bus is configured (local runs).
    pub bus: Option<Arc<dyn EventBus>>,
    /// Resolves endpoint names before each attempt.
    pub resolver: Arc<dyn Resolve>,
    /// How hard deliveries are tried.
    pub settings: DeliverySettings,
}

impl Deps {
    /// The deliverer, once the sender can send (every entry point
    /// passes here: a sender that cannot is the batch's failure).
    fn deliverer(&self) -> Result<Deliverer<'_>, HandlerError> {
        self.sender.ready().map_err(HandlerError::Sender)?;
        let endpoints = self
            .store
            .event_endpoints()
            .ok_or_else(|| StoreError::Other("the store keeps no event endpoints".into()))?;
        Ok(Deliverer {
            endpoints,
            sender: self.sender.as_ref(),
            resolver: self.resolver.as_ref(),
            settings: self.settings.clone(),
        })
    }
}

/// The `EventSender` port over the HTTPS client the platform adapters
/// share (rustls; plain HTTP only to a loopback host). Each POST ends
/// within its timeout, connection included, and never follows a redirect.
/// The client is built by the first batch, not at start: it loads the
/// system's trust store, which was most of the function's cold start
/// (BENCHMARKS.md, section 4).
pub struct HttpSender {
    timeout: Duration,
    public_only: bool,
    client: OnceLock<HttpClient>,
}

impl HttpSender {
    /// A sender whose every POST ends within `timeout`, to whatever a name
    /// resolves to (local runs).
    pub fn new(timeout: Duration) -> HttpSender {
        HttpSender {
            timeout,
            public_only: false,
            client: OnceLock::new(),
        }
    }

    /// The function's sender: like [`HttpSender::new`], but a name is
    /// connected to through its public addresses only, so one re-pointed
    /// at a private address after the check before the attempt (DNS
    /// rebinding) fails the attempt with nothing sent.
    pub fn public_only(timeout: Duration) -> HttpSender {
        HttpSender {
            public_only: true,
            ..HttpSender::new(timeout)
        }
    }

    /// The client, built by the first call that needs it. A construction
    /// that failed (no trust store) is logged and not kept: the next call
    /// tries again.
    fn client(&self) -> Result<&HttpClient, SendError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = if self.public_only {
            HttpClient::public_only(self.timeout)
        } else {
            HttpClient::new(self.timeout)
        };
        match built {
            Ok(client) => Ok(self.client.get_or_init(|| client)),
            Err(error) => {
                tracing::error!(error = %error, "the HTTPS client for the endpoints could not be built");
                Err(SendError(format!(
                    "the HTTPS client could not be built: {error}"
                )))
            }
        }
    }
}

#[async_trait::async_trait]
impl EventSender for HttpSender {
    fn ready(&self) -> Result<(), SendError> {
        self.client().map(|_| ())
    }

    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> Result<u16, SendError> {
        let mut all: Vec<(HeaderName, String)> =
            vec![(hyper::header::CONTENT_TYPE, "application/json".to_string())];
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| SendError(format!("header {name}: {e}")))?;
            all.push((name, value.clone()));
        }
        all.push((hyper::header::USER_AGENT, "cashback-events/1".to_string()));
        self.client()?
            .send(Method::POST, url, &all, Some(body.to_vec()))
            .await
            .map(|response| response.status.as_u16())
            .map_err(|e| SendError(error_chain(&e)))
    }
}

/// The `EventBus` port over EventBridge's PutEvents: `source`
/// [`BUS_SOURCE`], `detail-type` the kind, `detail` the body.
pub struct EventBridgeBus {
    client: OnFirstUse<aws_sdk_eventbridge::Client>,
    bus: String,
}

impl EventBridgeBus {
    /// Publishes to the bus named `bus`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> EventBridgeBus {
        EventBridgeBus {
            client: OnFirstUse::built(client),
            bus: bus.into(),
        }
    }

    /// Publishes to the bus named `bus` through the client `build` makes
    /// for the first publish, not at start (BENCHMARKS.md, section 4).
    pub fn on_first_use(
        build: impl Fn() -> aws_sdk_eventbridge::Client + Send + Sync + 'static,
        bus: impl Into<String>,
    ) -> EventBridgeBus {
        EventBridgeBus {
            client: OnFirstUse::new(build),
            bus: bus.into(),
        }
    }
}

/// The PutEvents entry of one event.
pub fn bus_entry(
    event: &OutgoingEvent,
    bus: &str,
) -> Result<aws_sdk_eventbridge::types::PutEventsRequestEntry, SendError> {
    let detail = event
        .json()
        .map_err(|e| SendError(format!("event body: {e}")))?;
    Ok(aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(BUS_SOURCE)
        .detail_type(event.body.kind.as_str())
        .detail(detail)
        .resources(format!("shop/{}", event.shop))
        .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(
            event.body.occurred_at.timestamp(),
        ))
        .build())
}

#[async_trait::async_trait]
impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[OutgoingEvent]) -> Result<(), SendError> {
        for chunk in events.chunks(PUT_EVENTS_MAX) {
            let entries = chunk
                .iter()
                .map(|event| bus_entry(event, &self.bus))
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .get()
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SendError(format!("PutEvents: {}", error_chain(&e))))?;
            if output.failed_entry_count() > 0 {
                let first = output
                    .entries()
                    .iter()
                    .find_map(|e| e.error_message().map(str::to_string))
                    .unwrap_or_default();
                return Err(SendError(format!(
                    "PutEvents refused {} of {} entries: {first}",
                    output.failed_entry_count(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }
}

/// One batch of the table's stream.
pub async fn function_handler(
    deps: &Deps,
    event: Event,
) -> Result<DynamoDbEventResponse, HandlerError> {
    let deliverer = deps.deliverer()?;
    let mut changes: Vec<Change> = Vec::new();
    let mut failure: Option<String> = None;
    for (sequence, decoded) in decode(&event) {
        match decoded {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%sequence, error = %error, "stream record cannot be read");
                failure = Some(sequence);
                break;
            }
        }
    }
    // The batch's first record's creation time: the time of a tier change
    // whose write left no entry here (the same on every redelivery).
    let written_at = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .filter(|at| at.timestamp() > 0)
        .min()
        .unwrap_or_else(Utc::now);
    let mut events = events_from_changes(&changes, written_at);
    fill_balances(deps.store.as_ref(), &mut events).await?;
    let now = Utc::now();
    let mut outcome = DeliveryOutcome::default();
    if let Some(bus) = &deps.bus {
        if !events.is_empty() {
            if let Err(error) = bus.publish(&events).await {
                // Every event of the batch again: the bus and the endpoints
                // both see them at least once (the same ids).
                tracing::error!(error = %error, events = events.len(), "events not published to the bus");
                outcome.failed.insert(events[0].sequence.clone());
            }
        }
    }
    let delivered = deliverer.deliver(&events, now).await;
    outcome.delivered = delivered.delivered;
    outcome.retrying = delivered.retrying;
    outcome.parked = delivered.parked;
    outcome.failed.extend(delivered.failed);
    tracing::info!(
        records = event.records.len(),
        events = events.len(),
        delivered = outcome.delivered,
        retrying = outcome.retrying,
        parked = outcome.parked,
        failed = outcome.failed.len(),
        "stream batch delivered"
    );
    let first = [failure, outcome.first_failed()]
        .into_iter()
        .flatten()
        .min_by(|a, b| sequence_order(a, b));
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = first {
        let mut item = DynamoDbBatchItemFailure::default();
        item.item_identifier = Some(sequence);
        response.batch_item_failures.push(item);
    }
    Ok(response)
}

/// The schedule's run: pending retries due at the event's `time`.
pub async fn retry_handler(
    deps: &Deps,
    event: EventBridgeEvent,
) -> Result<DeliveryOutcome, HandlerError> {
    let now = event.time.ok_or(HandlerError::MissingTime)?;
    let outcome = deps.deliverer()?.retry_due(now, RETRIES_PER_RUN).await?;
    tracing::info!(
        delivered = outcome.delivered,
        retrying = outcome.retrying,
        parked = outcome.parked,
        failed = outcome.failed.len(),
        "event retries run"
    );
    Ok(outcome)
}

/// What invoked the function: the stream or the schedule.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    /// A batch of the table's stream.
    Stream(Event),
    /// The retry schedule.
    Schedule(EventBridgeEvent),
}

/// The answer to either trigger.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// The stream's batch item failures.
    Stream(DynamoDbEventResponse),
    /// The run's figures.
    Schedule(RunSummary),
}

/// A scheduled run's figures.
#[derive(Debug, serde::Serialize)]
pub struct RunSummary {
    /// Delivered now.
    pub delivered: u64,
    /// Failed again, scheduled.
    pub retrying: u64,
    /// Given up.
    pub parked: u64,
}

/// Either trigger.
pub async fn handle(deps: &Deps, trigger: Trigger) -> Result<Answer, HandlerError> {
    match trigger {
        Trigger::Stream(event) => Ok(Answer::Stream(function_handler(deps, event).await?)),
        Trigger::Schedule(event) => {
            let outcome = retry_handler(deps, event).await?;
            Ok(Answer::Schedule(RunSummary {
                delivered: outcome.delivered,
                retrying: outcome.retrying,
                parked: outcome.parked,
            }))
        }
    }
}
