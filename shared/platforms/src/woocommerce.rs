//! WooCommerce webhooks: the `X-WC-Webhook-*` headers, the base64 HMAC, the
//! unsigned creation ping, and the REST v3 Order resource that order.created
//! and order.updated deliver.
//!
//! WooCommerce has no refund topic and no event id: a refund arrives as an
//! order.updated whose `refunds[]` lists every refund so far, and the payload
//! is built when it is sent, not when the change happened. So one delivery
//! may yield several events (paid, fulfilled, each refund), and the engine's
//! effect keys (order id, refund id) make the repeats harmless.
//!
//! Status mapping:
//! - `processing` -> Paid, then one Refunded per `refunds[]` entry;
//! - `completed` -> Paid and Fulfilled (an order can reach completed without
//!   ever being processing, e.g. virtual goods, and the program may earn on
//!   either trigger), then the refunds;
//! - `refunded` -> the refunds only (no Paid: a fully refunded order earns
//!   nothing, and if it earned earlier the refunds claw it back);
//! - `cancelled` -> Cancelled (it voids and claws back everything, so the
//!   refunds are not sent as well);
//! - anything else (pending, on-hold, failed, trash, custom statuses) ->
//!   Ignored.
//!
//! Flow for the caller: [`identify`] (a ping is answered 200 at once; else
//! the shop from `X-WC-Webhook-Source`) -> look up secrets -> [`verify`] ->
//! [`parse`].

use cashback_core::ids::{
    Code, CustomerId, LineId, OrderId, ProductId, RefundId, ShopId, VariantId,
};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{
    AppliedCode, CustomerRef, DiscountKind, Line, Order, OrderEvent, Refund, RefundBasis,
    RefundedLine,
};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::delivery::{Delivery, Identified, Outcome, Ping, Platform, Received, TransportIds};
use crate::error::WebhookError;
use crate::headers::Headers;
use crate::json::{self, RawId};
use crate::signature;

pub const SIGNATURE_HEADER: &str = "X-WC-Webhook-Signature";
pub const SOURCE_HEADER: &str = "X-WC-Webhook-Source";
pub const TOPIC_HEADER: &str = "X-WC-Webhook-Topic";
pub const WEBHOOK_ID_HEADER: &str = "X-WC-Webhook-ID";
pub const DELIVERY_ID_HEADER: &str = "X-WC-Webhook-Delivery-ID";

/// Meta data keys that carry a referral code.
const REFERRAL_KEYS: &[&str] = &["referral_code", "ref"];

/// Recognises the ping WooCommerce sends when a webhook is created: a form
/// body `webhook_id=<id>` with no `X-WC-Webhook-*` headers and no signature.
pub fn ping_of(headers: &Headers, body: &[u8]) -> Option<Ping> {
    if headers.get(SIGNATURE_HEADER).is_some() || headers.get(TOPIC_HEADER).is_some() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    let (key, id) = text.split_once('=')?;
    let is_id = !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit());
    (key == "webhook_id" && is_id).then(|| Ping {
        webhook_id: id.to_string(),
    })
}

/// The shop named by `X-WC-Webhook-Source` (the site's home URL): its host,
/// lower case, without scheme, port or path. Unauthenticated.
pub fn shop_of(headers: &Headers) -> Result<ShopId, WebhookError> {
    let source = headers
        .get(SOURCE_HEADER)
        .ok_or(WebhookError::MissingHeader {
            header: SOURCE_HEADER,
        })?;
    let invalid = |reason: String| WebhookError::InvalidHeader {
        header: SOURCE_HEADER,
        reason,
    };
    let without_scheme = source.split_once("://").map_or(source, |(_, rest)| rest);
    let authority = without_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = host_port
        .split_once(':')
        .map_or(host_port, |(host, _)| host);
    if host.is_empty() {
        return Err(invalid("no host in the site URL".to_string()));
    }
    ShopId::parse(host).map_err(|e| invalid(e.to_string()))
}

/// The first, unauthenticated look: a ping, or the shop to find secrets for.
pub fn identify(headers: &Headers, body: &[u8]) -> Result<Identified, WebhookError> {
    crate::check_size(body)?;
    match ping_of(headers, body) {
        Some(ping) => Ok(Identified::Ping(ping)),
        None => shop_of(headers).map(Identified::Shop),
    }
}

