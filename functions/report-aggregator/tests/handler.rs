//! The report-aggregator handler on stream events: moto's real stream of a
//! table the engine wrote (skipped without `MOTO_ENDPOINT`, unless
//! `REQUIRE_MOTO=1`), and hand-made records for what moto cannot produce.

use aws_lambda_events::dynamodb::Event;
use chrono::Duration;
use rust_decimal_macros::dec;

use cashback_app::store::{AccountWrite, Store, WriteSet};
use cashback_core::ledger::Account;
use cashback_store::MemoryStore;
use cashback_test_support::fixtures::{customer, program, shop, t0, usd};
use cashback_test_support::moto;
use report_aggregator::function_handler;

/// Ann and Bob credited by the merchant, Ann twice (on two days).
async fn credits(store: &dyn Store) {
    let program = program();
    for (who, amount, key, days) in [
        ("ann", "5.00", "a1", 0),
        ("bob", "7.00", "b1", 0),
        ("ann", "2.50", "a2", 1),
    ] {
        let current = store
            .read(
                &shop(),
                &cashback_app::store::ReadRequest::account(&customer(who)),
            )
            .await
            .unwrap()
            .accounts
            .remove(&customer(who));
        let (mut account, version) = match current {
            Some(read) => (read.value, read.version),
            None => (Account::open(shop(), customer(who), program.currency), 0),
        };
        let applied = account
            .adjust(
                usd(amount),
                "goodwill",
                key,
                &program,
                t0() + Duration::days(days),
            )
            .unwrap();
        let write = AccountWrite::new(&program, account, version).with_entries(applied.entries);
        store
            .write(&shop(), WriteSet::account(write))
            .await
            .unwrap();
    }
}

async fn credited(store: &dyn Store) -> (rust_decimal::Decimal, i64) {
    let day = t0().date_naive();
    let aggregates = store
        .aggregates(&shop(), day, day + Duration::days(1))
        .await
        .unwrap();
    let sums = aggregates.up_to(day + Duration::days(1));
    (sums.adjust.credited, aggregates.counts.customers)
}

fn half(event: &Event, first: bool) -> Event {
    let cut = event.records.len() / 2;
    let mut half = event.clone();
    half.records = if first {
        event.records[..cut].to_vec()
    } else {
        event.records[cut..].to_vec()
    };
    half
}

#[tokio::test]
async fn on_dynamodb_a_stream_batch_is_summed_once_however_often_it_is_delivered() {
    let Some(store) = moto::fresh_store("aggregator_handler").await else {
        return;
    };
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("moto");
    credits(&store).await;
    let event = moto::stream_event(&endpoint, store.table_name()).await;
    assert!(event.records.len() >= 6, "{} records", event.records.len());

    // The event's first half (a batch split in halves after an error is
    // delivered in order: first half first), then the whole again.
    let response = function_handler(&store, half(&event, true)).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let response = function_handler(&store, event.clone()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(credited(&store).await, (dec!(14.50), 2));

    // Delivered again, whole and in halves: nothing more.
    for again in [event.clone(), half(&event, true), half(&event, false)] {
        function_handler(&store, again).await.unwrap();
    }
    assert_eq!(credited(&store).await, (dec!(14.50), 2));
    // The aggregator's own writes are in the stream too: no change to money.
    let later = moto::stream_event(&endpoint, store.table_name()).await;
    assert!(later.records.len() > event.records.len());
    function_handler(&store, later).await.unwrap();
    assert_eq!(credited(&store).await, (dec!(14.50), 2));
}

/// A record whose account image cannot be decoded.
fn corrupt_record(sequence: &str) -> serde_json::Value {
    serde_json::json!({
        "eventID": "corrupt",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_764_460_800,
            "Keys": {"pk": {"S": "SHOP#demo.myshopify.com#CUST#zed"}, "sk": {"S": "ACCOUNT"}},
            "NewImage": {
                "pk": {"S": "SHOP#demo.myshopify.com#CUST#zed"},
                "sk": {"S": "ACCOUNT"},
                "entity_type": {"S": "ACCOUNT"},
                "doc": {"S": "{not json"}
            },
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        }
    })
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_reported_and_what_came_before_it_is_added() {
    // Without moto: the bad record alone is named, nothing is added.
    let memory = MemoryStore::new();
    let event: Event =
        serde_json::from_value(serde_json::json!({ "Records": [corrupt_record("900")] })).unwrap();
    let response = function_handler(&memory, event).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("900")
    );

    let Some(store) = moto::fresh_store("aggregator_corrupt").await else {
        return;
    };
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("moto");
    credits(&store).await;
    let mut event = moto::stream_event(&endpoint, store.table_name()).await;
    let last = event
        .records
        .last()
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap();
    let after = format!("{}9", last);
    event
        .records
        .push(serde_json::from_value(corrupt_record(&after)).unwrap());
    let response = function_handler(&store, event).await.unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [Some(after)]);
    assert_eq!(credited(&store).await, (dec!(14.50), 2));
}
