//! The Klaviyo adapter against the local fake (cashback-test-support's
//! fakes::klaviyo), which checks the documented JSON:API shapes, headers
//! and rate limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use hyper::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{json, Value};

use cashback_app::marketing::{
    event_for_notice, profile_update, Marketing, MarketingError, MarketingEvent, MarketingSettings,
    PropertyNaming,
};
use cashback_app::notices::Notice;
use cashback_app::notify::NotificationKind;
use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::program::{Program, Tier};
use cashback_klaviyo::{KlaviyoConfig, KlaviyoMarketing, RateLimit, RetryPolicy, REVISION};
use cashback_platform_codes::http::HttpClient;
use cashback_test_support::fakes::faults::{Fault, FaultRates};
use cashback_test_support::fakes::klaviyo::{self as fake, FakeKlaviyo, Limit};

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn money(amount: Decimal) -> Money {
    Money::new(amount, usd()).unwrap()
}

fn when() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 30, 0).unwrap()
}

fn config(fake: &FakeKlaviyo, key: &str) -> KlaviyoConfig {
    let mut config = KlaviyoConfig::new(key)
        .unwrap()
        .with_base_url(&fake.url())
        .unwrap();
    config.timeout = Duration::from_millis(500);
    config.retry = RetryPolicy {
        max_attempts: 5,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_wait: Duration::from_secs(3),
    };
    config
}

fn adapter(fake: &FakeKlaviyo) -> KlaviyoMarketing {
    KlaviyoMarketing::new(config(fake, fake::PRIVATE_KEY)).unwrap()
}

fn account() -> Account {
    let mut account = Account::open(
        ShopId::parse("shop-1").unwrap(),
        CustomerId::parse("c-1").unwrap(),
        usd(),
    );
    account.email = Some(Email::parse("ann@example.com").unwrap());
    account.code = Some(Code::parse("cb-ann").unwrap());
    account.available = money(dec!(12.50));
    account.pending = money(dec!(4.00));
    account.lifetime_issued = money(dec!(30.00));
    account.lifetime_used = money(dec!(17.50));
    account.tier = Some(0);
    account
}

fn program() -> Program {
    let mut program = Program::new(usd());
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(100),
        percent: dec!(5),
    }];
    program
}

fn notice(key: &str, kind: NotificationKind) -> Notice {
    Notice {
        key: key.into(),
        shop: ShopId::parse("shop-1").unwrap(),
        customer: CustomerId::parse("c-1").unwrap(),
        to: Email::parse("ann@example.com").unwrap(),
        kind,
    }
}

fn ready(key: &str) -> MarketingEvent {
    event_for_notice(
        &notice(
            key,
            NotificationKind::Ready {
                amount: money(dec!(5.00)),
                balance: money(dec!(12.50)),
                code: Code::parse("cb-ann").unwrap(),
            },
        ),
        when(),
    )
}

#[tokio::test]
async fn a_profile_push_is_the_documented_upsert() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = adapter(&fake);
    let settings = MarketingSettings::default();
    let update = profile_update(&settings, &account(), &program(), Some(when())).unwrap();
    klaviyo.push_profile(&update).await.unwrap();

    let profile = fake.profile("ann@example.com").unwrap();
    let p = &profile.properties;
    assert_eq!(p["cashback_balance"], json!(12.5));
    assert_eq!(p["cashback_pending"], json!(4.0));
    assert_eq!(p["cashback_lifetime_issued"], json!(30.0));
    assert_eq!(p["cashback_lifetime_used"], json!(17.5));
    assert_eq!(p["cashback_code"], json!("CB-ANN"));
    assert_eq!(p["cashback_tier"], json!("Gold"));
    assert_eq!(
        p["cashback_next_release_date"],
        json!("2026-11-02T09:30:00Z")
    );

    // Set again, absolutely: a tier lost and nothing pending clear theirs.
    let mut after = account();
    after.tier = None;
    after.available = money(dec!(0.00));
    let update = profile_update(&settings, &after, &program(), None).unwrap();
    klaviyo.push_profile(&update).await.unwrap();
    let profile = fake.profile("ann@example.com").unwrap();
    assert_eq!(profile.properties["cashback_balance"], json!(0.0));
    assert!(!profile.properties.contains_key("cashback_tier"));
    assert!(!profile
        .properties
        .contains_key("cashback_next_release_date"));
    let stats = fake.stats();
    assert!(stats.rejected.is_empty(), "{:?}", stats.rejected);
    assert_eq!(stats.accepted["ProfileImport"], 2);
}

