//! The event-delivery function on moto's real stream of a table the engine
//! wrote (skipped without `MOTO_ENDPOINT`, unless `REQUIRE_MOTO=1`), to a
//! fake merchant that verifies every signature as a merchant would: every
//! kind delivered, a redelivered batch keeping its ids, a failing endpoint
//! retried then parked, a rotated secret signing; and EventBridge.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, Utc};

use cashback_app::outgoing::delivery::{DeliverySettings, EventBus, SendError};
use cashback_app::outgoing::endpoints::{self, DeliveryStatus, EndpointRecord, EndpointStore};
use cashback_app::outgoing::url::{SystemResolver, UrlPolicy};
use cashback_app::outgoing::{EventKind, OutgoingEvent};
use cashback_app::store::{AccountWrite, ReadRequest, Store, WriteSet};
use cashback_core::ids::ShopId;
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_store::DynamoStore;
use cashback_test_support::fakes::merchant::FakeMerchant;
use cashback_test_support::fixtures::{customer, program, shop, t0, usd};
use cashback_test_support::moto;
use event_delivery::{bus_entry, function_handler, retry_handler, Deps, HttpSender, BUS_SOURCE};

const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab";

/// Events the bus was given.
#[derive(Default)]
struct KeptBus(Mutex<Vec<OutgoingEvent>>);

#[async_trait::async_trait]
impl EventBus for KeptBus {
    async fn publish(&self, events: &[OutgoingEvent]) -> Result<(), SendError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        attempts_in_batch: 2,
        first_backoff: StdDuration::from_millis(10),
        budget: StdDuration::from_secs(5),
        max_attempts: 4,
        retry_base: Duration::minutes(1),
        policy: UrlPolicy::AllowLoopback,
    }
}

fn deps(store: Arc<dyn Store>, bus: Option<Arc<dyn EventBus>>) -> Deps {
    Deps {
        store,
        sender: Arc::new(HttpSender::public_only(StdDuration::from_secs(5))),
        bus,
        resolver: Arc::new(SystemResolver),
        settings: settings(),
    }
}

fn endpoint_of(shop: &ShopId, id: &str, url: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.into(),
        shop: shop.clone(),
        url: url.into(),
        description: None,
        secret: SECRET.into(),
        previous_secret: None,
        previous_valid_until: None,
        created_at: t0(),
        created_by: "tester".into(),
        rotated_at: None,
    }
}

fn endpoints(store: &dyn Store) -> &dyn EndpointStore {
    store.event_endpoints().unwrap()
}

/// Ann's account as stored, or a new one.
async fn current(store: &dyn Store, who: &str) -> (Account, u64) {
    let read = store
        .read(&shop(), &ReadRequest::account(&customer(who)))
        .await
        .unwrap()
        .accounts
        .remove(&customer(who));
    match read {
        Some(read) => (read.value, read.version),
        None => (Account::open(shop(), customer(who), program().currency), 0),
    }
}

/// One write of `who`'s: an entry of `kind` moving available (through a
/// merchant adjustment, which keeps the lots) and pending by hand.
async fn write(
    store: &dyn Store,
    who: &str,
    kind: EntryKind,
    available: &str,
    pending: &str,
    tier: Option<usize>,
    minute: i64,
) {
    let program = program();
    let (mut account, version) = current(store, who).await;
    let at = t0() + Duration::minutes(minute);
    let key = format!("{kind:?}-{minute}");
    let mut entry = if available == "0.00" {
        LedgerEntry {
            entry_id: format!("{key}:0"),
            at,
            kind,
            order_id: None,
            available_delta: usd("0.00"),
            pending_delta: usd("0.00"),
            debt_delta: usd("0.00"),
            funding: None,
            note: None,
        }
    } else {
        let applied = account
            .adjust(usd(available), "test", &key, &program, at)
            .unwrap();
        applied.entries.into_iter().next().unwrap()
    };
    entry.kind = kind;
    entry.pending_delta = usd(pending);
    account.pending = account.pending.checked_add(usd(pending)).unwrap();
    if tier.is_some() {
        account.tier = tier;
        account.lifetime_eligible_spend = usd("600.00");
    }
    let write = AccountWrite::new(&program, account, version).with_entries(vec![entry]);
    store
        .write(&shop(), WriteSet::account(write))
        .await
        .unwrap();
}

