//! Shopify fixtures, signed and parsed end to end, checked field by field.

use crate::common::*;
use cashback_core::earn::eligible_base;
use cashback_core::ids::{
    CheckoutId, Code, CustomerId, Email, LineId, OrderId, ProductId, RefundId,
};
use cashback_core::money::Currency;
use cashback_core::order::{DiscountKind, Order, OrderEvent, RefundBasis, RefundedLine};
use cashback_core::program::Exclusions;
use cashback_platforms::{shopify, Delivery, Outcome, Platform, SignatureError, WebhookError};

fn parse(topic: &str, fixture_name: &str, currency: Currency) -> Delivery {
    let body = fixture(fixture_name);
    let headers = shopify_headers(topic, &body);
    shopify::parse_webhook(&headers, &body, &[SECRET], currency).unwrap()
}

fn only_event(delivery: &Delivery) -> &OrderEvent {
    match delivery.events() {
        [event] => event,
        other => panic!("expected one event, got {other:?}"),
    }
}

fn paid_order(delivery: &Delivery) -> &Order {
    match only_event(delivery) {
        OrderEvent::Paid(order) => order,
        other => panic!("expected Paid, got {other:?}"),
    }
}

#[test]
fn a_paid_order_maps_every_field_the_engine_uses() {
    let delivery = parse("orders/paid", "shopify_orders_paid.json", Currency::USD);
    assert_eq!(delivery.platform, Platform::Shopify);
    assert_eq!(
        delivery.shop.as_str(),
        "northridge-outfitters.myshopify.com"
    );
    assert_eq!(delivery.topic, "orders/paid");
    assert_eq!(
        delivery.transport.webhook_id.as_deref(),
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    );
    assert_eq!(
        delivery.transport.event_id.as_deref(),
        Some("98880550-7158-44d4-b7cd-2c97c8a091b5")
    );
    assert_eq!(
        delivery.transport.triggered_at,
        Some(at("2026-03-14T14:22:33.123Z"))
    );

    let order = paid_order(&delivery);
    // Above 2^53: must not have gone through a float.
    assert_eq!(
        order.order_id,
        OrderId::parse("6101234567890123456").unwrap()
    );
    assert_eq!(order.currency, Currency::USD);
    assert_eq!(
        order.customer.id,
        Some(CustomerId::parse("7301234567001").unwrap())
    );
    assert_eq!(
        order.customer.email,
        Some(Email::parse("maya.okafor@example.net").unwrap())
    );
    assert_eq!(order.subtotal, usd("177.00"));
    assert_eq!(order.shipping, usd("8.00"));
    assert_eq!(order.total, usd("192.62"));
    assert_eq!(
        order.checkout_id,
        Some(CheckoutId::parse("36512345678901").unwrap())
    );
    assert_eq!(order.payment_methods, vec!["shopify_payments".to_string()]);
    assert_eq!(
        order.referral_code,
        Some(Code::parse("runclub-ana").unwrap())
    );
    assert_eq!(order.occurred_at, at("2026-03-14T14:22:31Z"));
    assert_eq!(order.placed_at, Some(at("2026-03-14T14:22:31Z")));

    assert_eq!(order.discount_codes.len(), 1);
    let code = &order.discount_codes[0];
    assert_eq!(code.code, Code::parse("TRAIL15").unwrap());
    assert_eq!(code.amount, usd("18.00"));
    // Targets only the entitled trail shoes: a product discount.
    assert_eq!(code.kind, DiscountKind::Product);

    assert_eq!(order.lines.len(), 3);
    let shoe = &order.lines[0];
    assert_eq!(shoe.line_id, LineId::parse("15501234567801").unwrap());
    assert_eq!(
        shoe.product_id,
        Some(ProductId::parse("8801234567001").unwrap())
    );
    assert_eq!(
        shoe.variant_id.as_ref().map(|v| v.as_str()),
        Some("4401234567001")
    );
    assert_eq!(shoe.sku.as_deref(), Some("TRL-RUN-95"));
    assert_eq!(shoe.vendor.as_deref(), Some("Northridge"));
    assert_eq!(shoe.quantity, 1);
    assert_eq!(shoe.unit_price, usd("120.00"));
    // total_discount says 0.00; the allocation says 18.00.
    assert_eq!(shoe.discount, usd("18.00"));
    assert_eq!(shoe.included_tax, None, "US prices exclude tax");
    assert!(!shoe.gift_card);
    assert_eq!(shoe.compare_at_price, None);

    let socks = &order.lines[1];
    assert_eq!(socks.quantity, 2);
    assert_eq!(socks.unit_price, usd("12.50"));
    assert_eq!(socks.discount, usd("0.00"));
    assert_eq!(socks.vendor.as_deref(), Some("Woolly & Co"));

    let gift_card = &order.lines[2];
    assert!(gift_card.gift_card);
    assert_eq!(gift_card.sku, None, "an empty sku is no sku");
    assert_eq!(gift_card.unit_price, usd("50.00"));

    // 120 - 18 + 2 x 12.50; the gift card, shipping and tax do not earn.
    assert_eq!(
        eligible_base(&order.lines, &Exclusions::default(), Currency::USD).unwrap(),
        usd("127.00")
    );
}

