//! The customer's cashback page: balance, pending per order with its release
//! date, debt explained, the code (copy, apply), tier progress, history with
//! paging and email preferences. One template, two ways in:
//!
//! - Shopify's app proxy: checked by [`customer_api::authorize_proxy`] (signature,
//!   freshness, shop, one `logged_in_customer_id`); the customer is the one
//!   Shopify says is logged in, never one named by the request. The answer
//!   is the page's body as `application/liquid`, so the theme wraps it.
//! - A signed link ([`crate::link`]), minted for the shop's server with its
//!   API key: a whole page.
//!
//! Forms post a token only the customer's page carries.

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use cashback_app::bonuses::{self, BirthdayOutcome};
use cashback_app::portal::{self, CustomerView, EntriesPage};
use cashback_app::preferences::{self, PreferenceOutcome};
use cashback_app::store::KeyScope;
use cashback_app::store::Platform;
use cashback_app::AppError;
use cashback_core::bonuses::{Birthday, BirthdaySource};
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::EntryKind;
use cashback_core::money::Money;
use cashback_edge::auth::require_key;
use cashback_edge::ApiError;
use customer_api::proxy;

use crate::link::{self, LinkError};
use crate::PagesState;

pub const LINK_PAGE_ROUTE: &str = "/pages/shops/{shop}/customers/{id}";

/// History rows per page.
pub const HISTORY_PAGE: u32 = 10;

pub(crate) type Params = Vec<(String, String)>;

/// A pending amount on the page.
pub struct PendingRow {
    pub order: String,
    pub amount: String,
    pub release: String,
}

/// A history row on the page.
pub struct EntryRow {
    pub date: String,
    pub what: &'static str,
    pub order: String,
    pub amount: String,
}

/// How far the customer is towards the next tier.
pub struct TierProgress {
    pub name: String,
    pub percent: String,
    pub remaining: String,
    /// For `<progress value max>`.
    pub value: String,
    pub max: String,
}

/// What the page shows, computed from the customer view; the template
/// only lays it out.
pub struct CustomerPage {
    pub display_name: String,
    pub enrolled: bool,
    pub available: String,
    pub spendable: String,
    pub held: Option<String>,
    pub pending: String,
    pub pending_rows: Vec<PendingRow>,
    pub debt: Option<String>,
    pub code: Option<String>,
    /// Applies the code at checkout (Shopify's `/discount/CODE`).
    pub apply_url: Option<String>,
    pub tier: Option<String>,
    pub next_tier: Option<TierProgress>,
    pub earn_percent: String,
    pub entries: Vec<EntryRow>,
    pub older_url: Option<String>,
    pub newest_url: Option<String>,
    pub unsubscribed: bool,
    pub preferences_action: String,
    /// The birthday as shown ("14 July"), once given.
    pub birthday: Option<String>,
    pub birthday_action: String,
    /// A birthday the customer gives pays from its first day at least this
    /// many days on.
    pub birthday_lead_days: i64,
    pub months: Vec<(u32, &'static str)>,
    pub form_token: String,
    pub notice: Option<&'static str>,
    pub asset_base: String,
}

/// The whole page (signed link).
#[derive(Template)]
#[template(path = "customer.html")]
pub struct CustomerFull<'a> {
    pub page: &'a CustomerPage,
    pub asset_base: &'a str,
}

/// The page's body only (app proxy: the theme is the layout).
#[derive(Template)]
#[template(path = "customer_proxy.html")]
pub struct CustomerFragment<'a> {
    pub page: &'a CustomerPage,
}

/// A refusal or failure, as a page.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub title: String,
    pub text: String,
    pub asset_base: String,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_name(month: u32) -> &'static str {
    usize::try_from(month)
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| MONTHS.get(i))
        .copied()
        .unwrap_or("")
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y").to_string()
}

