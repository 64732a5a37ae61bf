//! Each shop's webhook secrets: where they live, how they are read, and the
//! warm container's cache of them.
//!
//! A shop record names its secrets by reference, never by value
//! (`Shop::webhook_secret_ref`):
//! - `env:CASHBACK_SECRET_<NAME>`: that environment variable (set by hand
//!   in a local shell; on Lambda prefer SSM). Only names under
//!   [`ENV_SECRET_PREFIX`] are read, so a reference can never reach another
//!   setting of the function;
//! - `ssm:/parameter/name`: an SSM Parameter Store parameter, read with
//!   `GetParameter` and `WithDecryption` (a SecureString).
//!
//! The value is one secret, or `current,previous` while a secret is being
//! rotated: a delivery signed with either is accepted, so the merchant can
//! change the secret on the platform and here without losing a delivery in
//! between. Surrounding spaces are trimmed; a secret cannot contain a comma,
//! and must be at least [`MIN_WEBHOOK_SECRET_LENGTH`] characters.
//!
//! Secrets are cached per shop for a TTL (five minutes by default), so a warm
//! container reads SSM once per shop per TTL, not once per webhook. After a
//! signature mismatch the caller may ask for one early refresh (at most once
//! per [`MIN_REFRESH_SECONDS`] per shop), so a rotation reaches a warm
//! container at once instead of after the TTL, without letting forged
//! requests drive SSM traffic. Values never appear in `Debug` output, logs
//! or errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::OnceCell;

use cashback_app::store::MIN_WEBHOOK_SECRET_LENGTH;
use cashback_core::ids::ShopId;

pub use cashback_app::secret_ref::{SecretPlace, SecretRef, SecretRefError, ENV_SECRET_PREFIX};

/// How long a shop's secrets stay cached in a warm container by default.
pub const DEFAULT_TTL_SECONDS: i64 = 300;
/// The shortest age at which a mismatch may trigger a refresh.
pub const MIN_REFRESH_SECONDS: i64 = 30;

/// A shop's secrets, the current one first. `Debug` shows only how many.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets(Vec<Vec<u8>>);

impl WebhookSecrets {
    /// `current` or `current,previous`, each at least
    /// [`MIN_WEBHOOK_SECRET_LENGTH`] characters: a short secret can be
    /// guessed, and is refused rather than used.
    pub fn parse(value: &str) -> Result<WebhookSecrets, SecretError> {
        let secrets: Vec<Vec<u8>> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if secrets.is_empty() {
            return Err(SecretError::Empty);
        }
        if secrets.iter().any(|s| s.len() < MIN_WEBHOOK_SECRET_LENGTH) {
            return Err(SecretError::TooShort {
                min: MIN_WEBHOOK_SECRET_LENGTH,
            });
        }
        Ok(WebhookSecrets(secrets))
    }

    pub fn as_slice(&self) -> &[Vec<u8>] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets(<{} redacted>)", self.0.len())
    }
}

/// Why a shop's secrets could not be had. Names are shown, values never.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the shop's webhook_secret_ref is not valid: {0}")]
    BadReference(#[from] SecretRefError),
    #[error("environment variable {name} is not set")]
    MissingVariable { name: String },
    #[error("SSM parameter {name} does not exist")]
    MissingParameter { name: String },
    #[error("the configured webhook secret is empty")]
    Empty,
    #[error("a configured webhook secret is shorter than {min} characters")]
    TooShort { min: usize },
    /// SSM throttled or could not be reached: the platform should retry.
    #[error("SSM is unavailable: {0}")]
    Unavailable(String),
    #[error("SSM refused the request: {0}")]
    Refused(String),
}

impl SecretError {
    /// A later delivery may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Unavailable(_))
    }
}

/// Reads the value a reference points at.
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, SecretError>;
}

/// The deployed source: the process environment, and SSM through a client
/// built on first use (a container whose shops all use `env:` never loads
/// the AWS configuration for it).
#[derive(Default)]
pub struct EnvAndSsm {
    ssm: OnceCell<aws_sdk_ssm::Client>,
}

impl EnvAndSsm {
    pub fn new() -> EnvAndSsm {
        EnvAndSsm::default()
    }

    /// With a client made elsewhere (tests, or a shared AWS config).
    pub fn with_ssm_client(client: aws_sdk_ssm::Client) -> EnvAndSsm {
        EnvAndSsm {
            ssm: OnceCell::new_with(Some(client)),
        }
    }

    async fn client(&self) -> &aws_sdk_ssm::Client {
        self.ssm
            .get_or_init(|| async {
                // Honours AWS_ENDPOINT_URL (and the SSM-specific variable),
                // like every other client of the project, and shares their
                // HTTPS client and credentials (Lambda's, from the
                // environment) instead of loading the default chain here.
                let config = cashback_edge::wiring::aws_config().await;
                aws_sdk_ssm::Client::new(&config)
            })
            .await
    }
}

