//! Prepares what `run.sh` needs to start the functions as on Lambda against
//! moto: a table from template.yaml with the demo shop and its program, a
//! checkpoint for each job an hour before the scheduled event (so a run
//! reads two hours of buckets, not the week a first run looks back), and
//! the invocation events: two Shopify `orders/paid` deliveries of ten lines
//! (different orders, so the warm one is not a duplicate) as API Gateway
//! sends them, an EventBridge schedule event, and one request for each API
//! function: the first order's customer view (customer-api), a code
//! checked at checkout (coupon-validate; an unknown code, as the
//! customer's own is random; `coupon-validate-<n>.json`, each from another
//! caller), the program (admin-api, admin token `bench-admin-token`) and
//! the dashboard's sign-in page (pages).
//!
//! ```text
//! MOTO_ENDPOINT=... cargo run --release -p cashback-benches --example coldstart_setup -- <dir>
//! ```
//! Prints `CASHBACK_TABLE=<name>` for the caller to export.

use std::sync::Arc;

use chrono::Duration;

use cashback_app::jobs::promote::PROMOTE_JOB;
use cashback_app::jobs::reminders::REMINDERS_JOB;
use cashback_app::store::{due_bucket, Store};
use cashback_benches::webhook::{
    customer_id, now, order_id, paid_body, program, world_on, BENCH_API_KEY,
};
use cashback_store::DynamoStore;
use cashback_test_support::moto;
use cashback_test_support::samples::{shopify_delivery, Sample, DEMO_SECRET};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Checkout requests written, each from its own caller (two per round of
/// `benches/run.sh coldstart`, so up to 100 rounds).
const VALIDATE_EVENTS: u32 = 200;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: coldstart_setup <dir>")?,
    );
    std::fs::create_dir_all(&dir)?;
    let endpoint = moto::endpoint("coldstart_setup").ok_or("MOTO_ENDPOINT is not set")?;
    let sdk = moto::sdk_config().await;
    let admin = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    let table = moto::unique_table_name("coldstart");
    cashback_store::dynamo::schema::create_table(&admin, &table, &moto::table_properties()).await?;
    let store = Arc::new(DynamoStore::from_sdk_config(
        &sdk,
        table.clone(),
        Some(&endpoint),
    ));
    world_on(store.clone(), &program()).await;

    let event_time = now() + Duration::days(31);
    for job in [PROMOTE_JOB, REMINDERS_JOB] {
        store
            .put_checkpoint(job, &due_bucket(event_time - Duration::hours(1)))
            .await?;
    }
    for n in [1u64, 2] {
        let body = paid_body(order_id(n), customer_id(n));
        let sample = Sample {
            file: "bench.json",
            platform: "shopify",
            headers: shopify_delivery("orders/paid", &body, DEMO_SECRET),
            body,
        };
        std::fs::write(
            dir.join(format!("webhook-paid-{n}.json")),
            sample.api_gateway_event().to_string(),
        )?;
    }
    let scheduled = serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": event_time.to_rfc3339(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/cashback-schedule"],
        "detail": {}
    });
    std::fs::write(dir.join("scheduled.json"), scheduled.to_string())?;

    let shop = cashback_benches::webhook::demo_shop();
    let key = format!("Bearer {BENCH_API_KEY}");
    let requests = [
        (
            "customer-view.json",
            "GET /v1/shops/{shop}/customers/{id}/cashback",
            "GET",
            format!("/v1/shops/{shop}/customers/{}/cashback", customer_id(1)),
            key,
            String::new(),
        ),
        (
            "admin-program.json",
            "ANY /v1/shops/{shop}/program",
            "GET",
            format!("/v1/shops/{shop}/program"),
            "Bearer bench-admin-token".to_string(),
            String::new(),
        ),
        (
            "pages-login.json",
            "GET /dashboard/login",
            "GET",
            "/dashboard/login".to_string(),
            String::new(),
            String::new(),
        ),
    ];
    for (file, route, method, path, authorization, body) in requests {
        std::fs::write(
            dir.join(file),
            http_event(route, method, &path, &authorization, &body).to_string(),
        )?;
    }
    // An unknown code is counted per caller (at most 10 in 5 minutes, then
    // 429): every request of the runs comes from a caller of its own, so
    // each is the same path (one read, the guess counter's write).
    for n in 1..=VALIDATE_EVENTS {
        let body = serde_json::json!({
            "code": "CB-BENCH1",
            "customer_id": customer_id(1).to_string(),
            "currency": "USD",
            "cart": {"lines": [{"quantity": 1, "unit_price": "50.00"}], "subtotal": "50.00"},
            "caller": format!("bench-caller-{n}")
        })
        .to_string();
        std::fs::write(
            dir.join(format!("coupon-validate-{n}.json")),
            http_event(
                "POST /v1/shops/{shop}/coupons/validate",
                "POST",
                &format!("/v1/shops/{shop}/coupons/validate"),
                &format!("Bearer {BENCH_API_KEY}"),
                &body,
            )
            .to_string(),
        )?;
    }
    println!("CASHBACK_TABLE={table}");
    Ok(())
}

/// An API Gateway HTTP API (payload 2.0) request.
fn http_event(
    route: &str,
    method: &str,
    path: &str,
    authorization: &str,
    body: &str,
) -> serde_json::Value {
    let mut headers = serde_json::json!({
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "authorization": authorization,
        "user-agent": "coldstart-bench",
    });
    if !body.is_empty() {
        headers["content-type"] = "application/json".into();
        headers["content-length"] = body.len().to_string().into();
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "coldstart-bench"
            },
            "requestId": "coldstart-bench",
            "routeKey": route,
            "stage": "$default",
            "time": "06/Mar/2026:15:00:00 +0000",
            "timeEpoch": 1_772_809_200_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}
