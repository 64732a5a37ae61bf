//! The program: read it, replace it (`If-Match` optional), read an earlier
//! version. Every program answer carries its version as a strong ETag, the
//! value the next `If-Match` names.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::Json;

use cashback_app::admin::{self, ProgramView};
use cashback_core::ids::ShopId;
use cashback_edge::extract::{IfMatch, InPath, JsonText, PathValue, Principal};
use cashback_edge::ApiError;

use crate::AdminState;

/// A program and its version as the `ETag` header (`"3"`).
type Versioned = ([(HeaderName, HeaderValue); 1], Json<ProgramView>);

fn versioned(view: ProgramView) -> Result<Versioned, ApiError> {
    let etag = HeaderValue::try_from(format!("\"{}\"", view.version))
        .map_err(|error| ApiError::internal(&error))?;
    Ok(([(header::ETAG, etag)], Json(view)))
}

/// `{version}` in the path: a version number.
pub(crate) struct Version(u64);

impl PathValue for Version {
    const NAME: &'static str = "version";

    fn from_segment(raw: &str) -> Result<Version, String> {
        raw.trim()
            .parse::<u64>()
            .map(Version)
            .map_err(|_| "must be a whole number".into())
    }
}

pub(crate) async fn get_program(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<Versioned, ApiError> {
    versioned(admin::get_program(&state.ctx, &shop).await?)
}

pub(crate) async fn put_program(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    IfMatch(expected): IfMatch,
    JsonText(body): JsonText,
) -> Result<Versioned, ApiError> {
    let now = state.ctx.now();
    let view = admin::put_program(&state.ctx, &shop, &body, expected, &principal.0, now).await?;
    versioned(view)
}

pub(crate) async fn get_program_version(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(Version(version)): InPath<Version>,
) -> Result<Json<ProgramView>, ApiError> {
    Ok(Json(
        admin::get_program_version(&state.ctx, &shop, version).await?,
    ))
}
