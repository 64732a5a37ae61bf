//! The pages Lambda: wiring only. Clients and the app proxy secret are read
//! once per container, outside the handler.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    lambda_http::run(cashback_pages::router(ctx)).await
}
