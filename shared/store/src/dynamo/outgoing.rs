//! The DynamoDB [`EndpointStore`]: outgoing event endpoints, deliveries and
//! pending retries (docs/outgoing-events.md, docs/data-model.md).
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | endpoint | `SHOP#{shop}` | `EVENTENDPOINT#{id}` |
//! | delivery | `SHOP#{shop}#EVENTDELIVERY#{endpoint}` | `{first attempt}#{event}` (TTL 30 days) |
//! | pending retry | `EVENTRETRY#{0..3}` | `{shop}#{endpoint}#{event}` |
//!
//! Endpoints sit in the shop's partition (at most ten: one query lists
//! them). An endpoint's deliveries are one partition sorted by their first
//! attempt, so "recent" is one query read backwards. Pending retries are
//! few (a failing endpoint's last hours) and spread over four partitions
//! the scheduled run reads whole; the due time is in the record.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use cashback_app::outgoing::endpoints::{
    DeliveryRecord, EndpointRecord, EndpointStore, PendingDelivery,
};
use cashback_app::store::StoreError;
use cashback_core::ids::ShopId;

use super::attr::*;
use super::errors::{conditional, from_sdk, Conditional};
use super::DynamoStore;
use crate::keys::outgoing::*;

fn endpoint_key(shop: &ShopId, id: &str) -> Item {
    key(crate::keys::shop_pk(shop), endpoint_sk(id))
}

fn endpoint_item(record: &EndpointRecord) -> Result<Item, StoreError> {
    let mut item = endpoint_key(&record.shop, &record.id);
    item.insert(ENTITY_TYPE.into(), s("EVENT_ENDPOINT"));
    item.insert(DOC.into(), to_doc(record)?);
    Ok(item)
}

#[async_trait::async_trait]
impl EndpointStore for DynamoStore {
    #[tracing::instrument(skip(self, record), fields(shop = %record.shop, endpoint = %record.id), err(level = "info"))]
    async fn create_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let condition = format!("attribute_not_exists({})", expr.name(PK));
        if self
            .put_if(endpoint_item(record)?, &condition, &expr)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!(
                "event endpoint {}",
                record.id
            )))
        }
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn list_endpoints(&self, shop: &ShopId) -> Result<Vec<EndpointRecord>, StoreError> {
        let pk = crate::keys::shop_pk(shop);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, ENDPOINT_SK_PREFIX);
        let mut records = Vec::new();
        self.query_partition(&key_condition, &expr, &pk, |item| {
            records.push(get_doc(item)?);
            Ok(())
        })
        .await?;
        Ok(records)
    }

    #[tracing::instrument(skip(self, record), fields(shop = %record.shop, endpoint = %record.id), err(level = "info"))]
    async fn replace_endpoint(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        let mut expr = Expr::default();
        let condition = format!("attribute_exists({})", expr.name(PK));
        self.put_if(endpoint_item(record)?, &condition, &expr).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn delete_endpoint(&self, shop: &ShopId, id: &str) -> Result<bool, StoreError> {
        let mut expr = Expr::default();
        let condition = format!("attribute_exists({})", expr.name(PK));
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(endpoint_key(shop, id)))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match conditional("DeleteItem", error) {
                Conditional::Failed => Ok(false),
                Conditional::Error(error) => Err(error),
            },
        }
    }

    #[tracing::instrument(skip(self, record), fields(shop = %shop), err(level = "info"))]
    async fn put_delivery(
        &self,
        shop: &ShopId,
        record: &DeliveryRecord,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = key(delivery_pk(shop, &record.endpoint_id), delivery_sk(record));
        item.insert(ENTITY_TYPE.into(), s("EVENT_DELIVERY"));
        item.insert(DOC.into(), to_doc(record)?);
        item.insert(TTL.into(), n_i64(expires_at.timestamp()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| from_sdk("PutItem", e))?;
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn list_deliveries(
        &self,
        shop: &ShopId,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let pk = delivery_pk(shop, endpoint_id);
        let mut expr = Expr::default();
        let key_condition = format!("{} = {}", expr.name(PK), expr.value("pk", s(&pk)));
        let (items, _) = self
            .page(
                None,
                &key_condition,
                None,
                &expr,
                false,
                None,
                limit,
                &[PK, SK],
                (PK, &pk),
            )
            .await?;
        items.iter().map(get_doc).collect()
    }

    #[tracing::instrument(skip(self, pending), fields(shop = %pending.shop), err(level = "info"))]
    async fn put_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        let mut item = key(pending_pk(pending), pending_sk(pending));
        item.insert(ENTITY_TYPE.into(), s("EVENT_RETRY"));
        item.insert(DOC.into(), to_doc(pending)?);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| from_sdk("PutItem", e))?;
        Ok(())
    }

    #[tracing::instrument(skip(self, pending), fields(shop = %pending.shop), err(level = "info"))]
    async fn delete_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pending_pk(pending), pending_sk(pending))))
            .send()
            .await
            .map_err(|e| from_sdk("DeleteItem", e))?;
        Ok(())
    }

    #[tracing::instrument(skip(self), err(level = "info"))]
    async fn due_pending(
        &self,
        up_to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let mut due: Vec<PendingDelivery> = Vec::new();
        for shard in 0..PENDING_SHARDS {
            let pk = pending_shard_pk(shard);
            let mut expr = Expr::default();
            let key_condition = format!(
                "{} = {}",
                expr.name(PK),
                expr.value("pk", AttributeValue::S(pk.clone()))
            );
            self.query_partition(&key_condition, &expr, &pk, |item| {
                let pending: PendingDelivery = get_doc(item)?;
                if pending.next_attempt_at <= up_to {
                    due.push(pending);
                }
                Ok(())
            })
            .await?;
        }
        due.sort_by_key(|p| p.next_attempt_at);
        due.truncate(limit.max(1) as usize);
        Ok(due)
    }
}
