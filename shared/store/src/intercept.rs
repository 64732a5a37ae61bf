//! A Store decorator: every call goes through an [`Interceptor`]'s `around`,
//! which may fail it before it reaches the store, fail it after it took
//! effect (the caller hears an error for a call that happened, as when a
//! DynamoDB answer is lost), delay it, or stop it forever (a crash). Every
//! other method delegates, so a wrapper states only what it changes.
//!
//! The tests' fault injection, crash points, stalls and throttling are all
//! interceptors over the in-memory or DynamoDB store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use cashback_app::store::*;
use cashback_core::ids::{CustomerId, Email, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;

/// Which Store operation a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Read,
    Write,
    GetShop,
    CreateShop,
    GetProgram,
    PutProgram,
    GetProgramVersion,
    PutCoupon,
    CouponShards,
    SetCouponCaps,
    ListCoupons,
    Ledger,
    Due,
    GetCheckpoint,
    PutCheckpoint,
    Park,
    ListParked,
    IncrementCounter,
    PutCatalog,
    Aggregates,
    ListAccounts,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    TouchApiKey,
    SetShopUninstalled,
    ShopUninstalledAt,
    ForgetEmail,
    DeleteShopData,
    NoteSync,
    SyncRecord,
}

/// A call on its way to the store, to be awaited (or not) by `around`.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

pub trait Interceptor: Send + Sync {
    /// Runs `call` (or not) and returns what the caller sees. The default
    /// passes the call through untouched.
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        let _ = call;
        run
    }

    /// Runs a write through `inner` (or not). The default is [`around`]
    /// with [`Call::Write`]; an interceptor that must see what the write
    /// touches (a model of DynamoDB's item-level transaction conflicts)
    /// reads `writes` before handing it on.
    ///
    /// [`around`]: Interceptor::around
    fn around_write<'a>(
        &'a self,
        shop: &'a ShopId,
        writes: WriteSet,
        inner: &'a Arc<dyn Store>,
    ) -> Pending<'a, WriteOutcome> {
        self.around(Call::Write, inner.write(shop, writes))
    }
}

/// A store whose every call goes through `interceptor`.
pub struct Intercepted<I> {
    inner: Arc<dyn Store>,
    interceptor: I,
}

impl<I: Interceptor> Intercepted<I> {
    pub fn new(inner: Arc<dyn Store>, interceptor: I) -> Intercepted<I> {
        Intercepted { inner, interceptor }
    }

