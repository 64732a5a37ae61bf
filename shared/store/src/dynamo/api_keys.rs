//! API key items: `SHOP#{shop}` / `APIKEY#{key_id}`, in the shop's own
//! partition. The record is the `doc`; the two times that change after
//! creation (`revoked_at`, `last_used_at`) are attributes of their own, so
//! revoking or touching a key is one UpdateItem that never reads it first.

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, SecondsFormat, Utc};

use cashback_app::store::{ApiKeyRecord, Revoked, StoreError};
use cashback_core::ids::ShopId;

use super::attr::*;
use super::errors::{conditional, Conditional};
use super::DynamoStore;

const REVOKED_AT: &str = "revoked_at";
const LAST_USED_AT: &str = "last_used_at";

fn time(at: DateTime<Utc>) -> String {
    // Fixed width, so the strings sort as the times do (conditions compare them).
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn get_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_s(item, name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|e| corrupt(item, format!("{name}: {e}")))
        })
        .transpose()
}

fn decode(item: &Item) -> Result<ApiKeyRecord, StoreError> {
    let mut record: ApiKeyRecord = get_doc(item)?;
    record.revoked_at = get_time(item, REVOKED_AT)?;
    record.last_used_at = get_time(item, LAST_USED_AT)?;
    Ok(record)
}

impl DynamoStore {
    fn api_key_item_key(shop: &ShopId, key_id: &str) -> Item {
        key(crate::keys::shop_pk(shop), crate::keys::api_key_sk(key_id))
    }

    pub(crate) async fn create_api_key_item(
        &self,
        shop: &ShopId,
        record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let mut item = DynamoStore::api_key_item_key(shop, &record.key_id);
        item.insert(ENTITY_TYPE.into(), s("APIKEY"));
        let mut doc = record.clone();
        doc.revoked_at = None;
        doc.last_used_at = None;
        item.insert(DOC.into(), to_doc(&doc)?);
        if let Some(at) = record.revoked_at {
            item.insert(REVOKED_AT.into(), s(time(at)));
        }
        if let Some(at) = record.last_used_at {
            item.insert(LAST_USED_AT.into(), s(time(at)));
        }
        let mut expr = Expr::default();
        let condition = format!("attribute_not_exists({})", expr.name(PK));
        if self.put_if(item, &condition, &expr).await? {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!(
                "API key {}",
                record.key_id
            )))
        }
    }

    pub(crate) async fn list_api_key_items(
        &self,
        shop: &ShopId,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let pk = crate::keys::shop_pk(shop);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, crate::keys::API_KEY_SK_PREFIX);
        let mut records = Vec::new();
        self.query_partition(&key_condition, &expr, &pk, |item| {
            records.push(decode(item)?);
            Ok(())
        })
        .await?;
        Ok(records)
    }

    pub(crate) async fn revoke_api_key_item(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let mut expr = Expr::default();
        let expression = format!(
            "SET {r} = if_not_exists({r}, {at})",
            r = expr.name(REVOKED_AT),
            at = expr.value("at", s(time(at))),
        );
        let condition = format!("attribute_exists({})", expr.name(PK));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(DynamoStore::api_key_item_key(shop, key_id)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            // The item as it was: a revocation time there means revoked before.
            Ok(output) => {
                let old = output.attributes().cloned().unwrap_or_default();
                Ok(match get_time(&old, REVOKED_AT)? {
                    Some(first) => Revoked::Already(first),
                    None => Revoked::Now,
                })
            }
            Err(error) => match conditional("UpdateItem", error) {
                Conditional::Failed => Ok(Revoked::Missing),
                Conditional::Error(error) => Err(error),
            },
        }
    }

    pub(crate) async fn touch_api_key_item(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let used = expr.name(LAST_USED_AT);
        let value = expr.value("at", s(time(at)));
        let expression = format!("SET {used} = {value}");
        let condition = format!(
            "attribute_exists({}) AND (attribute_not_exists({used}) OR {used} < {value})",
            expr.name(PK)
        );
        // No such key, or a later use is already recorded: nothing to do.
        let item_key = DynamoStore::api_key_item_key(shop, key_id);
        self.update_if(item_key, &expression, &condition, &expr)
            .await?;
        Ok(())
    }
}
