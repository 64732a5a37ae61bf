//! A batch of the table's stream records, turned into what this function
//! does with them:
//! - an account change that moves what the code must be (spendable
//!   balance, code, owner's email) becomes an [`Intent`] for that customer;
//! - a program change of the redemption rules (or of `platform_sync`)
//!   becomes a backfill request started over for the shop (every code
//!   takes the new rules, paced, in its own invocations);
//! - a run request's write ([`RunRequest`]) runs here;
//! - a marketing event's outbox item becomes a Klaviyo event of its shop
//!   ([`crate::marketing::track_events`]).
//!
//! Everything else is ignored. The answer names the first record to retry
//! (`ReportBatchItemFailures`), or none.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use aws_lambda_events::dynamodb::EventRecord;

use cashback_app::changes::sequence_order;
use cashback_app::platform_codes::{request_run, RunRequest};
use cashback_store::dynamo::stream::decode_record;

use crate::changes::intent_of;
use crate::{run_request, sync_intents, Deps, Intent};

/// The attribute a checkpoint item keeps its value in (the store's layout).
const CHECKPOINT_VALUE: &str = "bucket";

/// A string attribute of a stream image (`{"S": "..."}`).
fn image_s<'a>(image: Option<&'a Value>, name: &str) -> Option<&'a str> {
    image?.get(name)?.get("S")?.as_str()
}

/// The run request a record writes, if it writes one.
fn run_request_of(record: &Value) -> Option<(RunRequest, DateTime<Utc>)> {
    let dynamodb = record.get("dynamodb")?;
    let new = dynamodb.get("NewImage");
    let pk = image_s(dynamodb.get("Keys"), "pk")?;
    let job = pk.strip_prefix(cashback_store::keys::checkpoint_pk("").as_str())?;
    RunRequest::decode(job, image_s(new, CHECKPOINT_VALUE)?)
}

fn sequence_number(record: &Value) -> Option<String> {
    record
        .get("dynamodb")?
        .get("SequenceNumber")?
        .as_str()
        .map(str::to_string)
}

/// Handles a batch; answers `{"batchItemFailures": [...]}`.
pub async fn handle_records(deps: &Deps, payload: Value, now: DateTime<Utc>) -> Value {
    let records = crate::records_of(&payload);
    let mut intents: Vec<Intent> = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    let mut runs: Vec<(String, RunRequest, DateTime<Utc>)> = Vec::new();
    let mut restarts: Vec<(String, RunRequest)> = Vec::new();
    let mut events = Vec::new();
    for record in records {
        let Some(item) = sequence_number(record) else {
            tracing::warn!("a stream record without a sequence number was skipped");
            continue;
        };
        if let Some(found) = crate::marketing::event_of_record(record) {
            match found {
                Ok((shop, event)) => events.push((item, shop, event)),
                Err(error) => {
                    tracing::error!(item = %item, error = %error, "a marketing event could not be read");
                    unreadable.push(item);
                }
            }
            continue;
        }
        if let Some((request, at)) = run_request_of(record) {
            // A newer request of the same job replaces an older one in the batch.
            runs.retain(|(_, r, _)| r.job() != request.job());
            runs.push((item, request, at));
            continue;
        }
        if let Some(shop) = crate::changes::program_rules_changed(record) {
            restarts.push((
                item,
                RunRequest::Backfill {
                    shop,
                    restart: true,
                },
            ));
            continue;
        }
        let decoded = serde_json::from_value::<EventRecord>(record.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| decode_record(&r).map_err(|e| e.to_string()));
        match decoded {
            Ok(Some(change)) => intents.extend(intent_of(&change)),
            Ok(None) => {}
            Err(error) => {
                // Retried, then parked with the rest of the batch's tail.
                tracing::error!(item = %item, error = %error, "a stream record could not be read");
                unreadable.push(item);
            }
        }
    }
    let runs_done = async {
        let mut failed = Vec::new();
        for (item, request) in &restarts {
            if let Err(error) = request_run(&deps.ctx, request, now, None).await {
                tracing::warn!(shop = %request.shop(), error = %error, "the program change's backfill was not requested");
                failed.push(item.clone());
            }
        }
        for (item, request, at) in &runs {
            match run_request(deps, request, Some(*at), now).await {
                Ok(_) => {}
                Err(error) if error.is_retryable() => {
                    tracing::warn!(shop = %request.shop(), error = %error, "platform run failed; retried");
                    failed.push(item.clone());
                }
                Err(error) => {
                    tracing::error!(shop = %request.shop(), error = %error, "platform run failed");
                }
            }
        }
        failed
    };
    let tracked =
        crate::marketing::track_events(deps.marketing.as_deref(), events, deps.concurrency);
    let (synced, failed_runs, tracked) =
        tokio::join!(sync_intents(deps, intents), runs_done, tracked);
    let first = synced
        .retry_from
        .into_iter()
        .chain(failed_runs)
        .chain(tracked.failed)
        .chain(unreadable)
        .min_by(|a, b| sequence_order(a, b));
    let failures: Vec<Value> = first
        .into_iter()
        .map(|item| json!({ "itemIdentifier": item }))
        .collect();
    json!({ "batchItemFailures": failures })
}
