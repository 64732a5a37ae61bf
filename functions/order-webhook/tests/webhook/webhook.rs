//! The order webhook end to end: each sample event of `events/` through the
//! router to the ledger, every refusal, replays and out-of-order delivery,
//! and referrals. Each case runs on the in-memory store and on DynamoDB
//! through moto (skipped without `MOTO_ENDPOINT`, see
//! `cashback_test_support::moto`).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_core::ledger::EntryKind;
use cashback_platforms::MAX_BODY_BYTES;
use cashback_test_support::samples::{
    self, shopify_delivery, Stage, DEMO_SECRET, GENERIC_CUSTOMER_ID, GENERIC_ORDER_ID,
    GENERIC_SIGNED_AT, SHOPIFY_REFERRAL_CODE, WOO_CUSTOMER_ID, WOO_ORDER_ID,
};

/// Runs each named case once per store adapter: `memory::<case>` and
/// `dynamodb::<case>`.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Backend::Memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if crate::support::moto_configured(stringify!($case)) {
                        super::$case(super::Backend::Dynamo).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    each_shopify_topic_moves_the_ledger_as_the_order_history_says,
    woocommerce_deliveries_earn_then_claw_back_their_refunds,
    woocommerce_ping_is_answered_without_touching_the_store,
    generic_paid_and_refund_events_reach_the_ledger,
    every_signature_failure_is_401_and_writes_nothing,
    the_previous_secret_is_accepted_while_rotating,
    a_generic_delivery_past_its_tolerance_is_401,
    malformed_json_is_400_and_writes_nothing,
    an_unknown_shop_is_404_and_an_unknown_platform_too,
    an_oversized_body_is_413,
    a_topic_the_engine_does_not_use_is_200_and_writes_nothing,
    a_redelivered_event_is_a_200_duplicate_with_no_second_write,
    a_referrer_is_paid_once_for_a_referred_customers_first_order,
    self_referral_pays_nothing,
    replays_in_a_few_orders_end_like_one_clean_delivery,
);

#[test]
fn the_event_files_are_exactly_what_the_samples_generate() {
    // Signatures cover exact bytes: an edited file would fail for a reason
    // that is hard to see. Regenerate with the make-events example.
    for sample in samples::all(GENERIC_SIGNED_AT) {
        let path = format!(
            "{}/../../events/{}",
            env!("CARGO_MANIFEST_DIR"),
            sample.file
        );
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            sample.api_gateway_event(),
            "{} is stale: cargo run -p order-webhook --example make-events",
            sample.file
        );
    }
}

#[tokio::test]
async fn a_store_that_cannot_take_the_write_answers_503_so_the_platform_retries() {
    let flaky = std::sync::Arc::new(crate::support::flaky_store(true));
    let world = crate::support::world(flaky.clone()).await;
    let (status, body) = deliver(&world, "shopify-orders-paid.json").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(account(&world, &shopify_customer()).await.is_none());

    // The platform's retry, once the store is back, applies the event.
    flaky
        .interceptor()
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
}