/// Ann's history: every kind once (the earn moves her up a tier).
async fn history(store: &dyn Store) {
    write(store, "ann", EntryKind::Earn, "0.00", "10.00", Some(0), 0).await;
    write(store, "ann", EntryKind::Release, "10.00", "-10.00", None, 1).await;
    write(store, "ann", EntryKind::Redeem, "-3.00", "0.00", None, 2).await;
    write(store, "ann", EntryKind::Clawback, "-2.00", "0.00", None, 3).await;
    write(store, "ann", EntryKind::Adjust, "5.00", "0.00", None, 4).await;
    write(store, "ann", EntryKind::Expire, "-1.00", "0.00", None, 5).await;
}

async fn moto_world(name: &str) -> Option<(Arc<DynamoStore>, String)> {
    let store = moto::fresh_store(name).await?;
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("moto");
    Some((Arc::new(store), endpoint))
}

async fn state(
    e: &dyn EndpointStore,
    endpoint: &str,
) -> cashback_app::outgoing::endpoints::DeliveryRecord {
    e.list_deliveries(&shop(), endpoint, 10)
        .await
        .unwrap()
        .remove(0)
}

fn ids(received: &[cashback_test_support::fakes::merchant::Received]) -> BTreeSet<String> {
    received.iter().map(|r| r.event_id.clone()).collect()
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

/// A table on moto with one merchant endpoint (`id`, holding the secret),
/// the history written, and the stream batch of that history.
async fn one_endpoint_world(
    name: &str,
    id: &str,
) -> Option<(Arc<DynamoStore>, FakeMerchant, Event)> {
    let (store, moto_endpoint) = moto_world(name).await?;
    let merchant = FakeMerchant::start().await;
    merchant.hold_secrets(&[SECRET]);
    endpoints(store.as_ref())
        .create_endpoint(&endpoint_of(&shop(), id, &merchant.url()))
        .await
        .unwrap();
    history(store.as_ref()).await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    Some((store, merchant, event))
}

#[tokio::test]
async fn every_kind_reaches_the_merchant_signed_and_a_redelivered_batch_keeps_its_ids() {
    let Some((store, merchant, event)) = one_endpoint_world("delivery_kinds", "ep_01").await else {
        return;
    };
    let bus = Arc::new(KeptBus::default());
    let deps = deps(store.clone(), Some(bus.clone()));

    let response = function_handler(&deps, event.clone()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let received = merchant.received();
    let kinds: BTreeSet<String> = received.iter().map(|r| r.kind.clone()).collect();
    let all: BTreeSet<String> = EventKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(kinds, all, "every kind once");
    assert_eq!(received.len(), 7);
    for r in &received {
        assert!(r.verified, "{r:?}");
        assert_eq!(r.status, 200);
        assert_eq!(r.shop, "demo.myshopify.com");
        assert_eq!(r.body["id"], r.event_id.as_str());
        assert_eq!(r.body["kind"], r.kind.as_str());
        assert_eq!(r.body["version"], 1);
        assert_eq!(r.body["customer_id"], "ann");
        assert_eq!(r.body["currency"], "USD");
        assert!(
            r.body["balance_after"]["available"].is_string(),
            "{}",
            r.body
        );
        assert!(r.signature.starts_with("t="));
    }
    let by_kind = |kind: &str| {
        received
            .iter()
            .find(|r| r.kind == kind)
            .unwrap()
            .body
            .clone()
    };
    assert_eq!(by_kind("earned")["amount"], "10.00");
    assert_eq!(by_kind("released")["amount"], "10.00");
    assert_eq!(by_kind("released")["balance_after"]["available"], "10.00");
    assert_eq!(by_kind("redeemed")["amount"], "3.00");
    assert_eq!(by_kind("clawed_back")["amount"], "2.00");
    assert_eq!(by_kind("adjusted")["amount"], "5.00");
    assert_eq!(by_kind("expired")["amount"], "1.00");
    assert_eq!(by_kind("expired")["balance_after"]["available"], "9.00");
    assert_eq!(by_kind("tier_changed")["tier"]["to"], 0);
    // The bus got the same events.
    assert_eq!(bus.0.lock().unwrap().len(), 7);
    // Recorded as delivered.
    let listed = endpoints(store.as_ref())
        .list_deliveries(&shop(), "ep_01", 50)
        .await
        .unwrap();
    assert_eq!(listed.len(), 7);
    assert!(listed
        .iter()
        .all(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1));

    // Delivered again, whole and in halves (a bisected retry): the same ids.
    let first_ids = ids(&received);
    for again in [event.clone(), half(&event, true), half(&event, false)] {
        let response = function_handler(&deps, again).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let all_received = merchant.received();
    assert!(all_received.len() >= 14);
    assert_eq!(ids(&all_received), first_ids, "no new id on redelivery");
    assert!(all_received.iter().all(|r| r.verified));
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_then_parked_without_holding_up_another_shop() {
    let Some((store, moto_endpoint)) = moto_world("delivery_parked").await else {
        return;
    };
    let failing = FakeMerchant::start().await;
    failing.hold_secrets(&[SECRET]);
    failing.always_answer(Some(503));
    let fine = FakeMerchant::start().await;
    fine.hold_secrets(&[SECRET]);
    let e = endpoints(store.as_ref());
    e.create_endpoint(&endpoint_of(&shop(), "ep_02", &failing.url()))
        .await
        .unwrap();
    e.create_endpoint(&endpoint_of(&shop(), "ep_03", &fine.url()))
        .await
        .unwrap();
    write(
        store.as_ref(),
        "bob",
        EntryKind::Adjust,
        "4.00",
        "0.00",
        None,
        0,
    )
    .await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    let deps = deps(store.clone(), None);

    let response = function_handler(&deps, event).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "a failing endpoint is no batch failure"
    );
    assert_eq!(fine.received().len(), 1);
    assert_eq!(failing.received().len(), 2, "two attempts within the batch");
    let first = state(e, "ep_02").await;
    assert_eq!(
        (first.status, first.attempts),
        (DeliveryStatus::Retrying, 2)
    );
    assert_eq!(first.last_status, Some(503));
    let next = first.next_attempt_at.unwrap();

    // The schedule before it is due: nothing; then at each due time.
    let schedule = |at: DateTime<Utc>| {
        let mut event = EventBridgeEvent::default();
        event.time = Some(at);
        event
    };
    retry_handler(&deps, schedule(next - Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(failing.received().len(), 2);
    let outcome = retry_handler(&deps, schedule(next)).await.unwrap();
    assert_eq!(outcome.retrying, 1);
    let third = state(e, "ep_02").await;
    assert_eq!(
        (third.status, third.attempts),
        (DeliveryStatus::Retrying, 3)
    );
    let outcome = retry_handler(&deps, schedule(third.next_attempt_at.unwrap()))
        .await
        .unwrap();
    assert_eq!(outcome.parked, 1);
    let parked = state(e, "ep_02").await;
    assert_eq!(
        (parked.status, parked.attempts),
        (DeliveryStatus::Parked, 4)
    );
    assert_eq!(parked.next_attempt_at, None);
    assert!(e
        .due_pending(next + Duration::days(30), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(failing.received().len(), 4);
    // Every attempt carried the same id.
    assert_eq!(ids(&failing.received()).len(), 1);
    assert_eq!(ids(&failing.received()), ids(&fine.received()));
    // The good endpoint got it once.
    assert_eq!(fine.received().len(), 1);
}

#[tokio::test]
async fn a_recovered_endpoint_gets_the_retry_and_the_delivery_is_recorded() {
    let Some((store, moto_endpoint)) = moto_world("delivery_recovered").await else {
        return;
    };
    let merchant = FakeMerchant::start().await;
    merchant.hold_secrets(&[SECRET]);
    merchant.fail_next(&[500, 500]);
    endpoints(store.as_ref())
        .create_endpoint(&endpoint_of(&shop(), "ep_04", &merchant.url()))
        .await
        .unwrap();
    write(
        store.as_ref(),
        "cy",
        EntryKind::Adjust,
        "4.00",
        "0.00",
        None,
        0,
    )
    .await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    let deps = deps(store.clone(), None);
    function_handler(&deps, event).await.unwrap();
    let pending = endpoints(store.as_ref())
        .due_pending(Utc::now() + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let mut schedule = EventBridgeEvent::default();
    schedule.time = Some(pending[0].next_attempt_at);
    let outcome = retry_handler(&deps, schedule).await.unwrap();
    assert_eq!(outcome.delivered, 1);
    let record = endpoints(store.as_ref())
        .list_deliveries(&shop(), "ep_04", 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (record.status, record.attempts),
        (DeliveryStatus::Delivered, 3)
    );
    assert!(merchant.received().last().unwrap().verified);
}

#[tokio::test]
async fn after_a_rotation_the_new_secret_signs_and_the_old_one_only_during_its_grace() {
    let Some((store, moto_endpoint)) = moto_world("delivery_rotation").await else {
        return;
    };
    let merchant = FakeMerchant::start().await;
    endpoints(store.as_ref())
        .create_endpoint(&endpoint_of(&shop(), "ep_05", &merchant.url()))
        .await
        .unwrap();
    let ctx = cashback_test_support::seeded::fresh_context(store.clone());
    cashback_test_support::world::open_shop(store.as_ref(), &program()).await;
    let rotated = endpoints::rotate(
        &ctx,
        &shop(),
        "ep_05",
        "whsec_new".into(),
        endpoints::ROTATION_GRACE_HOURS,
        "tester",
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(rotated.secret, "whsec_new");
    write(
        store.as_ref(),
        "dee",
        EntryKind::Adjust,
        "4.00",
        "0.00",
        None,
        0,
    )
    .await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    let deps = deps(store.clone(), None);

    // A merchant that already switched verifies with the new secret...
    merchant.hold_secrets(&["whsec_new"]);
    function_handler(&deps, event.clone()).await.unwrap();
    // ... and one that has not yet, with the old one, during the grace.
    merchant.hold_secrets(&[SECRET]);
    function_handler(&deps, event.clone()).await.unwrap();
    let received = merchant.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.verified));
    assert_eq!(received[0].signature.matches("v1=").count(), 2);

    // After the grace, only the new secret signs.
    let mut record = endpoints(store.as_ref())
        .list_endpoints(&shop())
        .await
        .unwrap()
        .remove(0);
    record.previous_valid_until = Some(Utc::now() - Duration::seconds(1));
    assert!(endpoints(store.as_ref())
        .replace_endpoint(&record)
        .await
        .unwrap());
    function_handler(&deps, event).await.unwrap();
    let last = merchant.received().last().cloned().unwrap();
    assert!(!last.verified, "the old secret no longer signs");
    assert_eq!(last.signature.matches("v1=").count(), 1);
}

#[tokio::test]
async fn events_are_published_to_moto_eventbridge_and_a_refused_put_retries_the_batch() {
    let Some((store, moto_endpoint)) = moto_world("delivery_bus").await else {
        return;
    };
    let sdk = moto::sdk_config_at(&moto_endpoint).await;
    let client = aws_sdk_eventbridge::Client::new(&sdk);
    let bus_name = moto::unique_table_name("bus");
    client
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .unwrap();
    // The function's bus: its client built by the first publish.
    let bus_sdk = sdk.clone();
    let bus = Arc::new(event_delivery::EventBridgeBus::on_first_use(
        move || aws_sdk_eventbridge::Client::new(&bus_sdk),
        &bus_name,
    ));
    history(store.as_ref()).await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    let deps = deps(store.clone(), Some(bus));
    let response = function_handler(&deps, event).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "PutEvents accepted every entry"
    );

    // A bus that does not exist: the batch is retried from its first event.
    let sdk = moto::sdk_config_at(&moto_endpoint).await;
    let missing = Arc::new(event_delivery::EventBridgeBus::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        "no-such-bus",
    ));
    let deps = Deps {
        bus: Some(missing),
        ..deps
    };
    write(
        store.as_ref(),
        "eve",
        EntryKind::Adjust,
        "1.00",
        "0.00",
        None,
        9,
    )
    .await;
    let event = moto::stream_event(&moto_endpoint, store.table_name()).await;
    let response = function_handler(&deps, event).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
}

#[test]
fn a_bus_entry_names_the_source_the_kind_and_the_body() {
    let changes = vec![cashback_app::changes::Change {
        shop: shop(),
        customer: customer("ann"),
        sequence: "1".into(),
        kind: cashback_app::changes::ChangeKind::Entry(Box::new(LedgerEntry {
            entry_id: "adj:0".into(),
            at: t0(),
            kind: EntryKind::Adjust,
            order_id: None,
            available_delta: usd("5.00"),
            pending_delta: usd("0.00"),
            debt_delta: usd("0.00"),
            funding: None,
            note: None,
        })),
    }];
    let events = cashback_app::outgoing::events_from_changes(&changes, t0());
    let entry = bus_entry(&events[0], "cashback-events").unwrap();
    assert_eq!(entry.source(), Some(BUS_SOURCE));
    assert_eq!(entry.detail_type(), Some("adjusted"));
    assert_eq!(entry.event_bus_name(), Some("cashback-events"));
    assert_eq!(entry.resources(), ["shop/demo.myshopify.com"]);
    let detail: serde_json::Value = serde_json::from_str(entry.detail().unwrap()).unwrap();
    assert_eq!(detail["id"], events[0].id());
    assert_eq!(detail["amount"], "5.00");
}

#[test]
fn the_schedule_and_the_stream_are_told_apart() {
    let schedule = serde_json::json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "1", "time": "2026-11-30T12:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {}
    });
    assert!(matches!(
        serde_json::from_value::<event_delivery::Trigger>(schedule).unwrap(),
        event_delivery::Trigger::Schedule(_)
    ));
    let stream = serde_json::json!({"Records": []});
    assert!(matches!(
        serde_json::from_value::<event_delivery::Trigger>(stream).unwrap(),
        event_delivery::Trigger::Stream(_)
    ));
}

#[tokio::test]
async fn a_stalled_shops_endpoint_holds_up_no_other_shops_delivery() {
    use cashback_app::outgoing::delivery::Deliverer;
    use cashback_store::MemoryStore;

    let store = MemoryStore::new();
    let slow_shop = ShopId::parse("slow.myshopify.com").unwrap();
    let stalled = FakeMerchant::start().await;
    stalled.hold_secrets(&[SECRET]);
    stalled.stall(Some(StdDuration::from_millis(1500)));
    let quick = FakeMerchant::start().await;
    quick.hold_secrets(&[SECRET]);
    store
        .create_endpoint(&endpoint_of(&slow_shop, "ep_06", &stalled.url()))
        .await
        .unwrap();
    store
        .create_endpoint(&endpoint_of(&shop(), "ep_07", &quick.url()))
        .await
        .unwrap();
    // Ten events of the slow shop first in the batch, then one of ours.
    let entry = |id: &str| {
        Box::new(LedgerEntry {
            entry_id: id.into(),
            at: t0(),
            kind: EntryKind::Adjust,
            order_id: None,
            available_delta: usd("1.00"),
            pending_delta: usd("0.00"),
            debt_delta: usd("0.00"),
            funding: None,
            note: None,
        })
    };
    let mut changes: Vec<cashback_app::changes::Change> = (0..10)
        .map(|i| cashback_app::changes::Change {
            shop: slow_shop.clone(),
            customer: customer("zed"),
            sequence: format!("{i}"),
            kind: cashback_app::changes::ChangeKind::Entry(entry(&format!("slow:{i}"))),
        })
        .collect();
    changes.push(cashback_app::changes::Change {
        shop: shop(),
        customer: customer("ann"),
        sequence: "10".into(),
        kind: cashback_app::changes::ChangeKind::Entry(entry("quick:0")),
    });
    let events = cashback_app::outgoing::events_from_changes(&changes, t0());
    let deliverer = Deliverer {
        endpoints: &store,
        sender: &HttpSender::new(StdDuration::from_secs(5)),
        resolver: &SystemResolver,
        settings: settings(),
    };
    let started = std::time::Instant::now();
    let outcome = deliverer.deliver(&events, Utc::now()).await;
    let quick_at = quick.received()[0].at.duration_since(started);
    assert!(
        quick_at < StdDuration::from_millis(700),
        "our event waited {quick_at:?}"
    );
    // The stalled endpoint got its events in order until the batch's 5 s
    // were spent; the rest are scheduled, not dropped.
    let elapsed = started.elapsed();
    assert!(
        elapsed < StdDuration::from_secs(8),
        "the batch took {elapsed:?}"
    );
    assert_eq!(outcome.delivered + outcome.retrying, 11);
    assert!(outcome.retrying >= 1, "{outcome:?}");
    let slow: Vec<String> = stalled
        .received()
        .iter()
        .map(|r| r.event_id.clone())
        .collect();
    let in_feed_order: Vec<String> = events[..slow.len()]
        .iter()
        .map(|e| e.id().to_string())
        .collect();
    assert_eq!(slow, in_feed_order);
    let deferred = store
        .list_deliveries(&slow_shop, "ep_06", 20)
        .await
        .unwrap();
    assert!(deferred.iter().any(|d| d.status == DeliveryStatus::Retrying
        && d.attempts == 0
        && d.last_error.as_deref() == Some("not attempted: the batch's time ran out")));
    assert_eq!(
        store
            .due_pending(Utc::now() + Duration::minutes(2), 50)
            .await
            .unwrap()
            .len() as u64,
        outcome.retrying
    );
}

/// One adjustment of Ann's as an event.
fn one_event(id: &str) -> Vec<OutgoingEvent> {
    let changes = vec![cashback_app::changes::Change {
        shop: shop(),
        customer: customer("ann"),
        sequence: "1".into(),
        kind: cashback_app::changes::ChangeKind::Entry(Box::new(LedgerEntry {
            entry_id: id.into(),
            at: t0(),
            kind: EntryKind::Adjust,
            order_id: None,
            available_delta: usd("1.00"),
            pending_delta: usd("0.00"),
            debt_delta: usd("0.00"),
            funding: None,
            note: None,
        })),
    }];
    cashback_app::outgoing::events_from_changes(&changes, t0())
}

#[tokio::test]
async fn a_name_resolving_to_loopback_at_connect_time_is_never_posted_to() {
    use cashback_app::outgoing::delivery::Deliverer;
    use cashback_store::MemoryStore;

    // A merchant on loopback, addressed by a NAME. The check before the
    // attempt lets it through (here the local policy does, as a name
    // re-pointed between that check and the connection would: DNS
    // rebinding); the function's sender resolves it again and connects to
    // public addresses only.
    let merchant = FakeMerchant::start().await;
    merchant.hold_secrets(&[SECRET]);
    let by_name = format!("http://localhost:{}/hooks/cashback", merchant.addr.port());
    let store = MemoryStore::new();
    store
        .create_endpoint(&endpoint_of(&shop(), "ep_08", &by_name))
        .await
        .unwrap();
    let public_only = HttpSender::public_only(StdDuration::from_secs(5));
    let refused = Deliverer {
        endpoints: &store,
        sender: &public_only,
        resolver: &SystemResolver,
        settings: settings(),
    }
    .deliver(&one_event("rebind:1"), Utc::now())
    .await;
    assert_eq!((refused.delivered, refused.retrying), (0, 1), "{refused:?}");
    assert!(merchant.received().is_empty());
    let recorded = store.list_deliveries(&shop(), "ep_08", 5).await.unwrap();
    let error = recorded[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("no public address"), "{error}");

    // The plain sender (local runs) reaches the same name...
    let plain = HttpSender::new(StdDuration::from_secs(5));
    let reached = Deliverer {
        endpoints: &store,
        sender: &plain,
        resolver: &SystemResolver,
        settings: settings(),
    }
    .deliver(&one_event("rebind:2"), Utc::now())
    .await;
    assert_eq!(reached.delivered, 1, "{reached:?}");
    assert_eq!(merchant.received().len(), 1);

    // ...and the function's reaches an IP literal on loopback (the fake
    // merchant every other test uses; private literals are refused by the
    // URL check instead).
    let literal = MemoryStore::new();
    literal
        .create_endpoint(&endpoint_of(&shop(), "ep_09", &merchant.url()))
        .await
        .unwrap();
    let reached = Deliverer {
        endpoints: &literal,
        sender: &public_only,
        resolver: &SystemResolver,
        settings: settings(),
    }
    .deliver(&one_event("rebind:3"), Utc::now())
    .await;
    assert_eq!(reached.delivered, 1, "{reached:?}");
    assert_eq!(merchant.received().len(), 2);
}

/// A sender that cannot send at all (its HTTPS client could not be built).
struct CannotSend;

#[async_trait::async_trait]
impl cashback_app::outgoing::delivery::EventSender for CannotSend {
    fn ready(&self) -> Result<(), SendError> {
        Err(SendError(
            "the HTTPS client could not be built: no roots".into(),
        ))
    }

    async fn post(
        &self,
        _url: &str,
        _headers: &[(&'static str, String)],
        _body: &[u8],
    ) -> Result<u16, SendError> {
        panic!("nothing is posted by a sender that is not ready")
    }
}

/// A container that cannot build its HTTPS client fails the invocation,
/// retryable, before anything is delivered or published: the stream keeps
/// the records for the retry, and no endpoint is charged an attempt.
#[tokio::test]
async fn a_sender_that_cannot_send_fails_the_batch_and_counts_no_attempt() {
    let Some((store, merchant, event)) = one_endpoint_world("delivery_not_ready", "ep_01").await
    else {
        return;
    };
    let bus = Arc::new(KeptBus::default());
    let deps = Deps {
        sender: Arc::new(CannotSend),
        ..deps(store.clone(), Some(bus.clone()))
    };

    let error = event_delivery::handle(&deps, event_delivery::Trigger::Stream(event))
        .await
        .unwrap_err();
    assert!(
        matches!(error, event_delivery::HandlerError::Sender(_)),
        "{error}"
    );
    let diagnostic = lambda_runtime::Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "Retryable");
    assert!(merchant.received().is_empty());
    assert!(bus.0.lock().unwrap().is_empty(), "nothing published either");
    let recorded = endpoints(store.as_ref())
        .list_deliveries(&shop(), "ep_01", 10)
        .await
        .unwrap();
    assert!(recorded.is_empty(), "no attempt recorded: {recorded:?}");
    let pending = endpoints(store.as_ref())
        .due_pending(t0() + Duration::days(30), 100)
        .await
        .unwrap();
    assert!(pending.is_empty(), "no retry pending: {pending:?}");
}
