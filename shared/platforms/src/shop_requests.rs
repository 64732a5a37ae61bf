//! Shopify's requests about a shop or one of its customers rather than an
//! order: the three mandatory compliance topics and `app/uninstalled`.
//!
//! | topic | body (Shopify's documented payload) | becomes |
//! | --- | --- | --- |
//! | `customers/data_request` | `shop_id`, `shop_domain`, `customer` {`id`, `email`, `phone`}, `orders_requested`, `data_request` {`id`} | [`ShopRequest::CustomerDataRequest`] |
//! | `customers/redact` | `shop_id`, `shop_domain`, `customer` {`id`, `email`, `phone`}, `orders_to_redact` | [`ShopRequest::CustomerRedact`] |
//! | `shop/redact` | `shop_id`, `shop_domain` | [`ShopRequest::ShopRedact`] |
//! | `app/uninstalled` | the REST Shop resource (`id`, `domain`, `myshopify_domain`, ...) | [`ShopRequest::AppUninstalled`] |
//!
//! They are signed like every delivery (`X-Shopify-Hmac-Sha256` over the
//! body with the app's secret) and verified before this runs. The shop the
//! request acts on is the one in `X-Shopify-Shop-Domain`, whose secret
//! verified it; the signed body must name the same shop (`shop_domain`,
//! `myshopify_domain` for `app/uninstalled`), else
//! [`WebhookError::ShopMismatch`]: a redaction signed for one shop can
//! never be pointed at another by changing the unsigned header. A body
//! that names no shop is refused too ([`WebhookError::MissingField`]).
//!
//! Customer ids and emails follow the order rules: an id is read as an
//! integer or a string, never through a float; a blank or malformed email
//! is none. A request naming neither is still a request (answered 200, it
//! finds nothing).

use serde::Deserialize;

use cashback_core::ids::{CustomerId, Email, OrderId, ShopId};

use crate::error::WebhookError;
use crate::json::{self, RawId};

/// The topics this module reads.
pub const TOPICS: &[&str] = &[
    "customers/data_request",
    "customers/redact",
    "shop/redact",
    "app/uninstalled",
];

/// What a shop-level delivery asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopRequest {
    /// Export what the engine holds about one customer, so the merchant
    /// can answer the customer (within 30 days).
    CustomerDataRequest {
        /// The customer, as the platform names it.
        customer: CustomerSubject,
        /// The orders the customer asked about (informative).
        orders: Vec<OrderId>,
        /// Shopify's id for the request (`data_request.id`), to quote back.
        request_id: Option<String>,
    },
    /// Erase the customer's personal data (within 30 days).
    CustomerRedact {
        /// The customer, as the platform names it.
        customer: CustomerSubject,
        /// The orders to redact (informative: orders hold no personal data).
        orders: Vec<OrderId>,
    },
    /// Delete everything the engine holds for the shop (sent 48 hours
    /// after the app is uninstalled).
    ShopRedact,
    /// The merchant uninstalled the app: stop syncing codes to the shop.
    AppUninstalled,
}

impl ShopRequest {
    /// The request's name in logs and answers.
    pub fn kind(&self) -> &'static str {
        match self {
            ShopRequest::CustomerDataRequest { .. } => "customer_data_request",
            ShopRequest::CustomerRedact { .. } => "customer_redact",
            ShopRequest::ShopRedact => "shop_redact",
            ShopRequest::AppUninstalled => "app_uninstalled",
        }
    }
}

/// The customer a compliance request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSubject {
    /// The platform's customer id (`customer.id`).
    pub id: Option<CustomerId>,
    /// The customer's email (`customer.email`): a guest's account is keyed
    /// by it.
    pub email: Option<Email>,
}

#[derive(Deserialize)]
struct ComplianceBody {
    #[serde(default)]
    shop_domain: Option<String>,
    #[serde(default)]
    customer: Option<ComplianceCustomer>,
    #[serde(default)]
    orders_requested: Option<Vec<RawId>>,
    #[serde(default)]
    orders_to_redact: Option<Vec<RawId>>,
    #[serde(default)]
    data_request: Option<DataRequest>,
}

#[derive(Deserialize)]
struct ComplianceCustomer {
    #[serde(default)]
    id: Option<RawId>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct DataRequest {
    #[serde(default)]
    id: Option<RawId>,
}

#[derive(Deserialize)]
struct ShopResource {
    #[serde(default)]
    myshopify_domain: Option<String>,
}

/// Parses a verified shop-level delivery; None for any other topic.
pub(crate) fn parse(
    topic: &str,
    shop: &ShopId,
    body: &[u8],
) -> Result<Option<ShopRequest>, WebhookError> {
    let request = match topic {
        "customers/data_request" | "customers/redact" | "shop/redact" => {
            let raw: ComplianceBody =
                serde_json::from_slice(body).map_err(|source| WebhookError::Json {
                    what: "Shopify compliance request",
                    source,
                })?;
            same_shop(shop, "shop_domain", raw.shop_domain.as_deref())?;
            match topic {
                "customers/data_request" => ShopRequest::CustomerDataRequest {
                    customer: subject(raw.customer.as_ref())?,
                    orders: orders("orders_requested", raw.orders_requested)?,
                    request_id: raw
                        .data_request
                        .and_then(|r| r.id)
                        .map(|id| id.as_str().chars().take(64).collect()),
                },
                "customers/redact" => ShopRequest::CustomerRedact {
                    customer: subject(raw.customer.as_ref())?,
                    orders: orders("orders_to_redact", raw.orders_to_redact)?,
                },
                _ => ShopRequest::ShopRedact,
            }
        }
        "app/uninstalled" => {
            let raw: ShopResource =
                serde_json::from_slice(body).map_err(|source| WebhookError::Json {
                    what: "Shopify shop",
                    source,
                })?;
            same_shop(shop, "myshopify_domain", raw.myshopify_domain.as_deref())?;
            ShopRequest::AppUninstalled
        }
        _ => return Ok(None),
    };
    Ok(Some(request))
}

/// The signed body must name the shop of the unsigned header.
fn same_shop(shop: &ShopId, field: &str, in_body: Option<&str>) -> Result<(), WebhookError> {
    let in_body = in_body
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| WebhookError::missing(field))?;
    let named = ShopId::parse(in_body).map_err(|source| WebhookError::Id {
        field: field.to_string(),
        source,
    })?;
    if &named != shop {
        return Err(WebhookError::ShopMismatch {
            in_header: shop.to_string(),
            in_body: named.to_string(),
        });
    }
    Ok(())
}

fn subject(customer: Option<&ComplianceCustomer>) -> Result<CustomerSubject, WebhookError> {
    let Some(customer) = customer else {
        return Ok(CustomerSubject::default());
    };
    Ok(CustomerSubject {
        id: match &customer.id {
            Some(id) => Some(json::id("customer.id", id.as_str(), CustomerId::parse)?),
            None => None,
        },
        email: json::email(json::present(&customer.email)),
    })
}

fn orders(field: &str, ids: Option<Vec<RawId>>) -> Result<Vec<OrderId>, WebhookError> {
    ids.unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, id)| json::id(&format!("{field}[{i}]"), id.as_str(), OrderId::parse))
        .collect()
}