fn what(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Earn => "Earned",
        EntryKind::Release => "Became available",
        EntryKind::Redeem => "Spent",
        EntryKind::Restore => "Given back",
        EntryKind::Clawback => "Taken back",
        EntryKind::Adjust => "Adjustment",
        EntryKind::Expire => "Expired",
        EntryKind::Bonus => "Bonus",
    }
}

/// The change an entry made, as the customer counts it: available and
/// pending together, signed.
fn delta(available: Money, pending: Money) -> String {
    let total = available.amount() + pending.amount();
    let sign = if total.is_sign_positive() && !total.is_zero() {
        "+"
    } else {
        ""
    };
    format!("{sign}{} {}", total, available.currency())
}

/// Where the page's links and form go, per way in.
pub struct Urls {
    /// The page itself, with the query that authorizes it (a `?...` or `&`
    /// follows for paging).
    pub page: String,
    pub preferences_action: String,
    pub birthday_action: String,
    pub asset_base: String,
    /// Where the shop's `/discount/CODE` is (Shopify): "" on the shop's own
    /// domain (the app proxy), the shop's URL elsewhere; None when the
    /// platform has no such link.
    pub apply_base: Option<String>,
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{name}={value}")
}

/// Shopify's `/discount/CODE` on the shop, which applies the code to the
/// cart; None without a code or on a platform without such a link.
pub fn apply_url(code: Option<&str>, urls: &Urls) -> Option<String> {
    code.zip(urls.apply_base.as_ref())
        .map(|(code, base)| format!("{base}/discount/{code}?redirect=/cart"))
}

pub fn page_of(
    view: &CustomerView,
    urls: &Urls,
    token: String,
    cursor: Option<&str>,
    notice: Option<&'static str>,
) -> CustomerPage {
    let pending_rows = view
        .pending_releases
        .iter()
        .map(|r| PendingRow {
            order: r
                .order_id
                .as_ref()
                .map(|o| format!("Order {o}"))
                .unwrap_or_else(|| "Earlier orders".into()),
            amount: r.amount.to_string(),
            release: r
                .release_at
                .map(date)
                .unwrap_or_else(|| "when the order is complete".into()),
        })
        .collect();
    let next_tier = view.next_tier.as_ref().map(|next| {
        let max = next.min_lifetime_spend.amount();
        let value = (max - next.remaining.amount()).max(rust_decimal::Decimal::ZERO);
        TierProgress {
            name: next.name.clone(),
            percent: next.percent.normalize().to_string(),
            remaining: next.remaining.to_string(),
            value: value.to_string(),
            max: max.to_string(),
        }
    });
    CustomerPage {
        display_name: view.display_name.clone(),
        enrolled: view.enrolled,
        available: view.available.to_string(),
        spendable: view.spendable.to_string(),
        held: view.held.is_positive().then(|| view.held.to_string()),
        pending: view.pending.to_string(),
        pending_rows,
        debt: view.debt.is_positive().then(|| view.debt.to_string()),
        apply_url: apply_url(view.code.as_deref(), urls),
        code: view.code.clone(),
        tier: view
            .tier
            .as_ref()
            .map(|t| format!("{} ({} %)", t.name, t.percent.normalize())),
        next_tier,
        earn_percent: view.earn_percent.normalize().to_string(),
        entries: view
            .entries
            .iter()
            .map(|e| EntryRow {
                date: date(e.at),
                what: what(e.kind),
                order: e
                    .order_id
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                amount: delta(e.available_delta, e.pending_delta),
            })
            .collect(),
        older_url: view
            .next_cursor
            .as_ref()
            .map(|c| with_param(&urls.page, "cursor", c)),
        newest_url: cursor.map(|_| urls.page.clone()),
        unsubscribed: view.reminders_unsubscribed,
        preferences_action: urls.preferences_action.clone(),
        birthday: view
            .birthday
            .map(|b| format!("{} {}", b.day(), month_name(b.month()))),
        birthday_action: urls.birthday_action.clone(),
        birthday_lead_days: cashback_core::bonuses::CUSTOMER_BIRTHDAY_LEAD_DAYS,
        months: (1..=12).map(|m| (m, month_name(m))).collect(),
        form_token: token,
        notice,
        asset_base: urls.asset_base.clone(),
    }
}

