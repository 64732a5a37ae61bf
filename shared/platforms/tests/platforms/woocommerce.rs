//! WooCommerce fixtures, signed and parsed end to end, checked field by field.

use crate::common::*;
use cashback_core::earn::eligible_base;
use cashback_core::ids::{Code, CustomerId, Email, LineId, OrderId, ProductId, RefundId};
use cashback_core::money::Currency;
use cashback_core::order::{DiscountKind, OrderEvent, Refund, RefundBasis, RefundedLine};
use cashback_core::program::Exclusions;
use cashback_platforms::{
    woocommerce, Delivery, Headers, Identified, Outcome, Ping, Platform, Received, WebhookError,
};

fn parse(topic: &str, fixture_name: &str) -> Delivery {
    let body = fixture(fixture_name);
    let headers = woo_headers(topic, &body);
    match woocommerce::parse_webhook(&headers, &body, &[SECRET], Currency::USD).unwrap() {
        Received::Delivery(delivery) => delivery,
        Received::Ping(ping) => panic!("unexpected ping {ping:?}"),
    }
}

#[test]
fn a_processing_guest_order_is_paid_with_exact_line_amounts() {
    let delivery = parse("order.created", "woocommerce_order_processing.json");
    assert_eq!(delivery.platform, Platform::WooCommerce);
    assert_eq!(delivery.shop.as_str(), "tea.example.org");
    assert_eq!(delivery.topic, "order.created");
    assert_eq!(delivery.transport.webhook_id.as_deref(), Some("14"));
    assert_eq!(
        delivery.transport.delivery_id.as_deref(),
        Some("8d3a0f4c1b2e9f7a6c5d4e3b2a190817")
    );
    let [OrderEvent::Paid(order)] = delivery.events() else {
        panic!("expected one Paid, got {:?}", delivery.events());
    };
    assert_eq!(order.order_id, OrderId::parse("5127").unwrap());
    // customer_id 0 is a guest: no id, the billing email keys the account.
    assert_eq!(order.customer.id, None);
    let email = Email::parse("sam.rivera@example.org").unwrap();
    assert_eq!(order.customer.email, Some(email.clone()));
    assert_eq!(
        order.customer.account_id(),
        Some(CustomerId::for_guest(&email))
    );
    assert_eq!(order.subtotal, usd("40.50"));
    assert_eq!(order.shipping, usd("5.00"));
    assert_eq!(order.total, usd("48.74"));
    assert_eq!(order.payment_methods, vec!["stripe".to_string()]);
    assert_eq!(order.checkout_id, None);
    assert_eq!(order.referral_code, Some(Code::parse("MAYA-7").unwrap()));
    assert_eq!(order.occurred_at, at("2026-05-04T16:20:41Z"));

    assert_eq!(order.discount_codes.len(), 1);
    assert_eq!(
        order.discount_codes[0].code,
        Code::parse("spring10").unwrap()
    );
    assert_eq!(order.discount_codes[0].amount, usd("4.50"));
    assert_eq!(order.discount_codes[0].kind, DiscountKind::Order);

    let sampler = &order.lines[0];
    assert_eq!(sampler.line_id, LineId::parse("801").unwrap());
    assert_eq!(sampler.product_id, Some(ProductId::parse("311").unwrap()));
    assert_eq!(sampler.variant_id, None, "variation_id 0 is no variation");
    assert_eq!(sampler.sku.as_deref(), Some("TEA-SMP"));
    // 10.00 / 3 is not a whole number of cents: one unit at the subtotal.
    assert_eq!(sampler.quantity, 1);
    assert_eq!(sampler.unit_price, usd("10.00"));
    assert_eq!(sampler.discount, usd("1.00"));
    assert_eq!(sampler.included_tax, None);

    let teapot = &order.lines[1];
    assert_eq!(teapot.variant_id.as_ref().map(|v| v.as_str()), Some("318"));
    assert_eq!(teapot.quantity, 1);
    assert_eq!(teapot.unit_price, usd("35.00"));
    assert_eq!(teapot.discount, usd("3.50"));

    assert_eq!(
        eligible_base(&order.lines, &Exclusions::default(), Currency::USD).unwrap(),
        usd("40.50")
    );
}

