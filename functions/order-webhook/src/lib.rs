//! The order webhook: `POST /webhooks/{platform}` for Shopify, WooCommerce
//! and our signed generic schema, applied to the cashback ledger.
//!
//! One axum [`router`] serves the Lambda (through lambda_http, behind an API
//! Gateway HTTP API) and the local server alike. A request goes through the
//! steps docs/webhooks.md lists, each with its answer:
//!
//! | step | refusal |
//! | --- | --- |
//! | platform in the path (`shopify`, `woocommerce`, `generic`) | 404 `unknown_platform` |
//! | body at most `MAX_BODY_BYTES`, refused before it is read whole | 413 `body_too_large` |
//! | identify: a WooCommerce ping, or the shop the headers claim | ping: 200 `{"status":"ping"}`; 400 |
//! | the shop, from the warm cache or the store | 404 `unknown_shop` |
//! | its webhook secrets ([`secrets`]) | 500 misconfigured, 503 SSM unavailable |
//! | verify the signature (current or previous secret) | 401 `invalid_signature` |
//! | parse the verified body | 400 with the field at fault |
//! | apply each event (`cashback_app::events::handle_order_event`) | 503 when retryable, so the platform retries |
//!
//! Shopify's compliance topics (`customers/data_request`, `customers/redact`,
//! `shop/redact`) and `app/uninstalled` go through the same steps and are
//! carried out by [`apply_shop_request`] (docs/compliance.md), for a shop
//! registered on Shopify only (403 `not_a_shopify_shop`: another platform's
//! secret signs the same way), and `shop/redact` for an uninstalled shop
//! only (409 `shop_installed`). A data request is recorded and answered
//! with a reference, never with the customer's data; the others answer
//! with what they did.
//!
//! Nothing is written before the signature is verified and the body parsed.
//! A topic the engine does not use, a duplicate, or a shop with no program
//! yet is a 200 (a platform that keeps getting errors disables the webhook).
//! The answer is a small summary:
//! `{"status": "processed", "received": n, "applied": .., "duplicates": .., "ignored": ..}`.
//!
//! Logs: one JSON line per decision, with the shop, platform, topic and the
//! platform's delivery ids; never an email, a code, a secret or a body.
//!
//! Catalog-based exclusions (collections and sale items for Shopify, whose
//! order lines carry neither) will enrich the parsed lines between parsing
//! and applying, in [`apply_delivery`]; nothing here needs to change shape.
//!
//! # Layout
//! - [`secrets`]: `env:` / `ssm:` references, rotation, the warm cache.
//!
//! The sample deliveries of `events/` are in `cashback_test_support::samples`.

pub mod secrets;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tracing::{error, info, warn};

use cashback_app::compliance;
use cashback_app::events::{handle_order_event, EventOutcome};
use cashback_app::{AppError, Context};
use cashback_core::ids::ShopId;
use cashback_edge::ApiError;
use cashback_platforms::{
    CustomerSubject, Delivery, Headers, Identified, Outcome, Platform, ShopRequest, SignatureError,
    WebhookError, MAX_BODY_BYTES,
};

use crate::secrets::{SecretCache, SecretError};

/// The clock the handler reads "now" from (the generic signature's
/// tolerance and the ledger's times); tests fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What the handler needs, built once per container.
#[derive(Clone)]
pub struct WebhookState {
    pub ctx: Context,
    pub secrets: Arc<SecretCache>,
    pub clock: Clock,
}

impl WebhookState {
    /// Reads "now" from the context's clock unless given another.
    pub fn new(ctx: Context, secrets: Arc<SecretCache>) -> WebhookState {
        let context = ctx.clone();
        WebhookState {
            ctx,
            secrets,
            clock: Arc::new(move || context.now()),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> WebhookState {
        self.clock = clock;
        self
    }
}

/// `POST /webhooks/{platform}`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/{platform}", post(receive))
        .with_state(state)
}

/// What a processed delivery answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub status: &'static str,
    pub received: usize,
    pub applied: usize,
    pub duplicates: usize,
    pub ignored: usize,
}

