//! A Store wrapper that fails on purpose, at random points, in the ways a
//! real DynamoDB call can:
//! - **before**: the request never reached the table (throttled, connection
//!   refused): nothing changed, the caller sees an error;
//! - **after**: the write committed but the answer was lost (a timeout):
//!   the caller sees an error for a write that happened, the ambiguous case;
//! - reads fail the same way (throttling, timeouts).
//!
//! The random source is seeded, so a failing history can be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cashback_app::store::*;
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::LedgerEntry;
use cashback_core::program::Program;

/// How often each kind of fault happens, as a probability per call.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub read_fails: f64,
    pub write_fails_before: f64,
    pub write_fails_after_commit: f64,
}

impl FaultRates {
    pub const NONE: FaultRates = FaultRates {
        read_fails: 0.0,
        write_fails_before: 0.0,
        write_fails_after_commit: 0.0,
    };
}

/// What was injected, for the figures in docs/reliability.md.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub reads_failed: AtomicU64,
    pub writes_failed_before: AtomicU64,
    pub writes_failed_after_commit: AtomicU64,
}

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    rates: Mutex<FaultRates>,
    rng: Mutex<StdRng>,
    pub counts: FaultCounts,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>, rates: FaultRates, seed: u64) -> FaultyStore {
        FaultyStore {
            inner,
            rates: Mutex::new(rates),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: FaultCounts::default(),
        }
    }

    pub fn set_rates(&self, rates: FaultRates) {
        if let Ok(mut current) = self.rates.lock() {
            *current = rates;
        }
    }

    fn roll(&self, pick: fn(&FaultRates) -> f64) -> bool {
        let rate = self.rates.lock().map(|r| pick(&r)).unwrap_or(0.0);
        rate > 0.0
            && self
                .rng
                .lock()
                .map(|mut rng| rng.random_bool(rate.min(1.0)))
                .unwrap_or(false)
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {what}"))
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        if self.roll(|r| r.read_fails) {
            self.counts.reads_failed.fetch_add(1, Ordering::Relaxed);
            return Err(injected("read throttled"));
        }
        self.inner.read(shop, request).await
    }

    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        if self.roll(|r| r.write_fails_before) {
            self.counts
                .writes_failed_before
                .fetch_add(1, Ordering::Relaxed);
            return Err(injected("write refused before reaching the table"));
        }
        let outcome = self.inner.write(shop, writes).await?;
        if self.roll(|r| r.write_fails_after_commit) {
            self.counts
                .writes_failed_after_commit
                .fetch_add(1, Ordering::Relaxed);
            return Err(injected("write committed, answer lost"));
        }
        Ok(outcome)
    }

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        self.inner.get_shop(shop).await
    }

    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        self.inner.create_shop(shop).await
    }

    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        self.inner.get_program(shop).await
    }

    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner
            .put_program(shop, program, expected_version, at)
            .await
    }

    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError> {
        self.inner.get_program_version(shop, version).await
    }

    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        self.inner.put_coupon(shop, coupon, expected_version).await
    }

    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError> {
        self.inner.list_coupons(shop, cursor, limit).await
    }

    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        self.inner.ledger(shop, customer, cursor, limit).await
    }

    async fn due(
        &self,
        kind: DueKind,
        bucket: &str,
        shard: u32,
        up_to: DateTime<Utc>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<DueRef>, StoreError> {
        if self.roll(|r| r.read_fails) {
            self.counts.reads_failed.fetch_add(1, Ordering::Relaxed);
            return Err(injected("query throttled"));
        }
        self.inner
            .due(kind, bucket, shard, up_to, cursor, limit)
            .await
    }

    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_checkpoint(job).await
    }

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        self.inner.put_checkpoint(job, bucket).await
    }

    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.inner.increment_counter(key, expires_at).await
    }

    fn request_counts(&self) -> RequestCounts {
        self.inner.request_counts()
    }
}
