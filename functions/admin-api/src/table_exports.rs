//! Exports of the whole table to S3 for large shops (docs/exports.md):
//! `POST /v1/table-exports[?export_time=]` starts one (202), `GET
//! /v1/table-exports` lists them, `GET /v1/table-exports/{id}` follows one
//! until `completed`. Operator routes: the export holds every shop's items,
//! so they sit under no shop.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use cashback_app::admin::{self, TableExport};
use cashback_edge::extract::{ApiQuery, InPath, PathValue, Principal};
use cashback_edge::ApiError;

use crate::params::Params;
use crate::AdminState;

/// An export's id as DynamoDB writes it (letters, digits, dashes).
pub(crate) struct ExportId(String);

impl PathValue for ExportId {
    const NAME: &'static str = "id";

    fn from_segment(raw: &str) -> Result<ExportId, String> {
        let valid = !raw.is_empty()
            && raw.len() <= 128
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if valid {
            Ok(ExportId(raw.to_string()))
        } else {
            Err("an export id is letters, digits and dashes".into())
        }
    }
}

/// The list's answer.
#[derive(Serialize)]
pub(crate) struct ExportList {
    items: Vec<TableExport>,
}

/// `POST /v1/table-exports`: 202 with the export as DynamoDB accepted it.
pub(crate) async fn start(
    State(state): State<AdminState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<(StatusCode, Json<TableExport>), ApiError> {
    let at = match params.get("export_time").map(|t| t.trim()) {
        None | Some("") => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::invalid_field(
                        "export_time",
                        format!("an RFC 3339 time such as 2026-11-27T09:30:00Z: {e}"),
                    )
                })?,
        ),
    };
    let export = admin::start_table_export(&state.ctx, at).await?;
    info!(
        principal = %principal.0,
        export = %export.id,
        prefix = %export.prefix,
        "table export started"
    );
    Ok((StatusCode::ACCEPTED, Json(export)))
}

/// `GET /v1/table-exports`.
pub(crate) async fn list(State(state): State<AdminState>) -> Result<Json<ExportList>, ApiError> {
    let items = admin::table_exports(&state.ctx).await?;
    Ok(Json(ExportList { items }))
}

/// `GET /v1/table-exports/{id}`.
pub(crate) async fn get(
    State(state): State<AdminState>,
    InPath(ExportId(id)): InPath<ExportId>,
) -> Result<Json<TableExport>, ApiError> {
    Ok(Json(admin::table_export(&state.ctx, &id).await?))
}
