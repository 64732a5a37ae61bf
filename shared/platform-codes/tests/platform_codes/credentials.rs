//! A shop's Shopify credentials read from its reference, and the client
//! credentials grant's token life against the fake: cached, fetched again
//! shortly before it expires, refreshed once (only once) after a 401.

use std::time::Duration;

use rust_decimal_macros::dec;

use cashback_app::platform_codes::{
    CodeOwner, Combines, DesiredCode, PlatformCodes, PlatformError,
};
use cashback_app::secret_ref::SecretRef;
use cashback_core::ids::{Code, CustomerId};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::credentials::{default_reference, load_credentials, FixedCredentials};
use cashback_platform_codes::{ShopifyCodes, ShopifyConfig, ShopifyCredentials};
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};

fn desired(amount: rust_decimal::Decimal) -> DesiredCode {
    DesiredCode {
        code: Code::parse("cb-abc").unwrap(),
        account: CustomerId::parse("42").unwrap(),
        amount: Money::new(amount, Currency::USD).unwrap(),
        active: true,
        restricted_to: Some(CodeOwner {
            customer: Some(CustomerId::parse("42").unwrap()),
            email: None,
        }),
        min_subtotal: Money::zero(Currency::USD),
        combines: Combines {
            shipping: true,
            order: false,
            product: false,
        },
    }
}

fn adapter(shop: &FakeShopify, credentials: ShopifyCredentials) -> ShopifyCodes {
    let mut config = ShopifyConfig::new(&shop.url(), credentials, Currency::USD).unwrap();
    config.timeout = Duration::from_millis(500);
    ShopifyCodes::new(config).unwrap()
}

fn client_pair() -> ShopifyCredentials {
    ShopifyCredentials::ClientCredentials {
        client_id: fake::CLIENT_ID.into(),
        client_secret: fake::CLIENT_SECRET.into(),
    }
}

#[tokio::test]
async fn a_shops_client_id_and_secret_from_its_ssm_reference_drive_the_adapter() {
    let shop = FakeShopify::start().await;
    let reference =
        default_reference(&cashback_core::ids::ShopId::parse("demo.myshopify.com").unwrap())
            .unwrap();
    let store = FixedCredentials::new([(
        reference.to_string(),
        format!(
            r#"{{"client_id": "{}", "client_secret": "{}"}}"#,
            fake::CLIENT_ID,
            fake::CLIENT_SECRET
        ),
    )]);
    let credentials = load_credentials(&store, &reference).await.unwrap();
    let codes = adapter(&shop, credentials);
    codes.put(&desired(dec!(12.30))).await.unwrap();
    assert_eq!(shop.stats().tokens_issued, 1);
    assert_eq!(shop.discount("cb-abc").unwrap().amount, dec!(12.30));

    // An admin token under an env: reference works the same way.
    let env = SecretRef::parse("env:CASHBACK_SECRET_DEMO_SHOPIFY").unwrap();
    let store = FixedCredentials::new([(env.to_string(), fake::ADMIN_TOKEN)]);
    let codes = adapter(&shop, load_credentials(&store, &env).await.unwrap());
    codes.put(&desired(dec!(4))).await.unwrap();
    assert_eq!(shop.stats().tokens_issued, 1, "no grant for an admin token");
}

#[tokio::test]
async fn a_token_about_to_expire_is_fetched_again_before_the_call_not_after_a_401() {
    let shop = FakeShopify::start().await;
    // Shorter than the adapter's 5-minute margin: due again at every call.
    shop.set_token_ttl(Duration::from_secs(120));
    let codes = adapter(&shop, client_pair());
    codes.put(&desired(dec!(1))).await.unwrap();
    codes.put(&desired(dec!(2))).await.unwrap();
    let stats = shop.stats();
    let calls: u64 = stats.calls.values().sum();
    assert!(calls >= 2);
    assert_eq!(stats.tokens_issued, calls, "a fresh token for every call");
    assert_eq!(stats.unauthorized, 0, "never sent an expiring token");
}

#[tokio::test]
async fn a_day_long_token_is_cached_across_calls() {
    let shop = FakeShopify::start().await;
    shop.set_token_ttl(Duration::from_secs(24 * 3600));
    let codes = adapter(&shop, client_pair());
    for amount in [dec!(1), dec!(2), dec!(3)] {
        codes.put(&desired(amount)).await.unwrap();
    }
    assert_eq!(shop.stats().tokens_issued, 1);
}

#[tokio::test]
async fn a_401_after_the_refresh_is_unauthorized_after_exactly_one_refresh() {
    let shop = FakeShopify::start().await;
    // Every token the fake issues is already expired: the first call gets a
    // 401, the adapter fetches one new token, gets a 401 again and stops.
    shop.set_token_ttl(Duration::ZERO);
    let codes = adapter(&shop, client_pair());
    let error = codes.put(&desired(dec!(1))).await.unwrap_err();
    assert!(matches!(error, PlatformError::Unauthorized), "{error}");
    let stats = shop.stats();
    assert_eq!(stats.tokens_issued, 2, "the first token and one refresh");
    assert_eq!(stats.unauthorized, 2);
    assert!(!error.is_retryable());
}
