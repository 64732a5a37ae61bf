//! Outgoing events on the local server: the change log's second consumer.
//! The server takes the in-memory store's changes once after each request
//! and hands the same batch to the report sums and to the delivery here
//! (a fan-out: one taker), as the table's stream feeds both functions on
//! AWS. Endpoints on 127.0.0.1 or localhost (plain HTTP, any port) are
//! accepted locally, so a merchant's endpoint under development works;
//! nothing is published to an event bus.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use cashback_app::changes::Change;
use cashback_app::outgoing::delivery::{fill_balances, Deliverer, DeliverySettings, EventSender};
use cashback_app::outgoing::events_from_changes;
use cashback_app::outgoing::url::{SystemResolver, UrlPolicy};
use cashback_store::MemoryStore;
use event_delivery::HttpSender;

/// What endpoints may point at locally.
pub const LOCAL_POLICY: UrlPolicy = UrlPolicy::AllowLoopback;

fn sender() -> Option<&'static HttpSender> {
    static SENDER: OnceLock<HttpSender> = OnceLock::new();
    let sender = SENDER.get_or_init(|| HttpSender::new(Duration::from_secs(10)));
    match sender.ready() {
        Ok(()) => Some(sender),
        Err(error) => {
            warn!(%error, "no HTTPS client: outgoing events are not delivered");
            None
        }
    }
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        policy: LOCAL_POLICY,
        ..DeliverySettings::default()
    }
}

/// Delivers the events of `changes` off the request (the answer does not
/// wait for a merchant's endpoint).
pub fn deliver_in_background(store: Arc<MemoryStore>, changes: Vec<Change>, now: DateTime<Utc>) {
    tokio::spawn(async move {
        let Some(sender) = sender() else { return };
        let mut events = events_from_changes(&changes, now);
        if events.is_empty() {
            return;
        }
        if let Err(error) = fill_balances(store.as_ref(), &mut events).await {
            warn!(%error, "balances of outgoing events not read");
        }
        let deliverer = Deliverer {
            endpoints: store.as_ref(),
            sender,
            resolver: &SystemResolver,
            settings: settings(),
        };
        let outcome = deliverer.deliver(&events, now).await;
        if outcome.delivered + outcome.retrying + outcome.parked > 0 {
            info!(
                delivered = outcome.delivered,
                retrying = outcome.retrying,
                parked = outcome.parked,
                "outgoing events delivered"
            );
        }
    });
}

/// The retries due at `now` (the job timer's run).
pub async fn retry_due(store: &MemoryStore, now: DateTime<Utc>) {
    let Some(sender) = sender() else { return };
    let deliverer = Deliverer {
        endpoints: store,
        sender,
        resolver: &SystemResolver,
        settings: settings(),
    };
    match deliverer.retry_due(now, 500).await {
        Ok(outcome) if outcome.delivered + outcome.retrying + outcome.parked > 0 => info!(
            delivered = outcome.delivered,
            retrying = outcome.retrying,
            parked = outcome.parked,
            "outgoing event retries ran"
        ),
        Ok(_) => {}
        Err(error) => warn!(%error, "outgoing event retries failed"),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use cashback_test_support::fakes::merchant::FakeMerchant;

    use crate::clock::VirtualClock;
    use crate::seed::{DEMO_ADMIN_TOKEN, DEMO_SHOP};
    use crate::server::{app, Local};

    use super::*;

    async fn call(
        app: &axum::Router,
        method: &str,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {DEMO_ADMIN_TOKEN}"))
            .header("content-type", "application/json")
            .header("idempotency-key", "local-events-1")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_local_server_delivers_an_adjustment_to_an_endpoint_on_loopback() {
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn cashback_app::store::Store> = memory.clone();
        let clock = VirtualClock::new();
        crate::seed::seed(store.as_ref(), clock.now())
            .await
            .unwrap();
        let program = store
            .get_program(&cashback_test_support::fixtures::shop())
            .await
            .unwrap()
            .unwrap();
        cashback_test_support::world::seed_balance(
            store.as_ref(),
            &program.value,
            "local-ann",
            "ANN-CODE-1",
            "10.00",
        )
        .await;
        // The seed's own changes are not this test's events.
        memory.take_changes();
        let outbox =
            std::env::temp_dir().join(format!("cashback-local-events-{}", std::process::id()));
        let ctx = crate::context(store, &outbox, "http://127.0.0.1:3000".into()).unwrap();
        let local = Local {
            ctx,
            clock,
            outbox,
            store_name: "memory".into(),
            reports: Some(memory.clone()),
        };
        let app = app(local);
        let merchant = FakeMerchant::start().await;
        let endpoints = format!("/v1/shops/{DEMO_SHOP}/event-endpoints");
        let (status, created) =
            call(&app, "POST", &endpoints, json!({"url": merchant.url()})).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        merchant.hold_secrets(&[created["secret"].as_str().unwrap()]);

        let adjust = format!("/v1/shops/{DEMO_SHOP}/customers/local-ann/adjustments");
        let (status, body) = call(
            &app,
            "POST",
            &adjust,
            json!({"amount": "5.00", "reason": "welcome"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // Delivered off the request: wait for it.
        for _ in 0..100 {
            if !merchant.received().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let received = merchant.received();
        assert_eq!(received.len(), 1, "{received:?}");
        assert!(received[0].verified);
        assert_eq!(received[0].kind, "adjusted");
        assert_eq!(received[0].body["amount"], "5.00");
        assert_eq!(received[0].body["balance_after"]["available"], "15.00");
        // The report sums got the same change (one taker, two consumers).
        assert!(memory.take_changes().is_empty());
    }
}
