//! Shopify webhooks: the `X-Shopify-*` headers, the base64 HMAC, and the REST
//! Order and Refund resources that orders/create, orders/paid,
//! orders/fulfilled, orders/cancelled and refunds/create deliver.
//!
//! The ledger is kept in the shop's currency, so every amount is read from a
//! `*_set.shop_money` bag where the payload has one and from the plain string
//! field (in the order's `currency`, which is the shop's) otherwise. Only the
//! fields the engine uses are declared; anything else Shopify adds is ignored
//! so a new API version does not break deliveries.
//!
//! Flow for the caller: [`shop_of`] (unauthenticated) -> look up the shop's
//! secrets and currency -> [`verify`] -> [`parse`]. [`parse_webhook`] does the
//! last two in one call.

use cashback_core::ids::{
    CheckoutId, Code, CustomerId, LineId, OrderId, ProductId, RefundId, ShopId, VariantId,
};
use cashback_core::money::{Currency, Money};
use cashback_core::order::{
    AppliedCode, CustomerRef, DiscountKind, Line, Order, OrderEvent, Refund, RefundBasis,
    RefundedLine,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::delivery::{Delivery, Outcome, Platform, TransportIds};
use crate::error::WebhookError;
use crate::headers::Headers;
use crate::json::{self, RawId};
use crate::signature;

pub const HMAC_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const SHOP_HEADER: &str = "X-Shopify-Shop-Domain";
pub const TOPIC_HEADER: &str = "X-Shopify-Topic";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";
pub const EVENT_ID_HEADER: &str = "X-Shopify-Event-Id";
pub const TRIGGERED_AT_HEADER: &str = "X-Shopify-Triggered-At";

/// Note attributes (cart attributes) that carry a referral code.
const REFERRAL_ATTRIBUTES: &[&str] = &["referral_code", "ref"];

/// The note attribute (cart attribute) a storefront sets to a cashback
/// coupon's code. A cashback coupon takes nothing off the order, so it
/// cannot be a Shopify discount code (those must discount something): the
/// storefront puts it in the cart's attributes instead, as it does a
/// referral code.
pub const CASHBACK_COUPON_ATTRIBUTE: &str = "cashback_coupon";

/// Reads a Shopify header under its `X-Shopify-` name or the unprefixed
/// `Shopify-` name that Shopify's newer Events deliveries use.
fn header<'h>(headers: &'h Headers, name: &'static str) -> Option<&'h str> {
    let unprefixed = name.strip_prefix("X-").unwrap_or(name);
    headers.get_any(&[name, unprefixed])
}

/// The shop the delivery claims to be for. Unauthenticated: use it only to
/// find the secrets to [`verify`] with.
pub fn shop_of(headers: &Headers) -> Result<ShopId, WebhookError> {
    let domain = header(headers, SHOP_HEADER).ok_or(WebhookError::MissingHeader {
        header: SHOP_HEADER,
    })?;
    ShopId::parse(domain).map_err(|e| WebhookError::InvalidHeader {
        header: SHOP_HEADER,
        reason: e.to_string(),
    })
}

/// Checks `X-Shopify-Hmac-Sha256` against the shop's secrets (current first,
/// then the previous one while rotating).
pub fn verify<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
) -> Result<(), WebhookError> {
    crate::check_size(body)?;
    signature::verify_base64(HMAC_HEADER, header(headers, HMAC_HEADER), body, secrets)?;
    Ok(())
}

/// Verifies, then parses.
pub fn parse_webhook<S: AsRef<[u8]>>(
    headers: &Headers,
    body: &[u8],
    secrets: &[S],
    shop_currency: Currency,
) -> Result<Delivery, WebhookError> {
    verify(headers, body, secrets)?;
    parse(headers, body, shop_currency)
}