/// Shopify's Liquid renders what the proxy answers: no text of ours may be
/// read as a Liquid tag or output, so every brace becomes an HTML entity
/// (the fragment carries no inline CSS or script that would need one).
pub fn liquid_safe(html: &str) -> String {
    html.replace('{', "&#123;").replace('}', "&#125;")
}

pub(crate) fn private(mut response: Response) -> Response {
    // One customer's balance: never kept by a shared cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
        .headers_mut()
        .insert("x-robots-tag", HeaderValue::from_static("noindex"));
    response
}

/// A refusal as a page; a 5xx says nothing of its cause (logged instead).
fn refusal(error: ApiError, asset_base: &str) -> Response {
    let (title, text) = if error.status.is_server_error() {
        tracing::warn!(%error, "customer page failed");
        (
            "Something went wrong".to_string(),
            "Please try again in a few minutes.".to_string(),
        )
    } else {
        let title = match error.status {
            StatusCode::UNAUTHORIZED => "Please sign in again",
            StatusCode::FORBIDDEN => "This page is not yours",
            StatusCode::NOT_FOUND => "Not found",
            _ => "This request could not be understood",
        };
        (title.to_string(), sentence(&error.message))
    };
    let page = MessagePage {
        title,
        text,
        asset_base: asset_base.to_string(),
    };
    match page.render() {
        Ok(html) => private((error.status, Html(html)).into_response()),
        Err(_) => private(error.status.into_response()),
    }
}

fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

fn render_error(error: askama::Error) -> ApiError {
    ApiError::internal(&error)
}

// ---- Shopify app proxy ----

