//! The customer's side of the program: their cashback for the portal and
//! the storefront widget, and the unsubscribe link of the reminder emails.
//!
//! - `GET /v1/shops/{shop}/customers/{id}/cashback?cursor=&limit=`: the
//!   customer's view (balances, pending with release dates, tier, code,
//!   ledger page). Accepted with a shop's API key that has the
//!   `portal_server` scope (Bearer; a `checkout` key is refused), or as a
//!   Shopify app proxy request, whose signature is checked with the app's
//!   secret (an SSM SecureString on Lambda, see main.rs); the proxy's
//!   `logged_in_customer_id` must be the customer asked for, so a shopper
//!   sees only their own cashback.
//! - `GET  /v1/shops/{shop}/customers/{id}/unsubscribe?sig=`: a page asking
//!   to confirm. It changes nothing, because mail scanners open links.
//! - `POST` on the same URL: unsubscribes (the page's button, and RFC 8058
//!   one-click unsubscribe from the List-Unsubscribe-Post header).
//!
//! Unsubscribe answers a small HTML page, or JSON when the caller accepts
//! `application/json`. Errors elsewhere are the shared JSON error.
//!
//! # Layout
//! - [`proxy`]: Shopify's app proxy signature.

pub mod proxy;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use cashback_app::portal::{self, CustomerView, EntriesPage, UnsubscribeOutcome};
use cashback_app::secret_keys::SecretKeys;
use cashback_app::store::{KeyScope, Shop};
use cashback_app::{AppError, Context};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_edge::auth::require_key;
use cashback_edge::extract::ApiQuery;
use cashback_edge::ApiError;

pub const CASHBACK_ROUTE: &str = "/v1/shops/{shop}/customers/{id}/cashback";
pub const UNSUBSCRIBE_ROUTE: &str = "/v1/shops/{shop}/customers/{id}/unsubscribe";

/// Neither route reads a body beyond a one-click form; nothing larger is accepted.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// How old a proxied request may be: a signed URL copied out of a page
/// stops working soon after.
pub const DEFAULT_PROXY_MAX_AGE_SECONDS: i64 = 300;

/// What the customer API needs besides the context.
#[derive(Clone)]
pub struct CustomerApiConfig {
    /// The Shopify app's shared secret (its current key signs), given or
    /// read on first use; None disables app proxy requests.
    pub shopify_app_secret: Option<SecretKeys>,
    pub proxy_max_age_seconds: i64,
}

impl std::fmt::Debug for CustomerApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerApiConfig")
            .field(
                "shopify_app_secret",
                &self.shopify_app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("proxy_max_age_seconds", &self.proxy_max_age_seconds)
            .finish()
    }
}

impl CustomerApiConfig {
    /// `CASHBACK_SHOPIFY_APP_SECRET` from the environment, if set: local
    /// runs only. On Lambda main.rs reads the secret from SSM
    /// (`cashback_edge::wiring::secret_keys`).
    pub fn from_env() -> CustomerApiConfig {
        CustomerApiConfig {
            shopify_app_secret: std::env::var("CASHBACK_SHOPIFY_APP_SECRET")
                .ok()
                .map(|secret| secret.trim().to_string())
                .filter(|secret| !secret.is_empty())
                .map(|secret| SecretKeys::one(secret.into_bytes())),
            proxy_max_age_seconds: DEFAULT_PROXY_MAX_AGE_SECONDS,
        }
    }
}

#[derive(Clone)]
struct ApiState {
    ctx: Context,
    config: Arc<CustomerApiConfig>,
}

/// The customer-api routes, configured from the environment.
pub fn router(ctx: Context) -> Router {
    router_with(ctx, CustomerApiConfig::from_env())
}

/// The customer-api routes with an explicit configuration (tests, local server).
pub fn router_with(ctx: Context, config: CustomerApiConfig) -> Router {
    Router::new()
        .route(CASHBACK_ROUTE, get(cashback))
        .route(UNSUBSCRIBE_ROUTE, get(unsubscribe_page).post(unsubscribe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ApiState {
            ctx,
            config: Arc::new(config),
        })
}

type Params = Vec<(String, String)>;

/// `{shop}` and `{id}` of both routes. A name that cannot be a shop is a
/// shop we do not know (404, as for one that could be), so a caller learns
/// nothing of the format; a bad id is 400 `bad_customer`.
struct CustomerPath {
    shop: ShopId,
    customer: CustomerId,
}

impl<S: Send + Sync> FromRequestParts<S> for CustomerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<CustomerPath, ApiError> {
        let Path((raw_shop, raw_customer)) =
            Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("bad_path", "the path is malformed"))?;
        let shop = ShopId::parse(&raw_shop)
            .map_err(|_| ApiError::from(AppError::UnknownShop(raw_shop.clone())))?;
        let customer = CustomerId::parse(&raw_customer)
            .map_err(|error| ApiError::bad_request("bad_customer", error.to_string()))?;
        Ok(CustomerPath { shop, customer })
    }
}

