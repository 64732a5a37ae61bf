//! The admin router as `cargo lambda watch` runs it: the Lambda environment
//! variables are set (the function name among them) and the server listens
//! on every interface, with no API Gateway in front. Its own test binary,
//! because it sets process-wide environment variables.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_store::MemoryStore;

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

#[tokio::test]
async fn under_a_lambda_like_environment_the_admin_api_trusts_nobody_without_an_explicit_setting() {
    let ctx = seed(Arc::new(MemoryStore::new())).await;
    pay(&ctx, "o-1", "ann", "100.00").await;
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "admin-api");
    std::env::set_var("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9000");
    std::env::remove_var(admin_api::ADMIN_AUTH_ENV);

    // The attack: anyone who reaches the port reads a customer and credits them.
    let mut read = request("GET", &format!("{BASE}/customers/ann"), None, &[]);
    read.headers_mut().remove("authorization");
    let answer = send(admin_api::router(ctx.clone(), None), read).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    let mut credit = request(
        "POST",
        &format!("{BASE}/customers/ann/adjustments"),
        Some(r#"{"amount":"500.00","reason":"free money"}"#),
        &[("idempotency-key", "k-1")],
    );
    credit.headers_mut().remove("authorization");
    let answer = send(admin_api::router(ctx.clone(), None), credit).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // Trusting IAM explicitly still needs the caller API Gateway's IAM
    // authorizer puts in the request context; a direct request has none.
    std::env::set_var(admin_api::ADMIN_AUTH_ENV, "iam");
    let mut direct = request("GET", &format!("{BASE}/customers/ann"), None, &[]);
    direct.headers_mut().remove("authorization");
    let answer = send(admin_api::router(ctx.clone(), None), direct).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let signed = iam_request("GET", &format!("{BASE}/customers/ann"), None, ADMIN_ARN);
    let answer = send(admin_api::router(ctx.clone(), None), signed).await;
    assert_eq!(answer.status, StatusCode::OK);
    let view = send(
        admin_api::router(ctx, Some(cashback_edge::auth::hash_api_key(TOKEN))),
        request("GET", &format!("{BASE}/customers/ann"), None, &[]),
    )
    .await;
    assert_eq!(
        view.json["available"], "0.00",
        "the attack credited nothing"
    );
}
