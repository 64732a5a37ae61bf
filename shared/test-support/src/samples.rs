//! The sample deliveries in `events/`: one API Gateway HTTP API (payload
//! v2) event per platform and topic, signed with the demo shop's
//! development secret, for `cargo lambda invoke` and for the tests.
//!
//! The bodies are ours, written after each platform's documented resource
//! (Shopify's REST Order and Refund, WooCommerce's REST v3 Order, our generic
//! schema in docs/webhooks.md); the Shopify ones tell one order's history:
//! paid, fulfilled, a partial refund, a second refund, cancelled.
//!
//! Signatures cover the exact body bytes, so the events are generated, never
//! edited by hand: `cargo run -p order-webhook --example make-events`
//! rewrites `events/`, and a test fails when the files drift from this code.
//! The generic scheme signs a timestamp and accepts five minutes either way,
//! so the generic events carry [`GENERIC_SIGNED_AT`] and are refused as stale
//! when replayed against the real clock later; the tests run them at that
//! time, and `make-events --now` re-signs them for a manual invoke.

use cashback_platforms::{sign_base64, sign_generic};
use serde_json::{json, Value};

/// The demo shop every sample is for (one shop for the three platforms, so
/// one seeded shop runs them all).
pub const DEMO_SHOP: &str = "demo.myshopify.com";
/// The demo shop's development webhook secret. Development only: a real
/// shop's secret lives in its own environment variable or SSM parameter.
pub const DEMO_SECRET: &str = "demo-webhook-secret";
/// The environment variable the demo shop's `webhook_secret_ref` names.
pub const DEMO_SECRET_VAR: &str = "CASHBACK_SECRET_DEMO_WEBHOOK";
/// The demo shop's `webhook_secret_ref`.
pub const DEMO_SECRET_REF: &str = "env:CASHBACK_SECRET_DEMO_WEBHOOK";
/// When the generic samples were signed: 2026-03-06T15:00:00Z.
pub const GENERIC_SIGNED_AT: i64 = 1_772_809_200;

/// The Shopify order of the samples and its customer.
pub const SHOPIFY_ORDER_ID: u64 = 5_920_381_274_650_001_234;
pub const SHOPIFY_CUSTOMER_ID: u64 = 7_460_129_384_756_102_938;
/// The referral code the Shopify order's cart carried (a note attribute).
pub const SHOPIFY_REFERRAL_CODE: &str = "CB-FRIEND-ANA";
pub const WOO_ORDER_ID: u64 = 5201;
pub const WOO_CUSTOMER_ID: u64 = 77;
pub const GENERIC_ORDER_ID: &str = "G-1001";
pub const GENERIC_CUSTOMER_ID: &str = "g-cust-1";

/// One sample: the file name in `events/` and the request it stands for.
#[derive(Debug, Clone)]
pub struct Sample {
    pub file: &'static str,
    pub platform: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sample {
    /// The API Gateway HTTP API (payload format 2.0) event for this request.
    pub fn api_gateway_event(&self) -> Value {
        let mut headers = serde_json::Map::new();
        headers.insert(
            "host".into(),
            json!("abc123.execute-api.us-east-1.amazonaws.com"),
        );
        headers.insert("content-length".into(), json!(self.body.len().to_string()));
        for (name, value) in &self.headers {
            // API Gateway lower-cases header names in payload v2.
            headers.insert(name.to_ascii_lowercase(), json!(value));
        }
        let path = format!("/webhooks/{}", self.platform);
        json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/{platform}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": "POST",
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.10",
                    "userAgent": self.user_agent()
                },
                "requestId": format!("sample-{}", self.file.trim_end_matches(".json")),
                "routeKey": "POST /webhooks/{platform}",
                "stage": "$default",
                "time": "06/Mar/2026:15:00:00 +0000",
                "timeEpoch": GENERIC_SIGNED_AT * 1000
            },
            "pathParameters": { "platform": self.platform },
            "body": self.body,
            "isBase64Encoded": false
        })
    }

    fn user_agent(&self) -> &'static str {
        match self.platform {
            "shopify" => "Shopify-Captain-Hook",
            "woocommerce" => "WooCommerce/9.8.1 Hookshot (WordPress/6.8)",
            _ => "cashback-generic-sender/1.0",
        }
    }
}

