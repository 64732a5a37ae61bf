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
//! | `CASHBACK_LINK_SECRET_PARAM` | SSM SecureString holding the link secret(s) `current[,previous]`, read once per container by the first request that signs or checks a link | required on Lambda |
//! | `CASHBACK_LINK_SECRET` | the link secret itself: local runs only (refused on Lambda) | development secret |
//! | `CASHBACK_CODE_PREFIX` | prefix of customer codes | `CB` |
//! | `AWS_ENDPOINT_URL` | another endpoint for AWS (moto, local) | AWS |
//! | `CASHBACK_TLS_ROOTS` | trust store of the SDK's HTTPS client: `amazon` (compiled in) or `system`; see [`crate::aws`] | `amazon` |

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use cashback_app::notify::Notifier;
use cashback_app::secret_keys::{KeyLoader, KeySet, SecretKeys};
use cashback_app::store::Store;
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::GENERATED_CODE_LENGTH;
use cashback_mail::{OutboxConfig, OutboxNotifier, SesConfig};
use cashback_store::{DynamoStore, MemoryStore};

use crate::lazy_store::LazyStore;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("{name}: {message}")]
    Variable { name: &'static str, message: String },
    /// A secret setting is missing, misplaced or unusable. Names only, never
    /// a value.
    #[error("{name}: {message}")]
    Secret { name: String, message: String },
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

/// The shortest link secret accepted: it signs every unsubscribe link.
pub const MIN_LINK_SECRET_LENGTH: usize = 32;
/// The shortest Shopify app secret accepted (Shopify's are 32 or more).
pub const MIN_APP_SECRET_LENGTH: usize = 16;
/// The link secret's setting: `CASHBACK_LINK_SECRET_PARAM` names its SSM
/// parameter; `CASHBACK_LINK_SECRET` holds it in local runs.
pub const LINK_SECRET: &str = "CASHBACK_LINK_SECRET";
/// The Shopify app secret's setting (app proxy requests).
pub const SHOPIFY_APP_SECRET: &str = "CASHBACK_SHOPIFY_APP_SECRET";

/// Where a secret setting's value is, without reading it:
/// - `{name}_PARAM` set: the SSM SecureString of that name;
/// - else `{name}` set: the value itself, for local runs only; on Lambda it
///   is refused, because a function's environment is readable by anyone who
///   can read its configuration;
/// - neither: None.
enum SecretSource {
    Ssm(String),
    Value(String),
}

fn secret_source(name: &str) -> Result<Option<SecretSource>, WiringError> {
    let param_var = format!("{name}_PARAM");
    match (var(&param_var), var(name)) {
        (Some(parameter), _) => Ok(Some(SecretSource::Ssm(parameter))),
        (None, Some(_)) if on_lambda() => Err(WiringError::Secret {
            name: name.to_string(),
            message: format!(
                "a plain secret in the Lambda environment is refused: store it in SSM as a \
                 SecureString and set {param_var} to its name"
            ),
        }),
        (None, Some(value)) => Ok(Some(SecretSource::Value(value))),
        (None, None) => Ok(None),
    }
}

/// A secret's SSM SecureString, read by its first use
/// (`cashback_app::secret_keys`), not at start.
struct SsmKeys {
    sdk: aws_config::SdkConfig,
    parameter: String,
    min_length: usize,
}

#[async_trait::async_trait]
impl KeyLoader for SsmKeys {
    async fn load(&self) -> Result<KeySet, String> {
        let value = ssm_value(&aws_sdk_ssm::Client::new(&self.sdk), &self.parameter).await?;
        key_set(&value, self.min_length)
    }
}

fn key_set(value: &str, min_length: usize) -> Result<KeySet, String> {
    let mut keys = rotating_keys(value, min_length)?;
    let current = keys.remove(0);
    Ok(KeySet {
        current,
        previous: keys,
    })
}

/// The secret a setting names, as keys read on their first use: from SSM
/// (`{name}_PARAM`, with `sdk`), or the value itself in local runs
/// (`{name}`, checked now); None when neither is set. Nothing is read here.
pub fn secret_on_first_use(
    name: &str,
    min_length: usize,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<Option<SecretKeys>, WiringError> {
    match secret_source(name)? {
        Some(SecretSource::Ssm(parameter)) => {
            let sdk = sdk.ok_or_else(|| WiringError::Secret {
                name: format!("{name}_PARAM"),
                message: "set, but no AWS configuration was loaded to read it".into(),
            })?;
            Ok(Some(SecretKeys::on_first_use(Arc::new(SsmKeys {
                sdk: sdk.clone(),
                parameter,
                min_length,
            }))))
        }
        Some(SecretSource::Value(value)) => key_set(&value, min_length)
            .map(|keys| Some(SecretKeys::fixed(keys)))
            .map_err(|message| WiringError::Secret {
                name: name.to_string(),
                message,
            }),
        None => Ok(None),
    }
}

/// `current[,previous]` as keys, each at least `min_length` characters.
pub fn rotating_keys(value: &str, min_length: usize) -> Result<Vec<Vec<u8>>, String> {
    let keys: Vec<Vec<u8>> = value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.as_bytes().to_vec())
        .collect();
    if keys.is_empty() {
        return Err("the secret is empty".into());
    }
    if keys.iter().any(|k| k.len() < min_length) {
        return Err(format!(
            "every key must be at least {min_length} characters"
        ));
    }
    Ok(keys)
}

/// A SecureString's value. Errors name the parameter, never a value.
async fn ssm_value(client: &aws_sdk_ssm::Client, parameter: &str) -> Result<String, String> {
    let output = client
        .get_parameter()
        .name(parameter)
        .with_decryption(true)
        .send()
        .await
        .map_err(|error| {
            let code = aws_sdk_ssm::error::ProvideErrorMetadata::code(&error)
                .unwrap_or("unreachable")
                .to_string();
            format!("SSM parameter {parameter} could not be read ({code})")
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| format!("SSM parameter {parameter} has no value"))
}

/// The configuration of the use cases from the environment. Nothing is
/// read over the network here: a link secret in SSM is read on its first
/// use, with `sdk` (required then).
pub fn app_config(sdk: Option<&aws_config::SdkConfig>) -> Result<AppConfig, WiringError> {
    let mut config = AppConfig::default();
    if let Some(url) = var("CASHBACK_PUBLIC_URL") {
        config.public_base_url = url;
    }
    match secret_on_first_use(LINK_SECRET, MIN_LINK_SECRET_LENGTH, sdk)? {
        Some(keys) => config.link_keys = keys,
        None if on_lambda() => {
            return Err(WiringError::Secret {
                name: format!("{LINK_SECRET}_PARAM"),
                message: "must name the SSM SecureString of the link secret on Lambda \
                          (it signs unsubscribe links)"
                    .into(),
            })
        }
        None => {}
    }
    if let Some(prefix) = var("CASHBACK_CODE_PREFIX") {
        config.code_prefix = prefix;
    }
    Ok(config)
}

/// How long one SDK request may take to connect: a new connection to
/// DynamoDB, SES or SSM inside a region takes milliseconds.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one HTTP attempt of an SDK operation may take before the SDK
/// abandons it (and retries it, within the operation's timeout).
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(800);
/// How long an SDK operation may take in all, its own retries included. A
/// use case's retry budget (`cashback_app::retry::Backoff::REQUEST`, 2 s)
/// counts on it: a read and a write that hang cannot hold a webhook past
/// the 5 s its platform waits.
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_millis(1500);
/// Attempts of one SDK operation (the SDK's standard retry: throttles,
/// 5xx, timeouts), its first pause drawn up to 25 ms and none above
/// 400 ms: the SDK's default first pause (1 s) alone would spend half a
/// webhook's budget.
pub const SDK_MAX_ATTEMPTS: u32 = 3;
const SDK_INITIAL_BACKOFF: Duration = Duration::from_millis(25);
const SDK_MAX_BACKOFF: Duration = Duration::from_millis(400);
// The two pauses between three attempts leave room in an operation's
// timeout for the attempts themselves.
const _: () = assert!(SDK_MAX_BACKOFF.as_millis() * 2 < SDK_OPERATION_TIMEOUT.as_millis());

/// The timeouts of every SDK client: connect, each attempt, each operation.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(SDK_CONNECT_TIMEOUT)
        .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
        .operation_timeout(SDK_OPERATION_TIMEOUT)
        .build()
}

/// The SDK's own retries of one operation (standard mode, short pauses).
pub fn sdk_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(SDK_INITIAL_BACKOFF)
        .with_max_backoff(SDK_MAX_BACKOFF)
}

