//! Manual adjustments, idempotent as Stripe's API is: the same key and
//! body answer the first answer and apply once; the same key with another
//! body is a conflict.

use crate::support::jobs::ledger_of;
use crate::support::*;
use cashback_app::admin;
use cashback_app::events::handle_order_event;
use cashback_app::AppError;
use cashback_core::ids::CustomerId;
use cashback_core::ledger::EntryKind;
use cashback_core::order::OrderEvent;
use cashback_core::program::Issuance;
use rust_decimal_macros::dec;

async fn with_ann() -> World {
    let mut program = program();
    program.issuance = Issuance::Immediate;
    let world = world(program).await;
    let placed = order("o-1", "ann", vec![line("1", "100.00", 1)]);
    handle_order_event(&world.ctx, &shop(), &OrderEvent::Paid(placed), t0())
        .await
        .unwrap();
    world
}

fn ann() -> CustomerId {
    CustomerId::parse("ann").unwrap()
}

#[tokio::test]
async fn the_same_key_and_body_return_the_first_answer_and_apply_once() {
    let world = with_ann().await;
    let body = r#"{"amount":"5.00","reason":"late delivery"}"#;
    let first = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        body,
        "key-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(first.status, 201);
    assert!(!first.replayed);
    assert_eq!(first.body["customer"]["available"], "15.00");
    // Whitespace aside, the same request: the first answer, nothing applied.
    let retry = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        r#"{ "reason": "late delivery", "amount": "5.00" }"#,
        "key-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert!(retry.replayed);
    assert_eq!((retry.status, &retry.body), (first.status, &first.body));
    let entries = ledger_of(&world.store, "ann").await;
    let adjustments: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Adjust)
        .collect();
    assert_eq!(adjustments.len(), 1);
    assert_eq!(
        adjustments[0].note.as_deref(),
        Some("late delivery (by admin-token)")
    );
    let view = admin::get_customer(&world.ctx, &shop(), &ann())
        .await
        .unwrap();
    assert_eq!(view.available, dec!(15.00));
    // Another key is another adjustment.
    admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        body,
        "key-2",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    let view = admin::get_customer(&world.ctx, &shop(), &ann())
        .await
        .unwrap();
    assert_eq!(view.available, dec!(20.00));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_conflict() {
    let world = with_ann().await;
    admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"5.00","reason":"goodwill"}"#,
        "key-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    for other in [
        r#"{"amount":"6.00","reason":"goodwill"}"#,
        r#"{"amount":"5.00","reason":"another reason"}"#,
    ] {
        let error = admin::adjust(
            &world.ctx,
            &shop(),
            &ann(),
            other,
            "key-1",
            "admin-token",
            t0(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, AppError::Conflict(_)), "{error:?}");
    }
    let view = admin::get_customer(&world.ctx, &shop(), &ann())
        .await
        .unwrap();
    assert_eq!(view.available, dec!(15.00));
}

#[tokio::test]
async fn a_debit_the_ledger_refuses_is_answered_the_same_under_its_key() {
    let world = with_ann().await;
    let debit = r#"{"amount":"-50.00","reason":"chargeback"}"#;
    let refused = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        debit,
        "debit-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["error"]["code"], "ledger_refused");
    // Even once the balance would allow it, the key keeps its answer.
    admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"60.00","reason":"top up"}"#,
        "credit-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    let again = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        debit,
        "debit-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert!(again.replayed);
    assert_eq!(again.status, 422);
    // A debit within the balance is applied.
    let taken = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        debit,
        "debit-2",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(taken.status, 201);
    assert_eq!(taken.body["customer"]["available"], "20.00");
}

#[tokio::test]
async fn a_bad_adjustment_names_its_fields_and_stores_nothing() {
    let world = with_ann().await;
    let error = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"1.234","reason":"  "}"#,
        "key-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap_err();
    match error {
        AppError::InvalidFields(fields) => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["amount", "reason"]);
        }
        other => panic!("{other:?}"),
    }
    for (body, key, expected) in [
        (r#"{"amount":"0","reason":"x"}"#, "key-1", "amount"),
        (r#"{"amount":"1.00"}"#, "key-1", "reason"),
        (r#"{"amount":"1.00","reason":"x"}"#, "", "Idempotency-Key"),
    ] {
        match admin::adjust(&world.ctx, &shop(), &ann(), body, key, "admin-token", t0()).await {
            Err(AppError::InvalidFields(fields)) => assert_eq!(fields[0].field, expected),
            other => panic!("{body}: {other:?}"),
        }
    }
    // The key was not used up by the refusals above.
    let fine = admin::adjust(
        &world.ctx,
        &shop(),
        &ann(),
        r#"{"amount":"1.00","reason":"fixed"}"#,
        "key-1",
        "admin-token",
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(fine.status, 201);
    let nobody = CustomerId::parse("nobody").unwrap();
    assert!(matches!(
        admin::adjust(
            &world.ctx,
            &shop(),
            &nobody,
            r#"{"amount":"1.00","reason":"x"}"#,
            "key-9",
            "admin-token",
            t0()
        )
        .await,
        Err(AppError::NotFound(_))
    ));
}
