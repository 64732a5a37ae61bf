//! The notices' Klaviyo events end to end on DynamoDB (moto) through the
//! real functions: the order webhook's router (earned, tier, clawback), the
//! release job (ready), the reminder run (reminder, expiry warning), the
//! table's own stream (moto's) fed to the platform-sync handler, a fake
//! Klaviyo that checks the documented shapes, headers and limits, and SES
//! on moto for what the engine sent itself.
//!
//! Skipped without `MOTO_ENDPOINT` (fails with `REQUIRE_MOTO=1`):
//! `source infra/moto.sh && moto_start`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use chrono::{DateTime, Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use serde_json::Value;
use tower::ServiceExt;

use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::send_reminders;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::marketing::EmailChannel;
use cashback_app::platform_codes::SyncPolicy;
use cashback_app::store::{Platform, ReadRequest, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::money::Currency;
use cashback_core::program::{Issuance, Program, Tier};
use cashback_platform_codes::{ConnectSettings, Connections, CredentialsPlace, StaticCredentials};
use cashback_store::DynamoStore;
use cashback_test_support::doubles::UniqueCodes;
use cashback_test_support::fakes::faults::Fault;
use cashback_test_support::fakes::klaviyo::{self as klaviyo_fake, FakeKlaviyo, Limit};
use cashback_test_support::moto;
use cashback_test_support::samples::{
    shopify_delivery, shopify_order, shopify_order_with, shopify_refund, Stage, DEMO_SECRET,
    DEMO_SECRET_REF, DEMO_SHOP, FIRST_REFUND, SHOPIFY_CUSTOMER_ID, SHOPIFY_ORDER_ID,
};
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::WebhookState;
use platform_sync::marketing::MarketingConnections;
use platform_sync::shops::FixedShops;
use platform_sync::{handle, Deps};

fn shop() -> ShopId {
    ShopId::parse(DEMO_SHOP).unwrap()
}

fn maya() -> CustomerId {
    CustomerId::parse(&SHOPIFY_CUSTOMER_ID.to_string()).unwrap()
}

/// Pending a day, a reminder at release and three days later, expiry after
/// 30 days with a warning a day before, a tier from 100.00 of spend.
fn program(channel: EmailChannel) -> Program {
    let mut program = cashback_test_support::jobs::program();
    program.issuance = Issuance::Pending { days: 1 };
    program.expiry_days = Some(30);
    program.expiry_warning_hours = vec![24];
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(100),
        percent: dec!(12),
    }];
    program.email_channel = channel;
    program
}

/// The sample order is paid 2026-03-02.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
}

struct World {
    endpoint: String,
    store: Arc<DynamoStore>,
    ctx: Context,
    clock: Arc<Mutex<DateTime<Utc>>>,
    webhook: Router,
    deps: Deps,
    /// The SES sender: moto's record of what it sent.
    from: String,
}