/// Checks `X-WC-Webhook-Signature`. Use the secret exactly as the webhook's
/// settings screen shows it.
pub fn verify<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
) -> Result<(), WebhookError> {
    crate::check_size(body)?;
    signature::verify_base64(
        SIGNATURE_HEADER,
        headers.get(SIGNATURE_HEADER),
        body,
        secrets,
    )?;
    Ok(())
}

/// Answers a ping, or verifies and parses.
pub fn parse_webhook<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
    shop_currency: Currency,
) -> Result<Received, WebhookError> {
    crate::check_size(body)?;
    if let Some(ping) = ping_of(headers, body) {
        return Ok(Received::Ping(ping));
    }
    verify(headers, body, secrets)?;
    parse(headers, body, shop_currency).map(Received::Delivery)
}

/// Turns a verified order.created / order.updated delivery into core events;
/// other topics are [`Outcome::Ignored`].
pub fn parse(
    headers: &Headers,
    body: &[u8],
    shop_currency: Currency,
) -> Result<Delivery, WebhookError> {
    crate::check_size(body)?;
    let shop = shop_of(headers)?;
    let topic = headers
        .get(TOPIC_HEADER)
        .filter(|t| !t.is_empty())
        .ok_or(WebhookError::MissingHeader {
            header: TOPIC_HEADER,
        })?
        .to_ascii_lowercase();
    let transport = TransportIds {
        webhook_id: headers.get(WEBHOOK_ID_HEADER).map(str::to_string),
        event_id: None,
        delivery_id: headers.get(DELIVERY_ID_HEADER).map(str::to_string),
        triggered_at: None,
    };
    let outcome = match topic.as_str() {
        "order.created" | "order.updated" => {
            // The topic header is not signed: the body must be an order of
            // this site.
            crate::claims::woocommerce(&topic, &shop, body)?;
            order_events(body, shop_currency)?
        }
        _ => Outcome::Ignored {
            reason: format!("WooCommerce topic {topic} is not used by the cashback engine"),
        },
    };
    Ok(Delivery {
        platform: Platform::WooCommerce,
        shop,
        topic,
        transport,
        outcome,
        test: false,
    })
}

// ---------------------------------------------------------------------------
// Payload shapes (REST v3 Order), only the fields we use. Line `price` is a
// JSON float in WooCommerce's output and is deliberately not read.

fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct WooOrder {
    id: RawId,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    date_created_gmt: Option<String>,
    #[serde(default)]
    date_modified_gmt: Option<String>,
    #[serde(default)]
    date_paid_gmt: Option<String>,
    #[serde(default)]
    date_completed_gmt: Option<String>,
    #[serde(default)]
    customer_id: Option<RawId>,
    #[serde(default)]
    billing: Option<Billing>,
    #[serde(default)]
    payment_method: Option<String>,
    #[serde(default)]
    shipping_total: Option<String>,
    #[serde(default)]
    total: Option<String>,
    #[serde(default)]
    prices_include_tax: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    line_items: Vec<WooLine>,
    #[serde(default, deserialize_with = "nullable")]
    coupon_lines: Vec<WooCoupon>,
    #[serde(default, deserialize_with = "nullable")]
    refunds: Vec<WooRefund>,
    #[serde(default, deserialize_with = "nullable")]
    meta_data: Vec<Meta>,
}

