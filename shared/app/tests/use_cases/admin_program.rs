//! Admin use cases: the program (validation naming every field, kept
//! versions, If-Match, earned cashback never recomputed).

use crate::support::*;
use cashback_app::admin;
use cashback_app::events::handle_order_event;
use cashback_app::store::{ReadRequest, Store};
use cashback_app::AppError;
use cashback_core::ids::{CustomerId, OrderId};
use cashback_core::order::OrderEvent;
use rust_decimal_macros::dec;

fn fields_of(error: AppError) -> Vec<String> {
    match error {
        AppError::InvalidFields(fields) => fields.into_iter().map(|f| f.field).collect(),
        other => panic!("not a field error: {other:?}"),
    }
}

#[tokio::test]
async fn every_invalid_program_field_is_named() {
    let world = world(program()).await;
    let body = r#"{"currency":"USD",
        "earning":{"merchant_percent":"101","partner_match_percent":"-1"},
        "issuance":{"type":"pending","days":400},
        "tiers":[{"name":"a","min_lifetime_spend":"100","percent":"5"},
                 {"name":"b","min_lifetime_spend":"50","percent":"5"}]}"#;
    let error = admin::put_program(&world.ctx, &shop(), body, None, "admin-token", t0())
        .await
        .unwrap_err();
    assert_eq!(
        fields_of(error),
        [
            "earning.merchant_percent",
            "earning.partner_match_percent",
            "tiers[1].min_lifetime_spend",
            "issuance.days"
        ]
    );
    // A misspelt setting is named, not ignored.
    let error = admin::put_program(
        &world.ctx,
        &shop(),
        r#"{"currency":"USD","merchant_pct":"5"}"#,
        None,
        "admin-token",
        t0(),
    )
    .await
    .unwrap_err();
    assert_eq!(fields_of(error), ["merchant_pct"]);
    // The ledger is kept in the shop's currency.
    let error = admin::put_program(
        &world.ctx,
        &shop(),
        r#"{"currency":"EUR"}"#,
        None,
        "admin-token",
        t0(),
    )
    .await
    .unwrap_err();
    assert_eq!(fields_of(error), ["currency"]);
    // Nothing was replaced.
    let current = admin::get_program(&world.ctx, &shop()).await.unwrap();
    assert_eq!(current.version, 1);
}

#[tokio::test]
async fn a_replaced_program_keeps_its_previous_version_and_honours_if_match() {
    let world = world(program()).await;
    let body = r#"{"currency":"USD","earning":{"merchant_percent":"7"}}"#;
    let replaced = admin::put_program(&world.ctx, &shop(), body, Some(1), "admin-token", t0())
        .await
        .unwrap();
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.program.earning.merchant_percent, dec!(7));
    let first = admin::get_program_version(&world.ctx, &shop(), 1)
        .await
        .unwrap();
    assert_eq!(first.program.earning.merchant_percent, dec!(10));
    // Someone else's change in between: the stale If-Match is refused.
    let stale = admin::put_program(&world.ctx, &shop(), body, Some(1), "admin-token", t0())
        .await
        .unwrap_err();
    assert!(matches!(stale, AppError::Conflict(_)), "{stale:?}");
    // Without If-Match it replaces whatever is current.
    let again = admin::put_program(&world.ctx, &shop(), body, None, "admin-token", t0())
        .await
        .unwrap();
    assert_eq!(again.version, 3);
    assert!(matches!(
        admin::get_program_version(&world.ctx, &shop(), 9).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_new_program_applies_to_later_orders_and_earned_cashback_is_never_recomputed() {
    let world = world(program()).await;
    let ann = || order("o-1", "ann", vec![line("1", "100.00", 1)]);
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(ann()), t0())
        .await
        .unwrap();
    admin::put_program(
        &world.ctx,
        &shop(),
        r#"{"currency":"USD","earning":{"merchant_percent":"20"}}"#,
        None,
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    let later = order("o-2", "ann", vec![line("1", "100.00", 1)]);
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(later), t0())
        .await
        .unwrap();
    let customer = CustomerId::parse("ann").unwrap();
    let view = admin::get_customer(&world.ctx, &shop(), &customer)
        .await
        .unwrap();
    assert_eq!(
        view.pending,
        dec!(30.00),
        "10.00 under the old, 20.00 under the new"
    );
    let read = world
        .store
        .read(
            &shop(),
            &ReadRequest {
                order: Some(OrderId::parse("o-1").unwrap()),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    let earned = read.order.unwrap().value.earned.unwrap();
    assert_eq!(earned.total, usd("10.00"));
}

#[tokio::test]
async fn an_unknown_shop_has_no_program_to_read_or_replace() {
    let world = world(program()).await;
    let other = cashback_core::ids::ShopId::parse("nobody.myshopify.com").unwrap();
    assert!(matches!(
        admin::get_program(&world.ctx, &other).await,
        Err(AppError::UnknownShop(_))
    ));
    assert!(matches!(
        admin::put_program(
            &world.ctx,
            &other,
            r#"{"currency":"USD"}"#,
            None,
            "admin-token",
            t0()
        )
        .await,
        Err(AppError::UnknownShop(_))
    ));
}
