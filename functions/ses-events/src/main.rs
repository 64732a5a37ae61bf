//! The ses-events Lambda: wiring only. Logging and the use cases' context
//! are built once per container, outside the handler; see `lib.rs`.

use lambda_runtime::{service_fn, LambdaEvent};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use ses_events::function_handler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            function_handler(ctx, event).await
        },
    ))
    .await
}
