//! A store and a notifier with an await point before each call reaches the
//! inner adapter and another after it took effect, and a way to stop the run
//! at the n-th of them, as a Lambda killed mid-run stops: before a call, or
//! after a write committed (or an email went) without the run learning so.
//! The test picks n at random and drops the run with `tokio::select!` when
//! [`CutPoints::cut`] resolves; nothing after that point happens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::*;
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;

/// Counts the await points passed and stops at the chosen one.
#[derive(Default)]
pub struct CutPoints {
    passed: AtomicU64,
    /// The point (1-based, counted from the start) that never returns; 0: none.
    cut_at: AtomicU64,
    reached: tokio::sync::Notify,
}

impl CutPoints {
    pub fn new() -> Arc<CutPoints> {
        Arc::new(CutPoints::default())
    }

    /// Await points passed so far.
    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::SeqCst)
    }

    /// The `nth` await point from now (1 = the next) will never return.
    pub fn cut_after(&self, nth: u64) {
        let now = self.passed.load(Ordering::SeqCst);
        self.cut_at.store(now + nth.max(1), Ordering::SeqCst);
    }

    pub fn never_cut(&self) {
        self.cut_at.store(0, Ordering::SeqCst);
    }

    /// Resolves once the run reached its cut: the moment to drop it.
    pub async fn cut(&self) {
        self.reached.notified().await;
    }

    /// One await point: yields, or hangs forever if it is the cut.
    pub async fn point(&self) {
        let n = self.passed.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.cut_at.load(Ordering::SeqCst) {
            self.reached.notify_one();
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
    }
}

/// A store with an await point before and after every call.
pub struct CutStore {
    inner: Arc<dyn Store>,
    points: Arc<CutPoints>,
}

impl CutStore {
    pub fn new(inner: Arc<dyn Store>, points: Arc<CutPoints>) -> CutStore {
        CutStore { inner, points }
    }

    async fn around<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.points.point().await;
        let out = call.await;
        self.points.point().await;
        out
    }
}

#[async_trait::async_trait]
impl Store for CutStore {
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        self.around(self.inner.read(shop, request)).await
    }

    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        self.around(self.inner.write(shop, writes)).await
    }

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        self.around(self.inner.get_shop(shop)).await
    }

    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        self.inner.create_shop(shop).await
    }

    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        self.around(self.inner.get_program(shop)).await
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
        self.around(self.inner.due(kind, bucket, shard, up_to, cursor, limit))
            .await
    }

    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.around(self.inner.get_checkpoint(job)).await
    }

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        self.around(self.inner.put_checkpoint(job, bucket)).await
    }

    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.around(self.inner.increment_counter(key, expires_at))
            .await
    }

    fn request_counts(&self) -> RequestCounts {
        self.inner.request_counts()
    }

    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        self.inner.put_catalog(shop, products).await
    }

    async fn aggregates(
        &self,
        shop: &ShopId,
        up_to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        self.inner.aggregates(shop, up_to).await
    }

    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        self.inner.list_accounts(shop, cursor, limit).await
    }
}

/// A notifier with an await point before and after every send: a run can
/// be cut off with an email about to go, or just sent but not yet noted.
pub struct CutNotifier {
    inner: Arc<dyn Notifier>,
    points: Arc<CutPoints>,
}

impl CutNotifier {
    pub fn new(inner: Arc<dyn Notifier>, points: Arc<CutPoints>) -> CutNotifier {
        CutNotifier { inner, points }
    }
}

#[async_trait::async_trait]
impl Notifier for CutNotifier {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        self.points.point().await;
        let sent = self.inner.send(notification).await;
        self.points.point().await;
        sent
    }
}