/// Turns a verified delivery into core events. The compliance topics and
/// app/uninstalled are [`Outcome::Shop`] requests
/// ([`crate::shop_requests`]). Topics other than those and orders/create,
/// orders/paid, orders/fulfilled, orders/cancelled and refunds/create are
/// [`Outcome::Ignored`].
pub fn parse(
    headers: &Headers,
    body: &[u8],
    shop_currency: Currency,
) -> Result<Delivery, WebhookError> {
    crate::check_size(body)?;
    let shop = shop_of(headers)?;
    let topic = header(headers, TOPIC_HEADER)
        .filter(|t| !t.is_empty())
        .ok_or(WebhookError::MissingHeader {
            header: TOPIC_HEADER,
        })?
        .to_ascii_lowercase();
    let transport = TransportIds {
        webhook_id: header(headers, WEBHOOK_ID_HEADER).map(str::to_string),
        event_id: header(headers, EVENT_ID_HEADER).map(str::to_string),
        delivery_id: None,
        triggered_at: header(headers, TRIGGERED_AT_HEADER)
            .and_then(|at| json::rfc3339(TRIGGERED_AT_HEADER, at).ok()),
    };
    // The compliance topics and app/uninstalled are about the shop, not an
    // order; their body must name the header's shop.
    if let Some(request) = crate::shop_requests::parse(&topic, &shop, body)? {
        return Ok(Delivery {
            platform: Platform::Shopify,
            shop,
            topic,
            transport,
            outcome: Outcome::Shop(Box::new(request)),
            test: false,
        });
    }
    // The topic and shop headers are not signed: the body must agree.
    let claims = crate::claims::shopify(&topic, &shop, body)?;
    let event = match topic.as_str() {
        "orders/create" => Some(OrderEvent::Created(order(
            body,
            shop_currency,
            When::Created,
        )?)),
        "orders/paid" => Some(OrderEvent::Paid(order(body, shop_currency, When::Paid)?)),
        "orders/fulfilled" => Some(OrderEvent::Fulfilled(order(
            body,
            shop_currency,
            When::Fulfilled,
        )?)),
        "orders/cancelled" => Some(OrderEvent::Cancelled(order(
            body,
            shop_currency,
            When::Cancelled,
        )?)),
        "refunds/create" => Some(OrderEvent::Refunded(refund(body, shop_currency)?)),
        _ => None,
    };
    let outcome = match event {
        Some(event) => Outcome::Events(vec![event]),
        None => Outcome::Ignored {
            reason: format!("Shopify topic {topic} is not used by the cashback engine"),
        },
    };
    Ok(Delivery {
        platform: Platform::Shopify,
        shop,
        topic,
        transport,
        outcome,
        test: claims.test,
    })
}

// ---------------------------------------------------------------------------
// Payload shapes (REST Admin API Order and Refund resources), only the fields
// we use. Arrays that Shopify may send as null are read as empty.

fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct ShopMoney {
    amount: String,
    currency_code: String,
}

/// A `*_set` money bag; the presentment side is the buyer's currency and is
/// not used.
#[derive(Deserialize)]
struct MoneySet {
    shop_money: ShopMoney,
}

#[derive(Deserialize)]
struct ShopifyOrder {
    id: RawId,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    contact_email: Option<String>,
    #[serde(default)]
    customer: Option<ShopifyCustomer>,
    #[serde(default)]
    checkout_id: Option<RawId>,
    #[serde(default)]
    checkout_token: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    processed_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    cancelled_at: Option<String>,
    #[serde(default)]
    subtotal_price: Option<String>,
    #[serde(default)]
    subtotal_price_set: Option<MoneySet>,
    #[serde(default)]
    total_price: Option<String>,
    #[serde(default)]
    total_price_set: Option<MoneySet>,
    #[serde(default)]
    total_shipping_price_set: Option<MoneySet>,
    #[serde(default)]
    taxes_included: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    line_items: Vec<ShopifyLine>,
    #[serde(default, deserialize_with = "nullable")]
    shipping_lines: Vec<ShippingLine>,
    #[serde(default, deserialize_with = "nullable")]
    discount_codes: Vec<DiscountCode>,
    #[serde(default, deserialize_with = "nullable")]
    discount_applications: Vec<DiscountApplication>,
    #[serde(default, deserialize_with = "nullable")]
    payment_gateway_names: Vec<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    note_attributes: Vec<NoteAttribute>,
}

