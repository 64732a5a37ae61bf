//! The DynamoDB Store: one table, the layout of docs/data-model.md.
//!
//! Every use case reads with ONE consistent BatchGetItem (`read`) and
//! commits with ONE TransactWriteItems ([`write`]); scheduled jobs page
//! through four sparse due indexes with Query. The rest (shops, programs,
//! coupons, checkpoints, counters) are single-item calls made by admin and
//! scheduled paths. Key strings come from [`crate::keys`], shared with the
//! in-memory store, whose behaviour this adapter reproduces (the conformance
//! suite runs against both). Round trips are counted by an SDK interceptor
//! (`requests`), so a test sees the SDK's own retries too.
//!
//! Logs carry shop, customer and order ids, never emails or codes: keys
//! holding an email are hashed, and a key holding a code is redacted before
//! it reaches a message.

mod aggregates;
mod api_keys;
mod attr;
mod coupon_uses;
mod errors;
mod exports;
mod items;
mod lifecycle;
mod outgoing;
mod parked;
mod read;
mod referrals;
mod requests;
pub mod schema;
pub mod size;
pub mod stream;
mod sync_record;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    ConsumedCapacity, Put, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};

use cashback_app::store::*;
use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::program::Program;

use attr::*;
use errors::{conditional, from_sdk, Conditional};
use items::*;
use requests::RequestCounter;

pub use exports::{DynamoTableExports, EXPORT_BUCKET_ENV};
pub use write::{transaction_keys, MAX_TRANSACTION_ITEMS};

/// The account item this adapter stores for `write` (what a creation puts
/// and an update leaves), for measuring it ([`size::item_size`]).
pub fn encode_account(
    shop: &ShopId,
    write: &AccountWrite,
) -> Result<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, StoreError> {
    items::account_item(shop, write)
}

/// The order items this adapter stores for `write`: its state item (as the
/// write leaves it, before any email markers) and, when the write is the
/// one that puts them, its lines item. For measuring them.
#[allow(clippy::type_complexity)]
pub fn encode_order(
    shop: &ShopId,
    write: &OrderWrite,
) -> Result<
    (
        HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
        Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
    ),
    StoreError,
> {
    write::order_item_set(shop, write, None)
}

/// The environment variable naming the table (set by template.yaml).
pub const TABLE_ENV: &str = "CASHBACK_TABLE";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{TABLE_ENV} is not set: the DynamoDB table to use")]
    MissingTable,
}

/// The Store port on one DynamoDB table. Cheap to clone (the SDK client and
/// the counters are shared); build it once per container, outside the
/// handler.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    counter: RequestCounter,
    /// Capacity units DynamoDB reported, in thousandths (atomics hold integers).
    capacity_milli: Arc<AtomicU64>,
}

/// A catalog import is written in BatchWriteItem requests of 25 (its limit).
const BATCH_WRITE_ITEMS: usize = 25;

impl DynamoStore {
    /// Uses a client built elsewhere, adding the round-trip counter to it.
    pub fn new(client: Client, table_name: impl Into<String>) -> DynamoStore {
        DynamoStore::from_builder(client.config().to_builder(), table_name)
    }

