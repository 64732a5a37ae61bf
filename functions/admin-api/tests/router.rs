//! The admin router on the in-memory store, through `oneshot`: status
//! codes, JSON shapes and headers as docs/openapi.yaml describes them.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_edge::auth::hash_api_key;
use cashback_store::MemoryStore;

use admin_api::{router_with, AdminAuth};
use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

async fn ctx() -> cashback_app::Context {
    seed(Arc::new(MemoryStore::new())).await
}

#[tokio::test]
async fn without_the_admin_token_nothing_is_answered() {
    let ctx = ctx().await;
    let mut anonymous = request("GET", &format!("{BASE}/program"), None, &[]);
    anonymous.headers_mut().remove("authorization");
    let answer = send(app(&ctx), anonymous).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json["error"]["code"], "unauthorized");
    let mut wrong = request("GET", &format!("{BASE}/program"), None, &[]);
    wrong
        .headers_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        send(app(&ctx), wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    // No token configured off Lambda: closed, whatever is sent.
    let closed = router_with(ctx.clone(), AdminAuth::new(None, false));
    let answer = send(
        closed,
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // With IAM trusted explicitly, API Gateway's IAM authoriser has decided:
    // the request carries the caller it allowed.
    let iam = router_with(ctx.clone(), AdminAuth::new(None, true));
    let signed = iam_request("GET", &format!("{BASE}/program"), None, ADMIN_ARN);
    assert_eq!(send(iam.clone(), signed).await.status, StatusCode::OK);
    // ... and one that did not come through it is refused.
    let mut unsigned = request("GET", &format!("{BASE}/program"), None, &[]);
    unsigned.headers_mut().remove("authorization");
    assert_eq!(send(iam, unsigned).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        AdminAuth::new(Some(hash_api_key("t")), true),
        AdminAuth::Token(hash_api_key("t")),
        "a configured token is checked on Lambda too"
    );
}

#[tokio::test]
async fn the_program_is_read_and_replaced_with_its_version_as_etag() {
    let ctx = ctx().await;
    let answer = send(
        app(&ctx),
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["version"], 1);
    assert_eq!(answer.json["program"]["earning"]["merchant_percent"], "10");
    assert_eq!(answer.headers["etag"], "\"1\"");

    let bad = r#"{"currency":"USD","earning":{"merchant_percent":"101"},"hold_ttl_seconds":0}"#;
    let answer = send(
        app(&ctx),
        request("PUT", &format!("{BASE}/program"), Some(bad), &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json["error"]["code"], "invalid_fields");
    let fields: Vec<&str> = answer.json["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["earning.merchant_percent", "hold_ttl_seconds"]);

    let good = r#"{"currency":"USD","earning":{"merchant_percent":"8"}}"#;
    let answer = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/program"),
            Some(good),
            &[("if-match", "\"1\"")],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["version"], 2);
    assert_eq!(answer.headers["etag"], "\"2\"");
    let stale = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/program"),
            Some(good),
            &[("if-match", "\"1\"")],
        ),
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let first = send(
        app(&ctx),
        request("GET", &format!("{BASE}/program/versions/1"), None, &[]),
    )
    .await;
    assert_eq!(first.json["program"]["earning"]["merchant_percent"], "10");
    let unknown = send(
        app(&ctx),
        request("GET", "/v1/shops/nobody.myshopify.com/program", None, &[]),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json["error"]["code"], "unknown_shop");
}

#[tokio::test]
async fn coupons_are_created_listed_approved_and_paused_over_http() {
    let ctx = ctx().await;
    let body = r#"{"code":"WELCOME","display_name":"5 back",
        "reward":{"type":"fixed","amount":"5.00"}}"#;
    let created = send(
        app(&ctx),
        request("POST", &format!("{BASE}/coupons"), Some(body), &[]),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json);
    assert_eq!(created.json["coupon"]["code"], "welcome");
    assert_eq!(created.json["coupon"]["status"], "draft");
    assert_eq!(created.json["uses"], 0);
    let again = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/coupons"),
            Some(&body.replace("WELCOME", "welcome")),
            &[],
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let approved = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/coupons/Welcome/approve"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(approved.json["coupon"]["status"], "approved");
    let paused = send(
        app(&ctx),
        request("POST", &format!("{BASE}/coupons/welcome/pause"), None, &[]),
    )
    .await;
    assert_eq!(paused.json["coupon"]["status"], "paused");
    assert_eq!(paused.json["version"], 3);
    let list = send(
        app(&ctx),
        request("GET", &format!("{BASE}/coupons?limit=10"), None, &[]),
    )
    .await;
    assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
    assert!(list.json["next_cursor"].is_null());
    let missing = send(
        app(&ctx),
        request("GET", &format!("{BASE}/coupons/nope"), None, &[]),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad_limit = send(
        app(&ctx),
        request("GET", &format!("{BASE}/coupons?limit=0"), None, &[]),
    )
    .await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_limit.json["error"]["fields"][0]["field"], "limit");
}

