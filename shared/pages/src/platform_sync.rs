//! The platform sync panel of the dashboard: whether the shop's balance
//! codes are kept on its platform (which platform, which mode), whether
//! the app was uninstalled, the last sync, the syncs given up on (how many,
//! the newest reason), the last reconcile's figures and the backfill's
//! progress, with a button that asks for a reconcile. Every figure is
//! `platform_codes::sync_status`'s, as the admin API's
//! `GET /v1/shops/{shop}/platform-sync` answers it; the button calls
//! `platform_codes::ask_for_run`, as its `POST .../reconcile` does.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /dashboard/shops/{shop}/platform-sync` | the panel |
//! | `POST /dashboard/shops/{shop}/platform-sync/reconcile` | a reconcile asked for (session + CSRF token) |

use askama::Template;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};

use cashback_app::platform_codes::{self, RunRequest, SyncStatus};
use cashback_app::store::Platform;
use cashback_app::AppError;

use crate::dashboard::{
    app_failure, html, message, nav, no_store, posted, principal, signed_in, Nav,
};
use crate::PagesState;

/// The last reconcile's figures, as shown.
pub struct ReconcileRow {
    pub started: String,
    pub at: String,
    pub checked: u64,
    pub drifted: u64,
    pub repaired: u64,
    pub failed: u64,
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "platform_sync.html")]
pub struct SyncPage {
    pub nav: Option<Nav>,
    pub shop: String,
    pub csrf: String,
    pub notice: Option<&'static str>,
    pub platform: &'static str,
    pub mode: String,
    pub connected: bool,
    /// Why the codes are not kept on the platform, when they are not.
    pub not_connected: Option<&'static str>,
    pub uninstalled: Option<String>,
    pub last_sync: String,
    pub parked: u64,
    pub parked_reason: Option<String>,
    pub parked_at: Option<String>,
    pub reconcile: Option<ReconcileRow>,
    pub backfill: String,
}

/// A time as the dashboard shows it (the ledger's format, UTC).
fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Shopify => "Shopify",
        Platform::Woocommerce => "WooCommerce",
        Platform::Generic => "Generic webhooks",
    }
}

/// The program's mode in words (by its wire name, so a mode added later
/// shows as its name until it has words here).
fn mode_name(status: &SyncStatus) -> String {
    let wire = serde_json::to_value(status.platform_sync)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match wire.as_str() {
        "off" => "Off: codes are not kept on the platform".into(),
        "discount_code" => "One discount code per customer".into(),
        "store_credit" => "Native store credit".into(),
        other => other.replace('_', " "),
    }
}

fn page_of(status: &SyncStatus, shop: String, nav: Nav, notice: Option<&'static str>) -> SyncPage {
    let not_connected = if status.connected {
        None
    } else if status.uninstalled_at.is_some() {
        Some("The app was uninstalled: codes are no longer sent to the platform.")
    } else if status.platform == Platform::Generic {
        Some("This shop's platform keeps no codes.")
    } else {
        Some("The program keeps its codes off the platform.")
    };
    let reconcile = status.reconcile.as_ref().map(|r| ReconcileRow {
        started: when(r.started_at),
        at: when(r.at),
        checked: r.checked,
        drifted: r.drifted,
        repaired: r.repaired,
        failed: r.failed,
        state: if r.finished { "finished" } else { "running" },
    });
    let backfill = match &status.backfill {
        None => "Not started.".to_string(),
        Some(b) if b.finished() => format!(
            "Finished: {} accounts (started {}).",
            b.done,
            when(b.started_at)
        ),
        Some(b) => format!(
            "Running: {} accounts so far (started {}).",
            b.done,
            when(b.started_at)
        ),
    };
    SyncPage {
        csrf: nav.csrf.clone(),
        nav: Some(nav),
        shop,
        notice,
        platform: platform_name(status.platform),
        mode: mode_name(status),
        connected: status.connected,
        not_connected,
        uninstalled: status.uninstalled_at.map(when),
        last_sync: status.last_synced_at.map_or_else(|| "Never.".into(), when),
        parked: status.parked.count,
        parked_reason: status.parked.newest_reason.clone(),
        parked_at: status.parked.newest_at.map(when),
        reconcile,
        backfill,
    }
}

type Params = Vec<(String, String)>;

pub(crate) async fn page(
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
    let notice = query
        .0
        .iter()
        .find(|(k, _)| k == "asked")
        .map(|_| "A reconcile was asked for: its figures show here once it has run.");
    match platform_codes::sync_status(&state.ctx, &shop).await {
        Ok(status) => html(
            StatusCode::OK,
            &page_of(&status, shop.to_string(), nav(&state, &session), notice),
        ),
        Err(error) => app_failure(error),
    }
}

pub(crate) async fn reconcile(
    State(state): State<PagesState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let now = state.ctx.now();
    let (Ok(Path(raw_shop)), Ok(Form(form))) = (path, form) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Refused",
            "The form is incomplete.",
        );
    };
    let csrf = form
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let (session, shop) = match posted(&state, &headers, &raw_shop, csrf, now) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let request = RunRequest::Reconcile {
        shop: shop.clone(),
        cursor: None,
    };
    match platform_codes::ask_for_run(&state.ctx, request, now).await {
        Ok(_) => {
            tracing::info!(shop = %shop, by = %principal(&session), "platform reconcile asked for from the dashboard");
            no_store(
                Redirect::to(&format!("/dashboard/shops/{shop}/platform-sync?asked=1"))
                    .into_response(),
            )
        }
        Err(AppError::Conflict(_)) => message(
            StatusCode::CONFLICT,
            "Not syncing",
            "This shop's codes are not kept on its platform, so there is nothing to reconcile.",
        ),
        Err(error) => app_failure(error),
    }
}
