//! Customers a run could not bring in step, reconciled again within
//! minutes (`cashback_app::platform_codes::retries` says why):
//! - [`queue_retries`]: after a run step, its failed customers go to the
//!   retry queue ([`SqsRetries`]: SQS, each message delayed
//!   `CASHBACK_SYNC_RETRY_DELAY_SECONDS`), unless so many failed that the
//!   shop's platform is the cause (`shop_wide`): then none is, and the
//!   shop is logged as failing (an alarm);
//! - [`handle_messages`]: the queue's batch, each customer reconciled as a
//!   run would ([`reconcile_customer`]). A message whose reconcile fails
//!   again (except the platform's refusal of the request, reported as any
//!   reconcile reports it), runs out of time, or does not read is answered
//!   as a batch item failure: SQS hands it back after the queue's visibility timeout, and
//!   after its last receive moves it to the parked queue, which has an
//!   alarm (template.yaml). Only a message with nothing left to do is done
//!   without its reconcile (the shop gone, uninstalled, or no longer
//!   syncing).

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::time::Instant;

use cashback_app::on_first_use::OnFirstUse;
use cashback_app::platform_codes::{
    reconcile_customer, shop_wide, PlatformCodes, RetryQueueError, RetryRequest, SyncRetries,
};
use cashback_core::ids::{CustomerId, ShopId};

use crate::{Deps, OffShops, RunError};

/// Entries per `SendMessageBatch` (SQS's limit).
const BATCH: usize = 10;
/// The longest delay SQS takes on a message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// No retry is started with less than this left of the invocation: a
/// reconcile against a platform that hangs takes up to about a minute
/// (its calls' timeouts and backoff), and is cut off [`ANSWER_RESERVE`]
/// before the deadline (handed back, as if it had failed).
pub const RETRY_RESERVE: Duration = Duration::from_secs(90);
/// How long queueing a run's retries may take.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// A retry still running this close to the invocation's deadline is cut
/// off and handed back, so the batch's answer is still given.
pub const ANSWER_RESERVE: Duration = Duration::from_secs(10);
/// The log field an alarm watches (template.yaml).
pub const FAILING_ALERT: &str = "platform_sync_failing";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The retry queue on SQS; its client is built by its first use.
pub struct SqsRetries {
    client: OnFirstUse<aws_sdk_sqs::Client>,
    queue_url: String,
    delay: Duration,
}

impl SqsRetries {
    /// Nothing is built here. `delay` is capped at SQS's 15 minutes.
    pub fn on_first_use(
        client: impl Fn() -> aws_sdk_sqs::Client + Send + Sync + 'static,
        queue_url: String,
        delay: Duration,
    ) -> SqsRetries {
        SqsRetries {
            client: OnFirstUse::new(client),
            queue_url,
            delay: delay.min(MAX_DELAY),
        }
    }

    /// Sends one batch; answers the ids SQS refused (sent again once by
    /// the caller) or the call's error.
    async fn send_batch(&self, entries: &[(String, String)]) -> Result<Vec<String>, BoxError> {
        let delay = i32::try_from(self.delay.as_secs()).unwrap_or(900);
        let mut batch = self
            .client
            .get()
            .send_message_batch()
            .queue_url(&self.queue_url);
        for (id, body) in entries {
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()?,
            );
        }
        let sent = batch.send().await.map_err(aws_sdk_sqs::Error::from)?;
        for failed in sent.failed() {
            tracing::warn!(
                code = failed.code(),
                message = failed.message().unwrap_or_default(),
                sender_fault = failed.sender_fault(),
                "SQS refused a sync retry"
            );
        }
        Ok(sent.failed().iter().map(|f| f.id().to_string()).collect())
    }
}

