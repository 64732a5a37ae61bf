//! A sample of the router tests on DynamoDB (moto). Skipped without
//! `MOTO_ENDPOINT`, unless `REQUIRE_MOTO=1`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;

use cashback_app::notices::unsubscribe_signature;
use cashback_core::ids::CustomerId;
use customer_api::{proxy, router_with, CustomerApiConfig};

use crate::support::*;
use cashback_test_support::moto;

fn config() -> CustomerApiConfig {
    CustomerApiConfig {
        shopify_app_secret: Some(cashback_app::secret_keys::SecretKeys::one(b"hush".to_vec())),
        proxy_max_age_seconds: 300,
    }
}

#[tokio::test]
async fn on_dynamodb_a_proxied_customer_sees_their_cashback_and_can_unsubscribe() {
    let Some(store) = moto::fresh_store("customer_api_sample").await else {
        return;
    };
    let ctx = seed(Arc::new(store), "30.00").await;
    let mut params: Vec<(String, String)> = vec![
        ("shop".into(), "demo.myshopify.com".into()),
        ("logged_in_customer_id".into(), "ann".into()),
        ("path_prefix".into(), "/apps/cashback".into()),
        ("timestamp".into(), Utc::now().timestamp().to_string()),
    ];
    let signature = proxy::sign(b"hush", &params);
    params.push(("signature".into(), signature));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let (status, _, json) = send(
        router_with(ctx.clone(), config()),
        get(
            &format!(
                "/v1/shops/demo.myshopify.com/customers/ann/cashback?{}",
                query.join("&")
            ),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["available"]["amount"], "30.00");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(1));

    let sig = unsubscribe_signature(
        cashback_test_support::fixtures::link_key(&ctx),
        &shop(),
        &CustomerId::parse("ann").unwrap(),
    );
    let uri = format!("/v1/shops/demo.myshopify.com/customers/ann/unsubscribe?sig={sig}");
    for expected in ["unsubscribed", "already_unsubscribed"] {
        let request = Request::post(&uri)
            .header("accept", "application/json")
            .body(Body::empty())
            .unwrap();
        let (status, _, json) = send(router_with(ctx.clone(), config()), request).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["status"], expected);
    }
}

#[tokio::test]
async fn on_dynamodb_pending_cashback_shows_each_orders_release_date() {
    use cashback_app::events::handle_order_event;
    use cashback_core::ids::{Email, LineId, OrderId};
    use cashback_core::order::{CustomerRef, Line, Order, OrderEvent};

    let Some(store) = moto::fresh_store("customer_api_pending").await else {
        return;
    };
    let ctx = seed(Arc::new(store), "30.00").await;
    for (id, days, price) in [("o1", 0, "100.00"), ("o2", 2, "40.00")] {
        let at = t0() + chrono::Duration::days(days);
        let paid = Order {
            order_id: OrderId::parse(id).unwrap(),
            customer: CustomerRef {
                id: Some(CustomerId::parse("ann").unwrap()),
                email: Some(Email::parse("ann@example.com").unwrap()),
            },
            currency: cashback_core::money::Currency::USD,
            lines: vec![Line {
                line_id: LineId::parse("1").unwrap(),
                product_id: None,
                variant_id: None,
                sku: None,
                vendor: None,
                quantity: 1,
                unit_price: usd(price),
                discount: usd("0"),
                included_tax: None,
                gift_card: false,
                compare_at_price: None,
                collection_ids: Vec::new(),
            }],
            subtotal: usd(price),
            shipping: usd("0"),
            total: usd(price),
            discount_codes: Vec::new(),
            checkout_id: None,
            payment_methods: Vec::new(),
            placed_at: None,
            referral_code: None,
            occurred_at: at,
        };
        handle_order_event(&ctx, &shop(), &OrderEvent::Paid(paid), at)
            .await
            .unwrap();
    }
    let (status, _, json) = send(
        router_with(ctx, config()),
        get(
            "/v1/shops/demo.myshopify.com/customers/ann/cashback",
            Some(API_KEY),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["pending"]["amount"], "14.00");
    let releases = json["pending_releases"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = releases
        .iter()
        .map(|r| {
            (
                r["order_id"].as_str().unwrap(),
                r["amount"]["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("o1", "10.00"), ("o2", "4.00")]);
    assert_eq!(releases[0]["release_at"], "2026-02-04T09:00:00Z");
}