/// Every sample, generic ones signed at `generic_t`.
pub fn all(generic_t: i64) -> Vec<Sample> {
    vec![
        shopify(
            "shopify-orders-paid.json",
            "orders/paid",
            &shopify_order(Stage::Paid),
        ),
        shopify(
            "shopify-orders-fulfilled.json",
            "orders/fulfilled",
            &shopify_order(Stage::Fulfilled),
        ),
        shopify(
            "shopify-refunds-create.json",
            "refunds/create",
            &shopify_refund(FIRST_REFUND),
        ),
        shopify(
            "shopify-refunds-create-second.json",
            "refunds/create",
            &shopify_refund(SECOND_REFUND),
        ),
        shopify(
            "shopify-orders-cancelled.json",
            "orders/cancelled",
            &shopify_order(Stage::Cancelled),
        ),
        woo(
            "woocommerce-order-created.json",
            "order.created",
            &woo_order(false),
        ),
        woo(
            "woocommerce-order-updated-refunds.json",
            "order.updated",
            &woo_order(true),
        ),
        woo_ping(),
        generic("generic-order-paid.json", &generic_paid(), generic_t),
        generic("generic-order-refunded.json", &generic_refund(), generic_t),
    ]
}

/// The sample in `file`.
pub fn named(file: &str, generic_t: i64) -> Option<Sample> {
    all(generic_t).into_iter().find(|s| s.file == file)
}

fn compact(value: &Value) -> String {
    // Platforms send compact JSON; the signature covers these exact bytes.
    value.to_string()
}

/// A Shopify delivery of `body` on `topic`, signed with `secret`.
pub fn shopify_delivery(topic: &str, body: &str, secret: &str) -> Vec<(String, String)> {
    let slug = topic.replace('/', "-");
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Shopify-Topic".into(), topic.into()),
        ("X-Shopify-Shop-Domain".into(), DEMO_SHOP.into()),
        (
            "X-Shopify-Hmac-Sha256".into(),
            sign_base64(secret.as_bytes(), body.as_bytes()),
        ),
        ("X-Shopify-API-Version".into(), "2026-01".into()),
        (
            "X-Shopify-Webhook-Id".into(),
            format!("7d0f3a52-{slug}-4c1e-9b7a-5e2d8c4f1a90"),
        ),
        (
            "X-Shopify-Event-Id".into(),
            format!("e3b1c9d4-{slug}-4f27-a8e6-0c5b7d2e9f13"),
        ),
        (
            "X-Shopify-Triggered-At".into(),
            "2026-03-06T15:00:00.000Z".into(),
        ),
    ]
}

fn shopify(file: &'static str, topic: &str, body: &Value) -> Sample {
    let body = compact(body);
    Sample {
        file,
        platform: "shopify",
        headers: shopify_delivery(topic, &body, DEMO_SECRET),
        body,
    }
}

fn woo(file: &'static str, topic: &str, body: &Value) -> Sample {
    let body = compact(body);
    Sample {
        file,
        platform: "woocommerce",
        headers: woo_delivery(topic, &body, DEMO_SECRET),
        body,
    }
}

/// A WooCommerce delivery of `body` on `topic`, signed with `secret`.
pub fn woo_delivery(topic: &str, body: &str, secret: &str) -> Vec<(String, String)> {
    let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "X-WC-Webhook-Source".into(),
            format!("https://{DEMO_SHOP}/"),
        ),
        ("X-WC-Webhook-Topic".into(), topic.into()),
        ("X-WC-Webhook-Resource".into(), resource.into()),
        ("X-WC-Webhook-Event".into(), event.into()),
        (
            "X-WC-Webhook-Signature".into(),
            sign_base64(secret.as_bytes(), body.as_bytes()),
        ),
        ("X-WC-Webhook-ID".into(), "12".into()),
        (
            "X-WC-Webhook-Delivery-ID".into(),
            format!("d41d8cd98f00b204e9800998ecf8427e-{event}"),
        ),
    ]
}

fn woo_ping() -> Sample {
    Sample {
        file: "woocommerce-ping.json",
        platform: "woocommerce",
        // The ping is a bare form post: no X-WC-* header, no signature.
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: "webhook_id=12".into(),
    }
}

/// A generic delivery of `body`, signed with `secret` at `t`.
pub fn generic_delivery(body: &str, secret: &str, t: i64) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Cashback-Shop".into(), DEMO_SHOP.into()),
        (
            "X-Cashback-Signature".into(),
            sign_generic(secret.as_bytes(), t, body.as_bytes()),
        ),
    ]
}

