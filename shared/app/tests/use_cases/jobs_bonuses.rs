//! The bonus job on the in-memory store: the worked examples of
//! docs/bonuses.md end to end (a birthday set by the customer, credited on
//! its day with its own email and shown apart in the reports; a leap-day
//! birthday; a customer with no birthday; an order the day before a
//! win-back; runs repeated at the same instant and overlapping; a missed
//! day caught up; a milestone announced once).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use rust_decimal_macros::dec;

use crate::support::jobs::*;
use crate::support::*;
use cashback_app::bonuses::{set_birthday, BirthdayOutcome};
use cashback_app::events::handle_order_event;
use cashback_app::jobs::bonuses::{send_bonuses, BonusesOutcome};
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::NotificationKind;
use cashback_app::store::{Metric, Store};
use cashback_app::{AppError, Context};
use cashback_core::bonuses::{
    Birthday, BirthdayBonus, BirthdaySource, BonusKind, Bonuses, Milestone, WinBack, WinBackReward,
};
use cashback_core::ids::CustomerId;
use cashback_core::ledger::EntryKind;
use cashback_core::program::{Issuance, Program};
use cashback_store::MemoryStore;

fn bonus_program() -> Program {
    let mut program = program();
    program.bonuses = Bonuses {
        birthday: Some(BirthdayBonus {
            amount: dec!(5),
            issuance: Issuance::Immediate,
            days_before: 0,
        }),
        win_back: Some(WinBack {
            after_days: 90,
            reward: WinBackReward::Amount { amount: dec!(7) },
            once_per_days: 180,
        }),
        milestones: vec![Milestone {
            lifetime_spend: dec!(500),
            amount: None,
        }],
        ..Bonuses::default()
    };
    program.validate().unwrap();
    program
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

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

struct Setup {
    memory: Arc<MemoryStore>,
    notifier: Arc<ScriptedNotifier>,
    ctx: Context,
}

async fn setup() -> Setup {
    setup_with(bonus_program()).await
}

/// The birthday bonus alone: nothing else puts the account in the index
/// before its birthday.
async fn birthday_only() -> Setup {
    let mut program = bonus_program();
    program.bonuses.win_back = None;
    program.bonuses.milestones.clear();
    setup_with(program).await
}

async fn setup_with(program: Program) -> Setup {
    let memory = Arc::new(MemoryStore::new());
    let notifier = Arc::new(ScriptedNotifier::default());
    let ctx = jobs_context(&memory, memory.clone(), notifier.clone(), &program).await;
    Setup {
        memory,
        notifier,
        ctx,
    }
}

async fn run(s: &Setup, now: DateTime<Utc>) -> BonusesOutcome {
    send_bonuses(&s.ctx, &TokioClock, &config(), now, far())
        .await
        .unwrap()
}

/// Runs the release job at `now`: an order counts toward the birthday,
/// anniversary and win-back once its cashback is released (30 days on).
async fn release(s: &Setup, now: DateTime<Utc>) {
    promote_due(&s.ctx, &TokioClock, &config(), now, far())
        .await
        .unwrap();
}

/// Past the first order's release (`t0()` + 30 days).
fn released() -> DateTime<Utc> {
    t0() + Duration::days(30) + Duration::hours(1)
}

fn ann() -> CustomerId {
    CustomerId::parse("ann").unwrap()
}

async fn birthday(s: &Setup, month: u32, day: u32, now: DateTime<Utc>) {
    let outcome = set_birthday(
        &s.ctx,
        &shop(),
        &ann(),
        Birthday::new(month, day).unwrap(),
        BirthdaySource::Customer,
        now,
    )
    .await
    .unwrap();
    assert_eq!(outcome, BirthdayOutcome::Changed);
}

#[tokio::test]
async fn a_birthday_is_credited_on_its_day_once_with_its_own_email_and_reported_apart() {
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    birthday(&s, 3, 14, t0() + Duration::hours(1)).await;
    // The customer gives it once; the shop may change it.
    let again = set_birthday(
        &s.ctx,
        &shop(),
        &ann(),
        Birthday::new(4, 1).unwrap(),
        BirthdaySource::Customer,
        t0(),
    )
    .await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");
    release(&s, released()).await;

    assert_eq!(run(&s, at(2027, 3, 13, 23)).await.credited, 0);
    let day = at(2027, 3, 14, 0) + Duration::minutes(5);
    let first = run(&s, day).await;
    assert_eq!((first.credited, first.emails_sent), (1, 1), "{first:?}");
    // Repeated at the same instant: nothing more.
    let repeated = run(&s, day).await;
    assert_eq!((repeated.credited, repeated.emails_sent), (0, 0));

    let emails = s.notifier.sent_of("bonus");
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].idempotency_key, "bonus:ann:birthday:2027");
    match &emails[0].kind {
        NotificationKind::Bonus { bonus, amount, .. } => {
            assert_eq!(*bonus, BonusKind::Birthday);
            assert_eq!(*amount, Some(usd("5.00")));
        }
        other => panic!("{other:?}"),
    }
    let account = account_of(&s.memory, "ann").await.value;
    assert_eq!(
        account.available,
        usd("15.00"),
        "the order's released 10.00 and the bonus"
    );
    let ledger = ledger_of(&s.memory, "ann").await;
    account.check(&ledger).unwrap();
    let bonus = ledger.iter().find(|e| e.kind == EntryKind::Bonus).unwrap();
    assert_eq!(bonus.funding.unwrap().merchant, usd("5.00"));

    cashback_test_support::reports::catch_up(&s.memory).await;
    let aggregates = s
        .memory
        .aggregates(&shop(), t0().date_naive(), day.date_naive())
        .await
        .unwrap();
    let mut figures = cashback_app::store::DayFigures::default();
    for day in aggregates.days.values() {
        figures.add(day);
    }
    assert_eq!(figures.bonus.get(Metric::Birthday), dec!(5));
    assert_eq!(figures.earn.get(Metric::Birthday), dec!(0));
    assert_eq!(figures.earn.pending, dec!(10), "earned cashback apart");

    let report = cashback_app::admin::report(&s.ctx, &shop(), t0().date_naive(), day.date_naive())
        .await
        .unwrap();
    assert_eq!(report.bonuses.birthday, dec!(5.00));
    assert_eq!(report.bonuses.total, dec!(5.00));
    assert_eq!(
        report.issued.total,
        dec!(10.00),
        "issued is earned cashback only"
    );
    assert_eq!(report.liability.total, dec!(15.00));
}