#[test]
fn a_completed_order_with_two_refunds_yields_paid_fulfilled_and_both_refunds() {
    let delivery = parse(
        "order.updated",
        "woocommerce_order_completed_two_refunds.json",
    );
    let events = delivery.events();
    assert_eq!(events.len(), 4, "{events:?}");

    let OrderEvent::Paid(paid) = &events[0] else {
        panic!("first event is not Paid: {:?}", events[0]);
    };
    assert_eq!(paid.order_id.as_str(), "5133");
    assert_eq!(paid.customer.id, Some(CustomerId::parse("42").unwrap()));
    assert_eq!(
        paid.customer.email,
        Some(Email::parse("jo.kim@example.com").unwrap())
    );
    assert_eq!(paid.occurred_at, at("2026-05-06T09:00:12Z"));
    assert_eq!(paid.total, usd("109.50"));
    assert_eq!(paid.shipping, usd("0.00"));
    assert_eq!(paid.payment_methods, vec!["ppcp-gateway".to_string()]);
    let hoodie = &paid.lines[0];
    // 90.00 / 2 is exact: the real quantity and unit price are kept.
    assert_eq!(hoodie.quantity, 2);
    assert_eq!(hoodie.unit_price, usd("45.00"));
    assert_eq!(hoodie.discount, usd("0.00"));
    assert_eq!(paid.lines[1].sku, None);

    let OrderEvent::Fulfilled(fulfilled) = &events[1] else {
        panic!("second event is not Fulfilled: {:?}", events[1]);
    };
    assert_eq!(fulfilled.occurred_at, at("2026-05-08T13:30:00Z"));
    // Both carry the order's own time, `date_paid_gmt`.
    assert_eq!(paid.placed_at, Some(at("2026-05-06T09:00:12Z")));
    assert_eq!(fulfilled.placed_at, paid.placed_at);
    assert_eq!(fulfilled.lines, paid.lines);

    let refunds: Vec<&Refund> = events[2..]
        .iter()
        .map(|event| match event {
            OrderEvent::Refunded(refund) => refund,
            other => panic!("expected Refunded, got {other:?}"),
        })
        .collect();
    assert_eq!(refunds[0].refund_id, RefundId::parse("5141").unwrap());
    assert_eq!(
        refunds[0].basis,
        RefundBasis::Amount {
            amount: usd("7.25")
        }
    );
    assert_eq!(refunds[1].refund_id, RefundId::parse("5140").unwrap());
    assert_eq!(
        refunds[1].basis,
        RefundBasis::Amount {
            amount: usd("45.00")
        }
    );
    for refund in refunds {
        assert_eq!(refund.order_id.as_str(), "5133");
        assert_eq!(refund.occurred_at, at("2026-05-12T10:15:27Z"));
    }
    assert_eq!(events[2].effect_key(), "order:5133:refund:5141");
}

fn with_status(fixture_name: &str, status: &str) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&fixture(fixture_name)).unwrap();
    value["status"] = serde_json::Value::String(status.to_string());
    serde_json::to_vec(&value).unwrap()
}

fn events_for(body: &[u8]) -> Outcome {
    let headers = woo_headers("order.updated", body);
    woocommerce::parse(&headers, body, Currency::USD)
        .unwrap()
        .outcome
}

#[test]
fn unpaid_statuses_change_nothing() {
    for status in ["pending", "on-hold", "failed", "trash", "checkout-draft"] {
        let body = with_status("woocommerce_order_processing.json", status);
        assert!(
            matches!(events_for(&body), Outcome::Ignored { .. }),
            "{status} was not ignored"
        );
    }
}

#[test]
fn a_cancelled_order_is_one_cancel_event() {
    let body = with_status("woocommerce_order_completed_two_refunds.json", "cancelled");
    let Outcome::Events(events) = events_for(&body) else {
        panic!("cancelled was ignored");
    };
    let [OrderEvent::Cancelled(order)] = events.as_slice() else {
        panic!("expected one Cancelled, got {events:?}");
    };
    assert_eq!(order.order_id.as_str(), "5133");
    assert_eq!(order.occurred_at, at("2026-05-12T10:15:27Z"));
}

#[test]
fn a_refunded_order_yields_only_its_refunds() {
    let body = with_status("woocommerce_order_completed_two_refunds.json", "refunded");
    let Outcome::Events(events) = events_for(&body) else {
        panic!("refunded was ignored");
    };
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|event| matches!(event, OrderEvent::Refunded(_))));
}

#[test]
fn the_creation_ping_is_answered_without_a_signature() {
    let headers = Headers::new()
        .with("Content-Type", "application/x-www-form-urlencoded")
        .with("User-Agent", "WooCommerce/9.8.1 Hookshot (WordPress/6.8)");
    let body = b"webhook_id=14";
    let ping = Ping {
        webhook_id: "14".to_string(),
    };
    assert_eq!(
        Platform::WooCommerce.identify(&headers, body).unwrap(),
        Identified::Ping(ping.clone())
    );
    let none: [&str; 0] = [];
    assert_eq!(
        woocommerce::parse_webhook(&headers, body, &none, Currency::USD).unwrap(),
        Received::Ping(ping)
    );
}

#[test]
fn other_topics_are_ignored() {
    let body = br#"{"id": 93, "name": "Woo Single"}"#;
    let headers = woo_headers("product.updated", body);
    let delivery = woocommerce::parse(&headers, body, Currency::USD).unwrap();
    assert!(matches!(delivery.outcome, Outcome::Ignored { .. }));
}