    pub fn interceptor(&self) -> &I {
        &self.interceptor
    }

    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl<I: Interceptor> Store for Intercepted<I> {
    fn event_endpoints(&self) -> Option<&dyn cashback_app::outgoing::EndpointStore> {
        self.inner.event_endpoints()
    }

    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        self.interceptor
            .around(Call::Read, self.inner.read(shop, request))
            .await
    }

    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        self.interceptor
            .around_write(shop, writes, &self.inner)
            .await
    }

    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        self.interceptor
            .around(Call::GetShop, self.inner.get_shop(shop))
            .await
    }

    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        self.interceptor
            .around(Call::CreateShop, self.inner.create_shop(shop))
            .await
    }

    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        self.interceptor
            .around(Call::GetProgram, self.inner.get_program(shop))
            .await
    }

    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let run = self.inner.put_program(shop, program, expected_version, at);
        self.interceptor.around(Call::PutProgram, run).await
    }

    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError> {
        let run = self.inner.get_program_version(shop, version);
        self.interceptor.around(Call::GetProgramVersion, run).await
    }

    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let run = self.inner.put_coupon(shop, coupon, expected_version);
        self.interceptor.around(Call::PutCoupon, run).await
    }

    async fn coupon_shards(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
    ) -> Result<Vec<cashback_app::coupon_shards::CouponShard>, StoreError> {
        let run = self.inner.coupon_shards(shop, code);
        self.interceptor.around(Call::CouponShards, run).await
    }

    async fn set_coupon_caps(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        let run = self.inner.set_coupon_caps(shop, code, limit);
        self.interceptor.around(Call::SetCouponCaps, run).await
    }

    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError> {
        let run = self.inner.list_coupons(shop, cursor, limit);
        self.interceptor.around(Call::ListCoupons, run).await
    }

    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let run = self.inner.ledger(shop, customer, cursor, limit);
        self.interceptor.around(Call::Ledger, run).await
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
        let run = self.inner.due(kind, bucket, shard, up_to, cursor, limit);
        self.interceptor.around(Call::Due, run).await
    }

    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        self.interceptor
            .around(Call::GetCheckpoint, self.inner.get_checkpoint(job))
            .await
    }

    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        self.interceptor
            .around(Call::PutCheckpoint, self.inner.put_checkpoint(job, bucket))
            .await
    }

    async fn park(&self, item: &ParkedItem) -> Result<(), StoreError> {
        self.interceptor
            .around(Call::Park, self.inner.park(item))
            .await
    }

    async fn list_parked(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError> {
        let run = self.inner.list_parked(shop, cursor, limit);
        self.interceptor.around(Call::ListParked, run).await
    }

    async fn increment_counter(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let run = self.inner.increment_counter(key, expires_at);
        self.interceptor.around(Call::IncrementCounter, run).await
    }

    fn request_counts(&self) -> RequestCounts {
        self.inner.request_counts()
    }

    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        self.interceptor
            .around(Call::PutCatalog, self.inner.put_catalog(shop, products))
            .await
    }

    async fn aggregates(
        &self,
        shop: &ShopId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        self.interceptor
            .around(Call::Aggregates, self.inner.aggregates(shop, from, to))
            .await
    }

    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        let run = self.inner.list_accounts(shop, cursor, limit);
        self.interceptor.around(Call::ListAccounts, run).await
    }

    async fn create_api_key(&self, shop: &ShopId, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let run = self.inner.create_api_key(shop, key);
        self.interceptor.around(Call::CreateApiKey, run).await
    }

    async fn list_api_keys(&self, shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let run = self.inner.list_api_keys(shop);
        self.interceptor.around(Call::ListApiKeys, run).await
    }

    async fn revoke_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let run = self.inner.revoke_api_key(shop, key_id, at);
        self.interceptor.around(Call::RevokeApiKey, run).await
    }

    async fn touch_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let run = self.inner.touch_api_key(shop, key_id, at);
        self.interceptor.around(Call::TouchApiKey, run).await
    }

    async fn set_shop_uninstalled(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let run = self.inner.set_shop_uninstalled(shop, at);
        self.interceptor.around(Call::SetShopUninstalled, run).await
    }

    async fn shop_uninstalled_at(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let run = self.inner.shop_uninstalled_at(shop);
        self.interceptor.around(Call::ShopUninstalledAt, run).await
    }

    async fn forget_email(
        &self,
        shop: &ShopId,
        email: &Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        let run = self.inner.forget_email(shop, email, customer);
        self.interceptor.around(Call::ForgetEmail, run).await
    }

    async fn delete_shop_data(&self, shop: &ShopId) -> Result<u64, StoreError> {
        let run = self.inner.delete_shop_data(shop);
        self.interceptor.around(Call::DeleteShopData, run).await
    }

    async fn note_sync(&self, shop: &ShopId, note: &SyncNote) -> Result<(), StoreError> {
        let run = self.inner.note_sync(shop, note);
        self.interceptor.around(Call::NoteSync, run).await
    }

    async fn sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        let run = self.inner.sync_record(shop);
        self.interceptor.around(Call::SyncRecord, run).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails writes after they took effect, and counts every call.
    #[derive(Default)]
    struct LoseWriteAnswers {
        calls: AtomicUsize,
    }

    impl Interceptor for LoseWriteAnswers {
        fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let out = run.await?;
                if call == Call::Write {
                    return Err(StoreError::Unavailable("answer lost".into()));
                }
                Ok(out)
            })
        }
    }

    #[tokio::test]
    async fn an_interceptor_sees_every_call_and_can_lose_a_committed_answer() {
        let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let store = Intercepted::new(inner.clone(), LoseWriteAnswers::default());
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        let writes = WriteSet {
            notifications: vec!["n-1".into()],
            ..WriteSet::default()
        };
        assert!(
            store.write(&shop, writes.clone()).await.is_err(),
            "the caller hears a failure"
        );
        // ... but the write happened: the same marker is now a duplicate.
        assert!(matches!(
            inner.write(&shop, writes).await,
            Ok(WriteOutcome::Duplicate { .. })
        ));
        assert!(store.get_checkpoint("job").await.unwrap().is_none());
        assert_eq!(store.interceptor().calls.load(Ordering::SeqCst), 2);
    }
}
