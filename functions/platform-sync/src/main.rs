//! The platform-sync Lambda: wiring only. The store, the credentials'
//! source and the shops' adapters are made once per container, outside
//! the handler, and their clients by their first use (a short start:
//! BENCHMARKS.md, section 4); see `lib.rs` for the handler and its
//! settings.

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};

use platform_sync::{function_handler, settings_from_env, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    cashback_edge::telemetry::init();
    let (ctx, sdk) = cashback_edge::wiring::context_and_sdk().await?;
    let sdk = match sdk {
        Some(sdk) => sdk,
        None => cashback_edge::wiring::aws_config().await,
    };
    let settings = settings_from_env()?;
    // The clients are built by their first call, not at start.
    let ssm_sdk = sdk.clone();
    let source = Arc::new(cashback_platform_codes::EnvAndSsm::on_first_use(
        move || aws_sdk_ssm::Client::new(&ssm_sdk),
    ));
    let connections = Arc::new(cashback_platform_codes::Connections::new(
        settings.place.clone(),
        source.clone(),
        cashback_platform_codes::ConnectSettings::default(),
    ));
    let table = std::env::var(cashback_store::dynamo::TABLE_ENV).unwrap_or_default();
    let shops_sdk = sdk.clone();
    let shops = Arc::new(platform_sync::shops::TableShops::on_first_use(
        move || aws_sdk_dynamodb::Client::new(&shops_sdk),
        table,
    ));
    let mut deps = Deps::new(ctx, connections, shops, &settings);
    if let Some(queue_url) = settings.retry_queue.clone() {
        let sqs_sdk = sdk.clone();
        deps.retries = Some(Arc::new(platform_sync::retries::SqsRetries::on_first_use(
            move || aws_sdk_sqs::Client::new(&sqs_sdk),
            queue_url,
            settings.retry_delay,
        )));
    }
    if let Some(place) = settings.klaviyo.clone() {
        deps.marketing = Some(Arc::new(
            platform_sync::marketing::MarketingConnections::new(place, source.clone()),
        ));
    }
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            function_handler(deps, event).await
        },
    ))
    .await
}
