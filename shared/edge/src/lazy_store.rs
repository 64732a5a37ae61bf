//! A store whose adapter (for DynamoDB: its SDK client) is built by the
//! first call, not at start; the admin API's table exports likewise.
//!
//! Why (BENCHMARKS.md, section 4): a DynamoDB client's construction (its
//! runtime plugins, the endpoint rules' partition table, a TLS connector)
//! was the largest part of a function's start after the runtime itself. A
//! start now builds nothing: the first call builds the adapter, once per
//! container; calls made while it is being built wait for that one
//! construction. A construction that fails (the SDK panics on a client
//! configuration it refuses) is that call's [`StoreError::Unavailable`],
//! answered like any store outage, and is not kept: the next call tries
//! again.

use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::OnceCell;

use cashback_app::admin::{TableExport, TableExports};
use cashback_app::outgoing::endpoints::{DeliveryRecord, EndpointRecord, PendingDelivery};
use cashback_app::outgoing::EndpointStore;
use cashback_app::reports::{Added, ReportPart, ReportStore};
use cashback_app::store::*;
use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;

type Build<S> = Box<dyn Fn() -> S + Send + Sync>;

/// The store `build` makes, made by the first call that needs it.
pub struct LazyStore<S> {
    build: Build<S>,
    store: OnceCell<S>,
}

impl<S> LazyStore<S> {
    /// Nothing is built here.
    pub fn new(build: impl Fn() -> S + Send + Sync + 'static) -> LazyStore<S> {
        LazyStore {
            build: Box::new(build),
            store: OnceCell::new(),
        }
    }

    /// Whether the store has been built (by a first call).
    pub fn is_built(&self) -> bool {
        self.store.initialized()
    }

    /// The store, built by the first caller; concurrent first callers wait
    /// for that one construction. A failed one is an error, not kept.
    pub async fn store(&self) -> Result<&S, StoreError> {
        self.store
            .get_or_try_init(|| async {
                catch_unwind(AssertUnwindSafe(|| (self.build)())).map_err(|panic| {
                    let reason = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no reason given");
                    tracing::error!(reason, "the store's client could not be built");
                    StoreError::Unavailable(
                        format!("the store's client could not be built: {reason}").into(),
                    )
                })
            })
            .await
    }
}

