//! Generic-schema fixtures, signed and parsed end to end, and its strictness.

use crate::common::*;
use cashback_core::earn::eligible_base;
use cashback_core::ids::{CollectionId, Email, LineId};
use cashback_core::money::Currency;
use cashback_core::order::{DiscountKind, OrderEvent, RefundBasis, RefundedLine};
use cashback_core::program::Exclusions;
use cashback_platforms::{
    generic, sign_generic, Headers, Platform, Received, SignatureError, WebhookError,
};
use chrono::Duration;

#[test]
fn a_generic_paid_order_maps_one_to_one_onto_the_core_order() {
    let body = fixture("generic_order_paid.json");
    let headers = generic_headers(&body);
    let delivery =
        generic::parse_webhook(&headers, &body, &[SECRET], Currency::GBP, generic_now()).unwrap();
    assert_eq!(delivery.platform, Platform::Generic);
    assert_eq!(delivery.shop.as_str(), "demo-store.example");
    assert_eq!(delivery.topic, "order.paid");
    assert_eq!(
        delivery.transport.event_id.as_deref(),
        Some("evt_01HZX4K2M7Q9")
    );
    let [OrderEvent::Paid(order)] = delivery.events() else {
        panic!("expected one Paid, got {:?}", delivery.events());
    };
    assert_eq!(order.order_id.as_str(), "GB-20931");
    assert_eq!(order.currency, Currency::GBP);
    assert_eq!(
        order.customer.id.as_ref().map(|c| c.as_str()),
        Some("cust-8812")
    );
    assert_eq!(
        order.customer.email,
        Some(Email::parse("olivia.hart@example.co.uk").unwrap())
    );
    assert_eq!(order.subtotal, gbp("90.00"));
    assert_eq!(order.shipping, gbp("4.95"));
    assert_eq!(order.total, gbp("94.95"));
    assert_eq!(
        order.checkout_id.as_ref().map(|c| c.as_str()),
        Some("chk_7781")
    );
    assert_eq!(order.payment_methods, vec!["card".to_string()]);
    assert_eq!(
        order.referral_code.as_ref().map(|c| c.as_str()),
        Some("olivia-friend")
    );
    assert_eq!(order.occurred_at, at("2026-06-01T12:00:00Z"));
    assert_eq!(order.discount_codes[0].kind, DiscountKind::Product);
    assert_eq!(order.discount_codes[0].amount, gbp("8.00"));

    let lamp = &order.lines[0];
    assert_eq!(lamp.line_id.as_str(), "GB-20931-1");
    assert_eq!(
        lamp.variant_id.as_ref().map(|v| v.as_str()),
        Some("v-100-s")
    );
    assert_eq!(lamp.unit_price, gbp("80.00"));
    assert_eq!(lamp.discount, gbp("8.00"));
    assert_eq!(lamp.included_tax, Some(gbp("12.00")));
    assert_eq!(lamp.compare_at_price, Some(gbp("95.00")));
    assert!(lamp.on_sale());
    assert_eq!(
        lamp.collection_ids,
        vec![CollectionId::parse("lighting").unwrap()]
    );
    let bulbs = &order.lines[1];
    assert_eq!(bulbs.quantity, 4);
    assert_eq!(bulbs.variant_id, None);
    assert!(!bulbs.gift_card);

    // (80 - 8 - 12 VAT) + (4 x 4.50 - 3 VAT).
    assert_eq!(
        eligible_base(&order.lines, &Exclusions::default(), Currency::GBP).unwrap(),
        gbp("75.00")
    );
    let no_sale_items = Exclusions {
        sale_items: true,
        ..Exclusions::default()
    };
    assert_eq!(
        eligible_base(&order.lines, &no_sale_items, Currency::GBP).unwrap(),
        gbp("15.00")
    );
}

#[test]
fn a_generic_refund_names_lines() {
    let body = fixture("generic_order_refunded.json");
    let headers = generic_headers(&body);
    let received = Platform::Generic
        .parse_webhook(&headers, &body, &[SECRET], Currency::GBP, generic_now())
        .unwrap();
    let Received::Delivery(delivery) = received else {
        panic!("generic never pings");
    };
    let [OrderEvent::Refunded(refund)] = delivery.events() else {
        panic!("expected one Refunded, got {:?}", delivery.events());
    };
    assert_eq!(refund.refund_id.as_str(), "GB-20931-R1");
    assert_eq!(refund.order_id.as_str(), "GB-20931");
    assert_eq!(refund.occurred_at, at("2026-06-05T07:30:00Z"));
    assert_eq!(
        refund.basis,
        RefundBasis::Lines {
            lines: vec![RefundedLine {
                line_id: LineId::parse("GB-20931-2").unwrap(),
                quantity: 2
            }]
        }
    );
}

