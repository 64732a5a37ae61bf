//! Secret settings from the environment: SSM SecureStrings read on first
//! use (on moto when `MOTO_ENDPOINT` is set), the local-only plain value
//! refused on Lambda, short keys refused, and a link secret's previous key
//! kept for rotation.
//! One test, because it changes the process environment.

use cashback_edge::wiring::{app_config, secret_on_first_use, WiringError};
use cashback_test_support::moto;

fn message(error: WiringError) -> String {
    error.to_string()
}

#[tokio::test]
async fn secrets_come_from_ssm_and_never_from_a_plain_variable_on_lambda() {
    std::env::remove_var("AWS_LAMBDA_FUNCTION_NAME");
    // Local runs: the value itself.
    std::env::set_var("CASHBACK_T1_SECRET", "local-0123456789abcdef");
    let local = secret_on_first_use("CASHBACK_T1_SECRET", 16, None)
        .unwrap()
        .unwrap();
    assert_eq!(
        local.if_loaded().map(|k| k.current.clone()),
        Some(b"local-0123456789abcdef".to_vec())
    );
    assert!(secret_on_first_use("CASHBACK_T0_SECRET", 16, None)
        .unwrap()
        .is_none());
    // Short keys are refused by length, never shown.
    std::env::set_var("CASHBACK_T2_SECRET", "hunter2");
    let short = message(secret_on_first_use("CASHBACK_T2_SECRET", 16, None).unwrap_err());
    assert!(short.contains("at least 16 characters"), "{short}");
    assert!(!short.contains("hunter2"));

    // On Lambda a plain secret is refused, naming where it should be.
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "customer-api");
    let plain = message(secret_on_first_use("CASHBACK_T1_SECRET", 16, None).unwrap_err());
    assert!(plain.contains("CASHBACK_T1_SECRET_PARAM"), "{plain}");
    assert!(!plain.contains("local-0123456789abcdef"));
    // ...and the link secret is required there.
    std::env::remove_var("CASHBACK_LINK_SECRET");
    std::env::remove_var("CASHBACK_LINK_SECRET_PARAM");
    let missing = message(app_config(None).unwrap_err());
    assert!(missing.contains("CASHBACK_LINK_SECRET_PARAM"), "{missing}");

    let Some(endpoint) = moto::endpoint("the SSM part") else {
        return;
    };
    let sdk = moto::sdk_config_at(&endpoint).await;
    let name = format!("/cashback/edge-test-{}/link-secret", std::process::id());
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&name)
        .value("new-link-secret-0123456789abcdef-xyz,old-link-secret-0123456789abcdef-xyz")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    std::env::set_var("CASHBACK_LINK_SECRET_PARAM", &name);
    let config = app_config(Some(&sdk)).unwrap();
    // Read on first use, not when the configuration is made.
    assert!(config.link_keys.if_loaded().is_none());
    let keys = config.link_keys.get().await.unwrap();
    assert_eq!(
        keys.current,
        b"new-link-secret-0123456789abcdef-xyz".to_vec()
    );
    assert_eq!(
        keys.previous,
        vec![b"old-link-secret-0123456789abcdef-xyz".to_vec()]
    );
    // A parameter that does not exist is named in the first use's error.
    std::env::set_var("CASHBACK_LINK_SECRET_PARAM", "/cashback/edge-test/nope");
    let config = app_config(Some(&sdk)).unwrap();
    let absent = config.link_keys.get().await.unwrap_err().to_string();
    assert!(absent.contains("/cashback/edge-test/nope"), "{absent}");
    // Without an AWS configuration to read it with, the start says so.
    let unreadable = message(app_config(None).unwrap_err());
    assert!(
        unreadable.contains("CASHBACK_LINK_SECRET_PARAM"),
        "{unreadable}"
    );
    std::env::remove_var("CASHBACK_LINK_SECRET_PARAM");

    // The app secret alike: nothing read until its first use.
    let app = format!("/cashback/edge-test-{}/app-secret", std::process::id());
    std::env::set_var("CASHBACK_T3_SECRET_PARAM", &app);
    let lazy = secret_on_first_use("CASHBACK_T3_SECRET", 16, Some(&sdk))
        .unwrap()
        .unwrap();
    assert!(lazy.if_loaded().is_none());
    let absent = lazy.get().await.unwrap_err().to_string();
    assert!(absent.contains(&app), "{absent}");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&app)
        .value("app-secret-0123456789abcdef")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lazy.get().await.unwrap().current,
        b"app-secret-0123456789abcdef".to_vec()
    );
    std::env::remove_var("CASHBACK_T3_SECRET_PARAM");
    std::env::remove_var("AWS_LAMBDA_FUNCTION_NAME");
}
