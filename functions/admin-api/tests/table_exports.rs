//! Exports of the whole table to S3 through the admin router: started,
//! listed and followed on moto (DynamoDB and S3), refused where the
//! deployment cannot export, and never open to a caller without the admin
//! credentials.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, SecondsFormat, Utc};

use cashback_store::dynamo::DynamoTableExports;
use cashback_store::MemoryStore;
use cashback_test_support::moto;
use support::*;

#[tokio::test]
async fn without_dynamodb_and_a_bucket_an_export_is_refused_with_the_reason() {
    let ctx = seed(Arc::new(MemoryStore::new())).await;
    let started = send(app(&ctx), request("POST", "/v1/table-exports", None, &[])).await;
    assert_eq!(started.status, StatusCode::CONFLICT, "{}", started.json);
    let message = started.json["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("CASHBACK_EXPORT_BUCKET"), "{message}");
    let listed = send(app(&ctx), request("GET", "/v1/table-exports", None, &[])).await;
    assert_eq!(listed.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_caller_without_the_admin_token_can_neither_start_nor_read_exports() {
    let ctx = seed(Arc::new(MemoryStore::new())).await;
    for (method, uri) in [
        ("POST", "/v1/table-exports"),
        ("GET", "/v1/table-exports"),
        ("GET", "/v1/table-exports/0123-abcd"),
    ] {
        let mut anonymous = request(method, uri, None, &[]);
        anonymous.headers_mut().remove("authorization");
        let answer = send(app(&ctx), anonymous).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let mut wrong = request(method, uri, None, &[]);
        wrong.headers_mut().insert(
            "authorization",
            "Bearer not-the-token".parse().expect("a header value"),
        );
        let answer = send(app(&ctx), wrong).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

#[tokio::test]
async fn on_dynamodb_an_export_is_started_followed_to_completed_and_lands_in_the_bucket() {
    let Some(store) = moto::fresh_store("table_export").await else {
        return;
    };
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("a store on moto");
    let bucket = moto::unique_table_name("exports")
        .to_lowercase()
        .replace('_', "-");
    moto::create_bucket(&endpoint, &bucket).await;
    let exports = DynamoTableExports::new(store.client().clone(), store.table_name(), &bucket);
    let store = Arc::new(store);
    let ctx = seed(store.clone())
        .await
        .with_table_exports(Arc::new(exports));
    pay(&ctx, "o-1", "ann", "100.00").await;

    // Refused before anything starts: a moment to come, one beyond the window.
    let now = Utc::now();
    for (at, why) in [
        (now + Duration::hours(1), "future"),
        (now - Duration::days(36), "35 days"),
    ] {
        let uri = format!(
            "/v1/table-exports?export_time={}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        let refused = send(app(&ctx), request("POST", &uri, None, &[])).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
        assert!(refused.json.to_string().contains(why), "{}", refused.json);
    }
    let garbled = "/v1/table-exports?export_time=yesterday";
    let refused = send(app(&ctx), request("POST", garbled, None, &[])).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(moto::bucket_keys(&endpoint, &bucket).await.is_empty());

    let started = send(app(&ctx), request("POST", "/v1/table-exports", None, &[])).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.json);
    let id = started.json["id"].as_str().expect("an id").to_string();
    let prefix = started.json["prefix"]
        .as_str()
        .expect("a prefix")
        .to_string();
    assert_eq!(started.json["bucket"], bucket.as_str());
    assert!(prefix.starts_with("exports/"), "{prefix}");

    // moto writes the export on a thread of its own: follow it as an
    // operator would.
    let mut followed = serde_json::Value::Null;
    for _ in 0..50 {
        let answer = send(
            app(&ctx),
            request("GET", &format!("/v1/table-exports/{id}"), None, &[]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        followed = answer.json;
        if followed["status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(followed["status"], "completed", "{followed}");
    assert!(
        followed["item_count"].as_u64().unwrap_or(0) > 0,
        "{followed}"
    );
    let keys = moto::bucket_keys(&endpoint, &bucket).await;
    assert!(
        keys.iter()
            .any(|key| key.starts_with(&format!("{prefix}/AWSDynamoDB/"))),
        "{keys:?}"
    );

    let listed = send(app(&ctx), request("GET", "/v1/table-exports", None, &[])).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(listed.json["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|item| item["id"] == id.as_str())));

    let unknown = send(
        app(&ctx),
        request("GET", "/v1/table-exports/no-such-export", None, &[]),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let hostile = send(
        app(&ctx),
        request("GET", "/v1/table-exports/..%2F..%2Fetc", None, &[]),
    )
    .await;
    assert_eq!(hostile.status, StatusCode::BAD_REQUEST);
}
