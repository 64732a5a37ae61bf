//! The Shopify adapter against the local fake of the Admin GraphQL API.

use std::time::Duration;

use rust_decimal_macros::dec;

use cashback_app::platform_codes::{
    CodeOwner, Combines, DesiredCode, PlatformCodes, PlatformError, PutOutcome,
};
use cashback_core::ids::{Code, CustomerId, Email};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::{ShopifyCodes, ShopifyConfig, ShopifyCredentials};
use cashback_test_support::fakes::faults::Fault;
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};

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
            shipping: true,
            order: false,
            product: true,
        },
    }
}

fn adapter(shop: &FakeShopify, credentials: ShopifyCredentials) -> ShopifyCodes {
    let mut config = ShopifyConfig::new(&shop.url(), credentials, Currency::USD).unwrap();
    config.timeout = Duration::from_millis(500);
    ShopifyCodes::new(config).unwrap()
}

fn token() -> ShopifyCredentials {
    ShopifyCredentials::AdminToken(fake::ADMIN_TOKEN.into())
}

#[tokio::test]
async fn a_new_code_is_created_with_the_balance_as_a_fixed_amount_for_its_owner_only() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    let outcome = codes.put(&desired("cb-abc", dec!(12.30))).await.unwrap();
    assert!(
        matches!(outcome, PutOutcome::Created(ref s) if s.amount == usd(dec!(12.30)) && s.active && s.managed)
    );
    let discount = shop.discount("CB-ABC").unwrap();
    assert_eq!(discount.code, "CB-ABC");
    assert_eq!(discount.amount, dec!(12.30));
    assert!(!discount.applies_on_each_item);
    assert_eq!(discount.customers, ["gid://shopify/Customer/42"]);
    assert_eq!(discount.min_subtotal, Some(dec!(20.00)));
    assert_eq!(discount.combines, (false, true, true));
    assert_eq!(discount.usage_limit, None);
    assert!(discount.is_active());
    assert!(discount.title.ends_with("[cashback-engine]"));
}

#[tokio::test]
async fn a_known_code_is_updated_with_one_call_to_the_absolute_amount() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    codes.put(&desired("cb-abc", dec!(12.30))).await.unwrap();
    for amount in [dec!(5), dec!(7.5), dec!(7.5)] {
        let outcome = codes.put(&desired("cb-abc", amount)).await.unwrap();
        assert!(matches!(outcome, PutOutcome::Updated(_)));
    }
    assert_eq!(shop.discount("cb-abc").unwrap().amount, dec!(7.5));
    let calls = shop.stats().calls;
    assert_eq!(calls.get("update"), Some(&3));
    assert_eq!(calls.get("create"), Some(&1));
    assert_eq!(
        calls.get("lookup"),
        Some(&1),
        "only the first put looks the code up"
    );
}

#[tokio::test]
async fn below_the_minimum_the_code_ends_and_comes_back_when_the_balance_does() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    codes.put(&desired("cb-abc", dec!(10))).await.unwrap();
    let mut empty = desired("cb-abc", dec!(0));
    empty.active = false;
    codes.put(&empty).await.unwrap();
    let discount = shop.discount("cb-abc").unwrap();
    assert!(!discount.is_active(), "an empty code does not work");
    codes.put(&desired("cb-abc", dec!(3))).await.unwrap();
    let discount = shop.discount("cb-abc").unwrap();
    assert!(discount.is_active());
    assert_eq!(discount.amount, dec!(3));
}

#[tokio::test]
async fn an_inactive_code_the_platform_never_had_is_not_created() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    let mut empty = desired("cb-new", dec!(0));
    empty.active = false;
    assert_eq!(codes.put(&empty).await.unwrap(), PutOutcome::NotNeeded);
    assert!(shop.discounts().is_empty());
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_resolved_by_looking_the_code_up() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    shop.push_pass(); // the lookup
    shop.push_fault(Fault::Duplicate); // the create: made, answered 503
    let first = codes.put(&desired("cb-abc", dec!(4))).await;
    assert!(matches!(first, Err(PlatformError::Transient { .. })));
    // The platform made it; the retry meets "Code must be unique".
    let fresh = adapter(&shop, token());
    shop.push_fault(Fault::ServerError);
    assert!(fresh.put(&desired("cb-abc", dec!(6))).await.is_err());
    let outcome = fresh.put(&desired("cb-abc", dec!(6))).await.unwrap();
    assert!(matches!(outcome, PutOutcome::Updated(_)), "{outcome:?}");
    assert_eq!(shop.discounts().len(), 1);
    assert_eq!(shop.discount("cb-abc").unwrap().amount, dec!(6));
}

#[tokio::test]
async fn a_code_the_merchant_made_by_hand_is_never_changed() {
    let shop = FakeShopify::start().await;
    shop.add_foreign_code("CB-ABC");
    let codes = adapter(&shop, token());
    let error = codes.put(&desired("cb-abc", dec!(4))).await.unwrap_err();
    assert!(matches!(error, PlatformError::CodeTaken));
    let discount = shop.discount("cb-abc").unwrap();
    assert_eq!(
        (discount.amount, discount.title.as_str()),
        (dec!(10), "Summer sale")
    );
    codes
        .deactivate(&Code::parse("cb-abc").unwrap())
        .await
        .unwrap();
    assert!(
        shop.discount("cb-abc").unwrap().is_active(),
        "not ours to end"
    );
}