#[tokio::test]
async fn an_adjustment_is_idempotent_by_its_key_over_http() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    let uri = format!("{BASE}/customers/ann/adjustments");
    let body = r#"{"amount":"5.00","reason":"sorry"}"#;
    let first = send(
        app(&ctx),
        request("POST", &uri, Some(body), &[("idempotency-key", "k-1")]),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(first.json["customer"]["available"], "5.00");
    let replay = send(
        app(&ctx),
        request("POST", &uri, Some(body), &[("idempotency-key", "k-1")]),
    )
    .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json, first.json);
    let other = send(
        app(&ctx),
        request(
            "POST",
            &uri,
            Some(r#"{"amount":"9.00","reason":"sorry"}"#),
            &[("idempotency-key", "k-1")],
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    let keyless = send(app(&ctx), request("POST", &uri, Some(body), &[])).await;
    assert_eq!(keyless.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        keyless.json["error"]["fields"][0]["field"],
        "Idempotency-Key"
    );
    let refused = send(
        app(&ctx),
        request(
            "POST",
            &uri,
            Some(r#"{"amount":"-500.00","reason":"oops"}"#),
            &[("idempotency-key", "k-2")],
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.json["error"]["code"], "ledger_refused");
    let ledger = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers/ann/ledger?limit=1"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(ledger.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(ledger.json["items"][0]["kind"], "adjust");
    assert!(ledger.json["next_cursor"].is_string());
    let next = encode(ledger.json["next_cursor"].as_str().unwrap());
    let older = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers/ann/ledger?limit=1&cursor={next}"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(older.json["items"][0]["kind"], "earn");
}

#[tokio::test]
async fn customers_are_looked_up_regenerated_and_exported_over_http() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    pay(&ctx, "o-2", "bob", "50.00").await;
    let ann = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/ann"), None, &[]),
    )
    .await;
    assert_eq!(ann.status, StatusCode::OK);
    assert_eq!(ann.json["pending"], "10.00");
    let code = ann.json["code"].as_str().unwrap().to_string();
    let by_code = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers?code={}", code.to_lowercase()),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(by_code.json["customer_id"], "ann");
    let by_email = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/customers?email=BOB%40example.com"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(by_email.json["customer_id"], "bob");
    let neither = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers"), None, &[]),
    )
    .await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
    let regenerated = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/customers/ann/regenerate-code"),
            None,
            &[],
        ),
    )
    .await;
    assert_ne!(regenerated.json["code"].as_str().unwrap(), code);
    let old = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers?code={code}"), None, &[]),
    )
    .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    let profile = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/bob/profile"), None, &[]),
    )
    .await;
    assert_eq!(
        profile.json["properties"]["cashback_pending_balance"],
        "5.00"
    );
    let export = send(
        app(&ctx),
        request("GET", &format!("{BASE}/profiles?limit=1"), None, &[]),
    )
    .await;
    assert_eq!(export.json["items"][0]["customer_id"], "ann");
    let cursor = encode(export.json["next_cursor"].as_str().unwrap());
    let rest = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/profiles?limit=1&cursor={cursor}"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(rest.json["items"][0]["customer_id"], "bob");
    assert!(rest.json["next_cursor"].is_null());
}

