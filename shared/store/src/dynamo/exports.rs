//! The table's exports to S3 (ExportTableToPointInTime) behind the
//! [`TableExports`] port: started, listed and described with the table's
//! ARN, read once from DescribeTable and kept. An export's id is the last
//! part of its ARN; finding it again lists the table's exports, so no ARN
//! has to be rebuilt (its form is DynamoDB's business).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ExportDescription, ExportFormat, ExportSummary};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use cashback_app::admin::{ExportStatus, TableExport, TableExports};
use cashback_app::store::StoreError;

use super::errors::from_sdk;

/// The environment variable naming the bucket exports go to.
pub const EXPORT_BUCKET_ENV: &str = "CASHBACK_EXPORT_BUCKET";

/// Exports of one table into one bucket.
pub struct DynamoTableExports {
    client: Client,
    table: String,
    bucket: String,
    table_arn: OnceCell<String>,
}

impl DynamoTableExports {
    /// Exports of `table` into `bucket`, through `client`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        bucket: impl Into<String>,
    ) -> DynamoTableExports {
        DynamoTableExports {
            client,
            table: table.into(),
            bucket: bucket.into(),
            table_arn: OnceCell::new(),
        }
    }

    async fn table_arn(&self) -> Result<&str, StoreError> {
        self.table_arn
            .get_or_try_init(|| async {
                let output = self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .map_err(|e| from_sdk("DescribeTable", e))?;
                output
                    .table()
                    .and_then(|t| t.table_arn())
                    .map(str::to_string)
                    .ok_or_else(|| StoreError::Other("DescribeTable returned no ARN".into()))
            })
            .await
            .map(String::as_str)
    }

    async fn summaries(&self) -> Result<Vec<ExportSummary>, StoreError> {
        let arn = self.table_arn().await?.to_string();
        let mut summaries = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .client
                .list_exports()
                .table_arn(&arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("ListExports", e))?;
            summaries.extend(output.export_summaries().iter().cloned());
            match output.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => return Ok(summaries),
            }
        }
    }

    async fn describe(&self, arn: &str) -> Result<TableExport, StoreError> {
        let output = self
            .client
            .describe_export()
            .export_arn(arn)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeExport", e))?;
        let description = output
            .export_description()
            .ok_or_else(|| StoreError::Other("DescribeExport returned no description".into()))?;
        Ok(export(description))
    }
}

/// The last part of an export's ARN.
fn export_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn status(status: Option<&aws_sdk_dynamodb::types::ExportStatus>) -> ExportStatus {
    use aws_sdk_dynamodb::types::ExportStatus as Dynamo;
    match status {
        Some(Dynamo::Completed) => ExportStatus::Completed,
        Some(Dynamo::Failed) => ExportStatus::Failed,
        // IN_PROGRESS, or a state this SDK does not know yet: not done.
        _ => ExportStatus::InProgress,
    }
}

fn time(t: Option<&aws_sdk_dynamodb::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn export(description: &ExportDescription) -> TableExport {
    TableExport {
        id: export_id(description.export_arn().unwrap_or_default()).to_string(),
        status: status(description.export_status()),
        bucket: description.s3_bucket().unwrap_or_default().to_string(),
        prefix: description.s3_prefix().unwrap_or_default().to_string(),
        export_time: time(description.export_time()),
        item_count: description.item_count().and_then(|n| u64::try_from(n).ok()),
        failure: description
            .failure_message()
            .or(description.failure_code())
            .map(str::to_string),
    }
}

#[async_trait]
impl TableExports for DynamoTableExports {
    async fn start(&self, at: DateTime<Utc>, prefix: &str) -> Result<TableExport, StoreError> {
        let arn = self.table_arn().await?.to_string();
        let output = self
            .client
            .export_table_to_point_in_time()
            .table_arn(arn)
            .s3_bucket(&self.bucket)
            .s3_prefix(prefix)
            .export_format(ExportFormat::DynamodbJson)
            .export_time(aws_sdk_dynamodb::primitives::DateTime::from_secs(
                at.timestamp(),
            ))
            .send()
            .await
            .map_err(|e| from_sdk("ExportTableToPointInTime", e))?;
        let description = output.export_description().ok_or_else(|| {
            StoreError::Other("ExportTableToPointInTime returned no description".into())
        })?;
        Ok(export(description))
    }

    async fn get(&self, id: &str) -> Result<Option<TableExport>, StoreError> {
        let arn = self
            .summaries()
            .await?
            .into_iter()
            .filter_map(|s| s.export_arn().map(str::to_string))
            .find(|arn| export_id(arn) == id);
        match arn {
            Some(arn) => self.describe(&arn).await.map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self) -> Result<Vec<TableExport>, StoreError> {
        let mut exports = Vec::new();
        // Each is described for its bucket, prefix and counts; the newest
        // hundred are plenty for an operator following their exports.
        for summary in self.summaries().await?.iter().rev().take(100) {
            if let Some(arn) = summary.export_arn() {
                exports.push(self.describe(arn).await?);
            }
        }
        Ok(exports)
    }
}
