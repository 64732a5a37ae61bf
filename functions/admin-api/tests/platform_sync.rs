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
