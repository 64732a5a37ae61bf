//! The send-reminders job on the in-memory store: a 7-position series over
//! simulated weeks, restarts, stops, at most once under overlapping runs,
//! the send rate on a simulated clock, throttling, bounces and deadlines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use crate::support::jobs::*;
use crate::support::*;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::{reminder_key, send_reminders, RemindersOutcome};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::NotificationKind;
use cashback_app::store::{AccountWrite, Store, WriteSet};
use cashback_app::Context;
use cashback_core::ids::CustomerId;
use cashback_core::program::{Program, ReminderPosition};
use cashback_core::reminders::next_reminder;
use cashback_store::MemoryStore;

/// Offsets in days of positions 0..6; position 3 is disabled.
const OFFSETS: [u32; 7] = [0, 2, 5, 9, 14, 21, 30];

fn series_program() -> Program {
    let mut program = program();
    program.reminders = OFFSETS
        .iter()
        .enumerate()
        .map(|(position, offset_days)| ReminderPosition {
            position: position as u8,
            enabled: position != 3,
            offset_days: *offset_days,
            subject: format!("Reminder {position}: your credit is waiting"),
            preview_text: String::new(),
        })
        .collect();
    program
}

/// When an order paid at t0 is released.
fn released_at() -> DateTime<Utc> {
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
    ctx: Context,
}

async fn setup(notifier: ScriptedNotifier) -> Setup {
    let memory = Arc::new(MemoryStore::new());
    let notifier = Arc::new(notifier);
    let ctx = jobs_context(&memory, memory.clone(), notifier.clone(), &series_program()).await;
    Setup {
        memory,
        notifier,
        ctx,
    }
}

/// Both jobs at `at`, as their schedules would run them.
async fn tick(ctx: &Context, at: DateTime<Utc>) -> RemindersOutcome {
    promote_due(ctx, &TokioClock, &config(), at, far())
        .await
        .unwrap();
    send_reminders(ctx, &TokioClock, &config(), at, far())
        .await
        .unwrap()
}

/// Runs both jobs every 6 hours from `from` for `days`; returns, per
/// customer, the (day since `origin`, position) of every reminder sent.
async fn simulate(
    s: &Setup,
    origin: DateTime<Utc>,
    from: DateTime<Utc>,
    days: i64,
) -> BTreeMap<String, Vec<(i64, u8)>> {
    let mut seen = s.notifier.sent_of("reminder").len();
    let mut sent: BTreeMap<String, Vec<(i64, u8)>> = BTreeMap::new();
    let mut at = from;
    while at <= from + Duration::days(days) {
        tick(&s.ctx, at).await;
        let all = s.notifier.sent_of("reminder");
        for notification in &all[seen..] {
            let NotificationKind::Reminder { position, .. } = notification.kind else {
                unreachable!()
            };
            let customer = notification
                .to
                .as_str()
                .split('@')
                .next()
                .unwrap()
                .to_string();
            sent.entry(customer)
                .or_default()
                .push(((at - origin).num_days(), position));
        }
        seen = all.len();
        at += Duration::hours(6);
    }
    sent
}

