//! The merchant's dashboard, signed in with a shop's dashboard user
//! ([`crate::auth`]): find a customer (id, email or code), their account and
//! ledger with paging, idempotent adjustments, a new code. Every handler
//! calls the admin use cases the JSON API calls; a session reaches only its
//! own shop.
//!
//! | route | what |
//! | --- | --- |
//! | `GET/POST /dashboard/login`, `POST /dashboard/logout` | sign in and out |
//! | `GET /dashboard/embedded?id_token=` | Shopify admin opens the app: App Bridge's session token, verified |
//! | `GET /dashboard/shops/{shop}/customers?q=` | find a customer |
//! | `GET /dashboard/shops/{shop}/customers/{id}?cursor=` | account and ledger |
//! | `POST /dashboard/shops/{shop}/customers/{id}/adjustments` | a credit or debit (idempotent) |
//! | `POST /dashboard/shops/{shop}/customers/{id}/regenerate-code` | a new code |
//! | `POST /dashboard/shops/{shop}/customers/{id}/resend-email` | the customer's last email again (at most once every ten minutes) |

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use cashback_app::admin::{self, CustomerView, Lookup};
use cashback_app::resend::{self, ResendError, ResendOutcome};
use cashback_app::AppError;
use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::LedgerEntry;

use crate::auth::{self, Session, SESSION_COOKIE};
use crate::PagesState;

/// Ledger rows per page.
pub const LEDGER_PAGE: u32 = 20;

/// What the layout shows of the signed-in user.
pub struct Nav {
    pub shop: String,
    pub email: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct DashMessage {
    title: String,
    text: String,
    asset_base: String,
}

pub struct AccountRow {
    pub id: String,
    pub email: String,
    pub code: String,
    pub currency: String,
    pub available: String,
    pub spendable: String,
    pub pending: String,
    pub debt: String,
    pub lifetime_issued: String,
    pub lifetime_used: String,
    pub tier: String,
}

pub struct LedgerRow {
    pub at: String,
    pub kind: String,
    pub order: String,
    pub available: String,
    pub pending: String,
    pub debt: String,
    pub note: String,
}

/// The adjustment form as submitted, with the errors beside its fields.
#[derive(Default)]
pub struct AdjustmentForm {
    pub key: String,
    pub amount: String,
    pub reason: String,
    pub amount_error: Option<String>,
    pub reason_error: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "customers.html")]
pub struct CustomersPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub csrf: String,
    pub query: String,
    pub search_error: Option<String>,
    pub notice: Option<&'static str>,
    pub account: Option<AccountRow>,
    pub adjustment: AdjustmentForm,
    pub entries: Vec<LedgerRow>,
    pub older_url: Option<String>,
    pub newest_url: Option<String>,
    /// Why the last email was not resent.
    pub resend_error: Option<String>,
    /// The shortest time between two resends, as the page states it.
    pub resend_minutes: i64,
}

pub(crate) fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => no_store((status, Html(body)).into_response()),
        Err(error) => {
            tracing::warn!(%error, "dashboard template failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

pub(crate) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The dashboard is never framed by another site (clickjacking).
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(
        status,
        &DashMessage {
            title: title.into(),
            text: text.into(),
            asset_base: "/pages/assets".into(),
        },
    )
}

fn session_key(state: &PagesState) -> &[u8] {
    state.link_key()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Why a dashboard request is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No session, or one expired or forged: sign in.
    SignIn,
    /// A session of another shop.
    OtherShop,
    /// A form without its session's CSRF token.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::SignIn => no_store(Redirect::to("/dashboard/login").into_response()),
            Refused::OtherShop => message(
                StatusCode::FORBIDDEN,
                "Not your shop",
                "You are signed in to another shop's dashboard.",
            ),
            Refused::Csrf => message(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form did not come from this dashboard; reload the page and try again.",
            ),
        }
    }
}

/// The session, when there is one and it is this shop's.
pub(crate) fn signed_in(
    state: &PagesState,
    headers: &HeaderMap,
    raw_shop: &str,
    now: DateTime<Utc>,
) -> Result<(Session, ShopId), Refused> {
    let session = cookie_value(headers)
        .and_then(|cookie| auth::read_session(session_key(state), &cookie, now))
        .ok_or(Refused::SignIn)?;
    match ShopId::parse(raw_shop) {
        Ok(shop) if shop == session.shop => Ok((session, shop)),
        _ => Err(Refused::OtherShop),
    }
}

