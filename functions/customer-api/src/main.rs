//! The customer-api Lambda: wiring only. Clients are made once per
//! container, outside the handler; the link secret and the app proxy
//! secret are read by the first request that needs each (a start reads
//! nothing from SSM). On Lambda both come from SSM SecureStrings
//! (`CASHBACK_LINK_SECRET_PARAM`, `CASHBACK_SHOPIFY_APP_SECRET_PARAM`).

use cashback_edge::wiring::{secret_on_first_use, MIN_APP_SECRET_LENGTH, SHOPIFY_APP_SECRET};
use customer_api::{CustomerApiConfig, DEFAULT_PROXY_MAX_AGE_SECONDS};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let (ctx, sdk) = cashback_edge::wiring::context_and_sdk().await?;
    // Shopify signs proxy requests with the app's current secret: the first
    // key of the parameter.
    let shopify_app_secret =
        secret_on_first_use(SHOPIFY_APP_SECRET, MIN_APP_SECRET_LENGTH, sdk.as_ref())?;
    let config = CustomerApiConfig {
        shopify_app_secret,
        proxy_max_age_seconds: DEFAULT_PROXY_MAX_AGE_SECONDS,
    };
    lambda_http::run(customer_api::router_with(ctx, config)).await
}
