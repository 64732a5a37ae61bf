//! Builds the use cases' [`Context`] from environment variables, once per
//! container (outside the handler), so a warm Lambda reuses its clients.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `CASHBACK_STORE` | `memory` or `dynamodb` | `dynamodb` on Lambda, else `memory` |
//! | `CASHBACK_TABLE` | the DynamoDB table | required for `dynamodb` |
//! | `CASHBACK_MAIL` | `ses` or `outbox` | `ses` on Lambda, else `outbox` |
//! | `CASHBACK_OUTBOX_DIR`, `CASHBACK_MAIL_FROM` | see docs/email.md | |
//! | `CASHBACK_PUBLIC_URL` | base URL of the API, for links in emails | `http://127.0.0.1:3000` |
//! | `CASHBACK_LINK_SECRET` | signs unsubscribe links | required on Lambda |
//! | `CASHBACK_CODE_PREFIX` | prefix of customer codes | `CB` |
//! | `AWS_ENDPOINT_URL` | another endpoint for AWS (moto, local) | AWS |
//! | `CASHBACK_TLS_ROOTS` | trust store of the SDK's HTTPS client: `amazon` (compiled in) or `system`; see [`crate::aws`] | `amazon` |

use std::sync::Arc;

use rand::RngCore;

use cashback_app::notify::Notifier;
use cashback_app::store::Store;
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::GENERATED_CODE_LENGTH;
use cashback_mail::{OutboxConfig, OutboxNotifier, SesConfig};
use cashback_store::{DynamoStore, MemoryStore};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("{name}: {message}")]
    Variable { name: &'static str, message: String },
    #[error("mail: {0}")]
    Mail(String),
    #[error("store: {0}")]
    Store(String),
}

/// Customer codes from the operating system's CSPRNG.
pub struct OsCodes;

impl CodeSource for OsCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut bytes = [0u8; GENERATED_CODE_LENGTH];
        rand::rng().fill_bytes(&mut bytes);
        bytes
    }
}

pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The configuration of the use cases from the environment.
pub fn app_config() -> Result<AppConfig, WiringError> {
    let mut config = AppConfig::default();
    if let Some(url) = var("CASHBACK_PUBLIC_URL") {
        config.public_base_url = url;
    }
    match var("CASHBACK_LINK_SECRET") {
        Some(secret) => config.link_secret = secret.into_bytes(),
        None if on_lambda() => {
            return Err(WiringError::Variable {
                name: "CASHBACK_LINK_SECRET",
                message: "must be set on Lambda (it signs unsubscribe links)".into(),
            })
        }
        None => {}
    }
    if let Some(prefix) = var("CASHBACK_CODE_PREFIX") {
        config.code_prefix = prefix;
    }
    Ok(config)
}

/// The AWS configuration, loaded once per container and shared by every
/// client. On Lambda the function role's credentials are in the environment:
/// reading them there skips the default credential chain, which builds an
/// STS client (loading the system's trust store for it) at start: most of a
/// cold start's extra time (BENCHMARKS.md, section 4). Every client made
/// from it shares one HTTPS client whose trust store is compiled in
/// ([`crate::aws`]; `CASHBACK_TLS_ROOTS=system` for the system's).
pub async fn aws_config() -> aws_config::SdkConfig {
    // An unknown CASHBACK_TLS_ROOTS is refused where it is read by
    // `context_from_env`; here it falls back to the safe default.
    let roots = crate::aws::TrustRoots::from_env().unwrap_or(crate::aws::TrustRoots::Amazon);
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::aws::shared_https_client(roots));
    if on_lambda() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

fn store_choice() -> String {
    var("CASHBACK_STORE").unwrap_or_else(|| {
        if on_lambda() {
            "dynamodb".into()
        } else {
            "memory".into()
        }
    })
}

fn mail_choice() -> String {
    var("CASHBACK_MAIL").unwrap_or_else(|| {
        if on_lambda() {
            "ses".into()
        } else {
            "outbox".into()
        }
    })
}

/// The store named by `CASHBACK_STORE`; `sdk` is used for DynamoDB.
pub fn store_from_env(sdk: Option<&aws_config::SdkConfig>) -> Result<Arc<dyn Store>, WiringError> {
    match (store_choice().as_str(), sdk) {
        ("memory", _) => Ok(Arc::new(MemoryStore::new())),
        ("dynamodb", Some(sdk)) => {
            let table = var(cashback_store::dynamo::TABLE_ENV).ok_or(WiringError::Variable {
                name: cashback_store::dynamo::TABLE_ENV,
                message: "must name the DynamoDB table".into(),
            })?;
            Ok(Arc::new(DynamoStore::from_sdk_config(sdk, table, None)))
        }
        ("dynamodb", None) => Err(WiringError::Store(
            "DynamoDB needs the AWS configuration".into(),
        )),
        (other, _) => Err(WiringError::Variable {
            name: "CASHBACK_STORE",
            message: format!("{other:?} is not a store (memory or dynamodb)"),
        }),
    }
}

/// The notifier named by `CASHBACK_MAIL`; `sdk` is used for SES.
pub fn notifier_from_env(
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Arc<dyn Notifier>, WiringError> {
    match (mail_choice().as_str(), sdk) {
        ("outbox", _) => {
            let config = OutboxConfig::from_env().map_err(|e| WiringError::Mail(e.to_string()))?;
            Ok(Arc::new(OutboxNotifier::new(config)))
        }
        ("ses", Some(sdk)) => {
            let config = SesConfig::from_env().map_err(|e| WiringError::Mail(e.to_string()))?;
            // The client is built on the first email, not at start.
            Ok(crate::aws::lazy_ses(sdk, config))
        }
        ("ses", None) => Err(WiringError::Mail("SES needs the AWS configuration".into())),
        (other, _) => Err(WiringError::Variable {
            name: "CASHBACK_MAIL",
            message: format!("{other:?} is not a mailer (ses or outbox)"),
        }),
    }
}

/// Everything a function needs, from the environment. The AWS configuration
/// is loaded once, and only if DynamoDB or SES is used.
pub async fn context_from_env() -> Result<Context, WiringError> {
    let needs_aws = store_choice() == "dynamodb" || mail_choice() == "ses";
    crate::aws::TrustRoots::from_env().map_err(|message| WiringError::Variable {
        name: "CASHBACK_TLS_ROOTS",
        message,
    })?;
    let sdk = if needs_aws {
        Some(aws_config().await)
    } else {
        None
    };
    let store = store_from_env(sdk.as_ref())?;
    let notifier = notifier_from_env(sdk.as_ref())?;
    Ok(Context::new(
        store,
        notifier,
        Arc::new(OsCodes),
        app_config()?,
    ))
}