#[tokio::test]
async fn a_shop_without_a_program_yet_gets_200_and_nothing_is_earned() {
    let store = crate::support::memory_store();
    store
        .create_shop(&cashback_app::store::Shop {
            shop: demo_shop(),
            platform: cashback_app::store::Platform::Shopify,
            currency: cashback_core::money::Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: samples::DEMO_SECRET_REF.into(),
            api_key_hash: String::new(),
            created_at: now(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    let ctx = cashback_app::Context::new(
        store.clone(),
        std::sync::Arc::new(KeptNotifier::default()),
        std::sync::Arc::new(CountingCodes(std::sync::Mutex::new(0))),
        cashback_app::AppConfig::default(),
    );
    let secrets = std::sync::Arc::new(order_webhook::secrets::SecretCache::new(
        std::sync::Arc::new(order_webhook::secrets::FixedSecrets::new([(
            samples::DEMO_SECRET_REF,
            DEMO_SECRET,
        )])),
        300,
    ));
    let router = order_webhook::router(
        order_webhook::WebhookState::new(ctx, secrets).with_clock(std::sync::Arc::new(now)),
    );
    let response = tower::ServiceExt::oneshot(router, event_request("shopify-orders-paid.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(store.request_counts().writes, 0);
}

fn summary(received: usize, applied: usize, duplicates: usize, ignored: usize) -> Value {
    json!({
        "status": "processed",
        "received": received,
        "applied": applied,
        "duplicates": duplicates,
        "ignored": ignored,
    })
}

async fn each_shopify_topic_moves_the_ledger_as_the_order_history_says(backend: Backend) {
    let world = backend.world().await;
    let customer = shopify_customer();

    // 10% of 141.75 (merchandise after TRAIL10, without shipping) = 14.175.
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    let after_paid = account(&world, &customer).await.unwrap();
    assert_eq!(after_paid.pending, usd("14.17"));
    assert!(after_paid.code.is_some());

    // The program earns on paid: fulfilled is recorded, changes no balance.
    assert_eq!(
        deliver(&world, "shopify-orders-fulfilled.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    assert_eq!(
        account(&world, &customer).await.unwrap().pending,
        usd("14.17")
    );

    // One pair of socks (11.25 of 141.75): 14.17 x 11.25 / 141.75 = 1.12.
    deliver(&world, "shopify-refunds-create.json").await;
    assert_eq!(
        account(&world, &customer).await.unwrap().pending,
        usd("13.05")
    );
    // The shoe too: cumulatively 14.17 x 119.25 / 141.75 = 11.92.
    deliver(&world, "shopify-refunds-create-second.json").await;
    assert_eq!(
        account(&world, &customer).await.unwrap().pending,
        usd("2.25")
    );
    // Cancelled: the rest of the pending cashback is voided.
    assert_eq!(
        deliver(&world, "shopify-orders-cancelled.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    let last = account(&world, &customer).await.unwrap();
    assert!(last.pending.is_zero() && last.available.is_zero() && last.debt.is_zero());

    let entries = ledger(&world, &customer).await;
    assert_eq!(
        entries.iter().filter(|e| e.kind == EntryKind::Earn).count(),
        1
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Clawback)
            .count(),
        3
    );
    last.check(&entries).unwrap();
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert!(record.cancelled);
    assert_eq!(record.clawed_back, usd("14.17"));
}

async fn woocommerce_deliveries_earn_then_claw_back_their_refunds(backend: Backend) {
    let world = backend.world().await;
    let customer = WOO_CUSTOMER_ID.to_string();
    assert_eq!(
        deliver(&world, "woocommerce-order-created.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    assert_eq!(
        account(&world, &customer).await.unwrap().pending,
        usd("8.00")
    );

    // Completed with two refunds: paid again (a duplicate), fulfilled, and
    // each refund, 20.00 of the 80.00 the merchandise cost (85.00 paid less
    // 5.00 shipping): 8.00 x 20 / 80 = 2.00.
    assert_eq!(
        deliver(&world, "woocommerce-order-updated-refunds.json").await,
        (StatusCode::OK, summary(4, 3, 1, 0))
    );
    let account = account(&world, &customer).await.unwrap();
    assert_eq!(account.pending, usd("6.00"));
    account.check(&ledger(&world, &customer).await).unwrap();
    let record = order_record(&world, &WOO_ORDER_ID.to_string())
        .await
        .unwrap();
    assert_eq!(record.refunds.len(), 2);
}

async fn woocommerce_ping_is_answered_without_touching_the_store(backend: Backend) {
    let world = backend.world().await;
    let before = world.store.request_counts();
    assert_eq!(
        deliver(&world, "woocommerce-ping.json").await,
        (StatusCode::OK, json!({"status": "ping"}))
    );
    assert_eq!(world.store.request_counts(), before);
}

async fn generic_paid_and_refund_events_reach_the_ledger(backend: Backend) {
    let world = backend.world().await;
    assert_eq!(
        deliver(&world, "generic-order-paid.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    assert_eq!(
        account(&world, GENERIC_CUSTOMER_ID).await.unwrap().pending,
        usd("10.00")
    );
    // Two of the four bulbs: 10.00 of 100.00 eligible.
    assert_eq!(
        deliver(&world, "generic-order-refunded.json").await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    assert_eq!(
        account(&world, GENERIC_CUSTOMER_ID).await.unwrap().pending,
        usd("9.00")
    );
    assert!(order_record(&world, GENERIC_ORDER_ID).await.is_some());
}

/// A request's headers, as name/value pairs.
type Headers = Vec<(String, String)>;

/// Sends `request`, expects 401 `invalid_signature`, and checks nothing was
/// read or written.
async fn assert_refused_401(
    world: &World,
    what: &str,
    request: axum::http::Request<axum::body::Body>,
) {
    let before = world.store.request_counts();
    let (status, body) = send(world, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"]["code"], "invalid_signature", "{what}");
    let after = world.store.request_counts();
    assert_eq!(after.writes, before.writes, "{what} wrote");
    assert_eq!(after.reads, before.reads, "{what} read ledger data");
}

async fn every_signature_failure_is_401_and_writes_nothing(backend: Backend) {
    let world = backend.world().await;
    let sample = samples::named("shopify-orders-paid.json", GENERIC_SIGNED_AT).unwrap();
    let hmac = "X-Shopify-Hmac-Sha256";
    let good = sample
        .headers
        .iter()
        .find(|(n, _)| n == hmac)
        .map(|(_, v)| v.clone())
        .unwrap();

    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "missing",
            with_header(&sample.headers, hmac, None),
            sample.body.clone().into(),
        ),
        (
            "wrong secret",
            shopify_delivery("orders/paid", &sample.body, "not-the-secret"),
            sample.body.clone().into(),
        ),
        (
            "another shop's secret",
            shopify_delivery("orders/paid", &sample.body, OTHER_SECRET),
            sample.body.clone().into(),
        ),
        (
            "truncated",
            with_header(&sample.headers, hmac, Some(&good[..good.len() - 8])),
            sample.body.clone().into(),
        ),
        (
            "not base64",
            with_header(&sample.headers, hmac, Some("!!not*base64!!")),
            sample.body.clone().into(),
        ),
        (
            "empty",
            with_header(&sample.headers, hmac, Some("")),
            sample.body.clone().into(),
        ),
        (
            "body changed after signing",
            sample.headers.clone(),
            sample.body.replace("147.75", "1477.50").into_bytes(),
        ),
    ];
    for (what, headers, body) in cases {
        assert_refused_401(&world, what, request("shopify", &headers, body)).await;
    }

    // WooCommerce and generic refuse the same way.
    let woo = samples::named("woocommerce-order-created.json", GENERIC_SIGNED_AT).unwrap();
    let forged = samples::woo_delivery("order.created", &woo.body, "not-the-secret");
    assert_refused_401(
        &world,
        "woocommerce wrong",
        request("woocommerce", &forged, woo.body.clone()),
    )
    .await;
    let unsigned = with_header(&woo.headers, "X-WC-Webhook-Signature", None);
    assert_refused_401(
        &world,
        "woocommerce missing",
        request("woocommerce", &unsigned, woo.body.clone()),
    )
    .await;
    let generic = samples::named("generic-order-paid.json", GENERIC_SIGNED_AT).unwrap();
    let forged = samples::generic_delivery(&generic.body, "not-the-secret", GENERIC_SIGNED_AT);
    assert_refused_401(
        &world,
        "generic wrong",
        request("generic", &forged, generic.body.clone()),
    )
    .await;
    let bare = with_header(&generic.headers, "X-Cashback-Signature", Some("t=oops"));
    assert_refused_401(
        &world,
        "generic malformed",
        request("generic", &bare, generic.body.clone()),
    )
    .await;

    assert!(account(&world, &shopify_customer()).await.is_none());
}

async fn the_previous_secret_is_accepted_while_rotating(backend: Backend) {
    // The env var holds "current,previous"; the samples are signed with the
    // previous one, the merchant's platform not having switched yet.
    let world = backend
        .world_with(&format!("rotated-secret-2026, {DEMO_SECRET}"), now())
        .await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    // And the new one works too.
    let sample = samples::named("shopify-refunds-create.json", GENERIC_SIGNED_AT).unwrap();
    let headers = shopify_delivery("refunds/create", &sample.body, "rotated-secret-2026");
    assert_eq!(
        send(&world, request("shopify", &headers, sample.body)).await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    assert_eq!(world.secrets.fetches(), 1, "secrets are cached per shop");
}

async fn a_generic_delivery_past_its_tolerance_is_401(backend: Backend) {
    let later = chrono::DateTime::from_timestamp(GENERIC_SIGNED_AT + 301, 0).unwrap();
    let world = backend.world_with(DEMO_SECRET, later).await;
    assert_refused_401(
        &world,
        "stale generic",
        event_request("generic-order-paid.json"),
    )
    .await;
    assert!(account(&world, GENERIC_CUSTOMER_ID).await.is_none());
}

async fn malformed_json_is_400_and_writes_nothing(backend: Backend) {
    let world = backend.world().await;
    let before = world.store.request_counts();
    for body in [
        "{\"id\": 1, \"line_items\": [",
        "[]",
        "{\"id\": \"not a number or id#\"}",
    ] {
        let headers = shopify_delivery("orders/paid", body, DEMO_SECRET);
        let (status, json) = send(&world, request("shopify", &headers, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert!(json["error"]["code"].is_string());
        assert!(json["error"]["message"].is_string());
    }
    assert_eq!(world.store.request_counts().writes, before.writes);
    assert_eq!(world.store.request_counts().reads, before.reads);
}

async fn an_unknown_shop_is_404_and_an_unknown_platform_too(backend: Backend) {
    let world = backend.world().await;
    let before = world.store.request_counts();
    let sample = samples::named("shopify-orders-paid.json", GENERIC_SIGNED_AT).unwrap();
    let headers = with_header(
        &sample.headers,
        "X-Shopify-Shop-Domain",
        Some("nobody.myshopify.com"),
    );
    let (status, json) = send(&world, request("shopify", &headers, sample.body.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "unknown_shop");

    let (status, json) = send(&world, request("stripe", &sample.headers, sample.body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "unknown_platform");
    assert_eq!(world.store.request_counts().writes, before.writes);
}

async fn an_oversized_body_is_413(backend: Backend) {
    let world = backend.world().await;
    let before = world.store.request_counts();
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let headers = shopify_delivery("orders/paid", "", DEMO_SECRET);
    // Read until the limit (no length announced)...
    let (status, json) = send(&world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "body_too_large");
    // ...or refused on the announced length alone.
    let mut announced = headers.clone();
    announced.push(("Content-Length".into(), (MAX_BODY_BYTES + 1).to_string()));
    let (status, _) = send(&world, request("shopify", &announced, Vec::new())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(world.store.request_counts(), before);
}

async fn a_topic_the_engine_does_not_use_is_200_and_writes_nothing(backend: Backend) {
    let world = backend.world().await;
    let before = world.store.request_counts();
    let body = samples::shopify_order(Stage::Paid).to_string();
    let headers = shopify_delivery("orders/updated", &body, DEMO_SECRET);
    let (status, json) = send(&world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ignored");
    let after = world.store.request_counts();
    assert_eq!((after.reads, after.writes), (before.reads, before.writes));
}

async fn a_redelivered_event_is_a_200_duplicate_with_no_second_write(backend: Backend) {
    let world = backend.world().await;
    deliver(&world, "shopify-orders-paid.json").await;
    let writes = world.store.request_counts().writes;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await,
        (StatusCode::OK, summary(1, 0, 1, 0))
    );
    assert_eq!(world.store.request_counts().writes, writes);
    assert_eq!(
        account(&world, &shopify_customer()).await.unwrap().pending,
        usd("14.17")
    );
}

async fn a_referrer_is_paid_once_for_a_referred_customers_first_order(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    seed_customer(
        &world,
        "ana",
        "CB-ANA",
        Some("ana@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;

    deliver(&world, "shopify-orders-paid.json").await;
    // Credited off the buyer's transaction, once the change feed caught up.
    feed.catch_up().await;
    let ana = account(&world, "ana").await.unwrap();
    // Pending with the referred order, as any earn under the program.
    assert_eq!(ana.pending, usd("5.00"));
    assert_eq!(ana.lifetime_issued, usd("5.00"));
    let entries = ledger(&world, "ana").await;
    assert_eq!(entries.len(), 1);
    ana.check(&entries).unwrap();

    // A redelivery, and the buyer's second order with the same code.
    deliver(&world, "shopify-orders-paid.json").await;
    let second =
        samples::shopify_order_with(5_920_381_274_650_009_999, "#1077", Stage::Paid).to_string();
    let headers = shopify_delivery("orders/paid", &second, DEMO_SECRET);
    assert_eq!(
        send(&world, request("shopify", &headers, second)).await,
        (StatusCode::OK, summary(1, 1, 0, 0))
    );
    feed.catch_up().await;
    assert_eq!(account(&world, "ana").await.unwrap().pending, usd("5.00"));
    let buyer = account(&world, &shopify_customer()).await.unwrap();
    assert_eq!(buyer.orders_earned, 2);
    assert_eq!(buyer.pending, usd("28.34"));
}

async fn self_referral_pays_nothing(backend: Backend) {
    // The buyer's own code on their own cart...
    let (world, feed) = backend.world_with_reports().await;
    seed_account(&world, &shopify_customer(), SHOPIFY_REFERRAL_CODE, None).await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    let buyer = account(&world, &shopify_customer()).await.unwrap();
    assert!(buyer.available.is_zero());
    assert_eq!(buyer.pending, usd("14.17"));

    // ...or the code of another account with the buyer's email.
    let (world, feed) = backend.world_with_reports().await;
    seed_account(
        &world,
        "maya-old",
        SHOPIFY_REFERRAL_CODE,
        Some("maya.chen@example.com"),
    )
    .await;
    assert_eq!(
        deliver(&world, "shopify-orders-paid.json").await.0,
        StatusCode::OK
    );
    feed.catch_up().await;
    assert!(account(&world, "maya-old")
        .await
        .unwrap()
        .available
        .is_zero());
    assert!(ledger(&world, "maya-old").await.is_empty());
}

/// The balances one delivery history ends in.
async fn balances(world: &World) -> Value {
    let account = account(world, &shopify_customer()).await.unwrap();
    let record = order_record(world, &shopify_order()).await.unwrap();
    account
        .check(&ledger(world, &shopify_customer()).await)
        .unwrap();
    json!({
        "available": account.available.to_string(),
        "pending": account.pending.to_string(),
        "debt": account.debt.to_string(),
        "issued": account.lifetime_issued.to_string(),
        "used": account.lifetime_used.to_string(),
        "spend": account.lifetime_eligible_spend.to_string(),
        "order_pending": record.pending.to_string(),
        // What the order still earns: a cancellation that came first means
        // it never earned, one that came last took it all back.
        "order_kept": record
            .earned
            .as_ref()
            .map_or(record.clawed_back, |e| e.total)
            .checked_sub(record.clawed_back)
            .unwrap()
            .to_string(),
        "cancelled": record.cancelled,
    })
}

const PAID: &str = "shopify-orders-paid.json";
const REFUND_1: &str = "shopify-refunds-create.json";
const REFUND_2: &str = "shopify-refunds-create-second.json";
const CANCEL: &str = "shopify-orders-cancelled.json";

async fn replays_in_a_few_orders_end_like_one_clean_delivery(backend: Backend) {
    for history in [
        &[PAID, REFUND_1, REFUND_2][..],
        &[PAID, REFUND_1, REFUND_2, CANCEL][..],
    ] {
        let clean = backend.world().await;
        for file in history {
            assert_eq!(deliver(&clean, file).await.0, StatusCode::OK);
        }
        let expected = balances(&clean).await;

        // Every order on memory; on DynamoDB (a fresh moto table each) the
        // hardest few.
        let orders = match backend {
            Backend::Memory => permutations(history),
            Backend::Dynamo => hard_orders(history),
        };
        for order in orders {
            // Every event twice, the copies after everything else, backwards.
            let world = backend.world().await;
            for file in order.iter().chain(order.iter().rev()) {
                let (status, body) = deliver(&world, file).await;
                assert_eq!(status, StatusCode::OK, "{order:?}: {body}");
            }
            assert_eq!(balances(&world).await, expected, "delivered as {order:?}");
        }
    }
}

/// Refunds and cancellation before the order, and the reverse.
fn hard_orders<'a>(history: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut reversed = history.to_vec();
    reversed.reverse();
    let mut paid_last = history[1..].to_vec();
    paid_last.push(history[0]);
    vec![reversed, paid_last]
}

fn permutations<'a>(items: &[&'a str]) -> Vec<Vec<&'a str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}