impl World {
    async fn new(
        endpoint: &str,
        name: &str,
        klaviyo: &FakeKlaviyo,
        channel: EmailChannel,
    ) -> World {
        let store = Arc::new(moto::store_on(endpoint, name).await);
        store
            .create_shop(&Shop {
                shop: shop(),
                platform: Platform::Shopify,
                currency: Currency::USD,
                name: "Demo Store".into(),
                webhook_secret_ref: DEMO_SECRET_REF.into(),
                api_key_hash: String::new(),
                created_at: start() - Duration::days(30),
                guest_id_key: None,
            })
            .await
            .unwrap();
        store
            .put_program(&shop(), &program(channel), 0, start() - Duration::days(30))
            .await
            .unwrap();
        let (ses, from) = moto::ses_on_moto(endpoint).await;
        let clock = Arc::new(Mutex::new(start()));
        let now = {
            let clock = clock.clone();
            Arc::new(move || *clock.lock().unwrap())
        };
        let ctx = Context::new(
            store.clone(),
            Arc::new(ses),
            Arc::new(UniqueCodes::default()),
            AppConfig::default(),
        )
        .with_clock(now.clone());
        let secrets = Arc::new(SecretCache::new(
            Arc::new(FixedSecrets::new([(DEMO_SECRET_REF, DEMO_SECRET)])),
            300,
        ));
        let webhook =
            order_webhook::router(WebhookState::new(ctx.clone(), secrets).with_clock(now));
        let place = CredentialsPlace::parse("ssm:/cashback/klaviyo/").unwrap();
        let value = format!(
            r#"{{"private_key":"{}","base_url":"{}"}}"#,
            klaviyo_fake::PRIVATE_KEY,
            klaviyo.url()
        );
        let marketing = MarketingConnections::new(
            place.clone(),
            Arc::new(StaticCredentials(HashMap::from([(
                place.reference(&shop()).unwrap().to_string(),
                value,
            )]))),
        );
        let deps = Deps {
            ctx: ctx.clone(),
            connections: Arc::new(Connections::new(
                CredentialsPlace::parse("ssm:/cashback/platform/").unwrap(),
                Arc::new(StaticCredentials(HashMap::new())),
                ConnectSettings::default(),
            )),
            shops: Arc::new(FixedShops(vec![shop()])),
            policy: SyncPolicy {
                max_attempts: 4,
                base_backoff: StdDuration::from_millis(5),
                max_backoff: StdDuration::from_millis(50),
                ..SyncPolicy::default()
            },
            concurrency: 4,
            run_budget: StdDuration::from_secs(20),
            marketing: Some(Arc::new(marketing)),
            retries: None,
        };
        World {
            endpoint: endpoint.to_string(),
            store,
            ctx,
            clock,
            webhook,
            deps,
            from,
        }
    }

    fn set_now(&self, at: DateTime<Utc>) {
        *self.clock.lock().unwrap() = at;
    }

    fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap()
    }

    async fn shopify(&self, topic: &str, body: Value) {
        let body = body.to_string();
        let mut builder = Request::post("/webhooks/shopify");
        for (name, value) in shopify_delivery(topic, &body, DEMO_SECRET) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = self
            .webhook
            .clone()
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status.is_success(),
            "{topic}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }

    fn job_config() -> JobConfig {
        JobConfig {
            finish_reserve: StdDuration::ZERO,
            lookback: Duration::days(2),
            settle: Duration::days(3650),
            ..JobConfig::default()
        }
    }

    async fn promote(&self, at: DateTime<Utc>) {
        self.set_now(at);
        promote_due(
            &self.ctx,
            &TokioClock,
            &World::job_config(),
            at,
            tokio::time::Instant::now() + StdDuration::from_secs(60),
        )
        .await
        .unwrap();
    }

    async fn reminders(&self, at: DateTime<Utc>) {
        self.set_now(at);
        send_reminders(
            &self.ctx,
            &TokioClock,
            &World::job_config(),
            at,
            tokio::time::Instant::now() + StdDuration::from_secs(60),
        )
        .await
        .unwrap();
    }

    /// Everything the table's stream holds, delivered to the platform-sync
    /// function as Lambda does; its answer (the batch item failures).
    async fn deliver_stream(&self) -> Value {
        let event = moto::stream_event(&self.endpoint, self.store.table_name()).await;
        let payload = serde_json::to_value(&event).unwrap();
        handle(&self.deps, payload, self.now()).await.unwrap()
    }

    /// Only the stream's outbox records (no profile push alongside), so
    /// the faults queued at the fake meet events.
    async fn deliver_events(&self) -> Value {
        let event = moto::stream_event(&self.endpoint, self.store.table_name()).await;
        let mut payload = serde_json::to_value(&event).unwrap();
        let records = payload["Records"].as_array().cloned().unwrap_or_default();
        let outbox: Vec<Value> = records
            .into_iter()
            .filter(|r| r["dynamodb"]["NewImage"]["entity_type"]["S"] == "MARKETING_EVENT")
            .collect();
        assert!(!outbox.is_empty());
        payload["Records"] = Value::Array(outbox);
        handle(&self.deps, payload, self.now()).await.unwrap()
    }

    async fn ses_sent(&self) -> usize {
        moto::ses_messages(&self.endpoint, &self.from).await.len()
    }
}

