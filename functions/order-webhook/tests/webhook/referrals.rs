//! Referral credits off the referred buyer's transaction, through the
//! webhook router: the buyer's write holds nothing of the referrer's
//! account, the change feed credits the referrer once whatever it
//! redelivers, a refund or a cancellation that comes before the credit
//! leaves the referrer where one clean history would, and referred buyers
//! racing past the referrer's daily cap are paid within it. Each case runs
//! on the in-memory store and on DynamoDB through moto.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_app::referral::settle_credits;
use cashback_app::store::{Store, WriteOutcome, WriteSet};
use cashback_core::ids::ShopId;
use cashback_store::dynamo::transaction_keys;
use cashback_store::intercept::{Intercepted, Interceptor, Pending};
use cashback_store::MemoryStore;
use cashback_test_support::samples::{
    self, shopify_delivery, Stage, DEMO_SECRET, DEMO_SHOP, SHOPIFY_REFERRAL_CODE,
};

macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Backend::Memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if crate::support::moto_configured(stringify!($case)) {
                        super::$case(super::Backend::Dynamo).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    a_referral_credit_lands_once_whatever_the_redeliveries,
    a_refund_before_the_credit_lands_is_taken_back_once,
    a_cancel_before_the_credit_lands_mints_nothing,
    referred_buyers_racing_past_the_daily_cap_are_paid_within_it,
);

/// Ann, with the referral code the sample order's cart attribute names.
async fn seed_ann(world: &World) {
    seed_customer(
        world,
        "ann",
        "CB-ANN-BALANCE",
        Some("ann@example.com"),
        "0.00",
        Some(SHOPIFY_REFERRAL_CODE),
    )
    .await;
}

/// Ann's account, its books checked against her ledger.
async fn ann(world: &World) -> cashback_core::ledger::Account {
    let ann = account(world, "ann").await.unwrap();
    ann.check(&ledger(world, "ann").await).unwrap();
    ann
}

async fn delivered(world: &World, file: &str) {
    let (status, body) = deliver(world, file).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_referral_credit_lands_once_whatever_the_redeliveries(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    seed_ann(&world).await;
    delivered(&world, "shopify-orders-paid.json").await;
    // Granted on the order; Ann's account is not part of the buyer's write.
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.referral.unwrap().reward, usd("5.00"));
    let before = ann(&world).await;
    assert_eq!(
        (before.pending, before.lifetime_issued),
        (usd("0.00"), usd("0.00"))
    );
    if let Reports::Memory(memory) = &feed {
        // One batch delivered twice, then again in halves.
        let batch = memory.take_changes();
        let store: &dyn Store = memory.as_ref();
        for _ in 0..2 {
            settle_credits(store, &batch, now()).await.unwrap();
        }
        let (head, tail) = batch.split_at(batch.len() / 2);
        settle_credits(store, head, now()).await.unwrap();
        settle_credits(store, tail, now()).await.unwrap();
    }
    // On DynamoDB each catch-up reads the whole stream again.
    feed.catch_up().await;
    feed.catch_up().await;
    // The webhook delivered again, and the feed once more.
    delivered(&world, "shopify-orders-paid.json").await;
    feed.catch_up().await;
    let ann = ann(&world).await;
    assert_eq!(
        (ann.pending, ann.lifetime_issued),
        (usd("5.00"), usd("5.00"))
    );
    assert_eq!(ann.referrals_on_day, 1);
    assert_eq!(ledger(&world, "ann").await.len(), 1);
}

async fn a_refund_before_the_credit_lands_is_taken_back_once(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    seed_ann(&world).await;
    delivered(&world, "shopify-orders-paid.json").await;
    delivered(&world, "shopify-refunds-create.json").await;
    feed.catch_up().await;
    feed.catch_up().await;
    let referral = order_record(&world, &shopify_order())
        .await
        .unwrap()
        .referral
        .unwrap();
    assert!(referral.clawed_back.is_positive());
    let kept = usd("5.00").checked_sub(referral.clawed_back).unwrap();
    let ann = ann(&world).await;
    assert_eq!((ann.pending, ann.lifetime_issued), (kept, kept));
    assert_eq!((ann.available, ann.debt), (usd("0.00"), usd("0.00")));
    // The same refund again changes nothing.
    delivered(&world, "shopify-refunds-create.json").await;
    feed.catch_up().await;
    assert_eq!(self::ann(&world).await.pending, kept);
}

