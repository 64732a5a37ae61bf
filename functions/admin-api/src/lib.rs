//! The admin API: everything a merchant sets in a loyalty app's settings
//! page, and the reports, as JSON over HTTP. One axum [`router`] serves the
//! Lambda (through lambda_http behind API Gateway) and the local server.
//!
//! # Who may call it
//! - On AWS the routes are authorised by IAM at API Gateway (IAM is the
//!   HTTP API's default authorizer in template.yaml; SigV4-signed calls
//!   from the merchant's back office or the operator's tooling). The
//!   function trusts that only when told so explicitly:
//!   `CASHBACK_ADMIN_AUTH=iam` ([`ADMIN_AUTH_ENV`]), never merely because
//!   it runs on Lambda (`cargo lambda watch` sets the function name too, and
//!   listens on every interface). Even then a request must carry the IAM
//!   caller API Gateway puts in its context; one without is refused.
//! - Otherwise the router requires `Authorization: Bearer <token>`, checked
//!   in constant time against the SHA-256 of `CASHBACK_ADMIN_TOKEN`. With
//!   neither configured every request is refused: the admin API never runs
//!   open by accident. A token configured with IAM is checked too (defence
//!   in depth).
//! - Every change records who made it ([`Principal`]): the IAM caller's ARN,
//!   or `admin-token`.
//!
//! # Routes (docs/openapi.yaml documents every body)
//! | method | path | what |
//! | --- | --- | --- |
//! | POST | `/v1/shops` | onboard a shop; the API key is in the answer, once |
//! | GET, PUT | `/v1/shops/{shop}/program` | the program; `If-Match: "<version>"` optional |
//! | GET | `/v1/shops/{shop}/program/versions/{version}` | an earlier version |
//! | GET, POST | `/v1/shops/{shop}/coupons` | list (paged), create |
//! | GET, PUT | `/v1/shops/{shop}/coupons/{code}` | read, replace |
//! | POST | `/v1/shops/{shop}/coupons/{code}/pause`, `/approve` | status |
//! | GET | `/v1/shops/{shop}/customers?email=` or `?code=` | look up |
//! | GET | `/v1/shops/{shop}/customers/{id}` | one customer |
//! | GET | `/v1/shops/{shop}/customers/{id}/ledger` | entries, newest first, paged |
//! | POST | `/v1/shops/{shop}/customers/{id}/adjustments` | credit or debit; `Idempotency-Key` required |
//! | POST | `/v1/shops/{shop}/customers/{id}/regenerate-code` | a new code |
//! | GET | `/v1/shops/{shop}/customers/{id}/profile` | email-tool properties |
//! | GET | `/v1/shops/{shop}/profiles` | every profile, paged (export) |
//! | PUT, POST | `/v1/shops/{shop}/catalog` | import products |
//! | GET | `/v1/shops/{shop}/reports?from=&to=` | the period's figures |
//! | GET, POST | `/v1/shops/{shop}/api-keys` | list the keys (last used), create one (shown once) |
//! | DELETE | `/v1/shops/{shop}/api-keys/{key_id}` | revoke a key |
//!
//! Paged answers are `{"items": [...], "next_cursor": "..." | null}`; pass
//! `cursor=<next_cursor>` (and `limit`, at most 100) for the next page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use lambda_http::request::RequestContext;
use serde::Serialize;

use cashback_app::admin::{self, Lookup};
use cashback_app::api_keys;
use cashback_app::store::Page;
use cashback_app::Context;
use cashback_core::coupon::CouponStatus;
use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::program::FieldError;
use cashback_edge::auth::{check_api_key, hash_api_key};
use cashback_edge::ApiError;

/// The environment variable holding the admin token (local runs).
pub const ADMIN_TOKEN_ENV: &str = "CASHBACK_ADMIN_TOKEN";

/// A catalog import of 500 products is about 100 KB; nothing needs more.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The environment variable that says how API Gateway authorises admin
/// requests: `iam` to trust its IAM authorizer. Nothing else turns it on.
pub const ADMIN_AUTH_ENV: &str = "CASHBACK_ADMIN_AUTH";