#[tokio::test]
async fn a_birthday_the_customer_sets_for_tomorrow_pays_next_year_not_tomorrow() {
    // The attack: an account with a released order gives tomorrow as its
    // birthday and collects the bonus the next day.
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    release(&s, released()).await;
    let tomorrow = (released() + Duration::days(1)).date_naive();
    birthday(&s, tomorrow.month(), tomorrow.day(), released()).await;
    let next_day = run(&s, at(2026, 12, 24, 1)).await;
    assert_eq!(next_day.credited, 0, "{next_day:?}");
    let mut day = released();
    while day < released() + Duration::days(40) {
        assert_eq!(run(&s, day).await.credited, 0, "{day}");
        day += Duration::days(1);
    }
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("2.00"),
        "the order's cashback only"
    );
    // A year on, the birthday pays as any other.
    assert_eq!(run(&s, at(2027, 12, 24, 1)).await.credited, 1);
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:birthday:2027".to_string()]
    );
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("7.00")
    );
}

#[tokio::test]
async fn a_birthday_the_merchant_sets_for_tomorrow_pays_tomorrow() {
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    set_birthday(
        &s.ctx,
        &shop(),
        &ann(),
        Birthday::new(11, 24).unwrap(),
        BirthdaySource::Merchant,
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(run(&s, at(2026, 11, 24, 1)).await.credited, 1);
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:birthday:2026".to_string()]
    );
}

#[tokio::test]
async fn a_customer_without_an_earning_order_cannot_give_a_birthday() {
    let s = birthday_only().await;
    // An account that no order earned for (opened by an order never paid).
    let account = cashback_core::ledger::Account::open(shop(), ann(), usd("0").currency());
    s.memory
        .write(
            &shop(),
            cashback_app::store::WriteSet::account(cashback_app::store::AccountWrite::new(
                &bonus_program(),
                account,
                0,
            )),
        )
        .await
        .unwrap();
    let refused = set_birthday(
        &s.ctx,
        &shop(),
        &ann(),
        Birthday::new(11, 30).unwrap(),
        BirthdaySource::Customer,
        t0(),
    )
    .await;
    assert!(matches!(refused, Err(AppError::Conflict(_))), "{refused:?}");
    let account = account_of(&s.memory, "ann").await.value;
    assert_eq!((account.bonus.birthday, account.bonus.due_at), (None, None));
    assert_eq!(run(&s, at(2026, 11, 30, 1)).await.credited, 0);
}

