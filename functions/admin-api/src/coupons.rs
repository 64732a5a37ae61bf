//! Cashback coupons: create, list (paged), read, replace (`If-Match`
//! optional), pause and approve.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use cashback_app::admin::{self, CouponView};
use cashback_core::coupon::CouponStatus;
use cashback_core::ids::{Code, ShopId};
use cashback_edge::extract::{IfMatch, InPath, JsonText};
use cashback_edge::ApiError;

use crate::params::{page_body, PageBody, Paging};
use crate::AdminState;

pub(crate) async fn create_coupon(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    JsonText(body): JsonText,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    let coupon = admin::create_coupon(&state.ctx, &shop, &body, state.ctx.now()).await?;
    Ok((StatusCode::CREATED, Json(coupon)))
}

pub(crate) async fn list_coupons(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    paging: Paging,
) -> Result<Json<PageBody<CouponView>>, ApiError> {
    let page = admin::list_coupons(&state.ctx, &shop, paging.cursor, paging.limit).await?;
    Ok(page_body(page))
}

pub(crate) async fn get_coupon(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(code): InPath<Code>,
) -> Result<Json<CouponView>, ApiError> {
    Ok(Json(admin::get_coupon(&state.ctx, &shop, &code).await?))
}

pub(crate) async fn update_coupon(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(code): InPath<Code>,
    IfMatch(expected): IfMatch,
    JsonText(body): JsonText,
) -> Result<Json<CouponView>, ApiError> {
    let now = state.ctx.now();
    let coupon = admin::update_coupon(&state.ctx, &shop, &code, &body, expected, now).await?;
    Ok(Json(coupon))
}

pub(crate) async fn pause_coupon(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(code): InPath<Code>,
) -> Result<Json<CouponView>, ApiError> {
    set_status(&state, &shop, &code, CouponStatus::Paused).await
}

pub(crate) async fn approve_coupon(
    State(state): State<AdminState>,
    InPath(shop): InPath<ShopId>,
    InPath(code): InPath<Code>,
) -> Result<Json<CouponView>, ApiError> {
    set_status(&state, &shop, &code, CouponStatus::Approved).await
}

async fn set_status(
    state: &AdminState,
    shop: &ShopId,
    code: &Code,
    status: CouponStatus,
) -> Result<Json<CouponView>, ApiError> {
    let now = state.ctx.now();
    Ok(Json(
        admin::set_coupon_status(&state.ctx, shop, code, status, now).await?,
    ))
}
