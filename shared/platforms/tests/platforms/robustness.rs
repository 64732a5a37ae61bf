//! Nothing a sender can put in a request makes the parsers panic: arbitrary
//! bytes and mutated fixtures always come back as `Ok` or a typed error.

use crate::common::*;
use cashback_core::money::Currency;
use cashback_platforms::{Headers, Platform};
use proptest::prelude::*;

const FIXTURES: &[(&str, Platform, &str, Currency)] = &[
    (
        "shopify_orders_paid.json",
        Platform::Shopify,
        "orders/paid",
        Currency::USD,
    ),
    (
        "shopify_orders_paid_guest.json",
        Platform::Shopify,
        "orders/paid",
        Currency::EUR,
    ),
    (
        "shopify_orders_cancelled.json",
        Platform::Shopify,
        "orders/cancelled",
        Currency::USD,
    ),
    (
        "shopify_refunds_create_partial.json",
        Platform::Shopify,
        "refunds/create",
        Currency::USD,
    ),
    (
        "shopify_refunds_create_shipping_only.json",
        Platform::Shopify,
        "refunds/create",
        Currency::USD,
    ),
    (
        "woocommerce_order_processing.json",
        Platform::WooCommerce,
        "order.created",
        Currency::USD,
    ),
    (
        "woocommerce_order_completed_two_refunds.json",
        Platform::WooCommerce,
        "order.updated",
        Currency::USD,
    ),
    (
        "generic_order_paid.json",
        Platform::Generic,
        "",
        Currency::GBP,
    ),
    (
        "generic_order_refunded.json",
        Platform::Generic,
        "",
        Currency::GBP,
    ),
];

fn headers_for(platform: Platform, topic: &str, body: &[u8]) -> Headers {
    match platform {
        Platform::Shopify => shopify_headers(topic, body),
        Platform::WooCommerce => woo_headers(topic, body),
        Platform::Generic => generic_headers(body),
    }
}

/// Runs every step on a body; any panic fails the property.
fn run_all(platform: Platform, headers: &Headers, body: &[u8], currency: Currency) {
    let _ = platform.identify(headers, body);
    let _ = platform.verify(headers, body, &[SECRET], generic_now());
    if let Err(err) = platform.parse(headers, body, currency) {
        // Every error maps to a status and has a message.
        assert!(matches!(err.status(), 400 | 401 | 413));
        assert!(!err.to_string().is_empty());
        assert!(!err.code().is_empty());
    }
    let _ = platform.parse_webhook(headers, body, &[SECRET], currency, generic_now());
}

#[test]
fn every_fixture_parses_through_the_platform_dispatcher() {
    for (name, platform, topic, currency) in FIXTURES {
        let body = fixture(name);
        let headers = headers_for(*platform, topic, &body);
        let received = platform
            .parse_webhook(&headers, &body, &[SECRET], *currency, generic_now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(
            received,
            cashback_platforms::Received::Delivery(_)
        ));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        which in 0..FIXTURES.len(),
    ) {
        let (_, platform, topic, currency) = FIXTURES[which];
        // Signed, so the bytes reach the parser, not just the HMAC check.
        let headers = headers_for(platform, topic, &body);
        run_all(platform, &headers, &body, currency);
        run_all(platform, &Headers::new(), &body, currency);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (name, platform, topic, currency) = FIXTURES[which];
        let mut body = fixture(name);
        for (index, byte) in edits {
            let at = index.index(body.len());
            body[at] = byte;
        }
        if truncate {
            body.truncate(cut.index(body.len()));
        }
        let headers = headers_for(platform, topic, &body);
        run_all(platform, &headers, &body, currency);
    }

    #[test]
    fn fixtures_with_a_json_token_replaced_never_panic(
        which in 0..FIXTURES.len(),
        pick in any::<prop::sample::Index>(),
        replacement in prop::sample::select(vec![
            "null", "0", "-1", "1e400", "18446744073709551616", "4.5", "\"\"", "\"-\"",
            "[]", "{}", "true", "\"99999999999999999999999999999.99\"", "\"1#2\"",
        ]),
    ) {
        let (name, platform, topic, currency) = FIXTURES[which];
        let text = String::from_utf8(fixture(name)).unwrap();
        // Replace one value (what follows a `": `) with an odd JSON token.
        let starts: Vec<usize> = text.match_indices("\": ").map(|(i, _)| i + 3).collect();
        let start = starts[pick.index(starts.len())];
        let end = text[start..]
            .find([',', '\n'])
            .map_or(text.len(), |offset| start + offset);
        let body = format!("{}{}{}", &text[..start], replacement, &text[end..]);
        let headers = headers_for(platform, topic, body.as_bytes());
        run_all(platform, &headers, body.as_bytes(), currency);
    }

    #[test]
    fn arbitrary_signature_headers_never_panic(value in ".{0,200}", body in ".{0,64}") {
        let headers = Headers::new()
            .with("X-Shopify-Hmac-Sha256", value.clone())
            .with("X-WC-Webhook-Signature", value.clone())
            .with("X-Cashback-Signature", value.clone())
            .with("X-Shopify-Shop-Domain", value.clone())
            .with("X-WC-Webhook-Source", value.clone())
            .with("X-Cashback-Shop", value);
        for platform in [Platform::Shopify, Platform::WooCommerce, Platform::Generic] {
            run_all(platform, &headers, body.as_bytes(), Currency::USD);
        }
    }
}
