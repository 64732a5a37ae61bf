//! Deliveries whose unsigned headers lie about the signed body, through the
//! router: a captured body relabelled with another topic, a body of another
//! shop, and a platform's test order. Each is an attack (or a mistake) that
//! moved money before these checks; now it is refused with 400 and nothing
//! is written, or, for test orders, ignored unless the program says so.
//! Each case runs on the in-memory store and on DynamoDB through moto
//! (skipped without `MOTO_ENDPOINT`).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_test_support::samples::{
    self, shopify_delivery, woo_delivery, Stage, DEMO_SECRET, SHOPIFY_CUSTOMER_ID, WOO_ORDER_ID,
};

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
    a_paid_order_replayed_as_cancelled_claws_nothing_back,
    a_shopify_body_under_another_orders_topic_is_refused,
    a_woocommerce_subscription_relabelled_as_an_order_is_refused,
    a_body_naming_another_shop_is_refused,
    a_test_order_earns_nothing_unless_the_program_says_so,
);

fn customer() -> String {
    SHOPIFY_CUSTOMER_ID.to_string()
}

/// Sends `body` with `headers` and expects a 400 with `code` and not one
/// write.
async fn assert_refused(
    world: &World,
    platform: &str,
    headers: &[(String, String)],
    body: &str,
    code: &str,
) {
    let before = world.store.request_counts();
    let (status, json) = send(world, request(platform, headers, body.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], code, "{json}");
    assert_eq!(
        world.store.request_counts().writes,
        before.writes,
        "{code}: written"
    );
}