#[tokio::test]
async fn a_code_deleted_on_the_platform_is_made_again() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    codes.put(&desired("cb-abc", dec!(4))).await.unwrap();
    shop.delete("cb-abc");
    let outcome = codes.put(&desired("cb-abc", dec!(5))).await.unwrap();
    assert!(matches!(outcome, PutOutcome::Created(_)));
    assert_eq!(shop.discount("cb-abc").unwrap().amount, dec!(5));
}

#[tokio::test]
async fn a_replaced_code_is_deactivated() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    codes.put(&desired("cb-old", dec!(4))).await.unwrap();
    codes
        .deactivate(&Code::parse("cb-old").unwrap())
        .await
        .unwrap();
    assert!(!shop.discount("cb-old").unwrap().is_active());
    codes
        .deactivate(&Code::parse("cb-unknown").unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_guest_owner_cannot_be_expressed_and_the_reason_says_why() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    let mut guest = desired("cb-abc", dec!(4));
    guest.restricted_to = Some(CodeOwner {
        customer: None,
        email: Some(Email::parse("guest@example.com").unwrap()),
    });
    let error = codes.put(&guest).await.unwrap_err();
    assert!(matches!(error, PlatformError::Rejected { ref reason } if reason.contains("guest")));
    assert!(shop.discounts().is_empty());
}

#[tokio::test]
async fn throttled_answers_become_a_typed_wait_and_5xx_a_transient_error() {
    let shop = FakeShopify::start().await;
    let codes = adapter(&shop, token());
    shop.push_fault(Fault::Throttle);
    let error = codes.put(&desired("cb-abc", dec!(4))).await.unwrap_err();
    assert!(matches!(error, PlatformError::Throttled { .. }));
    shop.push_fault(Fault::ServerError);
    assert!(matches!(
        codes.put(&desired("cb-abc", dec!(4))).await.unwrap_err(),
        PlatformError::Transient { .. }
    ));
    shop.push_fault(Fault::Timeout);
    assert!(matches!(
        codes.put(&desired("cb-abc", dec!(4))).await.unwrap_err(),
        PlatformError::Transient { .. }
    ));
}

#[tokio::test]
async fn a_short_bucket_is_waited_for_instead_of_throttled() {
    // 30 points, 100 restored per second: 8 mutations need about 0.5 s.
    let shop = FakeShopify::with_bucket(30.0, 100.0).await;
    let mut config = ShopifyConfig::new(&shop.url(), token(), Currency::USD).unwrap();
    config.assumed_bucket = (30.0, 100.0);
    let codes = ShopifyCodes::new(config).unwrap();
    codes.put(&desired("cb-abc", dec!(1))).await.unwrap();
    for i in 2..10 {
        codes
            .put(&desired("cb-abc", rust_decimal::Decimal::from(i)))
            .await
            .unwrap();
    }
    let stats = shop.stats();
    assert_eq!(stats.throttled, 0, "the adapter paced itself");
    assert!(stats.lowest_bucket >= 0.0);
}

#[tokio::test]
async fn client_credentials_give_a_token_that_is_reused_then_refreshed_after_a_401() {
    let shop = FakeShopify::start().await;
    let codes = adapter(
        &shop,
        ShopifyCredentials::ClientCredentials {
            client_id: fake::CLIENT_ID.into(),
            client_secret: fake::CLIENT_SECRET.into(),
        },
    );
    codes.put(&desired("cb-abc", dec!(1))).await.unwrap();
    codes.put(&desired("cb-abc", dec!(2))).await.unwrap();
    assert_eq!(shop.stats().tokens_issued, 1, "one token for both calls");
    shop.expire_tokens();
    codes.put(&desired("cb-abc", dec!(3))).await.unwrap();
    let stats = shop.stats();
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(stats.unauthorized, 1);
    assert_eq!(shop.discount("cb-abc").unwrap().amount, dec!(3));
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_not_retried_forever() {
    let shop = FakeShopify::start().await;
    let wrong = adapter(
        &shop,
        ShopifyCredentials::ClientCredentials {
            client_id: fake::CLIENT_ID.into(),
            client_secret: "wrong".into(),
        },
    );
    assert!(matches!(
        wrong.put(&desired("cb-abc", dec!(1))).await.unwrap_err(),
        PlatformError::Unauthorized
    ));
    let bad_token = adapter(&shop, ShopifyCredentials::AdminToken("shpat_nope".into()));
    assert!(matches!(
        bad_token
            .lookup(&Code::parse("cb-abc").unwrap())
            .await
            .unwrap_err(),
        PlatformError::Unauthorized
    ));
}

#[tokio::test]
async fn two_containers_creating_the_same_code_end_with_one_discount() {
    let shop = FakeShopify::start().await;
    let (a, b) = (adapter(&shop, token()), adapter(&shop, token()));
    let wanted = desired("cb-abc", dec!(4));
    let (first, second) = tokio::join!(a.put(&wanted), b.put(&wanted));
    let outcomes = [first.unwrap(), second.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, PutOutcome::Created(_)))
            .count(),
        1
    );
    assert_eq!(shop.discounts().len(), 1);
    // Both looked the code up before either made it: the second create met
    // "Code must be unique" and was resolved by a second lookup.
    let calls = shop.stats().calls;
    assert_eq!(
        (calls.get("create"), calls.get("lookup")),
        (Some(&2), Some(&3))
    );
}
