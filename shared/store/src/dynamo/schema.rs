//! The table's shape as the code sees it, and creating it from the one
//! definition in `template.yaml`.
//!
//! `template.yaml` holds the only description of the table (keys, the four
//! sparse due indexes, TTL, point-in-time recovery, encryption, the stream). Tests and
//! local runs create their tables from that resource's `Properties`, passed
//! here as JSON, so the table a test runs against cannot drift from the one
//! deployed. The names below are the ones the template uses.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    SseSpecification, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use cashback_app::store::{DueKind, StoreError};

use super::errors::from_sdk;

/// Where each kind of due work is indexed: index name and its key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueIndex {
    pub index: &'static str,
    /// The name used in the index partition key (`DUE#{kind}#{bucket}#{shard}`).
    pub kind: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

pub const RELEASE_INDEX: DueIndex = DueIndex {
    index: "release-due",
    kind: "release",
    pk: "release_pk",
    sk: "release_sk",
};
pub const REMINDER_INDEX: DueIndex = DueIndex {
    index: "reminder-due",
    kind: "reminder",
    pk: "reminder_pk",
    sk: "reminder_sk",
};
pub const EXPIRY_INDEX: DueIndex = DueIndex {
    index: "expiry-due",
    kind: "expiry",
    pk: "expiry_pk",
    sk: "expiry_sk",
};
pub const BONUS_INDEX: DueIndex = DueIndex {
    index: "bonus-due",
    kind: "bonus",
    pk: "bonus_pk",
    sk: "bonus_sk",
};

/// Attributes the due indexes project besides the keys: what a `DueRef`
/// needs (the due time is the index sort key's prefix).
pub const DUE_PROJECTED: [&str; 3] = ["shop", "customer", "order_id"];

/// Released orders whose "cashback ready" email is not sent yet: the
/// release index's attributes (an order is in one or the other, never
/// both), under a kind of its own in the partition key.
pub const READY_INDEX: DueIndex = DueIndex {
    kind: "ready",
    ..RELEASE_INDEX
};

pub fn due_index(kind: DueKind) -> DueIndex {
    match kind {
        DueKind::Release => RELEASE_INDEX,
        DueKind::Reminder => REMINDER_INDEX,
        DueKind::Expiry => EXPIRY_INDEX,
        DueKind::Ready => READY_INDEX,
        DueKind::Bonus => BONUS_INDEX,
    }
}

/// Creates `table_name` as described by a CloudFormation
/// `AWS::DynamoDB::Table` resource's `Properties` (as JSON), then applies
/// its TTL and point-in-time recovery settings, which CreateTable does not
/// take. Only the properties the template uses are read; an unknown one is
/// ignored, a malformed one is an error.
pub async fn create_table(
    client: &Client,
    table_name: &str,
    properties: &Value,
) -> Result<(), StoreError> {
    let bad = |what: &str| StoreError::Other(format!("table definition: {what}"));
    let text = |value: &Value, field: &str| -> Result<String, StoreError> {
        value
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("missing {field}")))
    };
    let list = |value: &Value, field: &str| -> Vec<Value> {
        value
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let key_schema = |value: &Value| -> Result<Vec<KeySchemaElement>, StoreError> {
        list(value, "KeySchema")
            .iter()
            .map(|element| {
                KeySchemaElement::builder()
                    .attribute_name(text(element, "AttributeName")?)
                    .key_type(KeyType::from(text(element, "KeyType")?.as_str()))
                    .build()
                    .map_err(|e| bad(&e.to_string()))
            })
            .collect()
    };

    let mut request = client
        .create_table()
        .table_name(table_name)
        .set_key_schema(Some(key_schema(properties)?));
    for definition in list(properties, "AttributeDefinitions") {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&definition, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(
                    text(&definition, "AttributeType")?.as_str(),
                ))
                .build()
                .map_err(|e| bad(&e.to_string()))?,
        );
    }
    if let Ok(mode) = text(properties, "BillingMode") {
        request = request.billing_mode(BillingMode::from(mode.as_str()));
    }
    for index in list(properties, "GlobalSecondaryIndexes") {
        let projection = index
            .get("Projection")
            .ok_or_else(|| bad("index without Projection"))?;
        let non_key: Vec<String> = list(projection, "NonKeyAttributes")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&index, "IndexName")?)
                .set_key_schema(Some(key_schema(&index)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            text(projection, "ProjectionType")?.as_str(),
                        ))
                        .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
                        .build(),
                )
                .build()
                .map_err(|e| bad(&e.to_string()))?,
        );
    }
    if let Some(sse) = properties.get("SSESpecification") {
        let enabled = sse.get("SSEEnabled").and_then(Value::as_bool);
        request =
            request.sse_specification(SseSpecification::builder().set_enabled(enabled).build());
    }
    if let Some(stream) = properties.get("StreamSpecification") {
        let view = text(stream, "StreamViewType")?;
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| bad(&e.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| from_sdk("CreateTable", e))?;
    wait_until_active(client, table_name).await?;

    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        client
            .update_time_to_live()
            .table_name(table_name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(text(ttl, "AttributeName")?)
                    .enabled(enabled)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| from_sdk("UpdateTimeToLive", e))?;
    }
    if let Some(pitr) = properties.get("PointInTimeRecoverySpecification") {
        let enabled = pitr
            .get("PointInTimeRecoveryEnabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        client
            .update_continuous_backups()
            .table_name(table_name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(enabled)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| from_sdk("UpdateContinuousBackups", e))?;
    }
    Ok(())
}

/// CreateTable returns while the table is still CREATING, and the TTL and
/// backup settings can only be changed once it is ACTIVE.
async fn wait_until_active(client: &Client, table_name: &str) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::TableStatus;
    for _ in 0..300 {
        let described = client
            .describe_table()
            .table_name(table_name)
            .send()
            .await
            .map_err(|e| from_sdk("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(StoreError::Unavailable(
        format!("table {table_name} did not become ACTIVE in 60 s").into(),
    ))
}
