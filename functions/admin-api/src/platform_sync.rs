//! The shop's balance codes on its platform: a reconcile or a backfill
//! asked for (the platform-sync function runs it off this request, and
//! its summary line carries the figures), and where the backfill stands.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use cashback_app::platform_codes::{self, RunAsked, RunRequest, SyncStatus};
use cashback_core::ids::ShopId;
use cashback_edge::extract::{ApiQuery, InPath};
use cashback_edge::ApiError;

use crate::params::Params;
use crate::AdminState;

/// `GET /v1/shops/{shop}/platform-sync`.
pub(crate) async fn status(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<Json<SyncStatus>, ApiError> {
    Ok(Json(platform_codes::sync_status(&state.ctx, &shop).await?))
}

/// `POST /v1/shops/{shop}/platform-sync/reconcile`: 202, the run asked for.
pub(crate) async fn reconcile(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<(StatusCode, Json<RunAsked>), ApiError> {
    let request = RunRequest::Reconcile { shop, cursor: None };
    let asked = platform_codes::ask_for_run(&state.ctx, request, state.ctx.now()).await?;
    Ok((StatusCode::ACCEPTED, Json(asked)))
}

/// `POST /v1/shops/{shop}/platform-sync/backfill[?restart=true]`: 202.
pub(crate) async fn backfill(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<(StatusCode, Json<RunAsked>), ApiError> {
    let restart = match params.get("restart").map(|r| r.trim()) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "restart",
                "must be true or false".to_string(),
            ))
        }
    };
    let request = RunRequest::Backfill { shop, restart };
    let asked = platform_codes::ask_for_run(&state.ctx, request, state.ctx.now()).await?;
    Ok((StatusCode::ACCEPTED, Json(asked)))
}
