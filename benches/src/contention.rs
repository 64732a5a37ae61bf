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
//! With a [`Capacity`] ([`DynamoModel::with_capacity`]) it also throttles,
//! as DynamoDB does: each partition key serves at most 1,000 WCU and 3,000
//! RCU a second (a token bucket of one second's worth per key, the release
//! index's partitions included), and the on-demand table at most twice its
//! previous peak or its warm throughput, whichever is more. A throttled
//! transaction is refused after its round trip ([`StoreError::Unavailable`],
//! as the adapter maps a `ThrottlingError` cancellation: the SDK does not
//! retry a cancelled transaction) and the use case retries it with its own
//! backoff (`cashback_app::retry`), as in production; a throttled read is
//! retried as the SDK does (3 attempts, pauses up to 25 and 50 ms) before
//! it fails the same way.
//!
//! What it cannot show: the service's own retries beyond that, latency tails
//! beyond the uniform ranges set here, conflicts with non-transactional
//! writes (the rate-limit counters are not modelled as held), item sizes
//! (every transaction item costs 2 WCU, true of the plain order's items,
//! each under 1 KB; every read 1 RCU per key asked, 4 assumed per read
//! call, table-wide only: a read's keys are not seen), adaptive capacity
//! splitting a hot partition, the indexes other than `release-due`, and the
//! network and TLS costs of a real client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use cashback_app::store::{due_bucket, Store, StoreError, WriteOutcome, WriteSet};
use cashback_core::ids::ShopId;
use cashback_store::dynamo::transaction_keys;
use cashback_store::intercept::{Call, Interceptor, Pending};
use cashback_store::keys;

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

/// DynamoDB's capacity limits, per second.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// Write units one partition key serves.
    pub partition_wcu: f64,
    /// Read units one partition key serves.
    pub partition_rcu: f64,
    /// Write units the table serves: an on-demand table takes up to twice
    /// its previous peak at once, or its warm throughput if more.
    pub table_wcu: f64,
    /// Read units the table serves (as `table_wcu`).
    pub table_rcu: f64,
}

impl Capacity {
    /// DynamoDB's per-partition limits, on an on-demand table whose
    /// previous peak was `peak_wcu` / `peak_rcu` a second and whose warm
    /// throughput is `warm_wcu` / `warm_rcu` (a new on-demand table:
    /// 4,000 / 12,000).
    pub fn on_demand(peak_wcu: f64, peak_rcu: f64, warm_wcu: f64, warm_rcu: f64) -> Capacity {
        Capacity {
            partition_wcu: 1_000.0,
            partition_rcu: 3_000.0,
            table_wcu: (2.0 * peak_wcu).max(warm_wcu),
            table_rcu: (2.0 * peak_rcu).max(warm_rcu),
        }
    }

    /// A new on-demand table that never had traffic: its initial
    /// throughput (4,000 WCU, 12,000 RCU a second).
    pub const NEW_TABLE: Capacity = Capacity {
        partition_wcu: 1_000.0,
        partition_rcu: 3_000.0,
        table_wcu: 4_000.0,
        table_rcu: 12_000.0,
    };
}

/// Write units of one transaction item under 1 KB.
const ITEM_WCU: f64 = 2.0;
/// Read units assumed per read call (the order, its lines, the account and
/// one more key).
const READ_RCU: f64 = 4.0;
/// The SDK's attempts of a read, and its first pause's ceiling.
const SDK_ATTEMPTS: u32 = 3;
const SDK_FIRST_PAUSE_MS: u64 = 25;

/// A token bucket holding at most one second of its rate.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    rate: f64,
    last: std::time::Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            tokens: rate,
            rate,
            last: std::time::Instant::now(),
        }
    }

    fn refill(&mut self) -> f64 {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.tokens
    }
}

/// Buckets by partition key, and the table's.
#[derive(Debug, Default)]
struct Buckets {
    writes: HashMap<String, Bucket>,
    reads: HashMap<String, Bucket>,
}

const TABLE: &str = "(table)";

/// What the model saw.
#[derive(Debug, Default)]
pub struct ModelCounts {
    /// Calls refused for capacity (each retried by the SDK or the use case).
    pub throttles: AtomicU64,
    /// Throttles by partition (its key's kind), the hot ones.
    throttled: Mutex<HashMap<String, u64>>,
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

