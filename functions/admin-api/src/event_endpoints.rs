//! A shop's outgoing event endpoints (docs/outgoing-events.md): create one
//! (the signing secret is in the answer, once), list them (no secrets),
//! rotate a secret (the new one in the answer, once; the old one signs
//! beside it for 24 hours), delete one, and its recent deliveries.
//!
//! An endpoint id names an endpoint of the shop in the path only: another
//! shop's id is not found, so no shop reads or changes another's.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::Json;
use rand::RngCore;

use cashback_app::outgoing::endpoints::{self, DeliveryRecord, EndpointView, Fresh, WithSecret};
use cashback_app::outgoing::url::{Resolve, UrlChecks, UrlPolicy};
use cashback_app::store::Page;
use cashback_core::ids::ShopId;
use cashback_edge::extract::{ApiQuery, InPath, JsonText, PathValue, Principal};
use cashback_edge::ApiError;

use crate::params::{page_body, PageBody, Paging, Params};
use crate::AdminState;

/// How endpoint URLs are resolved and what they may point at: the system's
/// resolver and `CASHBACK_EVENTS_ALLOW_LOOPBACK` by default.
#[derive(Clone)]
pub struct EndpointChecks {
    /// Resolves a URL's host to check its addresses.
    pub resolver: Arc<dyn Resolve>,
    /// What a URL may point at.
    pub policy: UrlPolicy,
}

impl Default for EndpointChecks {
    fn default() -> EndpointChecks {
        EndpointChecks {
            resolver: Arc::new(cashback_app::outgoing::url::SystemResolver),
            policy: UrlPolicy::from_env(),
        }
    }
}

/// `{endpoint_id}` in the path: `ep_` and hex digits; anything else is
/// refused (400) before the store is asked.
pub(crate) struct EndpointId(String);

impl PathValue for EndpointId {
    const NAME: &'static str = "endpoint_id";

    fn from_segment(raw: &str) -> Result<EndpointId, String> {
        let raw = raw.trim();
        let valid = raw.strip_prefix("ep_").is_some_and(|hex| {
            !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if valid {
            Ok(EndpointId(raw.to_string()))
        } else {
            Err("must be an endpoint id (ep_ and hex digits)".into())
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A fresh signing secret: 32 random bytes from the OS, hex.
fn new_secret() -> String {
    format!("whsec_{}", random_hex(32))
}

/// An answer carrying a secret: no cache may keep it.
type Secret = (StatusCode, [(HeaderName, HeaderValue); 1], Json<WithSecret>);

fn no_store(status: StatusCode, body: WithSecret) -> Secret {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
}

/// `GET /v1/shops/{shop}/event-endpoints`.
pub(crate) async fn list(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<Json<PageBody<EndpointView>>, ApiError> {
    let items = endpoints::list(&state.ctx, &shop).await?;
    Ok(page_body(Page { items, next: None }))
}

/// `POST /v1/shops/{shop}/event-endpoints`: 201 with the secret.
pub(crate) async fn create(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    JsonText(body): JsonText,
) -> Result<Secret, ApiError> {
    let fresh = Fresh {
        id: format!("ep_{}", random_hex(8)),
        secret: new_secret(),
    };
    let checks = &state.endpoint_checks;
    let created = endpoints::create(
        &state.ctx,
        &shop,
        &body,
        fresh,
        &principal.0,
        UrlChecks {
            policy: checks.policy,
            resolver: checks.resolver.as_ref(),
        },
        state.ctx.now(),
    )
    .await?;
    Ok(no_store(StatusCode::CREATED, created))
}

/// `POST /v1/shops/{shop}/event-endpoints/{endpoint_id}/rotate-secret`
/// `?previous_valid_hours=` (0 to 24, default 24; 0 revokes the old secret
/// at once).
pub(crate) async fn rotate(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    InPath(EndpointId(id)): InPath<EndpointId>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Secret, ApiError> {
    let previous_valid_hours = match params.get("previous_valid_hours").map(|h| h.trim()) {
        None | Some("") => endpoints::ROTATION_GRACE_HOURS,
        Some(raw) => raw.parse::<i64>().map_err(|_| {
            ApiError::invalid_field(
                "previous_valid_hours",
                format!(
                    "must be a whole number of hours from 0 to {}",
                    endpoints::ROTATION_GRACE_HOURS
                ),
            )
        })?,
    };
    let rotated = endpoints::rotate(
        &state.ctx,
        &shop,
        &id,
        new_secret(),
        previous_valid_hours,
        &principal.0,
        state.ctx.now(),
    )
    .await?;
    Ok(no_store(StatusCode::OK, rotated))
}

/// `DELETE /v1/shops/{shop}/event-endpoints/{endpoint_id}`: 204.
pub(crate) async fn delete(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    InPath(EndpointId(id)): InPath<EndpointId>,
) -> Result<StatusCode, ApiError> {
    endpoints::delete(&state.ctx, &shop, &id, &principal.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/shops/{shop}/event-endpoints/{endpoint_id}/deliveries?limit=`:
/// the most recent first.
pub(crate) async fn deliveries(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(EndpointId(id)): InPath<EndpointId>,
    paging: Paging,
) -> Result<Json<PageBody<DeliveryRecord>>, ApiError> {
    let items = endpoints::deliveries(&state.ctx, &shop, &id, paging.limit.unwrap_or(20)).await?;
    Ok(page_body(Page { items, next: None }))
}
