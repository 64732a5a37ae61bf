//! Cashback coupons: create, list, read, update, pause and approve.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use cashback_core::coupon::{CashbackCoupon, CouponStatus};
use cashback_core::ids::{Code, ShopId};
use cashback_core::money::Currency;

use crate::context::Context;
use crate::coupon_shards;
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

    /// The view with the uses its sub-counters hold added to the coupon's
    /// own count ([`crate::coupon_shards`]). A coupon limited before its
    /// count was split (a limit, no capped sub-counter) gets its caps here,
    /// the first time it is listed or read, as an edit would give them, so
    /// nothing has to be migrated by hand and its orders stop meeting on
    /// its own item.
    async fn with_shards(mut self, ctx: &Context, shop: &ShopId) -> Result<CouponView, AppError> {
        let code = &self.coupon.code;
        let mut shards = ctx.store.coupon_shards(shop, code).await?;
        if let Some(limit) = self.coupon.usage_limit_total {
            if shards.iter().all(|shard| shard.cap.is_none()) {
                set_caps(ctx, shop, code, Some(limit)).await?;
                info!(shop = %shop, coupon = %code.display(), limit,
                    "a coupon limited before its count was split got its sub-counters");
                shards = ctx.store.coupon_shards(shop, code).await?;
            }
        }
        self.uses = self.uses.saturating_add(coupon_shards::held(&shards));
        Ok(self)
    }
}

/// How many times setting a coupon's caps is tried when orders filled a
/// shard past its new cap meanwhile (only near the limit).
const CAP_ATTEMPTS: u32 = 5;

/// Sets a coupon's sub-counters' caps for its total limit, after the
/// definition was saved ([`crate::coupon_shards`]): the caps, not the
/// definition, are what orders are held to, so a limit set, changed or
/// removed takes effect here, counting every use already taken (those the
/// change feed has not counted yet included). Made on every save of a
/// limited coupon, so an edit also moves the room of uses given back to
/// where it can be taken, and a coupon limited before its count was split
/// gets its caps. Should it fail, the definition is saved and the next
/// edit sets them.
async fn set_caps(
    ctx: &Context,
    shop: &ShopId,
    code: &Code,
    limit: Option<u32>,
) -> Result<(), AppError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ctx.store.set_coupon_caps(shop, code, limit).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict(_)) if attempt < CAP_ATTEMPTS => continue,
            Err(StoreError::Conflict(_)) => {
                return Err(AppError::Conflict(format!(
                    "the coupon {} is saved, but orders kept taking uses while its limit was \
                     applied; save it again",
                    code.display()
                )))
            }
            Err(error) => return Err(error.into()),
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
    ctx.invalidate_coupon(shop, &record.coupon.code);
    if let Some(limit) = record.coupon.usage_limit_total {
        set_caps(ctx, shop, &record.coupon.code, Some(limit)).await?;
    }
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
    let views = page
        .items
        .into_iter()
        .map(|record| CouponView::of(record).with_shards(ctx, shop));
    Ok(Page {
        items: futures::future::try_join_all(views).await?,
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
    CouponView::of(read_coupon(ctx, shop, code).await?)
        .with_shards(ctx, shop)
        .await
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
    let limit_before = current.value.coupon.usage_limit_total;
    let record = CouponRecord {
        coupon,
        uses: current.value.uses,
        created_at: current.value.created_at,
        updated_at: now,
    };
    match ctx.store.put_coupon(shop, &record, expected).await {
        Ok(version) => {
            // This container's orders and checkouts see the edit at once;
            // others within the cache's TTL (the caps hold them meanwhile).
            ctx.invalidate_coupon(shop, &record.coupon.code);
            let limit = record.coupon.usage_limit_total;
            if limit.is_some() || limit != limit_before {
                set_caps(ctx, shop, &record.coupon.code, limit).await?;
            }
            CouponView::of(Versioned {
                value: record,
                version,
            })
            .with_shards(ctx, shop)
            .await
        }
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