/// The principal recorded for a caller holding the admin token.
pub const TOKEN_PRINCIPAL: &str = "admin-token";

/// How requests are authorised (see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub enum AdminAuth {
    /// `Authorization: Bearer <token>` whose SHA-256 (hex) is this.
    Token(String),
    /// API Gateway authorised the request with IAM before it got here
    /// (explicitly configured; the request's context names the caller).
    Iam,
    /// No way to authorise: every request is refused.
    Closed,
}

/// Who made an admin request: the IAM caller's ARN, or [`TOKEN_PRINCIPAL`].
/// Recorded on every adjustment, program change and code regeneration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminAuth::Token(_) => "Token(<redacted>)",
            AdminAuth::Iam => "Iam",
            AdminAuth::Closed => "Closed",
        })
    }
}

impl AdminAuth {
    /// A configured token wins; without one, IAM when explicitly trusted
    /// (`iam`: [`ADMIN_AUTH_ENV`] says so), closed otherwise.
    pub fn new(admin_token_hash: Option<String>, iam: bool) -> AdminAuth {
        match admin_token_hash.filter(|h| !h.trim().is_empty()) {
            Some(hash) => AdminAuth::Token(hash),
            None if iam => AdminAuth::Iam,
            None => AdminAuth::Closed,
        }
    }
}

/// Whether [`ADMIN_AUTH_ENV`] says API Gateway's IAM authorizer is trusted.
pub fn iam_from_env() -> bool {
    std::env::var(ADMIN_AUTH_ENV).is_ok_and(|value| value.trim().eq_ignore_ascii_case("iam"))
}

/// The IAM caller API Gateway authorised, from the request's context.
fn iam_caller(request: &Request) -> Option<String> {
    let context = request.extensions().get::<RequestContext>()?;
    let iam = match context {
        RequestContext::ApiGatewayV2(context) => context.authorizer.as_ref()?.iam.clone()?,
        RequestContext::ApiGatewayV1(context) => context.authorizer.iam.clone()?,
        _ => return None,
    };
    iam.user_arn
        .or(iam.caller_id)
        .map(|who| who.trim().to_string())
        .filter(|who| !who.is_empty())
}

/// The SHA-256 of `CASHBACK_ADMIN_TOKEN`, if set; the token itself is not kept.
pub fn admin_token_hash_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty())
        .map(|token| hash_api_key(&token))
}

#[derive(Clone)]
struct AdminState {
    ctx: Context,
    auth: Arc<AdminAuth>,
}

/// The admin routes. `admin_token_hash` is the SHA-256 (hex) of the admin
/// token; None trusts IAM only when `CASHBACK_ADMIN_AUTH=iam`, and refuses
/// everything otherwise.
pub fn router(ctx: Context, admin_token_hash: Option<String>) -> Router {
    router_with(ctx, AdminAuth::new(admin_token_hash, iam_from_env()))
}