#[test]
fn an_order_in_another_currency_is_refused() {
    let body = fixture("woocommerce_order_processing.json");
    let headers = woo_headers("order.created", &body);
    let err = woocommerce::parse(&headers, &body, Currency::GBP).unwrap_err();
    assert!(
        matches!(err, WebhookError::CurrencyMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_wrong_secret_is_401_before_anything_is_parsed() {
    let body = fixture("woocommerce_order_processing.json");
    let headers = woo_headers("order.created", &body);
    let err =
        woocommerce::parse_webhook(&headers, &body, &["another-shop"], Currency::USD).unwrap_err();
    assert_eq!(err.status(), 401);
}

/// The processing fixture with its JSON changed, parsed in `currency`.
fn edited(edit: impl FnOnce(&mut serde_json::Value), currency: Currency) -> Vec<OrderEvent> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&fixture("woocommerce_order_processing.json")).unwrap();
    edit(&mut value);
    let body = serde_json::to_vec(&value).unwrap();
    let headers = woo_headers("order.updated", &body);
    match woocommerce::parse(&headers, &body, currency)
        .unwrap()
        .outcome
    {
        Outcome::Events(events) => events,
        other => panic!("expected events, got {other:?}"),
    }
}

#[test]
fn with_prices_including_tax_a_code_is_worth_its_discount_and_the_tax_on_it() {
    let events = edited(
        |value| {
            value["prices_include_tax"] = true.into();
            value["coupon_lines"][0]["code"] = "cb-ann".into();
            value["coupon_lines"][0]["discount_type"] = "fixed_cart".into();
            value["coupon_lines"][0]["discount"] = "83.33".into();
            value["coupon_lines"][0]["discount_tax"] = "16.67".into();
        },
        Currency::USD,
    );
    let [OrderEvent::Paid(order)] = events.as_slice() else {
        panic!("expected one Paid, got {events:?}");
    };
    assert_eq!(order.discount_codes[0].amount, usd("100.00"));
}

#[test]
fn a_refund_that_lists_its_lines_refunds_those_lines_and_shipping_refunds_nothing() {
    let events = edited(
        |value| {
            value["refunds"] = serde_json::json!([
                {"id": 5150, "total": "-5.00", "line_items": [],
                 "shipping_lines": [{"id": 905, "total": "-5.00",
                                     "meta_data": [{"key": "_refunded_item_id", "value": "804"}]}]},
                {"id": 5151, "total": "-34.02", "shipping_lines": [],
                 "line_items": [{"id": 906, "quantity": -1, "total": "-31.50", "total_tax": "-2.52",
                                 "meta_data": [{"key": "_refunded_item_id", "value": "802"}]}]},
                // Line 801 is kept as one unit (10.00 over 3 tins): its
                // refunded money counts, not its units.
                {"id": 5152, "total": "-3.24",
                 "line_items": [{"id": 907, "quantity": -1, "total": "-3.00", "total_tax": "-0.24",
                                 "meta_data": [{"key": "_refunded_item_id", "value": 801}]}]}
            ]);
        },
        Currency::USD,
    );
    let bases: Vec<&RefundBasis> = events[1..]
        .iter()
        .map(|event| match event {
            OrderEvent::Refunded(refund) => &refund.basis,
            other => panic!("expected Refunded, got {other:?}"),
        })
        .collect();
    assert_eq!(bases[0], &RefundBasis::Lines { lines: vec![] });
    assert_eq!(
        bases[1],
        &RefundBasis::Lines {
            lines: vec![RefundedLine {
                line_id: LineId::parse("802").unwrap(),
                quantity: 1
            }]
        }
    );
    assert_eq!(
        bases[2],
        &RefundBasis::Amount {
            amount: usd("3.24")
        }
    );
}

#[test]
fn a_yen_line_total_with_decimals_is_rounded_not_refused() {
    let events = edited(
        |value| {
            value["currency"] = "JPY".into();
            value["line_items"][0]["subtotal"] = "1110.60".into();
            value["line_items"][0]["total"] = "1110.60".into();
            value["line_items"][1]["subtotal"] = "3500".into();
            value["line_items"][1]["total"] = "3150".into();
            value["coupon_lines"][0]["discount"] = "350".into();
            value["shipping_total"] = "500".into();
            value["total"] = "4761".into();
        },
        Currency::JPY,
    );
    let [OrderEvent::Paid(order)] = events.as_slice() else {
        panic!("expected one Paid, got {events:?}");
    };
    let jpy = |s: &str| money(s, Currency::JPY);
    assert_eq!(order.lines[0].net_merchandise().unwrap(), jpy("1111"));
    assert_eq!(order.subtotal, jpy("4261"));
    assert_eq!(order.total, jpy("4761"));
}
