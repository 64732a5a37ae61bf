//! Our own webhook schema, for shops on platforms we have no adapter for.
//!
//! A sender signs with `X-Cashback-Signature: t=<unix>,v1=<hex>` (see
//! [`crate::signature::sign_generic`]) and names the shop in `X-Cashback-Shop`
//! so we can find its secret without parsing an unauthenticated body. The
//! body is close to the core's `Order` / `Refund` and is read strictly:
//! unknown fields, bad amounts, bad ids and bad emails are refused with the
//! field named, because unlike a platform's payload this one is under the
//! sender's control and a typo should fail loudly. The schema is documented
//! in docs/webhooks.md.

use cashback_core::ids::{
    CheckoutId, Code, CollectionId, CustomerId, Email, LineId, OrderId, ProductId, RefundId,
    ShopId, VariantId,
};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{
    AppliedCode, CustomerRef, DiscountKind, Line, Order, OrderEvent, Refund, RefundBasis,
    RefundedLine,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::delivery::{Delivery, Outcome, Platform, TransportIds};
use crate::error::WebhookError;
use crate::headers::Headers;
use crate::json;
use crate::signature::{self, GENERIC_SIGNATURE_HEADER};

pub const SIGNATURE_HEADER: &str = GENERIC_SIGNATURE_HEADER;
pub const SHOP_HEADER: &str = "X-Cashback-Shop";

/// The event types of the generic schema.
pub const EVENT_TYPES: &[&str] = &[
    "order.paid",
    "order.fulfilled",
    "order.cancelled",
    "order.refunded",
];

/// The shop named by `X-Cashback-Shop`. Unauthenticated.
pub fn shop_of(headers: &Headers) -> Result<ShopId, WebhookError> {
    let shop = headers
        .get(SHOP_HEADER)
        .ok_or(WebhookError::MissingHeader {
            header: SHOP_HEADER,
        })?;
    ShopId::parse(shop).map_err(|e| WebhookError::InvalidHeader {
        header: SHOP_HEADER,
        reason: e.to_string(),
    })
}

/// Checks `X-Cashback-Signature` against the shop's secrets, with the
/// timestamp within five minutes of `now`.
pub fn verify<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    crate::check_size(body)?;
    signature::verify_generic(
        headers.get(SIGNATURE_HEADER),
        body,
        secrets,
        now.timestamp(),
    )?;
    Ok(())
}

/// Verifies, then parses.
pub fn parse_webhook<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
    shop_currency: Currency,
    now: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    verify(headers, body, secrets, now)?;
    parse(headers, body, shop_currency)
}

/// Turns a verified generic delivery into one core event.
pub fn parse(
    headers: &Headers,
    body: &[u8],
    shop_currency: Currency,
) -> Result<Delivery, WebhookError> {
    crate::check_size(body)?;
    let shop = shop_of(headers)?;
    let raw: Envelope = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "generic webhook",
        source,
    })?;
    let in_body = json::id("shop", &raw.shop, ShopId::parse)?;
    if in_body != shop {
        return Err(WebhookError::ShopMismatch {
            in_header: shop.to_string(),
            in_body: in_body.to_string(),
        });
    }
    if raw.event_id.trim().is_empty() {
        return Err(WebhookError::missing("event_id"));
    }
    let occurred_at = json::rfc3339("occurred_at", &raw.occurred_at)?;
    let kind = raw.kind.trim();
    let event = match kind {
        "order.paid" | "order.fulfilled" | "order.cancelled" => {
            if raw.refund.is_some() {
                return Err(WebhookError::invalid(
                    "refund",
                    format!("not allowed for type {kind}"),
                ));
            }
            let order = raw
                .order
                .as_ref()
                .ok_or_else(|| WebhookError::missing("order"))?;
            let order = map_order(order, shop_currency, occurred_at)?;
            match kind {
                "order.paid" => OrderEvent::Paid(order),
                "order.fulfilled" => OrderEvent::Fulfilled(order),
                _ => OrderEvent::Cancelled(order),
            }
        }
        "order.refunded" => {
            if raw.order.is_some() {
                return Err(WebhookError::invalid(
                    "order",
                    "not allowed for type order.refunded",
                ));
            }
            let refund = raw
                .refund
                .as_ref()
                .ok_or_else(|| WebhookError::missing("refund"))?;
            OrderEvent::Refunded(map_refund(refund, shop_currency, occurred_at)?)
        }
        other => {
            return Err(WebhookError::invalid(
                "type",
                format!(
                    "unknown event type {:?}; expected one of {}",
                    other.chars().take(40).collect::<String>(),
                    EVENT_TYPES.join(", ")
                ),
            ))
        }
    };
    Ok(Delivery {
        platform: Platform::Generic,
        shop,
        topic: kind.to_string(),
        transport: TransportIds {
            event_id: Some(raw.event_id.trim().to_string()),
            ..TransportIds::default()
        },
        outcome: Outcome::Events(vec![event]),
        test: false,
    })
}