/// Who made a change from the dashboard, as the use cases record it.
pub(crate) fn principal(session: &Session) -> String {
    format!("dashboard:{}", session.email)
}

pub(crate) fn nav(state: &PagesState, session: &Session) -> Nav {
    Nav {
        shop: session.shop.to_string(),
        email: session.email.clone(),
        csrf: auth::csrf_token(session_key(state), session),
    }
}

pub(crate) fn app_failure(error: AppError) -> Response {
    match error {
        AppError::NotFound(what) => message(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("No {what} here."),
        ),
        AppError::UnknownShop(_) => message(StatusCode::NOT_FOUND, "Not found", "No such shop."),
        other if other.is_retryable() => {
            tracing::warn!(error = %other, "dashboard request failed, retryable");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "Please try again in a moment.",
            )
        }
        other => {
            tracing::warn!(error = %other, "dashboard request failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Please try again in a few minutes.",
            )
        }
    }
}

// ---- sign in ----

pub(crate) async fn login_page(State(state): State<PagesState>, headers: HeaderMap) -> Response {
    let now = state.ctx.now();
    if let Some(session) =
        cookie_value(&headers).and_then(|c| auth::read_session(session_key(&state), &c, now))
    {
        return no_store(
            Redirect::to(&format!("/dashboard/shops/{}/customers", session.shop)).into_response(),
        );
    }
    html(
        StatusCode::OK,
        &LoginPage {
            nav: None,
            shop: String::new(),
            email: String::new(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    shop: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn login(
    State(state): State<PagesState>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let Ok(Form(form)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "The form is incomplete.",
        );
    };
    let shop = ShopId::parse(form.shop.trim()).ok();
    let email = form.email.trim().to_ascii_lowercase();
    let user = shop.as_ref().and_then(|shop| {
        state
            .config
            .dashboard_users
            .iter()
            .find(|u| &u.shop == shop && u.email.eq_ignore_ascii_case(&email))
    });
    // The same answer for an unknown shop, user or wrong password; the hash
    // is checked even for an unknown user so the time says nothing either.
    let stored = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
    let matches = auth::verify_password(&form.password, stored);
    match (user, matches) {
        (Some(user), true) => {
            let cookie = auth::new_session(session_key(&state), &user.shop, &user.email, now);
            let mut response =
                Redirect::to(&format!("/dashboard/shops/{}/customers", user.shop)).into_response();
            if let Ok(value) = HeaderValue::from_str(&auth::session_cookie(&cookie)) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            tracing::info!(shop = %user.shop, "dashboard sign-in");
            no_store(response)
        }
        _ => html(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                nav: None,
                shop: form.shop.trim().to_string(),
                email,
                error: Some("The shop, email or password is not right.".into()),
            },
        ),
    }
}

/// A hash no password matches in practice, checked for unknown users.
const DUMMY_HASH: &str =
    "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Shopify admin loads the app with `id_token` (App Bridge's session
/// token); a verified token starts a session for the shop it names.
pub(crate) async fn embedded(
    State(state): State<PagesState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let now = state.ctx.now();
    let (Some(secret), Some(api_key)) = (
        state.config.proxy.shopify_app_secret.as_ref(),
        state.config.shopify_api_key.as_deref(),
    ) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not available",
            "This dashboard is not set up inside Shopify admin.",
        );
    };
    let secret = match secret.get().await {
        Ok(keys) => keys.current.as_slice(),
        Err(error) => return app_failure(error.into()),
    };
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let token = param(&params, "id_token").unwrap_or_default();
    match crate::embedded::verify(secret, api_key, token, now) {
        Ok(embedded) => {
            installed_again(&state, &embedded.shop, now).await;
            let cookie = auth::new_session(
                session_key(&state),
                &embedded.shop,
                &format!("shopify-user-{}", embedded.user),
                now,
            );
            let mut response =
                Redirect::to(&format!("/dashboard/shops/{}/customers", embedded.shop))
                    .into_response();
            if let Ok(value) = HeaderValue::from_str(&auth::embedded_session_cookie(&cookie)) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            tracing::info!(shop = %embedded.shop, "embedded dashboard session");
            let mut framed = no_store(response);
            // Shopify admin is the one site allowed to frame it.
            if let Ok(value) = HeaderValue::from_str(&format!(
                "frame-ancestors https://{} https://admin.shopify.com",
                embedded.shop
            )) {
                framed
                    .headers_mut()
                    .insert("content-security-policy", value);
            }
            framed
        }
        Err(error) => {
            tracing::info!(%error, "embedded dashboard token refused");
            message(
                StatusCode::UNAUTHORIZED,
                "Please open the app again",
                &format!(
                    "{} (reload it from Shopify admin).",
                    auth_sentence(&error.to_string())
                ),
            )
        }
    }
}

