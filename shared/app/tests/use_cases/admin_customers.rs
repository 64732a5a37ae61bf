//! Customers through the admin use cases: look-ups, the ledger in pages, a
//! new code, profile properties and their export; the catalog import and
//! shop onboarding.

use crate::support::*;
use cashback_app::admin::{self, Lookup};
use cashback_app::checkout::validate;
use cashback_app::events::handle_order_event;
use cashback_app::store::{ReadRequest, Store};
use cashback_app::AppError;
use cashback_core::ids::{Code, CustomerId, Email, ProductId};
use cashback_core::order::OrderEvent;
use rust_decimal_macros::dec;

async fn with_customers(n: usize) -> World {
    let world = world(program()).await;
    for i in 0..n {
        let placed = order(
            &format!("o-{i}"),
            &format!("c{i}"),
            vec![line("1", "10.00", 1)],
        );
        handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed), t0())
            .await
            .unwrap();
    }
    world
}

fn id(raw: &str) -> CustomerId {
    CustomerId::parse(raw).unwrap()
}

#[tokio::test]
async fn a_customer_is_found_by_id_email_or_code() {
    let world = with_customers(2).await;
    let by_id = admin::get_customer(&world.ctx, &shop(), &id("c1"))
        .await
        .unwrap();
    assert_eq!(by_id.pending, dec!(1.00));
    let code = by_id.code.clone().unwrap();
    let by_email = admin::lookup_customer(
        &world.ctx,
        &shop(),
        &Lookup::Email(Email::parse("C1@Example.com").unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(by_email.customer_id, id("c1"));
    let by_code = admin::lookup_customer(
        &world.ctx,
        &shop(),
        &Lookup::Code(Code::parse(&code.to_lowercase()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(by_code.customer_id, id("c1"));
    assert!(matches!(
        admin::get_customer(&world.ctx, &shop(), &id("nobody")).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_ledger_pages_newest_first_with_a_cursor() {
    let world = with_customers(1).await;
    for n in 0..4 {
        admin::adjust(
            &world.ctx,
            &shop(),
            &id("c0"),
            r#"{"amount":"1.00","reason":"thanks"}"#,
            &format!("k{n}"),
            "admin-token",
            t0() + chrono::Duration::minutes(n),
        )
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin::ledger(&world.ctx, &shop(), &id("c0"), cursor, Some(2))
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "the earning and four credits");
    assert!(seen.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
}

#[tokio::test]
async fn a_regenerated_code_replaces_the_old_one_which_stops_working() {
    let world = world(program()).await;
    seed_balance(&world, &program(), "ann", "CB-LEAKED", "30.00").await;
    let view = admin::regenerate_code(&world.ctx, &shop(), &id("ann"), "admin-token")
        .await
        .unwrap();
    let new_code = view.code.unwrap();
    assert_ne!(new_code, "CB-LEAKED");
    let old = validate(
        &world.ctx,
        &shop(),
        &validate_request("CB-LEAKED", Some("ann"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(!old.valid, "the leaked code no longer works");
    assert_eq!(old.kind, None, "answered as an unknown code");
    let new = validate(
        &world.ctx,
        &shop(),
        &validate_request(&new_code, Some("ann"), "100.00"),
        "test",
        t0(),
    )
    .await
    .unwrap();
    assert!(new.valid, "{new:?}");
    assert!(matches!(
        admin::lookup_customer(
            &world.ctx,
            &shop(),
            &Lookup::Code(Code::parse("cb-leaked").unwrap())
        )
        .await,
        Err(AppError::NotFound(_))
    ));
    assert_eq!(stored_account(&world, "ann").await.available, usd("30.00"));
}

#[tokio::test]
async fn profile_properties_are_read_one_by_one_and_exported_in_pages() {
    let world = with_customers(5).await;
    let one = admin::profile(&world.ctx, &shop(), &id("c3"))
        .await
        .unwrap();
    let json = serde_json::to_value(&one).unwrap();
    assert_eq!(json["properties"]["cashback_pending_balance"], "1.00");
    assert_eq!(json["properties"]["cashback_balance"], "0.00");
    assert_eq!(json["properties"]["cashback_lifetime_issued"], "1.00");
    assert!(json["properties"]["cashback_discount_code"]
        .as_str()
        .is_some_and(|c| c.starts_with("CB-")));
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = admin::export_profiles(&world.ctx, &shop(), cursor, Some(2))
            .await
            .unwrap();
        ids.extend(page.items.iter().map(|p| p.customer_id.to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4"]);
}

#[tokio::test]
async fn an_imported_catalog_is_read_with_the_order() {
    let world = world(program()).await;
    let imported = admin::import_catalog(
        &world.ctx,
        &shop(),
        r#"{"products": [
            {"product_id": "p-1", "collection_ids": ["sale"], "compare_at_price": "30.00"},
            {"product_id": "p-2"}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(imported.imported, 2);
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                products: vec![ProductId::parse("p-1").unwrap()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let product = &read.products[&ProductId::parse("p-1").unwrap()];
    assert_eq!(product.compare_at_price, Some(usd("30.00")));
    let mut sold = line("1", "20.00", 1);
    product.enrich(&mut sold);
    assert!(sold.on_sale());
    match admin::import_catalog(
        &world.ctx,
        &shop(),
        r#"{"products": [{"product_id": "p-3", "compare_at_price": "1.234"}]}"#,
    )
    .await
    {
        Err(AppError::InvalidFields(fields)) => {
            assert_eq!(fields[0].field, "products[0].compare_at_price");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_shop_is_onboarded_once_with_a_secret_reference_never_a_secret() {
    let world = world(program()).await;
    let body = r#"{"shop": "New.myshopify.com", "platform": "shopify", "name": "New",
        "currency": "EUR", "webhook_secret_ref": "ssm:/cashback/new/webhook",
        "program": {"currency": "EUR", "earning": {"merchant_percent": "3"}}}"#;
    let created = admin::create_shop(&world.ctx, body, "hash", t0())
        .await
        .unwrap();
    assert_eq!(created.shop.as_str(), "new.myshopify.com");
    assert_eq!(created.program_version, Some(1));
    let stored = world.store.get_shop(&created.shop).await.unwrap().unwrap();
    assert_eq!(stored.api_key_hash, "hash");
    assert!(matches!(
        admin::create_shop(&world.ctx, body, "hash", t0()).await,
        Err(AppError::Conflict(_))
    ));
    let secret = r#"{"shop": "x.myshopify.com", "platform": "shopify", "name": "X",
        "currency": "USD", "webhook_secret_ref": "shpss_0123456789abcdef",
        "program": {"currency": "EUR"}}"#;
    match admin::create_shop(&world.ctx, secret, "hash", t0()).await {
        Err(AppError::InvalidFields(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["webhook_secret_ref", "program.currency"]);
        }
        other => panic!("{other:?}"),
    }
}