/// The admin routes with an explicit authorisation (tests, local server).
pub fn router_with(ctx: Context, auth: AdminAuth) -> Router {
    let state = AdminState {
        ctx,
        auth: Arc::new(auth),
    };
    Router::new()
        .route("/v1/shops", post(create_shop))
        .route(
            "/v1/shops/{shop}/program",
            get(get_program).put(put_program),
        )
        .route(
            "/v1/shops/{shop}/program/versions/{version}",
            get(get_program_version),
        )
        .route(
            "/v1/shops/{shop}/coupons",
            get(list_coupons).post(create_coupon),
        )
        .route(
            "/v1/shops/{shop}/coupons/{code}",
            get(get_coupon).put(update_coupon),
        )
        .route("/v1/shops/{shop}/coupons/{code}/pause", post(pause_coupon))
        .route(
            "/v1/shops/{shop}/coupons/{code}/approve",
            post(approve_coupon),
        )
        .route("/v1/shops/{shop}/customers", get(lookup_customer))
        .route("/v1/shops/{shop}/customers/{id}", get(get_customer))
        .route("/v1/shops/{shop}/customers/{id}/ledger", get(ledger))
        .route("/v1/shops/{shop}/customers/{id}/adjustments", post(adjust))
        .route(
            "/v1/shops/{shop}/customers/{id}/regenerate-code",
            post(regenerate_code),
        )
        .route("/v1/shops/{shop}/customers/{id}/profile", get(profile))
        .route("/v1/shops/{shop}/profiles", get(export_profiles))
        .route(
            "/v1/shops/{shop}/catalog",
            post(import_catalog).put(import_catalog),
        )
        .route("/v1/shops/{shop}/reports", get(report))
        .route(
            "/v1/shops/{shop}/api-keys",
            get(list_api_keys).post(create_api_key),
        )
        .route(
            "/v1/shops/{shop}/api-keys/{key_id}",
            axum::routing::delete(revoke_api_key),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authorise))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn authorise(State(state): State<AdminState>, mut request: Request, next: Next) -> Response {
    let caller = iam_caller(&request);
    let verdict = match state.auth.as_ref() {
        AdminAuth::Iam => caller.map(Principal).ok_or_else(|| {
            ApiError::unauthorized(
                "IAM authorisation is expected from API Gateway and this request carries none",
            )
        }),
        AdminAuth::Token(hash) => check_api_key(request.headers(), hash)
            .map(|()| Principal(caller.unwrap_or_else(|| TOKEN_PRINCIPAL.to_string())))
            .map_err(|_| ApiError::unauthorized("a valid admin token is required")),
        AdminAuth::Closed => Err(ApiError::unauthorized(format!(
            "the admin API is closed: set {ADMIN_TOKEN_ENV} (or {ADMIN_AUTH_ENV}=iam behind \
             API Gateway's IAM authorizer) to use it"
        ))),
    };
    match verdict {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

type Params = HashMap<String, String>;

/// `{"items": [...], "next_cursor": ...}`.
#[derive(Serialize)]
struct PageBody<T: Serialize> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

fn page_body<T: Serialize>(page: Page<T>) -> Response {
    Json(PageBody {
        items: page.items,
        next_cursor: page.next,
    })
    .into_response()
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_fields", "some fields are invalid").with_fields(vec![
        FieldError {
            field: field.into(),
            message: message.into(),
        },
    ])
}

fn shop_of(raw: &str) -> Result<ShopId, ApiError> {
    ShopId::parse(raw).map_err(|e| invalid("shop", e.to_string()))
}

fn path_of<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(value)| value)
        .map_err(|e| ApiError::bad_request("bad_path", e.body_text()))
}

fn query_of(query: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    query
        .map(|Query(params)| params)
        .map_err(|_| ApiError::bad_request("bad_query", "the query string is malformed"))
}

/// The body as text. A body over the limit is a JSON 413 like every other
/// error (axum's own rejection would answer plain text).
fn text_of(body: &Result<Bytes, BytesRejection>) -> Result<&str, ApiError> {
    let bytes = body.as_ref().map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(MAX_BODY_BYTES)
        } else {
            ApiError::bad_request("malformed", rejection.body_text())
        }
    })?;
    std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("malformed", "the body is not UTF-8"))
}

fn cursor_and_limit(params: &Params) -> Result<(Option<String>, Option<u32>), ApiError> {
    let limit = match params.get("limit").map(|l| l.trim()) {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<u32>()
                .ok()
                .filter(|l| (1..=admin::MAX_PAGE).contains(l))
                .ok_or_else(|| {
                    invalid(
                        "limit",
                        format!("must be a whole number from 1 to {}", admin::MAX_PAGE),
                    )
                })?,
        ),
    };
    let cursor = params
        .get("cursor")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Ok((cursor, limit))
}

/// `If-Match: "3"` (or `3`, or a weak `W/"3"`): the version a change expects.
fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    raw.parse::<u64>()
        .map(Some)
        .map_err(|_| invalid("If-Match", "must be a version number, e.g. \"3\""))
}

fn with_etag(mut response: Response, version: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn respond<T: Serialize>(result: Result<T, ApiError>, status: StatusCode) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(error) => error.into_response(),
    }
}

// ---------------------------------------------------------------- handlers

