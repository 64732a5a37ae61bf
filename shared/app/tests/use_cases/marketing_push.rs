//! A customer's profile and the notices' events pushed to the marketing
//! tool, through the use cases on the in-memory store.

use std::sync::Mutex;

use chrono::Duration;

use cashback_app::events::handle_order_event;
use cashback_app::marketing::{
    push_customer_profile, queued_events, track_queued, EmailChannel, Marketing, MarketingError,
    MarketingEvent, MarketingSettings, Metric, ProfileUpdate, PropertyValue, PushOutcome,
};
use cashback_app::notices::Notice;
use cashback_app::notify::NotificationKind;
use cashback_core::ids::{CustomerId, Email};
use cashback_core::order::OrderEvent;

use crate::support::*;

#[derive(Default)]
struct KeptMarketing {
    profiles: Mutex<Vec<ProfileUpdate>>,
    events: Mutex<Vec<MarketingEvent>>,
    refuse_events: bool,
}

#[async_trait::async_trait]
impl Marketing for KeptMarketing {
    async fn push_profile(&self, update: &ProfileUpdate) -> Result<(), MarketingError> {
        self.profiles.lock().unwrap().push(update.clone());
        Ok(())
    }

    async fn track(&self, event: &MarketingEvent) -> Result<(), MarketingError> {
        if self.refuse_events {
            return Err(MarketingError::transient("down"));
        }
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}

#[tokio::test]
async fn the_profile_carries_the_ledger_figures_and_the_next_release() {
    let world = world(program()).await;
    let mut paid = order("1001", "ann", vec![line("1", "80.00", 1)]);
    paid.occurred_at = t0();
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(paid), t0())
        .await
        .unwrap();
    let mut later = order("1002", "ann", vec![line("1", "20.00", 1)]);
    later.occurred_at = t0() + Duration::days(3);
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(later), t0())
        .await
        .unwrap();

    let marketing = KeptMarketing::default();
    let ann = CustomerId::parse("ann").unwrap();
    let outcome = push_customer_profile(
        &world.ctx,
        &marketing,
        &MarketingSettings::default(),
        &shop(),
        &ann,
    )
    .await
    .unwrap();
    let PushOutcome::Pushed(update) = outcome else {
        panic!("expected a push, got {outcome:?}");
    };
    assert_eq!(update.profile.email.as_str(), "ann@example.com");
    let p = &update.properties;
    assert_eq!(
        p["cashback_pending"],
        PropertyValue::Amount(usd("10.00").amount())
    );
    assert_eq!(
        p["cashback_balance"],
        PropertyValue::Amount(usd("0.00").amount())
    );
    // The earliest of the two orders' releases (30 days by default).
    let PropertyValue::Time(next) = p["cashback_next_release_date"] else {
        panic!("no next release date: {p:?}");
    };
    assert!(next >= t0() + Duration::days(30) && next < t0() + Duration::days(33));
    assert_eq!(marketing.profiles.lock().unwrap().len(), 1);

    let nobody = CustomerId::parse("nobody").unwrap();
    let missing = push_customer_profile(
        &world.ctx,
        &marketing,
        &MarketingSettings::default(),
        &shop(),
        &nobody,
    )
    .await;
    assert!(missing.is_err());
}

fn notices() -> Vec<Notice> {
    vec![Notice {
        key: "tier:ann:0".into(),
        shop: shop(),
        customer: CustomerId::parse("ann").unwrap(),
        to: Email::parse("ann@example.com").unwrap(),
        kind: NotificationKind::TierUpgraded {
            tier_name: "Gold".into(),
            percent: "5".into(),
        },
    }]
}

#[tokio::test]
async fn events_follow_the_programs_email_channel() {
    let marketing = KeptMarketing::default();
    let mut program = cashback_test_support::fixtures::program();
    assert_eq!(program.email_channel, EmailChannel::Ses);
    assert!(queued_events(&program, &notices(), t0()).is_empty());

    for channel in [EmailChannel::Klaviyo, EmailChannel::Both] {
        program.email_channel = channel;
        let queued = queued_events(&program, &notices(), t0());
        assert_eq!(queued.len(), 1);
        assert!(track_queued(&marketing, &queued).await.is_empty());
    }
    let events = marketing.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.metric == Metric::TierUpgraded
        && e.unique_id == "tier:ann:0"
        && e.time == t0()));

    let down = KeptMarketing {
        refuse_events: true,
        ..KeptMarketing::default()
    };
    program.email_channel = EmailChannel::Klaviyo;
    let failed = track_queued(&down, &queued_events(&program, &notices(), t0())).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "tier:ann:0");
    assert!(failed[0].1.is_retryable());
}

/// The webhook's notices under each channel: what SES sent, what the
/// outbox holds, and that the same event again adds neither.
async fn paid_under(channel: EmailChannel) -> (usize, Vec<String>) {
    let mut program = program();
    program.email_channel = channel;
    let world = world(program).await;
    let mut paid = order("1001", "ann", vec![line("1", "80.00", 1)]);
    paid.occurred_at = t0();
    for _ in 0..2 {
        handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(paid.clone()), t0())
            .await
            .unwrap();
    }
    let events = world
        .store
        .take_marketing_events()
        .into_iter()
        .map(|(written_for, event)| {
            assert_eq!(written_for, shop());
            assert_eq!(event.at, t0());
            assert_eq!(event.event().metric, Metric::CashbackEarned);
            event.key
        })
        .collect();
    let sent = world.notifier.sent.lock().unwrap().len();
    (sent, events)
}

#[tokio::test]
async fn each_channel_sends_each_email_once_through_ses_klaviyo_or_both() {
    assert_eq!(paid_under(EmailChannel::Ses).await, (1, vec![]));
    assert_eq!(
        paid_under(EmailChannel::Klaviyo).await,
        (0, vec!["earned:ann:1001".to_string()])
    );
    assert_eq!(
        paid_under(EmailChannel::Both).await,
        (1, vec!["earned:ann:1001".to_string()])
    );
}
