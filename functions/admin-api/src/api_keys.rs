//! A shop's API keys: list them (with when each was last used), create one
//! (the key is in the answer, once, never cached), revoke one.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::Json;

use cashback_app::api_keys::{self, CreatedKey, KeyView};
use cashback_app::store::Page;
use cashback_core::ids::ShopId;
use cashback_edge::auth::new_api_key;
use cashback_edge::extract::{InPath, JsonText, PathValue, Principal};
use cashback_edge::ApiError;

use crate::params::{page_body, PageBody};
use crate::AdminState;

/// `{key_id}` in the path, as given (trimmed); an unknown one is a 404 of
/// the use case.
pub(crate) struct KeyId(String);

impl PathValue for KeyId {
    const NAME: &'static str = "key_id";

    fn from_segment(raw: &str) -> Result<KeyId, String> {
        Ok(KeyId(raw.trim().to_string()))
    }
}

pub(crate) async fn list_api_keys(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
) -> Result<Json<PageBody<KeyView>>, ApiError> {
    let items = api_keys::list(&state.ctx, &shop).await?;
    Ok(page_body(Page { items, next: None }))
}

/// The new key, answered once: no cache may keep it.
type Created = (StatusCode, [(HeaderName, HeaderValue); 1], Json<CreatedKey>);

pub(crate) async fn create_api_key(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    JsonText(body): JsonText,
) -> Result<Created, ApiError> {
    let secret = new_api_key();
    let now = state.ctx.now();
    let created = api_keys::create(&state.ctx, &shop, &body, &secret, &principal.0, now).await?;
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(created),
    ))
}

pub(crate) async fn revoke_api_key(
    State(state): State<AdminState>,
    principal: Principal,
    InPath(shop): InPath<ShopId>,
    InPath(KeyId(key_id)): InPath<KeyId>,
) -> Result<Json<KeyView>, ApiError> {
    let now = state.ctx.now();
    Ok(Json(
        api_keys::revoke(&state.ctx, &shop, &key_id, &principal.0, now).await?,
    ))
}
