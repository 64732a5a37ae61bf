//! A sample of the admin router on DynamoDB (moto). Skipped without
//! `MOTO_ENDPOINT`, unless `REQUIRE_MOTO=1`.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;

use cashback_test_support::moto;
use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

#[tokio::test]
async fn on_dynamodb_adjustments_replay_and_reports_and_exports_read_the_aggregates() {
    let Some(store) = moto::fresh_store("admin_api_sample").await else {
        return;
    };
    let store = Arc::new(store);
    let ctx = seed(store.clone()).await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    pay(&ctx, "o-2", "bob", "40.00").await;
    pay(&ctx, "o-3", "bob", "60.00").await;
    let uri = format!("{BASE}/customers/ann/adjustments");
    let body = r#"{"amount":"2.50","reason":"goodwill"}"#;
    let first = send(
        app(&ctx),
        request("POST", &uri, Some(body), &[("idempotency-key", "dyn-1")]),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.json);
    let replay = send(
        app(&ctx),
        request("POST", &uri, Some(body), &[("idempotency-key", "dyn-1")]),
    )
    .await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.json, first.json);
    let other = send(
        app(&ctx),
        request(
            "POST",
            &uri,
            Some(r#"{"amount":"3.00","reason":"goodwill"}"#),
            &[("idempotency-key", "dyn-1")],
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT);

    // Reports lag the ledger: the aggregator reads the table's stream first.
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("a store on moto");
    cashback_test_support::reports::catch_up_on_moto(&store, &endpoint).await;
    let today = chrono::Utc::now().date_naive();
    let report = send(
        app(&ctx),
        request(
            "GET",
            &format!("{BASE}/reports?from={today}&to={today}"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.json);
    assert_eq!(report.json["issued"]["total"], "20.00");
    assert_eq!(report.json["adjusted"]["credited"], "2.50");
    assert_eq!(report.json["liability"]["total"], "22.50");
    assert_eq!(report.json["customers"]["total"], 2);
    assert_eq!(report.json["customers"]["repeat"], 1);
    assert_eq!(report.json["repeat_purchase_rate"], "0.5");

    let export = send(
        app(&ctx),
        request("GET", &format!("{BASE}/profiles?limit=1"), None, &[]),
    )
    .await;
    assert_eq!(export.json["items"][0]["customer_id"], "ann");
    assert_eq!(
        export.json["items"][0]["properties"]["cashback_balance"],
        "2.50"
    );
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
async fn on_dynamodb_an_import_claims_codes_once_and_a_replay_credits_nothing() {
    let Some(store) = moto::fresh_store("admin_api_import").await else {
        return;
    };
    let ctx = seed(Arc::new(store)).await;
    pay(&ctx, "o-1", "alice", "100.00").await;
    let alice = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/alice"), None, &[]),
    )
    .await;
    let taken = alice.json["code"].as_str().unwrap().to_string();
    let release = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    let file = format!(
        "customer_id,email,balance,code,pending,pending_release_at\n\
         101,ann@example.com,12.50,ANN-OLD,4.20,{release}\n\
         mallory,mallory@example.com,50.00,{taken},,\n"
    );
    let run = |file: String| {
        let ctx = ctx.clone();
        async move {
            send(
                app(&ctx),
                request("POST", &format!("{BASE}/imports"), Some(&file), &[]),
            )
            .await
        }
    };
    let first = run(file.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(first.json["imported"], 1);
    assert_eq!(first.json["refused"][0]["line"], 3);
    let again = run(file).await;
    assert_eq!(again.json["imported"], 0);
    assert_eq!(again.json["already_imported"], 1);
    let ann = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/101"), None, &[]),
    )
    .await;
    assert_eq!(ann.json["available"], "12.50");
    assert_eq!(ann.json["pending"], "4.20");
    assert_eq!(ann.json["code"], "ANN-OLD");
    let mallory = send(
        app(&ctx),
        request("GET", &format!("{BASE}/customers/mallory"), None, &[]),
    )
    .await;
    assert_eq!(mallory.status, StatusCode::NOT_FOUND);
}
