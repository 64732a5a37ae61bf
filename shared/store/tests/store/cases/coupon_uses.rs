//! Uses of a coupon with no total limit: recorded by each order's write on
//! an item of its own, never on the coupon's count, and counted by the
//! change feed's consumer once each.

use cashback_app::coupon_uses::{CouponOrderUse, CouponUseCounted};
use cashback_app::store::*;
use cashback_core::ids::{Code, Email, OrderId};
use cashback_store::dynamo::transaction_keys;

use super::{coupon, customer, shop};

fn order(id: &str) -> OrderId {
    OrderId::parse(id).unwrap()
}

fn use_by(order_id: &str, id: &str, delta: i32) -> WriteSet {
    WriteSet {
        coupon_uses: vec![CouponUseChange {
            code: Code::parse("popular").unwrap(),
            customer: customer(id),
            email: Some(Email::parse(&format!("{id}@example.com")).unwrap()),
            delta,
            limit_total: None,
            limit_per_customer: Some(1),
            order: Some(order(order_id)),
            shard: None,
        }],
        ..WriteSet::default()
    }
}

fn counted(order_id: &str, taken: bool) -> WriteSet {
    WriteSet {
        coupon_uses_counted: vec![CouponUseCounted {
            code: Code::parse("popular").unwrap(),
            order: order(order_id),
            taken,
            shard: None,
        }],
        ..WriteSet::default()
    }
}

async fn uses(store: &dyn Store) -> u32 {
    let code = Code::parse("popular").unwrap();
    store
        .read(&shop(), &ReadRequest::coupon(&code))
        .await
        .unwrap()
        .coupons[&code]
        .value
        .uses
}

async fn order_use(store: &dyn Store, order_id: &str) -> Option<CouponOrderUse> {
    let key = (Code::parse("popular").unwrap(), order(order_id));
    store
        .read(
            &shop(),
            &ReadRequest {
                coupon_order_uses: vec![key.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap()
        .coupon_order_uses
        .remove(&key)
}

pub async fn an_unlimited_coupons_uses_leave_its_count_to_the_feed_and_count_once(
    store: &dyn Store,
) {
    store
        .put_coupon(&shop(), &coupon("popular", None, Some(1)), 0)
        .await
        .unwrap();
    // The order's transaction holds no item of the coupon's own.
    let keys = transaction_keys(&shop(), &use_by("o1", "ann", 1)).unwrap();
    assert!(
        keys.iter().all(|(_, sk)| !sk.starts_with("COUPON#")),
        "{keys:?}"
    );
    store.write(&shop(), use_by("o1", "ann", 1)).await.unwrap();
    store.write(&shop(), use_by("o2", "bob", 1)).await.unwrap();
    assert_eq!(uses(store).await, 0, "not counted by the orders' writes");
    assert_eq!(
        order_use(store, "o1").await,
        Some(CouponOrderUse {
            taken: true,
            counted: false,
            shard: None
        })
    );
    // The per-customer limit still holds in the order's write.
    let again = store.write(&shop(), use_by("o3", "ann", 1)).await;
    assert!(
        matches!(again, Err(StoreError::CouponLimit(_))),
        "{again:?}"
    );

    // The feed counts each use once; counting one again is refused.
    store.write(&shop(), counted("o1", true)).await.unwrap();
    store.write(&shop(), counted("o2", true)).await.unwrap();
    let twice = store.write(&shop(), counted("o1", true)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(uses(store).await, 2);

    // A cancelled order gives its use back: counted down once.
    store.write(&shop(), use_by("o1", "ann", -1)).await.unwrap();
    store.write(&shop(), counted("o1", false)).await.unwrap();
    assert!(store.write(&shop(), counted("o1", false)).await.is_err());
    assert_eq!(uses(store).await, 1);

    // A use taken when the coupon's own item counted it, given back now.
    store.write(&shop(), use_by("old", "cy", -1)).await.unwrap();
    assert_eq!(
        order_use(store, "old").await,
        Some(CouponOrderUse {
            taken: false,
            counted: true,
            shard: None
        })
    );
    store.write(&shop(), counted("old", false)).await.unwrap();
    assert_eq!(uses(store).await, 0);
}
