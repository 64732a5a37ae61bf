//! A popular coupon's use count, off the orders' write path.
//!
//! A coupon with no total limit needs no count to decide anything, yet one
//! count item written by every order that uses it is an item all those
//! orders' transactions hold: at Black Friday rates most of them would be
//! cancelled (DynamoDB cancels transactions that meet on one item). So an
//! order's write does not touch the coupon's count: it records the use on
//! an item of the order's own (`CouponOrderUse`, keyed by coupon and
//! order: a new key, so it conflicts with nobody), and the change feed
//! adds it to the coupon's count ([`count_uses`]), as the report aggregator
//! sums the ledger. The count lags the orders by seconds. Each use item
//! says whether the use is taken (the order gave it back when cancelled)
//! and whether the count has it; the feed moves the count by the
//! difference under that condition, so a redelivered batch counts nothing
//! twice. A coupon with a total limit takes its use in the order's own
//! write, on a sub-counter whose cap keeps the total within the limit
//! ([`crate::coupon_shards`]); the order's use item records the shard, and
//! a use given back reaches that shard through the same feed.

use std::collections::{BTreeMap, BTreeSet};

use tracing::info;

use cashback_core::ids::{Code, OrderId, ShopId};

use crate::changes::{Change, ChangeKind};
use crate::store::{ReadRequest, Store, StoreError, WriteSet};

/// One order's use of an unlimited coupon, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CouponOrderUse {
    /// The order holds the use (false once it gave it back).
    pub taken: bool,
    /// The coupon's count has the use.
    pub counted: bool,
    /// The sub-counter that took the use, for a coupon whose limited count
    /// is split ([`crate::coupon_shards`]): the use is counted there (and
    /// given back there), not on the coupon's count.
    pub shard: Option<u32>,
}

/// A use the feed counts now: the coupon's count moves by one (up when the
/// use is taken, down when it was given back) and the use item records it,
/// under the condition that it had not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponUseCounted {
    /// The coupon.
    pub code: Code,
    /// The order whose use it is.
    pub order: OrderId,
    /// The use as it is now: taken (count +1) or given back (count -1).
    pub taken: bool,
    /// The sub-counter the use is counted on, if any (else the coupon's
    /// count).
    pub shard: Option<u32>,
}

/// Most uses counted in one write (with the coupon's count item, within
/// DynamoDB's 100 items per transaction).
pub const MAX_COUNTED_PER_WRITE: usize = 90;

/// How many times a write is tried again when another consumer moved the
/// same coupon's count at that moment.
pub const COUNT_ATTEMPTS: u32 = 5;

/// What counting a batch's coupon uses did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Uses the batch named.
    pub uses: usize,
    /// Uses the coupons' counts took now.
    pub counted: usize,
}

/// Adds the coupon uses a batch of the change feed names to their coupons'
/// counts, each once: per coupon, one write for up to
/// [`MAX_COUNTED_PER_WRITE`] uses.
pub async fn count_uses(store: &dyn Store, batch: &[Change]) -> Result<Counted, StoreError> {
    let mut named: BTreeMap<(ShopId, Code), BTreeSet<OrderId>> = BTreeMap::new();
    for change in batch {
        if let ChangeKind::CouponUse { code, order } = &change.kind {
            named
                .entry((change.shop.clone(), code.clone()))
                .or_default()
                .insert(order.clone());
        }
    }
    let mut outcome = Counted::default();
    for ((shop, code), orders) in named {
        let orders: Vec<OrderId> = orders.into_iter().collect();
        outcome.uses += orders.len();
        for chunk in orders.chunks(MAX_COUNTED_PER_WRITE) {
            outcome.counted += count_chunk(store, &shop, &code, chunk).await?;
        }
    }
    Ok(outcome)
}

async fn count_chunk(
    store: &dyn Store,
    shop: &ShopId,
    code: &Code,
    orders: &[OrderId],
) -> Result<usize, StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let read = store
            .read(
                shop,
                &ReadRequest {
                    coupon_order_uses: orders.iter().map(|o| (code.clone(), o.clone())).collect(),
                    ..ReadRequest::default()
                },
            )
            .await?;
        let counted: Vec<CouponUseCounted> = read
            .coupon_order_uses
            .into_iter()
            .filter(|(_, used)| used.taken != used.counted)
            .map(|((code, order), used)| CouponUseCounted {
                code,
                order,
                taken: used.taken,
                shard: used.shard,
            })
            .collect();
        if counted.is_empty() {
            return Ok(0);
        }
        let n = counted.len();
        let writes = WriteSet {
            coupon_uses_counted: counted,
            ..WriteSet::default()
        };
        match store.write(shop, writes).await {
            Ok(_) => {
                info!(shop = %shop, uses = n, "coupon uses counted");
                return Ok(n);
            }
            Err(error) if error.is_retryable() && attempt < COUNT_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
}
