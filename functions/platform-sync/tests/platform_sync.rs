//! The platform-sync function on the in-memory store (its change log is
//! the stream's stand-in) and the fake Shopify: every balance change
//! reaches the platform through the change feed; a batch syncs each
//! customer once and answers the first failure; run requests written to
//! the table are run and continued; and the chaos run (1,000 balance
//! changes for 100 customers under throttling, 5xx, timeouts, duplicates
//! and reordering) ends with every code equal to the ledger, the shop's
//! budget never passed, and no order webhook waiting on the platform.
//!
//! `cargo test -p platform-sync --test platform_sync chaos -- --nocapture`
//! prints the chaos figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use cashback_app::admin::{adjust, regenerate_code};
use cashback_app::changes::Change;
use cashback_app::events::handle_order_event;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::platform_codes::{request_run, PlatformSync, RunRequest, SyncPolicy};
use cashback_app::store::{ReadRequest, Store};
use cashback_app::Context;
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::order::*;
use cashback_core::program::{Issuance, Program};
use cashback_platform_codes::{ConnectSettings, Connections, CredentialsPlace, StaticCredentials};
use cashback_store::MemoryStore;
use cashback_test_support::doubles::{KeptNotifier, KeptRetries};
use cashback_test_support::fakes::faults::{Fault, FaultRates};
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};
use cashback_test_support::fixtures::{customer, shop, t0, usd};
use cashback_test_support::world::{context, line, open_shop, order, seed_balance};
use platform_sync::changes::intents_of_changes;
use platform_sync::shops::FixedShops;
use platform_sync::{handle, sync_intents, BatchOutcome, Deps};

fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.issuance = Issuance::Pending { days: 1 };
    program.redemption.min_balance = dec!(5);
    program.expiry_days = Some(30);
    program.platform_sync = PlatformSync::DiscountCode;
    program
}

struct World {
    ctx: Context,
    store: Arc<MemoryStore>,
    deps: Deps,
}

fn connections(fake: &FakeShopify, timeout: StdDuration) -> Arc<Connections> {
    let place = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
    let reference = place.reference(&shop()).unwrap().to_string();
    let value = format!(
        r#"{{"admin_token":"{}","shop_url":"{}"}}"#,
        fake::ADMIN_TOKEN,
        fake.url()
    );
    Arc::new(Connections::new(
        place,
        Arc::new(StaticCredentials(HashMap::from([(reference, value)]))),
        ConnectSettings {
            timeout,
            ..ConnectSettings::default()
        },
    ))
}

async fn world(fake: &FakeShopify, program: Program) -> World {
    let store = Arc::new(MemoryStore::new());
    open_shop(store.as_ref(), &program).await;
    let ctx = context(store.clone(), Arc::new(KeptNotifier::default()));
    let deps = Deps {
        ctx: ctx.clone(),
        connections: connections(fake, StdDuration::from_millis(300)),
        shops: Arc::new(FixedShops(vec![shop()])),
        policy: SyncPolicy {
            max_attempts: 4,
            base_backoff: StdDuration::from_millis(5),
            max_backoff: StdDuration::from_millis(50),
            ..SyncPolicy::default()
        },
        concurrency: 8,
        run_budget: StdDuration::from_secs(20),
        marketing: None,
        retries: None,
    };
    World { ctx, store, deps }
}

impl World {
    /// Delivers what the store committed since the last call, as the
    /// stream would, to the function.
    async fn feed(&self) -> BatchOutcome {
        let changes = self.store.take_changes();
        sync_intents(&self.deps, intents_of_changes(&changes)).await
    }

    /// A retry queue that keeps what it is asked to queue.
    fn keep_retries(&mut self) -> Arc<KeptRetries> {
        let kept = Arc::new(KeptRetries::default());
        self.deps.retries = Some(kept.clone());
        kept
    }

    /// Customers with 10.00 each and a code `CB-<id>`, their changes taken.
    async fn seed(&self, ids: &[String]) {
        for id in ids {
            seed_balance(
                self.store.as_ref(),
                &program(),
                id,
                &format!("CB-{id}"),
                "10.00",
            )
            .await;
        }
        self.store.take_changes();
    }

    /// A backfill started over, run in this invocation: its outcome.
    async fn backfill(&self) -> serde_json::Value {
        let request = RunRequest::Backfill {
            shop: shop(),
            restart: true,
        };
        let outcome = platform_sync::run_request(&self.deps, &request, None, t0())
            .await
            .unwrap();
        serde_json::to_value(outcome).unwrap()
    }

    async fn account(&self, id: &str) -> Account {
        let read = self
            .store
            .read(&shop(), &ReadRequest::account(&customer(id)))
            .await
            .unwrap();
        read.accounts[&customer(id)].value.clone()
    }
}

/// Every call answered 5xx.
fn platform_down(fake: &FakeShopify) {
    let down = FaultRates {
        server_error: 1.0,
        ..FaultRates::default()
    };
    fake.set_fault_rates(down, 7);
}