/// Each recorded event's unique id and properties.
type Recorded = Vec<(String, serde_json::Map<String, Value>)>;

/// The recorded events by metric: (unique id, properties).
fn by_metric(klaviyo: &FakeKlaviyo) -> BTreeMap<String, Recorded> {
    let mut found: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for event in klaviyo.events() {
        assert_eq!(event.profile, "maya.chen@example.com");
        found.entry(event.metric.clone()).or_default().push((
            event.unique_id.clone().unwrap_or_default(),
            event.properties,
        ));
    }
    found
}

#[tokio::test]
async fn each_notice_becomes_one_klaviyo_event_and_a_klaviyo_only_shop_sends_no_ses_email() {
    let Some(endpoint) = moto::endpoint("klaviyo_events") else {
        return;
    };
    // Events limited to 3 a second at the fake (Klaviyo allows 350): the
    // adapter's own limiter does not know, so the fake's 429s and their
    // Retry-After are met on the way.
    let klaviyo =
        FakeKlaviyo::with_limits(Limit::PROFILE_IMPORT, Limit::per_second_and_minute(3, 100)).await;
    let w = World::new(&endpoint, "klaviyo_events", &klaviyo, EmailChannel::Klaviyo).await;

    w.shopify("orders/paid", shopify_order(Stage::Paid)).await;
    let released_at = start() + Duration::days(1) + Duration::hours(1);
    w.promote(released_at).await;
    w.reminders(released_at + Duration::minutes(5)).await;
    w.set_now(released_at + Duration::hours(1));
    w.shopify("refunds/create", shopify_refund(FIRST_REFUND))
        .await;
    w.reminders(released_at + Duration::days(3) + Duration::hours(1))
        .await;
    let account = w
        .store
        .read(&shop(), &ReadRequest::account(&maya()))
        .await
        .unwrap()
        .accounts[&maya()]
        .value
        .clone();
    let expires_at = account.next_expiry().expect("the balance expires");
    w.reminders(expires_at - Duration::hours(24) + Duration::minutes(5))
        .await;

    // A 429 and a 5xx on the way, and one event Klaviyo applies but answers
    // 503 to (the adapter sends it again, with the same unique id).
    klaviyo.push_fault(Fault::Throttle);
    klaviyo.push_fault(Fault::ServerError);
    klaviyo.push_fault(Fault::Duplicate);
    let answer = w.deliver_events().await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );

    let events = by_metric(&klaviyo);
    for metric in [
        "Cashback Earned",
        "Tier Upgraded",
        "Cashback Ready",
        "Reminder Due",
        "Cashback Clawed Back",
        "Cashback Expiring",
    ] {
        assert_eq!(
            events.get(metric).map(Vec::len),
            Some(if metric == "Reminder Due" { 2 } else { 1 }),
            "{metric}: {events:?}"
        );
    }
    let one = |metric: &str| events[metric][0].clone();
    let (id, earned) = one("Cashback Earned");
    assert!(id.starts_with("earned:"), "{id}");
    assert_eq!(earned["amount"], serde_json::json!(14.17));
    assert_eq!(earned["currency"], "USD");
    assert_eq!(earned["order"], SHOPIFY_ORDER_ID.to_string());
    assert!(earned["release_date"].is_string());
    let (id, ready) = one("Cashback Ready");
    assert!(id.starts_with("ready:"), "{id}");
    assert!(ready["code"].is_string() && ready["balance"].is_number());
    let positions: Vec<Value> = events["Reminder Due"]
        .iter()
        .map(|(_, p)| p["position"].clone())
        .collect();
    assert_eq!(positions, [serde_json::json!(0), serde_json::json!(1)]);
    let (id, clawed) = one("Cashback Clawed Back");
    assert!(id.starts_with("clawback:"), "{id}");
    assert!(clawed["amount"].is_number() && clawed["balance"].is_number());
    let (_, expiring) = one("Cashback Expiring");
    assert_eq!(expiring["hours_before"], 24);
    assert!(expiring["expires_at"].is_string() && expiring["amount"].is_number());
    let (_, tier) = one("Tier Upgraded");
    assert_eq!(tier["tier"], "Gold");

    let stats = klaviyo.stats();
    println!(
        "klaviyo events on moto: {} events recorded, {} requests accepted, {} answered 429, \
         {} duplicates not recorded, {} early retries",
        klaviyo.events().len(),
        stats.accepted.values().sum::<u64>(),
        stats.rate_limited,
        stats.duplicates,
        stats.early_retries
    );
    assert!(stats.rate_limited >= 1, "{stats:?}");
    assert_eq!(stats.early_retries, 0, "a Retry-After was not waited out");
    assert!(
        stats.duplicates >= 1,
        "the applied-then-503 event was sent again"
    );
    assert!(stats.rejected.is_empty(), "{:?}", stats.rejected);
    // Klaviyo alone: SES sent nothing.
    assert_eq!(w.ses_sent().await, 0);

    // The whole stream again (Lambda retrying a batch): the same unique ids,
    // nothing counted twice.
    let recorded = klaviyo.events().len();
    let answer = w.deliver_stream().await;
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    assert_eq!(klaviyo.events().len(), recorded);
    assert!(klaviyo.stats().duplicates >= stats.duplicates + recorded as u64);

    // Both channels: the next order's email goes through SES once and its
    // event to Klaviyo once.
    w.store
        .put_program(&shop(), &program(EmailChannel::Both), 1, w.now())
        .await
        .unwrap();
    w.ctx.invalidate(&shop());
    w.shopify(
        "orders/paid",
        shopify_order_with(5_920_381_274_650_009_999, "#1052", Stage::Paid),
    )
    .await;
    w.deliver_stream().await;
    assert_eq!(w.ses_sent().await, 1);
    assert_eq!(by_metric(&klaviyo)["Cashback Earned"].len(), 2);
}