#[derive(Serialize)]
struct Onboarded {
    shop: admin::ShopView,
    /// Shown once; only its hash is stored.
    api_key: String,
}

async fn create_shop(
    State(state): State<AdminState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let text = text_of(&body)?;
        let api_key = cashback_edge::auth::new_api_key();
        let shop =
            admin::create_shop(&state.ctx, text, &hash_api_key(&api_key), state.ctx.now()).await?;
        Ok::<_, ApiError>(Onboarded { shop, api_key })
    }
    .await;
    respond(result, StatusCode::CREATED)
}

async fn get_program(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        Ok::<_, ApiError>(admin::get_program(&state.ctx, &shop).await?)
    }
    .await;
    match result {
        Ok(view) => {
            let version = view.version;
            with_etag(Json(view).into_response(), version)
        }
        Err(error) => error.into_response(),
    }
}

async fn put_program(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let expected = expected_version(&headers)?;
        let text = text_of(&body)?;
        Ok::<_, ApiError>(
            admin::put_program(
                &state.ctx,
                &shop,
                text,
                expected,
                &principal.0,
                state.ctx.now(),
            )
            .await?,
        )
    }
    .await;
    match result {
        Ok(view) => {
            let version = view.version;
            with_etag(Json(view).into_response(), version)
        }
        Err(error) => error.into_response(),
    }
}

async fn get_program_version(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, version) = path_of(path)?;
        let shop = shop_of(&shop)?;
        let version = version
            .trim()
            .parse::<u64>()
            .map_err(|_| invalid("version", "must be a whole number"))?;
        Ok::<_, ApiError>(admin::get_program_version(&state.ctx, &shop, version).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

fn code_of(raw: &str) -> Result<Code, ApiError> {
    Code::parse(raw).map_err(|e| invalid("code", e.to_string()))
}

async fn create_coupon(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let text = text_of(&body)?;
        Ok::<_, ApiError>(admin::create_coupon(&state.ctx, &shop, text, state.ctx.now()).await?)
    }
    .await;
    respond(result, StatusCode::CREATED)
}

async fn list_coupons(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let (cursor, limit) = cursor_and_limit(&query_of(query)?)?;
        Ok::<_, ApiError>(admin::list_coupons(&state.ctx, &shop, cursor, limit).await?)
    }
    .await;
    match result {
        Ok(page) => page_body(page),
        Err(error) => error.into_response(),
    }
}

