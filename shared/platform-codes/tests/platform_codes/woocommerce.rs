//! The WooCommerce adapter against the local fake of the REST API.

use std::time::Duration;

use rust_decimal_macros::dec;

use cashback_app::platform_codes::{
    CodeOwner, Combines, DesiredCode, PlatformCodes, PlatformError, PutOutcome,
};
use cashback_core::ids::{Code, CustomerId, Email};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::{WooCodes, WooConfig};
use cashback_test_support::fakes::faults::Fault;
use cashback_test_support::fakes::woocommerce::{self as fake, FakeWoo};

fn usd(amount: rust_decimal::Decimal) -> Money {
    Money::new(amount, Currency::USD).unwrap()
}

fn desired(code: &str, amount: rust_decimal::Decimal) -> DesiredCode {
    DesiredCode {
        code: Code::parse(code).unwrap(),
        account: CustomerId::parse("42").unwrap(),
        amount: usd(amount),
        active: amount > dec!(0),
        restricted_to: Some(CodeOwner {
            customer: Some(CustomerId::parse("42").unwrap()),
            email: Some(Email::parse("ann@example.com").unwrap()),
        }),
        min_subtotal: usd(dec!(20)),
        combines: Combines {
            shipping: false,
            order: false,
            product: false,
        },
    }
}

fn adapter(site: &FakeWoo, secret: &str) -> WooCodes {
    let mut config =
        WooConfig::new(&site.url(), fake::CONSUMER_KEY, secret, Currency::USD).unwrap();
    config.timeout = Duration::from_millis(500);
    WooCodes::new(config).unwrap()
}

#[tokio::test]
async fn a_new_coupon_is_fixed_cart_for_the_owners_email_with_the_minimum() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    let outcome = codes.put(&desired("cb-abc", dec!(12.30))).await.unwrap();
    assert!(
        matches!(outcome, PutOutcome::Created(ref s) if s.amount == usd(dec!(12.30)) && s.managed)
    );
    let coupon = site.coupon("cb-abc").unwrap();
    assert_eq!(coupon.discount_type, "fixed_cart");
    assert_eq!(coupon.amount, dec!(12.30));
    assert_eq!(coupon.email_restrictions, ["ann@example.com"]);
    assert_eq!(coupon.minimum_amount, dec!(20.00));
    assert!(coupon.individual_use, "combines with nothing");
    assert_eq!(coupon.usage_limit, None);
    assert!(coupon.is_active());
}

#[tokio::test]
async fn updates_are_absolute_and_an_empty_coupon_is_zero_and_expired() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    codes.put(&desired("cb-abc", dec!(9))).await.unwrap();
    codes.put(&desired("cb-abc", dec!(4))).await.unwrap();
    assert_eq!(site.coupon("cb-abc").unwrap().amount, dec!(4));
    let mut empty = desired("cb-abc", dec!(2));
    empty.active = false;
    codes.put(&empty).await.unwrap();
    let coupon = site.coupon("cb-abc").unwrap();
    assert_eq!(coupon.amount, dec!(0));
    assert!(coupon.date_expires.is_some());
    assert!(!coupon.is_active());
    codes.put(&desired("cb-abc", dec!(5))).await.unwrap();
    assert!(site.coupon("cb-abc").unwrap().is_active());
    assert_eq!(site.stats().calls.get("update"), Some(&3));
}

#[tokio::test]
async fn a_lost_create_is_found_again_and_a_foreign_coupon_is_refused() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    site.push_pass(); // the lookup
    site.push_fault(Fault::Duplicate); // the create: made, answered 503
    assert!(codes.put(&desired("cb-abc", dec!(3))).await.is_err());
    let fresh = adapter(&site, fake::CONSUMER_SECRET);
    assert!(matches!(
        fresh.put(&desired("cb-abc", dec!(3))).await.unwrap(),
        PutOutcome::Updated(_)
    ));
    site.add_foreign_coupon("spring");
    assert!(matches!(
        fresh.put(&desired("spring", dec!(3))).await.unwrap_err(),
        PlatformError::CodeTaken
    ));
    assert_eq!(site.coupon("spring").unwrap().discount_type, "percent");
}

#[tokio::test]
async fn a_429_is_a_throttle_a_5xx_transient_and_bad_keys_unauthorized() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    site.push_fault(Fault::Throttle);
    assert!(matches!(
        codes.put(&desired("cb-abc", dec!(3))).await.unwrap_err(),
        PlatformError::Throttled { .. }
    ));
    site.push_fault(Fault::ServerError);
    assert!(matches!(
        codes.put(&desired("cb-abc", dec!(3))).await.unwrap_err(),
        PlatformError::Transient { .. }
    ));
    let wrong = adapter(&site, "cs_wrong");
    assert!(matches!(
        wrong.put(&desired("cb-abc", dec!(3))).await.unwrap_err(),
        PlatformError::Unauthorized
    ));
}

#[tokio::test]
async fn an_owner_without_an_email_cannot_be_expressed_and_nothing_is_made() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    let mut nameless = desired("cb-abc", dec!(3));
    nameless.restricted_to = Some(CodeOwner {
        customer: Some(CustomerId::parse("42").unwrap()),
        email: None,
    });
    assert!(matches!(
        codes.put(&nameless).await.unwrap_err(),
        PlatformError::Rejected { ref reason } if reason.contains("email")
    ));
    assert!(site.coupon("cb-abc").is_none());
}

#[tokio::test]
async fn a_gift_card_program_leaves_the_coupon_open_to_anyone() {
    let site = FakeWoo::start().await;
    let codes = adapter(&site, fake::CONSUMER_SECRET);
    codes.put(&desired("cb-abc", dec!(3))).await.unwrap();
    let mut open = desired("cb-abc", dec!(3));
    open.restricted_to = None;
    open.min_subtotal = usd(dec!(0));
    assert!(codes.put(&open).await.is_ok());
    let coupon = site.coupon("cb-abc").unwrap();
    assert!(coupon.email_restrictions.is_empty());
    assert_eq!(coupon.minimum_amount, dec!(0));
}
