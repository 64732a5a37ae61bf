//! Races on DynamoDB (moto): one customer's webhooks (new orders, refunds,
//! a cancellation, every one delivered twice at once), checkouts reserving
//! her balance, orders spending it through her code, and two overlapping
//! release runs, all in parallel tasks against one table. Afterwards the
//! account agrees with the ledger read back (`Account::check`: sums, signs,
//! held <= available, lots), each event changed the ledger once, no email
//! went twice, and the balance is what one clean, sequential history leaves.
//!
//! Each round runs on a private moto that serves one request at a time (see
//! `moto::serial_moto`; moto's threaded server loses commits under
//! concurrent transactions, DynamoDB does not), on a table of its own: moto
//! copies a table per transaction, so tables stay small. Without
//! `MOTO_ENDPOINT` the test skips with a notice (fails under
//! `REQUIRE_MOTO=1`). `RACE_ROUNDS` (default 4) sets how many rounds run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use cashback_app::checkout::{validate, ValidateRequest, Validation};
use cashback_app::events::{handle_order_event, EventOutcome};
use cashback_app::jobs::promote::{promote_due, PromoteOutcome, PROMOTE_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::Store;
use cashback_core::ids::{CheckoutId, Code};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::money::Money;
use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent};
use cashback_store::{DynamoStore, MemoryStore};
use cashback_test_support::doubles::*;
use cashback_test_support::fixtures::*;
use cashback_test_support::moto;
use cashback_test_support::world::*;
use rust_decimal_macros::dec;

const ANN: &str = "ann";
const ANN_CODE: &str = "CB-ANN0000000001";
/// Orders paid a month before the race: their pending cashback falls due
/// during it.
const OLD_ORDERS: [&str; 4] = ["1001", "1002", "1003", "1004"];
/// Orders paid during the race; the last two spend 10.00 through Ann's code.
const NEW_ORDERS: [&str; 6] = ["2001", "2002", "2003", "2004", "2005", "2006"];
const CHECKOUTS: usize = 8;

/// When the race happens: the old orders' cashback is due.
fn race_time() -> DateTime<Utc> {
    t0() + Duration::hours(1)
}

fn paid_long_ago() -> DateTime<Utc> {
    t0() - Duration::days(30) - Duration::hours(1)
}

fn job_config() -> JobConfig {
    JobConfig {
        finish_reserve: StdDuration::ZERO,
        max_attempts: 50,
        ..JobConfig::default()
    }
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + StdDuration::from_secs(3600)
}

/// A store on a new table in the moto at `endpoint`, the table built from
/// template.yaml's `CashbackTable`.
async fn dynamo_on(endpoint: &str, name: &str) -> DynamoStore {
    moto::store_on(endpoint, name).await
}

/// An old order: two units of 50.00 (10.00 cashback, pending).
fn old_order(id: &str) -> cashback_core::order::Order {
    let mut placed = order(id, ANN, vec![line("l1", 5000, 2)]);
    placed.occurred_at = paid_long_ago();
    placed
}

/// A new order of 40.00; `spend` names the checkout that spent 10.00 of
/// Ann's balance on it.
fn new_order(id: &str, spend: Option<&str>) -> OrderEvent {
    let mut placed = order(id, ANN, vec![line("l1", 4000, 1)]);
    placed.occurred_at = race_time();
    if let Some(checkout) = spend {
        placed.checkout_id = Some(CheckoutId::parse(checkout).unwrap_or_else(|e| panic!("{e}")));
        placed.discount_codes = vec![AppliedCode {
            code: Code::parse(ANN_CODE).unwrap_or_else(|e| panic!("{e}")),
            amount: usd("10.00"),
            kind: DiscountKind::Order,
        }];
    }
    OrderEvent::Paid(placed)
}

/// The events delivered during the race, each one of them twice.
fn race_events() -> Vec<OrderEvent> {
    let mut events: Vec<OrderEvent> = NEW_ORDERS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let spend = match i {
                4 => Some("chk-4"),
                5 => Some("chk-5"),
                _ => None,
            };
            new_order(id, spend)
        })
        .collect();
    // 1001 refunded whole, 1002 half, 1003 cancelled; 1004 untouched.
    events.push(refund("1001", "r1001", &[("l1".into(), 2)]));
    events.push(refund("1002", "r1002", &[("l1".into(), 1)]));
    events.push(OrderEvent::Cancelled(old_order("1003")));
    events
}