/// The AWS configuration, loaded once per container and shared by every
/// client, with explicit timeouts and retries ([`sdk_timeouts`],
/// [`sdk_retries`]). On Lambda the function role's credentials are in the environment:
/// reading them there skips the default credential chain, which builds an
/// STS client (loading the system's trust store for it) at start: most of a
/// cold start's extra time (BENCHMARKS.md, section 4). Every client made
/// from it shares one HTTPS client whose trust store is compiled in
/// ([`crate::aws`]; `CASHBACK_TLS_ROOTS=system` for the system's).
pub async fn aws_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::aws::http_client())
        .timeout_config(sdk_timeouts())
        .retry_config(sdk_retries());
    if on_lambda() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    // The region the default chain would take first (Lambda sets
    // AWS_REGION), given here so the chain is not built at start: its last
    // resort is an instance metadata client, about 0.09 M instructions of a
    // start to build and drop (BENCHMARKS.md, section 4).
    if let Some(region) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        loader = loader.region(aws_config::Region::new(region));
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

/// The store named by `CASHBACK_STORE`; `sdk` is used for DynamoDB, whose
/// client is built by the store's first call ([`LazyStore`]).
pub fn store_from_env(sdk: Option<&aws_config::SdkConfig>) -> Result<Arc<dyn Store>, WiringError> {
    match (store_choice().as_str(), sdk) {
        ("memory", _) => Ok(Arc::new(MemoryStore::new())),
        ("dynamodb", Some(sdk)) => {
            let table = var(cashback_store::dynamo::TABLE_ENV).ok_or(WiringError::Variable {
                name: cashback_store::dynamo::TABLE_ENV,
                message: "must name the DynamoDB table".into(),
            })?;
            Ok(Arc::new(dynamo_on_first_use(sdk, table)))
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

/// The DynamoDB store of `table`, its client built by the first call, not
/// at start (crate::lazy_store).
pub fn dynamo_on_first_use(sdk: &aws_config::SdkConfig, table: String) -> LazyStore<DynamoStore> {
    let sdk = sdk.clone();
    LazyStore::new(move || DynamoStore::from_sdk_config(&sdk, table.clone(), None))
}

/// Exports of the table to S3 when the store is DynamoDB and
/// `CASHBACK_EXPORT_BUCKET` names the bucket (the admin API's; no other
/// function builds this client), the client built by the first export call.
pub fn table_exports_from_env(
    sdk: Option<&aws_config::SdkConfig>,
) -> Option<Arc<dyn cashback_app::admin::TableExports>> {
    let bucket = var(cashback_store::dynamo::EXPORT_BUCKET_ENV)?;
    let table = var(cashback_store::dynamo::TABLE_ENV)?;
    match (store_choice().as_str(), sdk) {
        ("dynamodb", Some(sdk)) => {
            // The client is built by the first export call, not at start
            // (crate::lazy_store).
            let sdk = sdk.clone();
            Some(Arc::new(LazyStore::new(move || {
                let client = DynamoStore::from_sdk_config(&sdk, table.clone(), None)
                    .client()
                    .clone();
                cashback_store::dynamo::DynamoTableExports::new(
                    client,
                    table.clone(),
                    bucket.clone(),
                )
            })))
        }
        _ => None,
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
/// is loaded once, and only if DynamoDB, SES or SSM is used.
pub async fn context_from_env() -> Result<Context, WiringError> {
    context_and_sdk().await.map(|(ctx, _)| ctx)
}

/// [`context_from_env`], with the AWS configuration it loaded (if any) for
/// the function's own clients.
pub async fn context_and_sdk() -> Result<(Context, Option<aws_config::SdkConfig>), WiringError> {
    let needs_aws = store_choice() == "dynamodb"
        || mail_choice() == "ses"
        || var(&format!("{LINK_SECRET}_PARAM")).is_some()
        || var(&format!("{SHOPIFY_APP_SECRET}_PARAM")).is_some();
    crate::aws::TrustRoots::from_env().map_err(|message| WiringError::Variable {
        name: "CASHBACK_TLS_ROOTS",
        message,
    })?;
    let sdk = if needs_aws {
        Some(aws_config().await)
    } else {
        None
    };
    // No SSM read here: the link secret is read by its first use
    // (BENCHMARKS.md, section 4: the read was most of a start's extra time).
    let config = app_config(sdk.as_ref())?;
    let store = store_from_env(sdk.as_ref())?;
    let notifier = notifier_from_env(sdk.as_ref())?;
    let ctx = Context::new(store, notifier, Arc::new(OsCodes), config);
    Ok((ctx, sdk))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every client made from the container's configuration (DynamoDB
    /// here, SES and SSM alike) has the attempt and operation timeouts and
    /// the short retries, not the SDK's defaults (no operation timeout, a
    /// first retry pause up to 1 s).
    #[tokio::test]
    async fn the_sdk_clients_get_explicit_attempt_and_operation_timeouts() {
        let sdk = aws_config().await;
        let store = DynamoStore::from_sdk_config(&sdk, "cashback", None);
        let config = store.client().config();
        let timeouts = config.timeout_config().expect("timeouts are set");
        assert_eq!(timeouts.connect_timeout(), Some(SDK_CONNECT_TIMEOUT));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(SDK_ATTEMPT_TIMEOUT)
        );
        assert_eq!(timeouts.operation_timeout(), Some(SDK_OPERATION_TIMEOUT));
        let retries = config.retry_config().expect("retries are set");
        assert_eq!(retries.max_attempts(), SDK_MAX_ATTEMPTS);
        assert_eq!(retries.initial_backoff(), SDK_INITIAL_BACKOFF);
        assert_eq!(retries.max_backoff(), SDK_MAX_BACKOFF);
    }

    #[test]
    fn rotating_keys_are_current_then_previous_and_never_short() {
        let keys = rotating_keys(" new-0123456789 , old-0123456789 ", 10).unwrap();
        assert_eq!(
            keys,
            vec![b"new-0123456789".to_vec(), b"old-0123456789".to_vec()]
        );
        assert!(rotating_keys(" , ", 1).is_err());
        let short = rotating_keys("new-0123456789,old", 10).unwrap_err();
        assert!(short.contains("at least 10 characters"), "{short}");
        assert!(!short.contains("old"));
    }
}
