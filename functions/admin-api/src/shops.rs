//! A shop as a whole: onboarding (the API key is in the answer, once),
//! catalog imports, and the period's report.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use cashback_app::admin::{self, CatalogImported, Report, ShopView};
use cashback_core::ids::ShopId;
use cashback_edge::auth::{hash_api_key, new_api_key};
use cashback_edge::extract::{ApiQuery, InPath, JsonText};
use cashback_edge::ApiError;

use crate::params::{date_of, Params};
use crate::AdminState;

#[derive(Serialize)]
pub(crate) struct Onboarded {
    shop: ShopView,
    /// Shown once; only its hash is stored.
    api_key: String,
}

pub(crate) async fn create_shop(
    State(state): State<AdminState>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<Onboarded>), ApiError> {
    let api_key = new_api_key();
    let shop =
        admin::create_shop(&state.ctx, &body, &hash_api_key(&api_key), state.ctx.now()).await?;
    Ok((StatusCode::CREATED, Json(Onboarded { shop, api_key })))
}

pub(crate) async fn import_catalog(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    JsonText(body): JsonText,
) -> Result<Json<CatalogImported>, ApiError> {
    Ok(Json(admin::import_catalog(&state.ctx, &shop, &body).await?))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`, both required.
pub(crate) async fn report(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<Report>, ApiError> {
    let (from, to) = (date_of(&params, "from")?, date_of(&params, "to")?);
    Ok(Json(admin::report(&state.ctx, &shop, from, to).await?))
}