fn ids(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// The platform's code says what the ledger says: the spendable balance
/// on a working code, or no working code below the minimum.
fn assert_in_step(fake: &FakeShopify, account: &Account, step: &str) {
    let code = account.code.clone().expect("a code");
    let spendable = account.spendable().amount();
    let usable = spendable >= dec!(5);
    match fake.discount(code.as_str()) {
        Some(discount) => {
            assert_eq!(
                discount.is_active(),
                usable,
                "{step}: {discount:?} vs {spendable}"
            );
            if usable {
                assert_eq!(discount.amount, spendable, "{step}");
            }
        }
        None => assert!(!usable, "{step}: no code on the platform for {spendable}"),
    }
}

async fn promote(ctx: &Context, now: DateTime<Utc>) {
    promote_due(
        ctx,
        &TokioClock,
        &JobConfig {
            finish_reserve: StdDuration::ZERO,
            ..JobConfig::default()
        },
        now,
        tokio::time::Instant::now() + StdDuration::from_secs(60),
    )
    .await
    .unwrap();
}

fn spending_order(id: &str, code: &Code, discount: &str) -> Order {
    let mut spent = order(id, "ann", vec![line("1", 5000, 1)]);
    spent.discount_codes.push(AppliedCode {
        code: code.clone(),
        amount: usd(discount),
        kind: DiscountKind::Order,
    });
    spent.lines[0].discount = usd(discount);
    spent.subtotal = spent.subtotal.checked_sub(usd(discount)).unwrap();
    spent.total = spent.subtotal;
    spent
}

#[tokio::test]
async fn every_balance_change_reaches_the_platform_through_the_change_feed() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    // Earn: 12.00 pending; the code exists and spends nothing yet.
    let earned = order("1", "ann", vec![line("1", 12000, 1)]);
    handle_order_event(&w.ctx, &shop(), &OrderEvent::Paid(earned), t0())
        .await
        .unwrap();
    w.feed().await;
    assert_in_step(&fake, &w.account("ann").await, "earn");
    // Release.
    promote(&w.ctx, t0() + Duration::days(2)).await;
    assert_eq!(w.account("ann").await.available, usd("12.00"));
    let outcome = w.feed().await;
    assert_eq!(outcome.synced, 1, "{outcome:?}");
    assert_in_step(&fake, &w.account("ann").await, "release");
    // Redeem 4.00 with the code at a checkout.
    let code = w.account("ann").await.code.unwrap();
    let at = t0() + Duration::days(3);
    handle_order_event(
        &w.ctx,
        &shop(),
        &OrderEvent::Paid(spending_order("2", &code, "4.00")),
        at,
    )
    .await
    .unwrap();
    w.feed().await;
    assert_eq!(fake.discount(code.as_str()).unwrap().amount, dec!(8.00));
    assert_in_step(&fake, &w.account("ann").await, "redeem");
    // Refund the spending order: the credit comes back.
    let refund = OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse("r1").unwrap(),
        order_id: OrderId::parse("2").unwrap(),
        basis: RefundBasis::Lines {
            lines: vec![RefundedLine {
                line_id: LineId::parse("1").unwrap(),
                quantity: 1,
            }],
        },
        occurred_at: t0() + Duration::days(4),
    });
    handle_order_event(&w.ctx, &shop(), &refund, t0() + Duration::days(4))
        .await
        .unwrap();
    w.feed().await;
    assert_in_step(&fake, &w.account("ann").await, "refund");
    // Adjust below the minimum, then back.
    let below = w.account("ann").await.available.amount() - dec!(3);
    let body = format!(r#"{{"amount":"-{below}","reason":"correction"}}"#);
    adjust(
        &w.ctx,
        &shop(),
        &customer("ann"),
        &body,
        "k1",
        "admin",
        t0() + Duration::days(5),
    )
    .await
    .unwrap();
    w.feed().await;
    assert!(!fake.discount(code.as_str()).unwrap().is_active());
    assert_in_step(&fake, &w.account("ann").await, "adjust below the minimum");
    let body = r#"{"amount":"9.50","reason":"goodwill"}"#;
    adjust(
        &w.ctx,
        &shop(),
        &customer("ann"),
        body,
        "k2",
        "admin",
        t0() + Duration::days(5),
    )
    .await
    .unwrap();
    w.feed().await;
    assert_in_step(&fake, &w.account("ann").await, "adjust back");
    // Expire: 30 days after the release, the balance lapses.
    promote(&w.ctx, t0() + Duration::days(40)).await;
    let expired = w.account("ann").await;
    assert!(
        expired.available.amount() < dec!(12.50),
        "{:?}",
        expired.available
    );
    w.feed().await;
    assert_in_step(&fake, &expired, "expire");
    // A new code: the old one ends, the new one carries the balance.
    let body = r#"{"amount":"15.00","reason":"welcome back"}"#;
    adjust(
        &w.ctx,
        &shop(),
        &customer("ann"),
        body,
        "k3",
        "admin",
        t0() + Duration::days(41),
    )
    .await
    .unwrap();
    regenerate_code(&w.ctx, &shop(), &customer("ann"), "admin")
        .await
        .unwrap();
    let outcome = w.feed().await;
    assert_eq!(
        (outcome.customers, outcome.synced),
        (1, 1),
        "one sync for both changes"
    );
    let renewed = w.account("ann").await;
    assert_ne!(renewed.code.as_ref(), Some(&code));
    assert!(
        !fake.discount(code.as_str()).unwrap().is_active(),
        "the old code ends"
    );
    assert_in_step(&fake, &renewed, "regenerate");
    // Writes that do not move the code (nothing here) call nothing more.
    let calls: u64 = fake.stats().calls.values().sum();
    assert_eq!(w.feed().await.customers, 0);
    assert_eq!(fake.stats().calls.values().sum::<u64>(), calls);
}

