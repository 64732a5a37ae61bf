//! `Store::read`: everything a use case needs in one consistent BatchGetItem.
//!
//! Every requested key (order, accounts, coupons, use counters, code and
//! email owners, products, rate-limit counters) goes into one request with `ConsistentRead`, so the
//! decision that follows sees the latest committed state of each item and
//! the version it names in its write is the one it read. BatchGetItem takes
//! at most 100 keys (and 16 MB): a larger request is split, which no use
//! case does. DynamoDB may hand back some keys as `UnprocessedKeys`; with
//! on-demand capacity and small items that only happens under throttling,
//! so they are asked for again after an exponential, fully jittered pause, and
//! after a few attempts the read is `Unavailable`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnConsumedCapacity};

use cashback_app::retry::Backoff;
use cashback_app::store::{ReadRequest, ReadResult, StoreError, UsageKey};
use cashback_core::ids::{Code, CustomerId, Email, OrderId, ProductId, ShopId};

use super::attr::*;
use super::errors::from_sdk;
use super::items::*;
use super::DynamoStore;
use crate::keys;

/// BatchGetItem's limit on keys per request.
const MAX_BATCH_KEYS: usize = 100;
/// Attempts at a batch whose keys keep coming back unprocessed.
const MAX_ATTEMPTS: u32 = 6;

/// What a key was asked for: one key may serve several requests.
#[derive(Debug, Clone)]
enum Target {
    Account(CustomerId),
    Coupon(Code),
    CouponUse(Code, UsageKey),
    CodeOwner(Code),
    ReferralOwner(Code),
    EmailOwner(Email),
    Product(ProductId),
    Counter(String),
    ReferralCredit(CustomerId, OrderId),
    CouponOrderUse(Code, OrderId),
    CouponShard(Code, u32),
}

/// The items of a read other than its order's (the order's partition is
/// one Query of its own, see `batch_read`).
fn targets(shop: &ShopId, request: &ReadRequest) -> Vec<((String, String), Target)> {
    let mut wanted = Vec::new();
    for customer in &request.accounts {
        wanted.push((
            (
                keys::account_key(shop, customer),
                keys::ACCOUNT_SK.to_string(),
            ),
            Target::Account(customer.clone()),
        ));
    }
    for code in &request.coupons {
        wanted.push((
            (keys::shop_pk(shop), keys::coupon_sk(code)),
            Target::Coupon(code.clone()),
        ));
    }
    for (code, usage) in &request.coupon_uses {
        wanted.push((
            (keys::coupon_use_pk(shop, code), usage_sk(usage)),
            Target::CouponUse(code.clone(), usage.clone()),
        ));
    }
    for code in &request.code_owners {
        wanted.push((
            (keys::code_key(shop, code), keys::CODE_SK.to_string()),
            Target::CodeOwner(code.clone()),
        ));
    }
    for code in &request.referral_owners {
        wanted.push((
            (
                keys::referral_key(shop, code),
                keys::REFERRAL_SK.to_string(),
            ),
            Target::ReferralOwner(code.clone()),
        ));
    }
    for email in &request.email_owners {
        wanted.push((
            (keys::email_key(shop, email), keys::EMAIL_SK.to_string()),
            Target::EmailOwner(email.clone()),
        ));
    }
    for product in &request.products {
        wanted.push((
            (
                keys::product_key(shop, product),
                keys::PRODUCT_SK.to_string(),
            ),
            Target::Product(product.clone()),
        ));
    }
    for counter in &request.counters {
        wanted.push((
            (keys::counter_pk(counter), keys::COUNTER_SK.to_string()),
            Target::Counter(counter.clone()),
        ));
    }
    for (referrer, order) in &request.referral_credits {
        wanted.push((
            (
                keys::account_key(shop, referrer),
                keys::referral_credit_sk(order),
            ),
            Target::ReferralCredit(referrer.clone(), order.clone()),
        ));
    }
    for (code, shard) in &request.coupon_shards {
        wanted.push((
            (
                keys::coupon_use_pk(shop, code),
                keys::coupon_shard_sk(*shard),
            ),
            Target::CouponShard(code.clone(), *shard),
        ));
    }
    for (code, order) in &request.coupon_order_uses {
        wanted.push((
            (
                keys::coupon_use_pk(shop, code),
                keys::coupon_order_use_sk(order),
            ),
            Target::CouponOrderUse(code.clone(), order.clone()),
        ));
    }
    wanted
}

pub(crate) fn usage_sk(usage: &UsageKey) -> String {
    match usage {
        UsageKey::Customer(customer) => keys::customer_usage_sk(customer),
        UsageKey::Email(email) => keys::email_usage_sk(email),
    }
}