/// An outbox item's creation as the stream delivers it: in `shop`'s
/// partition of `customer`, holding `doc`.
fn outbox_record(sequence: u64, shop: &str, customer: &str, key: &str, doc: &str) -> Value {
    serde_json::json!({
        "eventID": format!("e{sequence}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": format!("SHOP#{shop}#CUST#{customer}")}, "sk": {"S": format!("MKTEVENT#{key}")}},
            "NewImage": {
                "pk": {"S": format!("SHOP#{shop}#CUST#{customer}")},
                "sk": {"S": format!("MKTEVENT#{key}")},
                "entity_type": {"S": "MARKETING_EVENT"},
                "doc": {"S": doc},
                "ttl": {"N": "1900000000"}
            },
            "SequenceNumber": sequence.to_string(),
            "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"
    })
}

fn queued_doc(key: &str, customer: &str, email: &str) -> String {
    serde_json::to_string(&cashback_app::marketing::QueuedEvent {
        key: key.into(),
        customer: CustomerId::parse(customer).unwrap(),
        to: cashback_core::ids::Email::parse(email).unwrap(),
        kind: cashback_app::notify::NotificationKind::TierUpgraded {
            tier_name: "Gold".into(),
            percent: "12".into(),
        },
        at: start(),
    })
    .unwrap()
}

const OTHER_SHOP: &str = "other.myshopify.com";
const OTHER_KEY: &str = "pk_otheraccount42";

