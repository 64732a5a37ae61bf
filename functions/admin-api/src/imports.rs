//! Migration from another loyalty app: a dry run that checks a CSV or
//! JSON-lines file and names every bad row, and the run that imports it a
//! chunk at a time, each row at most once (see
//! `cashback_app::admin::run_import`). The file is the request body,
//! as it was exported; `format=csv` (the default) or `format=jsonl`.

use axum::extract::State;
use axum::Json;

use cashback_app::admin::{self, ImportCheck, ImportChunk, ImportSummary};
use cashback_core::ids::ShopId;
use cashback_core::import::ImportFormat;
use cashback_edge::extract::{ApiQuery, InPath, JsonText, Principal};
use cashback_edge::ApiError;

use crate::params::Params;
use crate::AdminState;

fn format_of(params: &Params) -> Result<ImportFormat, ApiError> {
    match params.get("format") {
        None => Ok(ImportFormat::Csv),
        Some(name) => Ok(admin::import_format(name)?),
    }
}

pub(crate) async fn dry_run(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    ApiQuery(params): ApiQuery<Params>,
    JsonText(file): JsonText,
) -> Result<Json<ImportCheck>, ApiError> {
    let format = format_of(&params)?;
    Ok(Json(
        admin::dry_run_import(&state.ctx, &shop, &file, format).await?,
    ))
}

pub(crate) async fn run(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    ApiQuery(params): ApiQuery<Params>,
    JsonText(file): JsonText,
) -> Result<Json<ImportSummary>, ApiError> {
    let format = format_of(&params)?;
    let limit = match params.get("limit").map(|l| l.trim()) {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<usize>().map_err(|_| {
            ApiError::invalid_field(
                "limit",
                format!(
                    "must be a whole number from 1 to {}",
                    admin::MAX_IMPORT_CHUNK
                ),
            )
        })?),
    };
    let cursor = params
        .get("cursor")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty());
    let now = state.ctx.now();
    Ok(Json(
        admin::run_import(
            &state.ctx,
            &shop,
            &file,
            ImportChunk {
                format,
                cursor,
                limit,
            },
            &principal.0,
            now,
        )
        .await?,
    ))
}