#[tokio::test]
async fn onward_names_reach_the_profile() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = adapter(&fake);
    let settings = MarketingSettings {
        naming: PropertyNaming::OnwardCompatible,
        ..MarketingSettings::default()
    };
    let update = profile_update(&settings, &account(), &program(), None).unwrap();
    klaviyo.push_profile(&update).await.unwrap();
    let p = fake.profile("ann@example.com").unwrap().properties;
    assert_eq!(p["onward_balance"], json!(12.5));
    assert_eq!(p["onward_pending_issuance_balance"], json!(4.0));
    assert_eq!(p["onward_lifetime_issued"], json!(30.0));
    assert_eq!(p["onward_lifetime_used"], json!(17.5));
    assert_eq!(p["onward_discount_code"], json!("CB-ANN"));
    assert_eq!(p["cashback_tier"], json!("Gold"));
}

#[tokio::test]
async fn events_are_accepted_in_the_documented_shape() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = adapter(&fake);
    let code = Code::parse("cb-ann").unwrap();
    let notices = [
        notice(
            "earned:c-1:1001",
            NotificationKind::Earned {
                amount: money(dec!(5.00)),
                order_name: "1001".into(),
                release_at: Some(when()),
                code: Some(code.clone()),
            },
        ),
        notice(
            "reminder:c-1:2026-10-01T00:00:00Z:2",
            NotificationKind::Reminder {
                position: 2,
                balance: money(dec!(12.50)),
                code: code.clone(),
                expires_at: None,
            },
        ),
        notice(
            "clawback:c-1:1001:5.00",
            NotificationKind::ClawedBack {
                amount: money(dec!(5.00)),
                order_name: "1001".into(),
                balance: money(dec!(7.50)),
                debt: money(dec!(0.00)),
            },
        ),
        notice(
            "tier:c-1:0",
            NotificationKind::TierUpgraded {
                tier_name: "Gold".into(),
                percent: "5".into(),
            },
        ),
    ];
    for notice in &notices {
        klaviyo
            .track(&event_for_notice(notice, when()))
            .await
            .unwrap();
    }
    klaviyo.track(&ready("ready:c-1:1001")).await.unwrap();

    let events = fake.events();
    let names: Vec<&str> = events.iter().map(|e| e.metric.as_str()).collect();
    assert_eq!(
        names,
        [
            "Cashback Earned",
            "Reminder Due",
            "Cashback Clawed Back",
            "Tier Upgraded",
            "Cashback Ready"
        ]
    );
    let earned = &events[0];
    assert_eq!(earned.profile, "ann@example.com");
    assert_eq!(earned.unique_id.as_deref(), Some("earned:c-1:1001"));
    assert_eq!(earned.value, Some(json!(5.0)));
    assert_eq!(earned.value_currency.as_deref(), Some("USD"));
    assert_eq!(earned.properties["order"], json!("1001"));
    assert_eq!(earned.properties["code"], json!("CB-ANN"));
    assert!(earned
        .time
        .as_deref()
        .unwrap()
        .starts_with("2026-11-02T09:30:00"));
    assert_eq!(events[1].properties["position"], json!(2));
    assert_eq!(events[3].value, None);
    assert!(fake.stats().rejected.is_empty());
}

