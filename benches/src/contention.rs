//! A model of what moto cannot show: DynamoDB's latency and its
//! item-level transaction conflicts.
//!
//! DynamoDB cancels a transaction that touches an item another transaction
//! in flight holds (`TransactionConflict`), so an item that many writes
//! touch caps them near one per hold time, whatever the table's capacity.
//! [`DynamoModel`] is an interceptor over any store: every call waits a
//! round trip, and a write holds the items it would touch (as the DynamoDB
//! adapter lays them out: [`cashback_store::dynamo::transaction_keys`]) for
//! a hold time; a write that finds one of its items held is cancelled with
//! [`StoreError::Conflict`] after its round trip, as DynamoDB answers.
//!
//! What it cannot show: throttling and partition capacity (every item is
//! served at any rate), the service's own retries, latency tails beyond the
//! uniform ranges set here, conflicts with non-transactional writes (the
//! rate-limit counters are not modelled as held), and the network and TLS
//! costs of a real client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use cashback_app::store::{Store, StoreError, WriteOutcome, WriteSet};
use cashback_core::ids::ShopId;
use cashback_store::dynamo::transaction_keys;
use cashback_store::intercept::{Call, Interceptor, Pending};

/// Latencies of the model, uniform in each range (milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// A read or any single-item call: its round trip.
    pub call: (u64, u64),
    /// A transaction: how long it holds its items (its round trip).
    pub hold: (u64, u64),
}

impl Latency {
    /// The review's figures: 3-6 ms per call, 10-20 ms per transaction.
    pub const REVIEW: Latency = Latency {
        call: (3, 6),
        hold: (10, 20),
    };
}

/// What the model saw.
#[derive(Debug, Default)]
pub struct ModelCounts {
    /// Writes that committed.
    pub committed: AtomicU64,
    /// Writes cancelled because an item was held by another.
    pub conflicts: AtomicU64,
    /// Items per write, summed (to report the mean).
    pub items: AtomicU64,
    /// Writes cancelled whose order had not been written or tried before
    /// (a first attempt; a retry writes the same order).
    first_cancelled: AtomicU64,
    tried: Mutex<std::collections::HashSet<String>>,
    /// Items that several writes wanted while held, by key (the hot ones).
    hot: Mutex<HashMap<String, u64>>,
}

impl ModelCounts {
    /// First attempts that were cancelled.
    pub fn first_attempts_cancelled(&self) -> u64 {
        self.first_cancelled.load(Ordering::Relaxed)
    }

    /// Whether a write of this order is tried for the first time.
    fn first_try(&self, order: Option<&str>) -> bool {
        match (order, self.tried.lock()) {
            (Some(order), Ok(mut tried)) => tried.insert(order.to_string()),
            _ => false,
        }
    }

    /// The items most often found held, with how often (the hot items).
    pub fn hottest(&self, n: usize) -> Vec<(String, u64)> {
        let mut hot: Vec<(String, u64)> = self
            .hot
            .lock()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        hot.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        hot.truncate(n);
        hot
    }
}

/// The interceptor: round trips, and items held by transactions in flight.
pub struct DynamoModel {
    latency: Latency,
    held: Mutex<HashMap<(String, String), u64>>,
    next: AtomicU64,
    counts: Arc<ModelCounts>,
}

impl DynamoModel {
    pub fn new(latency: Latency) -> DynamoModel {
        DynamoModel {
            latency,
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            counts: Arc::new(ModelCounts::default()),
        }
    }

    pub fn counts(&self) -> Arc<ModelCounts> {
        self.counts.clone()
    }

    fn pause((lo, hi): (u64, u64)) -> Duration {
        Duration::from_micros(rand::rng().random_range(lo * 1000..=hi * 1000))
    }

    /// Takes every key for transaction `id`, or none if one is held.
    fn take(&self, id: u64, keys: &[(String, String)]) -> Result<(), String> {
        let mut held = self.held.lock().map_err(|_| "poisoned".to_string())?;
        if let Some(busy) = keys.iter().find(|key| held.contains_key(*key)) {
            return Err(format!("{}|{}", busy.0, busy.1));
        }
        for key in keys {
            held.insert(key.clone(), id);
        }
        Ok(())
    }

    fn give_back(&self, id: u64, keys: &[(String, String)]) {
        if let Ok(mut held) = self.held.lock() {
            for key in keys {
                if held.get(key) == Some(&id) {
                    held.remove(key);
                }
            }
        }
    }
}

/// A held item's key with the customer/order part cut, so the hot list
/// names the kind of item (`SHOP#demo#AGG#...`), not one customer.
fn kind_of(key: &str) -> String {
    key.split('|')
        .map(|part| part.split('#').take(4).collect::<Vec<_>>().join("#"))
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Interceptor for DynamoModel {
    fn around<'a, T: Send + 'a>(&'a self, _call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        let pause = Self::pause(self.latency.call);
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            run.await
        })
    }

    fn around_write<'a>(
        &'a self,
        shop: &'a ShopId,
        writes: WriteSet,
        inner: &'a Arc<dyn Store>,
    ) -> Pending<'a, WriteOutcome> {
        let keys = transaction_keys(shop, &writes);
        let first = self
            .counts
            .first_try(writes.order.as_ref().map(|o| o.record.order_id.as_str()));
        Box::pin(async move {
            let mut keys = keys?;
            keys.sort();
            keys.dedup();
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            let hold = Self::pause(self.latency.hold);
            if let Err(busy) = self.take(id, &keys) {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
                if first {
                    self.counts.first_cancelled.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut hot) = self.counts.hot.lock() {
                    *hot.entry(kind_of(&busy)).or_default() += 1;
                }
                tokio::time::sleep(hold).await;
                return Err(StoreError::Conflict(format!(
                    "transaction conflict (modelled) on {busy}"
                )));
            }
            self.counts
                .items
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            tokio::time::sleep(hold).await;
            let outcome = inner.write(shop, writes).await;
            self.give_back(id, &keys);
            if outcome.is_ok() {
                self.counts.committed.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        })
    }
}