/// Shopify admin opens only an installed app, so a verified session token
/// says the app is installed on its shop: if the shop was marked
/// uninstalled, syncing resumes and its codes are reconciled
/// (docs/compliance.md). A failure is logged and the dashboard still
/// opens: the next opening tries again, since the shop stays marked.
async fn installed_again(state: &PagesState, shop: &ShopId, now: DateTime<Utc>) {
    match cashback_app::compliance::reinstall(&state.ctx, shop, now).await {
        Ok(_) | Err(AppError::UnknownShop(_)) => {}
        Err(error) => {
            tracing::warn!(shop = %shop, error = %error, "the shop opened again could not be marked installed");
        }
    }
}

fn auth_sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn logout(
    State(state): State<PagesState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let session =
        cookie_value(&headers).and_then(|c| auth::read_session(session_key(&state), &c, now));
    if let (Some(session), Ok(Form(form))) = (&session, form) {
        if !auth::csrf_is_valid(session_key(&state), session, &form.csrf) {
            return message(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form did not come from this dashboard.",
            );
        }
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&auth::cleared_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    no_store(response)
}

// ---- customers ----

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn empty_page(state: &PagesState, session: &Session) -> CustomersPage {
    let nav = nav(state, session);
    CustomersPage {
        shop: nav.shop.clone(),
        csrf: nav.csrf.clone(),
        nav: Some(nav),
        query: String::new(),
        search_error: None,
        notice: None,
        account: None,
        adjustment: AdjustmentForm::default(),
        entries: Vec::new(),
        older_url: None,
        newest_url: None,
        resend_error: None,
        resend_minutes: resend::RESEND_EVERY_MINUTES,
    }
}

pub(crate) async fn customers(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path(raw_shop)) = path else {
        return message(
            StatusCode::BAD_REQUEST,
            "Not found",
            "The address is malformed.",
        );
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let q = param(&params, "q").unwrap_or_default().trim().to_string();
    let mut page = empty_page(&state, &session);
    if q.is_empty() {
        return html(StatusCode::OK, &page);
    }
    match find(&state, &shop, &q).await {
        Ok(Some(customer)) => no_store(
            Redirect::to(&format!("/dashboard/shops/{shop}/customers/{customer}")).into_response(),
        ),
        Ok(None) => {
            page.query = q;
            page.search_error = Some("No customer has this id, email or code.".into());
            html(StatusCode::NOT_FOUND, &page)
        }
        Err(error) => app_failure(error),
    }
}

/// The customer an id, email or code names.
async fn find(state: &PagesState, shop: &ShopId, q: &str) -> Result<Option<CustomerId>, AppError> {
    let ctx = &state.ctx;
    let found = if q.contains('@') {
        match Email::parse(q) {
            Ok(email) => admin::lookup_customer(ctx, shop, &Lookup::Email(email)).await,
            Err(_) => return Ok(None),
        }
    } else {
        let by_code = match Code::parse(q) {
            Ok(code) => admin::lookup_customer(ctx, shop, &Lookup::Code(code)).await,
            Err(_) => Err(AppError::NotFound("customer".into())),
        };
        match (by_code, CustomerId::parse(q)) {
            (Ok(view), _) => Ok(view),
            (Err(AppError::NotFound(_)), Ok(id)) => admin::get_customer(ctx, shop, &id).await,
            (Err(error), _) => Err(error),
        }
    };
    match found {
        Ok(view) => Ok(Some(view.customer_id)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

fn account_row(view: &CustomerView) -> AccountRow {
    let c = view.currency;
    AccountRow {
        id: view.customer_id.to_string(),
        email: view
            .email
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "none".into()),
        code: view.code.clone().unwrap_or_else(|| "none yet".into()),
        currency: c.to_string(),
        available: format!("{} {c}", view.available),
        spendable: format!("{} {c}", view.spendable),
        pending: format!("{} {c}", view.pending),
        debt: format!("{} {c}", view.debt),
        lifetime_issued: format!("{} {c}", view.lifetime_issued),
        lifetime_used: format!("{} {c}", view.lifetime_used),
        tier: view
            .tier
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_else(|| "none".into()),
    }
}

fn ledger_row(entry: &LedgerEntry) -> LedgerRow {
    LedgerRow {
        at: entry.at.format("%Y-%m-%d %H:%M").to_string(),
        kind: format!("{:?}", entry.kind).to_lowercase(),
        order: entry
            .order_id
            .as_ref()
            .map(|o| o.to_string())
            .unwrap_or_default(),
        available: entry.available_delta.amount().to_string(),
        pending: entry.pending_delta.amount().to_string(),
        debt: entry.debt_delta.amount().to_string(),
        note: entry.note.clone().unwrap_or_default(),
    }
}

fn new_key() -> String {
    format!("dashboard-{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The account page, with `adjustment` as the form to show.
async fn account_page(
    state: &PagesState,
    session: &Session,
    shop: &ShopId,
    customer: &CustomerId,
    cursor: Option<&str>,
    adjustment: AdjustmentForm,
    notice: Option<&'static str>,
) -> Result<CustomersPage, AppError> {
    let view = admin::get_customer(&state.ctx, shop, customer).await?;
    let raw_cursor = match cursor {
        Some(c) => Some(
            hex::decode(c.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| AppError::Invalid("the page cursor is not ours".into()))?,
        ),
        None => None,
    };
    let ledger = admin::ledger(&state.ctx, shop, customer, raw_cursor, Some(LEDGER_PAGE)).await?;
    let base = format!("/dashboard/shops/{shop}/customers/{customer}");
    let mut page = empty_page(state, session);
    page.query = customer.to_string();
    page.account = Some(account_row(&view));
    page.entries = ledger.items.iter().map(ledger_row).collect();
    page.older_url = ledger
        .next
        .as_ref()
        .map(|next| format!("{base}?cursor={}", hex::encode(next.as_bytes())));
    page.newest_url = cursor.map(|_| base.clone());
    page.notice = notice;
    page.adjustment = adjustment;
    Ok(page)
}

fn ids(path: Result<Path<(String, String)>, PathRejection>) -> Option<(String, CustomerId)> {
    let Path((shop, customer)) = path.ok()?;
    Some((shop, CustomerId::parse(&customer).ok()?))
}

pub(crate) async fn customer(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Some((raw_shop, customer)) = ids(path) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such customer.");
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let params = query.map(|Query(p)| p).unwrap_or_default();
    let notice = match param(&params, "done") {
        Some("adjusted") => Some("The adjustment is in the ledger."),
        Some("code") => Some("The customer has a new code; the old one no longer works."),
        Some("resent") => Some("The customer's last email was sent again."),
        _ => None,
    };
    let form = AdjustmentForm {
        key: new_key(),
        ..AdjustmentForm::default()
    };
    match account_page(
        &state,
        &session,
        &shop,
        &customer,
        param(&params, "cursor"),
        form,
        notice,
    )
    .await
    {
        Ok(page) => html(StatusCode::OK, &page),
        Err(error) => app_failure(error),
    }
}

#[derive(Deserialize)]
pub(crate) struct AdjustForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

/// The session of a form POST, its CSRF token checked.
pub(crate) fn posted(
    state: &PagesState,
    headers: &HeaderMap,
    raw_shop: &str,
    csrf: &str,
    now: DateTime<Utc>,
) -> Result<(Session, ShopId), Refused> {
    let (session, shop) = signed_in(state, headers, raw_shop, now)?;
    if !auth::csrf_is_valid(session_key(state), &session, csrf) {
        return Err(Refused::Csrf);
    }
    Ok((session, shop))
}

/// A form that carries the session's CSRF token.
pub(crate) trait CsrfToken {
    /// The token the form was rendered with.
    fn csrf(&self) -> &str;
}

impl CsrfToken for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfToken for AdjustForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A form POST about one customer, its CSRF token checked: the session, the
/// shop and customer the path names, and the form; or the page refusing it.
fn customer_post<F: CsrfToken>(
    state: &PagesState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: &HeaderMap,
    form: Result<Form<F>, FormRejection>,
    now: DateTime<Utc>,
) -> Result<(Session, ShopId, CustomerId, F), Box<Response>> {
    let (Some((raw_shop, customer)), Ok(Form(form))) = (ids(path), form) else {
        return Err(Box::new(message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        )));
    };
    let (session, shop) =
        posted(state, headers, &raw_shop, form.csrf(), now).map_err(IntoResponse::into_response)?;
    Ok((session, shop, customer, form))
}

pub(crate) async fn adjust(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<AdjustForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (session, shop, customer, form) = match customer_post(&state, path, &headers, form, now) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let body = serde_json::json!({ "amount": form.amount.trim(), "reason": form.reason.trim() })
        .to_string();
    let mut again = AdjustmentForm {
        key: form.idempotency_key.clone(),
        amount: form.amount.clone(),
        reason: form.reason.clone(),
        ..AdjustmentForm::default()
    };
    let outcome = admin::adjust(
        &state.ctx,
        &shop,
        &customer,
        &body,
        &form.idempotency_key,
        &principal(&session),
        now,
    )
    .await;
    let status = match outcome {
        Ok(outcome) if outcome.status < 300 => {
            return no_store(
                Redirect::to(&format!(
                    "/dashboard/shops/{shop}/customers/{customer}?done=adjusted"
                ))
                .into_response(),
            )
        }
        Ok(outcome) => {
            // The ledger refused it (e.g. a debit over the balance); the
            // answer is stored under the key, so a new key is needed.
            again.error = outcome.body["error"]["message"]
                .as_str()
                .map(str::to_string)
                .or_else(|| Some("The ledger refused this adjustment.".into()));
            again.key = new_key();
            StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(AppError::InvalidFields(fields)) => {
            for field in fields {
                match field.field.as_str() {
                    "amount" => again.amount_error = Some(field.message),
                    "reason" => again.reason_error = Some(field.message),
                    _ => again.error = Some(field.message),
                }
            }
            StatusCode::BAD_REQUEST
        }
        Err(AppError::Conflict(message)) => {
            again.error = Some(message);
            again.key = new_key();
            StatusCode::CONFLICT
        }
        Err(error) => return app_failure(error),
    };
    match account_page(&state, &session, &shop, &customer, None, again, None).await {
        Ok(page) => html(status, &page),
        Err(error) => app_failure(error),
    }
}

pub(crate) async fn regenerate_code(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (session, shop, customer, _) = match customer_post(&state, path, &headers, form, now) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    match admin::regenerate_code(&state.ctx, &shop, &customer, &principal(&session)).await {
        Ok(_) => no_store(
            Redirect::to(&format!(
                "/dashboard/shops/{shop}/customers/{customer}?done=code"
            ))
            .into_response(),
        ),
        Err(error) => app_failure(error),
    }
}

/// `POST .../resend-email`: the customer's last email, sent again through
/// the resend use case (which keeps the rate limit and the unsubscribe).
pub(crate) async fn resend_email(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (session, shop, customer, _) = match customer_post(&state, path, &headers, form, now) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let outcome =
        resend::resend_last_email(&state.ctx, &shop, &customer, &principal(&session), now).await;
    let (status, error) = match outcome {
        Ok(ResendOutcome::Sent { .. }) => {
            return no_store(
                Redirect::to(&format!(
                    "/dashboard/shops/{shop}/customers/{customer}?done=resent"
                ))
                .into_response(),
            )
        }
        Ok(ResendOutcome::TooSoon { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "The last email was resent moments ago (once every {} minutes at most); try again after {} UTC.",
                resend::RESEND_EVERY_MINUTES,
                retry_after.format("%H:%M")
            ),
        ),
        Ok(ResendOutcome::Unsubscribed) => (
            StatusCode::CONFLICT,
            "This customer stopped cashback emails, or their address bounced: nothing was sent."
                .to_string(),
        ),
        Ok(ResendOutcome::SentByKlaviyo) => (
            StatusCode::CONFLICT,
            "This shop's cashback emails are sent by its Klaviyo flows, not by this engine: \
             resend it from Klaviyo. Nothing was sent."
                .to_string(),
        ),
        Ok(ResendOutcome::NothingToResend) => (
            StatusCode::NOT_FOUND,
            "No cashback email has been sent to this customer yet: there is nothing to resend."
                .to_string(),
        ),
        Err(ResendError::Notify(error)) => {
            tracing::warn!(%error, "resending the last email failed");
            (
                StatusCode::BAD_GATEWAY,
                format!(
                    "The email service did not take the email; try again in {} minutes.",
                    resend::RESEND_EVERY_MINUTES
                ),
            )
        }
        Err(ResendError::App(error)) => return app_failure(error),
    };
    let form = AdjustmentForm {
        key: new_key(),
        ..AdjustmentForm::default()
    };
    match account_page(&state, &session, &shop, &customer, None, form, None).await {
        Ok(mut page) => {
            page.resend_error = Some(error);
            html(status, &page)
        }
        Err(error) => app_failure(error),
    }
}
