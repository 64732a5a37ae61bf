//! The platform-sync routes through the admin router: a reconcile or a
//! backfill is asked for (202) and written where the sync function sees
//! it; a shop whose program keeps its codes off the platform is refused.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_app::platform_codes::{PlatformSync, RunRequest};
use cashback_app::store::Store;
use cashback_store::MemoryStore;
use cashback_test_support::fixtures::shop;

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

#[tokio::test]
async fn a_reconcile_and_a_backfill_are_asked_for_and_recorded_for_the_sync_function() {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    // Off by default: refused, nothing recorded.
    let answer = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/platform-sync/reconcile"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.json);
    let reconcile = RunRequest::Reconcile {
        shop: shop(),
        cursor: None,
    };
    assert_eq!(store.get_checkpoint(&reconcile.job()).await.unwrap(), None);

    let mut program = store.get_program(&shop()).await.unwrap().unwrap();
    program.value.platform_sync = PlatformSync::DiscountCode;
    store
        .put_program(&shop(), &program.value, program.version, ctx.now())
        .await
        .unwrap();
    let ctx = cashback_app::Context::new(
        store.clone(),
        ctx.notifier.clone(),
        ctx.codes.clone(),
        (*ctx.config).clone(),
    );
    let answer = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/platform-sync/reconcile"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.json["run"], "reconcile");
    let stored = store
        .get_checkpoint(&reconcile.job())
        .await
        .unwrap()
        .unwrap();
    let (decoded, _) = RunRequest::decode(&reconcile.job(), &stored).unwrap();
    assert_eq!(decoded, reconcile);

    let answer = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/platform-sync/backfill?restart=true"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.json["restart"], true);
    let backfill = RunRequest::Backfill {
        shop: shop(),
        restart: true,
    };
    assert!(store
        .get_checkpoint(&backfill.job())
        .await
        .unwrap()
        .is_some());

    let answer = send(
        app(&ctx),
        request(
            "POST",
            &format!("{BASE}/platform-sync/backfill?restart=maybe"),
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let answer = send(
        app(&ctx),
        request("GET", &format!("{BASE}/platform-sync"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["platform_sync"], "discount_code");
    assert_eq!(answer.json["backfill"], serde_json::Value::Null);
    assert_eq!(answer.json["platform"], "shopify");
    assert_eq!(answer.json["connected"], true);
    assert_eq!(answer.json["uninstalled_at"], serde_json::Value::Null);
    assert_eq!(answer.json["last_synced_at"], serde_json::Value::Null);
    assert_eq!(answer.json["parked"]["count"], 0);
    assert_eq!(answer.json["reconcile"], serde_json::Value::Null);

    // The sync's record, as the platform-sync function notes it, is shown.
    store
        .note_sync(
            &shop(),
            &cashback_app::store::SyncNote {
                parked: Some(cashback_app::store::ParkedSyncs {
                    count: 2,
                    reason: "throttled".into(),
                    at: ctx.now(),
                }),
                reconcile: Some(cashback_app::store::ReconcileStep {
                    first: true,
                    finished: false,
                    at: ctx.now(),
                    checked: 40,
                    drifted: 3,
                    repaired: 3,
                    failed: 0,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .set_shop_uninstalled(&shop(), Some(ctx.now()))
        .await
        .unwrap();
    let answer = send(
        app(&ctx),
        request("GET", &format!("{BASE}/platform-sync"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["connected"], false, "{}", answer.json);
    assert!(answer.json["uninstalled_at"].is_string(), "{}", answer.json);
    assert_eq!(answer.json["parked"]["count"], 2);
    assert_eq!(answer.json["parked"]["newest_reason"], "throttled");
    assert_eq!(answer.json["reconcile"]["checked"], 40);
    assert_eq!(answer.json["reconcile"]["finished"], false);
    store.set_shop_uninstalled(&shop(), None).await.unwrap();

    let answer = send(
        app(&ctx),
        request(
            "POST",
            "/v1/shops/nope.myshopify.com/platform-sync/reconcile",
            None,
            &[],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