#[tokio::test]
async fn a_batch_syncs_each_customer_once_and_answers_the_first_failure() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    for (id, amount) in [("a", "10.00"), ("b", "20.00")] {
        seed_balance(
            w.store.as_ref(),
            &program(),
            id,
            &format!("CB-{id}"),
            amount,
        )
        .await;
    }
    for key in ["k1", "k2", "k3"] {
        adjust(
            &w.ctx,
            &shop(),
            &customer("a"),
            r#"{"amount":"1.00","reason":"x"}"#,
            key,
            "admin",
            t0(),
        )
        .await
        .unwrap();
    }
    let changes: Vec<Change> = w.store.take_changes();
    let intents = intents_of_changes(&changes);
    assert_eq!(intents.len(), 5, "two seeds and three adjustments");
    let outcome = sync_intents(&w.deps, intents.clone()).await;
    assert_eq!(
        (outcome.customers, outcome.synced, outcome.failed),
        (2, 2, 0)
    );
    assert_eq!(fake.stats().calls.get("create"), Some(&2));
    assert_eq!(fake.discount("CB-a").unwrap().amount, dec!(13.00));

    // The platform keeps failing for one batch: the answer names the
    // earliest record of the failed customer, so Lambda retries from it.
    for _ in 0..8 {
        fake.push_fault(Fault::ServerError);
    }
    let deps = Deps {
        concurrency: 1,
        ..w.deps
    };
    let outcome = sync_intents(&deps, intents.clone()).await;
    assert!(outcome.failed >= 1, "{outcome:?}");
    let earliest = intents.iter().map(|i| i.item.clone()).min().unwrap();
    assert_eq!(outcome.retry_from, Some(earliest));
}

#[tokio::test]
async fn a_shop_that_does_not_sync_calls_no_platform_and_fails_nothing() {
    let fake = FakeShopify::start().await;
    let mut off = program();
    off.platform_sync = PlatformSync::Off;
    let w = world(&fake, off.clone()).await;
    seed_balance(w.store.as_ref(), &off, "a", "CB-A", "10.00").await;
    let outcome = w.feed().await;
    assert_eq!((outcome.not_synced, outcome.failed), (1, 0));
    assert!(fake.stats().calls.is_empty());
}

/// A stream record of a checkpoint item's write, as the table's stream
/// carries it.
fn checkpoint_record(sequence: &str, job: &str, value: &str) -> serde_json::Value {
    let pk = cashback_store::keys::checkpoint_pk(job);
    serde_json::json!({
        "eventID": format!("e{sequence}"),
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": {
            "Keys": { "pk": { "S": pk }, "sk": { "S": "CHECKPOINT" } },
            "NewImage": { "pk": { "S": pk }, "sk": { "S": "CHECKPOINT" }, "bucket": { "S": value },
                          "entity_type": { "S": "CHECKPOINT" } },
            "SequenceNumber": sequence,
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/cashback/stream/x"
    })
}

#[tokio::test]
async fn a_backfill_request_in_the_stream_runs_and_asks_for_its_own_continuation() {
    let fake = FakeShopify::start().await;
    let mut w = world(&fake, program()).await;
    for i in 0..150 {
        seed_balance(
            w.store.as_ref(),
            &program(),
            &format!("c{i:03}"),
            &format!("CB-{i:03}"),
            "10.00",
        )
        .await;
    }
    w.store.take_changes();
    // Budget for one page per invocation.
    w.deps.run_budget = StdDuration::ZERO;
    let request = RunRequest::Backfill {
        shop: shop(),
        restart: false,
    };
    let at = request_run(&w.ctx, &request, t0(), None).await.unwrap();
    let stored = w
        .store
        .get_checkpoint(&request.job())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, request.value(at));
    let batch =
        serde_json::json!({ "Records": [checkpoint_record("10", &request.job(), &stored)] });
    let answer = handle(&w.deps, batch, t0()).await.unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    assert_eq!(fake.discounts().len(), 100);
    // The function asked for the rest: a newer request of the same job.
    let next = w
        .store
        .get_checkpoint(&request.job())
        .await
        .unwrap()
        .unwrap();
    assert!(next > stored, "{next} after {stored}");
    let batch = serde_json::json!({ "Records": [checkpoint_record("11", &request.job(), &next)] });
    handle(&w.deps, batch, t0()).await.unwrap();
    assert_eq!(fake.discounts().len(), 150);
    let status = cashback_app::platform_codes::backfill_status(&w.ctx, &shop())
        .await
        .unwrap()
        .unwrap();
    assert!(status.finished());
    assert_eq!(status.done, 150);
}