#[tokio::test]
async fn a_milestone_bought_and_returned_before_release_pays_nothing() {
    // The attack: cross a milestone, let the job run, return everything
    // before the order's cashback is released.
    let mut program = bonus_program();
    program.bonuses.win_back = None;
    program.bonuses.milestones = vec![Milestone {
        lifetime_spend: dec!(500),
        amount: Some(dec!(20)),
    }];
    let s = setup_with(program).await;
    pay(&s.ctx, "1", "ann", "500.00", t0()).await;
    let ran = run(&s, t0() + Duration::hours(1)).await;
    assert_eq!((ran.credited, ran.announced), (0, 0), "{ran:?}");
    let ran = run(&s, t0() + Duration::days(10)).await;
    assert_eq!((ran.credited, ran.announced), (0, 0), "{ran:?}");
    handle_order_event(
        &s.ctx,
        &shop(),
        &refund("1", "r1", &[("1", 1)]),
        t0() + Duration::days(20),
    )
    .await
    .unwrap();
    // Past the release: the job, the release, the job again.
    let mut day = t0() + Duration::days(20);
    while day < t0() + Duration::days(40) {
        let ran = run(&s, day).await;
        assert_eq!((ran.credited, ran.announced), (0, 0), "{day} {ran:?}");
        promote_due(&s.ctx, &TokioClock, &config(), day, far())
            .await
            .unwrap();
        day += Duration::hours(12);
    }
    let account = account_of(&s.memory, "ann").await.value;
    assert_eq!(account.available, usd("0.00"));
    assert_eq!(account.spendable(), usd("0.00"));
    assert!(s.notifier.sent_of("bonus").is_empty());
    let ledger = ledger_of(&s.memory, "ann").await;
    assert!(ledger.iter().all(|e| e.kind != EntryKind::Bonus));
}

#[tokio::test]
async fn a_milestone_pays_once_the_crossing_orders_cashback_is_released() {
    let mut program = bonus_program();
    program.bonuses.win_back = None;
    program.bonuses.milestones = vec![Milestone {
        lifetime_spend: dec!(500),
        amount: Some(dec!(20)),
    }];
    let s = setup_with(program).await;
    pay(&s.ctx, "1", "ann", "500.00", t0()).await;
    assert_eq!(run(&s, t0() + Duration::days(29)).await.credited, 0);
    let paid = run(&s, t0() + Duration::days(30) + Duration::hours(1)).await;
    assert_eq!((paid.credited, paid.emails_sent), (1, 1), "{paid:?}");
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("20.00")
    );
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:milestone:500".to_string()]
    );
}

#[tokio::test]
async fn a_leap_day_birthday_is_credited_on_the_28th_in_a_common_year() {
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    birthday(&s, 2, 29, t0()).await;
    release(&s, released()).await;
    assert_eq!(run(&s, at(2027, 2, 27, 12)).await.credited, 0);
    assert_eq!(run(&s, at(2027, 2, 28, 1)).await.credited, 1);
    assert_eq!(run(&s, at(2027, 3, 1, 1)).await.credited, 0);
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:birthday:2027".to_string()]
    );
}

#[tokio::test]
async fn a_customer_with_no_birthday_gets_no_birthday_bonus() {
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    // Every day for the year; only the anniversary visit finds the account.
    let mut credited = 0;
    let mut day = t0();
    while day < t0() + Duration::days(80) {
        credited += run(&s, day).await.credited;
        day += Duration::days(1);
    }
    assert_eq!(credited, 0);
    assert!(s.notifier.sent_of("bonus").is_empty());
}

#[tokio::test]
async fn a_missed_day_is_caught_up_by_the_next_run() {
    let s = birthday_only().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    birthday(&s, 12, 31, t0()).await;
    release(&s, released()).await;
    assert_eq!(run(&s, at(2026, 12, 30, 6)).await.credited, 0);
    // No run from the 30th to 2 January: the run of the 2nd pays the 31st.
    let late = run(&s, at(2027, 1, 2, 6)).await;
    assert_eq!(late.credited, 1, "{late:?}");
    assert_eq!(run(&s, at(2027, 1, 2, 7)).await.credited, 0);
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:birthday:2026".to_string()]
    );
}

