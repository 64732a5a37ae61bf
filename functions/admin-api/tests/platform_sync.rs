//! The platform-sync routes through the admin router: a reconcile or a
//! backfill is asked for (202) and written where the sync function sees
//! it; a shop whose program keeps its codes off the platform is refused.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use cashback_app::platform_codes::{PlatformSync, RunRequest};
use cashback_app::store::Store;
use cashback_core::platform_code::ExistingStoreCredit;
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

/// The demo shop with its codes synced, and another shop, both uninstalled.
async fn two_uninstalled_shops(store: Arc<MemoryStore>) -> cashback_app::Context {
    let ctx = seed(store.clone()).await;
    let mut synced = program();
    synced.platform_sync = PlatformSync::DiscountCode;
    store
        .put_program(&shop(), &synced, 1, ctx.now())
        .await
        .unwrap();
    let mut other =
        cashback_test_support::fixtures::demo_shop_record("env:OTHER", String::new(), ctx.now());
    other.shop = other_shop();
    store.create_shop(&other).await.unwrap();
    store
        .put_program(&other_shop(), &synced, 0, ctx.now())
        .await
        .unwrap();
    for shop in [shop(), other_shop()] {
        cashback_app::compliance::uninstall(&ctx, &shop, ctx.now())
            .await
            .unwrap();
    }
    ctx
}

fn other_shop() -> cashback_core::ids::ShopId {
    cashback_core::ids::ShopId::parse("other.myshopify.com").unwrap()
}

#[tokio::test]
async fn a_reinstall_resumes_syncing_and_asks_for_a_reconcile_of_that_shop_only() {
    let store = Arc::new(MemoryStore::new());
    let ctx = two_uninstalled_shops(store.clone()).await;
    let uninstalled_at = store.shop_uninstalled_at(&shop()).await.unwrap().unwrap();
    let reconcile = RunRequest::Reconcile {
        shop: shop(),
        cursor: None,
    };

    // Without the admin token: refused, nothing changes.
    let mut anonymous = request("POST", &format!("{BASE}/reinstall"), None, &[]);
    anonymous.headers_mut().remove("authorization");
    let answer = send(app(&ctx), anonymous).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    assert!(store.shop_uninstalled_at(&shop()).await.unwrap().is_some());

    let answer = send(
        app(&ctx),
        request("POST", &format!("{BASE}/reinstall"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(
        answer.json["uninstalled_at"],
        serde_json::to_value(uninstalled_at).unwrap()
    );
    assert_eq!(answer.json["reconcile"]["run"], "reconcile");
    assert_eq!(store.shop_uninstalled_at(&shop()).await.unwrap(), None);
    assert!(!cashback_app::compliance::syncing_stopped(&ctx, &shop())
        .await
        .unwrap());
    let stored = store
        .get_checkpoint(&reconcile.job())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        RunRequest::decode(&reconcile.job(), &stored).unwrap().0,
        reconcile
    );
    // The other shop stays uninstalled, and no run is asked for it.
    assert!(store
        .shop_uninstalled_at(&other_shop())
        .await
        .unwrap()
        .is_some());
    let other_run = RunRequest::Reconcile {
        shop: other_shop(),
        cursor: None,
    };
    assert_eq!(store.get_checkpoint(&other_run.job()).await.unwrap(), None);

    // Again: the shop is installed, nothing more is done.
    let answer = send(
        app(&ctx),
        request("POST", &format!("{BASE}/reinstall"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["uninstalled_at"], serde_json::Value::Null);
    assert_eq!(answer.json["reconcile"], serde_json::Value::Null);

    let answer = send(
        app(&ctx),
        request("POST", "/v1/shops/nope.myshopify.com/reinstall", None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.json);
}

#[tokio::test]
async fn a_reinstall_of_a_shop_whose_codes_stay_off_the_platform_asks_for_no_run() {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    cashback_app::compliance::uninstall(&ctx, &shop(), ctx.now())
        .await
        .unwrap();
    let answer = send(
        app(&ctx),
        request("POST", &format!("{BASE}/reinstall"), None, &[]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert!(answer.json["uninstalled_at"].is_string(), "{}", answer.json);
    assert_eq!(answer.json["reconcile"], serde_json::Value::Null);
    assert_eq!(store.shop_uninstalled_at(&shop()).await.unwrap(), None);
}

/// Store-credit mode asks the merchant what the store credit customers
/// already hold is (theirs, or the cashback moved from another app): a
/// program that does not say is refused, naming the field, and the
/// program in force stays.
#[tokio::test]
async fn store_credit_mode_needs_a_word_on_the_store_credit_already_held() {
    let store = Arc::new(MemoryStore::new());
    let ctx = seed(store.clone()).await;
    let current = send(
        app(&ctx),
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    assert_eq!(current.status, StatusCode::OK, "{}", current.json);
    let mut program = current.json["program"].clone();
    if program.is_null() {
        program = current.json.clone();
    }
    program["platform_sync"] = "store_credit".into();
    let redemption = &mut program["redemption"];
    redemption["combine_with_order"] = true.into();
    redemption["combine_with_shipping"] = true.into();
    redemption["combine_with_product"] = true.into();
    redemption["min_order_subtotal"] = "0".into();

    let refused = send(
        app(&ctx),
        request(
            "PUT",
            &format!("{BASE}/program"),
            Some(&program.to_string()),
            &[],
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    assert_eq!(
        refused.json["error"]["fields"][0]["field"],
        "existing_store_credit"
    );
    let kept = store.get_program(&shop()).await.unwrap().unwrap();
    assert_eq!(kept.value.platform_sync, PlatformSync::Off);

    for (choice, expected) in [
        ("kept_apart", ExistingStoreCredit::KeptApart),
        (
            "counted_as_cashback",
            ExistingStoreCredit::CountedAsCashback,
        ),
    ] {
        program["existing_store_credit"] = choice.into();
        let accepted = send(
            app(&ctx),
            request(
                "PUT",
                &format!("{BASE}/program"),
                Some(&program.to_string()),
                &[],
            ),
        )
        .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.json);
        let saved = store.get_program(&shop()).await.unwrap().unwrap();
        assert_eq!(saved.value.platform_sync, PlatformSync::StoreCredit);
        assert_eq!(saved.value.existing_store_credit, Some(expected));
    }
}
