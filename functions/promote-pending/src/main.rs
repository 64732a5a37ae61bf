//! The promote-pending Lambda: wiring only. Logging and the use cases'
//! context (store and mail clients) are built once per container, outside
//! the handler; see `lib.rs` for the handler and its settings.

use lambda_runtime::{service_fn, LambdaEvent};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use promote_pending::{function_handler, Deps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    let deps = Deps::from_env(ctx)?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            function_handler(deps, event).await
        },
    ))
    .await
}