#[tokio::test]
async fn a_repeated_event_is_recorded_once() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = adapter(&fake);
    let event = ready("ready:c-1:1001");
    klaviyo.track(&event).await.unwrap();
    klaviyo.track(&event).await.unwrap();
    // Applied, then answered 503: the adapter sends it again.
    fake.push_fault(Fault::Duplicate);
    klaviyo.track(&event).await.unwrap();
    let stats = fake.stats();
    assert_eq!(stats.accepted["Events"], 4);
    assert_eq!(stats.duplicates, 3);
    assert_eq!(fake.events().len(), 1);
    // Another key is another event.
    klaviyo.track(&ready("ready:c-1:1002")).await.unwrap();
    assert_eq!(fake.events().len(), 2);
}

#[tokio::test]
async fn the_local_limiter_keeps_every_request_within_the_limits() {
    let limit = Limit {
        burst: 5,
        burst_window: Duration::from_millis(200),
        steady: 12,
        steady_window: Duration::from_secs(1),
    };
    let fake = FakeKlaviyo::with_limits(Limit::PROFILE_IMPORT, limit).await;
    let mut config = config(&fake, fake::PRIVATE_KEY);
    config.event_limit = RateLimit {
        burst: 5,
        burst_window: Duration::from_millis(200),
        steady: 12,
        steady_window: Duration::from_secs(1),
    };
    // Room for a loaded test machine: a call let through first may reach
    // the fake up to this much after one let through later.
    config.limit_margin = Duration::from_millis(150);
    let klaviyo = Arc::new(KlaviyoMarketing::new(config).unwrap());
    let started = Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..30 {
        let klaviyo = klaviyo.clone();
        sends.spawn(async move { klaviyo.track(&ready(&format!("ready:c-1:{n}"))).await });
    }
    while let Some(sent) = sends.join_next().await {
        sent.unwrap().unwrap();
    }
    let stats = fake.stats();
    assert_eq!(stats.rate_limited, 0, "a request passed the limits");
    assert_eq!(fake.events().len(), 30);
    // 30 calls at 12 a second need more than two windows.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after() {
    // The account's budget is shared with other containers: the fake allows
    // less than the adapter believes.
    let limit = Limit {
        burst: 2,
        burst_window: Duration::from_millis(500),
        steady: 100,
        steady_window: Duration::from_secs(60),
    };
    let fake = FakeKlaviyo::with_limits(Limit::PROFILE_IMPORT, limit).await;
    let klaviyo = adapter(&fake);
    for n in 0..5 {
        klaviyo
            .track(&ready(&format!("ready:c-1:{n}")))
            .await
            .unwrap();
    }
    let stats = fake.stats();
    assert!(stats.rate_limited >= 1, "{stats:?}");
    assert_eq!(
        stats.early_retries, 0,
        "a request came before its Retry-After"
    );
    assert_eq!(fake.events().len(), 5);
}

