//! Every onboarded shop, for the scheduled reconcile. The store's port has
//! no list of shops (no use case on a request path needs one), so the
//! deployed directory scans the table once per scheduled run for the shop
//! items alone (`sk = "SHOP"`, keys only): a scan reads the whole table,
//! which at a daily schedule costs about one read unit per 8 KB of table
//! (eventually consistent), a few cents for millions of items.

use aws_sdk_dynamodb::types::AttributeValue;

use cashback_app::on_first_use::OnFirstUse;
use cashback_app::store::StoreError;
use cashback_core::ids::ShopId;

/// The shop a shop item's partition key (`keys::shop_pk`) names: the
/// prefix comes from the one place key strings are built.
pub(crate) fn shop_of_pk(pk: &str) -> Option<ShopId> {
    let sample = ShopId::parse("sample.example.com").ok()?;
    let sample_pk = cashback_store::keys::shop_pk(&sample);
    let prefix = sample_pk.strip_suffix(sample.as_str())?;
    ShopId::parse(pk.strip_prefix(prefix)?).ok()
}

/// Lists the shops.
#[async_trait::async_trait]
pub trait ShopDirectory: Send + Sync {
    /// Every onboarded shop.
    async fn shops(&self) -> Result<Vec<ShopId>, StoreError>;
}

/// A fixed list (tests, the local server).
pub struct FixedShops(pub Vec<ShopId>);

#[async_trait::async_trait]
impl ShopDirectory for FixedShops {
    async fn shops(&self) -> Result<Vec<ShopId>, StoreError> {
        Ok(self.0.clone())
    }
}

/// The shops of the DynamoDB table, by a keys-only scan for the shop items.
pub struct TableShops {
    client: OnFirstUse<aws_sdk_dynamodb::Client>,
    table: String,
}

impl TableShops {
    /// Scans `table` with `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> TableShops {
        TableShops {
            client: OnFirstUse::built(client),
            table,
        }
    }

    /// Scans `table` with the client `build` makes for the first scan (a
    /// scheduled run's), not at start (BENCHMARKS.md, section 4).
    pub fn on_first_use(
        build: impl Fn() -> aws_sdk_dynamodb::Client + Send + Sync + 'static,
        table: String,
    ) -> TableShops {
        TableShops {
            client: OnFirstUse::new(build),
            table,
        }
    }
}

#[async_trait::async_trait]
impl ShopDirectory for TableShops {
    async fn shops(&self) -> Result<Vec<ShopId>, StoreError> {
        let mut shops = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .get()
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :shop")
                .projection_expression("#pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(
                    ":shop",
                    AttributeValue::S(cashback_store::keys::SHOP_SK.into()),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| {
                    StoreError::Unavailable(cashback_app::store::Unreachable::caused_by(
                        "Scan of the shop items failed",
                        error,
                    ))
                })?;
            for item in page.items() {
                let id = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| shop_of_pk(pk));
                match id {
                    Some(shop) => shops.push(shop),
                    None => tracing::warn!("a shop item whose key names no shop was skipped"),
                }
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(shops)
    }
}