/// Who the proxied request is for: the shop and the customer Shopify signed.
pub(crate) async fn proxied_customer(
    state: &PagesState,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(ShopId, CustomerId, String), ApiError> {
    // A page is never opened with the shop's API key: only the signature.
    if proxy::param(params, proxy::SIGNATURE).is_none() {
        return Err(ApiError::unauthorized("open this page from the shop"));
    }
    let shop = proxy::param(params, "shop")
        .and_then(|s| ShopId::parse(s).ok())
        .ok_or_else(|| ApiError::unauthorized("the app proxy request names no shop"))?;
    let known = state.ctx.shop(&shop, now).await?;
    let customer = match proxy::param(params, "logged_in_customer_id").map(str::trim) {
        None | Some("") => return Err(ApiError::unauthorized("log in to see your cashback")),
        Some(raw) => CustomerId::parse(raw)
            .map_err(|_| ApiError::unauthorized("the app proxy request names no customer"))?,
    };
    customer_api::authorize_proxy(&state.config.proxy, &known, &customer, params, now).await?;
    // Shopify appends its `path_prefix` after the shopper's own query, and
    // signs a repeated key: a link that carries one would choose where the
    // page's stylesheet, links and form go. Shopify's must be the only one.
    if params
        .iter()
        .filter(|(key, _)| key == "path_prefix")
        .count()
        > 1
    {
        return Err(ApiError::unauthorized(
            "the app proxy request repeats a parameter Shopify sets",
        ));
    }
    // Kept to a path on the shop all the same (`//host` is another site).
    let prefix = proxy::param(params, "path_prefix")
        .filter(|p| {
            p.starts_with('/')
                && !p.starts_with("//")
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_".contains(c))
        })
        .unwrap_or("/apps/cashback")
        .trim_end_matches('/')
        .to_string();
    Ok((shop, customer, prefix))
}

pub(crate) fn proxy_urls(prefix: &str) -> Urls {
    Urls {
        page: prefix.to_string(),
        preferences_action: format!("{prefix}/preferences"),
        birthday_action: format!("{prefix}/birthday"),
        asset_base: format!("{prefix}/assets"),
        apply_base: Some(String::new()),
    }
}

pub(crate) fn query_params(
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Params, ApiError> {
    query
        .map(|Query(params)| params)
        .map_err(|_| ApiError::bad_request("bad_query", "the query string is malformed"))
}

fn entries_page(params: &[(String, String)]) -> EntriesPage {
    EntriesPage {
        cursor: proxy::param(params, "cursor")
            .filter(|c| !c.trim().is_empty())
            .map(str::to_string),
        limit: Some(HISTORY_PAGE),
    }
}

fn notice_of(params: &[(String, String)]) -> Option<&'static str> {
    match proxy::param(params, "saved") {
        Some("off") => Some("You will no longer receive reminder emails."),
        Some("on") => Some("You will receive reminder emails again."),
        Some("birthday") => Some("Thank you: your birthday is saved."),
        _ => None,
    }
}

pub(crate) async fn proxy_page(
    State(state): State<PagesState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let params = query_params(query)?;
        let (shop, customer, prefix) = proxied_customer(&state, &params, now).await?;
        let page = entries_page(&params);
        let view = portal::customer_view(&state.ctx, &shop, &customer, &page, now).await?;
        let token = link::form_token(state.link_key(), &shop, &customer);
        let page = page_of(
            &view,
            &proxy_urls(&prefix),
            token,
            page.cursor.as_deref(),
            notice_of(&params),
        );
        CustomerFragment { page: &page }
            .render()
            .map_err(render_error)
    }
    .await;
    match result {
        Ok(html) => private(
            (
                [(header::CONTENT_TYPE, "application/liquid; charset=utf-8")],
                liquid_safe(&html),
            )
                .into_response(),
        ),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

#[derive(Debug, Deserialize)]
pub struct PreferencesForm {
    pub token: String,
    /// `off` stops reminder emails, `on` restarts them.
    pub reminders: String,
}

async fn set_preferences(
    state: &PagesState,
    shop: &ShopId,
    customer: &CustomerId,
    form: Result<Form<PreferencesForm>, FormRejection>,
    now: DateTime<Utc>,
) -> Result<&'static str, ApiError> {
    let Form(form) =
        form.map_err(|_| ApiError::bad_request("bad_form", "the form is incomplete"))?;
    if !link::form_token_is_valid(state.link_key(), shop, customer, &form.token) {
        return Err(ApiError::forbidden(
            "the form did not come from your cashback page",
        ));
    }
    let unsubscribed = match form.reminders.as_str() {
        "off" => true,
        "on" => false,
        _ => return Err(ApiError::bad_request("bad_form", "choose on or off")),
    };
    match preferences::set_reminders(&state.ctx, shop, customer, unsubscribed, now).await? {
        PreferenceOutcome::Changed | PreferenceOutcome::Unchanged => {
            Ok(if unsubscribed { "off" } else { "on" })
        }
        PreferenceOutcome::UnknownCustomer => Err(ApiError::from(AppError::NotFound(
            "there are no emails to set before you earn cashback".into(),
        ))),
    }
}

pub(crate) async fn proxy_preferences(
    State(state): State<PagesState>,
    query: Result<Query<Params>, QueryRejection>,
    form: Result<Form<PreferencesForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let params = query_params(query)?;
        let (shop, customer, prefix) = proxied_customer(&state, &params, now).await?;
        let saved = set_preferences(&state, &shop, &customer, form, now).await?;
        Ok::<_, ApiError>(format!("{prefix}?saved={saved}"))
    }
    .await;
    match result {
        Ok(to) => private(Redirect::to(&to).into_response()),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

#[derive(Debug, Deserialize)]
pub struct BirthdayForm {
    pub token: String,
    pub month: String,
    pub day: String,
}

/// The customer gives their birthday, once: month and day, never a year.
async fn set_birthday(
    state: &PagesState,
    shop: &ShopId,
    customer: &CustomerId,
    form: Result<Form<BirthdayForm>, FormRejection>,
    now: DateTime<Utc>,
) -> Result<&'static str, ApiError> {
    let Form(form) =
        form.map_err(|_| ApiError::bad_request("bad_form", "the form is incomplete"))?;
    if !link::form_token_is_valid(state.link_key(), shop, customer, &form.token) {
        return Err(ApiError::forbidden(
            "the form did not come from your cashback page",
        ));
    }
    let number = |text: &str| text.trim().parse::<u32>().ok();
    let birthday = number(&form.month)
        .zip(number(&form.day))
        .and_then(|(month, day)| Birthday::new(month, day).ok())
        .ok_or_else(|| {
            ApiError::invalid_field("birthday", "choose a day that is in the calendar")
        })?;
    match bonuses::set_birthday(
        &state.ctx,
        shop,
        customer,
        birthday,
        BirthdaySource::Customer,
        now,
    )
    .await?
    {
        BirthdayOutcome::Changed | BirthdayOutcome::Unchanged => Ok("birthday"),
        BirthdayOutcome::UnknownCustomer => Err(ApiError::from(AppError::NotFound(
            "your birthday can be saved once you have earned cashback".into(),
        ))),
    }
}

pub(crate) async fn proxy_birthday(
    State(state): State<PagesState>,
    query: Result<Query<Params>, QueryRejection>,
    form: Result<Form<BirthdayForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let params = query_params(query)?;
        let (shop, customer, prefix) = proxied_customer(&state, &params, now).await?;
        let saved = set_birthday(&state, &shop, &customer, form, now).await?;
        Ok::<_, ApiError>(format!("{prefix}?saved={saved}"))
    }
    .await;
    match result {
        Ok(to) => private(Redirect::to(&to).into_response()),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

// ---- Signed link (WooCommerce My Account) ----

pub(crate) fn link_ids(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(ShopId, CustomerId), ApiError> {
    let Path((raw_shop, raw_customer)) =
        path.map_err(|_| ApiError::bad_request("bad_path", "the path is malformed"))?;
    let shop = ShopId::parse(&raw_shop)
        .map_err(|_| ApiError::from(AppError::UnknownShop(raw_shop.clone())))?;
    let customer = CustomerId::parse(&raw_customer)
        .map_err(|error| ApiError::bad_request("bad_customer", error.to_string()))?;
    Ok((shop, customer))
}

pub(crate) fn check_link(
    state: &PagesState,
    shop: &ShopId,
    customer: &CustomerId,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    link::verify(
        state.link_key(),
        shop,
        customer,
        proxy::param(params, "expires"),
        proxy::param(params, "sig"),
        now,
    )
    .map_err(|error| match error {
        LinkError::Missing => {
            ApiError::unauthorized("open this page from your account in the shop")
        }
        LinkError::Forged => ApiError::forbidden("this link is not valid"),
        LinkError::Expired => ApiError::unauthorized(
            "this link has expired; open the page again from your account in the shop",
        ),
    })
}

fn link_urls(shop: &ShopId, customer: &CustomerId, params: &[(String, String)]) -> Urls {
    let expires = proxy::param(params, "expires").unwrap_or_default();
    let sig = proxy::param(params, "sig").unwrap_or_default();
    // Only the two checked values are carried on (both digits or hex).
    let auth = format!("expires={}&sig={}", expires.trim(), sig.trim());
    Urls {
        page: format!("/pages/shops/{shop}/customers/{customer}?{auth}"),
        preferences_action: format!("/pages/shops/{shop}/customers/{customer}/preferences?{auth}"),
        birthday_action: format!("/pages/shops/{shop}/customers/{customer}/birthday?{auth}"),
        asset_base: "/pages/assets".into(),
        apply_base: None,
    }
}

/// The signed page's links; on Shopify the code is applied on the shop's
/// own site (the program's shop URL).
pub(crate) async fn link_page_urls(
    state: &PagesState,
    shop: &ShopId,
    customer: &CustomerId,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Urls, ApiError> {
    let shop_program = state.ctx.shop_program(shop, now).await?;
    let mut urls = link_urls(shop, customer, params);
    if shop_program.shop.platform == Platform::Shopify {
        urls.apply_base = shop_program
            .program
            .shop_url
            .as_deref()
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .map(|url| url.trim_end_matches('/').to_string());
    }
    Ok(urls)
}

pub(crate) async fn link_page(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let (shop, customer) = link_ids(path)?;
        let params = query_params(query)?;
        check_link(&state, &shop, &customer, &params, now)?;
        let urls = link_page_urls(&state, &shop, &customer, &params, now).await?;
        let page = entries_page(&params);
        let view = portal::customer_view(&state.ctx, &shop, &customer, &page, now).await?;
        let token = link::form_token(state.link_key(), &shop, &customer);
        let page = page_of(
            &view,
            &urls,
            token,
            page.cursor.as_deref(),
            notice_of(&params),
        );
        CustomerFull {
            page: &page,
            asset_base: &page.asset_base,
        }
        .render()
        .map_err(render_error)
    }
    .await;
    match result {
        Ok(html) => private(Html(html).into_response()),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

pub(crate) async fn link_preferences(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    form: Result<Form<PreferencesForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let (shop, customer) = link_ids(path)?;
        let params = query_params(query)?;
        check_link(&state, &shop, &customer, &params, now)?;
        let saved = set_preferences(&state, &shop, &customer, form, now).await?;
        Ok::<_, ApiError>(with_param(
            &link_urls(&shop, &customer, &params).page,
            "saved",
            saved,
        ))
    }
    .await;
    match result {
        Ok(to) => private(Redirect::to(&to).into_response()),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

pub(crate) async fn link_birthday(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
    form: Result<Form<BirthdayForm>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let (shop, customer) = link_ids(path)?;
        let params = query_params(query)?;
        check_link(&state, &shop, &customer, &params, now)?;
        let saved = set_birthday(&state, &shop, &customer, form, now).await?;
        Ok::<_, ApiError>(with_param(
            &link_urls(&shop, &customer, &params).page,
            "saved",
            saved,
        ))
    }
    .await;
    match result {
        Ok(to) => private(Redirect::to(&to).into_response()),
        Err(error) => refusal(error, "/pages/assets"),
    }
}

/// A signed link to the customer's page, valid for the configured time.
pub fn signed_link(
    secret: &[u8],
    base_url: &str,
    shop: &ShopId,
    customer: &CustomerId,
    expires_at: DateTime<Utc>,
) -> String {
    let expires = expires_at.timestamp();
    format!(
        "{}/pages/shops/{shop}/customers/{customer}?expires={expires}&sig={}",
        base_url.trim_end_matches('/'),
        link::sign(secret, shop, customer, expires)
    )
}

/// `POST .../link` with the shop's API key: `{"url", "expires_at"}`.
pub(crate) async fn mint_link(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let result = async {
        let (shop, customer) = link_ids(path)?;
        let known = state.ctx.shop(&shop, now).await?;
        require_key(&state.ctx, &known, &headers, KeyScope::PortalServer, now).await?;
        let expires_at = now + Duration::seconds(state.config.link_ttl_seconds);
        let url = signed_link(
            state.link_key(),
            &state.ctx.config.public_base_url,
            &shop,
            &customer,
            expires_at,
        );
        Ok::<_, ApiError>(serde_json::json!({ "url": url, "expires_at": expires_at }))
    }
    .await;
    match result {
        Ok(body) => private(Json(body).into_response()),
        Err(error) => error.into_response(),
    }
}
