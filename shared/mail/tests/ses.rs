//! The SES adapter over the wire: against moto's SES v2 server, and against
//! endpoints that refuse or never answer.
//!
//! The project's test script starts moto and sets `MOTO_ENDPOINT`
//! (`http://127.0.0.1:PORT`); without it the moto tests print a notice and
//! pass without checking anything, unless `REQUIRE_MOTO=1` (see
//! `cashback_test_support::moto`; the others always run). Delivery is
//! asserted on what moto recorded: moto 5 keeps raw sends as `ses` /
//! `RawMessage` models, listed by `GET {endpoint}/moto-api/data.json` with
//! their id, source, destinations and the raw MIME text.

use std::sync::Arc;

use chrono::{TimeZone, Utc};

use cashback_app::notify::{Branding, Notification, NotificationKind, Notifier, NotifyError};
use cashback_core::ids::{Code, Email, ShopId};
use cashback_core::money::{Currency, Money};
use cashback_mail::{SesConfig, SesNotifier};
use cashback_test_support::moto;

/// A notifier whose SDK config carries fake credentials and the region; the
/// endpoint goes through `SesConfig::endpoint_url`, the override under test.
async fn notifier(endpoint: &str, from: &str) -> SesNotifier {
    let sdk = moto::sdk_config().await;
    let mut config = SesConfig::new(Email::parse(from).unwrap());
    config.endpoint_url = Some(endpoint.to_string());
    let fixed = Utc.with_ymd_and_hms(2026, 12, 23, 8, 0, 0).unwrap();
    SesNotifier::from_sdk_config(&sdk, config).with_clock(Arc::new(move || fixed))
}

fn reminder(to: &str) -> Notification {
    Notification {
        idempotency_key: "reminder:demo.myshopify.com:42:0".to_string(),
        shop: ShopId::parse("demo.myshopify.com").unwrap(),
        to: Email::parse(to).unwrap(),
        branding: Branding {
            display_name: "CashBack".to_string(),
            shop_name: "Demo Shop".to_string(),
            shop_url: Some("https://demo.example.com".to_string()),
            subject: Some("Your credit is waiting".to_string()),
            preview_text: None,
        },
        kind: NotificationKind::Reminder {
            position: 0,
            balance: Money::parse("25.50", Currency::USD).unwrap(),
            code: Code::parse("cb-7k2m9q").unwrap(),
            expires_at: None,
        },
        unsubscribe_url: Some("https://demo.example.com/unsubscribe?t=abc".to_string()),
    }
}

#[tokio::test]
async fn a_notification_sent_through_ses_is_recorded_by_moto_with_its_headers() {
    let Some(endpoint) =
        moto::endpoint("a_notification_sent_through_ses_is_recorded_by_moto_with_its_headers")
    else {
        return;
    };
    let from = moto::unique_sender("rewards");
    let notifier = notifier(&endpoint, &from).await;
    notifier
        .client()
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender identity");

    let sent = notifier
        .send(&reminder("ann@example.com"))
        .await
        .expect("SES accepts the message");
    assert!(!sent.message_id.is_empty());

    let data = moto::data(&endpoint).await;
    let recorded = data["ses"]["RawMessage"]
        .as_array()
        .expect("moto lists raw SES messages")
        .iter()
        .find(|message| message["id"] == sent.message_id.as_str())
        .expect("moto recorded the message under the id SES returned");

    assert_eq!(recorded["source"], from.as_str());
    let destinations: Vec<&str> = recorded["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(
        destinations.contains(&"ann@example.com"),
        "{destinations:?}"
    );
    let raw = recorded["raw_data"].as_str().unwrap();
    assert!(raw.contains("Subject: Your credit is waiting\r\n"));
    assert!(raw.contains(&format!("From: \"Demo Shop\" <{from}>\r\n")));
    assert!(raw.contains("List-Unsubscribe: <https://demo.example.com/unsubscribe?t=abc>\r\n"));
    assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
    assert!(raw.contains("Content-Type: multipart/alternative;"));
    assert!(raw.contains("Date: Wed, 23 Dec 2026 08:00:00 +0000\r\n"));
}