#[derive(Deserialize)]
struct ShopifyCustomer {
    #[serde(default)]
    id: Option<RawId>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct ShopifyLine {
    id: RawId,
    #[serde(default)]
    product_id: Option<RawId>,
    #[serde(default)]
    variant_id: Option<RawId>,
    #[serde(default)]
    sku: Option<String>,
    #[serde(default)]
    vendor: Option<String>,
    quantity: u32,
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    price_set: Option<MoneySet>,
    #[serde(default)]
    gift_card: Option<bool>,
    #[serde(default)]
    total_discount: Option<String>,
    #[serde(default)]
    total_discount_set: Option<MoneySet>,
    #[serde(default, deserialize_with = "nullable")]
    tax_lines: Vec<Priced>,
    #[serde(default, deserialize_with = "nullable")]
    discount_allocations: Vec<Allocation>,
}

#[derive(Deserialize)]
struct ShippingLine {
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    price_set: Option<MoneySet>,
    #[serde(default, deserialize_with = "nullable")]
    discount_allocations: Vec<Allocation>,
}

/// A tax line: `price` is the tax amount.
#[derive(Deserialize)]
struct Priced {
    #[serde(default)]
    price: Option<String>,
    #[serde(default)]
    price_set: Option<MoneySet>,
}

#[derive(Deserialize)]
struct Allocation {
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    amount_set: Option<MoneySet>,
    #[serde(default)]
    discount_application_index: Option<usize>,
}

#[derive(Deserialize)]
struct DiscountCode {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct DiscountApplication {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    target_type: Option<String>,
    #[serde(default)]
    target_selection: Option<String>,
}

#[derive(Deserialize)]
struct NoteAttribute {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ShopifyRefund {
    id: RawId,
    order_id: RawId,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    processed_at: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(default, deserialize_with = "nullable")]
    refund_shipping_lines: Vec<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "nullable")]
    order_adjustments: Vec<OrderAdjustment>,
    #[serde(default, deserialize_with = "nullable")]
    transactions: Vec<RefundTransaction>,
}

#[derive(Deserialize)]
struct RefundLineItem {
    line_item_id: RawId,
    quantity: u32,
}

/// Money refunded that no line accounts for: `shipping_refund` (shipping)
/// or `refund_discrepancy` (an amount refunded beyond, or short of, the
/// lines' value; negative when money went back to the customer).
#[derive(Deserialize)]
struct OrderAdjustment {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    amount_set: Option<MoneySet>,
}

#[derive(Deserialize)]
struct RefundTransaction {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    currency: Option<String>,
}

// ---------------------------------------------------------------------------
// Mapping

#[derive(Clone, Copy)]
enum When {
    Created,
    Paid,
    Fulfilled,
    Cancelled,
}

/// An amount from a money bag (preferred) or a plain string, `None` if the
/// payload has neither.
fn amount(
    field: &str,
    set: Option<&MoneySet>,
    plain: Option<&str>,
    currency: Currency,
) -> Result<Option<Money>, WebhookError> {
    if let Some(set) = set {
        let bag_field = format!("{field}_set.shop_money");
        json::expect_currency(
            &format!("{bag_field}.currency_code"),
            &set.shop_money.currency_code,
            currency,
        )?;
        let money = json::money(
            &format!("{bag_field}.amount"),
            &set.shop_money.amount,
            currency,
        )?;
        return Ok(Some(money));
    }
    plain
        .map(|plain| json::money(field, plain, currency))
        .transpose()
}

fn required_amount(
    field: &str,
    set: Option<&MoneySet>,
    plain: Option<&str>,
    currency: Currency,
) -> Result<Money, WebhookError> {
    amount(field, set, plain, currency)?.ok_or_else(|| WebhookError::missing(field))
}

fn allocation_amount(
    field: &str,
    allocation: &Allocation,
    currency: Currency,
) -> Result<Money, WebhookError> {
    Ok(amount(
        field,
        allocation.amount_set.as_ref(),
        allocation.amount.as_deref(),
        currency,
    )?
    .unwrap_or(Money::zero(currency)))
}

fn sum(currency: Currency, amounts: &[Money]) -> Result<Money, WebhookError> {
    Money::sum(currency, amounts).map_err(|source| WebhookError::Money {
        field: "sum of amounts".to_string(),
        source,
    })
}

