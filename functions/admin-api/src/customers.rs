//! A shop's customers: look one up by email or code, read one, their
//! ledger (paged), merchant adjustments (`Idempotency-Key` required), a new
//! code, and the email-tool profiles (one, or all of them paged).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::Json;

use cashback_app::admin::{self, CustomerView, Lookup, Profile};
use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::LedgerEntry;
use cashback_edge::extract::{ApiQuery, IdempotencyKey, InPath, JsonText, PathValue, Principal};
use cashback_edge::ApiError;

use crate::params::{page_body, PageBody, Paging, Params};
use crate::AdminState;

/// The response header saying an adjustment's answer is the one first
/// given to the same `Idempotency-Key` (Stripe's name).
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `{shop}` and `{id}` of a customer's routes. The id is checked first: a
/// path with both wrong names the id, as it always has.
pub(crate) struct CustomerPath {
    pub(crate) shop: ShopId,
    pub(crate) customer: CustomerId,
}

impl<S: Send + Sync> FromRequestParts<S> for CustomerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<CustomerPath, ApiError> {
        let InPath(customer) = InPath::<CustomerId>::from_request_parts(parts, state).await?;
        let InPath(shop) = InPath::<ShopId>::from_request_parts(parts, state).await?;
        Ok(CustomerPath { shop, customer })
    }
}

pub(crate) async fn lookup_customer(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<CustomerView>, ApiError> {
    let lookup = match (params.get("email"), params.get("code")) {
        (Some(email), None) => Lookup::Email(
            Email::parse(email).map_err(|e| ApiError::invalid_field("email", e.to_string()))?,
        ),
        (None, Some(code)) => Lookup::Code(
            Code::from_segment(code).map_err(|message| ApiError::invalid_field("code", message))?,
        ),
        _ => {
            return Err(ApiError::bad_request(
                "bad_query",
                "give exactly one of email= or code=",
            ))
        }
    };
    Ok(Json(
        admin::lookup_customer(&state.ctx, &shop, &lookup).await?,
    ))
}

pub(crate) async fn get_customer(
    State(state): State<AdminState>,
    CustomerPath { shop, customer }: CustomerPath,
) -> Result<Json<CustomerView>, ApiError> {
    Ok(Json(
        admin::get_customer(&state.ctx, &shop, &customer).await?,
    ))
}

pub(crate) async fn ledger(
    State(state): State<AdminState>,
    CustomerPath { shop, customer }: CustomerPath,
    paging: Paging,
) -> Result<Json<PageBody<LedgerEntry>>, ApiError> {
    let page = admin::ledger(&state.ctx, &shop, &customer, paging.cursor, paging.limit).await?;
    Ok(page_body(page))
}

/// The adjustment's answer as first given: its status, and
/// [`IDEMPOTENT_REPLAYED`] when this is a retry's copy.
type Adjusted = (
    StatusCode,
    Option<[(HeaderName, HeaderValue); 1]>,
    Json<serde_json::Value>,
);

pub(crate) async fn adjust(
    State(state): State<AdminState>,
    principal: Principal,
    CustomerPath { shop, customer }: CustomerPath,
    IdempotencyKey(key): IdempotencyKey,
    JsonText(body): JsonText,
) -> Result<Adjusted, ApiError> {
    let now = state.ctx.now();
    let outcome =
        admin::adjust(&state.ctx, &shop, &customer, &body, &key, &principal.0, now).await?;
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let replayed = outcome.replayed.then_some([(
        HeaderName::from_static(IDEMPOTENT_REPLAYED),
        HeaderValue::from_static("true"),
    )]);
    Ok((status, replayed, Json(outcome.body)))
}

pub(crate) async fn regenerate_code(
    State(state): State<AdminState>,
    principal: Principal,
    CustomerPath { shop, customer }: CustomerPath,
) -> Result<Json<CustomerView>, ApiError> {
    Ok(Json(
        admin::regenerate_code(&state.ctx, &shop, &customer, &principal.0).await?,
    ))
}

pub(crate) async fn profile(
    State(state): State<AdminState>,
    CustomerPath { shop, customer }: CustomerPath,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(admin::profile(&state.ctx, &shop, &customer).await?))
}

pub(crate) async fn export_profiles(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    paging: Paging,
) -> Result<Json<PageBody<Profile>>, ApiError> {
    let page = admin::export_profiles(&state.ctx, &shop, paging.cursor, paging.limit).await?;
    Ok(page_body(page))
}
