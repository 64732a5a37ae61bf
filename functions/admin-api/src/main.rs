//! The admin-api Lambda: wiring only. The store, notifier and the admin
//! token's hash are built once per container, outside the handler.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    lambda_http::run(admin_api::router(
        ctx,
        admin_api::admin_token_hash_from_env(),
    ))
    .await
}