fn order(body: &[u8], currency: Currency, when: When) -> Result<Order, WebhookError> {
    let raw: ShopifyOrder = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "Shopify order",
        source,
    })?;
    if let Some(code) = json::present(&raw.currency) {
        json::expect_currency("currency", code, currency)?;
    }
    let order_id = json::id("id", raw.id.as_str(), OrderId::parse)?;
    let taxes_included = raw.taxes_included.unwrap_or(false);

    let lines = raw
        .line_items
        .iter()
        .enumerate()
        .map(|(i, line)| map_line(i, line, currency, taxes_included))
        .collect::<Result<Vec<_>, _>>()?;

    let subtotal = required_amount(
        "subtotal_price",
        raw.subtotal_price_set.as_ref(),
        raw.subtotal_price.as_deref(),
        currency,
    )?;
    let total = required_amount(
        "total_price",
        raw.total_price_set.as_ref(),
        raw.total_price.as_deref(),
        currency,
    )?;
    let shipping = match raw.total_shipping_price_set.as_ref() {
        Some(set) => required_amount("total_shipping_price", Some(set), None, currency)?,
        None => {
            let prices = raw
                .shipping_lines
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    Ok(amount(
                        &format!("shipping_lines[{i}].price"),
                        line.price_set.as_ref(),
                        line.price.as_deref(),
                        currency,
                    )?
                    .unwrap_or(Money::zero(currency)))
                })
                .collect::<Result<Vec<_>, WebhookError>>()?;
            sum(currency, &prices)?
        }
    };

    let customer = CustomerRef {
        id: match raw.customer.as_ref().and_then(|c| c.id.as_ref()) {
            Some(id) => Some(json::id("customer.id", id.as_str(), CustomerId::parse)?),
            None => None,
        },
        email: json::email(raw.customer.as_ref().and_then(|c| json::present(&c.email)))
            .or_else(|| json::email(json::present(&raw.email)))
            .or_else(|| json::email(json::present(&raw.contact_email))),
    };

    let checkout_id = match (&raw.checkout_id, json::present(&raw.checkout_token)) {
        (Some(id), _) => Some(json::id("checkout_id", id.as_str(), CheckoutId::parse)?),
        (None, Some(token)) => Some(json::id("checkout_token", token, CheckoutId::parse)?),
        (None, None) => None,
    };

    let occurred_at = occurred_at(&raw, when)?;

    Ok(Order {
        order_id,
        customer,
        currency,
        lines,
        subtotal,
        shipping,
        total,
        discount_codes: with_cashback_coupon(applied_codes(&raw, currency)?, &raw, currency),
        checkout_id,
        payment_methods: payment_methods(&raw.payment_gateway_names),
        referral_code: referral_code(&raw.note_attributes),
        placed_at: placed_at(&raw)?,
        occurred_at,
    })
}

fn map_line(
    i: usize,
    line: &ShopifyLine,
    currency: Currency,
    taxes_included: bool,
) -> Result<Line, WebhookError> {
    let field = |name: &str| format!("line_items[{i}].{name}");
    let unit_price = required_amount(
        &field("price"),
        line.price_set.as_ref(),
        line.price.as_deref(),
        currency,
    )?;
    // Shopify leaves `total_discount` at 0.00 while the allocations carry the
    // real discount, so the allocations win whenever there are any.
    let discount = if line.discount_allocations.is_empty() {
        amount(
            &field("total_discount"),
            line.total_discount_set.as_ref(),
            line.total_discount.as_deref(),
            currency,
        )?
        .unwrap_or(Money::zero(currency))
    } else {
        let amounts = line
            .discount_allocations
            .iter()
            .enumerate()
            .map(|(j, a)| {
                allocation_amount(&field(&format!("discount_allocations[{j}]")), a, currency)
            })
            .collect::<Result<Vec<_>, _>>()?;
        sum(currency, &amounts)?
    };
    let included_tax = if taxes_included {
        let taxes = line
            .tax_lines
            .iter()
            .enumerate()
            .map(|(j, tax)| {
                Ok(amount(
                    &field(&format!("tax_lines[{j}].price")),
                    tax.price_set.as_ref(),
                    tax.price.as_deref(),
                    currency,
                )?
                .unwrap_or(Money::zero(currency)))
            })
            .collect::<Result<Vec<_>, WebhookError>>()?;
        Some(sum(currency, &taxes)?)
    } else {
        None
    };
    Ok(Line {
        line_id: json::id(&field("id"), line.id.as_str(), LineId::parse)?,
        product_id: line
            .product_id
            .as_ref()
            .map(|p| json::id(&field("product_id"), p.as_str(), ProductId::parse))
            .transpose()?,
        variant_id: line
            .variant_id
            .as_ref()
            .map(|v| json::id(&field("variant_id"), v.as_str(), VariantId::parse))
            .transpose()?,
        sku: json::present(&line.sku).map(str::to_string),
        vendor: json::present(&line.vendor).map(str::to_string),
        quantity: line.quantity,
        unit_price,
        discount,
        included_tax,
        gift_card: line.gift_card.unwrap_or(false),
        // Order line items carry no compare-at price or collections: those
        // need a catalog lookup, which is not this crate's job.
        compare_at_price: None,
        collection_ids: Vec::new(),
    })
}