async fn a_cancel_before_the_credit_lands_mints_nothing(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    seed_ann(&world).await;
    delivered(&world, "shopify-orders-paid.json").await;
    delivered(&world, "shopify-orders-cancelled.json").await;
    feed.catch_up().await;
    let ann = ann(&world).await;
    assert_eq!(
        (ann.available, ann.pending, ann.debt, ann.lifetime_issued),
        (usd("0.00"), usd("0.00"), usd("0.00"), usd("0.00"))
    );
    assert!(ledger(&world, "ann").await.is_empty());
    assert_eq!(ann.referrals_on_day, 0, "nothing counted against her cap");
}

async fn referred_buyers_racing_past_the_daily_cap_are_paid_within_it(backend: Backend) {
    let (world, feed) = backend.world_with_reports().await;
    let mut capped = program();
    capped.referral_daily_cap = 1;
    world
        .store
        .put_program(&ShopId::parse(DEMO_SHOP).unwrap(), &capped, 1, now())
        .await
        .unwrap();
    seed_ann(&world).await;
    // Two new buyers' first orders, both in before the feed credits Ann:
    // each order saw her count at 0.
    delivered(&world, "shopify-orders-paid.json").await;
    let mut guest = samples::shopify_order_with(5_920_381_274_650_003_333, "#2003", Stage::Paid);
    guest["customer"] = Value::Null;
    guest["email"] = json!("fresh-guest@example.com");
    guest["contact_email"] = json!("fresh-guest@example.com");
    let body = guest.to_string();
    let headers = shopify_delivery("orders/paid", &body, DEMO_SECRET);
    let (status, answer) = send(&world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let second = order_record(&world, "5920381274650003333").await.unwrap();
    assert!(second.referral.is_some(), "granted on the order");
    feed.catch_up().await;
    feed.catch_up().await;
    let ann = ann(&world).await;
    assert_eq!(
        (ann.pending, ann.lifetime_issued),
        (usd("5.00"), usd("5.00"))
    );
    assert_eq!(ann.referrals_on_day, 1);
}

/// Records the keys of every transaction the store is asked to write, as
/// the DynamoDB adapter lays them out.
#[derive(Default)]
struct TransactionKeys(Mutex<Vec<Vec<(String, String)>>>);

impl Interceptor for TransactionKeys {
    fn around_write<'a>(
        &'a self,
        shop: &'a ShopId,
        writes: WriteSet,
        inner: &'a Arc<dyn Store>,
    ) -> Pending<'a, WriteOutcome> {
        if let (Ok(keys), Ok(mut seen)) = (transaction_keys(shop, &writes), self.0.lock()) {
            seen.push(keys);
        }
        inner.write(shop, writes)
    }
}

#[tokio::test]
async fn a_referred_buyers_transaction_holds_nothing_of_the_referrers_account() {
    let memory = Arc::new(MemoryStore::new());
    let recorded = Arc::new(Intercepted::new(
        memory.clone() as Arc<dyn Store>,
        TransactionKeys::default(),
    ));
    let world = world(recorded.clone()).await;
    seed_ann(&world).await;
    let anns = format!("SHOP#{DEMO_SHOP}#CUST#ann");
    let seen = || recorded.interceptor().0.lock().unwrap().len();
    let seeded = seen();
    delivered(&world, "shopify-orders-paid.json").await;
    delivered(&world, "shopify-refunds-create.json").await;
    let buyers: Vec<Vec<(String, String)>> =
        recorded.interceptor().0.lock().unwrap()[seeded..].to_vec();
    assert_eq!(
        buyers.len(),
        2,
        "the paid order's and the refund's transactions"
    );
    for keys in &buyers {
        let of_ann: Vec<&(String, String)> = keys.iter().filter(|(pk, _)| pk == &anns).collect();
        assert_eq!(of_ann.len(), 1, "{keys:?}");
        assert!(
            of_ann[0].1.starts_with("REFERRED#"),
            "only the order's own referral credit: {keys:?}"
        );
    }
    // The change feed credits Ann in a transaction of her own.
    let settled = seen();
    let batch = memory.take_changes();
    settle_credits(recorded.as_ref(), &batch, now())
        .await
        .unwrap();
    let feeds: Vec<Vec<(String, String)>> =
        recorded.interceptor().0.lock().unwrap()[settled..].to_vec();
    assert_eq!(feeds.len(), 1, "{feeds:?}");
    assert!(feeds[0].contains(&(anns.clone(), "ACCOUNT".to_string())));
    assert!(feeds[0].iter().all(|(pk, _)| pk == &anns), "{feeds:?}");
    let clawed = order_record(&world, &shopify_order())
        .await
        .unwrap()
        .referral
        .unwrap()
        .clawed_back;
    assert_eq!(
        ann(&world).await.pending,
        usd("5.00").checked_sub(clawed).unwrap()
    );
}