#[derive(Deserialize)]
struct Billing {
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct WooLine {
    id: RawId,
    #[serde(default)]
    product_id: Option<RawId>,
    #[serde(default)]
    variation_id: Option<RawId>,
    #[serde(default)]
    sku: Option<String>,
    quantity: u32,
    subtotal: String,
    total: String,
}

#[derive(Deserialize)]
struct WooCoupon {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    discount: Option<String>,
    /// Tax on the discount: part of what the customer was given when the
    /// shop's prices include tax.
    #[serde(default)]
    discount_tax: Option<String>,
    /// Sent by recent WooCommerce versions: percent, fixed_cart, fixed_product.
    #[serde(default)]
    discount_type: Option<String>,
}

#[derive(Deserialize)]
struct WooRefund {
    id: RawId,
    total: String,
    /// Not in WooCommerce's order summary of a refund; present when a site
    /// embeds the order-refund resource's lines (its shape), and then used.
    #[serde(default)]
    line_items: Option<Vec<WooRefundLine>>,
    #[serde(default)]
    shipping_lines: Option<Vec<serde::de::IgnoredAny>>,
}

/// A line of an order refund: negative quantity and totals, and the order
/// line it gives back in `_refunded_item_id`.
#[derive(Deserialize)]
struct WooRefundLine {
    #[serde(default)]
    refunded_item_id: Option<RawId>,
    #[serde(default)]
    quantity: Option<i64>,
    #[serde(default)]
    total: Option<String>,
    #[serde(default)]
    total_tax: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    meta_data: Vec<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------
// Mapping

fn order_events(body: &[u8], currency: Currency) -> Result<Outcome, WebhookError> {
    let raw: WooOrder = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "WooCommerce order",
        source,
    })?;
    let status = json::present(&raw.status)
        .ok_or_else(|| WebhookError::missing("status"))?
        .to_ascii_lowercase();
    let (paid, fulfilled, refunds, cancelled) = match status.as_str() {
        "processing" => (true, false, true, false),
        "completed" => (true, true, true, false),
        "refunded" => (false, false, true, false),
        "cancelled" => (false, false, false, true),
        _ => {
            return Ok(Outcome::Ignored {
                reason: format!("WooCommerce status {status} earns and changes nothing"),
            })
        }
    };

    let mut events = Vec::new();
    if paid || fulfilled || cancelled {
        let order = map_order(&raw, currency)?;
        if paid {
            let at = first_time(&[
                ("date_paid_gmt", &raw.date_paid_gmt),
                ("date_modified_gmt", &raw.date_modified_gmt),
                ("date_created_gmt", &raw.date_created_gmt),
            ])?;
            events.push(OrderEvent::Paid(Order {
                occurred_at: at,
                ..order.clone()
            }));
        }
        if fulfilled {
            let at = first_time(&[
                ("date_completed_gmt", &raw.date_completed_gmt),
                ("date_modified_gmt", &raw.date_modified_gmt),
                ("date_created_gmt", &raw.date_created_gmt),
            ])?;
            events.push(OrderEvent::Fulfilled(Order {
                occurred_at: at,
                ..order.clone()
            }));
        }
        if cancelled {
            let at = first_time(&[
                ("date_modified_gmt", &raw.date_modified_gmt),
                ("date_created_gmt", &raw.date_created_gmt),
            ])?;
            events.push(OrderEvent::Cancelled(Order {
                occurred_at: at,
                ..order
            }));
        }
    }
    if refunds {
        events.extend(map_refunds(&raw, currency)?);
    }
    if events.is_empty() {
        return Ok(Outcome::Ignored {
            reason: format!("WooCommerce order with status {status} and no refunds"),
        });
    }
    Ok(Outcome::Events(events))
}

/// When the order was placed: `date_paid_gmt`, else `date_created_gmt`;
/// None when the payload has neither (a malformed one is refused).
fn placed_at(raw: &WooOrder) -> Result<Option<DateTime<Utc>>, WebhookError> {
    let candidates = [
        ("date_paid_gmt", &raw.date_paid_gmt),
        ("date_created_gmt", &raw.date_created_gmt),
    ];
    if candidates.iter().all(|(_, v)| json::present(v).is_none()) {
        return Ok(None);
    }
    first_time(&candidates).map(Some)
}

fn first_time(candidates: &[(&str, &Option<String>)]) -> Result<DateTime<Utc>, WebhookError> {
    for (field, value) in candidates {
        if let Some(value) = json::present(value) {
            return json::utc_naive(field, value);
        }
    }
    Err(WebhookError::missing(
        candidates.first().map_or("timestamp", |c| c.0),
    ))
}

fn check_currency(raw: &WooOrder, currency: Currency) -> Result<(), WebhookError> {
    let code = json::present(&raw.currency).ok_or_else(|| WebhookError::missing("currency"))?;
    json::expect_currency("currency", code, currency)
}

