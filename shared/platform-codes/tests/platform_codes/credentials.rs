//! A shop's credentials read from its reference by the one loader
//! (`connect::Connections`, JSON by platform), and the client credentials
//! grant's token life against the fake: cached, fetched again shortly
//! before it expires, refreshed once (only once) after a 401.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal_macros::dec;

use cashback_app::platform_codes::{
    CodeOwner, Combines, DesiredCode, PlatformCodes, PlatformError,
};
use cashback_app::store::{Platform, Shop};
use cashback_core::ids::{Code, CustomerId};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::{
    ConnectError, ConnectSettings, Connections, CredentialsPlace, ShopifyCodes, ShopifyConfig,
    ShopifyCredentials, StaticCredentials,
};
use cashback_test_support::fakes::shopify::{self as fake, FakeShopify};
use cashback_test_support::fixtures::{shop, t0};

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

fn record(platform: Platform) -> Shop {
    let mut record = cashback_test_support::fixtures::demo_shop_record(
        "env:CASHBACK_SECRET_DEMO_WEBHOOK",
        String::new(),
        t0(),
    );
    record.platform = platform;
    record
}

/// Connections reading `value` as the shop's credentials under `place`.
fn connections(place: &str, value: &str) -> Connections {
    let place = CredentialsPlace::parse(place).unwrap();
    let reference = place.reference(&shop()).unwrap().to_string();
    Connections::new(
        place,
        Arc::new(StaticCredentials(HashMap::from([(
            reference,
            value.to_string(),
        )]))),
        ConnectSettings {
            timeout: Duration::from_millis(500),
            ..ConnectSettings::default()
        },
    )
}

#[tokio::test]
async fn a_shops_client_id_and_secret_from_its_ssm_reference_drive_the_adapter() {
    let shopify = FakeShopify::start().await;
    let pair = format!(
        r#"{{"client_id": "{}", "client_secret": "{}", "shop_url": "{}"}}"#,
        fake::CLIENT_ID,
        fake::CLIENT_SECRET,
        shopify.url()
    );
    let codes = connections("ssm:/cashback/platform/", &pair)
        .for_shop(&record(Platform::Shopify))
        .await
        .unwrap();
    codes.put(&desired(dec!(12.30))).await.unwrap();
    assert_eq!(shopify.stats().tokens_issued, 1);
    assert_eq!(shopify.discount("cb-abc").unwrap().amount, dec!(12.30));

    // An admin token under an env: reference works the same way.
    let token = format!(
        r#"{{"admin_token": " {} ", "shop_url": "{}"}}"#,
        fake::ADMIN_TOKEN,
        shopify.url()
    );
    let codes = connections("env:CASHBACK_SECRET_PLATFORM_", &token)
        .for_shop(&record(Platform::Shopify))
        .await
        .unwrap();
    codes.put(&desired(dec!(4))).await.unwrap();
    assert_eq!(
        shopify.stats().tokens_issued,
        1,
        "no grant for an admin token"
    );
}

#[tokio::test]
async fn malformed_credentials_are_refused_naming_the_reference_never_the_value() {
    let shopify_values = [
        "",
        "   ",
        "shpat_hidden_0",
        r#"{"admin_token": "  "}"#,
        r#"{"client_id": "abc"}"#,
        r#"{"client_id": "", "client_secret": "shpss_hidden_1"}"#,
        r#"{"client_id": "a", "client_secret": "shpss_hidden_2", "extra": 1}"#,
        r#"{"admin_token": "shpat_hidden_3", "client_id": "a", "client_secret": "shpss_hidden_4"}"#,
        "{not json shpss_hidden_5",
    ];
    let woo_values = [
        r#"{"consumer_key": "ck_1"}"#,
        r#"{"consumer_key": " ", "consumer_secret": "cs_hidden_6"}"#,
        r#"{"consumer_key": "ck_1", "consumer_secret": "cs_hidden_7", "password": "x"}"#,
        "cs_hidden_8",
    ];
    let cases = shopify_values
        .iter()
        .map(|v| (Platform::Shopify, v))
        .chain(woo_values.iter().map(|v| (Platform::Woocommerce, v)));
    for (platform, bad) in cases {
        let error = connections("ssm:/cashback/platform/", bad)
            .for_shop(&record(platform))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, ConnectError::Invalid { .. }),
            "{bad}: {error}"
        );
        assert!(!error.is_retryable());
        let shown = error.to_string();
        assert!(!shown.contains("hidden"), "{shown}");
        assert!(
            shown.contains("ssm:/cashback/platform/demo.myshopify.com"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn credentials_missing_at_the_shops_reference_are_named_and_not_retried() {
    let place = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
    assert_eq!(
        place.reference(&shop()).unwrap().to_string(),
        "ssm:/cashback/platform/demo.myshopify.com"
    );
    let none = Connections::new(
        place,
        Arc::new(StaticCredentials::default()),
        ConnectSettings::default(),
    );
    let error = none
        .for_shop(&record(Platform::Woocommerce))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, ConnectError::Missing(_)), "{error}");
    assert!(!error.is_retryable());
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