fn reserve_request(checkout: &str) -> ValidateRequest {
    serde_json::from_value(serde_json::json!({
        "code": ANN_CODE,
        "customer_id": ANN,
        "currency": "USD",
        "cart": {
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": "20.00"}],
            "subtotal": "20.00",
        },
        "reserve": {"checkout_id": checkout},
    }))
    .unwrap_or_else(|e| panic!("request: {e}"))
}

/// Ann with 50.00 on her code and the four old orders' cashback pending.
async fn before_the_race(store: Arc<dyn Store>) -> (cashback_app::Context, Arc<KeptNotifier>) {
    open_shop(store.as_ref(), &program()).await;
    seed_balance(store.as_ref(), &program(), ANN, ANN_CODE, "50.00").await;
    let notifier = Arc::new(KeptNotifier::default());
    let ctx = context(store, notifier.clone());
    for id in OLD_ORDERS {
        handle_order_event(
            &ctx,
            &shop(),
            &OrderEvent::Paid(old_order(id)),
            paid_long_ago(),
        )
        .await
        .unwrap_or_else(|e| panic!("old order {id}: {e}"));
    }
    (ctx, notifier)
}

/// The same history, one event at a time, on the in-memory store: what the
/// race must end with.
async fn clean_history() -> Account {
    let memory = Arc::new(MemoryStore::new());
    let (ctx, _) = before_the_race(memory.clone()).await;
    for event in race_events() {
        handle_order_event(&ctx, &shop(), &event, race_time())
            .await
            .unwrap_or_else(|e| panic!("clean event: {e}"));
    }
    promote_due(&ctx, &TokioClock, &job_config(), race_time(), far())
        .await
        .unwrap_or_else(|e| panic!("clean release: {e}"));
    stored_account(memory.as_ref(), ANN)
        .await
        .expect("ann exists")
        .value
}

