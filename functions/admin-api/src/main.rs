//! The admin-api Lambda: wiring only. The store, notifier, table exports
//! and the admin token's hash are built once per container, outside the
//! handler.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let (ctx, sdk) = cashback_edge::wiring::context_and_sdk().await?;
    let ctx = match cashback_edge::wiring::table_exports_from_env(sdk.as_ref()) {
        Some(exports) => ctx.with_table_exports(exports),
        None => ctx,
    };
    lambda_http::run(admin_api::router(
        ctx,
        admin_api::admin_token_hash_from_env(),
    ))
    .await
}