    /// The partitions most often out of capacity, with how often.
    pub fn most_throttled(&self, n: usize) -> Vec<(String, u64)> {
        let mut hot: Vec<(String, u64)> = self
            .throttled
            .lock()
            .map(|h| h.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        hot.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        hot.truncate(n);
        hot
    }

    fn throttled_on(&self, partition: &str) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut hot) = self.throttled.lock() {
            *hot.entry(kind_of(partition)).or_default() += 1;
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
    capacity: Option<Capacity>,
    buckets: Mutex<Buckets>,
}

impl DynamoModel {
    pub fn new(latency: Latency) -> DynamoModel {
        DynamoModel {
            latency,
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            counts: Arc::new(ModelCounts::default()),
            capacity: None,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// The same model, throttling at `capacity`.
    pub fn with_capacity(mut self, capacity: Capacity) -> DynamoModel {
        self.capacity = Some(capacity);
        self
    }

    /// Takes `costs` (units by partition key, the table's under [`TABLE`])
    /// from their buckets, all or none; the partition out of capacity if
    /// one is.
    fn spend(&self, writes: bool, costs: &HashMap<String, f64>) -> Result<(), String> {
        let Some(capacity) = self.capacity else {
            return Ok(());
        };
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let (map, partition, table) = if writes {
            (
                &mut buckets.writes,
                capacity.partition_wcu,
                capacity.table_wcu,
            )
        } else {
            (
                &mut buckets.reads,
                capacity.partition_rcu,
                capacity.table_rcu,
            )
        };
        for (key, cost) in costs {
            let rate = if key == TABLE { table } else { partition };
            let bucket = map.entry(key.clone()).or_insert_with(|| Bucket::new(rate));
            if bucket.refill() < *cost {
                return Err(key.clone());
            }
        }
        for (key, cost) in costs {
            if let Some(bucket) = map.get_mut(key) {
                bucket.tokens -= cost;
            }
        }
        Ok(())
    }

    /// What a write costs, by partition: 2 WCU per transaction item, and 1
    /// WCU in the release index's partition for an order filed there.
    fn write_costs(
        shop: &ShopId,
        items: &[(String, String)],
        writes: &WriteSet,
    ) -> HashMap<String, f64> {
        let mut costs: HashMap<String, f64> = HashMap::new();
        for (pk, _) in items {
            *costs.entry(pk.clone()).or_default() += ITEM_WCU;
            *costs.entry(TABLE.into()).or_default() += ITEM_WCU;
        }
        if let Some(order) = &writes.order {
            if let Some(at) = order.release_filed_at(writes.now) {
                let pk = keys::order_key(shop, &order.record.order_id);
                let due = keys::due_pk("release", &due_bucket(at), keys::shard_of(&pk));
                *costs.entry(due).or_default() += 1.0;
                *costs.entry(TABLE.into()).or_default() += 1.0;
            }
        }
        costs
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
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        let pause = Self::pause(self.latency.call);
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            if call == Call::Read {
                let costs = HashMap::from([(TABLE.to_string(), READ_RCU)]);
                let mut attempt = 0;
                while let Err(partition) = self.spend(false, &costs) {
                    self.counts.throttled_on(&partition);
                    attempt += 1;
                    if attempt >= SDK_ATTEMPTS {
                        return Err(StoreError::Unavailable("read throttled (modelled)".into()));
                    }
                    let ceiling = SDK_FIRST_PAUSE_MS << (attempt - 1);
                    tokio::time::sleep(Self::pause((0, ceiling))).await;
                    tokio::time::sleep(Self::pause(self.latency.call)).await;
                }
            }
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
            if let Err(partition) = self.spend(true, &Self::write_costs(shop, &keys, &writes)) {
                self.counts.throttled_on(&partition);
                tokio::time::sleep(Self::pause(self.latency.call)).await;
                return Err(StoreError::Unavailable(
                    format!("transaction throttled (modelled) on {partition}").into(),
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_partition_key_serves_1000_write_units_a_second_and_the_table_its_limit() {
        let model = DynamoModel::new(Latency::REVIEW).with_capacity(Capacity::NEW_TABLE);
        let one = |pk: &str| HashMap::from([(pk.to_string(), 2.0), (TABLE.to_string(), 2.0)]);
        // 500 items of 2 WCU in one partition fit in its second; then it is
        // throttled (the bucket refills while the loop runs on a busy
        // machine: a few more may fit, never a second's worth).
        let first_refused = (0..1000)
            .find(|_| model.spend(true, &one("SHOP#a#ACCOUNTS")).is_err())
            .expect("the partition is throttled within two seconds' worth");
        assert!(
            (500..750).contains(&first_refused),
            "throttled after {first_refused} writes"
        );
        // Other partitions go on until the table's 4,000 WCU are spent: about
        // 2,000 writes of 2 WCU in all (a refused write spends nothing).
        let (n, refused) = (0..4000)
            .find_map(|n| {
                model
                    .spend(true, &one(&format!("SHOP#b#{n}")))
                    .err()
                    .map(|key| (n, key))
            })
            .expect("the table is throttled within two seconds' worth");
        assert_eq!(refused, TABLE);
        let accepted = first_refused + n;
        assert!(
            (2000..2500).contains(&accepted),
            "the table took {accepted} writes of 2 WCU"
        );
    }

    #[test]
    fn an_on_demand_table_takes_twice_its_previous_peak_or_its_warm_throughput() {
        let capacity = Capacity::on_demand(3_000.0, 9_000.0, 4_000.0, 12_000.0);
        assert_eq!(
            (capacity.table_wcu, capacity.table_rcu),
            (6_000.0, 18_000.0)
        );
        let warm = Capacity::on_demand(1_000.0, 1_000.0, 40_000.0, 120_000.0);
        assert_eq!((warm.table_wcu, warm.table_rcu), (40_000.0, 120_000.0));
    }
}
