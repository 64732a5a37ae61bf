//! The report-aggregator Lambda: the table's stream (new and old images)
//! runs [`cashback_app::aggregator::aggregate`] over each batch, which sums
//! the ledger entries written and the customer counter moves per shop and
//! adds them to the report items exactly once (docs/reports.md), and
//! credits referrers off their referred buyers' transactions
//! (docs/ledger.md, "Referral rewards") and counts the uses of coupons with
//! no total limit off the orders' transactions (docs/data-model.md).
//!
//! Errors: a record that cannot be decoded (a corrupt item) is reported as
//! a batch item failure, after the changes before it were added, so the
//! event source mapping retries from it and, once its retries are spent,
//! describes the batch on the failures queue (alarmed) and moves on. A
//! store failure fails the whole invocation: the batch is retried (split in
//! halves after an error), and the markers make what was added before add
//! nothing again.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

use cashback_app::aggregator::aggregate;
use cashback_app::changes::Change;
use cashback_app::coupon_uses::count_uses;
use cashback_app::referral::settle_credits;
use cashback_app::store::{ReportStore, Store, StoreError};
use cashback_store::dynamo::stream::decode;

/// Why a batch was not summed: the store failed (retried by the event
/// source mapping).
#[derive(Debug, thiserror::Error)]
#[error("report aggregation failed: {0}")]
pub struct HandlerError(#[from] pub StoreError);

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        lambda_runtime::Diagnostic {
            error_type: if error.0.is_retryable() {
                "Retryable".into()
            } else {
                "NonRetryable".into()
            },
            error_message: error.to_string(),
        }
    }
}

/// One batch of the table's stream: the report sums, then the referral
/// credits the batch names settled on their referrers' accounts
/// (`cashback_app::referral::settle_credits`; their own writes come round
/// in a later batch, and settle nothing twice).
pub async fn function_handler<S: Store + ReportStore>(
    store: &S,
    event: Event,
) -> Result<DynamoDbEventResponse, HandlerError> {
    let mut changes: Vec<Change> = Vec::new();
    let mut failure = None;
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
    // The day the batch's first record was written (0 when a test's record
    // does not say).
    let written = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .filter(|at| at.timestamp() > 0)
        .min()
        .map(|at| at.date_naive());
    let outcome = aggregate(store, written, &changes).await?;
    // The credits settle at the time the batch's last record was written.
    let now = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .filter(|at| at.timestamp() > 0)
        .max()
        .unwrap_or_else(chrono::Utc::now);
    let referrals = settle_credits(store, &changes, now).await?;
    let coupon_uses = count_uses(store, &changes).await?;
    tracing::info!(
        records = event.records.len(),
        changes = outcome.changes,
        writes = outcome.added,
        skipped = outcome.skipped,
        referral_credits = referrals.credits,
        referral_credits_settled = referrals.written,
        coupon_uses_counted = coupon_uses.counted,
        "stream batch summed"
    );
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = failure {
        let mut item = DynamoDbBatchItemFailure::default();
        item.item_identifier = Some(sequence);
        response.batch_item_failures.push(item);
    }
    Ok(response)
}