#[test]
fn the_same_order_on_orders_fulfilled_is_dated_by_updated_at() {
    // The paid order once fulfilled (orders/fulfilled needs a fulfilled body).
    let body = String::from_utf8(fixture("shopify_orders_paid.json"))
        .unwrap()
        .replacen(
            "\"fulfillment_status\": null",
            "\"fulfillment_status\": \"fulfilled\"",
            1,
        );
    let headers = shopify_headers("orders/fulfilled", body.as_bytes());
    let delivery =
        shopify::parse_webhook(&headers, body.as_bytes(), &[SECRET], Currency::USD).unwrap();
    match only_event(&delivery) {
        OrderEvent::Fulfilled(order) => {
            assert_eq!(order.occurred_at, at("2026-03-16T13:05:12Z"));
            // Still placed when it was paid (`processed_at`).
            assert_eq!(order.placed_at, Some(at("2026-03-14T14:22:31Z")));
            assert_eq!(order.total, usd("192.62"));
        }
        other => panic!("expected Fulfilled, got {other:?}"),
    }
}

#[test]
fn a_guest_order_falls_back_to_the_contact_email_and_nets_out_included_tax() {
    let delivery = parse(
        "orders/paid",
        "shopify_orders_paid_guest.json",
        Currency::EUR,
    );
    let order = paid_order(&delivery);
    assert_eq!(order.customer.id, None);
    // `email` is "" and `customer` is null: contact_email is the address.
    let email = Email::parse("ines.moreau@example.fr").unwrap();
    assert_eq!(order.customer.email, Some(email.clone()));
    assert_eq!(
        order.customer.account_id(),
        Some(CustomerId::for_guest(&email))
    );
    assert_eq!(order.currency, Currency::EUR);
    assert_eq!(order.subtotal, eur("54.90"));
    assert_eq!(order.shipping, eur("4.90"));
    assert_eq!(order.total, eur("59.80"));
    assert_eq!(
        order.checkout_id,
        Some(CheckoutId::parse("f3e2d1c0b9a8f7e6d5c4b3a291807f6e").unwrap()),
        "checkout_token stands in when checkout_id is null"
    );
    assert_eq!(
        order.payment_methods,
        vec!["paypal".to_string(), "gift_card".to_string()]
    );
    assert_eq!(
        order.referral_code,
        Some(Code::parse("friend-anna").unwrap())
    );
    assert_eq!(order.occurred_at, at("2026-04-02T16:45:00Z"));

    let code = &order.discount_codes[0];
    assert_eq!(code.code, Code::parse("welcome5").unwrap());
    assert_eq!(code.amount, eur("5.00"));
    // Spread over all lines: an order discount.
    assert_eq!(code.kind, DiscountKind::Order);

    let bowl = &order.lines[0];
    assert_eq!(bowl.product_id, None, "a custom item has no product");
    assert_eq!(bowl.variant_id, None);
    assert_eq!(bowl.sku, None);
    assert_eq!(bowl.vendor, None);
    assert_eq!(bowl.unit_price, eur("59.90"));
    assert_eq!(bowl.discount, eur("5.00"));
    assert_eq!(bowl.included_tax, Some(eur("8.77")));
    // 59.90 - 5.00 - 8.77 of VAT.
    assert_eq!(
        eligible_base(&order.lines, &Exclusions::default(), Currency::EUR).unwrap(),
        eur("46.13")
    );
}