/// Every gateway the order was paid through (a gift card and a card, say),
/// in Shopify's order; blank names are dropped.
fn payment_methods(gateways: &[Option<String>]) -> Vec<String> {
    gateways
        .iter()
        .filter_map(json::present)
        .map(str::to_string)
        .collect()
}

/// Maps `discount_codes` to [`AppliedCode`]s.
///
/// Kind rule: a code of type `shipping`, or whose discount application
/// targets `shipping_line`, is [`DiscountKind::Shipping`]; one whose
/// application targets `line_item` with `target_selection` `entitled` or
/// `explicit` (only some products) is [`DiscountKind::Product`]; everything
/// else (`percentage` / `fixed_amount` over `all` lines, or no matching
/// application) is [`DiscountKind::Order`].
///
/// Amount: the shop-money allocations of the matching application where
/// there are any (exact, and in the shop's currency), else the code's
/// `amount`. Codes that are not valid engine codes (spaces, symbols) cannot
/// be one of ours and are skipped rather than failing the order.
fn applied_codes(raw: &ShopifyOrder, currency: Currency) -> Result<Vec<AppliedCode>, WebhookError> {
    let mut applied = Vec::new();
    for (i, discount) in raw.discount_codes.iter().enumerate() {
        let Some(text) = json::present(&discount.code) else {
            continue;
        };
        let Ok(code) = Code::parse(text) else {
            continue;
        };
        let index = application_index(&raw.discount_applications, text);
        let application = index.and_then(|i| raw.discount_applications.get(i));

        let kind_is = |value: &Option<String>, expected: &[&str]| {
            json::present(value).is_some_and(|v| expected.iter().any(|e| v.eq_ignore_ascii_case(e)))
        };
        let kind = if kind_is(&discount.kind, &["shipping"])
            || application.is_some_and(|a| kind_is(&a.target_type, &["shipping_line"]))
        {
            DiscountKind::Shipping
        } else if application.is_some_and(|a| {
            kind_is(&a.target_type, &["line_item"])
                && kind_is(&a.target_selection, &["entitled", "explicit"])
        }) {
            DiscountKind::Product
        } else {
            DiscountKind::Order
        };

        let allocated = match index {
            Some(index) => allocated_to(raw, index, currency)?,
            None => None,
        };
        let amount = match allocated {
            Some(amount) => amount,
            None => match json::present(&discount.amount) {
                Some(value) => {
                    json::money(&format!("discount_codes[{i}].amount"), value, currency)?
                }
                None => Money::zero(currency),
            },
        };
        applied.push(AppliedCode { code, amount, kind });
    }
    Ok(applied)
}

/// The discount application a code belongs to: by `code`, else by `title`
/// (manual and some script discounts carry the code only as their title).
fn application_index(applications: &[DiscountApplication], code: &str) -> Option<usize> {
    let matches =
        |value: &Option<String>| json::present(value).is_some_and(|v| v.eq_ignore_ascii_case(code));
    applications
        .iter()
        .position(|a| matches(&a.code))
        .or_else(|| applications.iter().position(|a| matches(&a.title)))
}