// Every method delegates, the defaulted ones too (a default refuses, and the
// adapter's own answer is wanted): the lint turns a method added to the port
// with a default, and not delegated here, into an error.
#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl<S: Store + EndpointStore> Store for LazyStore<S> {
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        self.store().await?.read(shop, request).await
    }

    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        self.store().await?.write(shop, writes).await
    }

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        self.store().await?.get_shop(shop).await
    }

    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        self.store().await?.create_shop(shop).await
    }

    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        self.store().await?.get_program(shop).await
    }

    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let store = self.store().await?;
        store.put_program(shop, program, expected_version, at).await
    }

    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError> {
        self.store().await?.get_program_version(shop, version).await
    }

    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let store = self.store().await?;
        store.put_coupon(shop, coupon, expected_version).await
    }

    async fn coupon_shards(
        &self,
        shop: &ShopId,
        code: &Code,
    ) -> Result<Vec<cashback_app::coupon_shards::CouponShard>, StoreError> {
        self.store().await?.coupon_shards(shop, code).await
    }

    async fn set_coupon_caps(
        &self,
        shop: &ShopId,
        code: &Code,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        self.store().await?.set_coupon_caps(shop, code, limit).await
    }

    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError> {
        self.store().await?.list_coupons(shop, cursor, limit).await
    }

    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let store = self.store().await?;
        store.ledger(shop, customer, cursor, limit).await
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
        let store = self.store().await?;
        store.due(kind, bucket, shard, up_to, cursor, limit).await
    }

    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.store().await?.get_checkpoint(job).await
    }

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        self.store().await?.put_checkpoint(job, bucket).await
    }

    async fn park(&self, item: &ParkedItem) -> Result<(), StoreError> {
        self.store().await?.park(item).await
    }

    async fn list_parked(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError> {
        self.store().await?.list_parked(shop, cursor, limit).await
    }

    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.store().await?.increment_counter(key, expires_at).await
    }

    /// Nothing before the store is built (it has made no round trip).
    fn request_counts(&self) -> RequestCounts {
        self.store
            .get()
            .map(Store::request_counts)
            .unwrap_or_default()
    }

    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        self.store().await?.put_catalog(shop, products).await
    }

    async fn aggregates(
        &self,
        shop: &ShopId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        self.store().await?.aggregates(shop, from, to).await
    }

    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        self.store().await?.list_accounts(shop, cursor, limit).await
    }

    async fn create_api_key(&self, shop: &ShopId, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.store().await?.create_api_key(shop, key).await
    }

    async fn list_api_keys(&self, shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store().await?.list_api_keys(shop).await
    }

    async fn revoke_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        self.store().await?.revoke_api_key(shop, key_id, at).await
    }

    async fn touch_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store().await?.touch_api_key(shop, key_id, at).await
    }

    async fn set_shop_uninstalled(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.store().await?.set_shop_uninstalled(shop, at).await
    }

    async fn shop_uninstalled_at(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.store().await?.shop_uninstalled_at(shop).await
    }

    async fn forget_email(
        &self,
        shop: &ShopId,
        email: &Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        self.store()
            .await?
            .forget_email(shop, email, customer)
            .await
    }

    async fn delete_shop_data(&self, shop: &ShopId) -> Result<u64, StoreError> {
        self.store().await?.delete_shop_data(shop).await
    }

    /// This store itself: its endpoint calls build the adapter too.
    fn event_endpoints(&self) -> Option<&dyn EndpointStore> {
        Some(self)
    }

    async fn note_sync(&self, shop: &ShopId, note: &SyncNote) -> Result<(), StoreError> {
        self.store().await?.note_sync(shop, note).await
    }

    async fn sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        self.store().await?.sync_record(shop).await
    }
}

/// Table exports (the admin API's), their client built by the first export
/// an admin asks for.
#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl<S: TableExports> TableExports for LazyStore<S> {
    async fn start(&self, at: DateTime<Utc>, prefix: &str) -> Result<TableExport, StoreError> {
        self.store().await?.start(at, prefix).await
    }

    async fn get(&self, id: &str) -> Result<Option<TableExport>, StoreError> {
        self.store().await?.get(id).await
    }

    async fn list(&self) -> Result<Vec<TableExport>, StoreError> {
        self.store().await?.list().await
    }
}

/// The report aggregator's writes, its client built by the first batch.
#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl<S: ReportStore> ReportStore for LazyStore<S> {
    async fn add_report_part(&self, part: &ReportPart) -> Result<Added, StoreError> {
        self.store().await?.add_report_part(part).await
    }
}

