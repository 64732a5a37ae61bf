//! Exports of the whole table into S3 (DynamoDB's ExportTableToPointInTime),
//! for shops too large for the paged profile export (docs/exports.md): an
//! export reads the point-in-time backup, not the table, so it takes no
//! capacity from the webhooks and checkouts.
//!
//! The export holds every shop's items (the table is shared), so only the
//! operator's admin API starts one, never a shop's key; its files land in
//! the deployment's own export bucket, which expires them after 7 days.

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use crate::context::Context;
use crate::error::AppError;
use crate::store::StoreError;

/// How far back DynamoDB's point-in-time recovery reaches.
pub const EXPORT_WINDOW_DAYS: i64 = 35;

/// Where an export stands, as DynamoDB reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Being written to S3.
    InProgress,
    /// Every file is in S3.
    Completed,
    /// Stopped; `failure` says why.
    Failed,
}

/// One export of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableExport {
    /// The export's id: the last part of its ARN (`GET /v1/table-exports/{id}`).
    pub id: String,
    /// Where it stands.
    pub status: ExportStatus,
    /// The bucket its files go to.
    pub bucket: String,
    /// The key prefix of its files in the bucket.
    pub prefix: String,
    /// The moment of the table it holds, when DynamoDB said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_time: Option<DateTime<Utc>>,
    /// Items written, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_count: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The table's side of exports (the DynamoDB adapter; nothing in memory).
#[async_trait]
pub trait TableExports: Send + Sync {
    /// Starts an export of the table as it was at `at` under `prefix`.
    async fn start(&self, at: DateTime<Utc>, prefix: &str) -> Result<TableExport, StoreError>;
    /// The export with this id, if the table has one.
    async fn get(&self, id: &str) -> Result<Option<TableExport>, StoreError>;
    /// The table's exports, newest first as DynamoDB lists them.
    async fn list(&self) -> Result<Vec<TableExport>, StoreError>;
}

fn exporter(ctx: &Context) -> Result<&dyn TableExports, AppError> {
    ctx.table_exports.as_deref().ok_or_else(|| {
        AppError::Conflict(
            "table exports need the DynamoDB store and an export bucket \
             (CASHBACK_EXPORT_BUCKET); this deployment has neither"
                .into(),
        )
    })
}

/// Starts an export of the table as it was at `at` (now when None). `at`
/// must lie within point-in-time recovery's window and not in the future.
pub async fn start_table_export(
    ctx: &Context,
    at: Option<DateTime<Utc>>,
) -> Result<TableExport, AppError> {
    let exports = exporter(ctx)?;
    let now = ctx.now();
    let at = at.unwrap_or(now);
    if at > now {
        return Err(AppError::Invalid(
            "export_time is in the future: a table can only be exported as it was".into(),
        ));
    }
    if at < now - Duration::days(EXPORT_WINDOW_DAYS) {
        return Err(AppError::Invalid(format!(
            "export_time is more than {EXPORT_WINDOW_DAYS} days ago, beyond point-in-time recovery"
        )));
    }
    Ok(exports.start(at, &export_prefix(at, now)).await?)
}

/// One export by id.
pub async fn table_export(ctx: &Context, id: &str) -> Result<TableExport, AppError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(AppError::NotFound(format!("table export {id:?}")));
    }
    exporter(ctx)?
        .get(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("table export {id}")))
}

/// The table's exports.
pub async fn table_exports(ctx: &Context) -> Result<Vec<TableExport>, AppError> {
    Ok(exporter(ctx)?.list().await?)
}

/// `exports/{day of the moment}/{moment}-{time asked}`: one folder per day,
/// and two exports of one moment asked at different times never share files.
fn export_prefix(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let stamp = |t: DateTime<Utc>| {
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
            .replace(':', "")
    };
    format!(
        "exports/{}/{}-{}",
        at.format("%Y-%m-%d"),
        stamp(at),
        stamp(now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prefixes_group_by_day_and_never_repeat_for_a_new_request() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap();
        let first = export_prefix(at, at + Duration::hours(1));
        let second = export_prefix(at, at + Duration::hours(2));
        assert!(first.starts_with("exports/2026-11-27/2026-11-27T093000Z-"));
        assert_ne!(first, second);
        assert!(!first.contains(':'), "{first}");
    }
}