#[tokio::test]
async fn onboarding_shows_the_api_key_once_and_stores_its_hash() {
    let ctx = ctx().await;
    let body = r#"{"shop":"fresh.myshopify.com","platform":"woocommerce","name":"Fresh",
        "currency":"USD","webhook_secret_ref":"env:CASHBACK_SECRET_FRESH"}"#;
    let answer = send(app(&ctx), request("POST", "/v1/shops", Some(body), &[])).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let key = answer.json["api_key"].as_str().unwrap();
    assert!(key.starts_with("cbk_"));
    assert!(answer.json["shop"].get("api_key_hash").is_none());
    let stored = ctx
        .store
        .get_shop(&cashback_core::ids::ShopId::parse("fresh.myshopify.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.api_key_hash, hash_api_key(key));
    let again = send(app(&ctx), request("POST", "/v1/shops", Some(body), &[])).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let malformed = send(app(&ctx), request("POST", "/v1/shops", Some("{"), &[])).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_catalog_and_a_report_answer_over_http() {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    let imported = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/catalog"),
            Some(r#"{"products":[{"product_id":"p1","collection_ids":["c1"],"compare_at_price":"12.00"}]}"#),
            &[],
        ),
    )
    .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.json);
    assert_eq!(imported.json["imported"], 1);
    pay(&ctx, "o-1", "ann", "100.00").await;
    // Reports lag the ledger: the aggregator reads the feed first.
    cashback_test_support::reports::catch_up(&store).await;
    let today = chrono::Utc::now().date_naive();
    let uri = format!("{BASE}/reports?from={today}&to={today}");
    let report = send(app(&ctx), request("GET", &uri, None, &[])).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.json);
    assert_eq!(report.json["issued"]["total"], "10.00");
    assert_eq!(report.json["liability"]["pending"], "10.00");
    assert_eq!(report.json["customers"]["total"], 1);
    let bad = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/reports?from=yesterday&to={today}"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["fields"][0]["field"], "from");
}

