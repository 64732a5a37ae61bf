//! The report-aggregator Lambda: wiring only. Logging is set up at start;
//! the DynamoDB store's client once per container, by the first batch (a
//! short start: BENCHMARKS.md, section 4); see `lib.rs` for the handler.

use lambda_runtime::{service_fn, LambdaEvent};

use aws_lambda_events::dynamodb::Event;
use report_aggregator::function_handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    cashback_edge::telemetry::init();
    let sdk = cashback_edge::wiring::aws_config().await;
    let table = std::env::var(cashback_store::dynamo::TABLE_ENV).map_err(|_| {
        format!(
            "{} must name the DynamoDB table",
            cashback_store::dynamo::TABLE_ENV
        )
    })?;
    let store = cashback_edge::wiring::dynamo_on_first_use(&sdk, table);
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        function_handler(store, event.payload).await
    }))
    .await
}