/// The customer's view, and a header that keeps it out of shared caches.
type Private = ([(HeaderName, HeaderValue); 1], Json<CustomerView>);

async fn cashback(
    State(state): State<ApiState>,
    CustomerPath { shop, customer }: CustomerPath,
    ApiQuery(params): ApiQuery<Params>,
    headers: HeaderMap,
) -> Result<Private, ApiError> {
    let now = state.ctx.now();
    let view = view(&state, &shop, &customer, &params, &headers, now).await?;
    // One customer's balance: never kept by a shared cache.
    let private = HeaderValue::from_static("private, no-store");
    Ok(([(header::CACHE_CONTROL, private)], Json(view)))
}

async fn view(
    state: &ApiState,
    shop: &ShopId,
    customer: &CustomerId,
    params: &Params,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<CustomerView, ApiError> {
    let known = state.ctx.shop(shop, now).await?;
    if params.iter().any(|(key, _)| key == proxy::SIGNATURE) {
        authorize_proxy(&state.config, &known, customer, params, now).await?;
    } else {
        require_key(&state.ctx, &known, headers, KeyScope::PortalServer, now).await?;
    }
    let limit = match proxy::param(params, "limit") {
        Some(raw) => Some(
            raw.trim()
                .parse::<u32>()
                .map_err(|_| ApiError::bad_request("bad_query", "limit must be a whole number"))?,
        ),
        None => None,
    };
    let page = EntriesPage {
        cursor: proxy::param(params, "cursor")
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string),
        limit,
    };
    Ok(portal::customer_view(&state.ctx, shop, customer, &page, now).await?)
}

/// A signed app proxy request for this very customer (the shopper's
/// cashback page checks its proxy requests with it too).
pub async fn authorize_proxy(
    config: &CustomerApiConfig,
    known: &Shop,
    customer: &CustomerId,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(secret) = &config.shopify_app_secret else {
        return Err(ApiError::unauthorized(
            "app proxy requests are not enabled here",
        ));
    };
    let secret = secret.get().await.map_err(AppError::from)?;
    if !proxy::verify(&secret.current, params) {
        return Err(ApiError::unauthorized(
            "the app proxy signature is not valid",
        ));
    }
    // Shopify signs a repeated key as its values joined by commas, and
    // passes the shopper's own query through: a shopper who adds
    // `logged_in_customer_id` (or `shop`, `timestamp`) before the one Shopify
    // appends would otherwise choose the value read below. Each must be there
    // once.
    for name in ["shop", "logged_in_customer_id", "timestamp"] {
        if params.iter().filter(|(key, _)| key == name).count() > 1 {
            return Err(ApiError::unauthorized(
                "the app proxy request repeats a parameter Shopify sets",
            ));
        }
    }
    // Signed by Shopify: from here on the parameters can be believed.
    let signed_shop = proxy::param(params, "shop").and_then(|s| ShopId::parse(s).ok());
    if signed_shop.as_ref() != Some(&known.shop) {
        return Err(ApiError::forbidden(
            "the request was signed for another shop",
        ));
    }
    let fresh = proxy::param(params, "timestamp")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|at| (now.timestamp() - at).abs() <= config.proxy_max_age_seconds);
    if !fresh {
        return Err(ApiError::unauthorized(
            "the app proxy request is too old; reload the page",
        ));
    }
    match proxy::param(params, "logged_in_customer_id").map(str::trim) {
        None | Some("") => Err(ApiError::unauthorized("log in to see your cashback")),
        Some(logged_in) if logged_in == customer.as_str() => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "a customer can see only their own cashback",
        )),
    }
}

/// What an unsubscribe URL answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum UnsubscribeStatus {
    /// The link is genuine; POST to the same URL to unsubscribe.
    Confirm,
    Unsubscribed,
    AlreadyUnsubscribed,
}