async fn receive(
    State(state): State<WebhookState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A segment that does not decode (invalid UTF-8) names no platform: the
    // same JSON 404 as an unknown one, not axum's plain-text rejection.
    let platform_name = path.map(|Path(name)| name).unwrap_or_default();
    match handle(&state, &platform_name, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The status and code of a refusal, logged as one line (never the
/// message, which may quote what the platform sent).
fn refused(platform: &str, shop: Option<&ShopId>, error: ApiError) -> ApiError {
    let shop = shop.map(ToString::to_string).unwrap_or_default();
    if error.status.is_server_error() {
        error!(
            platform,
            shop,
            status = error.status.as_u16(),
            code = error.code,
            "webhook failed"
        );
    } else {
        warn!(
            platform,
            shop,
            status = error.status.as_u16(),
            code = error.code,
            "webhook refused"
        );
    }
    error.already_logged()
}

fn webhook_error(error: &WebhookError) -> ApiError {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, error.code(), error.to_string())
}

async fn handle(
    state: &WebhookState,
    platform_name: &str,
    http_headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(platform) = Platform::from_name(platform_name) else {
        return Err(refused(
            "unknown",
            None,
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_platform",
                "the platform must be shopify, woocommerce or generic",
            ),
        ));
    };
    let name = platform.name();
    let body = read_body(http_headers, body)
        .await
        .map_err(|e| refused(name, None, e))?;
    let headers = to_headers(http_headers);
    let now = (state.clock)();

    let shop = match platform.identify(&headers, &body) {
        Ok(Identified::Ping(ping)) => {
            info!(platform = name, webhook_id = %ping.webhook_id, "webhook ping answered");
            return Ok(
                (StatusCode::OK, Json(serde_json::json!({"status": "ping"}))).into_response(),
            );
        }
        Ok(Identified::Shop(shop)) => shop,
        Err(error) => return Err(refused(name, None, webhook_error(&error))),
    };
    let record = state
        .ctx
        .shop(&shop, now)
        .await
        .map_err(|e| refused(name, Some(&shop), ApiError::from(e)))?;
    if record.platform != shop_platform(platform) {
        // Not refused for order topics: the signature is what authenticates,
        // and one shop may send our generic schema beside its platform's own
        // webhooks. Shopify's shop requests are (in `apply_shop_request`).
        info!(platform = name, shop = %shop, registered = ?record.platform, "webhook from another platform than the shop's");
    }

    let secrets = state
        .secrets
        .get(&shop, &record.webhook_secret_ref, now)
        .await
        .map_err(|e| refused(name, Some(&shop), secret_error(&e)))?;
    if let Err(error) = platform.verify(&headers, &body, secrets.as_slice(), now) {
        // A mismatch may mean the merchant just rotated the secret: look
        // again once (rate-limited per shop), then decide.
        let fresh = match error {
            WebhookError::Signature(SignatureError::Mismatch) => state
                .secrets
                .refresh(&shop, &record.webhook_secret_ref, now)
                .await
                .ok()
                .flatten(),
            _ => None,
        };
        let verified = fresh.is_some_and(|fresh| {
            platform
                .verify(&headers, &body, fresh.as_slice(), now)
                .is_ok()
        });
        if !verified {
            return Err(refused(name, Some(&shop), webhook_error(&error)));
        }
    }

    let delivery = platform
        .parse(&headers, &body, record.currency)
        .map_err(|e| refused(name, Some(&shop), webhook_error(&e)))?;
    if let Outcome::Shop(request) = &delivery.outcome {
        let answer = apply_shop_request(&state.ctx, &delivery, request, now)
            .await
            .map_err(|e| refused(name, Some(&shop), e))?;
        return Ok((StatusCode::OK, Json(answer)).into_response());
    }
    let summary = apply_delivery(&state.ctx, &delivery, now)
        .await
        .map_err(|e| refused(name, Some(&shop), e))?;
    let transport = &delivery.transport;
    info!(
        platform = name,
        shop = %shop,
        topic = %delivery.topic,
        webhook_id = transport.webhook_id.as_deref().unwrap_or(""),
        event_id = transport.event_id.as_deref().unwrap_or(""),
        delivery_id = transport.delivery_id.as_deref().unwrap_or(""),
        // Shopify retries replay the original payload: the lag tells a late
        // or retried delivery apart. Informative only, never trusted.
        triggered_at = ?transport.triggered_at,
        lag_seconds = transport.triggered_at.map(|at| (now - at).num_seconds()),
        status = summary.status,
        received = summary.received,
        applied = summary.applied,
        duplicates = summary.duplicates,
        ignored = summary.ignored,
        "webhook processed"
    );
    Ok((StatusCode::OK, Json(summary)).into_response())
}

/// Applies a verified delivery's events in order. A retryable failure stops
/// here with a 503: the events already applied are duplicates on the retry.
pub async fn apply_delivery(
    ctx: &Context,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<Summary, ApiError> {
    let events = match &delivery.outcome {
        Outcome::Events(events) => events,
        Outcome::Shop(request) => {
            // The router answers these with what was done; a caller that
            // only wants the counts gets them here.
            apply_shop_request(ctx, delivery, request, now).await?;
            return Ok(Summary {
                status: "processed",
                received: 1,
                applied: 1,
                ..Summary::default()
            });
        }
        Outcome::Ignored { reason } => {
            info!(shop = %delivery.shop, topic = %delivery.topic, reason = %reason, "delivery ignored");
            return Ok(Summary {
                status: "ignored",
                ..Summary::default()
            });
        }
    };
    let mut summary = Summary {
        status: "processed",
        received: events.len(),
        ..Summary::default()
    };
    if delivery.test {
        // The program in force decides (from the warm cache: the events'
        // own read finds it there).
        let accepts = match ctx.shop_program(&delivery.shop, now).await {
            Ok(found) => found.program.accepts_test_orders(),
            Err(AppError::NoProgram(_)) => false,
            Err(error) => return Err(ApiError::from(error)),
        };
        if !accepts {
            info!(shop = %delivery.shop, topic = %delivery.topic, "test order ignored: the program does not let test orders earn");
            summary.ignored = events.len();
            return Ok(summary);
        }
    }
    for event in events {
        match handle_order_event(ctx, &delivery.shop, event, now).await {
            Ok(EventOutcome::Applied { .. }) => summary.applied += 1,
            Ok(EventOutcome::Duplicate) => summary.duplicates += 1,
            Ok(EventOutcome::Ignored { .. }) => summary.ignored += 1,
            Err(AppError::NoProgram(_)) => {
                // Nothing can be earned before the merchant sets a program
                // up; failing would only make the platform retry for hours.
                warn!(shop = %delivery.shop, event = %event.effect_key(), "shop has no program yet; event ignored");
                summary.ignored += 1;
            }
            Err(error) => return Err(ApiError::from(error)),
        }
    }
    Ok(summary)
}

/// Carries out a verified request about the shop or one of its customers
/// (docs/compliance.md) and says what was done, without personal data in
/// the answer or the log. These are Shopify's requests: a shop registered
/// on another platform is refused (its secret signs the same way, so the
/// signature alone does not tell).
pub async fn apply_shop_request(
    ctx: &Context,
    delivery: &Delivery,
    request: &ShopRequest,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ApiError> {
    let shop = &delivery.shop;
    let kind = request.kind();
    let record = ctx.shop(shop, now).await?;
    if record.platform != cashback_app::store::Platform::Shopify {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_shopify_shop",
            format!("{kind} is a Shopify request and the shop is not registered on Shopify"),
        ));
    }
    let transport = &delivery.transport;
    let webhook_id = transport.webhook_id.as_deref().unwrap_or("");
    let answer = match request {
        ShopRequest::CustomerDataRequest {
            customer,
            orders,
            request_id,
        } => {
            let reference = request_id
                .clone()
                .or_else(|| transport.webhook_id.clone())
                .unwrap_or_else(|| format!("{}-{}", kind, now.timestamp()));
            let recorded =
                compliance::record_data_request(ctx, shop, &subject(customer), reference, now)
                    .await?;
            let accounts: Vec<&str> = recorded.accounts.iter().map(|a| a.as_str()).collect();
            info!(
                shop = %shop,
                request = kind,
                webhook_id,
                reference = %recorded.reference,
                customer = customer.id.as_ref().map(ToString::to_string).unwrap_or_default(),
                orders_requested = orders.len(),
                accounts = ?accounts,
                answer_by = %recorded.answer_by,
                "customer data request recorded; answer the customer by answer_by"
            );
            serde_json::json!({
                "status": "recorded",
                "request": kind,
                "reference": recorded.reference,
                "answer_by": recorded.answer_by,
                "accounts_found": recorded.accounts.len(),
            })
        }
        ShopRequest::CustomerRedact { customer, orders } => {
            let redacted = compliance::redact_customer(ctx, shop, &subject(customer), now).await?;
            info!(
                shop = %shop,
                request = kind,
                webhook_id,
                customer = customer.id.as_ref().map(ToString::to_string).unwrap_or_default(),
                orders_to_redact = orders.len(),
                accounts_redacted = redacted.accounts_redacted,
                accounts_already_clean = redacted.accounts_already_clean,
                "customer personal data erased; money entries kept"
            );
            serde_json::json!({"status": "processed", "request": kind, "redacted": redacted})
        }
        ShopRequest::ShopRedact => {
            let redaction = compliance::redact_shop(ctx, shop, now)
                .await
                .map_err(|error| match error {
                    AppError::Conflict(message) => {
                        ApiError::new(StatusCode::CONFLICT, "shop_installed", message)
                    }
                    error => ApiError::from(error),
                })?;
            let deleted = match redaction {
                compliance::ShopRedaction::Deleted(deleted) => deleted,
                compliance::ShopRedaction::NotDue {
                    uninstalled_at,
                    due_at,
                } => {
                    // Shopify sends it 48 hours after the uninstall and
                    // repeats a delivery answered with an error.
                    warn!(shop = %shop, request = kind, webhook_id, %uninstalled_at, %due_at, "shop redaction before it is due: nothing deleted");
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "redaction_not_due",
                        format!(
                            "the shop was uninstalled less than {} hours ago: its data is deleted from {due_at} on",
                            compliance::REDACT_AFTER_UNINSTALL_HOURS
                        ),
                    ));
                }
            };
            info!(shop = %shop, request = kind, webhook_id, items_deleted = deleted, "shop data deleted");
            serde_json::json!({"status": "processed", "request": kind, "items_deleted": deleted})
        }
        ShopRequest::AppUninstalled => {
            compliance::uninstall(ctx, shop, now).await?;
            info!(shop = %shop, request = kind, webhook_id, "shop uninstalled: code syncing stopped");
            serde_json::json!({"status": "processed", "request": kind})
        }
    };
    Ok(answer)
}

fn subject(customer: &CustomerSubject) -> compliance::Subject {
    compliance::Subject {
        customer: customer.id.clone(),
        email: customer.email.clone(),
    }
}

fn shop_platform(platform: Platform) -> cashback_app::store::Platform {
    match platform {
        Platform::Shopify => cashback_app::store::Platform::Shopify,
        Platform::WooCommerce => cashback_app::store::Platform::Woocommerce,
        Platform::Generic => cashback_app::store::Platform::Generic,
    }
}

fn secret_error(error: &SecretError) -> ApiError {
    if error.is_retryable() {
        error!(error = %error, "webhook secrets unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; retry later",
        )
    } else {
        // The shop is set up wrong on our side: a 500 keeps the platform
        // retrying while an operator fixes it.
        ApiError::internal(error)
    }
}

/// The body, at most [`MAX_BODY_BYTES`]: a declared length over the limit
/// is refused before reading, and reading stops at the limit otherwise.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(
            "unreadable_body",
            format!("the body could not be read: {error}"),
        )),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// The request's headers for the platforms crate. A value that is not
/// visible ASCII is left out: none of the headers we read can be one.
fn to_headers(headers: &HeaderMap) -> Headers {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}
