//! Cashback coupons: create, list, read, update, pause and approve.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use cashback_core::coupon::{CashbackCoupon, CouponStatus};
use cashback_core::ids::{Code, ShopId};
use cashback_core::money::Currency;

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::{field, known_shop, page_limit, parse_body};

/// A cashback coupon as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponView {
    /// The coupon's version, to update it only if unchanged.
    pub version: u64,
    /// The coupon's terms and status.
    pub coupon: CashbackCoupon,
    /// Orders that used it (a cancelled order gives its use back).
    pub uses: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl CouponView {
    fn of(record: Versioned<CouponRecord>) -> CouponView {
        CouponView {
            version: record.version,
            coupon: record.value.coupon,
            uses: record.value.uses,
            created_at: record.value.created_at,
            updated_at: record.value.updated_at,
        }
    }
}

fn parse_coupon(body: &str, currency: Currency) -> Result<CashbackCoupon, AppError> {
    let coupon: CashbackCoupon = parse_body(body)?;
    coupon
        .validate(currency.minor_units())
        .map_err(AppError::InvalidFields)?;
    Ok(coupon)
}

async fn read_coupon(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
) -> Result<Versioned<CouponRecord>, AppError> {
    let mut read = ctx.store.read(shop, &ReadRequest::coupon(code)).await?;
    read.coupons
        .remove(code)
        .ok_or_else(|| AppError::NotFound(format!("coupon {}", code.display())))
}

/// Creates a coupon (a draft unless the body says otherwise).
pub async fn create_coupon(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let coupon = parse_coupon(body, known.currency)?;
    // One read: is the code a coupon already, or a customer's own code?
    let read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                coupons: vec![coupon.code.clone()],
                ..ReadRequest::code_owner(&coupon.code)
            },
        )
        .await?;
    let shown = coupon.code.display();
    let taken = || AppError::Conflict(format!("the code {shown} is already in use in this shop"));
    if read.coupons.contains_key(&coupon.code) || read.code_owners.contains_key(&coupon.code) {
        return Err(taken());
    }
    let record = CouponRecord {
        coupon,
        uses: 0,
        created_at: now,
        updated_at: now,
    };
    let version = match ctx.store.put_coupon(shop, &record, 0).await {
        Ok(version) => version,
        Err(StoreError::AlreadyExists(_)) => return Err(taken()),
        Err(error) => return Err(error.into()),
    };
    info!(shop = %shop, version, "coupon created");
    Ok(CouponView::of(Versioned {
        value: record,
        version,
    }))
}

/// A page of the shop's coupons.
pub async fn list_coupons(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<CouponView>, AppError> {
    known_shop(ctx, shop).await?;
    let page = ctx
        .store
        .list_coupons(shop, cursor, page_limit(limit))
        .await
        .map_err(bad_cursor)?;
    Ok(Page {
        items: page.items.into_iter().map(CouponView::of).collect(),
        next: page.next,
    })
}

/// A cursor the store refuses is the caller's mistake, not ours.
/// A cursor the store did not recognise is the caller's mistake, named as
/// the `cursor` field.
pub(crate) fn bad_cursor(error: StoreError) -> AppError {
    match error {
        StoreError::InvalidCursor(message) => {
            AppError::InvalidFields(vec![field("cursor", message)])
        }
        other => other.into(),
    }
}

/// One coupon by its code.
pub async fn get_coupon(ctx: &Context, shop: &ShopId, code: &Code) -> Result<CouponView, AppError> {
    known_shop(ctx, shop).await?;
    Ok(CouponView::of(read_coupon(ctx, shop, code).await?))
}

async fn replace_coupon(
    ctx: &Context,
    shop: &ShopId,
    current: Versioned<CouponRecord>,
    coupon: CashbackCoupon,
    expected_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let expected = expected_version.unwrap_or(current.version);
    let record = CouponRecord {
        coupon,
        uses: current.value.uses,
        created_at: current.value.created_at,
        updated_at: now,
    };
    match ctx.store.put_coupon(shop, &record, expected).await {
        Ok(version) => Ok(CouponView::of(Versioned {
            value: record,
            version,
        })),
        Err(StoreError::Conflict(_)) => Err(AppError::Conflict(format!(
            "the coupon is no longer at version {expected}; read it again"
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Replaces a coupon's settings; its use count stays. The body's code must
/// be the one in the path (a code cannot be renamed: create another).
pub async fn update_coupon(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
    body: &str,
    expected_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let coupon = parse_coupon(body, known.currency)?;
    if &coupon.code != code {
        return Err(AppError::InvalidFields(vec![field(
            "code",
            "must be the code in the path; a code cannot be renamed",
        )]));
    }
    let current = read_coupon(ctx, shop, code).await?;
    replace_coupon(ctx, shop, current, coupon, expected_version, now).await
}

/// Pauses or approves a coupon (only an approved coupon works at checkout).
pub async fn set_coupon_status(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
    status: CouponStatus,
    now: DateTime<Utc>,
) -> Result<CouponView, AppError> {
    known_shop(ctx, shop).await?;
    let current = read_coupon(ctx, shop, code).await?;
    let mut coupon = current.value.coupon.clone();
    coupon.status = status;
    replace_coupon(ctx, shop, current, coupon, None, now).await
}
