//! The pages Lambda: wiring only. Clients are made once per container,
//! outside the handler; the link secret is read by the first request, the
//! app secret by the first that needs it. On Lambda both come from SSM
//! SecureStrings (`CASHBACK_LINK_SECRET_PARAM`,
//! `CASHBACK_SHOPIFY_APP_SECRET_PARAM`), as the customer API reads them.

use cashback_edge::wiring::{secret_on_first_use, MIN_APP_SECRET_LENGTH, SHOPIFY_APP_SECRET};
use cashback_pages::PagesConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let (ctx, sdk) = cashback_edge::wiring::context_and_sdk().await?;
    // The program form checks the shop's Klaviyo key when its email channel
    // sends Klaviyo events (CASHBACK_KLAVIYO_CREDENTIALS, as the admin API).
    let ctx = match (cashback_klaviyo::accounts::place_from_env()?, sdk.as_ref()) {
        (Some(_), Some(sdk)) => cashback_klaviyo::accounts::with_accounts_from_env(ctx, sdk)?,
        (Some(_), None) => {
            let sdk = cashback_edge::wiring::aws_config().await;
            cashback_klaviyo::accounts::with_accounts_from_env(ctx, &sdk)?
        }
        (None, _) => ctx,
    };
    // Shopify signs proxy requests and session tokens with the app's
    // current secret: the first key of the parameter.
    let shopify_app_secret =
        secret_on_first_use(SHOPIFY_APP_SECRET, MIN_APP_SECRET_LENGTH, sdk.as_ref())?;
    let mut config = PagesConfig::from_env();
    config.proxy.shopify_app_secret = shopify_app_secret;
    lambda_http::run(cashback_pages::router_on_first_use(ctx, config)).await
}