fn generic(file: &'static str, body: &Value, t: i64) -> Sample {
    let body = compact(body);
    Sample {
        file,
        platform: "generic",
        headers: generic_delivery(&body, DEMO_SECRET, t),
        body,
    }
}

// ---------------------------------------------------------------------------
// Shopify: one order's history.

/// Which event of the order's life a body describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Paid,
    Fulfilled,
    Cancelled,
}

fn money_set(amount: &str) -> Value {
    json!({
        "shop_money": { "amount": amount, "currency_code": "USD" },
        "presentment_money": { "amount": amount, "currency_code": "USD" }
    })
}

const SHOE_LINE: u64 = 14_820_553_000_000_001;
const SOCKS_LINE: u64 = 14_820_553_000_000_002;

/// The Shopify order of the samples: a shoe (120.00) and three pairs of
/// socks (12.50 each), 10% off with TRAIL10, 6.00 shipping, paid 147.75.
pub fn shopify_order(stage: Stage) -> Value {
    shopify_order_with(SHOPIFY_ORDER_ID, "#1051", stage)
}

/// The same cart as [`shopify_order`] under another order id (a customer's
/// second order, in the referral tests).
pub fn shopify_order_with(order_id: u64, name: &str, stage: Stage) -> Value {
    let (financial, fulfillment, updated, cancelled_at, cancel_reason) = match stage {
        Stage::Paid => (
            "paid",
            Value::Null,
            "2026-03-02T09:14:07-05:00",
            Value::Null,
            Value::Null,
        ),
        Stage::Fulfilled => (
            "paid",
            json!("fulfilled"),
            "2026-03-03T16:40:12-05:00",
            Value::Null,
            Value::Null,
        ),
        Stage::Cancelled => (
            "partially_refunded",
            json!("fulfilled"),
            "2026-03-12T11:05:44-04:00",
            json!("2026-03-12T11:05:44-04:00"),
            json!("customer"),
        ),
    };
    json!({
        "id": order_id,
        "admin_graphql_api_id": format!("gid://shopify/Order/{order_id}"),
        "name": name,
        "order_number": 1051,
        "email": "maya.chen@example.com",
        "contact_email": "maya.chen@example.com",
        "created_at": "2026-03-02T09:14:02-05:00",
        "processed_at": "2026-03-02T09:14:05-05:00",
        "updated_at": updated,
        "cancelled_at": cancelled_at,
        "cancel_reason": cancel_reason,
        "closed_at": null,
        "currency": "USD",
        "presentment_currency": "USD",
        "financial_status": financial,
        "fulfillment_status": fulfillment,
        "test": false,
        "confirmed": true,
        "source_name": "web",
        "checkout_id": 36_512_345_678_902u64,
        "checkout_token": "c0ffee00d15c0a11ab1e5eed5a1ad000",
        "taxes_included": false,
        "tax_lines": [],
        "total_tax": "0.00",
        "subtotal_price": "141.75",
        "subtotal_price_set": money_set("141.75"),
        "total_discounts": "15.75",
        "total_discounts_set": money_set("15.75"),
        "total_line_items_price": "157.50",
        "total_line_items_price_set": money_set("157.50"),
        "total_shipping_price_set": money_set("6.00"),
        "total_price": "147.75",
        "total_price_set": money_set("147.75"),
        "payment_gateway_names": ["shopify_payments"],
        "discount_codes": [
            { "code": "TRAIL10", "amount": "15.75", "type": "percentage" }
        ],
        "discount_applications": [
            {
                "type": "discount_code",
                "code": "TRAIL10",
                "title": "TRAIL10",
                "description": null,
                "value": "10.0",
                "value_type": "percentage",
                "allocation_method": "across",
                "target_selection": "all",
                "target_type": "line_item"
            }
        ],
        "note": null,
        "note_attributes": [
            { "name": "referral_code", "value": SHOPIFY_REFERRAL_CODE }
        ],
        "customer": {
            "id": SHOPIFY_CUSTOMER_ID,
            "email": "maya.chen@example.com",
            "first_name": "Maya",
            "last_name": "Chen",
            "state": "enabled",
            "verified_email": true,
            "currency": "USD",
            "admin_graphql_api_id": format!("gid://shopify/Customer/{SHOPIFY_CUSTOMER_ID}")
        },
        "line_items": [
            shopify_line(ShopifyLine {
                id: SHOE_LINE,
                product_id: 8_801_000_000_101,
                variant_id: 4_401_000_000_101,
                title: "Ridge Trail Runner",
                variant_title: "9 / Slate",
                sku: "RTR-09-SLT",
                vendor: "Northridge",
                quantity: 1,
                price: "120.00",
                discount: "12.00",
            }),
            shopify_line(ShopifyLine {
                id: SOCKS_LINE,
                product_id: 8_801_000_000_202,
                variant_id: 4_401_000_000_202,
                title: "Merino Trail Socks",
                variant_title: "M",
                sku: "MTS-M",
                vendor: "Woolly & Co",
                quantity: 3,
                price: "12.50",
                discount: "3.75",
            })
        ],
        "shipping_lines": [
            {
                "id": 4_310_000_000_001u64,
                "title": "Standard",
                "code": "standard",
                "source": "shopify",
                "price": "6.00",
                "price_set": money_set("6.00"),
                "discount_allocations": []
            }
        ],
        "refunds": []
    })
}