/// A backfill during a platform outage: every code it could not put is
/// queued, and the queue's retry (minutes later, not at the next day's
/// reconcile) brings each in step; one that fails again is handed back to
/// the queue (then parked, with an alarm, after its last receive), as is a
/// message that does not read.
#[tokio::test]
async fn codes_a_backfill_could_not_put_are_retried_through_the_queue() {
    let fake = FakeShopify::start().await;
    let mut w = world(&fake, program()).await;
    let kept = w.keep_retries();
    w.seed(&ids(&["a", "b", "c"])).await;
    platform_down(&fake);
    let outcome = w.backfill().await;
    assert_eq!(outcome["summary"]["failed"], 3, "{outcome}");
    assert!(fake.discounts().is_empty());
    let mut queued = kept.take();
    queued.sort_by(|x, y| x.customer.as_str().cmp(y.customer.as_str()));
    let customers: Vec<&str> = queued.iter().map(|r| r.customer.as_str()).collect();
    assert_eq!(customers, ["a", "b", "c"]);

    // Still down when the queue hands them back: each is handed back.
    let batch = KeptRetries::sqs_batch(&queued);
    let answer = handle(&w.deps, batch.clone(), t0()).await.unwrap();
    let mut again: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    again.sort();
    assert_eq!(again, ["m0", "m1", "m2"], "{answer}");
    assert!(kept.take().is_empty(), "a retry queues nothing itself");
    // Two messages for one customer (a retry queued twice): one reconcile
    // for both, and both handed back.
    let before = fake.injected().len();
    handle(&w.deps, KeptRetries::sqs_batch(&queued[..1]), t0())
        .await
        .unwrap();
    let one = fake.injected().len() - before;
    assert!(one > 0);
    let twice = KeptRetries::sqs_batch(&[queued[0].clone(), queued[0].clone()]);
    let before = fake.injected().len();
    let answer = handle(&w.deps, twice, t0()).await.unwrap();
    assert_eq!(fake.injected().len() - before, one, "reconciled once");
    assert_eq!(answer["batchItemFailures"].as_array().unwrap().len(), 2);

    // Up again: the retries put every code, and nothing is handed back.
    fake.set_fault_rates(FaultRates::default(), 7);
    let answer = handle(&w.deps, batch, t0()).await.unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    for id in ["a", "b", "c"] {
        assert_in_step(&fake, &w.account(id).await, "retried");
    }

    // A message that does not read is handed back (and parked in the end),
    // never dropped unseen; one for a shop that does not exist is done.
    let unreadable =
        cashback_test_support::doubles::sqs_record("bad", r#"{"shop":"no shop!","customer":"a"}"#);
    let elsewhere = cashback_test_support::doubles::sqs_record(
        "gone",
        r#"{"shop":"gone.myshopify.com","customer":"a"}"#,
    );
    let answer = handle(
        &w.deps,
        serde_json::json!({ "Records": [unreadable, elsewhere] }),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "bad" }] })
    );
}

/// The platform down for a whole backfill: so many customers failed that
/// the shop is the cause, and none is queued (each would fail the same way
/// minutes later); the step logs the shop as failing, for the alarm.
#[tokio::test]
async fn a_shop_wide_failure_queues_no_retry() {
    let fake = FakeShopify::start().await;
    let mut w = world(&fake, program()).await;
    let kept = w.keep_retries();
    let count = cashback_app::platform_codes::SHOP_WIDE_FAILURES + 1;
    let customers: Vec<String> = (0..count).map(|i| format!("c{i:02}")).collect();
    w.seed(&customers).await;
    platform_down(&fake);
    let outcome = w.backfill().await;
    assert_eq!(outcome["summary"]["failed"], count, "{outcome}");
    assert!(kept.take().is_empty(), "nothing queued");
}