    /// The one construction of the client, with the round-trip counter:
    /// every construction checks the HTTP client's settings, work a
    /// function's first request pays.
    fn from_builder(
        builder: aws_sdk_dynamodb::config::Builder,
        table_name: impl Into<String>,
    ) -> DynamoStore {
        let counter = RequestCounter::default();
        DynamoStore {
            client: Client::from_conf(builder.interceptor(counter.clone()).build()),
            table: table_name.into(),
            counter,
            capacity_milli: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Builds the client from a loaded AWS config; `endpoint_url` overrides
    /// the endpoint (moto or DynamoDB Local) when given.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        table_name: impl Into<String>,
        endpoint_url: Option<&str>,
    ) -> DynamoStore {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(url) = endpoint_url {
            builder = builder.endpoint_url(url);
        }
        DynamoStore::from_builder(builder, table_name)
    }

    /// The table from `CASHBACK_TABLE`; region, credentials and
    /// `AWS_ENDPOINT_URL` from the standard AWS environment.
    pub async fn from_env() -> Result<DynamoStore, ConfigError> {
        let table = std::env::var(TABLE_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(ConfigError::MissingTable)?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(DynamoStore::from_sdk_config(&sdk, table, None))
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The client, with the round-trip counter in it.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Capacity units DynamoDB reported for the calls that ask for them
    /// (reads, writes, queries), summed since the store was built.
    pub fn consumed_capacity(&self) -> f64 {
        self.capacity_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// One TransactWriteItems, its consumed capacity counted.
    pub(crate) async fn transact_items(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<
        (),
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        >,
    > {
        let output = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await?;
        self.record_capacity(output.consumed_capacity());
        Ok(())
    }

    pub(crate) fn record_capacity<'a>(
        &self,
        reported: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        let units: f64 = reported
            .into_iter()
            .filter_map(|c| c.capacity_units())
            .sum();
        if units > 0.0 {
            tracing::debug!(capacity_units = units, "consumed capacity");
            self.capacity_milli
                .fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    /// One consistent GetItem.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        self.record_capacity(output.consumed_capacity());
        Ok(output.item().cloned())
    }

    /// Queries one partition (of the table or an index) for a page of at
    /// most `limit` items after `cursor`. One more item is asked for, so
    /// `next` is None exactly when nothing follows (as in memory); more
    /// queries are made only when a filter or DynamoDB's 1 MB page limit
    /// returned too few.
    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        index: Option<&str>,
        key_condition: &str,
        filter: Option<&str>,
        expr: &Expr,
        forward: bool,
        cursor: Option<String>,
        limit: u32,
        key_attributes: &[&str],
        partition: (&str, &str),
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        // A page is at most 1,000 items; Query returns at most 1 MB anyway.
        let limit = limit.clamp(1, 1000) as usize;
        let mut start = cursor
            .map(|c| decode_cursor(&c, key_attributes, partition))
            .transpose()?;
        let mut items: Vec<Item> = Vec::new();
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                .key_condition_expression(key_condition)
                .set_filter_expression(filter.map(str::to_string))
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .scan_index_forward(forward)
                .consistent_read(index.is_none())
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            self.record_capacity(output.consumed_capacity());
            items.extend(output.items().iter().cloned());
            if items.len() > limit {
                items.truncate(limit);
                let next = items
                    .last()
                    .map(|last| encode_cursor(last, key_attributes))
                    .transpose()?;
                return Ok((items, next));
            }
            match output.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok((items, None)),
            }
        }
    }

    /// Every item of one partition of the table that `key_condition`
    /// selects, page after page, handed to `each` in key order.
    async fn query_partition(
        &self,
        key_condition: &str,
        expr: &Expr,
        pk: &str,
        mut each: impl FnMut(&Item) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let mut cursor = None;
        loop {
            let (items, next) = self
                .page(
                    None,
                    key_condition,
                    None,
                    expr,
                    true,
                    cursor,
                    1000,
                    &[PK, SK],
                    (PK, pk),
                )
                .await?;
            for item in &items {
                each(item)?;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// A coupon's sub-counters, in one consistent Query of their prefix.
    async fn read_shards(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
    ) -> Result<Vec<cashback_app::coupon_shards::CouponShard>, StoreError> {
        let pk = crate::keys::coupon_use_pk(shop, code);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, crate::keys::COUPON_SHARD_SK_PREFIX);
        let mut shards = vec![Default::default(); cashback_app::coupon_shards::SHARDS as usize];
        self.query_partition(&key_condition, &expr, &pk, |item| {
            if let Some(slot) = coupon_uses::shard_of(item).and_then(|n| shards.get_mut(n as usize))
            {
                *slot = coupon_uses::decode_shard(item)?;
            }
            Ok(())
        })
        .await?;
        Ok(shards)
    }

    /// How many orders' uses of a coupon the change feed has not counted
    /// yet (taken while it was unlimited): one Query of the coupon's use
    /// items, made only when a limit is set (an edit, not an order).
    async fn uncounted_uses(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
    ) -> Result<u32, StoreError> {
        let pk = crate::keys::coupon_use_pk(shop, code);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, crate::keys::COUPON_ORDER_USE_SK_PREFIX);
        let mut uncounted = 0u32;
        self.query_partition(&key_condition, &expr, &pk, |item| {
            let used = coupon_uses::decode_use(item)?;
            if used.shard.is_none() && used.taken && !used.counted {
                uncounted = uncounted.saturating_add(1);
            }
            Ok(())
        })
        .await?;
        Ok(uncounted)
    }

    /// A conditional single-item Update: true if applied, false if the
    /// condition did not hold.
    pub(crate) async fn update_if(
        &self,
        item_key: Item,
        expression: &str,
        condition: &str,
        expr: &Expr,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match conditional("UpdateItem", error) {
                Conditional::Failed => Ok(false),
                Conditional::Error(error) => Err(error),
            },
        }
    }

    /// A conditional single-item Put: true if written, false if the
    /// condition did not hold.
    async fn put_if(&self, item: Item, condition: &str, expr: &Expr) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match conditional("PutItem", error) {
                Conditional::Failed => Ok(false),
                Conditional::Error(error) => Err(error),
            },
        }
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    fn event_endpoints(&self) -> Option<&dyn cashback_app::outgoing::EndpointStore> {
        Some(self)
    }

    #[tracing::instrument(skip(self, request), fields(shop = %shop), err(level = "info"))]
    async fn read(&self, shop: &ShopId, request: &ReadRequest) -> Result<ReadResult, StoreError> {
        self.batch_read(shop, request).await
    }

    #[tracing::instrument(skip(self, writes), fields(shop = %shop), err(level = "info"))]
    async fn write(&self, shop: &ShopId, writes: WriteSet) -> Result<WriteOutcome, StoreError> {
        self.transact(shop, writes).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn get_shop(&self, shop: &ShopId) -> Result<Option<Shop>, StoreError> {
        let item = self
            .get(key(crate::keys::shop_pk(shop), crate::keys::SHOP_SK))
            .await?;
        item.map(|i| get_doc(&i)).transpose()
    }

    #[tracing::instrument(skip(self, shop), fields(shop = %shop.shop), err(level = "info"))]
    async fn create_shop(&self, shop: &Shop) -> Result<(), StoreError> {
        let mut item = key(crate::keys::shop_pk(&shop.shop), crate::keys::SHOP_SK);
        item.insert(ENTITY_TYPE.into(), s("SHOP"));
        item.insert(DOC.into(), to_doc(shop)?);
        let mut expr = Expr::default();
        let condition = format!("attribute_not_exists({})", expr.name(PK));
        if self.put_if(item, &condition, &expr).await? {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(format!("shop {}", shop.shop)))
        }
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn get_program(&self, shop: &ShopId) -> Result<Option<Versioned<Program>>, StoreError> {
        let item = self
            .get(key(crate::keys::shop_pk(shop), crate::keys::PROGRAM_SK))
            .await?;
        item.map(|i| {
            Ok(Versioned {
                value: get_doc(&i)?,
                version: version_of(&i)?,
            })
        })
        .transpose()
    }

    /// The current program and its copy under `PROGRAM#v{version}` are
    /// written in one transaction, so every version (the current one too)
    /// is kept without reading the previous one first.
    #[tracing::instrument(skip(self, program), fields(shop = %shop), err(level = "info"))]
    async fn put_program(
        &self,
        shop: &ShopId,
        program: &Program,
        expected_version: u64,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let version = expected_version + 1;
        let pk = crate::keys::shop_pk(shop);
        let saved = |sk: String| -> Result<Item, StoreError> {
            let mut item = key(&pk, sk);
            item.insert(ENTITY_TYPE.into(), s("PROGRAM"));
            item.insert(VERSION.into(), n_u64(version));
            item.insert(
                "updated_at".into(),
                s(at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            );
            item.insert(DOC.into(), to_doc(program)?);
            Ok(item)
        };
        let mut current_expr = Expr::default();
        let current_condition = if expected_version == 0 {
            format!("attribute_not_exists({})", current_expr.name(PK))
        } else {
            format!(
                "{} = {}",
                current_expr.name(VERSION),
                current_expr.value("expected", n_u64(expected_version))
            )
        };
        let mut kept_expr = Expr::default();
        let kept_condition = format!("attribute_not_exists({})", kept_expr.name(PK));
        let mut items = Vec::new();
        for (item, condition, expr) in [
            (
                saved(crate::keys::PROGRAM_SK.to_string())?,
                current_condition,
                current_expr,
            ),
            (
                saved(crate::keys::program_version_sk(version))?,
                kept_condition,
                kept_expr,
            ),
        ] {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
                .build()
                .map_err(|e| StoreError::Other(format!("cannot build Put: {e}")))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact_items(items).await {
            Ok(()) => Ok(version),
            Err(error) => match conditional("TransactWriteItems", error) {
                Conditional::Failed => Err(StoreError::Conflict(format!("program of {shop}"))),
                Conditional::Error(error) => Err(error),
            },
        }
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn get_program_version(
        &self,
        shop: &ShopId,
        version: u64,
    ) -> Result<Option<Program>, StoreError> {
        let item = self
            .get(key(
                crate::keys::shop_pk(shop),
                crate::keys::program_version_sk(version),
            ))
            .await?;
        item.map(|i| get_doc(&i)).transpose()
    }

    /// Create: a Put that may replace only a bare use counter (an item
    /// without `doc`). Update: the doc and version only, so the use count,
    /// which belongs to the store, is never reset by an edit.
    #[tracing::instrument(skip(self, coupon), fields(shop = %shop), err(level = "info"))]
    async fn put_coupon(
        &self,
        shop: &ShopId,
        coupon: &CouponRecord,
        expected_version: u64,
    ) -> Result<u64, StoreError> {
        let code = &coupon.coupon.code;
        let item_key = key(crate::keys::shop_pk(shop), crate::keys::coupon_sk(code));
        let version = expected_version + 1;
        let mut expr = Expr::default();
        if expected_version == 0 {
            let mut item = item_key;
            item.insert(ENTITY_TYPE.into(), s("COUPON"));
            item.insert(USES.into(), n_u64(u64::from(coupon.uses)));
            item.insert(VERSION.into(), n_u64(version));
            item.insert(DOC.into(), to_doc(coupon)?);
            let condition = format!("attribute_not_exists({})", expr.name(DOC));
            return if self.put_if(item, &condition, &expr).await? {
                Ok(version)
            } else {
                Err(StoreError::AlreadyExists(format!(
                    "coupon {}",
                    code.display()
                )))
            };
        }
        let expression = format!(
            "SET {} = {}, {} = {}",
            expr.name(DOC),
            expr.value("doc", to_doc(coupon)?),
            expr.name(VERSION),
            expr.value("version", n_u64(version)),
        );
        let condition = format!(
            "{} = {}",
            expr.name(VERSION),
            expr.value("expected", n_u64(expected_version))
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match result {
            Ok(_) => Ok(version),
            Err(error) => match conditional("UpdateItem", error) {
                Conditional::Failed => {
                    Err(StoreError::Conflict(format!("coupon {}", code.display())))
                }
                Conditional::Error(error) => Err(error),
            },
        }
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn coupon_shards(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
    ) -> Result<Vec<cashback_app::coupon_shards::CouponShard>, StoreError> {
        self.read_shards(shop, code).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn set_coupon_caps(
        &self,
        shop: &ShopId,
        code: &cashback_core::ids::Code,
        limit: Option<u32>,
    ) -> Result<(), StoreError> {
        use cashback_app::coupon_shards::{caps, SHARDS};
        let shards = self.read_shards(shop, code).await?;
        let mut items = Vec::new();
        match limit {
            None => {
                // Only shards that exist: a REMOVE on a missing item would
                // leave an empty one behind.
                for (shard, found) in (0..SHARDS).zip(&shards) {
                    if found.cap.is_some() {
                        items.push(coupon_uses::uncap_item(&self.table, shop, code, shard)?);
                    }
                }
            }
            Some(limit) => {
                let coupon = self
                    .get(key(
                        crate::keys::shop_pk(shop),
                        crate::keys::coupon_sk(code),
                    ))
                    .await?;
                let counted = coupon
                    .as_ref()
                    .map(|item| get_count(item, USES))
                    .transpose()?
                    .unwrap_or(0);
                let uncounted = self.uncounted_uses(shop, code).await?;
                let elsewhere = counted.saturating_add(uncounted);
                for (shard, cap) in (0..SHARDS).zip(caps(limit, elsewhere, &shards)) {
                    items.push(coupon_uses::cap_item(&self.table, shop, code, shard, cap)?);
                }
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        match self.transact_items(items).await {
            Ok(()) => Ok(()),
            Err(error) => match errors::cancellation_reasons(&error) {
                // A shard took more than its new cap meanwhile, or an order
                // held one: read again.
                Some(_) => Err(StoreError::Conflict(format!(
                    "coupon {} took uses while its caps were set",
                    code.display()
                ))),
                None => Err(from_sdk("TransactWriteItems", error)),
            },
        }
    }

    #[tracing::instrument(skip(self, cursor), fields(shop = %shop), err(level = "info"))]
    async fn list_coupons(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<CouponRecord>>, StoreError> {
        let pk = crate::keys::shop_pk(shop);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, crate::keys::COUPON_SK_PREFIX);
        // Bare use counters of never-created coupons are not coupons.
        let filter = format!("attribute_exists({})", expr.name(DOC));
        let (items, next) = self
            .page(
                None,
                &key_condition,
                Some(&filter),
                &expr,
                true,
                cursor,
                limit,
                &[PK, SK],
                (PK, &pk),
            )
            .await?;
        let items = items
            .iter()
            .filter_map(|item| decode_coupon(item).transpose())
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    #[tracing::instrument(skip(self, cursor), fields(shop = %shop, customer = %customer), err(level = "info"))]
    async fn ledger(
        &self,
        shop: &ShopId,
        customer: &CustomerId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let pk = crate::keys::account_key(shop, customer);
        let mut expr = Expr::default();
        let key_condition = expr.partition_prefix(&pk, crate::keys::LEDGER_SK_PREFIX);
        let (items, next) = self
            .page(
                None,
                &key_condition,
                None,
                &expr,
                false,
                cursor,
                limit,
                &[PK, SK],
                (PK, &pk),
            )
            .await?;
        let items = items.iter().map(decode_entry).collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    /// One (bucket, shard) partition of a due index, up to `up_to`. The
    /// caller follows `next` (and loops over shards and buckets).
    #[tracing::instrument(skip(self, cursor), err(level = "info"))]
    async fn due(
        &self,
        kind: DueKind,
        bucket: &str,
        shard: u32,
        up_to: DateTime<Utc>,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<DueRef>, StoreError> {
        let index = schema::due_index(kind);
        let partition = crate::keys::due_pk(index.kind, bucket, shard);
        let mut expr = Expr::default();
        let key_condition = format!(
            "{} = {} AND {} <= {}",
            expr.name(index.pk),
            expr.value("due_pk", s(&partition)),
            expr.name(index.sk),
            expr.value("upper", s(crate::keys::due_sort_upper_bound(up_to))),
        );
        let (items, next) = self
            .page(
                Some(index.index),
                &key_condition,
                None,
                &expr,
                true,
                cursor,
                limit,
                &[PK, SK, index.pk, index.sk],
                (index.pk, &partition),
            )
            .await?;
        let items = items
            .iter()
            .map(|item| decode_due(kind, item))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    #[tracing::instrument(skip(self), err(level = "info"))]
    async fn get_checkpoint(&self, job: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .get(key(
                crate::keys::checkpoint_pk(job),
                crate::keys::CHECKPOINT_SK,
            ))
            .await?;
        Ok(item.and_then(|i| get_s(&i, BUCKET).map(str::to_string)))
    }

    /// Moves forward only: a run finishing late cannot move it back.
    #[tracing::instrument(skip(self), err(level = "info"))]
    async fn put_checkpoint(&self, job: &str, bucket: &str) -> Result<(), StoreError> {
        let mut expr = Expr::default();
        let expression = format!(
            "SET {} = {}, {} = {}",
            expr.name(BUCKET),
            expr.value("bucket", s(bucket)),
            expr.name(ENTITY_TYPE),
            expr.value("entity", s("CHECKPOINT")),
        );
        let condition = format!(
            "attribute_not_exists({b}) OR {b} < :bucket",
            b = expr.name(BUCKET)
        );
        // Already at or past this bucket: the condition fails, nothing to do.
        self.update_if(
            key(crate::keys::checkpoint_pk(job), crate::keys::CHECKPOINT_SK),
            &expression,
            &condition,
            &expr,
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip(self, item), fields(shop = %item.due.shop), err(level = "info"))]
    async fn park(&self, item: &ParkedItem) -> Result<(), StoreError> {
        self.park_item(item).await
    }

    #[tracing::instrument(skip(self, cursor), fields(shop = %shop), err(level = "info"))]
    async fn list_parked(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<ParkedItem>, StoreError> {
        self.list_parked_items(shop, cursor, limit).await
    }

    /// ADD is atomic, so concurrent callers each get their own count. The
    /// first expiry set stays (as in memory); DynamoDB's TTL removes the
    /// counter some time after it.
    #[tracing::instrument(skip(self, key_name), err(level = "info"))]
    async fn increment_counter(
        &self,
        key_name: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut expr = Expr::default();
        let expression = format!(
            "SET {ttl} = if_not_exists({ttl}, {expiry}), {entity} = {counter} ADD {count} {one}",
            ttl = expr.name(TTL),
            expiry = expr.value("ttl", n_i64(expires_at.timestamp())),
            entity = expr.name(ENTITY_TYPE),
            counter = expr.value("entity", s("COUNTER")),
            count = expr.name(COUNT),
            one = expr.value("one", n_u64(1)),
        );
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                crate::keys::counter_pk(key_name),
                crate::keys::COUNTER_SK,
            )))
            .update_expression(expression)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| from_sdk("UpdateItem", e))?;
        let attributes = output.attributes().cloned().unwrap_or_default();
        get_u64(&attributes, COUNT)?
            .ok_or_else(|| StoreError::Other("UpdateItem returned no count".into()))
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn set_shop_uninstalled(
        &self,
        shop: &ShopId,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.set_uninstalled_attribute(shop, at).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn shop_uninstalled_at(
        &self,
        shop: &ShopId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.uninstalled_attribute(shop).await
    }

    #[tracing::instrument(skip(self, email), fields(shop = %shop, customer = %customer), err(level = "info"))]
    async fn forget_email(
        &self,
        shop: &ShopId,
        email: &cashback_core::ids::Email,
        customer: &CustomerId,
    ) -> Result<(), StoreError> {
        self.delete_email_owner(shop, email, customer).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn delete_shop_data(&self, shop: &ShopId) -> Result<u64, StoreError> {
        self.delete_shop_items(shop).await
    }

    #[tracing::instrument(skip(self, note), fields(shop = %shop), err(level = "info"))]
    async fn note_sync(&self, shop: &ShopId, note: &SyncNote) -> Result<(), StoreError> {
        self.update_sync_record(shop, note).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn sync_record(&self, shop: &ShopId) -> Result<SyncRecord, StoreError> {
        self.read_sync_record(shop).await
    }

    fn request_counts(&self) -> RequestCounts {
        self.counter.snapshot()
    }

    #[tracing::instrument(skip(self, key), fields(shop = %shop, key_id = %key.key_id), err(level = "info"))]
    async fn create_api_key(&self, shop: &ShopId, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.create_api_key_item(shop, key).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn list_api_keys(&self, shop: &ShopId) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.list_api_key_items(shop).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn revoke_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        self.revoke_api_key_item(shop, key_id, at).await
    }

    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn touch_api_key(
        &self,
        shop: &ShopId,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.touch_api_key_item(shop, key_id, at).await
    }

    /// BatchWriteItem in requests of 25 Puts, each product item written
    /// whole; keys left unprocessed (throttling) are sent again after a
    /// backoff. Not atomic across requests: an import retried after a
    /// failure converges, since every Put replaces its item.
    #[tracing::instrument(skip(self, products), fields(shop = %shop, products = products.len()), err(level = "info"))]
    async fn put_catalog(
        &self,
        shop: &ShopId,
        products: &[CatalogProduct],
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        // One request may not name an item twice: the last of a product wins.
        let mut unique: HashMap<&cashback_core::ids::ProductId, &CatalogProduct> = HashMap::new();
        for product in products {
            unique.insert(&product.product_id, product);
        }
        let mut requests = Vec::new();
        for product in unique.values() {
            let mut item = key(
                crate::keys::product_key(shop, &product.product_id),
                crate::keys::PRODUCT_SK,
            );
            item.insert(ENTITY_TYPE.into(), s("PRODUCT"));
            item.insert(DOC.into(), to_doc(product)?);
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Other(format!("cannot build PutRequest: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(BATCH_WRITE_ITEMS) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt >= 6 {
                        return Err(StoreError::Unavailable(
                            format!(
                                "BatchWriteItem still left {} products unprocessed",
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
        Ok(())
    }

    /// The counters items (one BatchGetItem), then per shard its month
    /// items and the days of the months it cannot take whole (see
    /// `aggregates::read_aggregates`).
    #[tracing::instrument(skip(self), fields(shop = %shop), err(level = "info"))]
    async fn aggregates(
        &self,
        shop: &ShopId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<ShopAggregates, StoreError> {
        self.read_aggregates(shop, from, to).await
    }

    /// A page of the account index (Query), then the accounts themselves
    /// (one BatchGetItem: a page is at most 100, BatchGetItem's limit).
    #[tracing::instrument(skip(self, cursor), fields(shop = %shop), err(level = "info"))]
    async fn list_accounts(
        &self,
        shop: &ShopId,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<Page<Versioned<Account>>, StoreError> {
        let pk = crate::keys::account_index_pk(shop);
        let mut expr = Expr::default();
        let key_condition = format!("{} = {}", expr.name(PK), expr.value("pk", s(&pk)));
        let (items, next) = self
            .page(
                None,
                &key_condition,
                None,
                &expr,
                true,
                cursor,
                limit.clamp(1, 100),
                &[PK, SK],
                (PK, &pk),
            )
            .await?;
        let customers = items
            .iter()
            .map(decode_customer)
            .collect::<Result<Vec<_>, _>>()?;
        if customers.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next,
            });
        }
        let keys = customers
            .iter()
            .map(|c| key(crate::keys::account_key(shop, c), crate::keys::ACCOUNT_SK))
            .collect();
        let mut found: HashMap<CustomerId, Versioned<Account>> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let account = decode_account(&item)?;
            found.insert(account.value.customer.clone(), account);
        }
        let accounts = customers.iter().filter_map(|c| found.remove(c)).collect();
        Ok(Page {
            items: accounts,
            next,
        })
    }
}
