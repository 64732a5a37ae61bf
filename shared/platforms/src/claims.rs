//! What a delivery's body says about itself, checked against the headers
//! that are not signed.
//!
//! Shopify and WooCommerce sign the body only. The topic header decides
//! which event a Shopify body becomes, and the shop header decides whose
//! ledger it is applied to, yet an attacker holding one captured delivery
//! can change both freely: an `orders/paid` body replayed as
//! `orders/cancelled` would claw back cashback the customer earned, and a
//! body signed with an app-wide secret would pass for another shop's. So a
//! verified body must also be the resource its topic delivers, in the state
//! that topic means, for the shop the header names; otherwise the delivery
//! is refused with [`WebhookError::TopicMismatch`] or
//! [`WebhookError::ShopMismatch`] (400, nothing written).
//!
//! Shopify (the REST resources each topic delivers):
//!
//! | topic | the body must show |
//! | --- | --- |
//! | `orders/create` | an order, `cancelled_at` null (any payment state) |
//! | `orders/paid` | an order (`admin_graphql_api_id` `gid://shopify/Order/..` when sent), `financial_status` `paid` (or `partially_refunded`: a refund may already be recorded when the payload is built), `cancelled_at` null |
//! | `orders/fulfilled` | an order, `fulfillment_status` `fulfilled`, `cancelled_at` null |
//! | `orders/cancelled` | an order with `cancelled_at` set |
//! | `refunds/create` | a refund: `id`, `order_id`, `refund_line_items` or `transactions`, `gid://shopify/Refund/..` when sent |
//!
//! `partially_paid` is not a paid order: Shopify sends `orders/paid` once
//! the order is paid in full, and cashback is never earned on money not yet
//! received. The order's `order_status_url` names its shop when it is on
//! `*.myshopify.com` (a shop with its own domain shows that domain instead,
//! which the engine cannot tie to the shop: not checked); it must be the
//! shop in `X-Shopify-Shop-Domain`. Shopify's `test: true` is reported as
//! [`ShopifyClaims::test`] so the program decides whether test orders earn.
//!
//! WooCommerce builds its payload when it sends it, so the order's `status`
//! (signed) decides the events and the topic only says it is an order. An
//! order topic must carry an order: a WooCommerce Subscriptions
//! subscription (same id space, statuses such as `cancelled`) or any other
//! resource relabelled `order.updated` is refused. The order's
//! `_links.self[].href` names the site; its host must be the shop named by
//! `X-WC-Webhook-Source`.
//!
//! These checks read the body a second time through a small borrowed shape
//! (unknown fields skipped), which keeps them apart from the money parsing.

use serde::de::IgnoredAny;
use serde::Deserialize;

use cashback_core::ids::ShopId;

use crate::error::WebhookError;

/// What the checks learnt that the caller needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ShopifyClaims {
    /// Shopify marked the order as a test (`test: true`).
    pub test: bool,
}

#[derive(Deserialize)]
struct ShopifyShape {
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(default)]
    order_id: Option<IgnoredAny>,
    #[serde(default)]
    admin_graphql_api_id: Option<String>,
    #[serde(default)]
    financial_status: Option<String>,
    #[serde(default)]
    fulfillment_status: Option<String>,
    /// Present and null on an order that is not cancelled.
    #[serde(default)]
    cancelled_at: Option<String>,
    #[serde(default)]
    order_status_url: Option<String>,
    #[serde(default)]
    test: Option<bool>,
    #[serde(default)]
    refund_line_items: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    transactions: Option<Vec<IgnoredAny>>,
}

fn mismatch(topic: &str, reason: impl Into<String>) -> WebhookError {
    WebhookError::TopicMismatch {
        topic: topic.chars().take(64).collect(),
        reason: reason.into(),
    }
}

fn is(value: &Option<String>, expected: &str) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

fn shown(value: &Option<String>) -> String {
    match value.as_deref() {
        None => "missing".to_string(),
        Some(v) => format!("{:?}", v.chars().take(32).collect::<String>()),
    }
}