fn map_order(raw: &WooOrder, currency: Currency) -> Result<Order, WebhookError> {
    check_currency(raw, currency)?;
    let lines = raw
        .line_items
        .iter()
        .enumerate()
        .map(|(i, line)| map_line(i, line, currency))
        .collect::<Result<Vec<_>, _>>()?;
    // WooCommerce has no order subtotal after discounts: it is the sum of the
    // lines' `total`s, i.e. their price times quantity less discounts.
    let line_totals = raw
        .line_items
        .iter()
        .enumerate()
        .map(|(i, line)| {
            json::money_rounded(&format!("line_items[{i}].total"), &line.total, currency)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let subtotal = Money::sum(currency, &line_totals).map_err(|source| WebhookError::Money {
        field: "line_items[].total".to_string(),
        source,
    })?;
    let customer_id = match &raw.customer_id {
        // 0 is WooCommerce's guest.
        Some(id) if id.as_str() != "0" => {
            Some(json::id("customer_id", id.as_str(), CustomerId::parse)?)
        }
        _ => None,
    };
    Ok(Order {
        order_id: json::id("id", raw.id.as_str(), OrderId::parse)?,
        customer: CustomerRef {
            id: customer_id,
            email: json::email(raw.billing.as_ref().and_then(|b| json::present(&b.email))),
        },
        currency,
        lines,
        subtotal,
        shipping: match json::present(&raw.shipping_total) {
            Some(value) => json::money_rounded("shipping_total", value, currency)?,
            None => Money::zero(currency),
        },
        total: json::money_rounded(
            "total",
            json::present(&raw.total).ok_or_else(|| WebhookError::missing("total"))?,
            currency,
        )?,
        discount_codes: applied_codes(
            &raw.coupon_lines,
            raw.prices_include_tax.unwrap_or(false),
            currency,
        )?,
        checkout_id: None,
        payment_methods: json::present(&raw.payment_method)
            .map(str::to_string)
            .into_iter()
            .collect(),
        referral_code: referral_code(&raw.meta_data),
        placed_at: placed_at(raw)?,
        // Replaced per event by the caller.
        occurred_at: DateTime::<Utc>::UNIX_EPOCH,
    })
}

/// Unit price rule: WooCommerce gives a line's `subtotal` (price x quantity
/// before discounts, excluding tax) and `total` (after discounts, excluding
/// tax), both rounded to the currency, while its unit `price` is a float.
/// When `subtotal / quantity` is exact at the currency's minor unit it is the
/// unit price; otherwise the line becomes one unit priced at the whole
/// subtotal, so every amount stays exact (`unit_price x quantity = subtotal`,
/// `discount = subtotal - total`). Refunds from WooCommerce are amounts, not
/// units, so nothing depends on the quantity being the shop's.
fn map_line(i: usize, line: &WooLine, currency: Currency) -> Result<Line, WebhookError> {
    let field = |name: &str| format!("line_items[{i}].{name}");
    let subtotal = json::money_rounded(&field("subtotal"), &line.subtotal, currency)?;
    let total = json::money_rounded(&field("total"), &line.total, currency)?;
    let (quantity, unit_price) = match exact_unit_price(subtotal, line.quantity) {
        Some(unit) => (line.quantity, unit),
        None => (1, subtotal),
    };
    let discount = subtotal
        .checked_sub(total)
        .map_err(|source| WebhookError::Money {
            field: field("total"),
            source,
        })?;
    Ok(Line {
        line_id: json::id(&field("id"), line.id.as_str(), LineId::parse)?,
        product_id: optional_id(&line.product_id)
            .map(|id| json::id(&field("product_id"), id.as_str(), ProductId::parse))
            .transpose()?,
        variant_id: optional_id(&line.variation_id)
            .map(|id| json::id(&field("variation_id"), id.as_str(), VariantId::parse))
            .transpose()?,
        sku: json::present(&line.sku).map(str::to_string),
        vendor: None,
        quantity,
        unit_price,
        discount,
        // Line subtotal and total exclude tax even when prices include it.
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    })
}

/// WooCommerce sends 0 for "no product" (a deleted or custom item) and for
/// "no variation".
fn optional_id(raw: &Option<RawId>) -> Option<&RawId> {
    raw.as_ref().filter(|id| id.as_str() != "0")
}

fn exact_unit_price(subtotal: Money, quantity: u32) -> Option<Money> {
    if quantity == 0 {
        return None;
    }
    let unit = subtotal.amount().checked_div(Decimal::from(quantity))?;
    let unit = Money::new(unit, subtotal.currency()).ok()?;
    (unit.times(quantity).ok()? == subtotal).then_some(unit)
}

/// Coupons are order discounts, except `fixed_product` coupons (known when
/// WooCommerce sends `discount_type`), which are product discounts. Codes
/// that cannot be engine codes are skipped.
///
/// Amount: what the customer was given. When the shop's prices include tax,
/// WooCommerce splits a coupon's 100.00 into `discount` 83.33 and
/// `discount_tax` 16.67, so the amount is their sum; otherwise `discount`
/// alone (the coupon's face value, taken off before tax).
fn applied_codes(
    coupons: &[WooCoupon],
    prices_include_tax: bool,
    currency: Currency,
) -> Result<Vec<AppliedCode>, WebhookError> {
    let mut applied = Vec::new();
    for (i, coupon) in coupons.iter().enumerate() {
        let Some(code) = json::present(&coupon.code).and_then(|c| Code::parse(c).ok()) else {
            continue;
        };
        let part = |name: &str, value: &Option<String>| match json::present(value) {
            Some(value) => {
                json::money_rounded(&format!("coupon_lines[{i}].{name}"), value, currency)
            }
            None => Ok(Money::zero(currency)),
        };
        let mut amount = part("discount", &coupon.discount)?;
        if prices_include_tax {
            amount = amount
                .checked_add(part("discount_tax", &coupon.discount_tax)?)
                .map_err(|source| WebhookError::Money {
                    field: format!("coupon_lines[{i}].discount_tax"),
                    source,
                })?;
        }
        let kind = match json::present(&coupon.discount_type) {
            Some(t) if t.eq_ignore_ascii_case("fixed_product") => DiscountKind::Product,
            _ => DiscountKind::Order,
        };
        applied.push(AppliedCode { code, amount, kind });
    }
    Ok(applied)
}

fn referral_code(meta: &[Meta]) -> Option<Code> {
    meta.iter().find_map(|entry| {
        let key = json::present(&entry.key)?;
        if !REFERRAL_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k)) {
            return None;
        }
        entry
            .value
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|v| Code::parse(v).ok())
    })
}