#[async_trait::async_trait]
impl SecretSource for EnvAndSsm {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, SecretError> {
        match reference.place() {
            SecretPlace::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingVariable {
                    name: name.to_string(),
                })
            }
            SecretPlace::Ssm(name) => {
                use aws_sdk_ssm::error::SdkError;
                let output = self
                    .client()
                    .await
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|error| match error {
                        SdkError::ServiceError(service) => {
                            let service = service.into_err();
                            if service.is_parameter_not_found() {
                                SecretError::MissingParameter {
                                    name: name.to_string(),
                                }
                            } else if service.is_internal_server_error() {
                                SecretError::Unavailable(service.to_string())
                            } else {
                                // Throttling arrives as an unmodeled error
                                // code; access denied and bad keys too.
                                let code = aws_sdk_ssm::error::ProvideErrorMetadata::code(&service)
                                    .unwrap_or("unknown")
                                    .to_string();
                                if code.contains("Throttl") {
                                    SecretError::Unavailable(code)
                                } else {
                                    SecretError::Refused(code)
                                }
                            }
                        }
                        // Timeouts, connection and response failures.
                        other => SecretError::Unavailable(other.to_string()),
                    })?;
                output
                    .parameter
                    .and_then(|p| p.value)
                    .ok_or(SecretError::Empty)
            }
        }
    }
}

/// Fixed values by reference (`env:NAME` -> value): tests and local runs.
#[derive(Default, Clone)]
pub struct FixedSecrets(HashMap<String, String>);