/// Checks a verified Shopify body against its topic and shop. Topics the
/// engine does not use are not checked (they change nothing).
pub(crate) fn shopify(
    topic: &str,
    shop: &ShopId,
    body: &[u8],
) -> Result<ShopifyClaims, WebhookError> {
    let is_order_topic = matches!(
        topic,
        "orders/create" | "orders/paid" | "orders/fulfilled" | "orders/cancelled"
    );
    if !is_order_topic && topic != "refunds/create" {
        return Ok(ShopifyClaims::default());
    }
    let raw: ShopifyShape = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "Shopify delivery",
        source,
    })?;
    let gid_kind = raw
        .admin_graphql_api_id
        .as_deref()
        .and_then(|gid| gid.strip_prefix("gid://shopify/"))
        .and_then(|rest| rest.split('/').next());

    if topic == "refunds/create" {
        if raw.id.is_none() || raw.order_id.is_none() {
            return Err(mismatch(
                topic,
                "the body is not a refund (no id and order_id)",
            ));
        }
        if raw.refund_line_items.is_none() && raw.transactions.is_none() {
            return Err(mismatch(
                topic,
                "the body is not a refund (no refund_line_items or transactions)",
            ));
        }
        if gid_kind.is_some_and(|kind| kind != "Refund") {
            return Err(mismatch(topic, "admin_graphql_api_id is not a refund's"));
        }
        return Ok(ShopifyClaims::default());
    }

    if raw.order_id.is_some() || gid_kind.is_some_and(|kind| kind != "Order") {
        return Err(mismatch(topic, "the body is not an order"));
    }
    let cancelled = raw
        .cancelled_at
        .as_deref()
        .is_some_and(|at| !at.trim().is_empty());
    match topic {
        "orders/create" => {
            // Any payment state: the redemption is recorded when the order
            // is placed. Not a cancelled order.
            if cancelled {
                return Err(mismatch(
                    topic,
                    "the order is cancelled (cancelled_at is set)",
                ));
            }
        }
        "orders/paid" => {
            if !(is(&raw.financial_status, "paid")
                || is(&raw.financial_status, "partially_refunded"))
            {
                return Err(mismatch(
                    topic,
                    format!(
                        "financial_status is {}, not paid",
                        shown(&raw.financial_status)
                    ),
                ));
            }
            if cancelled {
                return Err(mismatch(
                    topic,
                    "the order is cancelled (cancelled_at is set)",
                ));
            }
        }
        "orders/fulfilled" => {
            if !is(&raw.fulfillment_status, "fulfilled") {
                return Err(mismatch(
                    topic,
                    format!(
                        "fulfillment_status is {}, not fulfilled",
                        shown(&raw.fulfillment_status)
                    ),
                ));
            }
            if cancelled {
                return Err(mismatch(
                    topic,
                    "the order is cancelled (cancelled_at is set)",
                ));
            }
        }
        _ => {
            if !cancelled {
                return Err(mismatch(topic, "cancelled_at is not set"));
            }
        }
    }
    if let Some(host) = raw.order_status_url.as_deref().and_then(host_of) {
        if host.ends_with(".myshopify.com") && host != shop.as_str() {
            return Err(WebhookError::ShopMismatch {
                in_header: shop.to_string(),
                in_body: host,
            });
        }
    }
    Ok(ShopifyClaims {
        test: raw.test.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct WooShape {
    #[serde(default)]
    billing_period: Option<IgnoredAny>,
    #[serde(default)]
    billing_interval: Option<IgnoredAny>,
    #[serde(default)]
    refunded_by: Option<IgnoredAny>,
    #[serde(default, rename = "_links")]
    links: Option<WooLinks>,
}

#[derive(Deserialize)]
struct WooLinks {
    #[serde(default, rename = "self")]
    this: Option<Vec<WooLink>>,
}

#[derive(Deserialize)]
struct WooLink {
    #[serde(default)]
    href: Option<String>,
}

/// Checks that a verified WooCommerce order-topic body is an order of the
/// shop named by the headers.
pub(crate) fn woocommerce(topic: &str, shop: &ShopId, body: &[u8]) -> Result<(), WebhookError> {
    let raw: WooShape = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "WooCommerce delivery",
        source,
    })?;
    if raw.billing_period.is_some() || raw.billing_interval.is_some() {
        return Err(mismatch(
            topic,
            "the body is a subscription (billing_period), not an order",
        ));
    }
    if raw.refunded_by.is_some() {
        return Err(mismatch(topic, "the body is a refund, not an order"));
    }
    let hrefs = raw
        .links
        .and_then(|links| links.this)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|link| link.href);
    for href in hrefs {
        if let Some(host) = host_of(&href) {
            if host != shop.as_str() {
                return Err(WebhookError::ShopMismatch {
                    in_header: shop.to_string(),
                    in_body: host,
                });
            }
        }
    }
    Ok(())
}

