//! The order-webhook Lambda: wiring only. Logging, the use cases' context
//! and the secrets cache are built once per container, outside the handler,
//! so a warm invocation reuses the clients and the cached shops and secrets.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | see `cashback_edge::wiring` | store, mail, links, code prefix | |
//! | `CASHBACK_SECRET_TTL_SECONDS` | how long a shop's webhook secrets stay cached | 300 |
//! | each shop's `env:` variable | its webhook secret(s), `current[,previous]` | |

use std::sync::Arc;

use order_webhook::secrets::{EnvAndSsm, SecretCache, DEFAULT_TTL_SECONDS};
use order_webhook::{router, WebhookState};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    let ttl = std::env::var("CASHBACK_SECRET_TTL_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(DEFAULT_TTL_SECONDS);
    let secrets = Arc::new(SecretCache::new(Arc::new(EnvAndSsm::new()), ttl));
    lambda_http::run(router(WebhookState::new(ctx, secrets))).await
}
