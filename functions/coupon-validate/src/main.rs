//! The coupon-validate Lambda: wiring only. Clients are built once per
//! container, outside the handler, and the router serves every request.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Boxed: the runtime moves main's future several times before it runs,
    // and the future holds every awaited one inline (BENCHMARKS.md, section 4).
    Box::pin(serve()).await
}

async fn serve() -> Result<(), lambda_http::Error> {
    cashback_edge::telemetry::init();
    let ctx = cashback_edge::wiring::context_from_env().await?;
    lambda_http::run(coupon_validate::router(ctx)).await
}
