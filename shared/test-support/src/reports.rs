//! Reports in tests: neither store keeps aggregates on its write path; the
//! report aggregator sums the change feed, as the table's stream feeds it
//! on AWS. A test that reads a report first calls [`catch_up`] (in-memory
//! store: its change log) or [`catch_up_on_moto`] (DynamoDB on moto: the
//! table's stream, read from the start). Both also settle the referral
//! credits the feed names, as the deployed consumer does: a test that reads
//! a referrer's account after a referred order catches up first.

use cashback_app::aggregator::{aggregate, Outcome};
use cashback_app::changes::Change;
use cashback_store::{DynamoStore, MemoryStore};

/// Sums every change the store logged since the last call into its report
/// items (exactly once, as on AWS).
pub async fn catch_up(store: &MemoryStore) -> Outcome {
    store
        .aggregate_reports()
        .await
        .expect("the in-memory store adds report sums")
}

/// Sums moto's stream of the store's table, from its start, as the
/// deployed report-aggregator function does: what was added before adds
/// nothing again.
pub async fn catch_up_on_moto(store: &DynamoStore, endpoint: &str) -> Outcome {
    let event = crate::moto::stream_event(endpoint, store.table_name()).await;
    let changes: Vec<Change> = cashback_store::dynamo::stream::decode(&event)
        .into_iter()
        .filter_map(|(sequence, change)| {
            change.unwrap_or_else(|e| panic!("stream record {sequence}: {e}"))
        })
        .collect();
    let written = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time.date_naive())
        .min();
    let now = event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .max()
        .unwrap_or_else(chrono::Utc::now);
    let outcome = aggregate(store, written, &changes)
        .await
        .expect("the report sums are added on moto");
    cashback_app::referral::settle_credits(store, &changes, now)
        .await
        .expect("the referral credits are settled on moto");
    cashback_app::coupon_uses::count_uses(store, &changes)
        .await
        .expect("the coupon uses are counted on moto");
    outcome
}