/// Credentials the platform refuses (a revoked token): each customer is
/// queued, handed back while they are refused (to end parked, with the
/// alarm), and brought in step once the credentials are fixed.
#[tokio::test]
async fn a_sync_refused_for_its_credentials_is_retried_until_they_are_fixed() {
    let fake = FakeShopify::start().await;
    let mut w = world(&fake, program()).await;
    let kept = w.keep_retries();
    w.seed(&ids(&["a"])).await;
    let good = w.deps.connections.clone();
    let place = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
    let reference = place.reference(&shop()).unwrap().to_string();
    w.deps.connections = Arc::new(Connections::new(
        place,
        Arc::new(StaticCredentials(HashMap::from([(
            reference,
            format!(
                r#"{{"admin_token":"shpat_revoked","shop_url":"{}"}}"#,
                fake.url()
            ),
        )]))),
        ConnectSettings::default(),
    ));
    w.backfill().await;
    let queued = kept.take();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let batch = KeptRetries::sqs_batch(&queued);
    let answer = handle(&w.deps, batch.clone(), t0()).await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "m0" }] })
    );
    w.deps.connections = good;
    let answer = handle(&w.deps, batch, t0()).await.unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    assert_in_step(&fake, &w.account("a").await, "credentials fixed");
}

/// With less time left in the invocation than a retry may take, none is
/// started: each message is handed back untried.
#[tokio::test]
async fn no_retry_is_started_that_the_invocation_could_not_finish() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    w.seed(&ids(&["a"])).await;
    let request = cashback_app::platform_codes::RetryRequest {
        shop: shop(),
        customer: customer("a"),
    };
    let calls = fake.stats().calls.clone();
    let soon = tokio::time::Instant::now() + platform_sync::retries::RETRY_RESERVE / 2;
    let answer = platform_sync::handle_until(
        &w.deps,
        KeptRetries::sqs_batch(&[request]),
        t0(),
        Some(soon),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": "m0" }] })
    );
    assert_eq!(fake.stats().calls, calls, "nothing called");
}

#[tokio::test]
async fn the_schedule_asks_for_a_reconcile_of_every_shop_that_syncs() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    let event = serde_json::json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T03:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {}
    });
    let answer = handle(&w.deps, event, t0()).await.unwrap();
    assert_eq!(answer["reconcile_requested"], 1);
    let job = RunRequest::Reconcile {
        shop: shop(),
        cursor: None,
    }
    .job();
    let stored = w.store.get_checkpoint(&job).await.unwrap().unwrap();
    assert!(stored.starts_with("2026-11-30T03:00:00"), "{stored}");
    // An operator's direct run answers its figures.
    seed_balance(w.store.as_ref(), &program(), "a", "CB-A", "10.00").await;
    let answer = handle(
        &w.deps,
        serde_json::json!({"run": "reconcile", "shop": shop()}),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(answer["summary"]["checked"], 1, "{answer}");
    assert_eq!(answer["summary"]["repaired"], 1, "{answer}");
}

/// A small deterministic random source (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CUSTOMERS: usize = 100;

/// What one shard's deliveries did.
struct Delivered {
    batches: usize,
    retried: usize,
    syncs: usize,
    parked: Vec<Change>,
}