/// The sum of allocations pointing at application `index`, over line items
/// and shipping lines; `None` when nothing is allocated to it.
fn allocated_to(
    raw: &ShopifyOrder,
    index: usize,
    currency: Currency,
) -> Result<Option<Money>, WebhookError> {
    let mut amounts = Vec::new();
    for (i, line) in raw.line_items.iter().enumerate() {
        for (j, allocation) in line.discount_allocations.iter().enumerate() {
            if allocation.discount_application_index == Some(index) {
                let field = format!("line_items[{i}].discount_allocations[{j}]");
                amounts.push(allocation_amount(&field, allocation, currency)?);
            }
        }
    }
    for (i, line) in raw.shipping_lines.iter().enumerate() {
        for (j, allocation) in line.discount_allocations.iter().enumerate() {
            if allocation.discount_application_index == Some(index) {
                let field = format!("shipping_lines[{i}].discount_allocations[{j}]");
                amounts.push(allocation_amount(&field, allocation, currency)?);
            }
        }
    }
    if amounts.is_empty() {
        Ok(None)
    } else {
        Ok(Some(sum(currency, &amounts)?))
    }
}

/// The order's discount codes, and the cashback coupon its cart attribute
/// names (granting nothing: a zero amount), unless it is already among
/// them. An unusable value is dropped, not the order.
fn with_cashback_coupon(
    mut codes: Vec<AppliedCode>,
    raw: &ShopifyOrder,
    currency: Currency,
) -> Vec<AppliedCode> {
    let coupon = raw.note_attributes.iter().find_map(|attribute| {
        let name = json::present(&attribute.name)?;
        if !name.eq_ignore_ascii_case(CASHBACK_COUPON_ATTRIBUTE) {
            return None;
        }
        attribute
            .value
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|v| Code::parse(v).ok())
    });
    if let Some(code) = coupon {
        if !codes.iter().any(|applied| applied.code == code) {
            codes.push(AppliedCode {
                code,
                amount: Money::zero(currency),
                kind: DiscountKind::Order,
            });
        }
    }
    codes
}

/// A referral code from the cart's note attributes. An unusable value is
/// dropped: a shopper-typed attribute must not fail the whole order.
fn referral_code(attributes: &[NoteAttribute]) -> Option<Code> {
    attributes.iter().find_map(|attribute| {
        let name = json::present(&attribute.name)?;
        if !REFERRAL_ATTRIBUTES
            .iter()
            .any(|r| name.eq_ignore_ascii_case(r))
        {
            return None;
        }
        attribute
            .value
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|v| Code::parse(v).ok())
    })
}

/// created: `created_at`; paid: `processed_at`; fulfilled: `updated_at`; cancelled: `cancelled_at`;
/// each falling back to the next best time the payload has.
fn occurred_at(raw: &ShopifyOrder, when: When) -> Result<DateTime<Utc>, WebhookError> {
    let candidates: [(&str, &Option<String>); 3] = match when {
        When::Created => [
            ("created_at", &raw.created_at),
            ("processed_at", &raw.processed_at),
            ("updated_at", &raw.updated_at),
        ],
        When::Paid => [
            ("processed_at", &raw.processed_at),
            ("updated_at", &raw.updated_at),
            ("created_at", &raw.created_at),
        ],
        When::Fulfilled => [
            ("updated_at", &raw.updated_at),
            ("processed_at", &raw.processed_at),
            ("created_at", &raw.created_at),
        ],
        When::Cancelled => [
            ("cancelled_at", &raw.cancelled_at),
            ("updated_at", &raw.updated_at),
            ("processed_at", &raw.processed_at),
        ],
    };
    first_time(&candidates)
}

/// When the order was placed: `processed_at`, else `created_at`; None
/// when the payload has neither (a malformed one is refused).
fn placed_at(raw: &ShopifyOrder) -> Result<Option<DateTime<Utc>>, WebhookError> {
    let candidates = [
        ("processed_at", &raw.processed_at),
        ("created_at", &raw.created_at),
    ];
    if candidates.iter().all(|(_, v)| json::present(v).is_none()) {
        return Ok(None);
    }
    first_time(&candidates).map(Some)
}