struct ShopifyLine {
    id: u64,
    product_id: u64,
    variant_id: u64,
    title: &'static str,
    variant_title: &'static str,
    sku: &'static str,
    vendor: &'static str,
    quantity: u32,
    price: &'static str,
    /// TRAIL10's allocation to the line (Shopify leaves total_discount 0).
    discount: &'static str,
}

fn shopify_line(line: ShopifyLine) -> Value {
    json!({
        "id": line.id,
        "admin_graphql_api_id": format!("gid://shopify/LineItem/{}", line.id),
        "product_id": line.product_id,
        "variant_id": line.variant_id,
        "title": line.title,
        "variant_title": line.variant_title,
        "name": format!("{} - {}", line.title, line.variant_title),
        "sku": line.sku,
        "vendor": line.vendor,
        "quantity": line.quantity,
        "current_quantity": line.quantity,
        "fulfillable_quantity": 0,
        "price": line.price,
        "price_set": money_set(line.price),
        "total_discount": "0.00",
        "total_discount_set": money_set("0.00"),
        "gift_card": false,
        "taxable": true,
        "requires_shipping": true,
        "tax_lines": [],
        "discount_allocations": [
            {
                "amount": line.discount,
                "amount_set": money_set(line.discount),
                "discount_application_index": 0
            }
        ]
    })
}

/// A refund of the sample order.
#[derive(Debug, Clone, Copy)]
pub struct RefundSpec {
    pub id: u64,
    pub line: u64,
    pub quantity: u32,
    pub subtotal: &'static str,
    pub created_at: &'static str,
    pub note: &'static str,
}

/// One pair of socks back.
pub const FIRST_REFUND: RefundSpec = RefundSpec {
    id: 9_401_000_000_001,
    line: SOCKS_LINE,
    quantity: 1,
    subtotal: "11.25",
    created_at: "2026-03-06T10:02:11-05:00",
    note: "Socks too small",
};

/// The shoe back.
pub const SECOND_REFUND: RefundSpec = RefundSpec {
    id: 9_401_000_000_002,
    line: SHOE_LINE,
    quantity: 1,
    subtotal: "108.00",
    created_at: "2026-03-09T14:30:00-04:00",
    note: "Shoe returned",
};

pub fn shopify_refund(spec: RefundSpec) -> Value {
    json!({
        "id": spec.id,
        "order_id": SHOPIFY_ORDER_ID,
        "admin_graphql_api_id": format!("gid://shopify/Refund/{}", spec.id),
        "created_at": spec.created_at,
        "processed_at": spec.created_at,
        "note": spec.note,
        "restock": true,
        "user_id": 990_011,
        "duties": [],
        "order_adjustments": [],
        "refund_shipping_lines": [],
        "refund_line_items": [
            {
                "id": spec.id + 500,
                "line_item_id": spec.line,
                "quantity": spec.quantity,
                "location_id": 6_601_234_567u64,
                "restock_type": "return",
                "subtotal": spec.subtotal,
                "subtotal_set": money_set(spec.subtotal),
                "total_tax": "0.00",
                "total_tax_set": money_set("0.00")
            }
        ],
        "transactions": [
            {
                "id": spec.id + 900,
                "kind": "refund",
                "status": "success",
                "gateway": "shopify_payments",
                "amount": spec.subtotal,
                "currency": "USD"
            }
        ]
    })
}

// ---------------------------------------------------------------------------
// WooCommerce