#[test]
fn a_cancelled_order_reads_shop_money_not_the_buyers_currency() {
    let delivery = parse(
        "orders/cancelled",
        "shopify_orders_cancelled.json",
        Currency::USD,
    );
    let order = match only_event(&delivery) {
        OrderEvent::Cancelled(order) => order,
        other => panic!("expected Cancelled, got {other:?}"),
    };
    assert_eq!(order.order_id.as_str(), "6101234567890124001");
    assert_eq!(order.currency, Currency::USD);
    // The presentment side is CAD 117.82; the ledger is in USD.
    assert_eq!(order.total, usd("86.00"));
    assert_eq!(order.subtotal, usd("80.00"));
    assert_eq!(order.shipping, usd("6.00"));
    assert_eq!(order.lines[0].unit_price, usd("40.00"));
    assert_eq!(order.lines[0].quantity, 2);
    assert!(order.discount_codes.is_empty());
    assert_eq!(order.occurred_at, at("2026-03-15T15:12:45Z"));
    assert_eq!(
        order.customer.id.as_ref().map(|c| c.as_str()),
        Some("7301234567002")
    );
    assert_eq!(
        OrderEvent::Cancelled(order.clone()).effect_key(),
        "order:6101234567890124001:cancelled"
    );
}

#[test]
fn a_partial_refund_names_the_line_and_quantity() {
    let delivery = parse(
        "refunds/create",
        "shopify_refunds_create_partial.json",
        Currency::USD,
    );
    let refund = match only_event(&delivery) {
        OrderEvent::Refunded(refund) => refund,
        other => panic!("expected Refunded, got {other:?}"),
    };
    assert_eq!(refund.refund_id, RefundId::parse("9401234567001").unwrap());
    assert_eq!(
        refund.order_id,
        OrderId::parse("6101234567890123456").unwrap()
    );
    assert_eq!(
        refund.basis,
        RefundBasis::Lines {
            lines: vec![RefundedLine {
                line_id: LineId::parse("15501234567802").unwrap(),
                quantity: 1
            }]
        }
    );
    assert_eq!(refund.occurred_at, at("2026-03-20T18:02:11Z"));
}

#[test]
fn a_shipping_only_refund_refunds_no_lines() {
    let delivery = parse(
        "refunds/create",
        "shopify_refunds_create_shipping_only.json",
        Currency::USD,
    );
    match only_event(&delivery) {
        OrderEvent::Refunded(refund) => {
            assert_eq!(refund.refund_id.as_str(), "9401234567002");
            assert_eq!(refund.basis, RefundBasis::Lines { lines: vec![] });
        }
        other => panic!("expected Refunded, got {other:?}"),
    }
}

#[test]
fn topics_the_engine_does_not_use_are_ignored_not_refused() {
    let delivery = parse("orders/updated", "shopify_orders_paid.json", Currency::USD);
    assert_eq!(delivery.topic, "orders/updated");
    assert!(matches!(delivery.outcome, Outcome::Ignored { .. }));
    assert!(delivery.events().is_empty());
}