/// The host of a URL, lower case, without scheme, user, port or path; None
/// when there is none.
fn host_of(url: &str) -> Option<String> {
    let rest = url.trim().split_once("://").map(|(_, rest)| rest)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.split_once(':').map_or(host_port, |(h, _)| h);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host.chars().take(255).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shop() -> ShopId {
        ShopId::parse("demo.myshopify.com").unwrap()
    }

    fn order(extra: serde_json::Value) -> Vec<u8> {
        let mut body = json!({
            "id": 1,
            "admin_graphql_api_id": "gid://shopify/Order/1",
            "financial_status": "paid",
            "fulfillment_status": null,
            "cancelled_at": null,
            "test": false,
            "order_status_url": "https://demo.myshopify.com/1/orders/abc/authenticate?key=k"
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&body).unwrap()
    }

    fn code(result: Result<ShopifyClaims, WebhookError>) -> &'static str {
        match result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_paid_order_is_only_a_paid_order() {
        assert_eq!(
            code(shopify("orders/paid", &shop(), &order(json!({})))),
            "ok"
        );
        for status in [
            "pending",
            "authorized",
            "partially_paid",
            "voided",
            "refunded",
        ] {
            let body = order(json!({ "financial_status": status }));
            assert_eq!(
                code(shopify("orders/paid", &shop(), &body)),
                "topic_mismatch"
            );
        }
        let partly_refunded = order(json!({ "financial_status": "partially_refunded" }));
        assert_eq!(
            code(shopify("orders/paid", &shop(), &partly_refunded)),
            "ok"
        );
        let cancelled = order(json!({ "cancelled_at": "2026-01-02T03:04:05Z" }));
        assert_eq!(
            code(shopify("orders/paid", &shop(), &cancelled)),
            "topic_mismatch"
        );
        let no_status = br#"{"id": 1, "cancelled_at": null}"#;
        assert_eq!(
            code(shopify("orders/paid", &shop(), no_status)),
            "topic_mismatch"
        );
    }

    #[test]
    fn a_cancel_needs_cancelled_at_and_a_fulfilment_a_fulfilled_order() {
        let paid = order(json!({}));
        assert_eq!(
            code(shopify("orders/cancelled", &shop(), &paid)),
            "topic_mismatch"
        );
        assert_eq!(
            code(shopify("orders/fulfilled", &shop(), &paid)),
            "topic_mismatch"
        );
        let cancelled =
            order(json!({ "cancelled_at": "2026-01-02T03:04:05Z", "financial_status": "voided" }));
        assert_eq!(code(shopify("orders/cancelled", &shop(), &cancelled)), "ok");
        let fulfilled = order(json!({ "fulfillment_status": "fulfilled" }));
        assert_eq!(code(shopify("orders/fulfilled", &shop(), &fulfilled)), "ok");
    }

    #[test]
    fn a_refund_topic_needs_a_refund_and_an_order_topic_an_order() {
        let refund = br#"{"id": 9, "order_id": 1, "admin_graphql_api_id": "gid://shopify/Refund/9", "refund_line_items": [], "transactions": []}"#;
        assert_eq!(code(shopify("refunds/create", &shop(), refund)), "ok");
        assert_eq!(
            code(shopify("orders/cancelled", &shop(), refund)),
            "topic_mismatch"
        );
        assert_eq!(
            code(shopify("refunds/create", &shop(), &order(json!({})))),
            "topic_mismatch"
        );
        let bare = br#"{"id": 9, "order_id": 1}"#;
        assert_eq!(
            code(shopify("refunds/create", &shop(), bare)),
            "topic_mismatch"
        );
        let order_gid = br#"{"id": 9, "order_id": 1, "admin_graphql_api_id": "gid://shopify/Order/9", "refund_line_items": []}"#;
        assert_eq!(
            code(shopify("refunds/create", &shop(), order_gid)),
            "topic_mismatch"
        );
    }

    #[test]
    fn an_order_of_another_myshopify_shop_is_refused() {
        let other = order(json!({
            "order_status_url": "https://Other.myshopify.com/1/orders/abc/authenticate?key=k"
        }));
        assert_eq!(
            code(shopify("orders/paid", &shop(), &other)),
            "shop_mismatch"
        );
        // A shop's own domain cannot be tied to the shop: not checked.
        let custom = order(json!({ "order_status_url": "https://www.example.com/1/orders/abc" }));
        assert_eq!(code(shopify("orders/paid", &shop(), &custom)), "ok");
    }

    #[test]
    fn test_orders_are_reported_and_unused_topics_not_checked() {
        let test = order(json!({ "test": true }));
        assert!(shopify("orders/paid", &shop(), &test).unwrap().test);
        assert_eq!(code(shopify("orders/updated", &shop(), b"[1]")), "ok");
    }

    #[test]
    fn a_woocommerce_order_topic_needs_an_order_of_the_site() {
        let tea = ShopId::parse("tea.example.org").unwrap();
        let order = br#"{"id": 5, "status": "cancelled", "_links": {"self": [{"href": "https://Tea.example.org/wp-json/wc/v3/orders/5"}]}}"#;
        assert!(woocommerce("order.updated", &tea, order).is_ok());
        let subscription = br#"{"id": 6, "status": "cancelled", "billing_period": "month", "billing_interval": "1"}"#;
        assert_eq!(
            woocommerce("order.updated", &tea, subscription)
                .unwrap_err()
                .code(),
            "topic_mismatch"
        );
        let elsewhere = br#"{"id": 5, "status": "processing", "_links": {"self": [{"href": "https://coffee.example.org/wp-json/wc/v3/orders/5"}]}}"#;
        assert_eq!(
            woocommerce("order.updated", &tea, elsewhere)
                .unwrap_err()
                .code(),
            "shop_mismatch"
        );
    }

    #[test]
    fn hosts_are_read_without_scheme_user_port_or_path() {
        assert_eq!(
            host_of("https://A.example.com:8443/x?y").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            host_of("http://u@b.example.com/").as_deref(),
            Some("b.example.com")
        );
        assert_eq!(host_of("no-scheme.example.com/x"), None);
        assert_eq!(host_of("https:///x"), None);
    }
}
