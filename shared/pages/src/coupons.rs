//! Cashback coupons in the dashboard: the list with uses, a coupon created
//! or edited in the same field form as the program (errors beside their
//! field, saved on the version read), approved or paused. The admin use
//! cases do the work.

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{json, Value};

use cashback_app::admin::{self, CouponView};
use cashback_app::AppError;
use cashback_core::coupon::{CouponReward, CouponStatus};
use cashback_core::ids::{Code, ShopId};
use cashback_core::program::FieldError;

use crate::dashboard::{app_failure, html, message, nav, no_store, posted, signed_in, Nav};
use crate::program::{flatten, rows, unflatten, FieldRow};
use crate::PagesState;

pub struct CouponRow {
    pub code: String,
    pub url: String,
    pub name: String,
    pub reward: String,
    pub status: String,
    pub uses: u32,
    pub next_status: &'static str,
    pub next_label: &'static str,
}

#[derive(Template)]
#[template(path = "coupons.html")]
pub struct CouponsPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub csrf: String,
    pub coupons: Vec<CouponRow>,
    pub more_url: Option<String>,
    pub notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "coupon_edit.html")]
pub struct CouponEditPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub csrf: String,
    pub title: String,
    pub action: String,
    pub version: u64,
    pub uses: Option<u32>,
    pub fields: Vec<FieldRow>,
    pub json: String,
    pub errors: Vec<String>,
}

fn row(shop: &ShopId, view: &CouponView) -> CouponRow {
    let code = view.coupon.code.display();
    let (next_status, next_label) = match view.coupon.status {
        CouponStatus::Approved => ("paused", "Pause"),
        CouponStatus::Draft | CouponStatus::Paused => ("approved", "Approve"),
    };
    CouponRow {
        url: format!("/dashboard/shops/{shop}/coupons/{code}"),
        code,
        name: view.coupon.display_name.clone(),
        reward: match &view.coupon.reward {
            CouponReward::Fixed { amount } => format!("{amount} back"),
            CouponReward::Percentage { percent, .. } => format!("{} % back", percent.normalize()),
        },
        status: format!("{:?}", view.coupon.status).to_lowercase(),
        uses: view.uses,
        next_status,
        next_label,
    }
}

type Params = Vec<(String, String)>;

pub(crate) async fn list(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    query: Query<Params>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path(raw_shop)) = path else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "The address is malformed.",
        );
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let cursor = query
        .0
        .iter()
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| hex::decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let notice = query.0.iter().find(|(k, _)| k == "done").map(|_| "Saved.");
    match admin::list_coupons(&state.ctx, &shop, cursor, Some(50)).await {
        Ok(page) => {
            let nav = nav(&state, &session);
            html(
                StatusCode::OK,
                &CouponsPage {
                    shop: shop.to_string(),
                    csrf: nav.csrf.clone(),
                    nav: Some(nav),
                    coupons: page.items.iter().map(|c| row(&shop, c)).collect(),
                    more_url: page.next.map(|next| {
                        format!(
                            "/dashboard/shops/{shop}/coupons?cursor={}",
                            hex::encode(next)
                        )
                    }),
                    notice,
                },
            )
        }
        Err(error) => app_failure(error),
    }
}

/// What a new coupon's form starts from.
fn starter() -> Value {
    json!({
        "code": "", "display_name": "", "description": "", "offer_text": "",
        "reward": {"type": "fixed", "amount": "5.00"}, "min_cart_value": "0",
        "usage_limit_total": null, "usage_limit_per_customer": null,
        "starts_at": null, "ends_at": null, "status": "draft", "stacking": "exclusive"
    })
}

#[allow(clippy::too_many_arguments)]
fn editor(
    nav: Nav,
    shop: &ShopId,
    code: Option<&str>,
    version: u64,
    uses: Option<u32>,
    coupon: &Value,
    mut errors: Vec<FieldError>,
    other: Vec<String>,
) -> CouponEditPage {
    let mut leaves = Vec::new();
    flatten(coupon, "", &mut leaves);
    let fields = rows(leaves, &mut errors);
    let mut left: Vec<String> = errors
        .into_iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    left.extend(other);
    CouponEditPage {
        shop: shop.to_string(),
        csrf: nav.csrf.clone(),
        nav: Some(nav),
        title: code.map_or("New coupon".to_string(), |c| format!("Coupon {c}")),
        action: match code {
            Some(code) => format!("/dashboard/shops/{shop}/coupons/{code}"),
            None => format!("/dashboard/shops/{shop}/coupons"),
        },
        version,
        uses,
        fields,
        json: serde_json::to_string_pretty(coupon).unwrap_or_default(),
        errors: left,
    }
}

