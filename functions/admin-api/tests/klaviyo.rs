//! The program's email channel through the admin router: `klaviyo` and
//! `both` only for a shop whose own Klaviyo key is stored (another shop's
//! key, a key that is not one, or no Klaviyo at all are refused with the
//! reason, nothing saved); `ses` stays the default.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use cashback_klaviyo::KlaviyoAccounts;
use cashback_platform_codes::{CredentialsPlace, StaticCredentials};
use cashback_store::MemoryStore;
use cashback_test_support::fakes::klaviyo::PRIVATE_KEY;

use support::*;

const BASE: &str = "/v1/shops/demo.myshopify.com";

/// The context with these Klaviyo parameters (shop, value) stored.
async fn ctx_with(parameters: &[(&str, String)]) -> cashback_app::Context {
    let place = CredentialsPlace::parse("ssm:/cashback/klaviyo/").unwrap();
    let values = parameters
        .iter()
        .map(|(shop, value)| {
            let shop = cashback_core::ids::ShopId::parse(shop).unwrap();
            (place.reference(&shop).unwrap().to_string(), value.clone())
        })
        .collect::<HashMap<_, _>>();
    seed(Arc::new(MemoryStore::new()))
        .await
        .with_marketing_accounts(Arc::new(KlaviyoAccounts::new(
            place,
            Arc::new(StaticCredentials(values)),
        )))
}

fn key(private_key: &str) -> String {
    format!(r#"{{"private_key":"{private_key}"}}"#)
}

async fn put_channel(ctx: &cashback_app::Context, channel: &str) -> Answer {
    let body = format!(r#"{{"currency":"USD","email_channel":"{channel}"}}"#);
    send(
        app(ctx),
        request("PUT", &format!("{BASE}/program"), Some(&body), &[]),
    )
    .await
}

fn refusal(answer: &Answer) -> (String, String) {
    let field = &answer.json["error"]["fields"][0];
    (
        field["field"].as_str().unwrap_or_default().to_string(),
        field["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn version(ctx: &cashback_app::Context) -> u64 {
    let current = send(
        app(ctx),
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    current.json["version"].as_u64().unwrap()
}

#[tokio::test]
async fn a_shop_without_its_own_klaviyo_key_cannot_send_its_emails_through_klaviyo() {
    // No Klaviyo on this deployment at all.
    let bare = seed(Arc::new(MemoryStore::new())).await;
    let refused = put_channel(&bare, "klaviyo").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
    let (field, message) = refusal(&refused);
    assert_eq!(field, "email_channel");
    assert!(message.contains("Klaviyo is not set up"), "{message}");
    assert_eq!(version(&bare).await, 1, "nothing was stored");

    // Another shop's key is that shop's: it does not open this shop's
    // customers to that account.
    let ctx = ctx_with(&[("other.myshopify.com", key(PRIVATE_KEY))]).await;
    for channel in ["klaviyo", "both"] {
        let refused = put_channel(&ctx, channel).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
        let (field, message) = refusal(&refused);
        assert_eq!(field, "email_channel");
        assert!(
            message.contains("this shop has no Klaviyo private key"),
            "{message}"
        );
    }
    assert_eq!(version(&ctx).await, 1);

    // A parameter that holds no private key: refused with what is wrong,
    // never the value.
    let ctx = ctx_with(&[("demo.myshopify.com", key("sk_not_a_private_key"))]).await;
    let refused = put_channel(&ctx, "klaviyo").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let (_, message) = refusal(&refused);
    assert!(message.contains("not usable"), "{message}");
    assert!(!message.contains("sk_not_a_private_key"), "{message}");

    // A channel that is not one.
    let refused = put_channel(&ctx, "mailchimp").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refusal(&refused).1.contains("`ses`, `klaviyo`, `both`"),
        "{}",
        refused.json
    );
}

#[tokio::test]
async fn a_shop_with_its_klaviyo_key_chooses_klaviyo_or_both_and_ses_is_the_default() {
    let ctx = ctx_with(&[("demo.myshopify.com", key(PRIVATE_KEY))]).await;
    let current = send(
        app(&ctx),
        request("GET", &format!("{BASE}/program"), None, &[]),
    )
    .await;
    assert_eq!(current.json["program"]["email_channel"], "ses");
    for channel in ["klaviyo", "both", "ses"] {
        let saved = put_channel(&ctx, channel).await;
        assert_eq!(saved.status, StatusCode::OK, "{}", saved.json);
        assert_eq!(saved.json["program"]["email_channel"], channel);
    }
    // A field naming another account is no program field: refused.
    let body = r#"{"currency":"USD","email_channel":"klaviyo","klaviyo_key":"pk_other"}"#;
    let refused = send(
        app(&ctx),
        request("PUT", &format!("{BASE}/program"), Some(body), &[]),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);
}
