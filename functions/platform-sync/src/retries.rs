//! Customers whose sync failed in a run, reconciled again within minutes
//! (`cashback_app::platform_codes::retries` says why):
//! - [`queue_retries`]: after a run step, its failed customers go to the
//!   retry queue ([`SqsRetries`]: SQS, each message delayed
//!   `CASHBACK_SYNC_RETRY_DELAY_SECONDS`);
//! - [`handle_messages`]: the queue's batch, each customer reconciled as a
//!   run would ([`reconcile_customer`]). A message whose reconcile fails
//!   again is answered as a batch item failure: SQS hands it back after
//!   the queue's visibility timeout, and after its last receive moves it
//!   to the parked queue, which has an alarm (template.yaml).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use cashback_app::on_first_use::OnFirstUse;
use cashback_app::platform_codes::{
    reconcile_customer, RetryQueueError, RetryRequest, SyncRetries,
};
use cashback_core::ids::{CustomerId, ShopId};

use crate::{platform_shop, Deps, OffShops, RunError};

/// SQS's limits: entries per `SendMessageBatch`, and the longest delay.
const BATCH: usize = 10;
/// The longest delay SQS takes on a message.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

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
}

#[async_trait]
impl SyncRetries for SqsRetries {
    async fn retry_later(
        &self,
        shop: &ShopId,
        customers: &[CustomerId],
    ) -> Result<(), RetryQueueError> {
        let delay = i32::try_from(self.delay.as_secs()).unwrap_or(900);
        for chunk in customers.chunks(BATCH) {
            let mut batch = self
                .client
                .get()
                .send_message_batch()
                .queue_url(&self.queue_url);
            for (index, customer) in chunk.iter().enumerate() {
                let request = RetryRequest {
                    shop: shop.clone(),
                    customer: customer.clone(),
                };
                let body = serde_json::to_string(&request)
                    .map_err(|e| RetryQueueError::new("a retry did not serialise", e))?;
                let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .delay_seconds(delay)
                    .build()
                    .map_err(|e| RetryQueueError::new("a retry message is incomplete", e))?;
                batch = batch.entries(entry);
            }
            let sent = batch
                .send()
                .await
                .map_err(|e| RetryQueueError::new("SendMessageBatch failed", e))?;
            if let Some(failed) = sent.failed().first() {
                return Err(RetryQueueError {
                    message: format!(
                        "SQS refused {} of {} retries: {} {}",
                        sent.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or_default()
                    ),
                    source: None,
                });
            }
        }
        Ok(())
    }
}

/// Queues a run step's failed customers; they wait for the next reconcile
/// only when the queue itself fails (logged) or none is configured.
pub async fn queue_retries(deps: &Deps, shop: &ShopId, customers: &[CustomerId]) {
    if customers.is_empty() {
        return;
    }
    let Some(retries) = deps.retries.as_ref() else {
        tracing::info!(shop = %shop, customers = customers.len(),
            "platform run: failed syncs wait for the next reconcile (no retry queue)");
        return;
    };
    match retries.retry_later(shop, customers).await {
        Ok(()) => tracing::info!(shop = %shop, customers = customers.len(),
            "platform run: failed syncs queued to be tried again"),
        Err(error) => tracing::warn!(shop = %shop, customers = customers.len(), error = %error,
            "platform run: failed syncs not queued; they wait for the next reconcile"),
    }
}

/// Whether a batch is the retry queue's (SQS records), not the stream's.
pub fn is_queue_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .and_then(|records| records.first())
        .and_then(|record| record.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// What one message's reconcile came to.
enum Retried {
    /// In step now, or nothing left to do: the message is done.
    Done,
    /// Failed again: handed back to the queue.
    Again,
}

/// Handles the retry queue's batch; answers `{"batchItemFailures": [...]}`
/// with the messages to hand back. A customer named by several messages
/// (a run's retry queued twice) is reconciled once for all of them.
pub async fn handle_messages(deps: &Deps, payload: Value, _now: DateTime<Utc>) -> Value {
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut again: Vec<String> = Vec::new();
    let mut customers: Vec<(RetryRequest, Vec<String>)> = Vec::new();
    for record in &records {
        let Some(id) = record.get("messageId").and_then(Value::as_str) else {
            tracing::warn!("a queue record without a message id was skipped");
            continue;
        };
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match serde_json::from_str::<RetryRequest>(body) {
            Ok(request) => match customers.iter_mut().find(|(r, _)| *r == request) {
                Some((_, ids)) => ids.push(id.to_string()),
                None => customers.push((request, vec![id.to_string()])),
            },
            Err(error) => {
                // Handed back, then parked with an alarm: never dropped unseen.
                tracing::error!(message = %id, error = %error, "a sync retry does not read");
                again.push(id.to_string());
            }
        }
    }
    let retried: Vec<(Retried, &Vec<String>)> = stream::iter(customers.iter())
        .map(|(request, ids)| async move { (retry(deps, request).await, ids) })
        .buffer_unordered(deps.concurrency.max(1))
        .collect()
        .await;
    for (outcome, ids) in retried {
        if matches!(outcome, Retried::Again) {
            again.extend(ids.iter().cloned());
        }
    }
    let failures: Vec<Value> = again
        .into_iter()
        .map(|id| json!({ "itemIdentifier": id }))
        .collect();
    json!({ "batchItemFailures": failures })
}

/// One customer reconciled as a run would (the shop's platform called only
/// where a run may call it).
async fn retry(deps: &Deps, request: &RetryRequest) -> Retried {
    let RetryRequest { shop, customer } = request;
    match retry_customer(deps, shop, customer).await {
        Ok(retried) => retried,
        Err(error) if error.is_retryable() => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error,
                "platform sync retry failed; handed back");
            Retried::Again
        }
        Err(error) => {
            tracing::error!(shop = %shop, customer = %customer, error = %error,
                "platform sync retry failed for good; the next reconcile looks again");
            Retried::Done
        }
    }
}

async fn retry_customer(
    deps: &Deps,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Retried, RunError> {
    let Some(record) = platform_shop(&deps.ctx, shop, OffShops::UsedStoreCredit).await? else {
        // Sync off (with no store credit to empty), the app uninstalled,
        // or the shop gone: nothing to keep in step.
        return Ok(Retried::Done);
    };
    let platform: Arc<dyn cashback_app::platform_codes::PlatformCodes> =
        match deps.connections.for_shop(&record).await {
            Ok(platform) => platform,
            Err(cashback_platform_codes::ConnectError::Unsupported(_)) => return Ok(Retried::Done),
            Err(error) => return Err(error.into()),
        };
    let summary =
        reconcile_customer(&deps.ctx, platform.as_ref(), shop, customer, &deps.policy).await?;
    tracing::info!(shop = %shop, customer = %customer, drifted = summary.drifted,
        repaired = summary.repaired, failed = summary.failed, "platform sync retry");
    Ok(if summary.retry.is_empty() {
        Retried::Done
    } else {
        Retried::Again
    })
}