/// One shard's records, in batches of 25, as Lambda delivers a stream
/// shard: a batch whose answer names a failed record is sent again from
/// that record (three times at most), the rest of it parked.
async fn deliver(deps: Arc<Deps>, shard: Vec<Change>) -> Delivered {
    let mut delivered = Delivered {
        batches: 0,
        retried: 0,
        syncs: 0,
        parked: Vec::new(),
    };
    for batch in shard.chunks(25) {
        delivered.batches += 1;
        let mut pending = batch.to_vec();
        for attempt in 1..=3 {
            let outcome = sync_intents(&deps, intents_of_changes(&pending)).await;
            delivered.syncs += outcome.customers;
            let Some(first) = outcome.retry_from else {
                pending.clear();
                break;
            };
            let at = pending
                .iter()
                .position(|c| c.sequence == first)
                .unwrap_or(0);
            pending = pending.split_off(at);
            if attempt < 3 {
                delivered.retried += 1;
            }
        }
        delivered.parked.extend(pending);
    }
    delivered
}
const CHANGES: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_thousand_changes_for_a_hundred_customers_end_equal_to_the_ledger() {
    // Shopify Plus figures (1,000 points restored per second) keep the run
    // short; the figures printed are per point, so they scale to any plan.
    let (maximum, restore) = (1000.0, 1000.0);
    let fake = FakeShopify::with_bucket(maximum, restore).await;
    let mut w = world(&fake, program()).await;
    w.deps.connections = connections(&fake, StdDuration::from_millis(200));
    w.deps.policy.max_attempts = 3;
    for c in 0..CUSTOMERS {
        seed_balance(
            w.store.as_ref(),
            &program(),
            &format!("c{c:03}"),
            &format!("CB-{c:03}"),
            "10.00",
        )
        .await;
    }
    w.feed().await;
    let seeded_calls: u64 = fake.stats().calls.values().sum();
    fake.set_fault_rates(
        FaultRates {
            throttle: 0.04,
            server_error: 0.04,
            timeout: 0.03,
            duplicate: 0.04,
            delay: StdDuration::from_millis(400),
            jitter: StdDuration::from_millis(4),
        },
        2026,
    );
    let deps = Arc::new(w.deps);
    let mut rng = Rng(0x5eed);
    let mut balances: Vec<i64> = vec![1000; CUSTOMERS];
    let webhook_waits = Arc::new(Mutex::new(Vec::new()));
    let started = std::time::Instant::now();
    let mut parked: Vec<Change> = Vec::new();
    let (mut deliveries, mut retried, mut syncs) = (0usize, 0usize, 0usize);
    let mut in_flight: Vec<tokio::task::JoinHandle<Delivered>> = Vec::new();
    for round in 0..(CHANGES / 50) {
        // Fifty balance changes (credits and debits), as the webhooks and
        // the admin make them, while the previous round's records are
        // still being synced against a platform that holds calls for up
        // to 400 ms: each is timed, none may wait on the platform.
        for i in 0..50 {
            let c = rng.below(CUSTOMERS as u64) as usize;
            let cents = if rng.below(3) == 0 && balances[c] > 0 {
                -(rng.below(balances[c] as u64) as i64 + 1)
            } else {
                rng.below(2000) as i64 + 1
            };
            balances[c] += cents;
            let body = format!(
                r#"{{"amount":"{}","reason":"chaos"}}"#,
                Decimal::new(cents, 2)
            );
            let began = std::time::Instant::now();
            adjust(
                &w.ctx,
                &shop(),
                &customer(&format!("c{c:03}")),
                &body,
                &format!("k{round}-{i}"),
                "admin",
                t0(),
            )
            .await
            .unwrap();
            webhook_waits.lock().unwrap().push(began.elapsed());
        }
        for task in in_flight.drain(..) {
            let delivered = task.await.unwrap();
            deliveries += delivered.batches;
            retried += delivered.retried;
            syncs += delivered.syncs;
            parked.extend(delivered.parked);
        }
        // The stream's delivery: records duplicated and reordered, on four
        // shards by customer (a customer's records share a partition key,
        // so a shard), each shard in batches of up to 25 one after another,
        // each batch retried from its first failed record three times and
        // then parked; the shards run at once.
        let mut records = w.store.take_changes();
        let duplicates: Vec<Change> = records
            .iter()
            .filter(|_| rng.below(10) == 0)
            .cloned()
            .collect();
        records.extend(duplicates);
        for i in (1..records.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            records.swap(i, j);
        }
        let mut shards: Vec<Vec<Change>> = vec![Vec::new(); 4];
        for record in records {
            let n: usize = record.customer.as_str()[1..].parse().unwrap();
            shards[n % 4].push(record);
        }
        for shard in shards {
            in_flight.push(tokio::spawn(deliver(deps.clone(), shard)));
        }
    }
    for task in in_flight.drain(..) {
        let delivered = task.await.unwrap();
        deliveries += delivered.batches;
        retried += delivered.retried;
        syncs += delivered.syncs;
        parked.extend(delivered.parked);
    }
    let elapsed = started.elapsed();
    // The chaos phase's requests: answered calls, less the seeding's
    // creates, plus the throttled and failed ones.
    let stats = fake.stats();
    let injected = fake.injected();
    let calls: u64 = stats.calls.values().sum::<u64>() - seeded_calls;
    let faults = injected
        .iter()
        .filter(|f| matches!(f, Fault::Throttle | Fault::ServerError))
        .count() as u64;
    let requests = calls + stats.throttled + faults;
    // The reconcile repairs what was parked (and anything else).
    fake.set_fault_rates(FaultRates::default(), 1);
    let summary = cashback_app::platform_codes::reconcile_shop(
        &w.ctx,
        deps.connections
            .for_shop(&w.ctx.shop(&shop(), t0()).await.unwrap())
            .await
            .unwrap()
            .as_ref(),
        &shop(),
        None,
        &cashback_app::platform_codes::RunLimits::for_budget(StdDuration::from_secs(60)),
        &deps.policy,
    )
    .await
    .unwrap();
    for (c, balance) in balances.iter().enumerate() {
        let account = {
            let read = w
                .store
                .read(
                    &shop(),
                    &ReadRequest::account(&customer(&format!("c{c:03}"))),
                )
                .await
                .unwrap();
            read.accounts[&customer(&format!("c{c:03}"))].value.clone()
        };
        assert_eq!(account.available.amount(), Decimal::new(*balance, 2));
        assert_in_step(&fake, &account, &format!("c{c:03}"));
    }
    let stats = fake.stats();
    let slowest_webhook = webhook_waits
        .lock()
        .unwrap()
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    println!(
        "platform-sync chaos: {CHANGES} changes for {CUSTOMERS} customers, {deliveries} batches \
         ({retried} retried), {syncs} syncs in {:.1} s ({:.0} syncs/s at {restore} points/s); \
         {requests} requests ({:.2} per change), {calls} answered; faults injected {}; natural throttles {}; lowest bucket {:.0}; \
         parked records {} repaired by the reconcile: checked {} drifted {} repaired {}; \
         slowest balance change {:?}",
        elapsed.as_secs_f64(),
        syncs as f64 / elapsed.as_secs_f64(),
        requests as f64 / CHANGES as f64,
        injected.len(),
        stats.throttled,
        stats.lowest_bucket,
        parked.len(),
        summary.checked,
        summary.drifted,
        summary.repaired,
        slowest_webhook,
    );
    assert!(stats.lowest_bucket >= 0.0, "the bucket was overdrawn");
    assert!(injected.contains(&Fault::Timeout));
    assert!(injected.contains(&Fault::Duplicate));
    assert_eq!(summary.failed, 0);
    // The balance changes never waited on the platform (whose faults hold
    // calls for 400 ms): they only write the store.
    assert!(
        slowest_webhook < StdDuration::from_millis(300),
        "{slowest_webhook:?}"
    );
}