/// One Refunded per `refunds[]` entry. The entries carry no date, so the
/// order's `date_modified_gmt` stands in; the effect key (order id, refund
/// id) is what deduplicates, not the time.
///
/// Basis: WooCommerce's summary of a refund is only its total, which becomes
/// `RefundBasis::Amount` (the engine takes it as a share of the merchandise,
/// so a shipping charge does not dilute it). When the entry carries its
/// lines (`line_items` / `shipping_lines`, the order-refund resource's
/// shape), they are used instead: units of the order's lines given back,
/// money refunded on a line without units (or on a line kept as one unit,
/// see [`map_line`]) as an amount, and shipping lines as nothing.
fn map_refunds(raw: &WooOrder, currency: Currency) -> Result<Vec<OrderEvent>, WebhookError> {
    if raw.refunds.is_empty() {
        return Ok(Vec::new());
    }
    check_currency(raw, currency)?;
    let order_id = json::id("id", raw.id.as_str(), OrderId::parse)?;
    let at = first_time(&[
        ("date_modified_gmt", &raw.date_modified_gmt),
        ("date_created_gmt", &raw.date_created_gmt),
    ])?;
    raw.refunds
        .iter()
        .enumerate()
        .map(|(i, refund)| {
            let amount =
                json::money_rounded(&format!("refunds[{i}].total"), &refund.total, currency)?;
            // WooCommerce lists refunds as negative totals ("-10.00").
            let amount = if amount.is_negative() {
                amount.negated()
            } else {
                amount
            };
            let basis = if refund.line_items.is_some() || refund.shipping_lines.is_some() {
                refund_lines(raw, i, refund, currency)?
            } else {
                RefundBasis::Amount { amount }
            };
            Ok(OrderEvent::Refunded(Refund {
                refund_id: json::id(
                    &format!("refunds[{i}].id"),
                    refund.id.as_str(),
                    RefundId::parse,
                )?,
                order_id: order_id.clone(),
                basis,
                occurred_at: at,
            }))
        })
        .collect()
}

