//! The admin-api Lambda: wiring only. The store, notifier, table exports
//! and the admin token's hash are built once per container, outside the
//! handler; with `CASHBACK_KLAVIYO_CREDENTIALS` set, saving a program that
//! sends Klaviyo events checks the shop's Klaviyo parameter there.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let (ctx, sdk) = cashback_edge::wiring::context_and_sdk().await?;
    let ctx = match cashback_edge::wiring::table_exports_from_env(sdk.as_ref()) {
        Some(exports) => ctx.with_table_exports(exports),
        None => ctx,
    };
    let ctx = match cashback_klaviyo::accounts::place_from_env()? {
        Some(_) => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => cashback_edge::wiring::aws_config().await,
            };
            cashback_klaviyo::accounts::with_accounts_from_env(ctx, &sdk)?
        }
        None => ctx,
    };
    lambda_http::run(admin_api::router(
        ctx,
        admin_api::admin_token_hash_from_env(),
    ))
    .await
}