#[tokio::test]
async fn an_account_write_pushes_the_klaviyo_profile_of_a_shop_that_has_one() {
    use cashback_test_support::fakes::klaviyo::{self as klaviyo_fake, FakeKlaviyo};
    use platform_sync::marketing::MarketingConnections;

    let shopify = FakeShopify::start().await;
    let klaviyo = FakeKlaviyo::start().await;
    let mut w = world(&shopify, program()).await;
    let place = CredentialsPlace::parse("ssm:/cashback/klaviyo/").unwrap();
    let value = format!(
        r#"{{"private_key":"{}","base_url":"{}","settings":{{"prefix":"loyalty_"}}}}"#,
        klaviyo_fake::PRIVATE_KEY,
        klaviyo.url()
    );
    w.deps.marketing = Some(Arc::new(MarketingConnections::new(
        place.clone(),
        Arc::new(StaticCredentials(HashMap::from([(
            place.reference(&shop()).unwrap().to_string(),
            value,
        )]))),
    )));
    seed_balance(w.store.as_ref(), &program(), "a", "CB-A", "10.00").await;
    let outcome = w.feed().await;
    assert_eq!(
        (outcome.synced, outcome.pushed, outcome.failed),
        (1, 1, 0),
        "{outcome:?}"
    );
    let profile = klaviyo.profile("a@example.com").expect("the profile");
    assert_eq!(profile.properties["loyalty_balance"].as_f64(), Some(10.0));
    assert_eq!(shopify.discount("CB-A").unwrap().amount, dec!(10.00));

    // A shop without a Klaviyo parameter pushes nothing and fails nothing.
    w.deps.marketing = Some(Arc::new(MarketingConnections::new(
        place,
        Arc::new(StaticCredentials::default()),
    )));
    adjust(
        &w.ctx,
        &shop(),
        &customer("a"),
        r#"{"amount":"1.00","reason":"x"}"#,
        "k9",
        "admin",
        t0(),
    )
    .await
    .unwrap();
    let outcome = w.feed().await;
    assert_eq!(
        (outcome.synced, outcome.pushed, outcome.failed),
        (1, 0, 0),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn an_uninstalled_shop_calls_no_platform_from_the_feed_or_a_reconcile() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    seed_balance(w.store.as_ref(), &program(), "a", "CB-A", "10.00").await;
    w.store
        .set_shop_uninstalled(&shop(), Some(t0()))
        .await
        .unwrap();
    let outcome = w.feed().await;
    assert_eq!((outcome.not_synced, outcome.failed), (1, 0));
    let platform = cashback_platform_codes::shopify::ShopifyCodes::new(
        cashback_platform_codes::shopify::ShopifyConfig::new(
            &fake.url(),
            cashback_platform_codes::shopify::ShopifyCredentials::AdminToken(
                fake::ADMIN_TOKEN.into(),
            ),
            cashback_core::money::Currency::USD,
        )
        .unwrap(),
    )
    .unwrap();
    let summary = cashback_app::platform_codes::reconcile_shop(
        &w.ctx,
        &platform,
        &shop(),
        None,
        &cashback_app::platform_codes::RunLimits::for_budget(StdDuration::from_secs(5)),
        &SyncPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.checked, 0, "{summary:?}");
    assert!(fake.stats().calls.is_empty(), "{:?}", fake.stats().calls);
}

/// Counts the store's calls by kind.
#[derive(Default)]
struct CountCalls(Mutex<HashMap<cashback_store::intercept::Call, u64>>);

impl CountCalls {
    fn take(&self, call: cashback_store::intercept::Call) -> u64 {
        self.0.lock().unwrap().remove(&call).unwrap_or(0)
    }
}

impl cashback_store::intercept::Interceptor for CountCalls {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: cashback_store::intercept::Call,
        run: cashback_store::intercept::Pending<'a, T>,
    ) -> cashback_store::intercept::Pending<'a, T> {
        *self.0.lock().unwrap().entry(call).or_default() += 1;
        run
    }
}

