//! Scheduled runs dropped at a random await point, then run again.
//!
//! Every store call and every email send of a run has an await point before
//! it and another after it took effect (`cashback_test_support::cut`). Each history
//! picks, from a seed, how many times the run dies (1 to 3) and where (a
//! random point among those a whole run passes), drops the run there with
//! `tokio::select!` as a killed Lambda stops, then lets a run finish. This
//! is done for the release job and for two days of the reminder series.
//! Afterwards: every release exactly once, every account equal to its
//! ledger, every email key at most once, and no more emails missing than
//! runs died (a run that dies between a commit and its send loses that one
//! email, as docs/email.md says; it is never sent twice).
//!
//! `CRASH_HISTORIES` (default 2,000) sets how many histories run; the figures
//! line reports what was exercised.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cashback_app::jobs::promote::{promote_due, PROMOTE_JOB, READY_EMAILS_JOB};
use cashback_app::jobs::reminders::{send_reminders, REMINDERS_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::NotificationKind;
use cashback_app::store::Store;
use cashback_app::{AppConfig, Context};
use cashback_core::ledger::EntryKind;
use cashback_core::order::OrderEvent;
use cashback_core::program::{Program, ReminderPosition};
use cashback_store::MemoryStore;
use cashback_test_support::cut::{cut_store, CutNotifier, CutPoints};
use cashback_test_support::doubles::*;
use cashback_test_support::fixtures::*;
use cashback_test_support::world::*;

const CUSTOMERS: usize = 6;

fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    // Position 0 on the day of the release, position 1 two days later.
    program.reminders = [0u32, 2]
        .iter()
        .enumerate()
        .map(|(position, offset_days)| ReminderPosition {
            position: position as u8,
            enabled: true,
            offset_days: *offset_days,
            subject: format!("Reminder {position}"),
            preview_text: String::new(),
        })
        .collect();
    program
}

/// Orders paid at t0 fall due 30 days later.
fn due_day() -> DateTime<Utc> {
    t0() + Duration::days(30)
}

fn config() -> JobConfig {
    JobConfig {
        finish_reserve: StdDuration::ZERO,
        ..JobConfig::default()
    }
}

fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + StdDuration::from_secs(3600)
}

struct World {
    memory: Arc<MemoryStore>,
    kept: Arc<KeptNotifier>,
    points: Arc<CutPoints>,
    store: Arc<dyn Store>,
    notifier: Arc<CutNotifier>,
}

impl World {
    /// A cold container's context: nothing cached from a run that died.
    fn ctx(&self) -> Context {
        Context::new(
            self.store.clone(),
            self.notifier.clone(),
            Arc::new(SeqCodes(Mutex::new(1000))),
            AppConfig::default(),
        )
    }
}

/// Six customers with 10.00 pending each; the jobs' checkpoints a few hours
/// before the due hour, so the cut points fall among the work rather than in
/// a week of empty buckets.
async fn world() -> World {
    let memory = Arc::new(MemoryStore::new());
    open_shop(memory.as_ref(), &program()).await;
    let kept = Arc::new(KeptNotifier::default());
    let plain = context(memory.clone(), kept.clone());
    for i in 0..CUSTOMERS {
        let placed = order(
            &format!("{}", 3000 + i),
            &format!("c{i}"),
            vec![line("l1", 10_000, 1)],
        );
        cashback_app::events::handle_order_event(&plain, &shop(), &OrderEvent::Paid(placed), t0())
            .await
            .unwrap_or_else(|e| panic!("pay: {e}"));
    }
    for job in [PROMOTE_JOB, READY_EMAILS_JOB, REMINDERS_JOB] {
        memory
            .put_checkpoint(job, "2026-12-23T06")
            .await
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
    }
    let points = CutPoints::new();
    let store: Arc<dyn Store> = Arc::new(cut_store(memory.clone(), points.clone()));
    let notifier = Arc::new(CutNotifier::new(kept.clone(), points.clone()));
    World {
        memory,
        kept,
        points,
        store,
        notifier,
    }
}

#[derive(Clone, Copy)]
enum Job {
    Promote,
    Reminders,
}

/// One whole run; true if it finished with nothing left over.
async fn run(world: &World, job: Job, at: DateTime<Utc>) -> bool {
    let ctx = world.ctx();
    match job {
        Job::Promote => promote_due(&ctx, &TokioClock, &config(), at, far())
            .await
            .map(|o| o.is_done())
            .unwrap_or(false),
        Job::Reminders => send_reminders(&ctx, &TokioClock, &config(), at, far())
            .await
            .map(|o| o.is_done())
            .unwrap_or(false),
    }
}

#[derive(Debug, Default)]
struct Figures {
    histories: u64,
    runs_dropped: u64,
    runs_finished_before_their_cut: u64,
    points_in_a_whole_run: BTreeMap<&'static str, u64>,
    releases: u64,
    ready_sent: u64,
    ready_lost: u64,
    reminders_sent: u64,
    reminders_lost: u64,
}

