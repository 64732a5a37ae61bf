//! The coupon-validate router end to end on the in-memory store: answers,
//! refusals with their figures, holds, and every HTTP edge (400, 401, 404,
//! 413, 429 with Retry-After); and the attacks on the guess limit and on
//! the read budget.

use axum::http::StatusCode;
use serde_json::json;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cashback_app::checkout::{GUESS_LIMIT, MAX_OTHER_DISCOUNTS, MAX_STRING_CHARS};
use cashback_app::store::Store;
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};
use cashback_store::MemoryStore;
use coupon_validate::{router, MAX_BODY_BYTES};

use crate::support::*;

#[tokio::test]
async fn a_customers_code_answers_200_with_the_discount_the_balances_and_the_cashback() {
    let ctx = memory_context("30.00").await;
    let (status, response, json) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body("cb-ann0000000001", Some("ann"), "100.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(json["valid"], true);
    assert_eq!(json["kind"], "customer_balance");
    assert_eq!(
        json["discount"],
        json!({"amount": "30.00", "currency": "USD"})
    );
    assert_eq!(json["balance_before"]["amount"], "30.00");
    assert_eq!(json["balance_after"]["amount"], "0.00");
    assert_eq!(json["cashback"]["total"]["amount"], "7.00");
    assert_eq!(json["hold"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_refusal_is_200_with_the_typed_reason_and_the_figure_that_failed() {
    let ctx = memory_context("30.00").await;
    let (status, _, json) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body(ANN_CODE, Some("ann"), "10.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["valid"], false);
    assert_eq!(
        json["refusal"],
        json!({
            "reason": "below_minimum_subtotal",
            "minimum": {"amount": "20.00", "currency": "USD"},
            "subtotal": {"amount": "10.00", "currency": "USD"},
        })
    );
    assert_eq!(json["message"], "minimum subtotal 20.00 USD");
    assert_eq!(json["discount"]["amount"], "0.00");
}

#[tokio::test]
async fn a_reserve_answers_with_the_hold_and_a_second_reserve_replaces_it() {
    let ctx = memory_context("30.00").await;
    let mut request = body(ANN_CODE, Some("ann"), "25.00");
    request["reserve"] = json!({"checkout_id": "chk-1", "ttl_seconds": 120});
    let (_, _, first) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(first["hold"]["checkout_id"], "chk-1");
    assert_eq!(first["hold"]["amount"]["amount"], "25.00");
    request["cart"]["subtotal"] = json!("28.00");
    request["cart"]["lines"][0]["unit_price"] = json!("28.00");
    let (_, _, second) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(second["hold"]["amount"]["amount"], "28.00");
    assert_eq!(second["balance_before"]["amount"], "30.00");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_json_error() {
    let ctx = memory_context("30.00").await;
    for bad in ["{not json", "{\"code\": \"x\"}", "[]"] {
        let (status, _, json) = send(
            router(ctx.clone()),
            post(&validate_uri("demo.myshopify.com"), Some(API_KEY), bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(json["error"]["code"], "malformed", "{bad}");
    }
}

#[tokio::test]
async fn an_amount_that_is_not_money_is_a_400_naming_the_field() {
    let ctx = memory_context("30.00").await;
    let mut request = body(ANN_CODE, None, "25.00");
    request["cart"]["lines"][0]["unit_price"] = json!("25.001");
    let (status, _, json) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["code"], "invalid_fields");
    assert_eq!(
        json["error"]["fields"][0]["field"],
        "cart.lines[0].unit_price"
    );
}

#[tokio::test]
async fn an_unknown_shop_is_a_404() {
    let ctx = memory_context("30.00").await;
    for shop in ["other.myshopify.com", "not a shop"] {
        let (status, _, json) = send(
            router(ctx.clone()),
            post(
                &validate_uri(&shop.replace(' ', "%20")),
                Some(API_KEY),
                body(ANN_CODE, None, "25.00").to_string(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{shop}");
        assert_eq!(json["error"]["code"], "unknown_shop");
    }
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_a_401_before_the_body_is_read() {
    let ctx = memory_context("30.00").await;
    for key in [None, Some("cbk_wrong")] {
        let (status, _, json) = send(
            router(ctx.clone()),
            post(&validate_uri("demo.myshopify.com"), key, "{not even json"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn a_body_past_the_limit_is_a_413() {
    let ctx = memory_context("30.00").await;
    let huge = format!("{{\"code\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let (status, _, json) = send(
        router(ctx),
        post(&validate_uri("demo.myshopify.com"), Some(API_KEY), huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn repeated_unknown_codes_get_429_with_retry_after() {
    let ctx = memory_context("30.00").await;
    let guess = |n: u64| {
        let mut request = body(&format!("CB-GUESS{n}"), None, "25.00");
        request["caller"] = json!("203.0.113.9");
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        )
    };
    for n in 0..GUESS_LIMIT {
        let (status, _, json) = send(router(ctx.clone()), guess(n)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json["refusal"]["reason"], "unknown_code");
    }
    let (status, response, json) = send(router(ctx.clone()), guess(99)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json["error"]["code"], "rate_limited");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after));
    // Past the limit a known code is refused too: a 429 only for unknown
    // codes would itself tell a guesser which codes exist.
    let (status, _, _) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body(ANN_CODE, None, "25.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_new_caller_field_per_request_does_not_reset_the_guess_limit() {
    let ctx = memory_context("30.00").await;
    // The attack: the body's `caller` is the client's to choose, so a
    // guesser sends a new one with every request.
    let guess = |n: u64, code: &str| {
        let mut request = body(code, None, "25.00");
        request["caller"] = json!(format!("203.0.113.{n}"));
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            request.to_string(),
        )
    };
    for n in 0..GUESS_LIMIT {
        let (status, _, _) = send(router(ctx.clone()), guess(n, &format!("CB-GUESS{n}"))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, json) = send(router(ctx.clone()), guess(99, "CB-GUESS99")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    let (status, _, _) = send(router(ctx), guess(100, ANN_CODE)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn another_container_on_the_same_table_refuses_a_source_over_the_limit() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = seed_context(store.clone(), "30.00").await;
    for n in 0..=GUESS_LIMIT {
        send(
            router(first.clone()),
            post(
                &validate_uri("demo.myshopify.com"),
                Some(API_KEY),
                body(&format!("CB-GUESS{n}"), None, "25.00").to_string(),
            ),
        )
        .await;
    }
    // The guesser's next request lands on a container that has never seen
    // it (its own caches, the same table): refused, even for a real code.
    let second = fresh_context(store);
    let (status, response, _) = send(
        router(second),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body(ANN_CODE, None, "25.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

/// Counts every call that reaches the store.
#[derive(Default)]
struct CountCalls(AtomicUsize);

impl Interceptor for CountCalls {
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        let _ = call;
        self.0.fetch_add(1, Ordering::SeqCst);
        run
    }
}

#[tokio::test]
async fn an_oversized_validation_is_refused_before_a_single_read() {
    let store = Arc::new(Intercepted::new(
        Arc::new(MemoryStore::new()),
        CountCalls::default(),
    ));
    let ctx = seed_context(store.clone(), "30.00").await;
    // Warm the container (shop, program, keys), as a busy checkout has it.
    let (status, _, _) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            body(ANN_CODE, Some("ann"), "25.00").to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The attack: well under the 256 KiB body limit, 2,000 other discounts,
    // each naming a coupon the first read would fetch (on DynamoDB, 21
    // BatchGetItems of 100 keys for one request).
    let mut request = body(ANN_CODE, Some("ann"), "25.00");
    request["cart"]["other_discounts"] = (0..2000)
        .map(|n| json!({"kind": "order", "amount": "0.01", "code": format!("c{n}")}))
        .collect();
    let text = request.to_string();
    assert!(text.len() < MAX_BODY_BYTES);
    let before = store.interceptor().0.load(Ordering::SeqCst);
    let (status, _, json) = send(
        router(ctx.clone()),
        post(&validate_uri("demo.myshopify.com"), Some(API_KEY), text),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "invalid_fields");
    assert_eq!(json["error"]["fields"][0]["field"], "cart.other_discounts");
    assert_eq!(
        store.interceptor().0.load(Ordering::SeqCst),
        before,
        "nothing read"
    );

    // A long string is refused the same way; the most a request may carry
    // costs one read.
    let mut long = body(ANN_CODE, Some("ann"), "25.00");
    long["cart"]["lines"][0]["sku"] = json!("x".repeat(MAX_STRING_CHARS + 1));
    let (status, _, json) = send(
        router(ctx.clone()),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            long.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["fields"][0]["field"], "cart.lines[0].sku");
    let mut most = body(ANN_CODE, Some("ann"), "25.00");
    most["cart"]["other_discounts"] = (0..MAX_OTHER_DISCOUNTS)
        .map(|n| json!({"kind": "order", "amount": "0.01", "code": format!("c{n}")}))
        .collect();
    let before = store.interceptor().0.load(Ordering::SeqCst);
    let (status, _, _) = send(
        router(ctx),
        post(
            &validate_uri("demo.myshopify.com"),
            Some(API_KEY),
            most.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store.interceptor().0.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_flood_of_requests_for_a_made_up_shop_costs_one_read_a_minute() {
    let store = Arc::new(Intercepted::new(
        Arc::new(MemoryStore::new()),
        CountCalls::default(),
    ));
    let ctx = seed_context(store.clone(), "30.00").await;
    let before = store.interceptor().0.load(Ordering::SeqCst);
    for _ in 0..50 {
        let (status, _, json) = send(
            router(ctx.clone()),
            post(
                &validate_uri("made-up.myshopify.com"),
                Some(API_KEY),
                body(ANN_CODE, None, "25.00").to_string(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json["error"]["code"], "unknown_shop");
    }
    assert_eq!(store.interceptor().0.load(Ordering::SeqCst) - before, 1);
}