// The unsubscribe routes answer a person in HTML unless asked for JSON, so
// they take their extractors' refusals as values and render them (`failure`).

async fn unsubscribe_page(
    State(state): State<ApiState>,
    path: Result<CustomerPath, ApiError>,
    query: Result<ApiQuery<Params>, ApiError>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let (shop, customer, signature) = match link_parts(path, query) {
        Ok(parts) => parts,
        Err(error) => return failure(json, error),
    };
    match portal::unsubscribe_link_is_valid(&state.ctx, &shop, &customer, &signature).await {
        Ok(true) => {}
        Ok(false) => return failure(json, bad_link()),
        Err(error) => return failure(json, error.into()),
    }
    answer(json, UnsubscribeStatus::Confirm)
}

async fn unsubscribe(
    State(state): State<ApiState>,
    path: Result<CustomerPath, ApiError>,
    query: Result<ApiQuery<Params>, ApiError>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let (shop, customer, signature) = match link_parts(path, query) {
        Ok(parts) => parts,
        Err(error) => return failure(json, error),
    };
    match portal::unsubscribe(&state.ctx, &shop, &customer, &signature, state.ctx.now()).await {
        Ok(UnsubscribeOutcome::Unsubscribed) => answer(json, UnsubscribeStatus::Unsubscribed),
        Ok(UnsubscribeOutcome::AlreadyUnsubscribed) => {
            answer(json, UnsubscribeStatus::AlreadyUnsubscribed)
        }
        Ok(UnsubscribeOutcome::BadSignature) => failure(json, bad_link()),
        Ok(UnsubscribeOutcome::UnknownCustomer) => failure(
            json,
            ApiError::not_found("this link names no customer of this shop"),
        ),
        Err(error) => failure(json, error.into()),
    }
}

fn link_parts(
    path: Result<CustomerPath, ApiError>,
    query: Result<ApiQuery<Params>, ApiError>,
) -> Result<(ShopId, CustomerId, String), ApiError> {
    let CustomerPath { shop, customer } = path?;
    let ApiQuery(params) = query?;
    let signature = proxy::param(&params, "sig").unwrap_or_default().to_string();
    Ok((shop, customer, signature))
}

fn bad_link() -> ApiError {
    ApiError::forbidden("this unsubscribe link is not valid")
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
}

fn answer(json: bool, status: UnsubscribeStatus) -> Response {
    if json {
        return Json(serde_json::json!({ "status": status })).into_response();
    }
    let (title, text, button) = match status {
        UnsubscribeStatus::Confirm => (
            "Unsubscribe from reminders?",
            "You will no longer receive emails reminding you of your cashback balance. \
             Your balance and your code stay as they are.",
            true,
        ),
        UnsubscribeStatus::Unsubscribed => (
            "You are unsubscribed",
            "You will no longer receive reminder emails. Your balance and your code stay as they are.",
            false,
        ),
        UnsubscribeStatus::AlreadyUnsubscribed => (
            "You were already unsubscribed",
            "You do not receive reminder emails. Your balance and your code stay as they are.",
            false,
        ),
    };
    Html(page(title, text, button)).into_response()
}

fn failure(json: bool, error: ApiError) -> Response {
    if json {
        return error.into_response();
    }
    let status = error.status;
    let text = match status {
        StatusCode::FORBIDDEN => "This link is not valid. Use the link in your most recent email.",
        StatusCode::NOT_FOUND => "We could not find this subscription.",
        StatusCode::BAD_REQUEST => {
            "This link is incomplete. Use the link in your most recent email."
        }
        _ => "Something went wrong on our side. Please try again in a few minutes.",
    };
    if status.is_server_error() {
        // ApiError keeps the cause out of the body; log what it was.
        tracing::warn!(%error, "unsubscribe failed");
    }
    (
        status,
        Html(page("We could not unsubscribe you", text, false)),
    )
        .into_response()
}

/// A small page; every text is ours, nothing from the request is echoed.
fn page(title: &str, text: &str, button: bool) -> String {
    // A form without an action posts back to this very URL, signature included.
    let form = if button {
        "<form method=\"post\"><button type=\"submit\">Unsubscribe</button></form>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem\">\
         <h1>{title}</h1><p>{text}</p>{form}</body></html>"
    )
}