/// Runs `job` at `at` dying `deaths` times at random points among `span`,
/// then once to the end. Returns the runs actually dropped.
async fn crash_then_finish(
    world: &World,
    job: Job,
    at: DateTime<Utc>,
    deaths: u32,
    span: u64,
    rng: &mut StdRng,
    figures: &mut Figures,
) -> u64 {
    let mut dropped = 0;
    for _ in 0..deaths {
        world.points.cut_after(rng.random_range(1..=span.max(1)));
        let finished = tokio::select! {
            done = run(world, job, at) => Some(done),
            _ = world.points.cut() => None,
        };
        match finished {
            None => dropped += 1,
            Some(_) => figures.runs_finished_before_their_cut += 1,
        }
    }
    world.points.never_cut();
    assert!(
        run(world, job, at).await,
        "the run after the crashes finished"
    );
    figures.runs_dropped += dropped;
    dropped
}

/// Await points a whole run passes, measured on a world of its own.
async fn span_of(job: Job) -> u64 {
    let world = world().await;
    if let Job::Reminders = job {
        world.points.never_cut();
        assert!(run(&world, Job::Promote, due_day()).await);
    }
    let before = world.points.passed();
    assert!(run(&world, job, due_day()).await);
    world.points.passed() - before
}

fn keys_of(kept: &KeptNotifier, kind: &str) -> Vec<String> {
    kept.sent
        .lock()
        .map(|sent| {
            sent.iter()
                .filter(|n| n.kind.name() == kind)
                .map(|n| n.idempotency_key.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_at_most_once(keys: &[String], what: &str, seed: u64) {
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "seed {seed}: a {what} went twice");
}

async fn one_history(seed: u64, spans: (u64, u64), figures: &mut Figures) {
    let mut rng = StdRng::seed_from_u64(seed);
    let world = world().await;

    // Releases, with 1 to 3 deaths first.
    let deaths = rng.random_range(1..=3);
    let dropped = crash_then_finish(
        &world,
        Job::Promote,
        due_day(),
        deaths,
        spans.0,
        &mut rng,
        figures,
    )
    .await;
    let mut released_orders = BTreeMap::<String, usize>::new();
    for i in 0..CUSTOMERS {
        let customer = format!("c{i}");
        let account = stored_account(world.memory.as_ref(), &customer)
            .await
            .expect("the account exists")
            .value;
        let ledger = whole_ledger(world.memory.as_ref(), &customer).await;
        account
            .check(&ledger)
            .unwrap_or_else(|broken| panic!("seed {seed} {customer}: {broken:?}"));
        assert_eq!(account.available, usd("10.00"), "seed {seed} {customer}");
        assert_eq!(account.pending, usd("0.00"), "seed {seed} {customer}");
        for entry in ledger.iter().filter(|e| e.kind == EntryKind::Release) {
            let order = entry.order_id.as_ref().map(|o| o.to_string());
            *released_orders
                .entry(order.unwrap_or_default())
                .or_default() += 1;
        }
    }
    assert_eq!(
        released_orders.len(),
        CUSTOMERS,
        "seed {seed}: {released_orders:?}"
    );
    assert!(
        released_orders.values().all(|n| *n == 1),
        "seed {seed}: a release happened twice: {released_orders:?}"
    );
    figures.releases += released_orders.len() as u64;
    let ready = keys_of(&world.kept, "ready");
    assert_at_most_once(&ready, "ready email", seed);
    let lost = CUSTOMERS as u64 - ready.len() as u64;
    assert!(
        lost <= dropped,
        "seed {seed}: {lost} ready emails lost in {dropped} deaths"
    );
    figures.ready_sent += ready.len() as u64;
    figures.ready_lost += lost;

    // Reminder positions 0 and 1, each day's run dying 1 to 3 times first.
    let mut dropped = 0;
    for day in [0, 2] {
        let deaths = rng.random_range(1..=3);
        dropped += crash_then_finish(
            &world,
            Job::Reminders,
            due_day() + Duration::days(day),
            deaths,
            spans.1,
            &mut rng,
            figures,
        )
        .await;
    }
    let reminders = keys_of(&world.kept, "reminder");
    assert_at_most_once(&reminders, "reminder", seed);
    let mut per_position = BTreeMap::<(String, u8), usize>::new();
    if let Ok(sent) = world.kept.sent.lock() {
        for notification in sent.iter() {
            if let NotificationKind::Reminder { position, .. } = notification.kind {
                *per_position
                    .entry((notification.to.as_str().to_string(), position))
                    .or_default() += 1;
            }
        }
    }
    assert!(
        per_position.values().all(|n| *n == 1),
        "seed {seed}: a position went twice: {per_position:?}"
    );
    let lost = 2 * CUSTOMERS as u64 - reminders.len() as u64;
    assert!(
        lost <= dropped,
        "seed {seed}: {lost} reminders lost in {dropped} deaths"
    );
    figures.reminders_sent += reminders.len() as u64;
    figures.reminders_lost += lost;
    figures.histories += 1;
}

#[tokio::test]
async fn runs_dropped_at_random_await_points_then_run_again_release_once_and_email_at_most_once() {
    let histories: u64 = std::env::var("CRASH_HISTORIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let spans = (span_of(Job::Promote).await, span_of(Job::Reminders).await);
    let mut figures = Figures::default();
    figures.points_in_a_whole_run.insert("promote", spans.0);
    figures.points_in_a_whole_run.insert("reminders", spans.1);
    for seed in 0..histories {
        one_history(seed, spans, &mut figures).await;
    }
    eprintln!("crash/resume figures: {figures:?}");
    assert!(figures.runs_dropped > histories, "{figures:?}");
}