/// available + pending - debt: what the customer is worth, whatever the
/// order in which releases and clawbacks moved it between the buckets.
fn worth(account: &Account) -> Money {
    account
        .available
        .checked_add(account.pending)
        .and_then(|sum| sum.checked_sub(account.debt))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[derive(Debug, Default)]
struct RoundFigures {
    deliveries: usize,
    applied: usize,
    duplicates: usize,
    checkouts: usize,
    holds_granted: usize,
    released: u64,
    already_done: u64,
    requests: u64,
}

async fn one_round(endpoint: &str, round: usize, clean: &Account) -> RoundFigures {
    let store: Arc<dyn Store> = Arc::new(dynamo_on(endpoint, &format!("races-{round}")).await);
    let (ctx, notifier) = before_the_race(store.clone()).await;
    // The release runs start a few hours before the due hour, so they reach
    // it while the webhooks and checkouts are still racing.
    store
        .put_checkpoint(PROMOTE_JOB, "2026-11-23T06")
        .await
        .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    let before = store.request_counts();

    enum Done {
        Event(usize, EventOutcome),
        Checkout(Validation),
        Release(PromoteOutcome),
    }
    // Every participant, started in an order of this round's own.
    enum Who {
        Event(usize, Box<OrderEvent>),
        Checkout(usize),
        Release,
    }
    let mut who: Vec<Who> = Vec::new();
    for (n, event) in race_events().into_iter().enumerate() {
        who.push(Who::Event(n, Box::new(event.clone())));
        who.push(Who::Event(n, Box::new(event)));
    }
    who.extend((0..CHECKOUTS).map(Who::Checkout));
    who.push(Who::Release);
    who.push(Who::Release);
    who.shuffle(&mut StdRng::seed_from_u64(round as u64));
    let mut tasks = Vec::new();
    for participant in who {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            match participant {
                Who::Event(n, event) => {
                    let outcome = handle_order_event(&ctx, &shop(), &event, race_time())
                        .await
                        .unwrap_or_else(|e| panic!("event {n}: {e}"));
                    Done::Event(n, outcome)
                }
                Who::Checkout(n) => {
                    let request = reserve_request(&format!("chk-{n}"));
                    let caller = format!("race-{n}");
                    let answer = validate(&ctx, &shop(), &request, &caller, race_time())
                        .await
                        .unwrap_or_else(|e| panic!("checkout {n}: {e}"));
                    Done::Checkout(answer)
                }
                Who::Release => {
                    let run = promote_due(&ctx, &TokioClock, &job_config(), race_time(), far())
                        .await
                        .unwrap_or_else(|e| panic!("release run: {e}"));
                    Done::Release(run)
                }
            }
        }));
    }

    let mut figures = RoundFigures::default();
    let mut applied_per_event: BTreeMap<usize, usize> = BTreeMap::new();
    for task in tasks {
        match task.await.unwrap_or_else(|e| panic!("task: {e}")) {
            Done::Event(n, outcome) => {
                figures.deliveries += 1;
                match outcome {
                    EventOutcome::Applied { .. } => {
                        figures.applied += 1;
                        *applied_per_event.entry(n).or_default() += 1;
                    }
                    EventOutcome::Duplicate => figures.duplicates += 1,
                    other @ EventOutcome::Ignored { .. } => panic!("event {n}: {other:?}"),
                }
            }
            Done::Checkout(answer) => {
                figures.checkouts += 1;
                if let Some(hold) = &answer.hold {
                    figures.holds_granted += 1;
                    assert_eq!(hold.amount, answer.discount, "a hold is the discount shown");
                    assert!(hold.amount.amount() <= dec!(20.00), "{hold:?}");
                }
            }
            Done::Release(run) => {
                assert_eq!(run.failed, 0, "{run:?}");
                figures.released += run.released;
                figures.already_done += run.already_done;
            }
        }
    }
    figures.requests = store.request_counts().total() - before.total();

    // Each event changed the ledger once, however many deliveries raced.
    let events = race_events().len();
    assert_eq!(applied_per_event.len(), events, "{applied_per_event:?}");
    assert!(
        applied_per_event.values().all(|n| *n == 1),
        "an event applied twice: {applied_per_event:?}"
    );

    // The account agrees with the ledger read back: sums, no negative
    // balance, held <= available, the lots.
    let account = stored_account(store.as_ref(), ANN)
        .await
        .expect("ann exists")
        .value;
    let ledger: Vec<LedgerEntry> = whole_ledger(store.as_ref(), ANN).await;
    account
        .check(&ledger)
        .unwrap_or_else(|broken| panic!("round {round}: {broken:?}\n{account:?}"));
    assert!(account.held().amount() <= account.available.amount());

    // One earning per order, at most one release per order, and the
    // untouched old order released exactly once.
    let mut earned = BTreeMap::<String, usize>::new();
    let mut released = BTreeMap::<String, usize>::new();
    for entry in &ledger {
        let order = entry.order_id.as_ref().map(|o| o.to_string());
        match (entry.kind, order) {
            (EntryKind::Earn, Some(order)) => *earned.entry(order).or_default() += 1,
            (EntryKind::Release, Some(order)) => *released.entry(order).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(
        earned.len(),
        OLD_ORDERS.len() + NEW_ORDERS.len(),
        "{earned:?}"
    );
    assert!(earned.values().all(|n| *n == 1), "{earned:?}");
    assert!(released.values().all(|n| *n == 1), "{released:?}");
    assert_eq!(released.get("1004"), Some(&1), "{released:?}");
    assert_eq!(released.get("1002"), Some(&1), "{released:?}");

    // Nothing lost, nothing credited twice: worth what the clean history
    // leaves, with as much spent through the code.
    assert_eq!(worth(&account), worth(clean), "round {round}: {account:?}");
    assert_eq!(account.lifetime_issued, clean.lifetime_issued);
    assert_eq!(account.lifetime_used, clean.lifetime_used);
    assert_eq!(account.lifetime_used, usd("20.00"));

    // No email twice.
    let keys: Vec<String> = notifier
        .sent
        .lock()
        .map(|sent| sent.iter().map(|n| n.idempotency_key.clone()).collect())
        .unwrap_or_default();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(keys.len(), unique.len(), "an email went twice: {keys:?}");
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_webhooks_checkouts_and_releases_for_one_customer_keep_every_invariant() {
    let Some(serial) = moto::serial_moto("races").await else {
        return;
    };
    let rounds: usize = std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4);
    let clean = clean_history().await;
    let mut total = RoundFigures::default();
    for round in 0..rounds {
        let figures = one_round(&serial.endpoint, round, &clean).await;
        total.deliveries += figures.deliveries;
        total.applied += figures.applied;
        total.duplicates += figures.duplicates;
        total.checkouts += figures.checkouts;
        total.holds_granted += figures.holds_granted;
        total.released += figures.released;
        total.already_done += figures.already_done;
        total.requests += figures.requests;
    }
    eprintln!(
        "races figures: rounds={rounds} deliveries={} applied={} duplicates={} checkouts={} \
         holds_granted={} released={} already_done={} store_requests={}",
        total.deliveries,
        total.applied,
        total.duplicates,
        total.checkouts,
        total.holds_granted,
        total.released,
        total.already_done,
        total.requests,
    );
}
