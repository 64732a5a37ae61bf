//! What a verified webhook delivery turned into.
//!
//! A [`Delivery`] keeps the transport facts (shop, topic, the platform's
//! delivery and event ids) beside the core events, because deduplication
//! happens at two levels: transport retries on the delivery id, and business
//! effects on [`cashback_core::order::OrderEvent::effect_key`].

use cashback_core::ids::ShopId;
use cashback_core::order::OrderEvent;

use crate::shop_requests::ShopRequest;
use chrono::{DateTime, Utc};

/// The platform a webhook comes from, named as in `POST /webhooks/{platform}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Shopify,
    WooCommerce,
    Generic,
}

impl Platform {
    /// The path segment: `shopify`, `woocommerce` or `generic`.
    pub fn from_name(name: &str) -> Option<Platform> {
        match name.trim().to_ascii_lowercase().as_str() {
            "shopify" => Some(Platform::Shopify),
            "woocommerce" => Some(Platform::WooCommerce),
            "generic" => Some(Platform::Generic),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::WooCommerce => "woocommerce",
            Platform::Generic => "generic",
        }
    }
}

/// The platform's own identifiers for this delivery, for logs and for
/// deduplicating transport retries. None of them is authenticated before
/// the signature check; all are informative, never trusted for money.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportIds {
    /// Shopify `X-Shopify-Webhook-Id` (one per delivery, kept across
    /// retries); WooCommerce `X-WC-Webhook-ID` (the subscription's id).
    pub webhook_id: Option<String>,
    /// Shopify `X-Shopify-Event-Id` (one per merchant action, shared by the
    /// topics it triggers); the generic body's `event_id`.
    pub event_id: Option<String>,
    /// WooCommerce `X-WC-Webhook-Delivery-ID` (one per attempt).
    pub delivery_id: Option<String>,
    /// Shopify `X-Shopify-Triggered-At`: retries replay the original payload,
    /// so this tells a stale delivery apart. `None` when absent or unreadable.
    pub triggered_at: Option<DateTime<Utc>>,
}

/// A verified delivery, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub platform: Platform,
    pub shop: ShopId,
    /// The platform's topic (`orders/paid`, `order.updated`) or, for the
    /// generic schema, its `type`.
    pub topic: String,
    pub transport: TransportIds,
    pub outcome: Outcome,
    /// The platform marked the order as a test (Shopify `test: true`): the
    /// program decides whether it may earn.
    pub test: bool,
}

impl Delivery {
    /// The core events, empty when the delivery was ignored.
    pub fn events(&self) -> &[OrderEvent] {
        match &self.outcome {
            Outcome::Events(events) => events,
            Outcome::Ignored { .. } | Outcome::Shop(_) => &[],
        }
    }
}

/// What the engine has to do with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Events to apply, in order. One WooCommerce delivery can carry several
    /// (paid, fulfilled and each refund of the order).
    Events(Vec<OrderEvent>),
    /// Nothing to do (a topic or status the program does not use): answer
    /// 200 so the platform does not retry, and log the reason.
    Ignored { reason: String },
    /// A request about the shop or one of its customers rather than an
    /// order (Shopify's compliance topics and `app/uninstalled`).
    Shop(Box<ShopRequest>),
}

/// WooCommerce's unsigned ping, sent once when a webhook is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub webhook_id: String,
}

/// What the unauthenticated first look at a request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    /// Answer 200 and change nothing: there is nothing to verify or parse.
    Ping(Ping),
    /// Look up this shop's secrets and currency (404 when unknown), then
    /// verify, then parse.
    Shop(ShopId),
}

/// What a one-call `parse_webhook` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Ping(Ping),
    Delivery(Delivery),
}
