//! The handler as the runtime calls it: "now" from the event, the deadline
//! from the invocation, errors as the runtime's Diagnostic; ready emails in
//! the outbox and through SES on moto; DynamoDB round trips on moto.

use std::sync::Arc;

use chrono::Duration;
use lambda_runtime::Diagnostic;

use cashback_app::jobs::promote::{PROMOTE_JOB, READY_EMAILS_JOB};
use cashback_app::jobs::JobConfig;
use cashback_app::store::Store;
use cashback_mail::{OutboxConfig, OutboxNotifier};
use cashback_store::MemoryStore;
use cashback_test_support::jobs::*;
use cashback_test_support::moto::{self, ses_on_moto};
use promote_pending::{function_handler, Deps, HandlerError};

fn due_day() -> chrono::DateTime<chrono::Utc> {
    t0() + Duration::days(30)
}

#[tokio::test]
async fn a_scheduled_event_releases_due_cashback_and_leaves_ready_emails_in_the_outbox() {
    let dir = temp_dir("promote-outbox");
    let outbox = OutboxNotifier::new(OutboxConfig {
        dir: dir.clone(),
        from: cashback_core::ids::Email::parse("rewards@demo.example.com").unwrap(),
    });
    let ctx = context(Arc::new(MemoryStore::new()), Arc::new(outbox), &program()).await;
    pay(&ctx, "1001", "ann", "80.00").await;
    pay(&ctx, "1002", "bob", "120.00").await;
    let deps = Deps::new(ctx, JobConfig::default());

    let outcome = function_handler(&deps, scheduled(Some(due_day()), 60))
        .await
        .unwrap();
    assert_eq!((outcome.released, outcome.emails_sent), (2, 2));
    assert!(outcome.is_done());

    let mut ready = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("ready")
        {
            ready.push(text);
        }
    }
    assert_eq!(
        ready.len(),
        2,
        "one ready email per release, besides the earned ones"
    );
    assert!(ready.iter().any(|eml| eml.contains("To: ann@example.com")));
    assert!(ready.iter().all(|eml| eml.contains("List-Unsubscribe: <")));

    // The same event again (EventBridge retries): nothing more.
    let again = function_handler(&deps, scheduled(Some(due_day()), 60))
        .await
        .unwrap();
    assert_eq!((again.released, again.emails_sent), (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_event_without_a_time_is_refused_as_not_retryable() {
    let store = Arc::new(MemoryStore::new());
    let ctx = context(
        store,
        Arc::new(OutboxNotifier::new(OutboxConfig {
            dir: temp_dir("unused"),
            from: cashback_core::ids::Email::parse("rewards@demo.example.com").unwrap(),
        })),
        &program(),
    )
    .await;
    let deps = Deps::new(ctx, JobConfig::default());
    let error = function_handler(&deps, scheduled(None, 60))
        .await
        .unwrap_err();
    assert!(matches!(error, HandlerError::MissingTime));
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, "NonRetryable.MissingTime");
}

#[tokio::test]
async fn a_store_failure_is_reported_as_retryable() {
    let error = HandlerError::Job(cashback_app::jobs::JobError::Store(
        cashback_app::store::StoreError::Unavailable("throttled".into()),
    ));
    assert_eq!(Diagnostic::from(error).error_type, "Retryable.Store");
}

#[tokio::test]
async fn the_run_stops_at_the_invocation_deadline_less_the_safety_margin() {
    let store = Arc::new(MemoryStore::new());
    let ctx = context(
        store.clone(),
        Arc::new(OutboxNotifier::new(OutboxConfig {
            dir: temp_dir("deadline-outbox"),
            from: cashback_core::ids::Email::parse("rewards@demo.example.com").unwrap(),
        })),
        &program(),
    )
    .await;
    pay(&ctx, "1001", "ann", "80.00").await;
    let deps = Deps::new(ctx, JobConfig::default());
    // 10 s left, less the 15 s margin: no time to start anything.
    let outcome = function_handler(&deps, scheduled(Some(due_day()), 10))
        .await
        .unwrap();
    assert!(outcome.scan.deadline_reached);
    assert_eq!(outcome.released, 0);
    assert_eq!(store.get_checkpoint(PROMOTE_JOB).await.unwrap(), None);
    let _ = std::fs::remove_dir_all(temp_dir("deadline-outbox"));
}

#[tokio::test]
async fn ready_emails_go_out_through_ses_on_moto() {
    let Some(endpoint) = moto::endpoint("ready_emails_go_out_through_ses_on_moto") else {
        return;
    };
    let (ses, from) = ses_on_moto(&endpoint).await;
    let ctx = context(Arc::new(MemoryStore::new()), Arc::new(ses), &program()).await;
    pay(&ctx, "1001", "ann", "80.00").await;
    pay(&ctx, "1002", "bob", "120.00").await;
    let deps = Deps::new(ctx, JobConfig::default());
    let outcome = function_handler(&deps, scheduled(Some(due_day()), 60))
        .await
        .unwrap();
    assert_eq!(outcome.emails_sent, 2);
    let messages = moto::ses_messages(&endpoint, &from).await;
    let ready: Vec<_> = messages
        .iter()
        .filter(|(_, raw)| raw.contains("is ready to spend"))
        .collect();
    assert_eq!(ready.len(), 2, "{messages:?}");
    let to_bob = ready
        .iter()
        .find(|(to, _)| to.iter().any(|t| t == "bob@example.com"))
        .map(|(_, raw)| raw.clone());
    let subject_line = to_bob
        .as_deref()
        .and_then(|raw| raw.lines().find(|l| l.starts_with("Subject:")))
        .unwrap_or_default()
        .to_string();
    assert!(subject_line.contains("12.00 USD"), "{subject_line}");
}

#[tokio::test]
async fn a_small_run_on_dynamodb_costs_one_transaction_per_release_and_per_email_plus_query_pages()
{
    let Some(store) = moto::fresh_store("promote_small_run_round_trips").await else {
        return;
    };
    let store = Arc::new(store);
    let dir = temp_dir("moto-outbox");
    let outbox = OutboxNotifier::new(OutboxConfig {
        dir: dir.clone(),
        from: cashback_core::ids::Email::parse("rewards@demo.example.com").unwrap(),
    });
    let ctx = context(store.clone(), Arc::new(outbox), &program()).await;
    for i in 0..5 {
        pay(&ctx, &format!("{}", 2000 + i), &format!("c{i}"), "50.00").await;
    }
    // One bucket settled before the due hour: the run reads 3 buckets.
    for job in [PROMOTE_JOB, READY_EMAILS_JOB] {
        store.put_checkpoint(job, "2026-12-23T07").await.unwrap();
    }
    ctx.shop_program(&shop(), due_day()).await.unwrap();
    let config = JobConfig {
        page_size: 2,
        ..JobConfig::default()
    };
    let deps = Deps::new(ctx, config);
    let before = store.request_counts();
    let outcome = function_handler(&deps, scheduled(Some(due_day()), 120))
        .await
        .unwrap();
    let after = store.request_counts();
    assert_eq!((outcome.released, outcome.emails_sent), (5, 5));
    // A release is one BatchGetItem (with its order's partition in a Query
    // sent beside it: one round trip) and one TransactWriteItems; its ready
    // email, claimed by the paced pass before it is sent, the same.
    assert_eq!(
        after.writes - before.writes,
        10,
        "one TransactWriteItems per release and per email"
    );
    assert_eq!(
        after.reads - before.reads,
        10,
        "one BatchGetItem per release and per email"
    );
    assert_eq!(
        after.queries - before.queries,
        outcome.scan.queries + outcome.email_pass.queries + 10,
        "the due pages, and each release's and email's order partition"
    );
    // 3 buckets x 2 kinds x 4 shards, plus the pages of 2 items; the email
    // pass 3 buckets x 4 shards, plus its pages.
    assert!(outcome.scan.queries >= 24 && outcome.scan.queries <= 24 + 5);
    assert!(outcome.email_pass.queries >= 12 && outcome.email_pass.queries <= 12 + 5);
    assert_eq!(
        after.other - before.other,
        2,
        "the two checkpoints read (they do not move)"
    );
    eprintln!(
        "dynamodb round trips for 5 releases: {:?} (queries {})",
        after, outcome.scan.queries
    );
    let _ = std::fs::remove_dir_all(&dir);
}
