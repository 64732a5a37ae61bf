//! The ses-events handler on the in-memory store: a permanent bounce or a
//! complaint published by SES suppresses the address, and the scheduled
//! jobs then send it nothing; a transient bounce changes nothing.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Duration;
use lambda_runtime::{Context as LambdaContext, LambdaEvent};
use serde_json::json;

use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::send_reminders;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::ReadRequest;
use cashback_app::Context;
use cashback_core::ids::CustomerId;
use cashback_mail::feedback::FeedbackKind;
use cashback_store::MemoryStore;
use cashback_test_support::doubles::KeptNotifier;
use cashback_test_support::jobs::{context, pay, program, shop, t0};

use ses_events::function_handler;

/// An SES event as EventBridge delivers it.
fn event(detail_type: &str, detail: serde_json::Value) -> LambdaEvent<EventBridgeEvent> {
    let payload: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": "aws.ses",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
    }))
    .unwrap();
    LambdaEvent::new(payload, LambdaContext::default())
}

fn bounce(address: &str, bounce_type: &str) -> LambdaEvent<EventBridgeEvent> {
    event(
        "Email Bounced",
        json!({
            "eventType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": address}],
                "timestamp": "2026-11-24T10:00:00.000Z",
                "feedbackId": "0100017f-feedback"
            },
            "mail": {
                "timestamp": "2026-11-24T09:59:58.000Z",
                "source": "shop@example.com",
                "messageId": "0100017f-message",
                "destination": [address],
                "tags": {"shop": ["demo.myshopify.com"], "kind": ["earned"]}
            }
        }),
    )
}

async fn suppressed(ctx: &Context, who: &str) -> bool {
    let customer = CustomerId::parse(who).unwrap();
    let read = ctx
        .store
        .read(&shop(), &ReadRequest::account(&customer))
        .await
        .unwrap();
    read.accounts[&customer].value.reminders.suppressed
}

#[tokio::test]
async fn a_permanent_bounce_suppresses_the_address_and_no_further_email_goes_to_it() {
    let notifier = Arc::new(KeptNotifier::default());
    let ctx = context(Arc::new(MemoryStore::new()), notifier.clone(), &program()).await;
    pay(&ctx, "1001", "ann", "100.00").await;
    pay(&ctx, "1002", "bob", "100.00").await;

    let transient = function_handler(&ctx, bounce("ann@example.com", "Transient"))
        .await
        .unwrap();
    assert_eq!(transient.kind, None);
    assert!(!suppressed(&ctx, "ann").await);

    let first = function_handler(&ctx, bounce("Ann <ANN@example.com>", "Permanent"))
        .await
        .unwrap();
    assert_eq!(first.kind, Some(FeedbackKind::Bounce));
    assert_eq!(first.suppressed, 1);
    assert!(suppressed(&ctx, "ann").await);
    // Delivered again (EventBridge retries): nothing more is written.
    let again = function_handler(&ctx, bounce("ann@example.com", "Permanent"))
        .await
        .unwrap();
    assert_eq!((again.suppressed, again.unchanged), (0, 1));
    let stranger = function_handler(&ctx, bounce("nobody@example.com", "Permanent"))
        .await
        .unwrap();
    assert_eq!(stranger.unknown, 1);

    let before = notifier.sent.lock().unwrap().len();
    let config = JobConfig {
        finish_reserve: StdDuration::ZERO,
        ..JobConfig::default()
    };
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(600);
    for days in [31, 35] {
        let at = t0() + Duration::days(days);
        promote_due(&ctx, &TokioClock, &config, at, deadline)
            .await
            .unwrap();
        send_reminders(&ctx, &TokioClock, &config, at, deadline)
            .await
            .unwrap();
    }
    let sent = notifier.sent.lock().unwrap();
    let to: Vec<&str> = sent[before..].iter().map(|n| n.to.as_str()).collect();
    assert!(!to.is_empty(), "bob still gets his emails");
    assert!(
        to.iter().all(|address| *address == "bob@example.com"),
        "{to:?}"
    );
}

#[tokio::test]
async fn a_complaint_suppresses_too_and_an_unreadable_event_is_dropped() {
    let ctx = context(
        Arc::new(MemoryStore::new()),
        Arc::new(KeptNotifier::default()),
        &program(),
    )
    .await;
    pay(&ctx, "1001", "ann", "100.00").await;
    let complaint = event(
        "Email Complaint Received",
        json!({
            "eventType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": "ann@example.com"}],
                "complaintFeedbackType": "abuse"
            },
            "mail": {"tags": {"shop": ["demo.myshopify.com"]}, "destination": ["ann@example.com"]}
        }),
    );
    let outcome = function_handler(&ctx, complaint).await.unwrap();
    assert_eq!(outcome.kind, Some(FeedbackKind::Complaint));
    assert!(suppressed(&ctx, "ann").await);

    let garbage = function_handler(&ctx, event("Something", json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(garbage, Default::default());
    let other_shop = event(
        "Email Bounced",
        json!({
            "eventType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "ann@example.com"}]},
            "mail": {"tags": {"shop": ["elsewhere.myshopify.com"]}}
        }),
    );
    let outcome = function_handler(&ctx, other_shop).await.unwrap();
    assert_eq!(outcome.unknown, 1);
}