#[async_trait]
impl SyncRetries for SqsRetries {
    async fn retry_later(&self, requests: &[RetryRequest]) -> Result<(), RetryQueueError> {
        let mut unqueued = 0;
        let mut last_error: Option<BoxError> = None;
        for chunk in requests.chunks(BATCH) {
            let mut entries: Vec<(String, String)> = Vec::new();
            for (index, request) in chunk.iter().enumerate() {
                match serde_json::to_string(request) {
                    Ok(body) => entries.push((index.to_string(), body)),
                    Err(error) => {
                        tracing::error!(error = %error, "a sync retry did not serialise");
                        unqueued += 1;
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            // Entries SQS refused are sent once more.
            for attempt in 0..2 {
                match self.send_batch(&entries).await {
                    Ok(refused) if refused.is_empty() => break,
                    Ok(refused) => {
                        entries.retain(|(id, _)| refused.contains(id));
                        if attempt == 1 {
                            unqueued += entries.len();
                        }
                    }
                    Err(error) => {
                        if attempt == 1 {
                            unqueued += entries.len();
                        }
                        last_error = Some(error);
                    }
                }
            }
        }
        if unqueued == 0 {
            return Ok(());
        }
        Err(RetryQueueError {
            unqueued,
            message: "SendMessageBatch failed or refused entries twice".into(),
            source: last_error,
        })
    }
}

/// Queues a run step's failed customers (of `attempted` it went
/// through). None is when the shop's platform is the cause
/// ([`shop_wide`]), nor without a queue configured (local runs); when the
/// queue fails, those it did not take wait for the next reconcile. Each
/// case is logged, the first and the last as the alert the template's
/// alarm watches.
pub async fn queue_retries(deps: &Deps, shop: &ShopId, customers: &[CustomerId], attempted: u64) {
    if customers.is_empty() {
        return;
    }
    if shop_wide(customers.len(), attempted) {
        tracing::error!(alert = FAILING_ALERT, shop = %shop, customers = customers.len(), attempted,
            "platform run: the shop's platform is failing (credentials, outage); none of its \
             failed syncs is queued, the next reconcile takes them (ask for one once it answers)");
        return;
    }
    let Some(retries) = deps.retries.as_ref() else {
        tracing::info!(shop = %shop, customers = customers.len(),
            "platform run: failed syncs wait for the next reconcile (no retry queue)");
        return;
    };
    let requests: Vec<RetryRequest> = customers
        .iter()
        .map(|customer| RetryRequest {
            shop: shop.clone(),
            customer: customer.clone(),
        })
        .collect();
    match tokio::time::timeout(QUEUE_TIMEOUT, retries.retry_later(&requests)).await {
        Ok(Ok(())) => tracing::info!(shop = %shop, customers = customers.len(),
            "platform run: failed syncs queued to be tried again"),
        Ok(Err(error)) => tracing::error!(alert = FAILING_ALERT, shop = %shop,
            customers = customers.len(), unqueued = error.unqueued, error = %error,
            "platform run: failed syncs not queued; they wait for the next reconcile"),
        Err(_) => tracing::error!(alert = FAILING_ALERT, shop = %shop,
            customers = customers.len(),
            "platform run: queueing the failed syncs timed out; they wait for the next reconcile"),
    }
}

/// Whether a batch is the retry queue's (SQS records), not the stream's.
pub fn is_queue_batch(payload: &Value) -> bool {
    crate::records_of(payload)
        .first()
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// What one request's retry came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retried {
    /// In step now, or nothing left to do: its messages are done.
    Done,
    /// Failed again, or not tried for lack of time: handed back.
    Again,
}

/// Handles the retry queue's batch; answers `{"batchItemFailures": [...]}`
/// with the messages to hand back. A customer named by several messages
/// (queued twice) is reconciled once for all of them. None is started
/// with less than [`RETRY_RESERVE`] left before `deadline`, and one still
/// running [`ANSWER_RESERVE`] before it is cut off and handed back.
pub async fn handle_messages(deps: &Deps, payload: Value, deadline: Option<Instant>) -> Value {
    let mut again: Vec<String> = Vec::new();
    let mut requests: Vec<(RetryRequest, Vec<String>)> = Vec::new();
    for record in crate::records_of(&payload) {
        let Some(id) = record.get("messageId").and_then(Value::as_str) else {
            tracing::warn!("a queue record without a message id was skipped");
            continue;
        };
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match serde_json::from_str::<RetryRequest>(body) {
            Ok(request) => match requests.iter_mut().find(|(r, _)| *r == request) {
                Some((_, ids)) => ids.push(id.to_string()),
                None => requests.push((request, vec![id.to_string()])),
            },
            Err(error) => {
                // Handed back, then parked with an alarm: never dropped unseen.
                tracing::error!(message = %id, error = %error, "a sync retry does not read");
                again.push(id.to_string());
            }
        }
    }
    let retried: Vec<(Retried, &Vec<String>)> = stream::iter(requests.iter())
        .map(|(request, ids)| async move {
            let time_left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if time_left.is_some_and(|left| left < RETRY_RESERVE) {
                return (Retried::Again, ids);
            }
            let cut = deadline.map(|d| d.checked_sub(ANSWER_RESERVE).unwrap_or(d));
            let retried = match cut {
                Some(cut) => tokio::time::timeout_at(cut, retry(deps, request))
                    .await
                    .unwrap_or_else(|_| {
                        tracing::warn!(shop = %request.shop, customer = %request.customer,
                            "platform sync retry cut off by the invocation's deadline; handed back");
                        Retried::Again
                    }),
                None => retry(deps, request).await,
            };
            (retried, ids)
        })
        .buffer_unordered(deps.concurrency.max(1))
        .collect()
        .await;
    for (outcome, ids) in retried {
        if outcome == Retried::Again {
            again.extend(ids.iter().cloned());
        }
    }
    let failures: Vec<Value> = again
        .into_iter()
        .map(|id| json!({ "itemIdentifier": id }))
        .collect();
    json!({ "batchItemFailures": failures })
}

/// One customer reconciled again; every failure is handed back, so what
/// keeps failing ends parked with the alarm.
async fn retry(deps: &Deps, request: &RetryRequest) -> Retried {
    let RetryRequest { shop, customer } = request;
    let result = async {
        let Some(platform) =
            crate::callable_platform(deps, shop, OffShops::UsedStoreCredit).await?
        else {
            tracing::info!(shop = %shop, customer = %customer,
                "platform sync retry: nothing to do (the shop no longer syncs, or is gone)");
            return Ok(Retried::Done);
        };
        retry_customer(deps, platform.as_ref(), shop, customer).await
    }
    .await;
    result.unwrap_or_else(|error: RunError| {
        tracing::warn!(shop = %shop, customer = %customer, error = %error,
            retryable = error.is_retryable(), "platform sync retry failed; handed back");
        Retried::Again
    })
}

async fn retry_customer(
    deps: &Deps,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Retried, RunError> {
    let summary = reconcile_customer(&deps.ctx, platform, shop, customer, &deps.policy).await?;
    tracing::info!(shop = %shop, customer = %customer, drifted = summary.drifted,
        repaired = summary.repaired, failed = summary.failed, "platform sync retry");
    Ok(if summary.retry.is_empty() {
        Retried::Done
    } else {
        Retried::Again
    })
}
