//! The shop's lifecycle and its customers' privacy: the uninstall flag on
//! the shop's item, forgetting an email-owner index item, and deleting
//! every item of a shop (docs/compliance.md).
//!
//! A shop's items live in many partitions (`SHOP#{shop}`,
//! `SHOP#{shop}#CUST#..`, `SHOP#{shop}#ORDER#..`, the indexes, the
//! aggregate shards, `EVENT#{shop}#..`, `NOTIFY#{shop}#..`, the pending
//! event retries `EVENTRETRY#{n}` / `{shop}#..`), so deleting a
//! shop is one paged Scan filtered on those key prefixes, followed by
//! BatchWriteItem deletes of 25 (its limit). It reads the whole table: a
//! shop redaction is rare (Shopify sends it once, 48 hours after an
//! uninstall) and the alternative, an index of every item by shop, would
//! cost a write on every order. The shop's own item goes last, so a request
//! that times out part way still finds the shop (and its secret) when
//! Shopify repeats it, and deletes the rest.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use chrono::{DateTime, SecondsFormat, Utc};

use cashback_app::store::StoreError;
use cashback_core::ids::{CustomerId, Email, ShopId};

use super::attr::*;
use super::errors::{conditional, from_sdk, ConditionFailure, Conditional};
use super::items::CUSTOMER;
use super::{read, DynamoStore, BATCH_WRITE_ITEMS};
use crate::keys;

/// The attribute of the shop's item that says when it was uninstalled.
const UNINSTALLED_AT: &str = "uninstalled_at";

impl ConditionFailure for DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        matches!(self, DeleteItemError::ConditionalCheckFailedException(_))
    }
}

impl DynamoStore {
    pub(crate) async fn set_uninstalled_attribute(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let name = expr.name(UNINSTALLED_AT);
        let expression = match at {
            Some(at) => format!(
                "SET {name} = {}",
                expr.value("at", s(at.to_rfc3339_opts(SecondsFormat::Micros, true)))
            ),
            None => format!("REMOVE {name}"),
        };
        let condition = format!("attribute_exists({})", expr.name(PK));
        let item_key = key(keys::shop_pk(shop), keys::SHOP_SK);
        if self
            .update_if(item_key, &expression, &condition, &expr)
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Other(format!("shop {shop} does not exist")))
        }
    }

    pub(crate) async fn uninstalled_attribute(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.get(key(keys::shop_pk(shop), keys::SHOP_SK)).await? else {
            return Ok(None);
        };
        get_s(&item, UNINSTALLED_AT)
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|e| corrupt(&item, format!("{UNINSTALLED_AT}: {e}")))
            })
            .transpose()
    }

    pub(crate) async fn delete_email_owner(
        &self,
        shop: &ShopId,
        email: &Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let condition = format!(
            "{} = {}",
            expr.name(CUSTOMER),
            expr.value("customer", s(customer.as_str()))
        );
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::email_key(shop, email), keys::EMAIL_SK)))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Owned by another account, or by none: nothing of this one's.
            Err(error) => match conditional("DeleteItem", error) {
                Conditional::Failed => Ok(()),
                Conditional::Error(error) => Err(error),
            },
        }
    }

    pub(crate) async fn delete_shop_items(&self, shop: &ShopId) -> Result<u64, StoreError> {
        let shop_pk = keys::shop_pk(shop);
        let mut expr = Expr::default();
        let pk = expr.name(PK);
        let sk = expr.name(SK);
        // Pending event retries sit in shared partitions, keyed
        // `{shop}#{endpoint}#{event}` (a shop id holds no `#`).
        let filter = format!(
            "{pk} = {} OR begins_with({pk}, {}) OR begins_with({pk}, {}) OR begins_with({pk}, {}) \
             OR (begins_with({pk}, {}) AND begins_with({sk}, {}))",
            expr.value("shop", s(&shop_pk)),
            expr.value("under", s(format!("{shop_pk}#"))),
            expr.value("guards", s(keys::guard_key(shop, ""))),
            expr.value("notices", s(keys::notification_key(shop, ""))),
            expr.value("retries", s(keys::outgoing::PENDING_PK_PREFIX)),
            expr.value("retry_of", s(format!("{shop}#"))),
        );
        let projection = format!("{pk}, {}", expr.name(SK));
        let mut deleted = 0u64;
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .projection_expression(&projection)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Scan", e))?;
            let keys: Vec<Item> = output
                .items()
                .iter()
                .filter(|item| {
                    // The shop's own item goes last (see the module's doc).
                    !(get_s(item, PK) == Some(shop_pk.as_str())
                        && get_s(item, SK) == Some(keys::SHOP_SK))
                })
                .cloned()
                .collect();
            deleted += self.batch_delete(keys).await?;
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => break,
            }
        }
        let shop_item = key(shop_pk, keys::SHOP_SK);
        if self.get(shop_item.clone()).await?.is_some() {
            deleted += self.batch_delete(vec![shop_item]).await?;
        }
        Ok(deleted)
    }

    /// Deletes items by key, 25 a request, sending again what DynamoDB
    /// left unprocessed (throttling) after a backoff.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<u64, StoreError> {
        let mut requests = Vec::with_capacity(keys.len());
        for item_key in keys {
            let delete = DeleteRequest::builder()
                .set_key(Some(item_key))
                .build()
                .map_err(|e| StoreError::Other(format!("cannot build DeleteRequest: {e}")))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        let count = requests.len() as u64;
        for chunk in requests.chunks(BATCH_WRITE_ITEMS) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt >= 6 {
                        return Err(StoreError::Unavailable(
                            format!(
                                "BatchWriteItem still left {} deletes unprocessed",
                                pending.len()
                            )
                            .into(),
                        ));
                    }
                    tokio::time::sleep(read::backoff(attempt)).await;
                }
                attempt += 1;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| from_sdk("BatchWriteItem", e))?;
                pending = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(count)
    }
}
