//! `POST /v1/shops/{shop}/coupons/validate`: a checkout asks whether a code
//! works on its cart, server to server, with one of the shop's API keys
//! that has the `checkout` scope (Bearer; stored only as its SHA-256).
//!
//! The order of checks is deliberate: the shop first (404 if unknown), the
//! key next (401), and only then is the body read (413 past
//! [`MAX_BODY_BYTES`], 400 if it is not a valid request), so nobody without
//! the key learns anything about the request format or the codes. The
//! answer itself is always 200 with `valid` and, when refused, the typed
//! reason; 400 naming the field for a request past its limits (other
//! discounts, lines, string sizes), checked before anything is read; 429
//! with Retry-After once a source address has tried too many unknown codes
//! at this shop (see `cashback_app::checkout`).
//!
//! The router is what the Lambda runs (main.rs) and what the local server
//! mounts.

use axum::body::to_bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;

use cashback_app::checkout::{self, ValidateRequest, Validation};
use cashback_app::store::KeyScope;
use cashback_app::{AppError, Context};
use cashback_core::ids::ShopId;
use cashback_edge::auth::require_key;
use cashback_edge::ApiError;

/// The route, in axum's syntax.
pub const ROUTE: &str = "/v1/shops/{shop}/coupons/validate";

/// A cart of 500 lines fits in well under this; anything larger is not a cart.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The coupon-validate routes, ready to serve.
pub fn router(ctx: Context) -> Router {
    Router::new().route(ROUTE, post(validate)).with_state(ctx)
}

async fn validate(
    State(ctx): State<Context>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match handle(&ctx, path, request, ctx.now()).await {
        Ok(validation) => {
            let mut response = Json(validation).into_response();
            // An answer about a balance must not sit in any cache.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// The whole request, from path to answer, at `now`.
pub async fn handle(
    ctx: &Context,
    path: Result<Path<String>, PathRejection>,
    request: Request,
    now: DateTime<Utc>,
) -> Result<Validation, ApiError> {
    let Path(raw_shop) =
        path.map_err(|_| ApiError::bad_request("bad_path", "the shop in the path is missing"))?;
    // A name that cannot be a shop is a shop we do not know.
    let shop = ShopId::parse(&raw_shop)
        .map_err(|_| ApiError::from(AppError::UnknownShop(raw_shop.clone())))?;
    let known = ctx.shop(&shop, now).await?;
    let key = require_key(ctx, &known, request.headers(), KeyScope::Checkout, now).await?;
    let source = source_ip(&request);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    let bytes = to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_BODY_BYTES))?;
    let body: ValidateRequest = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(
            "malformed",
            format!("the body is not a valid request: {error}"),
        )
    })?;
    // Unknown codes are counted per shop and source address: never by the
    // key (a shop's keys share one budget) nor by anything in the body.
    tracing::debug!(key_id = %key.key_id, "checkout key accepted");
    Ok(checkout::validate(ctx, &shop, &body, &source, now).await?)
}

/// The caller's address as API Gateway saw it: the request context's
/// `sourceIp`, the address API Gateway itself appends to X-Forwarded-For
/// (the header's earlier entries are the client's to choose, so it is never
/// read here); or the socket's peer on the local server.
fn source_ip(request: &Request) -> String {
    let extensions = request.extensions();
    let from_gateway = extensions
        .get::<RequestContext>()
        .and_then(|context| match context {
            RequestContext::ApiGatewayV2(context) => context.http.source_ip.clone(),
            RequestContext::ApiGatewayV1(context) => context.identity.source_ip.clone(),
            _ => None,
        });
    from_gateway
        .or_else(|| {
            extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