#[tokio::test]
async fn an_unverified_sender_is_rejected_and_not_retried() {
    let Some(endpoint) = moto::endpoint("an_unverified_sender_is_rejected_and_not_retried") else {
        return;
    };
    let notifier = notifier(&endpoint, &moto::unique_sender("unverified")).await;

    let error = notifier
        .send(&reminder("ann@example.com"))
        .await
        .expect_err("moto refuses an unverified sender");

    match &error {
        NotifyError::Rejected(text) => assert!(!text.contains('@'), "{text}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_retryable() {
    // Runs with or without moto: nothing listens on port 9 of loopback.
    let notifier = notifier("http://127.0.0.1:9", "rewards@demo.example.com").await;
    let error = notifier
        .send(&reminder("ann@example.com"))
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(error, NotifyError::Unavailable(_)),
        "expected unavailable, got {error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_send_that_times_out_is_tried_once_and_reported_as_possibly_accepted() {
    // A server that accepts connections and never answers: the lost-response
    // case. The SDK must not retry it on its own, or SES could send twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });

    let sdk = moto::sdk_config().await;
    let mut config = SesConfig::new(Email::parse("rewards@demo.example.com").unwrap());
    config.endpoint_url = Some(format!("http://{address}"));
    config.send_timeout = std::time::Duration::from_millis(300);
    // Only the send is counted here, not the account check beside it.
    config.check_account = false;
    let notifier = SesNotifier::from_sdk_config(&sdk, config);

    let error = notifier
        .send(&reminder("ann@example.com"))
        .await
        .expect_err("nobody answers");

    match &error {
        NotifyError::Unavailable(text) => {
            assert!(
                text.starts_with("SES may have accepted the message"),
                "{text}"
            );
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    // Give a stray retry time to show up before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_send_names_the_configuration_set_and_an_unreadable_account_does_not_stop_it() {
    let Some(endpoint) = moto::endpoint(
        "a_send_names_the_configuration_set_and_an_unreadable_account_does_not_stop_it",
    ) else {
        return;
    };
    let from = moto::unique_sender("rewards");
    let sdk = moto::sdk_config().await;
    let set = format!("cashback-{}", std::process::id());
    let mut config = SesConfig::new(Email::parse(&from).unwrap());
    config.endpoint_url = Some(endpoint.clone());
    config.configuration_set = Some(set.clone());
    let notifier = SesNotifier::from_sdk_config(&sdk, config);
    let client = notifier.client();
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender identity");
    // The configuration set template.yaml creates (moto's answer to
    // reading it back does not parse, so it is only created here).
    client
        .create_configuration_set()
        .configuration_set_name(&set)
        .send()
        .await
        .expect("moto creates the configuration set");

    let sent = notifier
        .send(&reminder("ann@example.com"))
        .await
        .expect("SES accepts the message with its configuration set");
    assert!(!sent.message_id.is_empty());
    // moto has no GetAccount: the sandbox check is skipped, the send went.
    assert_eq!(
        notifier.account_status().await,
        cashback_mail::ses::AccountStatus::Unknown
    );
}

#[test]
fn an_account_in_the_sandbox_or_paused_is_warned_about() {
    use cashback_mail::ses::AccountStatus;
    assert_eq!(AccountStatus::of(false, true), AccountStatus::Sandbox);
    assert_eq!(AccountStatus::of(true, true), AccountStatus::Production);
    assert_eq!(AccountStatus::of(true, false), AccountStatus::SendingPaused);
    assert!(AccountStatus::Sandbox
        .warning()
        .unwrap()
        .contains("sandbox"));
    assert!(AccountStatus::SendingPaused.warning().is_some());
    assert_eq!(AccountStatus::Production.warning(), None);
    assert_eq!(AccountStatus::Unknown.warning(), None);
}