pub(crate) async fn new(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path(raw_shop)) = path else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "The address is malformed.",
        );
    };
    match signed_in(&state, &headers, &raw_shop, now) {
        Ok((session, shop)) => html(
            StatusCode::OK,
            &editor(
                nav(&state, &session),
                &shop,
                None,
                0,
                None,
                &starter(),
                Vec::new(),
                Vec::new(),
            ),
        ),
        Err(refused) => refused.into_response(),
    }
}

pub(crate) async fn edit(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let now = state.ctx.now();
    let Ok(Path((raw_shop, raw_code))) = path else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such coupon.");
    };
    let (session, shop) = match signed_in(&state, &headers, &raw_shop, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let Ok(code) = Code::parse(&raw_code) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such coupon.");
    };
    match admin::get_coupon(&state.ctx, &shop, &code).await {
        Ok(view) => {
            let value = serde_json::to_value(&view.coupon).unwrap_or(Value::Null);
            let page = editor(
                nav(&state, &session),
                &shop,
                Some(&code.display()),
                view.version,
                Some(view.uses),
                &value,
                Vec::new(),
                Vec::new(),
            );
            html(StatusCode::OK, &page)
        }
        Err(error) => app_failure(error),
    }
}

fn submitted(form: &[(String, String)]) -> Result<Value, String> {
    let mode = form
        .iter()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.as_str());
    if mode == Some("json") {
        let raw = form
            .iter()
            .find(|(k, _)| k == "json")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        serde_json::from_str(raw).map_err(|e| format!("The JSON is not valid: {e}"))
    } else {
        unflatten(form)
    }
}

fn get<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// Create (no code in the path) or update.
async fn save_coupon(
    state: PagesState,
    raw_shop: String,
    code: Option<String>,
    headers: HeaderMap,
    form: Vec<(String, String)>,
) -> Response {
    let now = state.ctx.now();
    let (session, shop) = match posted(&state, &headers, &raw_shop, get(&form, "csrf"), now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let version = get(&form, "version").trim().parse::<u64>().ok();
    let body = match submitted(&form) {
        Ok(body) => body,
        Err(problem) => {
            let page = editor(
                nav(&state, &session),
                &shop,
                code.as_deref(),
                version.unwrap_or(0),
                None,
                &starter(),
                Vec::new(),
                vec![problem],
            );
            return html(StatusCode::BAD_REQUEST, &page);
        }
    };
    let result = match &code {
        None => admin::create_coupon(&state.ctx, &shop, &body.to_string(), now).await,
        Some(raw) => match Code::parse(raw) {
            Ok(parsed) => {
                admin::update_coupon(&state.ctx, &shop, &parsed, &body.to_string(), version, now)
                    .await
            }
            Err(_) => Err(AppError::NotFound("coupon".into())),
        },
    };
    let (status, errors, other) = match result {
        Ok(_) => {
            return no_store(
                Redirect::to(&format!("/dashboard/shops/{shop}/coupons?done=1")).into_response(),
            )
        }
        Err(AppError::InvalidFields(errors)) => (StatusCode::BAD_REQUEST, errors, Vec::new()),
        Err(AppError::Invalid(problem)) => (StatusCode::BAD_REQUEST, Vec::new(), vec![problem]),
        Err(AppError::Conflict(problem)) => (StatusCode::CONFLICT, Vec::new(), vec![problem]),
        Err(error) => return app_failure(error),
    };
    let page = editor(
        nav(&state, &session),
        &shop,
        code.as_deref(),
        version.unwrap_or(0),
        None,
        &body,
        errors,
        other,
    );
    html(status, &page)
}

pub(crate) async fn create(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (Ok(Path(raw_shop)), Ok(Form(form))) = (path, form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        );
    };
    save_coupon(state, raw_shop, None, headers, form).await
}

pub(crate) async fn update(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (Ok(Path((raw_shop, code))), Ok(Form(form))) = (path, form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        );
    };
    save_coupon(state, raw_shop, Some(code), headers, form).await
}

pub(crate) async fn set_status(
    State(state): State<PagesState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (Ok(Path((raw_shop, raw_code))), Ok(Form(form))) = (path, form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        );
    };
    let shop = match posted(&state, &headers, &raw_shop, get(&form, "csrf"), now) {
        Ok((_, shop)) => shop,
        Err(refused) => return refused.into_response(),
    };
    let status = match get(&form, "status") {
        "approved" => CouponStatus::Approved,
        "paused" => CouponStatus::Paused,
        _ => return message(StatusCode::BAD_REQUEST, "Refused", "Approve or pause."),
    };
    let Ok(code) = Code::parse(&raw_code) else {
        return message(StatusCode::NOT_FOUND, "Not found", "No such coupon.");
    };
    match admin::set_coupon_status(&state.ctx, &shop, &code, status, now).await {
        Ok(_) => no_store(
            Redirect::to(&format!("/dashboard/shops/{shop}/coupons?done=1")).into_response(),
        ),
        Err(error) => app_failure(error),
    }
}
