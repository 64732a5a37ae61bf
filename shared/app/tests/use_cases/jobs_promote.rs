//! The promote-pending job on the in-memory store: releases exactly once
//! under overlapping, cut-off and crashed runs; catch-up through the
//! checkpoint; expiry; the emails it sends and the ones it leaves to the
//! order events; round trips.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use crate::support::jobs::*;
use crate::support::*;
use cashback_app::events::handle_order_event;
use cashback_app::jobs::promote::{promote_due, PromoteOutcome, PROMOTE_JOB, READY_EMAILS_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::{AccountWrite, Store, WriteSet};
use cashback_core::ids::CheckoutId;
use cashback_core::ledger::EntryKind;
use cashback_core::program::Tier;
use cashback_store::MemoryStore;
use rust_decimal_macros::dec;

/// Pending cashback of an order paid at t0 falls due 30 days later.
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

struct Setup {
    memory: Arc<MemoryStore>,
    notifier: Arc<ScriptedNotifier>,
    ctx: cashback_app::Context,
}

async fn setup(program: cashback_core::program::Program, notifier: ScriptedNotifier) -> Setup {
    let memory = Arc::new(MemoryStore::new());
    let notifier = Arc::new(notifier);
    let ctx = jobs_context(&memory, memory.clone(), notifier.clone(), &program).await;
    Setup {
        memory,
        notifier,
        ctx,
    }
}

/// `count` customers `c0..`, each paying one order of 100.00 (10.00 cashback).
async fn pay_many(ctx: &cashback_app::Context, count: usize, at: DateTime<Utc>) {
    for i in 0..count {
        pay(
            ctx,
            &format!("{}", 1000 + i),
            &format!("c{i}"),
            "100.00",
            at,
        )
        .await;
    }
}

/// Every order's release entries, by order id; and each account checked
/// against its own ledger.
async fn releases(memory: &MemoryStore, customers: usize) -> HashMap<String, usize> {
    let mut by_order = HashMap::new();
    for i in 0..customers {
        let customer = format!("c{i}");
        let ledger = ledger_of(memory, &customer).await;
        let account = account_of(memory, &customer).await.value;
        account
            .check(&ledger)
            .unwrap_or_else(|broken| panic!("{customer}: {broken:?}"));
        for entry in ledger.iter().filter(|e| e.kind == EntryKind::Release) {
            let order = entry.order_id.as_ref().unwrap().to_string();
            *by_order.entry(order).or_insert(0) += 1;
        }
    }
    by_order
}

#[tokio::test]
async fn due_pending_cashback_is_released_once_with_one_ready_email_each() {
    let s = setup(program(), ScriptedNotifier::default()).await;
    pay_many(&s.ctx, 3, t0()).await;

    let early = promote_due(
        &s.ctx,
        &TokioClock,
        &config(),
        due_day() - Duration::hours(1),
        far(),
    )
    .await
    .unwrap();
    assert_eq!(early.released, 0, "nothing is due a day early");

    let run = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    assert_eq!(run.released, 3);
    assert_eq!(run.released_amount.0["USD"], dec!(30.00));
    assert_eq!(run.emails_sent, 3);
    assert!(run.is_done());

    let ann = account_of(&s.memory, "c0").await.value;
    assert_eq!(ann.available, usd("10.00"));
    assert_eq!(ann.pending, usd("0.00"));
    let mut ready = s.notifier.sent_of("ready");
    ready.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
    assert_eq!(ready.len(), 3);
    assert_eq!(ready[0].idempotency_key, "ready:c0:1000");
    match &ready[0].kind {
        cashback_app::notify::NotificationKind::Ready {
            amount,
            balance,
            code,
        } => {
            assert_eq!(*amount, usd("10.00"));
            assert_eq!(*balance, usd("10.00"));
            assert_eq!(Some(code), ann.code.as_ref());
        }
        other => panic!("not a ready email: {other:?}"),
    }

    let again = promote_due(
        &s.ctx,
        &TokioClock,
        &config(),
        due_day() + Duration::hours(1),
        far(),
    )
    .await
    .unwrap();
    assert_eq!((again.released, again.emails_sent), (0, 0));
    assert_eq!(s.notifier.sent_of("ready").len(), 3);
    assert!(releases(&s.memory, 3).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_release_costs_one_read_and_one_transaction_plus_the_query_pages() {
    let s = setup(program(), ScriptedNotifier::default()).await;
    pay_many(&s.ctx, 5, t0()).await;
    // A checkpoint two hours back: the run reads 3 buckets (two settled).
    for job in [PROMOTE_JOB, READY_EMAILS_JOB] {
        s.memory.put_checkpoint(job, "2026-12-23T07").await.unwrap();
    }
    // Warm the program cache as a warm container has it.
    s.ctx.shop_program(&shop(), due_day()).await.unwrap();
    let before = s.memory.request_counts();
    let config = JobConfig {
        page_size: 2,
        ..config()
    };
    let run = promote_due(&s.ctx, &TokioClock, &config, due_day(), far())
        .await
        .unwrap();
    let after = s.memory.request_counts();
    assert_eq!(run.released, 5);
    assert_eq!(run.emails_sent, 5);
    // One read and one transaction per release, and one of each per ready
    // email (the paced pass claims it before sending).
    assert_eq!(
        after.reads - before.reads,
        10,
        "one read per release and email"
    );
    assert_eq!(
        after.writes - before.writes,
        10,
        "one transaction per release and email"
    );
    // 3 buckets x 2 kinds x 4 shards, plus a page for every 2 items in a shard.
    let extra_pages = run.scan.queries - 3 * 2 * 4;
    assert!(extra_pages <= 5, "{extra_pages} extra pages");
    assert_eq!(
        after.queries - before.queries,
        run.scan.queries + run.email_pass.queries
    );
    // Each pass reads its checkpoint; neither moves (no bucket is 2 hours old yet).
    assert_eq!(after.other - before.other, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_overlapping_runs_release_each_reward_once_and_send_one_ready_email_each() {
    let memory = Arc::new(MemoryStore::new());
    let stalling = stalling_store(memory.clone());
    let notifier = Arc::new(ScriptedNotifier::default());
    let ctx = jobs_context(&memory, stalling.clone(), notifier.clone(), &program()).await;
    pay_many(&ctx, 40, t0()).await;

    let runs: Vec<_> = (0..2)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                promote_due(&ctx, &TokioClock, &config(), due_day(), far())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes: Vec<PromoteOutcome> = Vec::new();
    for run in runs {
        outcomes.push(run.await.unwrap());
    }
    let released: u64 = outcomes.iter().map(|o| o.released).sum();
    assert_eq!(released, 40, "{outcomes:?}");
    let by_order = releases(&memory, 40).await;
    assert_eq!(by_order.len(), 40);
    assert!(by_order.values().all(|n| *n == 1), "{by_order:?}");
    let keys = notifier.keys_of("ready");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (40, 40));
}

#[tokio::test]
async fn a_run_cut_off_by_its_deadline_leaves_the_rest_to_the_next_run() {
    let clock = FakeClock::new();
    let notifier = ScriptedNotifier {
        latency: StdDuration::from_secs(1),
        ..ScriptedNotifier::with_clock(clock.clone())
    };
    let s = setup(program(), notifier).await;
    pay_many(&s.ctx, 30, t0()).await;

    // Each email takes a simulated second: all 30 are released (releases
    // do not wait for emails), ten emails fit before the deadline, and the
    // rest wait in the ready index.
    let first = promote_due(
        &s.ctx,
        clock.as_ref(),
        &config(),
        due_day(),
        clock.deadline_in(StdDuration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(first.released, 30);
    assert!(!first.scan.deadline_reached);
    assert!(first.email_pass.deadline_reached);
    assert!((9..=11).contains(&first.emails_sent), "{first:?}");
    assert_eq!(
        first.emails_lost, 0,
        "nothing recorded that could not be sent"
    );
    assert!(first.email_pass.buckets_left >= 1);
    assert!(!first.is_done());

    let second = promote_due(
        &s.ctx,
        clock.as_ref(),
        &config(),
        due_day() + Duration::minutes(15),
        clock.deadline_in(StdDuration::from_secs(3600)),
    )
    .await
    .unwrap();
    assert!(second.is_done());
    assert_eq!(first.released + second.released, 30);
    assert_eq!(first.emails_sent + second.emails_sent, 30);
    assert!(releases(&s.memory, 30).await.values().all(|n| *n == 1));
    assert_eq!(s.notifier.sent_of("ready").len(), 30);
}

#[tokio::test]
async fn a_run_that_crashes_at_any_point_and_runs_again_releases_every_reward_exactly_once() {
    // Every store call of the run, in turn, is where the process dies:
    // before the call takes effect, and (for writes) just after.
    let mut crash_points = 0;
    for nth in 1..=40u64 {
        for after_effect in [false, true] {
            let memory = Arc::new(MemoryStore::new());
            let stalling = stalling_store(memory.clone());
            let notifier = Arc::new(ScriptedNotifier::default());
            let ctx = jobs_context(&memory, stalling.clone(), notifier.clone(), &program()).await;
            pay_many(&ctx, 6, t0()).await;
            // Start at the due hour, so the crash points fall among the
            // reads and writes rather than in a week of empty buckets.
            memory
                .put_checkpoint(PROMOTE_JOB, "2026-12-23T09")
                .await
                .unwrap();
            let before = notifier.sent_of("ready").len();
            assert_eq!(before, 0);

            stalling.interceptor().stall_at(nth, after_effect);
            // The run is dropped at the stalled await, as a dying process
            // drops it: nothing after that point happens.
            let config = config();
            let crashed = tokio::select! {
                finished = promote_due(&ctx, &TokioClock, &config, due_day(), far()) => Some(finished),
                _ = stalling.interceptor().stalled() => None,
            };
            if crashed.is_some() {
                // The run finished before its nth call: no more crash points.
                continue;
            }
            crash_points += 1;
            stalling.interceptor().never_stall();
            let retry = promote_due(&ctx, &TokioClock, &config, due_day(), far())
                .await
                .unwrap();
            assert!(retry.is_done());

            let by_order = releases(&memory, 6).await;
            assert_eq!(by_order.len(), 6, "crash at call {nth}");
            assert!(by_order.values().all(|n| *n == 1), "crash at call {nth}");
            let keys = notifier.keys_of("ready");
            let mut unique = keys.clone();
            unique.dedup();
            assert_eq!(keys.len(), unique.len(), "a ready email went twice");
            // Only the email of a release committed just as the run died is
            // lost (recorded, never sent): at most once, never twice.
            let lost = 6 - keys.len();
            assert!(
                lost <= usize::from(after_effect),
                "crash at {nth}: {lost} lost"
            );
        }
    }
    assert!(
        crash_points >= 30,
        "only {crash_points} crash points exercised"
    );
}

#[tokio::test]
async fn a_missed_day_is_caught_up_through_the_checkpoint() {
    let s = setup(program(), ScriptedNotifier::default()).await;
    // Orders paid over a day, hour by hour: due over the day 30 days later.
    for hour in 0..24 {
        let at = t0() + Duration::hours(hour);
        pay(
            &s.ctx,
            &format!("{}", 2000 + hour),
            &format!("c{hour}"),
            "50.00",
            at,
        )
        .await;
    }
    // The last run before the gap.
    let before_gap = due_day() - Duration::hours(1);
    promote_due(&s.ctx, &TokioClock, &config(), before_gap, far())
        .await
        .unwrap();
    let checkpoint = s.memory.get_checkpoint(PROMOTE_JOB).await.unwrap();
    assert_eq!(
        checkpoint.as_deref(),
        Some("2026-12-23T06"),
        "settled 2 h back"
    );

    // No run for a day and a half; the next one catches up.
    let after_gap = due_day() + Duration::hours(36);
    let run = promote_due(&s.ctx, &TokioClock, &config(), after_gap, far())
        .await
        .unwrap();
    assert_eq!(run.released, 24);
    assert!(run.is_done());
    // Buckets 07 on the due day through now's hour, each read once.
    assert_eq!(run.scan.buckets_read, 3 + 36 + 1);
    assert_eq!(run.scan.checkpoint.as_deref(), Some("2026-12-24T19"));
    assert_eq!(releases(&s.memory, 24).await.len(), 24);
}

#[tokio::test]
async fn a_first_run_looks_back_a_week_and_no_further() {
    let s = setup(program(), ScriptedNotifier::default()).await;
    pay(&s.ctx, "3000", "old", "100.00", t0()).await;
    pay(&s.ctx, "3001", "recent", "100.00", t0() + Duration::days(5)).await;
    // Ten days after the first is due: only the second is inside the window.
    let now = due_day() + Duration::days(10);
    let run = promote_due(&s.ctx, &TokioClock, &config(), now, far())
        .await
        .unwrap();
    assert_eq!(run.released, 1);
    assert_eq!(run.scan.buckets_read, 7 * 24 + 1);
    assert_eq!(
        account_of(&s.memory, "recent").await.value.available,
        usd("10.00")
    );
    assert_eq!(
        account_of(&s.memory, "old").await.value.pending,
        usd("10.00")
    );
}

#[tokio::test]
async fn balance_past_its_expiry_and_lapsed_holds_are_expired() {
    let mut program = program();
    program.expiry_days = Some(60);
    let expiring = program.clone();
    let s = setup(program, ScriptedNotifier::default()).await;
    pay(&s.ctx, "4000", "ann", "100.00", t0()).await;
    promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();

    // A checkout holds 4.00 for 15 minutes.
    let mut ann = account_of(&s.memory, "ann").await;
    let hold_at = due_day() + Duration::days(1);
    ann.value
        .place_hold(
            CheckoutId::parse("chk-1").unwrap(),
            usd("4.00"),
            hold_at,
            900,
        )
        .unwrap();
    s.memory
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: ann.value.clone(),
                    expected_version: ann.version,
                    entries: Vec::new(),
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();

    let freed = promote_due(
        &s.ctx,
        &TokioClock,
        &config(),
        hold_at + Duration::hours(1),
        far(),
    )
    .await
    .unwrap();
    assert_eq!((freed.holds_freed, freed.expired_accounts), (1, 1));
    assert!(freed.expired_amount.0.is_empty());
    assert!(account_of(&s.memory, "ann").await.value.holds.is_empty());

    // Released at `due_day()`: it expires 60 days on, at the end of its expiry period.
    let expiry = cashback_core::ledger::Lot::expiry(&expiring, due_day()).unwrap();
    assert!(expiry >= due_day() + Duration::days(60));
    let expired = promote_due(&s.ctx, &TokioClock, &config(), expiry, far())
        .await
        .unwrap();
    assert_eq!(expired.expired_accounts, 1);
    assert_eq!(expired.expired_amount.0["USD"], dec!(10.00));
    let ann = account_of(&s.memory, "ann").await.value;
    assert_eq!(ann.available, usd("0.00"));
    let ledger = ledger_of(&s.memory, "ann").await;
    assert_eq!(ledger.last().unwrap().kind, EntryKind::Expire);
    ann.check(&ledger).unwrap();

    let again = promote_due(
        &s.ctx,
        &TokioClock,
        &config(),
        expiry + Duration::hours(1),
        far(),
    )
    .await
    .unwrap();
    assert_eq!(again.expired_accounts, 0);
}

#[tokio::test]
async fn earned_clawback_and_tier_emails_come_from_order_events_and_the_job_sends_only_ready() {
    let mut program = program();
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(150),
        percent: dec!(15),
    }];
    let s = setup(program, ScriptedNotifier::default()).await;
    pay(&s.ctx, "5000", "ann", "100.00", t0()).await;
    assert_eq!(s.notifier.keys_of("earned"), ["earned:ann:5000"]);
    pay(&s.ctx, "5001", "ann", "100.00", t0()).await;
    assert_eq!(s.notifier.keys_of("tier_upgraded"), ["tier:ann:0"]);
    // The second order refunded in full: its pending cashback goes back.
    let refund = refund("5001", "r1", &[("1", 1)]);
    handle_order_event(&s.ctx, &shop(), &refund, t0() + Duration::days(1))
        .await
        .unwrap();
    let clawbacks = s.notifier.sent_of("clawed_back");
    assert_eq!(clawbacks.len(), 1);
    assert_eq!(clawbacks[0].idempotency_key, "clawback:ann:5001:10.00");

    let run = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    // 5000 earned 10.00; 5001 earned 10.00 (tier set before the order) and
    // lost all of it to the refund of its only line.
    assert_eq!(run.released, 1);
    assert_eq!(run.already_done, 0);
    let mut kinds = s
        .notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.kind.name())
        .collect::<Vec<_>>();
    kinds.sort();
    assert_eq!(
        kinds,
        ["clawed_back", "earned", "earned", "ready", "tier_upgraded"],
        "the job adds only the ready email"
    );
}

#[tokio::test]
async fn a_bounced_ready_email_marks_the_address_suppressed() {
    let notifier = ScriptedNotifier::default();
    notifier
        .suppressed
        .lock()
        .unwrap()
        .insert("c0@example.com".into());
    let s = setup(program(), notifier).await;
    pay_many(&s.ctx, 2, t0()).await;
    let run = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    assert_eq!((run.released, run.emails_sent, run.emails_lost), (2, 1, 1));
    assert!(account_of(&s.memory, "c0").await.value.reminders.suppressed);
    assert!(!account_of(&s.memory, "c1").await.value.reminders.suppressed);
}

/// Gives `customer` clawback debt, written with its entry as the engine would.
async fn owe(memory: &MemoryStore, customer: &str, debt: &str) {
    let mut account = account_of(memory, customer).await;
    account.value.debt = usd(debt);
    let entry = cashback_core::ledger::LedgerEntry {
        entry_id: format!("seed-debt:{customer}"),
        at: t0(),
        kind: EntryKind::Clawback,
        order_id: None,
        available_delta: usd("0"),
        pending_delta: usd("0"),
        debt_delta: usd(debt),
        funding: None,
        note: None,
    };
    memory
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.value.clone(),
                    expected_version: account.version,
                    entries: vec![entry],
                    reminder_due_at: None,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_ready_email_states_what_became_spendable_and_is_not_sent_when_debt_took_it_all() {
    let s = setup(program(), ScriptedNotifier::default()).await;
    // c0 earns 9.00 and owes 9.00; c1 earns 9.00 and owes 4.00.
    pay(&s.ctx, "1000", "c0", "90.00", t0()).await;
    pay(&s.ctx, "1001", "c1", "90.00", t0()).await;
    owe(&s.memory, "c0", "9.00").await;
    owe(&s.memory, "c1", "4.00").await;
    let run = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    assert_eq!(run.released, 2);
    assert_eq!(
        account_of(&s.memory, "c0").await.value.available,
        usd("0.00")
    );
    assert_eq!(
        account_of(&s.memory, "c1").await.value.available,
        usd("5.00")
    );
    let ready = s.notifier.sent_of("ready");
    assert_eq!(ready.len(), 1, "nothing became spendable for c0: {ready:?}");
    assert_eq!(ready[0].idempotency_key, "ready:c1:1001");
    match &ready[0].kind {
        cashback_app::notify::NotificationKind::Ready {
            amount, balance, ..
        } => assert_eq!((*amount, *balance), (usd("5.00"), usd("5.00"))),
        other => panic!("not a ready email: {other:?}"),
    }
    assert!(releases(&s.memory, 2).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_referral_reward_is_released_with_its_referred_order_once() {
    let mut referring = program();
    referring.referral = Some(cashback_core::program::ReferralReward::Fixed { amount: dec!(5) });
    let s = setup(referring, ScriptedNotifier::default()).await;
    // The referrer's first order gives her account its referral code.
    pay(&s.ctx, "900", "ref", "100.00", t0()).await;
    let referrer = account_of(&s.memory, "ref").await.value;
    let code = referrer.referral_code.clone().expect("a referral code");
    assert!(code.display().starts_with("REF-"));
    assert_ne!(Some(&code), referrer.code.as_ref(), "not her balance code");
    // A new customer's first order names it.
    let mut referred = order("901", "new", vec![line("1", "100.00", 1)]);
    referred.referral_code = Some(code);
    handle_order_event(
        &s.ctx,
        &shop(),
        &cashback_core::order::OrderEvent::Paid(referred),
        t0(),
    )
    .await
    .unwrap();
    // Credited off the referred order's transaction, from the change feed.
    s.memory.aggregate_reports().await.unwrap();
    assert_eq!(
        account_of(&s.memory, "ref").await.value.pending,
        usd("15.00")
    );
    let run = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    assert_eq!(run.released, 2, "{run:?}");
    s.memory.aggregate_reports().await.unwrap();
    let referrer = account_of(&s.memory, "ref").await.value;
    assert_eq!(
        (referrer.available, referrer.pending),
        (usd("15.00"), usd("0.00")),
        "her own 10.00 and the 5.00 reward"
    );
    let entries = ledger_of(&s.memory, "ref").await;
    referrer.check(&entries).unwrap();
    let again = promote_due(&s.ctx, &TokioClock, &config(), due_day(), far())
        .await
        .unwrap();
    assert_eq!(again.released, 0);
    s.memory.aggregate_reports().await.unwrap();
    assert_eq!(
        account_of(&s.memory, "ref").await.value.available,
        usd("15.00")
    );
}

/// Files an order with 1.00 pending, due at `due`, straight into the store
/// (as data written by hand or by an older version could be).
async fn file_pending_order(
    memory: &MemoryStore,
    shop: &cashback_core::ids::ShopId,
    order: &str,
    customer: Option<&str>,
    due: DateTime<Utc>,
) {
    use cashback_app::store::OrderWrite;
    use cashback_core::ids::{CustomerId, OrderId};
    use cashback_core::orders::OrderRecord;
    let mut record = OrderRecord::new(OrderId::parse(order).unwrap(), usd("0").currency());
    record.customer = customer.map(|c| CustomerId::parse(c).unwrap());
    record.pending = usd("1.00");
    record.release_at = Some(due);
    memory
        .write(
            shop,
            WriteSet {
                order: Some(OrderWrite {
                    record,
                    expected_version: 0,
                    lines_stored: false,
                    refunds_stored: 0,
                }),
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_corrupt_item_and_an_unknown_shop_are_parked_and_the_checkpoint_moves_on() {
    use cashback_app::jobs::parked::list_parked;
    use cashback_app::store::DueKind;
    use cashback_core::ids::ShopId;

    let s = setup(program(), ScriptedNotifier::default()).await;
    pay_many(&s.ctx, 3, t0()).await;
    // An index item naming no customer (corrupt), and an order of a shop
    // that was never onboarded: both due with the others.
    file_pending_order(&s.memory, &shop(), "broken", None, due_day()).await;
    let ghost = ShopId::parse("ghost.myshopify.com").unwrap();
    file_pending_order(&s.memory, &ghost, "g1", Some("gina"), due_day()).await;

    let at = due_day() + Duration::hours(3);
    let run = promote_due(&s.ctx, &TokioClock, &config(), at, far())
        .await
        .unwrap();
    assert_eq!((run.released, run.parked, run.failed), (3, 2, 0));
    assert_eq!(run.emails_sent, 3);
    assert_eq!(
        run.scan.checkpoint.as_deref(),
        Some(cashback_app::store::due_bucket(due_day()).as_str()),
        "the checkpoint passed the parked items' hour"
    );

    let parked = list_parked(&s.ctx, &shop(), None, 10).await.unwrap();
    assert_eq!(parked.items.len(), 1);
    let broken = &parked.items[0];
    assert_eq!(
        (broken.job.as_str(), broken.kind, broken.attempts),
        (PROMOTE_JOB, DueKind::Release, 1)
    );
    assert_eq!(broken.due.order.as_ref().unwrap().as_str(), "broken");
    assert!(
        broken.reason.contains("names no order or customer"),
        "{}",
        broken.reason
    );
    assert_eq!(broken.parked_at, at);
    let ghosts = list_parked(&s.ctx, &ghost, None, 10).await.unwrap();
    assert_eq!(ghosts.items.len(), 1);
    assert!(
        ghosts.items[0].reason.contains("unknown shop"),
        "{}",
        ghosts.items[0].reason
    );

    // Later items are released by later runs, and the parked ones are not
    // read again: they left the index.
    pay(&s.ctx, "2000", "late", "100.00", t0() + Duration::days(1)).await;
    let later = promote_due(
        &s.ctx,
        &TokioClock,
        &config(),
        at + Duration::days(1),
        far(),
    )
    .await
    .unwrap();
    assert_eq!((later.released, later.parked, later.failed), (1, 0, 0));
    assert_eq!(
        list_parked(&s.ctx, &shop(), None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn an_item_that_keeps_failing_is_parked_after_the_configured_runs() {
    use cashback_app::jobs::parked::list_parked;
    use cashback_core::ids::ShopId;
    use cashback_test_support::fixtures::demo_shop_record;

    let s = setup(program(), ScriptedNotifier::default()).await;
    // A shop without a program yet: that may pass, so it is retried.
    let mut record = demo_shop_record("env:DEMO", String::new(), t0());
    let fresh = ShopId::parse("fresh.myshopify.com").unwrap();
    record.shop = fresh.clone();
    s.memory.create_shop(&record).await.unwrap();
    file_pending_order(&s.memory, &fresh, "f1", Some("fay"), due_day()).await;

    let config = JobConfig {
        max_item_failures: 3,
        ..config()
    };
    let mut at = due_day() + Duration::hours(3);
    for run in 1..=2 {
        let outcome = promote_due(&s.ctx, &TokioClock, &config, at, far())
            .await
            .unwrap();
        assert_eq!((outcome.failed, outcome.parked), (1, 0), "run {run}");
        assert_eq!(
            outcome.scan.checkpoint,
            Some(cashback_app::store::due_bucket(
                due_day() - Duration::hours(1)
            )),
            "run {run}: held back before the failing item's hour"
        );
        at += Duration::minutes(15);
    }
    let third = promote_due(&s.ctx, &TokioClock, &config, at, far())
        .await
        .unwrap();
    assert_eq!((third.failed, third.parked), (0, 1));
    assert_eq!(
        third.scan.checkpoint,
        Some(cashback_app::store::due_bucket(due_day()))
    );
    let parked = list_parked(&s.ctx, &fresh, None, 10).await.unwrap();
    assert_eq!(parked.items[0].attempts, 3);
    assert!(
        parked.items[0].reason.contains("no cashback program"),
        "{}",
        parked.items[0].reason
    );
}

/// Counts store calls in flight at once (each yields first, so concurrent
/// items interleave).
#[derive(Default)]
struct Gauge {
    now: std::sync::atomic::AtomicU64,
    most: std::sync::atomic::AtomicU64,
}

impl cashback_store::intercept::Interceptor for Gauge {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: cashback_store::intercept::Call,
        run: cashback_store::intercept::Pending<'a, T>,
    ) -> cashback_store::intercept::Pending<'a, T> {
        use std::sync::atomic::Ordering::SeqCst;
        if call != cashback_store::intercept::Call::Read {
            return run;
        }
        Box::pin(async move {
            let now = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            tokio::task::yield_now().await;
            let result = run.await;
            self.now.fetch_sub(1, SeqCst);
            result
        })
    }
}

#[tokio::test]
async fn many_accounts_are_released_at_once_never_one_account_twice() {
    use cashback_store::intercept::Intercepted;
    let memory = Arc::new(MemoryStore::new());
    let gauged = Arc::new(Intercepted::new(memory.clone(), Gauge::default()));
    let notifier = Arc::new(ScriptedNotifier::default());
    let ctx = jobs_context(&memory, gauged.clone(), notifier.clone(), &program()).await;
    // 60 customers with one order each, and c0 with 12 more: 72 due at once.
    pay_many(&ctx, 60, t0()).await;
    for n in 0..12 {
        pay(&ctx, &format!("{}", 5000 + n), "c0", "100.00", t0()).await;
    }
    let before = memory.request_counts();
    let config = JobConfig {
        concurrency: 16,
        page_size: 10,
        ..config()
    };
    let run = promote_due(&ctx, &TokioClock, &config, due_day(), far())
        .await
        .unwrap();
    let after = memory.request_counts();
    assert_eq!((run.released, run.already_done, run.failed), (72, 0, 0));
    assert_eq!(run.emails_sent, 72);
    assert!(run.is_done());
    let most = gauged
        .interceptor()
        .most
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(most > 1, "items were handled one at a time ({most})");
    // Not one write lost a race: no two items of one account (c0's 13
    // orders) were ever handled at once.
    assert_eq!(
        after.writes - before.writes,
        72 + 72,
        "one per release and email"
    );
    let by_order = releases(&memory, 60).await;
    assert_eq!(by_order.len(), 72);
    assert!(by_order.values().all(|n| *n == 1), "{by_order:?}");
    assert_eq!(
        account_of(&memory, "c0").await.value.available,
        usd("130.00")
    );
    let keys = notifier.keys_of("ready");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (72, 72));
}

#[tokio::test]
async fn ready_emails_are_paced_apart_from_the_releases_and_each_sent_once() {
    let clock = FakeClock::new();
    let s = setup(program(), ScriptedNotifier::with_clock(clock.clone())).await;
    pay_many(&s.ctx, 23, t0()).await;
    // Only the job's sends count (the orders' "earned" emails are not paced here).
    s.notifier.attempts.lock().unwrap().clear();
    let config = JobConfig {
        send_rate: Some(5.0),
        ..config()
    };
    let run = promote_due(
        &s.ctx,
        clock.as_ref(),
        &config,
        due_day(),
        clock.deadline_in(StdDuration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!(
        (run.released, run.emails_sent, run.emails_lost),
        (23, 23, 0)
    );
    let attempts = s.notifier.attempts.lock().unwrap().clone();
    let mut per_second: std::collections::BTreeMap<u64, u32> = Default::default();
    for at in &attempts {
        *per_second.entry(at.as_secs()).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n <= 5), "{per_second:?}");
    assert!(attempts.last().unwrap().as_secs_f64() >= 4.0);
    // A later run finds nothing left to send.
    let again = promote_due(
        &s.ctx,
        clock.as_ref(),
        &config,
        due_day() + Duration::minutes(15),
        clock.deadline_in(StdDuration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!((again.released, again.emails_sent), (0, 0));
    let keys = s.notifier.keys_of("ready");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (23, 23));
}