impl DynamoStore {
    pub(crate) async fn batch_read(
        &self,
        shop: &ShopId,
        request: &ReadRequest,
    ) -> Result<ReadResult, StoreError> {
        let mut result = ReadResult::default();
        // A counter never written counts 0, as in the in-memory store.
        for use_key in &request.coupon_uses {
            result.coupon_uses.insert(use_key.clone(), 0);
        }
        for counter in &request.counters {
            result.counters.insert(counter.clone(), 0);
        }
        for shard in &request.coupon_shards {
            result
                .coupon_shards
                .insert(shard.clone(), Default::default());
        }
        // BatchGetItem refuses duplicate keys: ask once, answer every target.
        let mut by_key: HashMap<(String, String), Vec<Target>> = HashMap::new();
        let mut order: Vec<(String, String)> = Vec::new();
        for (key, target) in targets(shop, request) {
            let entry = by_key.entry(key.clone()).or_default();
            if entry.is_empty() {
                order.push(key);
            }
            entry.push(target);
        }
        // The order's partition (state, lines and refunds) in one Query, at
        // the same time as everything else in BatchGetItem: one round trip
        // whatever the order's refunds (a Query is charged on the size of
        // what it returns, so state and lines cost no more than as items).
        // The state and lines are what a refund by line or a later earn
        // needs, the refund records what a refund adds up.
        let order_pk = request.order.as_ref().map(|id| keys::order_key(shop, id));
        let order_read = async {
            match &order_pk {
                Some(pk) => self.order_partition(pk).await.map(Some),
                None => Ok(None),
            }
        };
        let others_read = async {
            let mut items = Vec::new();
            for chunk in order.chunks(MAX_BATCH_KEYS) {
                let keys = chunk.iter().map(|(pk, sk)| key(pk, sk)).collect();
                items.extend(self.batch_get(keys).await?);
            }
            Ok::<_, StoreError>(items)
        };
        let (order_found, items) = tokio::try_join!(order_read, others_read)?;
        for item in items {
            let found = (
                require_s(&item, PK)?.to_string(),
                require_s(&item, SK)?.to_string(),
            );
            for target in by_key.get(&found).into_iter().flatten() {
                apply(&mut result, target, &item)?;
            }
        }
        if let Some((Some(state), lines, refunds)) = order_found {
            result.order = Some(decode_order(&state, lines.as_ref(), &refunds)?);
            result.order_lines_stored = lines.is_some();
            result.order_refunds_stored = refunds.len();
        }
        Ok(result)
    }

    /// The items of an order's partition: its state, its lines and its
    /// refund records. One consistent Query, charged on the size of what it
    /// returns (1 RCU per 4 KB in all, not per item as BatchGetItem
    /// charges).
    async fn order_partition(
        &self,
        pk: &str,
    ) -> Result<(Option<Item>, Option<Item>, Vec<Item>), StoreError> {
        let mut expr = Expr::default();
        let key_condition = format!("{} = {}", expr.name(PK), expr.value("pk", s(pk)));
        let (mut state, mut lines, mut refunds) = (None, None, Vec::new());
        self.query_partition(&key_condition, &expr, pk, |item| {
            let sk = require_s(item, SK)?;
            if sk == keys::ORDER_SK {
                state = Some(item.clone());
            } else if sk == keys::ORDER_LINES_SK {
                lines = Some(item.clone());
            } else if sk.starts_with(keys::ORDER_REFUND_SK_PREFIX) {
                refunds.push(item.clone());
            }
            Ok(())
        })
        .await?;
        Ok((state, lines, refunds))
    }

    /// One BatchGetItem, asked again for whatever comes back unprocessed.
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut pending = keys;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Other(format!("BatchGetItem request: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| from_sdk("BatchGetItem", e))?;
            self.record_capacity(output.consumed_capacity());
            if let Some(found) = output.responses().and_then(|r| r.get(&self.table)) {
                items.extend(found.iter().cloned());
            }
            pending = output
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(items);
            }
            tracing::warn!(
                unprocessed = pending.len(),
                attempt,
                "BatchGetItem left keys unprocessed (throttled); asking again"
            );
        }
        Err(StoreError::Unavailable(
            format!(
                "BatchGetItem still left {} keys unprocessed after {MAX_ATTEMPTS} attempts",
                pending.len()
            )
            .into(),
        ))
    }
}

/// A random pause up to 50 ms, 100 ms, 200 ms ... (full jitter, the use
/// cases' backoff), so readers throttled together do not come back
/// together. Attempts are counted here, not timed: the use case's budget
/// times the whole read.
pub(crate) fn backoff(attempt: u32) -> Duration {
    const UNPROCESSED: Backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_secs(1),
        budget: Duration::ZERO,
    };
    UNPROCESSED.pause(attempt)
}

fn apply(result: &mut ReadResult, target: &Target, item: &Item) -> Result<(), StoreError> {
    match target {
        Target::Account(customer) => {
            result
                .accounts
                .insert(customer.clone(), decode_account(item)?);
        }
        Target::Coupon(code) => {
            if let Some(coupon) = decode_coupon(item)? {
                result.coupons.insert(code.clone(), coupon);
            }
        }
        Target::CouponUse(code, usage) => {
            result
                .coupon_uses
                .insert((code.clone(), usage.clone()), get_count(item, COUNT)?);
        }
        Target::CodeOwner(code) => {
            result
                .code_owners
                .insert(code.clone(), decode_customer(item)?);
        }
        Target::ReferralOwner(code) => {
            result
                .referral_owners
                .insert(code.clone(), decode_customer(item)?);
        }
        Target::EmailOwner(email) => {
            result
                .email_owners
                .insert(email.clone(), decode_customer(item)?);
        }
        Target::Product(product) => {
            result.products.insert(product.clone(), get_doc(item)?);
        }
        Target::Counter(counter) => {
            result
                .counters
                .insert(counter.clone(), get_u64(item, COUNT)?.unwrap_or(0));
        }
        Target::ReferralCredit(referrer, order) => {
            result.referral_credits.insert(
                (referrer.clone(), order.clone()),
                super::referrals::decode_note(item)?,
            );
        }
        Target::CouponShard(code, shard) => {
            result.coupon_shards.insert(
                (code.clone(), *shard),
                super::coupon_uses::decode_shard(item)?,
            );
        }
        Target::CouponOrderUse(code, order) => {
            result.coupon_order_uses.insert(
                (code.clone(), order.clone()),
                super::coupon_uses::decode_use(item)?,
            );
        }
    }
    Ok(())
}