#[deny(clippy::missing_trait_methods)]
#[async_trait::async_trait]
impl<S: Store + EndpointStore> EndpointStore for LazyStore<S> {
    async fn create_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        EndpointStore::create_endpoint(self.store().await?, record).await
    }

    async fn list_endpoints(&self, shop: &ShopId) -> Result<Vec<EndpointRecord>, StoreError> {
        EndpointStore::list_endpoints(self.store().await?, shop).await
    }

    async fn replace_endpoint(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        EndpointStore::replace_endpoint(self.store().await?, record).await
    }

    async fn delete_endpoint(&self, shop: &ShopId, id: &str) -> Result<bool, StoreError> {
        EndpointStore::delete_endpoint(self.store().await?, shop, id).await
    }

    async fn put_delivery(
        &self,
        shop: &ShopId,
        record: &DeliveryRecord,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        EndpointStore::put_delivery(self.store().await?, shop, record, expires_at).await
    }

    async fn list_deliveries(
        &self,
        shop: &ShopId,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        EndpointStore::list_deliveries(self.store().await?, shop, endpoint_id, limit).await
    }

    async fn put_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        EndpointStore::put_pending(self.store().await?, pending).await
    }

    async fn delete_pending(&self, pending: &PendingDelivery) -> Result<(), StoreError> {
        EndpointStore::delete_pending(self.store().await?, pending).await
    }

    async fn due_pending(
        &self,
        up_to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        EndpointStore::due_pending(self.store().await?, up_to, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use cashback_store::MemoryStore;

    /// A store whose constructions are counted, each taking `pause`.
    fn counted(pause: Duration) -> (Arc<LazyStore<MemoryStore>>, Arc<AtomicUsize>) {
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let store = LazyStore::new(move || {
            std::thread::sleep(pause);
            count.fetch_add(1, Ordering::SeqCst);
            MemoryStore::new()
        });
        (Arc::new(store), built)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_store_is_built_by_the_first_call_once_for_concurrent_first_calls() {
        let (store, built) = counted(Duration::from_millis(50));
        assert!(!store.is_built());
        assert_eq!(store.request_counts(), RequestCounts::default());
        assert_eq!(built.load(Ordering::SeqCst), 0, "nothing built at start");

        let calls: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let job = format!("job-{n}");
                    store.put_checkpoint(&job, "2026-11-30T10").await
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert!(store.is_built());
        assert_eq!(built.load(Ordering::SeqCst), 1, "one construction");
        // Every call reached the one store.
        for n in 0..8 {
            let job = format!("job-{n}");
            assert_eq!(
                store.get_checkpoint(&job).await.unwrap().as_deref(),
                Some("2026-11-30T10")
            );
        }
        assert_eq!(built.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_construction_is_an_unavailable_error_and_the_next_call_builds_again() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let count = attempts.clone();
        let store = LazyStore::new(move || {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("Invalid client configuration: refused");
            }
            MemoryStore::new()
        });

        let error = store.get_checkpoint("job").await.unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(error.is_retryable());
        assert!(error.to_string().contains("refused"), "{error}");
        assert!(!store.is_built(), "a failure is not kept");

        assert_eq!(store.get_checkpoint("job").await.unwrap(), None);
        assert!(store.is_built());
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    /// Exports with none kept.
    struct NoExports;

    #[async_trait::async_trait]
    impl TableExports for NoExports {
        async fn start(&self, _: DateTime<Utc>, _: &str) -> Result<TableExport, StoreError> {
            Err(StoreError::Other("no exports here".into()))
        }
        async fn get(&self, _: &str) -> Result<Option<TableExport>, StoreError> {
            Ok(None)
        }
        async fn list(&self) -> Result<Vec<TableExport>, StoreError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn table_exports_are_built_by_the_first_export_call() {
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let exports = LazyStore::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
            NoExports
        });
        assert!(!exports.is_built());
        assert!(exports.list().await.unwrap().is_empty());
        assert_eq!(exports.get("export-1").await.unwrap(), None);
        assert_eq!(built.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn endpoint_calls_reach_the_built_store_too() {
        let (store, built) = counted(Duration::ZERO);
        let endpoints = store
            .event_endpoints()
            .expect("the lazy store keeps endpoints");
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        assert!(endpoints.list_endpoints(&shop).await.unwrap().is_empty());
        assert_eq!(built.load(Ordering::SeqCst), 1);
    }

    /// The report aggregator's part reaches the built store, and only once:
    /// the same part again finds the customer's marker moved.
    #[tokio::test]
    async fn report_parts_reach_the_built_store_once() {
        use cashback_app::reports::{feed_position, FeedMark, ReportSums};
        let (store, built) = counted(Duration::ZERO);
        let customer = CustomerId::parse("c-1").unwrap();
        let part = ReportPart {
            shop: ShopId::parse("demo.myshopify.com").unwrap(),
            shard: 0,
            marks: vec![FeedMark {
                customer: customer.clone(),
                first: feed_position("1"),
                last: feed_position("1"),
            }],
            written: None,
            sums: ReportSums::default(),
        };
        assert_eq!(built.load(Ordering::SeqCst), 0);
        assert_eq!(store.add_report_part(&part).await.unwrap(), Added::Now);
        assert_eq!(built.load(Ordering::SeqCst), 1);
        assert!(matches!(
            store.add_report_part(&part).await.unwrap(),
            Added::Before { .. }
        ));
        assert_eq!(built.load(Ordering::SeqCst), 1, "built once");
    }
}