#[test]
fn an_order_in_another_currency_than_the_shops_is_refused() {
    let body = fixture("shopify_orders_paid.json");
    let headers = shopify_headers("orders/paid", &body);
    let err = shopify::parse(&headers, &body, Currency::EUR).unwrap_err();
    assert!(
        matches!(err, WebhookError::CurrencyMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.status(), 400);
}

#[test]
fn the_shop_is_read_before_verification_and_a_forged_body_is_401() {
    let body = fixture("shopify_orders_paid.json");
    let headers = shopify_headers("orders/paid", &body);
    assert_eq!(
        shopify::shop_of(&headers).unwrap().as_str(),
        "northridge-outfitters.myshopify.com"
    );
    let forged = String::from_utf8(body)
        .unwrap()
        .replace("\"192.62\"", "\"1192.62\"");
    let err =
        shopify::parse_webhook(&headers, forged.as_bytes(), &[SECRET], Currency::USD).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::Signature(SignatureError::Mismatch)
    ));
    assert_eq!(err.status(), 401);
}

#[test]
fn the_events_style_unprefixed_headers_are_accepted() {
    let body = fixture("shopify_refunds_create_partial.json");
    let headers = cashback_platforms::Headers::new()
        .with("shopify-topic", "refunds/create")
        .with("shopify-shop-domain", "northridge-outfitters.myshopify.com")
        .with(
            "shopify-hmac-sha256",
            cashback_platforms::sign_base64(SECRET.as_bytes(), &body),
        );
    let delivery = shopify::parse_webhook(&headers, &body, &[SECRET], Currency::USD).unwrap();
    assert_eq!(delivery.events().len(), 1);
}

#[test]
fn missing_pieces_are_named_in_the_error() {
    let body = fixture("shopify_orders_paid.json");
    let no_topic = cashback_platforms::Headers::new().with(
        "X-Shopify-Shop-Domain",
        "northridge-outfitters.myshopify.com",
    );
    let err = shopify::parse(&no_topic, &body, Currency::USD).unwrap_err();
    assert_eq!(err.to_string(), "the X-Shopify-Topic header is missing");

    let headers = shopify_headers("orders/paid", &body);
    let without_total = String::from_utf8(body)
        .unwrap()
        .replace("\"total_price\"", "\"total_price_was\"")
        .replace("\"total_price_set\"", "\"total_price_set_was\"");
    let err = shopify::parse(&headers, without_total.as_bytes(), Currency::USD).unwrap_err();
    assert_eq!(err.to_string(), "total_price is missing");

    let bad_amount = String::from_utf8(fixture("shopify_orders_paid.json"))
        .unwrap()
        .replacen("\"amount\": \"120.00\"", "\"amount\": \"12O.00\"", 1);
    let err = shopify::parse(&headers, bad_amount.as_bytes(), Currency::USD).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line_items[0].price_set.shop_money.amount is not a valid amount"),
        "{err}"
    );
}

