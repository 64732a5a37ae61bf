//! The outgoing events' endpoint store, one suite on both adapters (moto
//! for DynamoDB): endpoints per shop, deliveries newest first, pending
//! retries due by time.

use chrono::Duration;

use cashback_app::outgoing::endpoints::{
    DeliveryRecord, DeliveryStatus, EndpointRecord, EndpointStore, PendingDelivery,
};
use cashback_app::outgoing::EventKind;
use cashback_app::store::{Store, StoreError};
use cashback_core::ids::ShopId;
use cashback_test_support::fixtures::{shop, t0};
use cashback_test_support::moto;

fn other_shop() -> ShopId {
    ShopId::parse("other.myshopify.com").unwrap()
}

fn endpoint(shop: &ShopId, id: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.into(),
        shop: shop.clone(),
        url: format!("https://merchant.example.com/{id}"),
        description: None,
        secret: format!("whsec_{id}"),
        previous_secret: None,
        previous_valid_until: None,
        created_at: t0(),
        created_by: "tester".into(),
        rotated_at: None,
    }
}

fn delivery(endpoint: &str, event: &str, minutes: i64) -> DeliveryRecord {
    DeliveryRecord {
        endpoint_id: endpoint.into(),
        event_id: event.into(),
        kind: EventKind::Earned,
        status: DeliveryStatus::Retrying,
        attempts: 1,
        last_error: Some("answered 500".into()),
        last_status: Some(500),
        first_attempt_at: t0() + Duration::minutes(minutes),
        updated_at: t0() + Duration::minutes(minutes),
        next_attempt_at: Some(t0() + Duration::minutes(minutes + 1)),
    }
}

fn pending(shop: &ShopId, event: &str, minutes: i64) -> PendingDelivery {
    PendingDelivery {
        shop: shop.clone(),
        endpoint_id: "ep_1".into(),
        event_id: event.into(),
        kind: EventKind::Released,
        body: "{\"id\":\"x\"}".into(),
        attempts: 3,
        first_attempt_at: t0(),
        next_attempt_at: t0() + Duration::minutes(minutes),
    }
}

fn endpoints(store: &dyn Store) -> &dyn EndpointStore {
    store
        .event_endpoints()
        .expect("the store keeps event endpoints")
}

