//! Unsubscribing stops every cashback email, through the real routers: a
//! customer earns (one email), unsubscribes with the link of that email
//! (signed before the link secret was rotated), then earns again, has an
//! order refunded, gets cashback released and reminders fall due. Not one
//! more email. Before, the unsubscribe stopped only the reminders: the
//! "earned", "clawed back", "ready" and tier emails kept coming.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{Duration, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use tower::ServiceExt;

use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::send_reminders;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notices::unsubscribe_signature;
use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::money::Currency;
use cashback_core::program::{Program, ReminderPosition, Tier};
use cashback_store::MemoryStore;
use cashback_test_support::doubles::{KeptNotifier, SeqCodes};
use cashback_test_support::samples::{
    self, Stage, DEMO_SECRET, DEMO_SECRET_REF, DEMO_SHOP, GENERIC_SIGNED_AT, SHOPIFY_CUSTOMER_ID,
};
use customer_api::CustomerApiConfig;
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::WebhookState;

const NEW_LINK_SECRET: &[u8] = b"link-secret-after-rotation-0123456789";
const OLD_LINK_SECRET: &[u8] = b"link-secret-before-rotation-0123456789";

fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.reminders = vec![ReminderPosition {
        position: 0,
        enabled: true,
        offset_days: 0,
        subject: "Your cashback is waiting".into(),
        preview_text: String::new(),
    }];
    // Her second order crosses the threshold: a tier email would be due.
    program.tiers = vec![Tier {
        name: "Gold".into(),
        min_lifetime_spend: dec!(200),
        percent: dec!(12),
    }];
    program
}

async fn post(app: &Router, uri: &str, headers: &[(String, String)], body: String) -> StatusCode {
    let mut builder = Request::post(uri);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test]
async fn an_unsubscribed_customer_gets_no_cashback_email_of_any_kind() {
    let now = Utc
        .timestamp_opt(GENERIC_SIGNED_AT + 10, 0)
        .single()
        .unwrap_or_default();
    let store = Arc::new(MemoryStore::new());
    let shop = ShopId::parse(DEMO_SHOP).unwrap_or_else(|e| panic!("{e}"));
    store
        .create_shop(&Shop {
            shop: shop.clone(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: DEMO_SECRET_REF.into(),
            api_key_hash: String::new(),
            guest_id_key: None,
            created_at: now,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .put_program(&shop, &program(), 0, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let notifier = Arc::new(KeptNotifier::default());
    let ctx = Context::new(
        store.clone(),
        notifier.clone(),
        Arc::new(SeqCodes(Mutex::new(3))),
        AppConfig {
            link_keys: cashback_app::secret_keys::SecretKeys::fixed(
                cashback_app::secret_keys::KeySet {
                    current: NEW_LINK_SECRET.to_vec(),
                    previous: vec![OLD_LINK_SECRET.to_vec()],
                },
            ),
            ..AppConfig::default()
        },
    );
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([(DEMO_SECRET_REF, DEMO_SECRET)])),
        300,
    ));
    let webhook = WebhookState::new(ctx.clone(), secrets).with_clock(Arc::new(move || now));
    let app = Router::new()
        .merge(order_webhook::router(webhook))
        .merge(customer_api::router_with(
            ctx.clone(),
            CustomerApiConfig {
                shopify_app_secret: None,
                proxy_max_age_seconds: 300,
            },
        ));
    let sent = || notifier.sent.lock().map(|s| s.len()).unwrap_or(0);

    // 1. Her first order: the "earned" email.
    let paid = samples::named("shopify-orders-paid.json", GENERIC_SIGNED_AT)
        .unwrap_or_else(|| panic!("sample"));
    assert_eq!(
        post(&app, "/webhooks/shopify", &paid.headers, paid.body).await,
        StatusCode::OK
    );
    assert_eq!(sent(), 1, "the earned email");

    // 2. She clicks unsubscribe in an email sent before the link secret was
    //    rotated (signed with the previous key). A forged link is refused.
    let maya =
        CustomerId::parse(&SHOPIFY_CUSTOMER_ID.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let link = |secret: &[u8]| {
        format!(
            "/v1/shops/{DEMO_SHOP}/customers/{maya}/unsubscribe?sig={}",
            unsubscribe_signature(secret, &shop, &maya)
        )
    };
    let json = [("accept".to_string(), "application/json".to_string())];
    assert_eq!(
        post(
            &app,
            &link(b"a-key-we-never-had-0123456789abcdef"),
            &json,
            String::new()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&app, &link(OLD_LINK_SECRET), &json, String::new()).await,
        StatusCode::OK
    );

    // 3. A second order (crossing the Gold tier), then a refund of the first.
    let second =
        samples::shopify_order_with(5_920_381_274_650_008_888, "#1088", Stage::Paid).to_string();
    let headers = samples::shopify_delivery("orders/paid", &second, DEMO_SECRET);
    assert_eq!(
        post(&app, "/webhooks/shopify", &headers, second).await,
        StatusCode::OK
    );
    let refund = samples::named("shopify-refunds-create.json", GENERIC_SIGNED_AT)
        .unwrap_or_else(|| panic!("sample"));
    assert_eq!(
        post(&app, "/webhooks/shopify", &refund.headers, refund.body).await,
        StatusCode::OK
    );

    // 4. A month later: her cashback is released, a reminder falls due.
    let later = now + Duration::days(31);
    let config = JobConfig {
        finish_reserve: StdDuration::ZERO,
        ..JobConfig::default()
    };
    let far = tokio::time::Instant::now() + StdDuration::from_secs(3600);
    let released = promote_due(&ctx, &TokioClock, &config, later, far)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(released.released >= 1, "{released:?}");
    send_reminders(&ctx, &TokioClock, &config, later, far)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let kinds: Vec<String> = notifier
        .sent
        .lock()
        .map(|s| s.iter().map(|n| n.kind.name().to_string()).collect())
        .unwrap_or_default();
    assert_eq!(kinds, ["earned"], "emails after unsubscribing");
}