/// Deps on an in-memory store whose two shops each have their own
/// Klaviyo account (a fake each, with its own key).
fn two_accounts(demo: &FakeKlaviyo, other: &FakeKlaviyo) -> Deps {
    other.set_key(OTHER_KEY);
    let place = CredentialsPlace::parse("ssm:/cashback/klaviyo/").unwrap();
    let parameter = |shop: &str, key: &str, fake: &FakeKlaviyo| {
        (
            place
                .reference(&ShopId::parse(shop).unwrap())
                .unwrap()
                .to_string(),
            format!(r#"{{"private_key":"{key}","base_url":"{}"}}"#, fake.url()),
        )
    };
    let values = HashMap::from([
        parameter(DEMO_SHOP, klaviyo_fake::PRIVATE_KEY, demo),
        parameter(OTHER_SHOP, OTHER_KEY, other),
    ]);
    let ctx = Context::new(
        Arc::new(cashback_store::MemoryStore::new()),
        Arc::new(cashback_test_support::doubles::KeptNotifier::default()),
        Arc::new(UniqueCodes::default()),
        AppConfig::default(),
    );
    Deps {
        ctx,
        connections: Arc::new(Connections::new(
            CredentialsPlace::parse("ssm:/cashback/platform/").unwrap(),
            Arc::new(StaticCredentials(HashMap::new())),
            ConnectSettings::default(),
        )),
        shops: Arc::new(FixedShops(vec![shop()])),
        policy: SyncPolicy::default(),
        concurrency: 4,
        run_budget: StdDuration::from_secs(20),
        marketing: Some(Arc::new(MarketingConnections::new(
            place.clone(),
            Arc::new(StaticCredentials(values)),
        ))),
        retries: None,
    }
}

#[tokio::test]
async fn an_event_reaches_only_the_account_of_the_shop_whose_partition_holds_it() {
    let demo = FakeKlaviyo::start().await;
    let other = FakeKlaviyo::start().await;
    let deps = two_accounts(&demo, &other);
    let records = vec![
        outbox_record(
            1,
            DEMO_SHOP,
            "ann",
            "tier:ann:0",
            &queued_doc("tier:ann:0", "ann", "ann@example.com"),
        ),
        outbox_record(
            2,
            OTHER_SHOP,
            "bob",
            "tier:bob:0",
            &queued_doc("tier:bob:0", "bob", "bob@example.com"),
        ),
    ];
    let answer = handle(&deps, serde_json::json!({ "Records": records }), start())
        .await
        .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
    let ids = |fake: &FakeKlaviyo| -> Vec<String> {
        fake.events()
            .into_iter()
            .filter_map(|e| e.unique_id)
            .collect()
    };
    assert_eq!(ids(&demo), ["tier:ann:0"]);
    assert_eq!(ids(&other), ["tier:bob:0"]);

    // What an item holds cannot point it elsewhere: a field naming another
    // shop is no field of the event (refused, failed back, parked), and an
    // event of another customer than the partition's is refused too.
    let forged_shop = queued_doc("tier:ann:1", "ann", "ann@example.com").replacen(
        '{',
        &format!(r#"{{"shop":"{OTHER_SHOP}","#),
        1,
    );
    let forged = vec![
        outbox_record(3, DEMO_SHOP, "ann", "tier:ann:1", &forged_shop),
        outbox_record(
            4,
            DEMO_SHOP,
            "ann",
            "tier:bob:1",
            &queued_doc("tier:bob:1", "bob", "bob@example.com"),
        ),
    ];
    let answer = handle(&deps, serde_json::json!({ "Records": forged }), start())
        .await
        .unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "3"}]),
        "{answer}"
    );
    assert_eq!(ids(&demo), ["tier:ann:0"]);
    assert_eq!(ids(&other), ["tier:bob:0"]);
    assert_eq!(other.stats().unauthorized + demo.stats().unauthorized, 0);
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_failed_back_and_its_retry_counts_once() {
    let demo = FakeKlaviyo::start().await;
    let other = FakeKlaviyo::start().await;
    let deps = two_accounts(&demo, &other);
    let record = || {
        serde_json::json!({ "Records": [outbox_record(
            7, DEMO_SHOP, "ann", "tier:ann:0", &queued_doc("tier:ann:0", "ann", "ann@example.com"),
        )] })
    };
    // Applied, then 503 on every one of the adapter's five calls: Klaviyo
    // holds the event, the function believes it failed.
    for _ in 0..5 {
        demo.push_fault(Fault::Duplicate);
    }
    let answer = handle(&deps, record(), start()).await.unwrap();
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([{"itemIdentifier": "7"}])
    );
    // Lambda retries the record: the same unique id, recorded once.
    let answer = handle(&deps, record(), start()).await.unwrap();
    assert_eq!(answer["batchItemFailures"], serde_json::json!([]));
    assert_eq!(demo.events().len(), 1);
    assert_eq!(demo.stats().duplicates, 5);
}