// ---------------------------------------------------------------------------
// The schema. Every struct refuses unknown fields.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    shop: String,
    occurred_at: String,
    #[serde(default)]
    order: Option<GenericOrder>,
    #[serde(default)]
    refund: Option<GenericRefund>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericOrder {
    order_id: String,
    currency: String,
    #[serde(default)]
    customer: Option<GenericCustomer>,
    lines: Vec<GenericLine>,
    subtotal: String,
    #[serde(default)]
    shipping: Option<String>,
    total: String,
    #[serde(default)]
    discount_codes: Vec<GenericCode>,
    #[serde(default)]
    checkout_id: Option<String>,
    #[serde(default)]
    payment_method: Option<String>,
    #[serde(default)]
    referral_code: Option<String>,
    /// When the order was placed (RFC 3339), on any of its events.
    #[serde(default)]
    placed_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericCustomer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericLine {
    line_id: String,
    #[serde(default)]
    product_id: Option<String>,
    #[serde(default)]
    variant_id: Option<String>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    quantity: u32,
    unit_price: String,
    #[serde(default)]
    discount: Option<String>,
    #[serde(default)]
    included_tax: Option<String>,
    #[serde(default)]
    compare_at_price: Option<String>,
    #[serde(default)]
    collection_ids: Vec<String>,
    #[serde(default)]
    gift_card: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericCode {
    code: String,
    amount: String,
    kind: DiscountKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericRefund {
    refund_id: String,
    order_id: String,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    lines: Option<Vec<GenericRefundLine>>,
    #[serde(default)]
    amount: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericRefundLine {
    line_id: String,
    quantity: u32,
}

// ---------------------------------------------------------------------------
// Mapping

fn optional_money(
    field: &str,
    value: &Option<String>,
    currency: Currency,
) -> Result<Option<Money>, WebhookError> {
    value
        .as_deref()
        .map(|v| json::money(field, v, currency))
        .transpose()
}

fn non_negative(field: &str, money: Money) -> Result<Money, WebhookError> {
    if money.is_negative() {
        Err(WebhookError::invalid(field, "must not be negative"))
    } else {
        Ok(money)
    }
}

fn map_order(
    raw: &GenericOrder,
    currency: Currency,
    occurred_at: DateTime<Utc>,
) -> Result<Order, WebhookError> {
    json::expect_currency("order.currency", &raw.currency, currency)?;
    let lines = raw
        .lines
        .iter()
        .enumerate()
        .map(|(i, line)| map_line(i, line, currency))
        .collect::<Result<Vec<_>, _>>()?;
    let customer = match &raw.customer {
        None => CustomerRef::default(),
        Some(c) => CustomerRef {
            id: c
                .id
                .as_deref()
                .map(|id| json::id("order.customer.id", id, CustomerId::parse))
                .transpose()?,
            email: c
                .email
                .as_deref()
                .map(|e| json::id("order.customer.email", e, Email::parse))
                .transpose()?,
        },
    };
    let discount_codes = raw
        .discount_codes
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let field = |name: &str| format!("order.discount_codes[{i}].{name}");
            Ok(AppliedCode {
                code: json::id(&field("code"), &d.code, Code::parse)?,
                amount: non_negative(
                    &field("amount"),
                    json::money(&field("amount"), &d.amount, currency)?,
                )?,
                kind: d.kind,
            })
        })
        .collect::<Result<Vec<_>, WebhookError>>()?;
    Ok(Order {
        order_id: json::id("order.order_id", &raw.order_id, OrderId::parse)?,
        customer,
        currency,
        lines,
        subtotal: json::money("order.subtotal", &raw.subtotal, currency)?,
        shipping: optional_money("order.shipping", &raw.shipping, currency)?
            .unwrap_or(Money::zero(currency)),
        total: json::money("order.total", &raw.total, currency)?,
        discount_codes,
        checkout_id: raw
            .checkout_id
            .as_deref()
            .map(|id| json::id("order.checkout_id", id, CheckoutId::parse))
            .transpose()?,
        payment_methods: json::present(&raw.payment_method)
            .map(str::to_string)
            .into_iter()
            .collect(),
        referral_code: raw
            .referral_code
            .as_deref()
            .map(|c| json::id("order.referral_code", c, Code::parse))
            .transpose()?,
        placed_at: json::present(&raw.placed_at)
            .map(|at| json::rfc3339("order.placed_at", at))
            .transpose()?,
        occurred_at,
    })
}

fn map_line(i: usize, raw: &GenericLine, currency: Currency) -> Result<Line, WebhookError> {
    let field = |name: &str| format!("order.lines[{i}].{name}");
    Ok(Line {
        line_id: json::id(&field("line_id"), &raw.line_id, LineId::parse)?,
        product_id: raw
            .product_id
            .as_deref()
            .map(|id| json::id(&field("product_id"), id, ProductId::parse))
            .transpose()?,
        variant_id: raw
            .variant_id
            .as_deref()
            .map(|id| json::id(&field("variant_id"), id, VariantId::parse))
            .transpose()?,
        sku: json::present(&raw.sku).map(str::to_string),
        vendor: json::present(&raw.vendor).map(str::to_string),
        quantity: raw.quantity,
        unit_price: non_negative(
            &field("unit_price"),
            json::money(&field("unit_price"), &raw.unit_price, currency)?,
        )?,
        discount: non_negative(
            &field("discount"),
            optional_money(&field("discount"), &raw.discount, currency)?
                .unwrap_or(Money::zero(currency)),
        )?,
        included_tax: optional_money(&field("included_tax"), &raw.included_tax, currency)?
            .map(|tax| non_negative(&field("included_tax"), tax))
            .transpose()?,
        gift_card: raw.gift_card,
        compare_at_price: optional_money(
            &field("compare_at_price"),
            &raw.compare_at_price,
            currency,
        )?,
        collection_ids: raw
            .collection_ids
            .iter()
            .enumerate()
            .map(|(j, id)| {
                json::id(
                    &field(&format!("collection_ids[{j}]")),
                    id,
                    CollectionId::parse,
                )
            })
            .collect::<Result<Vec<_>, _>>()?,
    })
}

fn map_refund(
    raw: &GenericRefund,
    currency: Currency,
    occurred_at: DateTime<Utc>,
) -> Result<Refund, WebhookError> {
    if let Some(code) = &raw.currency {
        json::expect_currency("refund.currency", code, currency)?;
    }
    let basis = match (&raw.lines, &raw.amount) {
        (Some(lines), None) => RefundBasis::Lines {
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    Ok(RefundedLine {
                        line_id: json::id(
                            &format!("refund.lines[{i}].line_id"),
                            &line.line_id,
                            LineId::parse,
                        )?,
                        quantity: line.quantity,
                    })
                })
                .collect::<Result<Vec<_>, WebhookError>>()?,
        },
        (None, Some(amount)) => RefundBasis::Amount {
            amount: non_negative(
                "refund.amount",
                json::money("refund.amount", amount, currency)?,
            )?,
        },
        (Some(_), Some(_)) => {
            return Err(WebhookError::invalid(
                "refund",
                "give either lines or amount, not both",
            ))
        }
        (None, None) => {
            return Err(WebhookError::invalid(
                "refund",
                "give either lines or amount",
            ))
        }
    };
    Ok(Refund {
        refund_id: json::id("refund.refund_id", &raw.refund_id, RefundId::parse)?,
        order_id: json::id("refund.order_id", &raw.order_id, OrderId::parse)?,
        basis,
        occurred_at,
    })
}