async fn get_coupon(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, code) = path_of(path)?;
        let (shop, code) = (shop_of(&shop)?, code_of(&code)?);
        Ok::<_, ApiError>(admin::get_coupon(&state.ctx, &shop, &code).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn update_coupon(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (shop, code) = path_of(path)?;
        let (shop, code) = (shop_of(&shop)?, code_of(&code)?);
        let expected = expected_version(&headers)?;
        let text = text_of(&body)?;
        Ok::<_, ApiError>(
            admin::update_coupon(&state.ctx, &shop, &code, text, expected, state.ctx.now()).await?,
        )
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn set_status(
    state: &AdminState,
    path: Result<Path<(String, String)>, PathRejection>,
    status: CouponStatus,
) -> Response {
    let result = async {
        let (shop, code) = path_of(path)?;
        let (shop, code) = (shop_of(&shop)?, code_of(&code)?);
        Ok::<_, ApiError>(
            admin::set_coupon_status(&state.ctx, &shop, &code, status, state.ctx.now()).await?,
        )
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn pause_coupon(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    set_status(&state, path, CouponStatus::Paused).await
}

async fn approve_coupon(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    set_status(&state, path, CouponStatus::Approved).await
}

fn customer_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ShopId, CustomerId), ApiError> {
    let (shop, customer) = path_of(path)?;
    let customer = CustomerId::parse(&customer).map_err(|e| invalid("id", e.to_string()))?;
    Ok((shop_of(&shop)?, customer))
}

async fn lookup_customer(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let params = query_of(query)?;
        let lookup = match (params.get("email"), params.get("code")) {
            (Some(email), None) => {
                Lookup::Email(Email::parse(email).map_err(|e| invalid("email", e.to_string()))?)
            }
            (None, Some(code)) => Lookup::Code(code_of(code)?),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_query",
                    "give exactly one of email= or code=",
                ))
            }
        };
        Ok(admin::lookup_customer(&state.ctx, &shop, &lookup).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn get_customer(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, customer) = customer_path(path)?;
        Ok::<_, ApiError>(admin::get_customer(&state.ctx, &shop, &customer).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn ledger(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let result = async {
        let (shop, customer) = customer_path(path)?;
        let (cursor, limit) = cursor_and_limit(&query_of(query)?)?;
        Ok::<_, ApiError>(admin::ledger(&state.ctx, &shop, &customer, cursor, limit).await?)
    }
    .await;
    match result {
        Ok(page) => page_body(page),
        Err(error) => error.into_response(),
    }
}

/// Stripe's header name, and the one it sets on a replayed answer.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

async fn adjust(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let (shop, customer) = customer_path(path)?;
        let key = headers
            .get(IDEMPOTENCY_KEY)
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .ok_or_else(|| {
                invalid(
                    "Idempotency-Key",
                    "required: a unique key per adjustment, reused only to retry it",
                )
            })?;
        let text = text_of(&body)?;
        Ok::<_, ApiError>(
            admin::adjust(
                &state.ctx,
                &shop,
                &customer,
                text,
                &key,
                &principal.0,
                state.ctx.now(),
            )
            .await?,
        )
    }
    .await;
    match result {
        Ok(outcome) => {
            let status =
                StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, Json(outcome.body)).into_response();
            if outcome.replayed {
                response
                    .headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn regenerate_code(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, customer) = customer_path(path)?;
        Ok::<_, ApiError>(admin::regenerate_code(&state.ctx, &shop, &customer, &principal.0).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn profile(
    State(state): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, customer) = customer_path(path)?;
        Ok::<_, ApiError>(admin::profile(&state.ctx, &shop, &customer).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn export_profiles(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let (cursor, limit) = cursor_and_limit(&query_of(query)?)?;
        Ok::<_, ApiError>(admin::export_profiles(&state.ctx, &shop, cursor, limit).await?)
    }
    .await;
    match result {
        Ok(page) => page_body(page),
        Err(error) => error.into_response(),
    }
}

async fn import_catalog(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let text = text_of(&body)?;
        Ok::<_, ApiError>(admin::import_catalog(&state.ctx, &shop, text).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

fn date_of(params: &Params, name: &str) -> Result<NaiveDate, ApiError> {
    let raw = params
        .get(name)
        .ok_or_else(|| invalid(name, "required: a date, YYYY-MM-DD"))?;
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| invalid(name, "must be a date, YYYY-MM-DD"))
}

async fn report(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let params = query_of(query)?;
        let (from, to) = (date_of(&params, "from")?, date_of(&params, "to")?);
        Ok::<_, ApiError>(admin::report(&state.ctx, &shop, from, to).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

async fn list_api_keys(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        Ok::<_, ApiError>(api_keys::list(&state.ctx, &shop).await?)
    }
    .await;
    match result {
        Ok(items) => page_body(Page { items, next: None }),
        Err(error) => error.into_response(),
    }
}

async fn create_api_key(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let shop = shop_of(&path_of(path)?)?;
        let text = text_of(&body)?;
        let secret = cashback_edge::auth::new_api_key();
        Ok::<_, ApiError>(
            api_keys::create(
                &state.ctx,
                &shop,
                text,
                &secret,
                &principal.0,
                state.ctx.now(),
            )
            .await?,
        )
    }
    .await;
    match result {
        Ok(created) => {
            let mut response = (StatusCode::CREATED, Json(created)).into_response();
            // The key itself is in this answer: no cache may keep it.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn revoke_api_key(
    State(state): State<AdminState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let (shop, key_id) = path_of(path)?;
        let shop = shop_of(&shop)?;
        Ok::<_, ApiError>(
            api_keys::revoke(
                &state.ctx,
                &shop,
                key_id.trim(),
                &principal.0,
                state.ctx.now(),
            )
            .await?,
        )
    }
    .await;
    respond(result, StatusCode::OK)
}