async fn a_paid_order_replayed_as_cancelled_claws_nothing_back(backend: Backend) {
    let world = backend.world().await;
    let paid = samples::named("shopify-orders-paid.json", 0).unwrap();
    let (status, _) = send(&world, request("shopify", &paid.headers, paid.body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        account(&world, &customer()).await.unwrap().pending,
        usd("14.17")
    );

    // The captured delivery, signature untouched, with only the topic
    // header changed: before, this voided the customer's cashback.
    let relabelled = with_header(&paid.headers, "X-Shopify-Topic", Some("orders/cancelled"));
    assert_refused(&world, "shopify", &relabelled, &paid.body, "topic_mismatch").await;
    let after = account(&world, &customer()).await.unwrap();
    assert_eq!(after.pending, usd("14.17"));
    let record = order_record(&world, &samples::SHOPIFY_ORDER_ID.to_string())
        .await
        .unwrap();
    assert!(!record.cancelled);
}

async fn a_shopify_body_under_another_orders_topic_is_refused(backend: Backend) {
    let world = backend.world().await;
    let paid = samples::shopify_order(Stage::Paid).to_string();
    let cancelled = samples::shopify_order(Stage::Cancelled).to_string();
    let refund = samples::named("shopify-refunds-create.json", 0)
        .unwrap()
        .body;
    for (topic, body) in [
        // Not fulfilled yet: would earn on a fulfilment trigger.
        ("orders/fulfilled", &paid),
        // A cancelled order must not earn as a paid one.
        ("orders/paid", &cancelled),
        // A refund is not a cancellation, an order is not a refund.
        ("orders/cancelled", &refund),
        ("refunds/create", &paid),
    ] {
        let headers = shopify_delivery(topic, body, DEMO_SECRET);
        assert_refused(&world, "shopify", &headers, body, "topic_mismatch").await;
    }
    // An order that is not paid yet (cash on delivery) earns nothing on paid.
    let mut pending = samples::shopify_order(Stage::Paid);
    pending["financial_status"] = json!("pending");
    let pending = pending.to_string();
    let headers = shopify_delivery("orders/paid", &pending, DEMO_SECRET);
    assert_refused(&world, "shopify", &headers, &pending, "topic_mismatch").await;
    assert!(account(&world, &customer()).await.is_none());
}

async fn a_woocommerce_subscription_relabelled_as_an_order_is_refused(backend: Backend) {
    let world = backend.world().await;
    // WooCommerce Subscriptions keeps subscriptions beside orders (same ids,
    // statuses such as cancelled) and signs them with the site's secret: a
    // captured subscription.updated relabelled order.updated would cancel.
    let mut subscription = samples::woo_order(false);
    subscription["id"] = json!(WOO_ORDER_ID + 1);
    subscription["parent_id"] = json!(WOO_ORDER_ID);
    subscription["status"] = json!("cancelled");
    subscription["billing_period"] = json!("month");
    subscription["billing_interval"] = json!("1");
    let body = subscription.to_string();
    let headers = woo_delivery("order.updated", &body, DEMO_SECRET);
    assert_refused(&world, "woocommerce", &headers, &body, "topic_mismatch").await;
    assert!(order_record(&world, &(WOO_ORDER_ID + 1).to_string())
        .await
        .is_none());

    // The order itself still goes through.
    let order = samples::woo_order(false).to_string();
    let headers = woo_delivery("order.updated", &order, DEMO_SECRET);
    let (status, json) = send(&world, request("woocommerce", &headers, order)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

async fn a_body_naming_another_shop_is_refused(backend: Backend) {
    let world = backend.world().await;
    // With one app-wide secret every shop's deliveries verify everywhere: an
    // order of another shop sent under this shop's header.
    let mut order = samples::shopify_order(Stage::Paid);
    order["order_status_url"] = json!(format!(
        "https://{OTHER_SHOP}/548380009/orders/b1946ac92492d2347c6235b4d2611184/authenticate?key=x"
    ));
    let body = order.to_string();
    let headers = shopify_delivery("orders/paid", &body, DEMO_SECRET);
    assert_refused(&world, "shopify", &headers, &body, "shop_mismatch").await;
    assert!(account(&world, &customer()).await.is_none());

    // Its own shop in the URL is fine.
    order["order_status_url"] = json!(format!(
        "https://{}/548380009/orders/b1946ac92492d2347c6235b4d2611184/authenticate?key=x",
        samples::DEMO_SHOP
    ));
    let body = order.to_string();
    let headers = shopify_delivery("orders/paid", &body, DEMO_SECRET);
    let (status, json) = send(&world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");

    // WooCommerce: the order's own REST link names its site.
    let mut woo = samples::woo_order(false);
    woo["_links"] = json!({"self": [{"href": format!("https://coffee.example.org/wp-json/wc/v3/orders/{WOO_ORDER_ID}")}]});
    let body = woo.to_string();
    let headers = woo_delivery("order.updated", &body, DEMO_SECRET);
    assert_refused(&world, "woocommerce", &headers, &body, "shop_mismatch").await;
}

async fn a_test_order_earns_nothing_unless_the_program_says_so(backend: Backend) {
    let world = backend.world().await;
    let mut order = samples::shopify_order(Stage::Paid);
    order["test"] = json!(true);
    let body = order.to_string();
    let headers = shopify_delivery("orders/paid", &body, DEMO_SECRET);
    let before = world.store.request_counts();
    let (status, json) = send(&world, request("shopify", &headers, body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["applied"], 0, "{json}");
    assert_eq!(json["ignored"], 1, "{json}");
    assert_eq!(world.store.request_counts().writes, before.writes);
    assert!(account(&world, &customer()).await.is_none());

    // A program that lets test orders earn (a shop trying the program out).
    let mut program = program();
    program.test_orders_earn = true;
    let version = world
        .store
        .get_program(&demo_shop())
        .await
        .unwrap()
        .map(|p| p.version)
        .unwrap_or(0);
    world
        .store
        .put_program(&demo_shop(), &program, version, now())
        .await
        .unwrap();
    world.ctx.invalidate(&demo_shop());
    let (status, json): (StatusCode, Value) =
        send(&world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["applied"], 1, "{json}");
    assert_eq!(
        account(&world, &customer()).await.unwrap().pending,
        usd("14.17")
    );
}

/// The merchant's app configuration (docs/shopify/shopify.app.toml)
/// subscribes to every Shopify topic the engine acts on, at the webhook's
/// path, with the proxy and the scopes the engine needs.
#[test]
fn the_shopify_app_configuration_subscribes_to_every_topic_the_engine_uses() {
    let path = format!(
        "{}/../../docs/shopify/shopify.app.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let config = std::fs::read_to_string(&path).unwrap();
    let topics = [
        "orders/create",
        "orders/paid",
        "orders/fulfilled",
        "orders/cancelled",
        "refunds/create",
        "app/uninstalled",
        "customers/data_request",
        "customers/redact",
        "shop/redact",
    ];
    for topic in topics {
        assert!(
            config.contains(&format!("\"{topic}\"")),
            "{path} does not subscribe to {topic}"
        );
    }
    assert!(config.contains("uri = \"https://<ApiUrl>/webhooks/shopify\""));
    assert!(config.contains("url = \"https://<ApiUrl>/pages/proxy\""));
    assert!(config.contains("scopes = \"read_orders,write_discounts,read_customers\""));
}