#[tokio::test]
async fn a_sync_reads_the_shops_uninstall_flag_once_and_a_run_once_for_all_its_syncs() {
    use cashback_store::intercept::{Call, Intercepted};
    let fake = FakeShopify::start().await;
    let mut w = world(&fake, program()).await;
    let counted = Arc::new(Intercepted::new(w.store.clone(), CountCalls::default()));
    w.deps.ctx = context(counted.clone(), Arc::new(KeptNotifier::default()));
    for id in ["a", "b", "c"] {
        seed_balance(
            w.store.as_ref(),
            &program(),
            id,
            &format!("CB-{id}"),
            "10.00",
        )
        .await;
    }
    // The change feed: three customers, three syncs, each reading the
    // uninstall flag once and the account once.
    let outcome = w.feed().await;
    assert_eq!((outcome.synced, outcome.failed), (3, 0), "{outcome:?}");
    let counts = counted.interceptor();
    assert_eq!(counts.take(Call::ShopUninstalledAt), 3);
    assert_eq!(counts.take(Call::Read), 3);

    // A backfill run over the three: the run reads the flag (when it is
    // asked for and when it starts), its syncs do not. Each of its syncs
    // reads the account twice: before its put, and after it, to put again
    // if the account changed meanwhile (a run is not ordered with the feed).
    let answer = handle(
        &w.deps,
        serde_json::json!({"run": "backfill", "shop": shop(), "restart": true}),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(answer["summary"]["synced"], 3, "{answer}");
    assert_eq!(counts.take(Call::ShopUninstalledAt), 2);
    assert_eq!(counts.take(Call::Read), 6);
}

#[tokio::test]
async fn the_shops_sync_record_shows_the_last_sync_the_parked_syncs_and_the_last_reconcile() {
    let fake = FakeShopify::start().await;
    let w = world(&fake, program()).await;
    seed_balance(w.store.as_ref(), &program(), "a", "CB-a", "10.00").await;
    let outcome = w.feed().await;
    assert_eq!(outcome.synced, 1);
    let record = w.store.sync_record(&shop()).await.unwrap();
    let synced_at = record.last_synced_at.expect("a sync time");
    assert!(synced_at <= w.ctx.now());
    assert_eq!(record.parked, 0);

    // The platform keeps failing: the sync is given up on, counted with why.
    // As many failures as the sync's attempts (the world's policy: 4).
    for _ in 0..4 {
        fake.push_fault(Fault::ServerError);
    }
    adjust(
        &w.ctx,
        &shop(),
        &customer("a"),
        r#"{"amount":"1.00","reason":"x"}"#,
        "k1",
        "admin",
        t0(),
    )
    .await
    .unwrap();
    let outcome = w.feed().await;
    assert_eq!(outcome.failed, 1, "{outcome:?}");
    let record = w.store.sync_record(&shop()).await.unwrap();
    assert_eq!(record.parked, 1);
    let reason = record.parked_reason.clone().unwrap();
    assert!(reason.contains("attempt"), "{reason}");

    // A finished reconcile repairs it, records its figures, clears the count.
    let answer = handle(
        &w.deps,
        serde_json::json!({"run": "reconcile", "shop": shop()}),
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(answer["summary"]["repaired"], 1, "{answer}");
    let record = w.store.sync_record(&shop()).await.unwrap();
    assert_eq!(record.parked, 0);
    let reconcile = record.reconcile.unwrap();
    assert_eq!(
        (
            reconcile.checked,
            reconcile.drifted,
            reconcile.repaired,
            reconcile.finished
        ),
        (1, 1, 1, true)
    );
    assert_eq!(reconcile.at, t0());
    let status = cashback_app::platform_codes::sync_status(&w.ctx, &shop())
        .await
        .unwrap();
    assert!(status.connected);
    assert_eq!(status.reconcile, Some(reconcile));
}

/// The alarm on a shop failing for most of a run watches the field the
/// function logs.
#[test]
fn the_template_alarms_on_the_alert_the_function_logs() {
    let resources = cashback_test_support::moto::template_resources();
    let filter = &resources["PlatformSyncFailingFilter"]["Properties"];
    assert_eq!(
        filter["FilterPattern"].as_str(),
        Some(
            format!(
                r#"{{ $.fields.alert = "{}" }}"#,
                platform_sync::retries::FAILING_ALERT
            )
            .as_str()
        )
    );
    assert_eq!(
        resources["PlatformSyncFailingAlarm"]["Properties"]["MetricName"],
        filter["MetricTransformations"][0]["MetricName"]
    );
    let below = &resources["StoreCreditBelowCashbackFilter"]["Properties"];
    assert_eq!(
        below["FilterPattern"].as_str(),
        Some(
            format!(
                r#"{{ $.fields.alert = "{}" }}"#,
                cashback_app::platform_codes::store_credit::BELOW_CASHBACK_ALERT
            )
            .as_str()
        )
    );
    assert_eq!(
        resources["StoreCreditBelowCashbackAlarm"]["Properties"]["MetricName"],
        below["MetricTransformations"][0]["MetricName"]
    );
}
