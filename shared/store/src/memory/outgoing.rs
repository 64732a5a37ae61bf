//! The in-memory [`EndpointStore`]: a shop's event endpoints, their
//! deliveries and the pending retries, under the store's one mutex.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use cashback_app::outgoing::endpoints::{
    DeliveryRecord, EndpointRecord, EndpointStore, PendingDelivery,
};
use cashback_app::store::StoreError;
use cashback_core::ids::ShopId;

use super::MemoryStore;
use crate::keys::outgoing::{delivery_sk, pending_sk};

/// Endpoints by (shop, id); deliveries by (shop, endpoint, sort key);
/// pending retries by their key.
#[derive(Default)]
pub(super) struct OutgoingTables {
    endpoints: BTreeMap<(ShopId, String), EndpointRecord>,
    deliveries: BTreeMap<(ShopId, String, String), DeliveryRecord>,
    pending: BTreeMap<String, PendingDelivery>,
}

impl OutgoingTables {
    /// Deletes the shop's endpoints, deliveries and pending retries (a
    /// shop's data erased); returns how many.
    pub(super) fn forget_shop(&mut self, shop: &ShopId) -> u64 {
        let before = self.endpoints.len() + self.deliveries.len() + self.pending.len();
        self.endpoints.retain(|(s, _), _| s != shop);
        self.deliveries.retain(|(s, _, _), _| s != shop);
        self.pending.retain(|_, p| &p.shop != shop);
        let after = self.endpoints.len() + self.deliveries.len() + self.pending.len();
        (before - after) as u64
    }
}

#[async_trait::async_trait]
impl EndpointStore for MemoryStore {
    async fn create_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        let key = (record.shop.clone(), record.id.clone());
        if tables.outgoing.endpoints.contains_key(&key) {
            return Err(StoreError::AlreadyExists(format!(
                "event endpoint {}",
                record.id
            )));
        }
        tables.outgoing.endpoints.insert(key, record.clone());
        Ok(())
    }

    async fn list_endpoints(&self, shop: &ShopId) -> Result<Vec<EndpointRecord>, StoreError> {
        let tables = self.lock()?;
        Ok(tables
            .outgoing
            .endpoints
            .iter()
            .filter(|((s, _), _)| s == shop)
            .map(|(_, record)| record.clone())
            .collect())
    }

    async fn replace_endpoint(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        match tables
            .outgoing
            .endpoints
            .get_mut(&(record.shop.clone(), record.id.clone()))
        {
            Some(stored) => {
                *stored = record.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_endpoint(&self, shop: &ShopId, id: &str) -> Result<bool, StoreError> {
        let mut tables = self.lock()?;
        Ok(tables
            .outgoing
            .endpoints
            .remove(&(shop.clone(), id.to_string()))
            .is_some())
    }

    async fn put_delivery(
        &self,
        shop: &ShopId,
        record: &DeliveryRecord,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        tables.outgoing.deliveries.insert(
            (
                shop.clone(),
                record.endpoint_id.clone(),
                delivery_sk(record),
            ),
            record.clone(),
        );
        Ok(())
    }

    async fn list_deliveries(
        &self,
        shop: &ShopId,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let tables = self.lock()?;
        Ok(tables
            .outgoing
            .deliveries
            .iter()
            .rev()
            .filter(|((s, e, _), _)| s == shop && e == endpoint_id)
            .take(limit.max(1) as usize)
            .map(|(_, record)| record.clone())
            .collect())
    }

    async fn put_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        tables
            .outgoing
            .pending
            .insert(pending_sk(pending), pending.clone());
        Ok(())
    }

    async fn delete_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        tables.outgoing.pending.remove(&pending_sk(pending));
        Ok(())
    }

    async fn due_pending(
        &self,
        up_to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let tables = self.lock()?;
        let mut due: Vec<PendingDelivery> = tables
            .outgoing
            .pending
            .values()
            .filter(|p| p.next_attempt_at <= up_to)
            .cloned()
            .collect();
        due.sort_by_key(|p| p.next_attempt_at);
        due.truncate(limit.max(1) as usize);
        Ok(due)
    }
}
