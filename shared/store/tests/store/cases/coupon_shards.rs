//! A limited coupon's count split over sub-counters
//! (`cashback_app::coupon_shards`): each shard takes uses under its own
//! cap, the caps sum to the limit, a full shard hands over to one with
//! room, and a use given back returns to the shard that took it.

use cashback_app::changes::{Change, ChangeKind};
use cashback_app::coupon_shards::{self, CouponShard, SHARDS};
use cashback_app::coupon_uses::count_uses;
use cashback_app::store::*;
use cashback_core::ids::{Code, OrderId};
use cashback_store::dynamo::transaction_keys;

use super::{coupon, customer, shop};

fn code() -> Code {
    Code::parse("limited").unwrap()
}

fn order(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}

fn take_on(order_id: &str, shard: Option<u32>, delta: i32) -> WriteSet {
    WriteSet {
        coupon_uses: vec![CouponUseChange {
            code: code(),
            customer: customer(&format!("c-{order_id}")),
            email: None,
            delta,
            limit_total: Some(1_000),
            limit_per_customer: None,
            order: Some(order(order_id)),
            shard,
        }],
        ..WriteSet::default()
    }
}

/// What an order does (`cashback_app::events`): its own shard, read with
/// the rest; when full, or refused by a shard filled meanwhile, every shard
/// read once and the first with room. Ok(true) when a use was taken,
/// Ok(false) when none had room.
async fn take_use(store: &dyn Store, order_id: &str) -> Result<bool, StoreError> {
    let home = coupon_shards::home_shard(&order(order_id));
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupon_shards: vec![(code(), home)],
                ..ReadRequest::default()
            },
        )
        .await?;
    let mut shard = read.coupon_shards[&(code(), home)]
        .has_room()
        .then_some(home);
    // Between its read and its write, other orders go (in memory too: the
    // orders' futures interleave here, as concurrent Lambdas do).
    tokio::task::yield_now().await;
    for _ in 0..50 {
        let chosen = match shard.take() {
            Some(chosen) => chosen,
            None => {
                match coupon_shards::with_room(&store.coupon_shards(&shop(), &code()).await?, home)
                {
                    Some(chosen) => chosen,
                    None => return Ok(false),
                }
            }
        };
        match store
            .write(&shop(), take_on(order_id, Some(chosen), 1))
            .await
        {
            Ok(_) => return Ok(true),
            Err(StoreError::CouponLimit(_)) | Err(StoreError::Conflict(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(StoreError::Other("no shard settled in 50 attempts".into()))
}

async fn shards(store: &dyn Store) -> Vec<CouponShard> {
    store.coupon_shards(&shop(), &code()).await.unwrap()
}

/// The change feed's consumer, on the use items these orders wrote.
async fn feed(store: &dyn Store, orders: &[&str]) {
    let batch: Vec<Change> = orders
        .iter()
        .map(|id| Change {
            shop: shop(),
            customer: customer(&format!("c-{id}")),
            sequence: "1".into(),
            kind: ChangeKind::CouponUse {
                code: code(),
                order: order(id),
            },
        })
        .collect();
    count_uses(store, &batch).await.unwrap();
}

pub(crate) async fn take_use_concurrently(
    store: std::sync::Arc<dyn Store>,
    orders: usize,
) -> usize {
    let tasks: Vec<_> = (0..orders)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { take_use(store.as_ref(), &format!("t-{n}")).await })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        if task.await.unwrap().unwrap() {
            taken += 1;
        }
    }
    taken
}

/// The sub-counters of a coupon limited to `limit`, ready to take uses.
pub(crate) async fn limited(store: &dyn Store, limit: u32) {
    store
        .put_coupon(&shop(), &coupon("limited", Some(limit), None), 0)
        .await
        .unwrap();
    store
        .set_coupon_caps(&shop(), &code(), Some(limit))
        .await
        .unwrap();
}

/// What the shards hold in all.
pub(crate) async fn held(store: &dyn Store) -> u32 {
    coupon_shards::held(&shards(store).await)
}

pub async fn a_limited_coupon_reaches_its_limit_exactly_under_concurrent_orders(store: &dyn Store) {
    store
        .put_coupon(&shop(), &coupon("limited", Some(37), None), 0)
        .await
        .unwrap();
    store
        .set_coupon_caps(&shop(), &code(), Some(37))
        .await
        .unwrap();
    let caps: Vec<u32> = shards(store).await.iter().filter_map(|s| s.cap).collect();
    assert_eq!(caps.len(), SHARDS as usize);
    assert_eq!(
        caps.iter().sum::<u32>(),
        37,
        "the caps split the limit exactly"
    );
    // No transaction holds the coupon's own item, nor another shard.
    let keys = transaction_keys(&shop(), &take_on("k", Some(3), 1)).unwrap();
    assert!(
        keys.iter().all(|(_, sk)| !sk.starts_with("COUPON#")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|(_, sk)| sk == "USES#3"), "{keys:?}");

    let ids: Vec<String> = (0..90).map(|n| format!("o-{n}")).collect();
    let taken = futures::future::join_all(ids.iter().map(|id| take_use(store, id))).await;
    let taken = taken.into_iter().collect::<Result<Vec<bool>, _>>().unwrap();
    assert_eq!(
        taken.iter().filter(|t| **t).count(),
        37,
        "never past the limit"
    );
    let after = shards(store).await;
    assert_eq!(coupon_shards::held(&after), 37);
    assert!(after.iter().all(|s| !s.has_room()));
    // The 38th order is refused, whichever shard it hashes to.
    assert!(!take_use(store, "late").await.unwrap());
}

pub async fn a_full_shard_hands_over_to_shards_with_room(store: &dyn Store) {
    store
        .put_coupon(&shop(), &coupon("limited", Some(SHARDS), None), 0)
        .await
        .unwrap();
    store
        .set_coupon_caps(&shop(), &code(), Some(SHARDS))
        .await
        .unwrap();
    assert!(shards(store).await.iter().all(|s| s.cap == Some(1)));
    store
        .write(&shop(), take_on("a", Some(5), 1))
        .await
        .unwrap();
    // Shard 5 is full: refused there alone.
    let refused = store.write(&shop(), take_on("b", Some(5), 1)).await;
    assert!(
        matches!(refused, Err(StoreError::CouponLimit(_))),
        "{refused:?}"
    );
    let read = shards(store).await;
    assert_eq!(coupon_shards::with_room(&read, 5), Some(6));
    store
        .write(&shop(), take_on("b", Some(6), 1))
        .await
        .unwrap();
    // Every other shard still takes its one.
    for n in 0..SHARDS - 2 {
        assert!(take_use(store, &format!("more-{n}")).await.unwrap());
    }
    assert!(!take_use(store, "one-too-many").await.unwrap());
    assert_eq!(coupon_shards::held(&shards(store).await), SHARDS);
}

pub async fn a_use_given_back_frees_room_on_the_shard_that_took_it(store: &dyn Store) {
    store
        .put_coupon(&shop(), &coupon("limited", Some(2), None), 0)
        .await
        .unwrap();
    store
        .set_coupon_caps(&shop(), &code(), Some(2))
        .await
        .unwrap();
    assert!(take_use(store, "r1").await.unwrap());
    assert!(take_use(store, "r2").await.unwrap());
    assert!(!take_use(store, "r3").await.unwrap());
    let read = store
        .read(
            &shop(),
            &ReadRequest {
                coupon_order_uses: vec![(code(), order("r1"))],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let used = read.coupon_order_uses[&(code(), order("r1"))];
    let shard = used.shard.expect("the use item names its shard");
    assert!(used.taken && used.counted, "{used:?}");
    // The refund gives the use back on the order's own item; the feed
    // moves it off the shard that took it.
    store.write(&shop(), take_on("r1", None, -1)).await.unwrap();
    feed(store, &["r1", "r2"]).await;
    let after = shards(store).await;
    assert_eq!(coupon_shards::held(&after), 1);
    assert!(after[shard as usize].has_room());
    assert!(take_use(store, "r3").await.unwrap());
    assert!(!take_use(store, "r4").await.unwrap());
}

pub async fn a_limit_set_on_an_unlimited_coupon_counts_uses_the_feed_has_not(store: &dyn Store) {
    store
        .put_coupon(&shop(), &coupon("limited", None, None), 0)
        .await
        .unwrap();
    // Three uses taken while unlimited; the feed counted one of them.
    for id in ["u1", "u2", "u3"] {
        let mut writes = take_on(id, None, 1);
        writes.coupon_uses[0].limit_total = None;
        store.write(&shop(), writes).await.unwrap();
    }
    feed(store, &["u1"]).await;
    store
        .set_coupon_caps(&shop(), &code(), Some(5))
        .await
        .unwrap();
    let caps: u32 = shards(store).await.iter().filter_map(|s| s.cap).sum();
    assert_eq!(caps, 2, "the limit less the counted and the uncounted uses");
    assert!(take_use(store, "n1").await.unwrap());
    assert!(take_use(store, "n2").await.unwrap());
    assert!(!take_use(store, "n3").await.unwrap());
    // The feed catching up later moves nothing past the limit.
    feed(store, &["u2", "u3"]).await;
    let read = store
        .read(&shop(), &ReadRequest::coupon(&code()))
        .await
        .unwrap();
    let total = read.coupons[&code()].value.uses + coupon_shards::held(&shards(store).await);
    assert_eq!(total, 5);
    // Removing the limit removes the caps (an unlimited coupon's orders
    // write no shard); the counts stay.
    store.set_coupon_caps(&shop(), &code(), None).await.unwrap();
    let after = shards(store).await;
    assert!(!coupon_shards::capped(&after));
    assert_eq!(coupon_shards::held(&after), 2);
}