/// The basis of a refund entry that lists its lines.
fn refund_lines(
    raw: &WooOrder,
    index: usize,
    refund: &WooRefund,
    currency: Currency,
) -> Result<RefundBasis, WebhookError> {
    let mut lines = Vec::new();
    let mut amounts = Vec::new();
    for (j, item) in refund.line_items.iter().flatten().enumerate() {
        let field = |name: &str| format!("refunds[{index}].line_items[{j}].{name}");
        let refunded_id = item
            .refunded_item_id
            .as_ref()
            .map(|id| id.as_str().to_string())
            .or_else(|| {
                item.meta_data.iter().find_map(|meta| {
                    let key = json::present(&meta.key)?;
                    if key != "_refunded_item_id" {
                        return None;
                    }
                    match meta.value.as_ref()? {
                        serde_json::Value::String(id) => Some(id.trim().to_string()),
                        serde_json::Value::Number(id) => Some(id.to_string()),
                        _ => None,
                    }
                })
            });
        // The order line it refunds, if the order lists it with its units kept.
        let order_line = refunded_id.as_deref().and_then(|id| {
            raw.line_items
                .iter()
                .enumerate()
                .find(|(_, line)| line.id.as_str() == id)
        });
        let units = item.quantity.map_or(0, i64::unsigned_abs);
        let units_kept = match order_line {
            Some((i, line)) => {
                let subtotal = json::money_rounded(
                    &format!("line_items[{i}].subtotal"),
                    &line.subtotal,
                    currency,
                )?;
                exact_unit_price(subtotal, line.quantity).is_some()
            }
            None => false,
        };
        match (order_line, u32::try_from(units)) {
            (Some((_, line)), Ok(units)) if units > 0 && units_kept => {
                lines.push(RefundedLine {
                    line_id: json::id(
                        &field("_refunded_item_id"),
                        line.id.as_str(),
                        LineId::parse,
                    )?,
                    quantity: units,
                });
            }
            _ => {
                for (name, value) in [("total", &item.total), ("total_tax", &item.total_tax)] {
                    if let Some(value) = json::present(value) {
                        let money = json::money_rounded(&field(name), value, currency)?;
                        amounts.push(if money.is_negative() {
                            money.negated()
                        } else {
                            money
                        });
                    }
                }
            }
        }
    }
    let amount = Money::sum(currency, &amounts).map_err(|source| WebhookError::Money {
        field: format!("refunds[{index}].line_items[].total"),
        source,
    })?;
    Ok(match (lines.is_empty(), amount.is_positive()) {
        (_, false) => RefundBasis::Lines { lines },
        (true, true) => RefundBasis::Amount { amount },
        (false, true) => RefundBasis::LinesAndAmount { lines, amount },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_creation_ping_is_recognised_without_headers() {
        let ping = ping_of(&Headers::new(), b"webhook_id=17").unwrap();
        assert_eq!(ping.webhook_id, "17");
        assert_eq!(
            identify(&Headers::new(), b"webhook_id=17\n").unwrap(),
            Identified::Ping(Ping {
                webhook_id: "17".to_string()
            })
        );
    }

    #[test]
    fn a_signed_request_is_never_taken_for_a_ping() {
        let headers = Headers::new().with(SIGNATURE_HEADER, "abc=");
        assert!(ping_of(&headers, b"webhook_id=17").is_none());
        assert!(ping_of(&Headers::new(), b"webhook_id=").is_none());
        assert!(ping_of(&Headers::new(), b"webhook_id=1x").is_none());
        assert!(ping_of(&Headers::new(), b"{\"id\":1}").is_none());
    }

    #[test]
    fn the_shop_is_the_host_of_the_site_url() {
        for (source, host) in [
            ("https://Shop.Example.com/", "shop.example.com"),
            ("http://localhost:8080/wp/", "localhost"),
            ("https://user@tea.example.org", "tea.example.org"),
            ("tea.example.org", "tea.example.org"),
        ] {
            let headers = Headers::new().with(SOURCE_HEADER, source);
            assert_eq!(shop_of(&headers).unwrap().as_str(), host, "{source}");
        }
        assert!(matches!(
            shop_of(&Headers::new().with(SOURCE_HEADER, "https:///")),
            Err(WebhookError::InvalidHeader { .. })
        ));
        assert!(matches!(
            shop_of(&Headers::new()),
            Err(WebhookError::MissingHeader { .. })
        ));
    }

    #[test]
    fn a_unit_price_is_used_only_when_it_divides_exactly() {
        let usd = |s| Money::parse(s, Currency::USD).unwrap();
        assert_eq!(exact_unit_price(usd("90.00"), 2), Some(usd("45.00")));
        assert_eq!(exact_unit_price(usd("10.00"), 3), None);
        assert_eq!(exact_unit_price(usd("10.00"), 0), None);
        assert_eq!(exact_unit_price(usd("0.00"), 4), Some(usd("0.00")));
    }
}
