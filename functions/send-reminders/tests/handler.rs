//! The handler as the runtime calls it: reminders in the outbox and through
//! SES on moto, errors as the runtime's Diagnostic, DynamoDB round trips.

use std::sync::Arc;

use chrono::Duration;
use lambda_runtime::Diagnostic;

use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::REMINDERS_JOB;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::Store;
use cashback_app::Context;
use cashback_mail::{OutboxConfig, OutboxNotifier};
use cashback_store::MemoryStore;
use cashback_test_support::jobs::*;
use cashback_test_support::moto::{self, ses_on_moto};
use send_reminders::{function_handler, Deps, HandlerError};

fn released_at() -> chrono::DateTime<chrono::Utc> {
    t0() + Duration::days(30)
}

fn outbox(dir: &std::path::Path) -> Arc<OutboxNotifier> {
    Arc::new(OutboxNotifier::new(OutboxConfig {
        dir: dir.to_path_buf(),
        from: cashback_core::ids::Email::parse("rewards@demo.example.com").unwrap(),
    }))
}

/// Pays and releases (through the promote job) one order per customer.
async fn released(ctx: &Context, customers: &[&str]) {
    for (i, customer) in customers.iter().enumerate() {
        pay(ctx, &format!("{}", 1000 + i), customer, "100.00").await;
    }
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let run = promote_due(ctx, &TokioClock, &JobConfig::default(), released_at(), far)
        .await
        .unwrap();
    assert_eq!(run.released as usize, customers.len());
}

#[tokio::test]
async fn due_reminders_land_in_the_outbox_with_balance_code_and_unsubscribe_headers() {
    let dir = temp_dir("reminders-outbox");
    let ctx = context(Arc::new(MemoryStore::new()), outbox(&dir), &program()).await;
    released(&ctx, &["ann", "bob"]).await;
    let deps = Deps::new(ctx, JobConfig::default());

    let first = function_handler(&deps, scheduled(Some(released_at()), 60))
        .await
        .unwrap();
    assert_eq!(first.sent, 2);
    let later = function_handler(
        &deps,
        scheduled(Some(released_at() + Duration::days(3)), 60),
    )
    .await
    .unwrap();
    assert_eq!(later.sent, 2, "position 1, three days on");
    let again = function_handler(
        &deps,
        scheduled(Some(released_at() + Duration::days(3)), 60),
    )
    .await
    .unwrap();
    assert_eq!(again.sent, 0, "a retried event sends nothing twice");

    let reminders: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("reminder")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(reminders.len(), 4);
    let ann: Vec<&String> = reminders
        .iter()
        .filter(|eml| eml.contains("To: ann@example.com"))
        .collect();
    assert_eq!(ann.len(), 2);
    assert!(ann
        .iter()
        .any(|eml| eml.contains("Subject: Reminder 0: your CashBack is waiting")));
    assert!(ann.iter().all(|eml| eml.contains(
        "List-Unsubscribe: <http://127.0.0.1:3000/v1/shops/demo.myshopify.com/customers/ann/unsubscribe?sig="
    )));
    assert!(ann
        .iter()
        .all(|eml| eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_event_without_a_time_is_refused_as_not_retryable() {
    let dir = temp_dir("unused");
    let ctx = context(Arc::new(MemoryStore::new()), outbox(&dir), &program()).await;
    let deps = Deps::new(ctx, JobConfig::default());
    let error = function_handler(&deps, scheduled(None, 60))
        .await
        .unwrap_err();
    assert!(matches!(error, HandlerError::MissingTime));
    assert_eq!(
        Diagnostic::from(error).error_type,
        "NonRetryable.MissingTime"
    );
}

#[tokio::test]
async fn reminders_go_out_through_ses_on_moto() {
    let Some(endpoint) = moto::endpoint("reminders_go_out_through_ses_on_moto") else {
        return;
    };
    let (ses, from) = ses_on_moto(&endpoint).await;
    let ctx = context(Arc::new(MemoryStore::new()), Arc::new(ses), &program()).await;
    released(&ctx, &["ann"]).await;
    let deps = Deps::new(
        ctx,
        JobConfig {
            send_rate: Some(14.0),
            ..JobConfig::default()
        },
    );
    let outcome = function_handler(&deps, scheduled(Some(released_at()), 60))
        .await
        .unwrap();
    assert_eq!(outcome.sent, 1);
    let messages = moto::ses_messages(&endpoint, &from).await;
    let reminder = messages
        .iter()
        .find(|(_, raw)| raw.contains("Subject: Reminder 0: your CashBack is waiting"))
        .expect("moto recorded the reminder");
    assert!(reminder.0.iter().any(|to| to == "ann@example.com"));
    assert!(reminder
        .1
        .contains("List-Unsubscribe: <http://127.0.0.1:3000/"));
}

#[tokio::test]
async fn a_reminder_on_dynamodb_costs_one_read_and_one_transaction_plus_query_pages() {
    let Some(store) = moto::fresh_store("reminders_round_trips").await else {
        return;
    };
    let store = Arc::new(store);
    let dir = temp_dir("moto-reminders");
    let ctx = context(store.clone(), outbox(&dir), &program()).await;
    released(&ctx, &["ann", "bob", "cy"]).await;
    for job in [REMINDERS_JOB, cashback_app::jobs::bonuses::BONUSES_JOB] {
        store.put_checkpoint(job, "2026-12-23T07").await.unwrap();
    }
    ctx.shop_program(&shop(), released_at()).await.unwrap();
    let deps = Deps::new(ctx, JobConfig::default());
    let before = store.request_counts();
    let outcome = function_handler(&deps, scheduled(Some(released_at()), 120))
        .await
        .unwrap();
    let after = store.request_counts();
    assert_eq!(outcome.sent, 3);
    assert_eq!(after.reads - before.reads, 3);
    assert_eq!(after.writes - before.writes, 3);
    // 3 buckets x 4 shards, one page each, for the reminders and again for
    // the bonuses that run after them (none due).
    assert_eq!(after.queries - before.queries, 24);
    let _ = std::fs::remove_dir_all(&dir);
}