#[test]
fn a_body_relabelled_with_another_topic_is_refused() {
    for (topic, fixture_name) in [
        ("orders/cancelled", "shopify_orders_paid.json"),
        ("orders/fulfilled", "shopify_orders_paid.json"),
        ("orders/paid", "shopify_orders_cancelled.json"),
        ("orders/cancelled", "shopify_refunds_create_partial.json"),
        ("refunds/create", "shopify_orders_paid.json"),
    ] {
        let body = fixture(fixture_name);
        let headers = shopify_headers(topic, &body);
        let err = shopify::parse_webhook(&headers, &body, &[SECRET], Currency::USD).unwrap_err();
        assert_eq!(
            err.code(),
            "topic_mismatch",
            "{topic} {fixture_name}: {err}"
        );
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn a_test_order_is_marked_as_one() {
    let body = String::from_utf8(fixture("shopify_orders_paid.json"))
        .unwrap()
        .replacen("\"test\": false", "\"test\": true", 1);
    let headers = shopify_headers("orders/paid", body.as_bytes());
    let delivery =
        shopify::parse_webhook(&headers, body.as_bytes(), &[SECRET], Currency::USD).unwrap();
    assert!(delivery.test);
    assert!(!parse("orders/paid", "shopify_orders_paid.json", Currency::USD).test);
}

#[test]
fn string_ids_are_accepted_as_well_as_numbers() {
    let body = br#"{"id": "450789469", "order_id": 820982911946154508,
        "created_at": "2026-01-02T03:04:05+00:00",
        "refund_line_items": [{"line_item_id": "466157049", "quantity": 2}]}"#;
    let headers = shopify_headers("refunds/create", body);
    let delivery = shopify::parse(&headers, body, Currency::USD).unwrap();
    match only_event(&delivery) {
        OrderEvent::Refunded(refund) => {
            assert_eq!(refund.refund_id.as_str(), "450789469");
            assert_eq!(refund.order_id.as_str(), "820982911946154508");
        }
        other => panic!("expected Refunded, got {other:?}"),
    }
    let float_id = br#"{"id": 4.5e8, "order_id": 1, "created_at": "2026-01-02T03:04:05Z", "refund_line_items": []}"#;
    assert!(matches!(
        shopify::parse(&headers, float_id, Currency::USD),
        Err(WebhookError::Json { .. })
    ));
}

/// A fixture with its JSON changed, signed again.
fn parse_edited(
    topic: &str,
    fixture_name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Delivery {
    let mut value: serde_json::Value = serde_json::from_slice(&fixture(fixture_name)).unwrap();
    edit(&mut value);
    let body = serde_json::to_vec(&value).unwrap();
    let headers = shopify_headers(topic, &body);
    shopify::parse_webhook(&headers, &body, &[SECRET], Currency::USD).unwrap()
}

fn refund_basis(delivery: &Delivery) -> RefundBasis {
    match only_event(delivery) {
        OrderEvent::Refunded(refund) => refund.basis.clone(),
        other => panic!("expected Refunded, got {other:?}"),
    }
}

#[test]
fn money_refunded_without_lines_is_the_refund_discrepancy() {
    let delivery = parse(
        "refunds/create",
        "shopify_refunds_create_amount_only.json",
        Currency::USD,
    );
    assert_eq!(
        refund_basis(&delivery),
        RefundBasis::Amount {
            amount: usd("100.00")
        }
    );
}

#[test]
fn a_discrepancy_beside_refunded_lines_is_money_refunded_beyond_them() {
    let delivery = parse_edited(
        "refunds/create",
        "shopify_refunds_create_partial.json",
        |value| {
            value["order_adjustments"] = serde_json::json!([{
                "kind": "refund_discrepancy",
                "amount": "-12.50",
                "amount_set": {
                    "shop_money": {"amount": "-12.50", "currency_code": "USD"},
                    "presentment_money": {"amount": "-12.50", "currency_code": "USD"}
                }
            }]);
        },
    );
    assert_eq!(
        refund_basis(&delivery),
        RefundBasis::LinesAndAmount {
            lines: vec![RefundedLine {
                line_id: LineId::parse("15501234567802").unwrap(),
                quantity: 1
            }],
            amount: usd("12.50"),
        }
    );
}

#[test]
fn a_bare_refund_with_only_a_transaction_refunds_that_amount() {
    let delivery = parse_edited(
        "refunds/create",
        "shopify_refunds_create_amount_only.json",
        |value| {
            value["order_adjustments"] = serde_json::json!([]);
            // A failed attempt beside the successful one is not money back.
            let mut failed = value["transactions"][0].clone();
            failed["status"] = "failure".into();
            failed["amount"] = "30.00".into();
            value["transactions"].as_array_mut().unwrap().push(failed);
        },
    );
    assert_eq!(
        refund_basis(&delivery),
        RefundBasis::Amount {
            amount: usd("100.00")
        }
    );
}

#[test]
fn a_shipping_refund_adjustment_is_not_merchandise() {
    // The shipping-only fixture has a shipping_refund adjustment and an 8.00
    // transaction: still no merchandise refunded.
    let delivery = parse(
        "refunds/create",
        "shopify_refunds_create_shipping_only.json",
        Currency::USD,
    );
    assert_eq!(
        refund_basis(&delivery),
        RefundBasis::Lines { lines: vec![] }
    );
}

#[test]
fn every_payment_gateway_of_the_order_is_kept() {
    let delivery = parse_edited("orders/paid", "shopify_orders_paid.json", |value| {
        value["payment_gateway_names"] =
            serde_json::json!(["gift_card", " ", "Bank transfer, 3 days"]);
    });
    // Each gateway whole: a manual method's name may itself hold a comma.
    assert_eq!(
        paid_order(&delivery).payment_methods,
        vec!["gift_card".to_string(), "Bank transfer, 3 days".to_string()]
    );
}

#[test]
fn orders_create_is_the_created_event_dated_by_created_at() {
    let delivery = parse("orders/create", "shopify_orders_paid.json", Currency::USD);
    let OrderEvent::Created(order) = only_event(&delivery) else {
        panic!("expected Created, got {delivery:?}");
    };
    assert_eq!(order.occurred_at, at("2026-03-14T10:22:29-04:00"));
    let paid = parse("orders/paid", "shopify_orders_paid.json", Currency::USD);
    let OrderEvent::Paid(paid) = only_event(&paid) else {
        panic!("expected Paid");
    };
    // The same order otherwise: lines, codes, customer.
    assert_eq!(order.discount_codes, paid.discount_codes);
    assert_eq!(order.lines, paid.lines);
    assert_eq!(order.customer, paid.customer);
    assert_eq!(
        only_event(&delivery).effect_key(),
        format!("order:{}:created", order.order_id)
    );
}

#[test]
fn a_cancelled_order_relabelled_orders_create_is_refused() {
    let body = fixture("shopify_orders_cancelled.json");
    let headers = shopify_headers("orders/create", &body);
    let err = shopify::parse(&headers, &body, Currency::USD).unwrap_err();
    assert_eq!(err.code(), "topic_mismatch", "{err}");
    let body = fixture("shopify_refunds_create_partial.json");
    let headers = shopify_headers("orders/create", &body);
    let err = shopify::parse(&headers, &body, Currency::USD).unwrap_err();
    assert_eq!(err.code(), "topic_mismatch", "{err}");
}

#[test]
fn a_cashback_coupon_in_the_cart_attribute_is_a_code_that_took_nothing_off() {
    let body = String::from_utf8(fixture("shopify_orders_paid.json")).unwrap();
    let mut order: serde_json::Value = serde_json::from_str(&body).unwrap();
    order["note_attributes"] = serde_json::json!([
        {"name": "Cashback_Coupon", "value": " Spring5 "},
        {"name": "gift_note", "value": "happy birthday"}
    ]);
    let body = order.to_string().into_bytes();
    let headers = shopify_headers("orders/paid", &body);
    let delivery = shopify::parse(&headers, &body, Currency::USD).unwrap();
    let order = paid_order(&delivery);
    let coupon = order
        .discount_codes
        .iter()
        .find(|c| c.code == Code::parse("spring5").unwrap())
        .expect("the attribute's coupon is among the codes");
    assert_eq!(coupon.amount, usd("0.00"));
    assert_eq!(coupon.kind, DiscountKind::Order);
    // An unusable value is dropped, not the order.
    let mut order: serde_json::Value =
        serde_json::from_str(&String::from_utf8(fixture("shopify_orders_paid.json")).unwrap())
            .unwrap();
    order["note_attributes"] = serde_json::json!([{"name": "cashback_coupon", "value": 12}]);
    let body = order.to_string().into_bytes();
    let headers = shopify_headers("orders/paid", &body);
    let delivery = shopify::parse(&headers, &body, Currency::USD).unwrap();
    assert!(paid_order(&delivery)
        .discount_codes
        .iter()
        .all(|c| c.amount.is_positive()));
}
