//! A function's start as on Lambda, against moto: the link secret's SSM
//! read overlaps the building of the store's client, and what each part
//! says when it fails is still said. Its own test binary, so the
//! environment it sets races no other test.

use cashback_edge::wiring::{context_and_sdk, WiringError};
use cashback_test_support::moto;

fn message(error: WiringError) -> String {
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_the_link_secret_beside_the_store_and_reports_either_failure() {
    let Some(endpoint) = moto::endpoint("the start against moto") else {
        return;
    };
    let sdk = moto::sdk_config_at(&endpoint).await;
    let name = format!("/cashback/edge-start-{}/link-secret", std::process::id());
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&name)
        .value("start-link-secret-0123456789abcdef-xyz")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    for (variable, value) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "order-webhook"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("CASHBACK_STORE", "dynamodb"),
        ("CASHBACK_TABLE", "cashback-start"),
        ("CASHBACK_MAIL", "outbox"),
        ("CASHBACK_LINK_SECRET_PARAM", name.as_str()),
    ] {
        std::env::set_var(variable, value);
    }

    let (ctx, sdk) = context_and_sdk().await.unwrap();
    assert!(sdk.is_some());
    assert_eq!(
        ctx.config.link_secret,
        b"start-link-secret-0123456789abcdef-xyz".to_vec()
    );

    // The store's error while the secret is being read: the store's.
    std::env::remove_var("CASHBACK_TABLE");
    let store = message(context_and_sdk().await.err().unwrap());
    assert!(store.contains("CASHBACK_TABLE"), "{store}");
    std::env::set_var("CASHBACK_TABLE", "cashback-start");

    // A parameter that does not exist: named in the error, as before.
    std::env::set_var("CASHBACK_LINK_SECRET_PARAM", "/cashback/edge-start/nope");
    let absent = message(context_and_sdk().await.err().unwrap());
    assert!(absent.contains("/cashback/edge-start/nope"), "{absent}");
}
