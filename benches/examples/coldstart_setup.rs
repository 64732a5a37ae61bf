//! Prepares what `run.sh` needs to start the functions as on Lambda against
//! moto: a table from template.yaml with the demo shop and its program, a
//! checkpoint for each job an hour before the scheduled event (so a run
//! reads two hours of buckets, not the week a first run looks back), and
//! the invocation events: two Shopify `orders/paid` deliveries of ten lines
//! (different orders, so the warm one is not a duplicate) as API Gateway
//! sends them, and an EventBridge schedule event.
//!
//! ```text
//! MOTO_ENDPOINT=... cargo run --release -p cashback-benches --example coldstart_setup -- <dir>
//! ```
//! Prints `CASHBACK_TABLE=<name>` for the caller to export.

#[path = "../../shared/store/tests/support/moto.rs"]
mod moto;

use std::sync::Arc;

use chrono::Duration;

use cashback_app::jobs::promote::PROMOTE_JOB;
use cashback_app::jobs::reminders::REMINDERS_JOB;
use cashback_app::store::{due_bucket, Store};
use cashback_benches::webhook::{customer_id, now, order_id, paid_body, program, world_on};
use cashback_store::DynamoStore;
use order_webhook::samples::{shopify_delivery, Sample, DEMO_SECRET};

type Error = Box<dyn std::error::Error + Send + Sync>;

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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template: serde_norway::Value = serde_norway::from_str(&std::fs::read_to_string(path)?)?;
    let properties = serde_json::to_value(&template["Resources"]["CashbackTable"]["Properties"])?;
    cashback_store::dynamo::schema::create_table(&admin, &table, &properties).await?;
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
    println!("CASHBACK_TABLE={table}");
    Ok(())
}