#[tokio::test]
async fn an_order_the_day_before_the_win_back_is_due_means_no_win_back_then() {
    let s = setup().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    release(&s, released()).await;
    pay(&s.ctx, "2", "ann", "20.00", t0() + Duration::days(89)).await;
    let due_day = run(&s, t0() + Duration::days(90) + Duration::hours(1)).await;
    assert_eq!(due_day.credited, 0);
    let won_back = run(&s, t0() + Duration::days(179) + Duration::hours(1)).await;
    assert_eq!(won_back.credited, 1, "{won_back:?}");
    let keys = s.notifier.keys_of("bonus");
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("bonus:ann:win_back:"), "{keys:?}");
    // The first order's released 2.00 and the win-back; the second's
    // cashback is still pending.
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("9.00")
    );
}

#[tokio::test]
async fn overlapping_runs_at_the_same_instant_credit_once() {
    let s = setup().await;
    for customer in ["ann", "bob", "cy"] {
        pay(&s.ctx, customer, customer, "20.00", t0()).await;
        set_birthday(
            &s.ctx,
            &shop(),
            &CustomerId::parse(customer).unwrap(),
            Birthday::new(12, 1).unwrap(),
            BirthdaySource::Merchant,
            t0(),
        )
        .await
        .unwrap();
    }
    let now = at(2026, 12, 1, 2);
    let (a, b) = tokio::join!(run(&s, now), run(&s, now));
    assert_eq!(a.credited + b.credited, 3, "{a:?} {b:?}");
    assert_eq!(s.notifier.sent_of("bonus").len(), 3);
    for customer in ["ann", "bob", "cy"] {
        let account = account_of(&s.memory, customer).await.value;
        assert_eq!(account.available, usd("5.00"));
        account
            .check(&ledger_of(&s.memory, customer).await)
            .unwrap();
    }
}

#[tokio::test]
async fn a_milestone_is_announced_once_without_an_amount() {
    let s = setup().await;
    pay(&s.ctx, "1", "ann", "450.00", t0()).await;
    assert_eq!(run(&s, t0() + Duration::hours(3)).await.announced, 0);
    pay(&s.ctx, "2", "ann", "60.00", t0() + Duration::days(1)).await;
    // Reached when the crossing order's cashback is released (30 days).
    let early = run(&s, t0() + Duration::days(1) + Duration::hours(3)).await;
    assert_eq!(early.announced, 0, "{early:?}");
    let reached = run(&s, t0() + Duration::days(31) + Duration::hours(3)).await;
    assert_eq!((reached.announced, reached.credited), (1, 0), "{reached:?}");
    pay(&s.ctx, "3", "ann", "60.00", t0() + Duration::days(32)).await;
    assert_eq!(
        run(&s, t0() + Duration::days(62) + Duration::hours(3))
            .await
            .announced,
        0
    );
    assert_eq!(
        s.notifier.keys_of("bonus"),
        ["bonus:ann:milestone:500".to_string()]
    );
}

#[tokio::test]
async fn a_win_back_as_an_extra_percent_is_announced_and_paid_on_the_next_order() {
    let mut program = bonus_program();
    program.bonuses.win_back = Some(WinBack {
        after_days: 90,
        reward: WinBackReward::ExtraPercent {
            percent: dec!(5),
            valid_days: 14,
        },
        once_per_days: 180,
    });
    program.bonuses.birthday = None;
    let s = setup_with(program).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    release(&s, released()).await;
    let won_back = run(&s, t0() + Duration::days(90) + Duration::hours(1)).await;
    assert_eq!(
        (won_back.credited, won_back.emails_sent),
        (0, 1),
        "{won_back:?}"
    );
    let emails = s.notifier.sent_of("bonus");
    match &emails[0].kind {
        NotificationKind::Bonus {
            bonus,
            amount,
            extra_percent,
            ..
        } => {
            assert_eq!((*bonus, *amount), (BonusKind::WinBack, None));
            assert_eq!(extra_percent.map(|o| o.percent), Some(dec!(5)));
        }
        other => panic!("{other:?}"),
    }
    pay(&s.ctx, "2", "ann", "100.00", t0() + Duration::days(95)).await;
    let account = account_of(&s.memory, "ann").await.value;
    assert_eq!(
        account.available,
        usd("10.00"),
        "the first order's, released"
    );
    assert_eq!(account.pending, usd("15.00"), "10.00 + 5.00 extra");
    assert_eq!(account.bonus.extra_percent, None);
}

