//! Parking: a due item that cannot be handled is taken out of the jobs' way.
//!
//! An item whose data is wrong (a corrupt item, an index item naming no
//! order or customer, an account missing under its order), whose shop is
//! unknown, or that the ledger refuses, fails the same way every run: it is
//! parked at once. Any other failure (contention that outlasted the retries,
//! a shop without a program yet, a store refusal) may pass: the item's
//! bucket is read again by the next run, and the item is parked when it has
//! failed [`JobConfig::max_item_failures`] runs (counted in the store, per
//! index item). Parked, it is recorded with its reason and time
//! ([`Store::park`](crate::store::Store::park), listed by [`list_parked`]), taken out
//! of its due index, and logged at ERROR with `alert = "due_item_parked"`,
//! which the template's metric filter counts and alarms on. The checkpoint
//! then moves on as if it was handled.

use chrono::{DateTime, Duration, Utc};
use tracing::error;

use cashback_core::ids::ShopId;

use crate::context::Context;
use crate::error::AppError;
use crate::store::{DueKind, DueRef, Page, ParkedItem, StoreError};

use super::JobConfig;

/// The value of the `alert` field on the log line of a parked item: the
/// template's metric filter matches it.
pub const PARKED_ALERT: &str = "due_item_parked";

/// How long the failure count of an item is kept.
const FAILURE_COUNT_DAYS: i64 = 30;

/// Fails the same way whatever the retries: parked at once.
pub fn is_permanent(error: &AppError) -> bool {
    matches!(
        error,
        AppError::UnknownShop(_)
            | AppError::Invalid(_)
            | AppError::InvalidFields(_)
            | AppError::NotFound(_)
            | AppError::Ledger(_)
            | AppError::Store(StoreError::Corrupt { .. })
    )
}

/// What became of an item that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Parked: handled as far as the checkpoint is concerned.
    Parked,
    /// Left for the next run (its bucket stays before the checkpoint).
    Retry,
}

fn chain(error: &AppError) -> String {
    crate::error::error_chain(error)
}

fn item_label(kind: DueKind, due: &DueRef) -> String {
    let kind = match kind {
        DueKind::Release => "release",
        DueKind::Reminder => "reminder",
        DueKind::Expiry => "expiry",
        DueKind::Ready => "ready",
        DueKind::Bonus => "bonus",
    };
    let order = due
        .order
        .as_ref()
        .map(|o| o.to_string())
        .unwrap_or_default();
    let customer = due
        .customer
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    format!(
        "{kind}:{}:{order}:{customer}:{}",
        due.shop,
        due.due_at.to_rfc3339()
    )
}

/// Decides an item's fate after it failed: parks it when the error is
/// permanent or it has failed `max_item_failures` runs; otherwise leaves it
/// for the next run. Fails only if the store does (the item is then left).
pub(crate) async fn after_failure(
    ctx: &Context,
    config: &JobConfig,
    job: &str,
    kind: DueKind,
    due: &DueRef,
    error: &AppError,
    now: DateTime<Utc>,
) -> Result<Fate, StoreError> {
    let permanent = is_permanent(error);
    let attempts = if permanent {
        1
    } else {
        let key = format!("due-failures:{job}:{}", item_label(kind, due));
        let count = ctx
            .store
            .increment_counter(&key, now + Duration::days(FAILURE_COUNT_DAYS))
            .await?;
        u32::try_from(count).unwrap_or(u32::MAX)
    };
    if !permanent && attempts < config.max_item_failures.max(1) {
        return Ok(Fate::Retry);
    }
    let reason = chain(error);
    let parked = ParkedItem {
        job: job.to_string(),
        kind,
        due: due.clone(),
        reason: reason.clone(),
        attempts,
        parked_at: now,
    };
    ctx.store.park(&parked).await?;
    error!(
        alert = PARKED_ALERT,
        job,
        kind = ?kind,
        shop = %due.shop,
        customer = due.customer.as_ref().map(|c| c.to_string()),
        order = due.order.as_ref().map(|o| o.to_string()),
        due_at = %due.due_at.to_rfc3339(),
        attempts,
        permanent,
        reason,
        "due item parked; the job moves on without it"
    );
    Ok(Fate::Parked)
}

/// A page of the shop's parked items (for the admin API and operators).
pub async fn list_parked(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: u32,
) -> Result<Page<ParkedItem>, AppError> {
    Ok(ctx
        .store
        .list_parked(shop, cursor, limit.clamp(1, 100))
        .await?)
}