fn parse_json(json: &str) -> Result<Vec<OrderEvent>, WebhookError> {
    let headers = Headers::new().with("X-Cashback-Shop", "demo-store.example");
    generic::parse(&headers, json.as_bytes(), Currency::GBP).map(|d| d.events().to_vec())
}

#[test]
fn a_refund_by_amount_is_accepted() {
    let events = parse_json(
        r#"{"event_id": "e1", "type": "order.refunded", "shop": "demo-store.example",
            "occurred_at": "2026-06-05T08:30:00Z",
            "refund": {"refund_id": "r2", "order_id": "GB-20931", "amount": "12.50"}}"#,
    )
    .unwrap();
    let [OrderEvent::Refunded(refund)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(
        refund.basis,
        RefundBasis::Amount {
            amount: gbp("12.50")
        }
    );
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let err = parse_json(
        r#"{"event_id": "e1", "type": "order.refunded", "shop": "demo-store.example",
            "occurred_at": "2026-06-05T08:30:00Z",
            "refund": {"refund_id": "r2", "order_id": "o", "amount": "1.00", "reason": "x"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(err.to_string().contains("unknown field `reason`"), "{err}");
}

#[test]
fn missing_fields_and_bad_values_are_named() {
    let base = String::from_utf8(fixture("generic_order_paid.json")).unwrap();
    let cases = [
        (
            base.replace("\"unit_price\": \"80.00\"", "\"unit_price\": \"80.001\""),
            "order.lines[0].unit_price is not a valid amount",
        ),
        (
            base.replace("\"subtotal\": \"90.00\",", ""),
            "missing field `subtotal`",
        ),
        (
            base.replace("\"currency\": \"GBP\"", "\"currency\": \"EUR\""),
            "order.currency is in EUR, but the shop keeps its ledger in GBP",
        ),
        (
            base.replace("\"type\": \"order.paid\"", "\"type\": \"order.shipped\""),
            "type is invalid: unknown event type \"order.shipped\"",
        ),
        (
            base.replace("olivia.hart@example.co.uk", "olivia"),
            "order.customer.email is not a valid id",
        ),
        (
            base.replace("\"kind\": \"product\"", "\"kind\": \"bogus\""),
            "unknown variant `bogus`",
        ),
        (
            base.replace("\"discount\": \"8.00\"", "\"discount\": \"-8.00\""),
            "order.lines[0].discount is invalid: must not be negative",
        ),
        (
            base.replace("\"type\": \"order.paid\"", "\"type\": \"order.refunded\""),
            "order is invalid: not allowed for type order.refunded",
        ),
    ];
    for (json, expected) in cases {
        let err = parse_json(&json).unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?}, got {err}"
        );
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn the_body_must_be_for_the_shop_in_the_header() {
    let body = fixture("generic_order_paid.json");
    let headers = Headers::new().with("X-Cashback-Shop", "other-store.example");
    let err = generic::parse(&headers, &body, Currency::GBP).unwrap_err();
    assert!(matches!(err, WebhookError::ShopMismatch { .. }), "{err}");
}

#[test]
fn a_delivery_signed_too_long_ago_is_refused() {
    let body = fixture("generic_order_paid.json");
    let signed_at = GENERIC_NOW - 301;
    let headers = Headers::new()
        .with("X-Cashback-Shop", "demo-store.example")
        .with(
            "X-Cashback-Signature",
            sign_generic(SECRET.as_bytes(), signed_at, &body),
        );
    let err = generic::verify(&headers, &body, &[SECRET], generic_now()).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::Signature(SignatureError::OutsideTolerance { .. })
    ));
    assert_eq!(err.status(), 401);
    // The same request was fine when it was fresh.
    let then = generic_now() - Duration::seconds(301);
    assert!(generic::verify(&headers, &body, &[SECRET], then).is_ok());
}