/// The WooCommerce order: created while processing, then updated once
/// completed with two refunds (the REST v3 Order resource).
pub fn woo_order(completed_with_refunds: bool) -> Value {
    let (status, modified, completed, refunds) = if completed_with_refunds {
        (
            "completed",
            "2026-03-08T17:20:00",
            json!("2026-03-05T12:00:00"),
            json!([
                { "id": 5215, "reason": "Damaged lid", "total": "-8.00" },
                { "id": 5214, "reason": "Out of stock", "total": "-12.00" }
            ]),
        )
    } else {
        ("processing", "2026-03-04T09:01:30", Value::Null, json!([]))
    };
    json!({
        "id": WOO_ORDER_ID,
        "parent_id": 0,
        "number": WOO_ORDER_ID.to_string(),
        "order_key": "wc_order_D3m0k3yQ9x",
        "created_via": "checkout",
        "version": "9.8.1",
        "status": status,
        "currency": "USD",
        "date_created": "2026-03-04T04:00:55",
        "date_created_gmt": "2026-03-04T09:00:55",
        "date_modified": modified,
        "date_modified_gmt": modified,
        "discount_total": "0.00",
        "discount_tax": "0.00",
        "shipping_total": "5.00",
        "shipping_tax": "0.00",
        "cart_tax": "0.00",
        "total": "85.00",
        "total_tax": "0.00",
        "prices_include_tax": false,
        "customer_id": WOO_CUSTOMER_ID,
        "customer_note": "",
        "billing": {
            "first_name": "Jo",
            "last_name": "Kim",
            "address_1": "27 Harbour St",
            "city": "Portland",
            "state": "ME",
            "postcode": "04101",
            "country": "US",
            "email": "jo.kim@example.org",
            "phone": ""
        },
        "payment_method": "stripe",
        "payment_method_title": "Credit card",
        "transaction_id": "ch_3Ndemo000000",
        "date_paid": "2026-03-04T04:01:20",
        "date_paid_gmt": "2026-03-04T09:01:20",
        "date_completed": completed,
        "date_completed_gmt": completed,
        "meta_data": [],
        "line_items": [
            {
                "id": 901,
                "name": "Sencha Loose Leaf 250g",
                "product_id": 301,
                "variation_id": 0,
                "quantity": 2,
                "tax_class": "",
                "subtotal": "40.00",
                "subtotal_tax": "0.00",
                "total": "40.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": "TEA-SEN-250",
                "price": 20
            },
            {
                "id": 902,
                "name": "Cast Iron Teapot",
                "product_id": 302,
                "variation_id": 0,
                "quantity": 1,
                "tax_class": "",
                "subtotal": "40.00",
                "subtotal_tax": "0.00",
                "total": "40.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": "POT-CI-1",
                "price": 40
            }
        ],
        "tax_lines": [],
        "shipping_lines": [
            {
                "id": 903,
                "method_title": "Flat rate",
                "method_id": "flat_rate",
                "total": "5.00",
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": []
            }
        ],
        "fee_lines": [],
        "coupon_lines": [],
        "refunds": refunds
    })
}

// ---------------------------------------------------------------------------
// Generic (docs/webhooks.md)

pub fn generic_paid() -> Value {
    json!({
        "event_id": "evt_demo_paid_0001",
        "type": "order.paid",
        "shop": DEMO_SHOP,
        "occurred_at": "2026-03-06T14:58:00Z",
        "order": {
            "order_id": GENERIC_ORDER_ID,
            "currency": "USD",
            "customer": { "id": GENERIC_CUSTOMER_ID, "email": "sam.rivera@example.net" },
            "lines": [
                {
                    "line_id": "G-1001-1",
                    "product_id": "lamp-01",
                    "sku": "LAMP-01",
                    "vendor": "Lumen",
                    "quantity": 1,
                    "unit_price": "80.00",
                    "discount": "0.00",
                    "collection_ids": ["lighting"]
                },
                {
                    "line_id": "G-1001-2",
                    "product_id": "bulb-04",
                    "sku": "BULB-04",
                    "quantity": 4,
                    "unit_price": "5.00"
                }
            ],
            "subtotal": "100.00",
            "shipping": "4.95",
            "total": "104.95",
            "payment_method": "card"
        }
    })
}

pub fn generic_refund() -> Value {
    json!({
        "event_id": "evt_demo_refund_0001",
        "type": "order.refunded",
        "shop": DEMO_SHOP,
        "occurred_at": "2026-03-06T14:59:00Z",
        "refund": {
            "refund_id": "G-1001-R1",
            "order_id": GENERIC_ORDER_ID,
            "currency": "USD",
            "lines": [{ "line_id": "G-1001-2", "quantity": 2 }]
        }
    })
}
