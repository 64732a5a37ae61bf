//! Warnings before balance expires, through the scheduled jobs on the
//! in-memory store: each offset once per expiry day with the amount and the
//! date, never twice under repeated runs, none to a suppressed address.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::jobs::*;
use crate::support::*;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::send_reminders;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::NotificationKind;
use cashback_app::Context;
use cashback_core::ids::CustomerId;
use cashback_core::program::{Issuance, Program};
use cashback_store::MemoryStore;

fn expiring_program() -> Program {
    let mut program = program();
    program.issuance = Issuance::Immediate;
    program.expiry_days = Some(60);
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

async fn tick(ctx: &Context, at: DateTime<Utc>) {
    promote_due(ctx, &TokioClock, &config(), at, far())
        .await
        .unwrap();
    send_reminders(ctx, &TokioClock, &config(), at, far())
        .await
        .unwrap();
}

async fn setup(notifier: ScriptedNotifier) -> (Arc<ScriptedNotifier>, Context) {
    let memory = Arc::new(MemoryStore::new());
    let notifier = Arc::new(notifier);
    let ctx = jobs_context(
        &memory,
        memory.clone(),
        notifier.clone(),
        &expiring_program(),
    )
    .await;
    (notifier, ctx)
}

#[tokio::test]
async fn each_offset_warns_once_with_the_amount_and_the_date_before_the_balance_expires() {
    let (notifier, ctx) = setup(ScriptedNotifier::default()).await;
    pay(&ctx, "1001", "ann", "100.00", t0()).await;
    // Balance expires 60 days after its release, rounded up to the end of
    // its 2-day expiry period (periods counted from 1970-01-01): the
    // release's 60th day ends on 2027-01-23, an odd day since 1970, so the
    // period ends at the start of 2027-01-24.
    let expires_at = Utc.with_ymd_and_hms(2027, 1, 24, 0, 0, 0).unwrap();
    let mut at = t0();
    let mut seen = Vec::new();
    while at <= expires_at + Duration::days(1) {
        tick(&ctx, at).await;
        // Twice at the same time: an overlapping run sends nothing more.
        tick(&ctx, at).await;
        for warning in notifier
            .sent_of("expiry_warning")
            .into_iter()
            .skip(seen.len())
        {
            let NotificationKind::ExpiryWarning {
                amount,
                expires_at: when,
                hours_before,
                code,
                ..
            } = warning.kind
            else {
                unreachable!()
            };
            assert_eq!(amount, usd("10.00"));
            assert_eq!(when, expires_at);
            assert!(code.is_some());
            assert_eq!(warning.to.as_str(), "ann@example.com");
            seen.push((
                (at - t0()).num_hours(),
                hours_before,
                warning.idempotency_key,
            ));
        }
        at += Duration::hours(6);
    }
    assert_eq!(
        seen,
        vec![
            (
                31 * 24 + 18,
                720,
                "expiry-warning:demo.myshopify.com:ann:2027-01-24:720h".to_string()
            ),
            (
                54 * 24 + 18,
                168,
                "expiry-warning:demo.myshopify.com:ann:2027-01-24:168h".to_string()
            ),
            (
                60 * 24 + 18,
                24,
                "expiry-warning:demo.myshopify.com:ann:2027-01-24:24h".to_string()
            ),
        ]
    );
    let account = ctx
        .store
        .read(
            &shop(),
            &cashback_app::store::ReadRequest::account(&CustomerId::parse("ann").unwrap()),
        )
        .await
        .unwrap();
    let ann = &account.accounts[&CustomerId::parse("ann").unwrap()].value;
    assert!(
        ann.available.is_zero(),
        "the balance expired after the warnings"
    );
}

#[tokio::test]
async fn a_program_without_warnings_or_a_suppressed_address_gets_none() {
    let notifier = ScriptedNotifier::default();
    notifier
        .suppressed
        .lock()
        .unwrap()
        .insert("bob@example.com".to_string());
    let (notifier, ctx) = setup(notifier).await;
    pay(&ctx, "1001", "bob", "100.00", t0()).await;
    for days in [30, 53, 59] {
        tick(&ctx, t0() + Duration::days(days)).await;
    }
    // The first warning found the address suppressed: the account is
    // marked, so no further warning is even filed.
    assert_eq!(notifier.sent_of("expiry_warning").len(), 0);
    let bob = CustomerId::parse("bob").unwrap();
    let read = ctx
        .store
        .read(&shop(), &cashback_app::store::ReadRequest::account(&bob))
        .await
        .unwrap();
    let account = &read.accounts[&bob].value;
    assert!(account.reminders.suppressed);
    let program = expiring_program();
    assert_eq!(cashback_core::due::expiry_warning(&program, account), None);

    let mut silent = expiring_program();
    silent.expiry_warning_hours = Vec::new();
    let memory = Arc::new(MemoryStore::new());
    let quiet = Arc::new(ScriptedNotifier::default());
    let ctx = jobs_context(&memory, memory.clone(), quiet.clone(), &silent).await;
    pay(&ctx, "1002", "cy", "100.00", t0()).await;
    for days in [30, 53, 59] {
        tick(&ctx, t0() + Duration::days(days)).await;
    }
    assert!(quiet.sent_of("expiry_warning").is_empty());
}