#[tokio::test]
async fn a_klaviyo_only_shops_bonus_is_a_bonus_received_event_and_no_email() {
    let mut program = bonus_program();
    program.bonuses.win_back = None;
    program.bonuses.milestones.clear();
    program.email_channel = cashback_core::program::EmailChannel::Klaviyo;
    let s = setup_with(program).await;
    pay(&s.ctx, "1", "ann", "100.00", t0()).await;
    birthday(&s, 3, 14, t0() + Duration::hours(1)).await;
    release(&s, released()).await;
    s.memory.take_marketing_events();
    let day = at(2027, 3, 14, 0) + Duration::minutes(5);
    let first = run(&s, day).await;
    assert_eq!(first.credited, 1, "{first:?}");
    assert!(s.notifier.sent_of("bonus").is_empty());
    assert_eq!(run(&s, day).await.credited, 0);
    let events: Vec<_> = s
        .memory
        .take_marketing_events()
        .into_iter()
        .map(|(_, queued)| queued.event())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].metric.name(), "Bonus Received");
    assert_eq!(events[0].unique_id, "bonus:ann:birthday:2027");
    assert_eq!(
        events[0].properties["bonus"],
        cashback_app::marketing::PropertyValue::Text("birthday".into())
    );
}

/// The farm: an order that costs the customer nothing in the end (`undo`
/// takes it back, or it earned nothing) must not make the account due for a
/// win-back, an anniversary or a birthday it gives.
async fn no_bonus_is_farmed_with(s: &Setup) {
    // Past the release date, with the release job run.
    let mut day = t0() + Duration::days(2);
    while day < t0() + Duration::days(40) {
        promote_due(&s.ctx, &TokioClock, &config(), day, far())
            .await
            .unwrap();
        day += Duration::days(1);
    }
    let ran = run(s, t0() + Duration::days(90) + Duration::hours(1)).await;
    assert_eq!((ran.credited, ran.announced), (0, 0), "{ran:?}");
    let refused = set_birthday(
        &s.ctx,
        &shop(),
        &ann(),
        Birthday::new(6, 1).unwrap(),
        BirthdaySource::Customer,
        t0() + Duration::days(90) + Duration::hours(2),
    )
    .await;
    assert!(matches!(refused, Err(AppError::Conflict(_))), "{refused:?}");
    let ran = run(s, t0() + Duration::days(366)).await;
    assert_eq!((ran.credited, ran.announced), (0, 0), "{ran:?}");
    let account = account_of(&s.memory, "ann").await.value;
    assert_eq!(account.available, usd("0.00"));
    assert_eq!(account.bonus.birthday, None);
    assert!(ledger_of(&s.memory, "ann")
        .await
        .iter()
        .all(|e| e.kind != EntryKind::Bonus));
}

#[tokio::test]
async fn an_order_refunded_in_full_before_release_earns_no_bonus() {
    let mut program = bonus_program();
    program.bonuses.anniversary =
        Some(cashback_core::bonuses::AnniversaryBonus { amount: dec!(3) });
    let s = setup_with(program).await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    handle_order_event(
        &s.ctx,
        &shop(),
        &refund("1", "r1", &[("1", 1)]),
        t0() + Duration::days(1),
    )
    .await
    .unwrap();
    no_bonus_is_farmed_with(&s).await;
}

#[tokio::test]
async fn an_order_of_gift_cards_only_earns_no_bonus() {
    let mut program = bonus_program();
    program.bonuses.anniversary =
        Some(cashback_core::bonuses::AnniversaryBonus { amount: dec!(3) });
    let s = setup_with(program).await;
    let mut card = line("1", "50.00", 1);
    card.gift_card = true;
    let mut placed = order("1", "ann", vec![card]);
    placed.occurred_at = t0();
    handle_order_event(
        &s.ctx,
        &shop(),
        &cashback_core::order::OrderEvent::Paid(placed),
        t0(),
    )
    .await
    .unwrap();
    no_bonus_is_farmed_with(&s).await;
}

#[tokio::test]
async fn an_order_kept_counts_for_the_win_back_once_released() {
    let s = setup().await;
    pay(&s.ctx, "1", "ann", "20.00", t0()).await;
    release(&s, released()).await;
    let ran = run(&s, t0() + Duration::days(90) + Duration::hours(1)).await;
    assert_eq!(ran.credited, 1, "{ran:?}");
    assert_eq!(
        account_of(&s.memory, "ann").await.value.available,
        usd("9.00")
    );
}
