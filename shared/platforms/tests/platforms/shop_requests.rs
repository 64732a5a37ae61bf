//! Shopify's compliance topics and app/uninstalled: Shopify's documented
//! payloads, signed and parsed; the body must name the header's shop.

use crate::common::*;
use cashback_core::ids::{CustomerId, Email, OrderId};
use cashback_core::money::Currency;
use cashback_platforms::{
    shopify, CustomerSubject, Headers, Outcome, ShopRequest, SignatureError, WebhookError,
};

const SHOP: &str = "northridge-outfitters.myshopify.com";

fn data_request(shop_domain: &str) -> Vec<u8> {
    format!(
        r#"{{"shop_id":954889,"shop_domain":"{shop_domain}","orders_requested":[299938,280263,220458],
            "customer":{{"id":191167,"email":"john@example.com","phone":"555-625-1199"}},
            "data_request":{{"id":9999}}}}"#
    )
    .into_bytes()
}

fn redact(shop_domain: &str) -> Vec<u8> {
    format!(
        r#"{{"shop_id":954889,"shop_domain":"{shop_domain}",
            "customer":{{"id":191167,"email":"john@example.com","phone":"555-625-1199"}},
            "orders_to_redact":[299938,280263,220458]}}"#
    )
    .into_bytes()
}

fn parse(topic: &str, body: &[u8]) -> Result<ShopRequest, WebhookError> {
    let headers = shopify_headers(topic, body);
    let delivery = shopify::parse_webhook(&headers, body, &[SECRET], Currency::USD)?;
    assert!(delivery.events().is_empty());
    match delivery.outcome {
        Outcome::Shop(request) => Ok(*request),
        other => panic!("expected a shop request, got {other:?}"),
    }
}

fn john() -> CustomerSubject {
    CustomerSubject {
        id: Some(CustomerId::parse("191167").unwrap()),
        email: Some(Email::parse("john@example.com").unwrap()),
    }
}

fn orders() -> Vec<OrderId> {
    ["299938", "280263", "220458"]
        .iter()
        .map(|id| OrderId::parse(id).unwrap())
        .collect()
}

#[test]
fn a_data_request_names_the_customer_the_orders_and_the_request() {
    let request = parse("customers/data_request", &data_request(SHOP)).unwrap();
    assert_eq!(
        request,
        ShopRequest::CustomerDataRequest {
            customer: john(),
            orders: orders(),
            request_id: Some("9999".into()),
        }
    );
    assert_eq!(request.kind(), "customer_data_request");
}

#[test]
fn a_customer_redaction_names_the_customer_and_the_orders() {
    let request = parse("customers/redact", &redact(SHOP)).unwrap();
    assert_eq!(
        request,
        ShopRequest::CustomerRedact {
            customer: john(),
            orders: orders(),
        }
    );
}

#[test]
fn a_shop_redaction_and_an_uninstall_are_read() {
    let body = format!(r#"{{"shop_id":954889,"shop_domain":"{SHOP}"}}"#).into_bytes();
    assert_eq!(
        parse("shop/redact", &body).unwrap(),
        ShopRequest::ShopRedact
    );
    let shop = format!(
        r#"{{"id":548380009,"name":"Northridge","email":"owner@example.com","domain":"shop.example.com",
            "myshopify_domain":"{SHOP}","currency":"USD"}}"#
    )
    .into_bytes();
    assert_eq!(
        parse("app/uninstalled", &shop).unwrap(),
        ShopRequest::AppUninstalled
    );
}

#[test]
fn a_redaction_whose_body_names_another_shop_is_refused() {
    let err = parse("customers/redact", &redact("other-shop.myshopify.com")).unwrap_err();
    assert!(matches!(err, WebhookError::ShopMismatch { .. }), "{err}");
    assert_eq!(err.status(), 400);
    let err = parse("shop/redact", br#"{"shop_id":1}"#).unwrap_err();
    assert_eq!(err.code(), "missing_field");
    let err = parse(
        "app/uninstalled",
        br#"{"id":1,"myshopify_domain":"x.myshopify.com"}"#,
    )
    .unwrap_err();
    assert_eq!(err.code(), "shop_mismatch");
}

#[test]
fn an_unsigned_or_wrongly_signed_redaction_is_401() {
    let body = redact(SHOP);
    let unsigned: Headers = Headers::new()
        .with("X-Shopify-Topic", "customers/redact")
        .with("X-Shopify-Shop-Domain", SHOP);
    let err = shopify::parse_webhook(&unsigned, &body, &[SECRET], Currency::USD).unwrap_err();
    assert_eq!(err.status(), 401);
    let headers = unsigned.with(
        "X-Shopify-Hmac-Sha256",
        cashback_platforms::sign_base64(b"another-app-secret-entirely", &body),
    );
    let err = shopify::parse_webhook(&headers, &body, &[SECRET], Currency::USD).unwrap_err();
    assert!(matches!(
        err,
        WebhookError::Signature(SignatureError::Mismatch)
    ));
}

#[test]
fn a_customer_with_a_blank_email_or_no_customer_is_still_a_request() {
    let body = format!(
        r#"{{"shop_domain":"{SHOP}","customer":{{"id":"191167","email":""}},"orders_to_redact":[]}}"#
    )
    .into_bytes();
    let ShopRequest::CustomerRedact { customer, orders } =
        parse("customers/redact", &body).unwrap()
    else {
        panic!("expected a redaction");
    };
    assert_eq!(customer.email, None);
    assert_eq!(customer.id, Some(CustomerId::parse("191167").unwrap()));
    assert!(orders.is_empty());
    let body = format!(r#"{{"shop_domain":"{SHOP}"}}"#).into_bytes();
    let ShopRequest::CustomerDataRequest { customer, .. } =
        parse("customers/data_request", &body).unwrap()
    else {
        panic!("expected a data request");
    };
    assert_eq!(customer, CustomerSubject::default());
}
