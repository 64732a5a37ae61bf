//! The event-delivery Lambda: wiring only. Logging is set up at start; the
//! DynamoDB store, the HTTPS client and the EventBridge client once per
//! container, by their first use (a short start: BENCHMARKS.md, section 4);
//! see `lib.rs` for the handlers.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, LambdaEvent};

use cashback_app::outgoing::delivery::{DeliverySettings, EventBus};
use cashback_app::outgoing::url::{SystemResolver, UrlPolicy};
use event_delivery::{handle, Deps, EventBridgeBus, HttpSender, Trigger, BUS_ENV};

/// A merchant's endpoint must answer within this.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

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
    let store = Arc::new(cashback_edge::wiring::dynamo_on_first_use(&sdk, table));
    let bus: Option<Arc<dyn EventBus>> = std::env::var(BUS_ENV).ok().map(|name| {
        let sdk = sdk.clone();
        Arc::new(EventBridgeBus::on_first_use(
            move || aws_sdk_eventbridge::Client::new(&sdk),
            name,
        )) as Arc<dyn EventBus>
    });
    let deps = Deps {
        store,
        // Names are resolved again at connect time, private addresses
        // dropped: the check before each attempt cannot be raced by DNS.
        sender: Arc::new(HttpSender::public_only(POST_TIMEOUT)),
        bus,
        resolver: Arc::new(SystemResolver),
        settings: DeliverySettings {
            policy: UrlPolicy::from_env(),
            ..DeliverySettings::default()
        },
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Trigger>| async move {
        handle(deps, event.payload).await
    }))
    .await
}
