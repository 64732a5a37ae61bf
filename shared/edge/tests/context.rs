//! A function's start as on Lambda, against moto: no SSM read before the
//! first poll (the link secret is read by its first use), the DynamoDB
//! client built by the store's first call, and what each
//! part says when it fails is still said. Its own test binary, so the
//! environment it sets races no other test.

use cashback_edge::wiring::{context_and_sdk, WiringError};
use cashback_test_support::moto;

fn message(error: WiringError) -> String {
    error.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_no_secret_and_the_first_use_reads_it_once() {
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

    // A parameter that does not exist does not stop the start (nothing
    // is read there); the first use names it, and reads again next time.
    std::env::set_var("CASHBACK_LINK_SECRET_PARAM", format!("{name}-not-yet"));
    let (ctx, sdk) = context_and_sdk().await.unwrap();
    assert!(sdk.is_some());
    assert!(ctx.config.link_keys.if_loaded().is_none());
    let absent = ctx.config.link_keys.get().await.unwrap_err().to_string();
    assert!(absent.contains("-not-yet"), "{absent}");
    aws_sdk_ssm::Client::new(sdk.as_ref().unwrap())
        .put_parameter()
        .name(format!("{name}-not-yet"))
        .value("late-link-secret-0123456789abcdef-xyz")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let keys = ctx.config.link_keys.get().await.unwrap();
    assert_eq!(
        keys.current,
        b"late-link-secret-0123456789abcdef-xyz".to_vec()
    );

    std::env::set_var("CASHBACK_LINK_SECRET_PARAM", name.as_str());
    let (ctx, _) = context_and_sdk().await.unwrap();
    let keys = ctx.config.link_keys.get().await.unwrap();
    assert_eq!(
        keys.current,
        b"start-link-secret-0123456789abcdef-xyz".to_vec()
    );

    // The store's client: built by the store's first call, which then
    // reaches the table as the adapter does.
    let table = moto::store_on(&endpoint, "the start's lazy store").await;
    std::env::set_var("CASHBACK_TABLE", table.table_name());
    let (ctx, _) = context_and_sdk().await.unwrap();
    assert_eq!(ctx.store.request_counts().total(), 0, "nothing built yet");
    ctx.store
        .put_checkpoint("start", "2026-11-30T10")
        .await
        .unwrap();
    assert_eq!(
        ctx.store.get_checkpoint("start").await.unwrap().as_deref(),
        Some("2026-11-30T10")
    );
    assert_eq!(ctx.store.request_counts().total(), 2);
    std::env::set_var("CASHBACK_TABLE", "cashback-start");

    // The store's error: still the start's.
    std::env::remove_var("CASHBACK_TABLE");
    let store = message(context_and_sdk().await.err().unwrap());
    assert!(store.contains("CASHBACK_TABLE"), "{store}");
    std::env::set_var("CASHBACK_TABLE", "cashback-start");
}