impl FixedSecrets {
    pub fn new<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> FixedSecrets {
        FixedSecrets(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[async_trait::async_trait]
impl SecretSource for FixedSecrets {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, SecretError> {
        self.0
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| match reference.place() {
                SecretPlace::Env(name) => SecretError::MissingVariable {
                    name: name.to_string(),
                },
                SecretPlace::Ssm(name) => SecretError::MissingParameter {
                    name: name.to_string(),
                },
            })
    }
}

#[derive(Clone)]
struct Cached {
    reference: String,
    secrets: Arc<WebhookSecrets>,
    fetched_at: DateTime<Utc>,
}

/// The warm container's cache of every shop's secrets.
pub struct SecretCache {
    source: Arc<dyn SecretSource>,
    ttl: Duration,
    entries: Mutex<HashMap<ShopId, Cached>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl SecretCache {
    pub fn new(source: Arc<dyn SecretSource>, ttl_seconds: i64) -> SecretCache {
        SecretCache {
            source,
            ttl: Duration::seconds(ttl_seconds.max(0)),
            entries: Mutex::new(HashMap::new()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The shop's secrets, from the cache while fresh. A changed reference
    /// (the shop was moved to another parameter) is a miss.
    pub async fn get(
        &self,
        shop: &ShopId,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<WebhookSecrets>, SecretError> {
        if let Some(cached) = self.cached(shop, reference) {
            let age = now - cached.fetched_at;
            if age < self.ttl && age >= Duration::zero() {
                return Ok(cached.secrets);
            }
        }
        self.load(shop, reference, now).await
    }

    /// After a mismatch: fresh secrets if the cached ones are old enough to
    /// be worth another look, else None (the caller keeps its answer).
    pub async fn refresh(
        &self,
        shop: &ShopId,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<WebhookSecrets>>, SecretError> {
        match self.cached(shop, reference) {
            Some(cached) if now - cached.fetched_at < Duration::seconds(MIN_REFRESH_SECONDS) => {
                Ok(None)
            }
            _ => self.load(shop, reference, now).await.map(Some),
        }
    }

    /// How many times the source was read (tests check the cache with it).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn cached(&self, shop: &ShopId, reference: &str) -> Option<Cached> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(shop)
            .filter(|c| c.reference == reference)
            .cloned()
    }

    async fn load(
        &self,
        shop: &ShopId,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<WebhookSecrets>, SecretError> {
        // Checked at onboarding; parsed again here by the same rule, since
        // the record keeps the reference as its string.
        let parsed = SecretRef::parse(reference)?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let value = self.source.fetch(&parsed).await?;
        let secrets = Arc::new(WebhookSecrets::parse(&value)?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                shop.clone(),
                Cached {
                    reference: reference.to_string(),
                    secrets: secrets.clone(),
                    fetched_at: now,
                },
            );
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn shop() -> ShopId {
        ShopId::parse("demo.myshopify.com").unwrap()
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 6, 15, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    const A: &str = "env:CASHBACK_SECRET_A";
    const B: &str = "env:CASHBACK_SECRET_B";
    const ONE: &str = "one-0123456789abcdef";
    const TWO: &str = "two-0123456789abcdef";

    #[test]
    fn references_name_an_env_var_or_an_ssm_parameter() {
        assert_eq!(
            SecretRef::parse("env:CASHBACK_SECRET_DEMO_WEBHOOK")
                .as_ref()
                .map(SecretRef::place),
            Ok(SecretPlace::Env("CASHBACK_SECRET_DEMO_WEBHOOK"))
        );
        assert_eq!(
            SecretRef::parse(" ssm:/cashback/demo/webhook ")
                .as_ref()
                .map(SecretRef::place),
            Ok(SecretPlace::Ssm("/cashback/demo/webhook"))
        );
        for bad in [
            "",
            "env:",
            "env:A-B",
            "env:1X",
            "ssm:",
            "ssm:/a b",
            "vault:x",
            "plain",
            "env:CASHBACK_SECRET_",
            "env:CASHBACK_SECRET_A-B",
        ] {
            assert!(SecretRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_env_reference_outside_the_prefix_is_refused_by_name() {
        // Values a reference could otherwise borrow: the function's own
        // settings, and values anyone knows (a forger's free secret).
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "CASHBACK_LINK_SECRET",
            "CASHBACK_TABLE",
            "HOME",
        ] {
            let error = SecretRef::parse(&format!("env:{name}")).unwrap_err();
            assert!(
                error.to_string().contains("CASHBACK_SECRET_<NAME>"),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn a_value_is_one_secret_or_current_and_previous() {
        let one = WebhookSecrets::parse(ONE).unwrap();
        assert_eq!(one.as_slice(), &[ONE.as_bytes().to_vec()]);
        let rotating = WebhookSecrets::parse(&format!(" {TWO} , {ONE} ")).unwrap();
        assert_eq!(
            rotating.as_slice(),
            &[TWO.as_bytes().to_vec(), ONE.as_bytes().to_vec()]
        );
        assert_eq!(WebhookSecrets::parse(" , "), Err(SecretError::Empty));
    }

    #[test]
    fn a_short_secret_is_refused_naming_the_minimum() {
        for value in ["s3cret", "fifteen-chars-x", &format!("{ONE},old")] {
            let error = WebhookSecrets::parse(value).unwrap_err();
            assert_eq!(error, SecretError::TooShort { min: 16 });
            assert!(error.to_string().contains("16 characters"));
            assert!(!error.is_retryable());
        }
        assert!(WebhookSecrets::parse("sixteen-chars-xy").is_ok());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secrets = WebhookSecrets::parse("topsecret-0123456789,older-0123456789").unwrap();
        let shown = format!("{secrets:?}");
        assert!(!shown.contains("topsecret") && !shown.contains("older"));
    }

    #[tokio::test]
    async fn a_shops_secrets_are_read_once_per_ttl_and_again_when_the_reference_changes() {
        let source = FixedSecrets::new([(A, ONE), (B, TWO)]);
        let cache = SecretCache::new(Arc::new(source), 300);
        let first = cache.get(&shop(), A, t(0)).await.unwrap();
        assert_eq!(first.as_slice(), &[ONE.as_bytes().to_vec()]);
        cache.get(&shop(), A, t(299)).await.unwrap();
        assert_eq!(cache.fetches(), 1);
        cache.get(&shop(), A, t(300)).await.unwrap();
        assert_eq!(cache.fetches(), 2);
        let moved = cache.get(&shop(), B, t(301)).await.unwrap();
        assert_eq!(moved.as_slice(), &[TWO.as_bytes().to_vec()]);
        assert_eq!(cache.fetches(), 3);
    }

    #[tokio::test]
    async fn an_early_refresh_is_allowed_only_once_the_cache_is_thirty_seconds_old() {
        let cache = SecretCache::new(Arc::new(FixedSecrets::new([(A, ONE)])), 300);
        cache.get(&shop(), A, t(0)).await.unwrap();
        assert_eq!(cache.refresh(&shop(), A, t(10)).await, Ok(None));
        assert!(cache.refresh(&shop(), A, t(31)).await.unwrap().is_some());
        assert_eq!(cache.fetches(), 2);
    }

    #[tokio::test]
    async fn a_missing_variable_is_named_and_its_absence_not_cached() {
        let cache = SecretCache::new(Arc::new(FixedSecrets::default()), 300);
        assert_eq!(
            cache.get(&shop(), "env:CASHBACK_SECRET_NOPE", t(0)).await,
            Err(SecretError::MissingVariable {
                name: "CASHBACK_SECRET_NOPE".into()
            })
        );
        assert!(cache
            .get(&shop(), "env:CASHBACK_SECRET_NOPE", t(1))
            .await
            .is_err());
        assert_eq!(cache.fetches(), 2);
    }
}