async fn write_account(
    memory: &MemoryStore,
    customer: &str,
    change: impl FnOnce(&mut cashback_core::ledger::Account) -> Vec<cashback_core::ledger::LedgerEntry>,
    reminder_due_at: impl FnOnce(&cashback_core::ledger::Account) -> Option<DateTime<Utc>>,
) {
    let mut account = account_of(memory, customer).await;
    let entries = change(&mut account.value);
    let due = reminder_due_at(&account.value);
    memory
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account: account.value,
                    expected_version: account.version,
                    entries,
                    reminder_due_at: due,
                    code_change: None,
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_seven_position_series_over_simulated_weeks_skips_the_disabled_position() {
    let s = setup(ScriptedNotifier::default()).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    let sent = simulate(&s, released_at(), released_at(), 40).await;
    assert_eq!(
        sent["ann"],
        [(0, 0), (2, 1), (5, 2), (14, 4), (21, 5), (30, 6)]
    );
    let reminders = s.notifier.sent_of("reminder");
    let ann = account_of(&s.memory, "ann").await.value;
    match &reminders[0].kind {
        NotificationKind::Reminder { balance, code, .. } => {
            assert_eq!(*balance, usd("10.00"));
            assert_eq!(Some(code), ann.code.as_ref());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reminders[0].branding.subject.as_deref(),
        Some("Reminder 0: your credit is waiting")
    );
    assert!(reminders[0]
        .unsubscribe_url
        .as_deref()
        .is_some_and(|url| url.contains("/customers/ann/unsubscribe?sig=")));
    assert_eq!(
        reminders[0].idempotency_key,
        reminder_key(&CustomerId::parse("ann").unwrap(), released_at(), 0)
    );
    assert_eq!(
        next_reminder(&series_program(), &ann),
        None,
        "the series ended"
    );
}

#[tokio::test]
async fn a_new_release_restarts_the_series_at_position_zero() {
    let s = setup(ScriptedNotifier::default()).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    pay(&s.ctx, "2", "ann", "50.00", t0() + Duration::days(7)).await;
    let sent = simulate(&s, released_at(), released_at(), 16).await;
    // The second order is released on day 7: its series starts again at 0.
    assert_eq!(
        sent["ann"],
        [(0, 0), (2, 1), (5, 2), (7, 0), (9, 1), (12, 2)]
    );
    let keys = s.notifier.keys_of("reminder");
    assert_eq!(
        keys.len(),
        6,
        "two series, three positions each, distinct keys"
    );
}

#[tokio::test]
async fn the_series_stops_at_zero_balance_and_on_unsubscribe() {
    let s = setup(ScriptedNotifier::default()).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    pay(&s.ctx, "2", "bob", "100.00", t0()).await;
    simulate(&s, released_at(), released_at(), 0).await;
    assert_eq!(
        s.notifier.sent_of("reminder").len(),
        2,
        "position 0 to both"
    );

    // Ann spends it all; Bob unsubscribes, and the index is left stale, so
    // the job itself must see that nothing is due.
    let program = series_program();
    let at = released_at() + Duration::days(1);
    write_account(
        &s.memory,
        "ann",
        |account| {
            let all = account.available.negated();
            account
                .adjust(all, "spent in store", "spent-1", &program, at)
                .unwrap()
                .entries
        },
        |account| next_reminder(&program, account).map(|d| d.due_at),
    )
    .await;
    write_account(
        &s.memory,
        "bob",
        |account| {
            account.reminders.unsubscribed = true;
            Vec::new()
        },
        |_| Some(released_at() + Duration::days(2)),
    )
    .await;
    let sent = simulate(&s, released_at(), at, 40).await;
    assert!(sent.is_empty(), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_send_each_position_at_most_once() {
    let memory = Arc::new(MemoryStore::new());
    let stalling = stalling_store(memory.clone());
    let notifier = Arc::new(ScriptedNotifier::default());
    let ctx = jobs_context(
        &memory,
        stalling.clone(),
        notifier.clone(),
        &series_program(),
    )
    .await;
    for i in 0..30 {
        pay(&ctx, &format!("{i}"), &format!("c{i}"), "100.00", t0()).await;
    }
    promote_due(&ctx, &TokioClock, &config(), released_at(), far())
        .await
        .unwrap();
    for day in [0, 2] {
        let at = released_at() + Duration::days(day);
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    send_reminders(&ctx, &TokioClock, &config(), at, far())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut sent = 0;
        for run in runs {
            sent += run.await.unwrap().sent;
        }
        assert_eq!(sent, 30, "day {day}");
    }
    let keys = notifier.keys_of("reminder");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (60, 60));
}

/// 23 customers with a reminder due at `released_at()`, their ready emails
/// already sent.
async fn due_reminders(s: &Setup, customers: usize) {
    for i in 0..customers {
        pay(&s.ctx, &format!("{i}"), &format!("c{i}"), "100.00", t0()).await;
    }
    promote_due(&s.ctx, &TokioClock, &config(), released_at(), far())
        .await
        .unwrap();
    s.notifier.attempts.lock().unwrap().clear();
}

#[tokio::test]
async fn reminders_go_out_no_faster_than_the_configured_rate() {
    let clock = FakeClock::new();
    let s = setup(ScriptedNotifier::with_clock(clock.clone())).await;
    due_reminders(&s, 23).await;
    let config = JobConfig {
        send_rate: Some(5.0),
        ..config()
    };
    let run = send_reminders(
        &s.ctx,
        clock.as_ref(),
        &config,
        released_at(),
        clock.deadline_in(StdDuration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!(run.sent, 23);
    let attempts = s.notifier.attempts.lock().unwrap().clone();
    let mut per_second: BTreeMap<u64, u32> = BTreeMap::new();
    for at in &attempts {
        *per_second.entry(at.as_secs()).or_default() += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= 5),
        "more than 5 in a second: {per_second:?}"
    );
    // 23 sends at 5 a second need more than 4 simulated seconds.
    assert!(attempts.last().unwrap().as_secs_f64() >= 4.0);
}

#[tokio::test]
async fn a_throttled_reminder_is_retried_in_the_same_run_and_sent_once() {
    let clock = FakeClock::new();
    let s = setup(ScriptedNotifier::with_clock(clock.clone())).await;
    due_reminders(&s, 10).await;
    s.notifier
        .throttle_next
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let config = JobConfig {
        send_rate: Some(10.0),
        ..config()
    };
    let run = send_reminders(
        &s.ctx,
        clock.as_ref(),
        &config,
        released_at(),
        clock.deadline_in(StdDuration::from_secs(600)),
    )
    .await
    .unwrap();
    assert_eq!((run.sent, run.throttled, run.lost), (10, 3, 0));
    let keys = s.notifier.keys_of("reminder");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!((keys.len(), unique.len()), (10, 10));
    // After throttling the job slows down: no second saw more than 10.
    let attempts = s.notifier.attempts.lock().unwrap().clone();
    let mut per_second: BTreeMap<u64, u32> = BTreeMap::new();
    for at in &attempts {
        *per_second.entry(at.as_secs()).or_default() += 1;
    }
    assert!(per_second.values().all(|n| *n <= 10), "{per_second:?}");
}

#[tokio::test]
async fn a_reminder_throttled_until_the_deadline_is_lost_never_sent_twice() {
    let clock = FakeClock::new();
    let s = setup(ScriptedNotifier::with_clock(clock.clone())).await;
    due_reminders(&s, 1).await;
    s.notifier
        .throttle_next
        .store(1_000, std::sync::atomic::Ordering::SeqCst);
    let config = JobConfig {
        send_rate: Some(1.0),
        ..config()
    };
    let run = send_reminders(
        &s.ctx,
        clock.as_ref(),
        &config,
        released_at(),
        clock.deadline_in(StdDuration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!((run.sent, run.lost), (0, 1));
    s.notifier
        .throttle_next
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let again = send_reminders(&s.ctx, clock.as_ref(), &config, released_at(), far())
        .await
        .unwrap();
    assert_eq!(again.sent, 0, "the position was recorded: at most once");
}

#[tokio::test]
async fn a_suppressed_address_stops_its_series() {
    let s = setup(ScriptedNotifier::default()).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    pay(&s.ctx, "2", "bob", "100.00", t0()).await;
    promote_due(&s.ctx, &TokioClock, &config(), released_at(), far())
        .await
        .unwrap();
    s.notifier
        .suppressed
        .lock()
        .unwrap()
        .insert("ann@example.com".into());
    let run = send_reminders(&s.ctx, &TokioClock, &config(), released_at(), far())
        .await
        .unwrap();
    assert_eq!((run.sent, run.suppressed), (1, 1));
    assert!(
        account_of(&s.memory, "ann")
            .await
            .value
            .reminders
            .suppressed
    );
    s.notifier.suppressed.lock().unwrap().clear();
    let sent = simulate(&s, released_at(), released_at() + Duration::days(1), 10).await;
    assert!(!sent.contains_key("ann"), "{sent:?}");
    assert_eq!(sent["bob"], [(2, 1), (5, 2)]);
}

#[tokio::test]
async fn a_run_cut_off_by_its_deadline_resumes_on_the_next_run() {
    let clock = FakeClock::new();
    let s = setup(ScriptedNotifier::with_clock(clock.clone())).await;
    due_reminders(&s, 25).await;
    let config = JobConfig {
        send_rate: Some(1.0),
        ..config()
    };
    let first = send_reminders(
        &s.ctx,
        clock.as_ref(),
        &config,
        released_at(),
        clock.deadline_in(StdDuration::from_secs(10)),
    )
    .await
    .unwrap();
    assert!(first.scan.deadline_reached);
    assert!(first.sent >= 9 && first.sent <= 11, "{first:?}");
    let second = send_reminders(
        &s.ctx,
        clock.as_ref(),
        &config,
        released_at() + Duration::hours(1),
        clock.deadline_in(StdDuration::from_secs(600)),
    )
    .await
    .unwrap();
    assert!(second.is_done());
    assert_eq!(first.sent + second.sent, 25);
    assert_eq!(first.lost + second.lost, 0);
    let keys = s.notifier.keys_of("reminder");
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(unique.len(), 25);
}

#[tokio::test]
async fn the_resent_email_is_the_last_one_the_customer_was_sent() {
    use cashback_app::resend::{resend_last_email, ResendOutcome};
    let s = setup(ScriptedNotifier::default()).await;
    let ann = CustomerId::parse("ann").unwrap();
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    let earned = s.notifier.sent_of("earned");
    assert_eq!(earned.len(), 1);
    // After the order: its "earned" email, as it was sent.
    let outcome = resend_last_email(&s.ctx, &shop(), &ann, "dashboard:owner", t0())
        .await
        .unwrap();
    assert_eq!(outcome, ResendOutcome::Sent { kind: "earned" });
    let again = s.notifier.sent_of("earned");
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].kind, earned[0].kind);
    assert_eq!(again[1].branding, earned[0].branding);
    assert_ne!(again[1].idempotency_key, earned[0].idempotency_key);

    // Released, then reminder 0 of the series: the reminder is the last.
    tick(&s.ctx, released_at()).await;
    assert_eq!(s.notifier.sent_of("ready").len(), 1);
    let reminders = s.notifier.sent_of("reminder");
    assert_eq!(reminders.len(), 1);
    let later = released_at() + Duration::hours(1);
    let outcome = resend_last_email(&s.ctx, &shop(), &ann, "dashboard:owner", later)
        .await
        .unwrap();
    assert_eq!(outcome, ResendOutcome::Sent { kind: "reminder" });
    let again = s.notifier.sent_of("reminder");
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].kind, reminders[0].kind);
    assert_eq!(again[1].branding.subject, reminders[0].branding.subject);
    // At once again: refused, nothing sent.
    let outcome = resend_last_email(&s.ctx, &shop(), &ann, "dashboard:owner", later)
        .await
        .unwrap();
    assert!(matches!(outcome, ResendOutcome::TooSoon { .. }));
    assert_eq!(s.notifier.sent_of("reminder").len(), 2);
}

#[tokio::test]
async fn a_klaviyo_only_shop_resends_nothing_through_ses() {
    use cashback_app::resend::{resend_last_email, ResendOutcome};
    let s = setup(ScriptedNotifier::default()).await;
    let ann = CustomerId::parse("ann").unwrap();
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    assert_eq!(s.notifier.sent_of("earned").len(), 1);
    // The shop moves its emails to Klaviyo flows.
    let current = s.ctx.store.get_program(&shop()).await.unwrap().unwrap();
    let mut program = current.value.clone();
    program.email_channel = cashback_core::program::EmailChannel::Klaviyo;
    s.ctx
        .store
        .put_program(&shop(), &program, current.version, t0())
        .await
        .unwrap();
    s.ctx.invalidate(&shop());
    let outcome = resend_last_email(&s.ctx, &shop(), &ann, "dashboard:owner", t0())
        .await
        .unwrap();
    assert_eq!(outcome, ResendOutcome::SentByKlaviyo);
    assert_eq!(s.notifier.sent_of("earned").len(), 1, "nothing sent");
}

#[tokio::test]
async fn credit_restored_after_the_checkpoint_passed_still_gets_its_reminders() {
    use cashback_app::events::handle_order_event;
    use cashback_core::order::{AppliedCode, DiscountKind, OrderEvent};

    let s = setup(ScriptedNotifier::default()).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    let sent = simulate(&s, released_at(), released_at(), 0).await;
    assert_eq!(sent["ann"], [(0, 0)]);

    // Day 1: Ann spends her 10.00 with her code; her series stops.
    let spent_at = released_at() + Duration::days(1);
    let code = account_of(&s.memory, "ann").await.value.code.unwrap();
    let mut spending = order("2", "ann", vec![line("1", "50.00", 1)]);
    spending.discount_codes.push(AppliedCode {
        code,
        amount: usd("10.00"),
        kind: DiscountKind::Order,
    });
    spending.occurred_at = spent_at;
    handle_order_event(
        &s.ctx,
        &shop(),
        &OrderEvent::Paid(spending.clone()),
        spent_at,
    )
    .await
    .unwrap();
    assert!(!account_of(&s.memory, "ann")
        .await
        .value
        .available
        .is_positive());
    // The jobs run for 19 days: the reminder job's checkpoint passes the
    // hours of her next positions (day 2, 5 and 14 of the series).
    let quiet = simulate(&s, released_at(), spent_at + Duration::hours(6), 18).await;
    assert!(quiet.is_empty(), "{quiet:?}");

    // Day 20: the spending order is cancelled and her 10.00 restored. Her
    // next position's time (day 2) is long past; it must still be found.
    let restored_at = released_at() + Duration::days(20);
    spending.occurred_at = restored_at;
    handle_order_event(
        &s.ctx,
        &shop(),
        &OrderEvent::Cancelled(spending),
        restored_at,
    )
    .await
    .unwrap();
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("10.00")
    );
    let sent = simulate(&s, released_at(), restored_at, 20).await;
    // The latest position already due (14 days) at once, then the rest on time.
    assert_eq!(sent["ann"], [(20, 4), (21, 5), (30, 6)]);
}