#[tokio::test]
async fn an_adjustment_over_the_programs_maximum_is_refused_and_changes_nothing() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    let mut capped = program();
    capped.max_adjustment = Some(rust_decimal_macros::dec!(50));
    let put = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/program"),
            Some(&serde_json::to_string(&capped).unwrap()),
            &[],
        ),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let before = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/ann"), None, &[]),
    )
    .await;
    let uri = format!("{BASE}/customers/ann/adjustments");
    // The attack: a leaked admin credential credits a friend a fortune (or
    // wipes a customer out) in one request.
    for (amount, key) in [("5000.00", "big-credit"), ("-50.01", "big-debit")] {
        let body = format!(r#"{{"amount":"{amount}","reason":"generous"}}"#);
        let answer = send(
            app(&ctx),
            request("POST", &uri, Some(&body), &[("idempotency-key", key)]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
        assert_eq!(answer.json["error"]["fields"][0]["field"], "amount");
        // Nothing stored under the key either: a corrected retry may use it.
        let fine = send(
            app(&ctx),
            request("GET", &format!("{BASE}/customers/ann/ledger"), None, &[]),
        )
        .await;
        assert!(!fine.json.to_string().contains("generous"));
    }
    let after = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/ann"), None, &[]),
    )
    .await;
    assert_eq!(after.json, before.json, "data unchanged");
    let within = send(
        app(&ctx),
        request(
            "POST",
            &uri,
            Some(r#"{"amount":"50.00","reason":"goodwill"}"#),
            &[("idempotency-key", "big-credit")],
        ),
    )
    .await;
    assert_eq!(within.status, StatusCode::CREATED, "{}", within.json);
    // Zero or a negative maximum is no maximum: refused by name.
    let bad = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/program"),
            Some(r#"{"currency":"USD","max_adjustment":"0"}"#),
            &[],
        ),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"]["fields"][0]["field"], "max_adjustment");
}

#[tokio::test]
async fn every_change_records_the_iam_caller_who_made_it() {
    let ctx = ctx().await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    let iam = || router_with(ctx.clone(), AdminAuth::new(None, true));
    let adjusted = send(
        iam(),
        iam_request(
            "POST",
            &format!("{BASE}/customers/ann/adjustments"),
            Some(r#"{"amount":"5.00","reason":"late parcel"}"#),
            ADMIN_ARN,
        ),
    )
    .await;
    // The idempotency key is required: send it again with one.
    assert_eq!(adjusted.status, StatusCode::BAD_REQUEST);
    let mut with_key = iam_request(
        "POST",
        &format!("{BASE}/customers/ann/adjustments"),
        Some(r#"{"amount":"5.00","reason":"late parcel"}"#),
        ADMIN_ARN,
    );
    with_key
        .headers_mut()
        .insert("idempotency-key", "iam-1".parse().unwrap());
    let adjusted = send(iam(), with_key).await;
    assert_eq!(adjusted.status, StatusCode::CREATED, "{}", adjusted.json);
    assert_eq!(adjusted.json["adjustment"]["by"], ADMIN_ARN);
    let ledger = send(
        iam(),
        iam_request(
            "GET",
            &format!("{BASE}/customers/ann/ledger?limit=1"),
            None,
            ADMIN_ARN,
        ),
    )
    .await;
    assert_eq!(
        ledger.json["items"][0]["note"],
        format!("late parcel (by {ADMIN_ARN})")
    );

    let put = send(
        iam(),
        iam_request(
            "PUT",
            &format!("{BASE}/program"),
            Some(r#"{"currency":"USD","changed_by":"someone-else"}"#),
            ADMIN_ARN,
        ),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json);
    let version = put.json["version"].as_u64().unwrap();
    let kept = send(
        iam(),
        iam_request(
            "GET",
            &format!("{BASE}/program/versions/{version}"),
            None,
            ADMIN_ARN,
        ),
    )
    .await;
    assert_eq!(kept.json["program"]["changed_by"], ADMIN_ARN);

    let regenerated = send(
        iam(),
        iam_request(
            "POST",
            &format!("{BASE}/customers/ann/regenerate-code"),
            None,
            ADMIN_ARN,
        ),
    )
    .await;
    assert_eq!(regenerated.status, StatusCode::OK);
    assert_eq!(regenerated.json["code_changed_by"], ADMIN_ARN);
    // With the admin token instead, the token is what is recorded.
    let regenerated = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/customers/ann/regenerate-code"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(regenerated.json["code_changed_by"], "admin-token");
}

/// Status and body, whatever the body's type (the exports answer CSV).
async fn status_and_body(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn the_lambda_router_built_in_parts_answers_every_route_as_the_whole_router() {
    // The Lambda's router builds each part on its first request; the local
    // server and the tests above merge the whole one. Each gets its own
    // store, and the same requests in the same order.
    let whole = app(&ctx().await);
    let in_parts = admin_api::router(ctx().await, Some(hash_api_key(TOKEN)));
    let paths = admin_api::route_paths();
    assert!(paths.len() >= 34, "{paths:?}");
    let unknown = [
        "/",
        "/v1",
        "/v1/nowhere",
        "/v1/shops/demo.myshopify.com/customersX",
    ];
    // Paths that are not the routes as written: each router answers them
    // as the other does.
    let tricks = [
        "//v1/shops/demo.myshopify.com/customers/ann",
        "/v1/shops/demo.myshopify.com/customers/ann/",
        "/v1/shops/demo.myshopify.com//customers/ann",
        "/v1/shops/demo.myshopify.com/%63ustomers/ann",
        "/v1/shops/demo.myshopify.com/customers/ann/../ledger",
        "/V1/shops/demo.myshopify.com/customers/ann",
        "/v1/shops/demo.myshopify.com/program/../customers/ann",
        "/v1/shops/demo%2Emyshopify.com/customers/ann",
    ];
    let mut sweep = cashback_test_support::seeded::RouteSweep::new(&paths, &unknown, &tricks);
    let uris = sweep.uris.clone();
    for uri in &uris {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for with_token in [false, true] {
                let request = || {
                    let mut request = request(method, uri, None, &[]);
                    if !with_token {
                        request.headers_mut().remove("authorization");
                    }
                    request
                };
                let expected = status_and_body(&whole, request()).await;
                let answer = status_and_body(&in_parts, request()).await;
                assert_eq!(answer.0, expected.0, "{method} {uri} token: {with_token}");
                if expected.0.is_client_error() {
                    assert_eq!(answer.1, expected.1, "{method} {uri} token: {with_token}");
                }
                if with_token {
                    sweep.answered(uri, expected.0, &expected.1);
                }
            }
        }
    }
    sweep.assert_routes_answered();
}