#[tokio::test]
async fn a_retry_after_beyond_the_policy_is_returned_for_parking() {
    let fake = FakeKlaviyo::start().await;
    let mut config = config(&fake, fake::PRIVATE_KEY);
    config.retry.max_wait = Duration::from_millis(500);
    let klaviyo = KlaviyoMarketing::new(config).unwrap();
    fake.push_fault(Fault::Throttle);
    let error = klaviyo.track(&ready("ready:c-1:1")).await.unwrap_err();
    match error {
        MarketingError::RateLimited { retry_after } => {
            assert_eq!(retry_after, Duration::from_secs(1));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(fake.events().is_empty());
    assert_eq!(fake.stats().rate_limited, 1);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_without_double_counting() {
    let fake = FakeKlaviyo::start().await;
    fake.set_fault_rates(
        FaultRates {
            delay: Duration::from_secs(2),
            ..FaultRates::default()
        },
        1,
    );
    let klaviyo = adapter(&fake);
    fake.push_fault(Fault::ServerError);
    // Recorded, but answered after the adapter's deadline.
    fake.push_fault(Fault::Timeout);
    klaviyo.track(&ready("ready:c-1:1")).await.unwrap();
    let stats = fake.stats();
    assert_eq!(stats.accepted["Events"], 3);
    assert_eq!(fake.events().len(), 1);
    assert_eq!(stats.duplicates, 1);

    fake.push_fault(Fault::ServerError);
    let update =
        profile_update(&MarketingSettings::default(), &account(), &program(), None).unwrap();
    klaviyo.push_profile(&update).await.unwrap();
    assert!(fake.profile("ann@example.com").is_some());
}

#[tokio::test]
async fn a_bad_key_is_unauthorized_and_not_retried() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = KlaviyoMarketing::new(config(&fake, "pk_wrong")).unwrap();
    let error = klaviyo.track(&ready("ready:c-1:1")).await.unwrap_err();
    assert!(matches!(error, MarketingError::Unauthorized), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(fake.stats().unauthorized, 1);
    assert!(fake.events().is_empty());
}

#[tokio::test]
async fn a_refused_event_is_rejected_with_klaviyos_reason() {
    let fake = FakeKlaviyo::start().await;
    let klaviyo = adapter(&fake);
    let mut event = ready("ready:c-1:1");
    event.time = Utc::now() + chrono::Duration::days(800);
    let error = klaviyo.track(&event).await.unwrap_err();
    match &error {
        MarketingError::Rejected { reason } => {
            assert!(reason.starts_with("400: invalid:"), "{reason}");
            assert!(reason.contains("/data/attributes/time"), "{reason}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(fake.stats().rejected.len(), 1, "sent once, not retried");
}

/// The fake itself refuses what Klaviyo refuses, so the tests above prove
/// the shapes.
#[tokio::test]
async fn the_fake_refuses_what_klaviyo_refuses() {
    let fake = FakeKlaviyo::start().await;
    let http = HttpClient::new(Duration::from_secs(2)).unwrap();
    let send = |revision: &'static str, content_type: &'static str, body: Value| {
        let http = http.clone();
        let url = format!("{}/api/profile-import", fake.url());
        async move {
            let headers = [
                (
                    AUTHORIZATION,
                    format!("Klaviyo-API-Key {}", fake::PRIVATE_KEY),
                ),
                (HeaderName::from_static("revision"), revision.to_string()),
                (CONTENT_TYPE, content_type.to_string()),
            ];
            http.send(
                Method::POST,
                &url,
                &headers,
                Some(serde_json::to_vec(&body).unwrap()),
            )
            .await
            .unwrap()
            .status
        }
    };
    let good = json!({"data": {"type": "profile", "attributes": {"email": "a@example.com"}}});
    assert_eq!(REVISION, fake::REVISION);
    assert_eq!(
        send(REVISION, fake::JSON_API, good.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        send(REVISION, fake::JSON_API, good.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        send("2023-01-24", fake::JSON_API, good.clone()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(REVISION, "application/json", good).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let no_identifier = json!({"data": {"type": "profile", "attributes": {"properties": {}}}});
    assert_eq!(
        send(REVISION, fake::JSON_API, no_identifier).await,
        StatusCode::BAD_REQUEST
    );
    let wrong_type =
        json!({"data": {"type": "profiles", "attributes": {"email": "a@example.com"}}});
    assert_eq!(
        send(REVISION, fake::JSON_API, wrong_type).await,
        StatusCode::BAD_REQUEST
    );
    let bad_patch = json!({"data": {"type": "profile", "attributes": {"email": "a@example.com"},
        "meta": {"patch_properties": {"remove": ["x"]}}}});
    assert_eq!(
        send(REVISION, fake::JSON_API, bad_patch).await,
        StatusCode::BAD_REQUEST
    );
    let unknown = json!({"data": {"type": "profile", "attributes": {"email": "a@example.com", "balance": 1}}});
    assert_eq!(
        send(REVISION, fake::JSON_API, unknown).await,
        StatusCode::BAD_REQUEST
    );
}