async fn endpoints_are_kept_per_shop_replaced_and_deleted(store: &dyn Store) {
    let e = endpoints(store);
    e.create_endpoint(&endpoint(&shop(), "ep_2")).await.unwrap();
    e.create_endpoint(&endpoint(&shop(), "ep_1")).await.unwrap();
    e.create_endpoint(&endpoint(&other_shop(), "ep_9"))
        .await
        .unwrap();
    assert!(matches!(
        e.create_endpoint(&endpoint(&shop(), "ep_1")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let ids = |list: Vec<EndpointRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(e.list_endpoints(&shop()).await.unwrap()),
        ["ep_1", "ep_2"]
    );
    assert_eq!(
        ids(e.list_endpoints(&other_shop()).await.unwrap()),
        ["ep_9"]
    );

    let mut rotated = endpoint(&shop(), "ep_1");
    rotated.previous_secret = Some(rotated.secret.clone());
    rotated.secret = "whsec_new".into();
    rotated.previous_valid_until = Some(t0() + Duration::hours(24));
    assert!(e.replace_endpoint(&rotated).await.unwrap());
    let stored = e.list_endpoints(&shop()).await.unwrap();
    assert_eq!(stored[0], rotated);
    // Another shop's id under this shop: nothing to replace or delete.
    assert!(!e
        .replace_endpoint(&endpoint(&shop(), "ep_9"))
        .await
        .unwrap());
    assert!(!e.delete_endpoint(&shop(), "ep_9").await.unwrap());
    assert_eq!(e.list_endpoints(&other_shop()).await.unwrap().len(), 1);
    assert!(e.delete_endpoint(&shop(), "ep_1").await.unwrap());
    assert!(!e.delete_endpoint(&shop(), "ep_1").await.unwrap());
    assert_eq!(ids(e.list_endpoints(&shop()).await.unwrap()), ["ep_2"]);
}

async fn deliveries_are_listed_most_recent_first_and_replaced_in_place(store: &dyn Store) {
    let e = endpoints(store);
    let expires = t0() + Duration::days(30);
    for (event, minutes) in [("evt_a", 0), ("evt_b", 5), ("evt_c", 2)] {
        e.put_delivery(&shop(), &delivery("ep_1", event, minutes), expires)
            .await
            .unwrap();
    }
    e.put_delivery(&shop(), &delivery("ep_2", "evt_z", 9), expires)
        .await
        .unwrap();
    e.put_delivery(&other_shop(), &delivery("ep_1", "evt_o", 9), expires)
        .await
        .unwrap();
    // evt_a delivered on its second attempt: the same record, updated.
    let mut done = delivery("ep_1", "evt_a", 0);
    done.status = DeliveryStatus::Delivered;
    done.attempts = 2;
    done.last_error = None;
    done.next_attempt_at = None;
    e.put_delivery(&shop(), &done, expires).await.unwrap();

    let listed = e.list_deliveries(&shop(), "ep_1", 10).await.unwrap();
    let events: Vec<&str> = listed.iter().map(|d| d.event_id.as_str()).collect();
    assert_eq!(events, ["evt_b", "evt_c", "evt_a"]);
    assert_eq!(listed[2], done);
    assert_eq!(
        e.list_deliveries(&shop(), "ep_1", 2).await.unwrap().len(),
        2
    );
    assert!(e
        .list_deliveries(&shop(), "ep_3", 10)
        .await
        .unwrap()
        .is_empty());
}

async fn pending_retries_are_due_by_their_time_and_removed_once_settled(store: &dyn Store) {
    let e = endpoints(store);
    for (event, minutes) in [("evt_late", 30), ("evt_soon", 1), ("evt_now", 0)] {
        e.put_pending(&pending(&shop(), event, minutes))
            .await
            .unwrap();
    }
    e.put_pending(&pending(&other_shop(), "evt_other", 2))
        .await
        .unwrap();
    let due = e
        .due_pending(t0() + Duration::minutes(2), 10)
        .await
        .unwrap();
    let events: Vec<&str> = due.iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(events, ["evt_now", "evt_soon", "evt_other"]);
    assert_eq!(due[0], pending(&shop(), "evt_now", 0));
    assert_eq!(
        e.due_pending(t0() + Duration::hours(1), 2)
            .await
            .unwrap()
            .len(),
        2
    );

    // Rescheduled: the same retry, later.
    let mut later = pending(&shop(), "evt_now", 0);
    later.attempts = 4;
    later.next_attempt_at = t0() + Duration::hours(2);
    e.put_pending(&later).await.unwrap();
    e.delete_pending(&pending(&shop(), "evt_soon", 1))
        .await
        .unwrap();
    e.delete_pending(&pending(&shop(), "evt_never", 1))
        .await
        .unwrap();
    let due = e.due_pending(t0() + Duration::hours(3), 10).await.unwrap();
    let events: Vec<&str> = due.iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(events, ["evt_other", "evt_late", "evt_now"]);
    assert_eq!(due[2].attempts, 4);
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = cashback_store::MemoryStore::new();
                    super::$case(&store).await;
                }
            )*
        }

        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(store) = super::moto::fresh_store(stringify!($case)).await {
                        super::$case(&store).await;
                    }
                }
            )*
        }
    };
}

both!(
    endpoints_are_kept_per_shop_replaced_and_deleted,
    deliveries_are_listed_most_recent_first_and_replaced_in_place,
    pending_retries_are_due_by_their_time_and_removed_once_settled,
);

mod erased {
    use super::*;

    /// A shop's data erased: its endpoints, deliveries and pending retries
    /// (their bodies hold customers' figures) go with it; on DynamoDB the
    /// retries live in the shared `EVENTRETRY#` partitions, not under
    /// `SHOP#{shop}`.
    async fn a_shops_erasure_takes_its_endpoints_and_deliveries(store: &dyn Store) {
        use cashback_test_support::world::open_shop;
        open_shop(store, &cashback_test_support::fixtures::program()).await;
        let e = endpoints(store);
        e.create_endpoint(&endpoint(&shop(), "ep_1")).await.unwrap();
        e.create_endpoint(&endpoint(&other_shop(), "ep_9"))
            .await
            .unwrap();
        e.put_delivery(
            &shop(),
            &delivery("ep_1", "evt_a", 0),
            t0() + Duration::days(30),
        )
        .await
        .unwrap();
        for event in ["evt_a", "evt_b", "evt_c", "evt_d", "evt_e"] {
            e.put_pending(&pending(&shop(), event, 0)).await.unwrap();
        }
        e.put_pending(&pending(&other_shop(), "evt_other", 0))
            .await
            .unwrap();
        store.delete_shop_data(&shop()).await.unwrap();
        let left = e.due_pending(t0() + Duration::hours(1), 100).await.unwrap();
        assert_eq!(left, vec![pending(&other_shop(), "evt_other", 0)]);
        assert!(e.list_endpoints(&shop()).await.unwrap().is_empty());
        assert!(e
            .list_deliveries(&shop(), "ep_1", 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(e.list_endpoints(&other_shop()).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn in_memory() {
        a_shops_erasure_takes_its_endpoints_and_deliveries(&cashback_store::MemoryStore::new())
            .await;
    }

    #[tokio::test]
    async fn on_dynamodb() {
        if let Some(store) = moto::fresh_store("outgoing_erased").await {
            a_shops_erasure_takes_its_endpoints_and_deliveries(&store).await;
        }
    }
}