fn first_time(candidates: &[(&str, &Option<String>)]) -> Result<DateTime<Utc>, WebhookError> {
    for (field, value) in candidates {
        if let Some(value) = json::present(value) {
            return json::rfc3339(field, value);
        }
    }
    Err(WebhookError::missing(
        candidates.first().map_or("timestamp", |c| c.0),
    ))
}

fn refund(body: &[u8], currency: Currency) -> Result<Refund, WebhookError> {
    let raw: ShopifyRefund = serde_json::from_slice(body).map_err(|source| WebhookError::Json {
        what: "Shopify refund",
        source,
    })?;
    let lines = raw
        .refund_line_items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            Ok(RefundedLine {
                line_id: json::id(
                    &format!("refund_line_items[{i}].line_item_id"),
                    item.line_item_id.as_str(),
                    LineId::parse,
                )?,
                quantity: item.quantity,
            })
        })
        .collect::<Result<Vec<_>, WebhookError>>()?;
    let amount = refunded_beyond_lines(&raw, currency)?;
    // A shipping-only refund has no line items and no discrepancy: Lines
    // with an empty list refunds no merchandise, exactly right for cashback.
    let basis = match (lines.is_empty(), amount) {
        (_, None) => RefundBasis::Lines { lines },
        (true, Some(amount)) => RefundBasis::Amount { amount },
        (false, Some(amount)) => RefundBasis::LinesAndAmount { lines, amount },
    };
    Ok(Refund {
        refund_id: json::id("id", raw.id.as_str(), RefundId::parse)?,
        order_id: json::id("order_id", raw.order_id.as_str(), OrderId::parse)?,
        basis,
        occurred_at: first_time(&[
            ("created_at", &raw.created_at),
            ("processed_at", &raw.processed_at),
        ])?,
    })
}

/// Money a refund gives back beyond its lines and shipping, which the
/// engine takes as merchandise refunded by amount:
/// - the `refund_discrepancy` order adjustments (negated: Shopify records
///   money returned as a negative adjustment); a discrepancy that returned
///   less than the lines' value takes nothing off the lines;
/// - for a refund with no lines, no shipping and no adjustment at all (a
///   bare amount refunded through the API), its successful `refund`
///   transactions in the shop's currency.
fn refunded_beyond_lines(
    raw: &ShopifyRefund,
    currency: Currency,
) -> Result<Option<Money>, WebhookError> {
    let mut discrepancies = Vec::new();
    for (i, adjustment) in raw.order_adjustments.iter().enumerate() {
        let is_discrepancy = json::present(&adjustment.kind)
            .is_some_and(|kind| kind.eq_ignore_ascii_case("refund_discrepancy"));
        if !is_discrepancy {
            continue;
        }
        if let Some(amount) = amount(
            &format!("order_adjustments[{i}].amount"),
            adjustment.amount_set.as_ref(),
            adjustment.amount.as_deref(),
            currency,
        )? {
            discrepancies.push(amount.negated());
        }
    }
    let bare = raw.refund_line_items.is_empty()
        && raw.refund_shipping_lines.is_empty()
        && raw.order_adjustments.is_empty();
    let mut refunded = Vec::new();
    if bare {
        for (i, transaction) in raw.transactions.iter().enumerate() {
            let is = |value: &Option<String>, expected: &str| {
                json::present(value).is_some_and(|v| v.eq_ignore_ascii_case(expected))
            };
            let succeeded =
                json::present(&transaction.status).is_none() || is(&transaction.status, "success");
            // A transaction in the buyer's currency cannot be compared with
            // the shop's ledger; Shopify's adjustments are in shop money.
            let in_shop_currency = json::present(&transaction.currency)
                .is_none_or(|code| code.eq_ignore_ascii_case(currency.code()));
            if !is(&transaction.kind, "refund") || !succeeded || !in_shop_currency {
                continue;
            }
            if let Some(value) = json::present(&transaction.amount) {
                refunded.push(json::money(
                    &format!("transactions[{i}].amount"),
                    value,
                    currency,
                )?);
            }
        }
    }
    let total = sum(currency, &discrepancies)?.checked_add(sum(currency, &refunded)?);
    let total = total.map_err(|source| WebhookError::Money {
        field: "order_adjustments".to_string(),
        source,
    })?;
    Ok(total.is_positive().then_some(total))
}
