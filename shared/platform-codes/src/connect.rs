//! One adapter per shop, built from the shop's record and its platform
//! credentials, and kept for the warm container's life (so Shopify's cost
//! bucket and the client-credentials token carry over between batches).
//!
//! Credentials live where webhook secrets do, by reference
//! ([`SecretRef`]): the function's setting names a place, and each shop's
//! credentials are under it, named by the shop:
//! - `ssm:/cashback/platform/` gives the SecureString
//!   `/cashback/platform/{shop}`;
//! - `env:CASHBACK_SECRET_PLATFORM_` gives the variable
//!   `CASHBACK_SECRET_PLATFORM_{SHOP}` (the shop upper-cased, every other
//!   character `_`): local runs.
//!
//! The value is JSON, by platform:
//! - Shopify: `{"admin_token": "shpat_..."}` or `{"client_id": "...",
//!   "client_secret": "..."}` (the client credentials grant); optional
//!   `"shop_url"` (default `https://{shop}`, the myshopify domain);
//! - WooCommerce: `{"consumer_key": "ck_...", "consumer_secret": "cs_...",
//!   "site_url": "https://..."}` (`site_url` defaults to `https://{shop}`).
//!
//! Unknown fields are refused; values never reach a log or an error (an
//! error names the reference and what is wrong).
//!
//! This is the crate's one credentials loader: the deployed function reads
//! through [`EnvAndSsm`] (the environment and SSM Parameter Store), tests
//! and the local server through [`StaticCredentials`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use cashback_app::on_first_use::OnFirstUse;
use cashback_app::platform_codes::PlatformCodes;
use cashback_app::secret_ref::{SecretPlace, SecretRef, SecretRefError};
use cashback_app::store::{Platform, Shop};
use cashback_core::ids::ShopId;

use crate::shopify::{ShopifyCodes, ShopifyConfig, ShopifyCredentials};
use crate::woocommerce::{WooCodes, WooConfig};

/// Why a shop's adapter could not be had. Names only, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The credentials could not be read now (SSM throttled or unreachable).
    #[error("the shop's platform credentials could not be read: {0}")]
    Unavailable(String),
    /// No credentials under the shop's name.
    #[error("no platform credentials for shop {0}")]
    Missing(ShopId),
    /// The credentials or the settings are not usable as they are.
    #[error("the platform credentials of shop {shop} are not usable: {reason}")]
    Invalid {
        /// The shop whose credentials are wrong.
        shop: ShopId,
        /// What is wrong (never a value).
        reason: String,
    },
    /// The shop's platform keeps no codes (the generic webhook format).
    #[error("shop {0} is on a platform that keeps no codes")]
    Unsupported(ShopId),
}

impl ConnectError {
    /// A later attempt may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ConnectError::Unavailable(_))
    }
}

/// Why a credential value could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing is stored there.
    #[error("not found")]
    Missing,
    /// The store of secrets failed (retry later).
    #[error("{0}")]
    Unavailable(String),
    /// The store of secrets refused (permissions): an operator must act.
    #[error("{0}")]
    Refused(String),
}

/// Reads the value a reference points at (SSM in the function, a map in tests).
#[async_trait::async_trait]
pub trait CredentialSource: Send + Sync {
    /// The value, as stored.
    async fn fetch(&self, reference: &SecretRef) -> Result<String, FetchError>;
}

/// Where every shop's credentials are: `ssm:/prefix/` or `env:CASHBACK_SECRET_PREFIX_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsPlace {
    scheme: Scheme,
    prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Env,
    Ssm,
}

impl CredentialsPlace {
    /// `ssm:/path/` or `env:CASHBACK_SECRET_NAME_`, checked as a reference.
    pub fn parse(place: &str) -> Result<CredentialsPlace, SecretRefError> {
        let place = place.trim();
        let (scheme, prefix) = if let Some(prefix) = place.strip_prefix("ssm:") {
            (Scheme::Ssm, prefix)
        } else if let Some(prefix) = place.strip_prefix("env:") {
            (Scheme::Env, prefix)
        } else {
            return Err(SecretRefError::Scheme);
        };
        let parsed = CredentialsPlace {
            scheme,
            prefix: prefix.to_string(),
        };
        // A shop's name under it must make a valid reference.
        let probe = ShopId::parse("probe.example.com").map_err(|_| SecretRefError::Scheme)?;
        parsed.reference(&probe)?;
        Ok(parsed)
    }

    /// The reference of one shop's credentials.
    pub fn reference(&self, shop: &ShopId) -> Result<SecretRef, SecretRefError> {
        match self.scheme {
            Scheme::Ssm => SecretRef::parse(&format!("ssm:{}{shop}", self.prefix)),
            Scheme::Env => {
                let name: String = shop
                    .as_str()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                SecretRef::parse(&format!("env:{}{name}", self.prefix))
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopifyValue {
    #[serde(default)]
    admin_token: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    shop_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WooValue {
    consumer_key: String,
    consumer_secret: String,
    #[serde(default)]
    site_url: Option<String>,
}

/// Settings of every adapter the connections build.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// Deadline of each platform call.
    pub timeout: Duration,
    /// An adapter (and the credentials it was built from) is kept this
    /// long, then built again from fresh credentials (a rotation arrives).
    pub ttl: Duration,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        ConnectSettings {
            timeout: Duration::from_secs(10),
            ttl: Duration::from_secs(900),
        }
    }
}

/// A shop's adapter and when it was built.
type Kept = (Arc<dyn PlatformCodes>, Instant);

/// The shops' adapters, built on first use and kept.
pub struct Connections {
    place: CredentialsPlace,
    source: Arc<dyn CredentialSource>,
    settings: ConnectSettings,
    adapters: Mutex<HashMap<ShopId, Kept>>,
}

impl Connections {
    /// Connections reading each shop's credentials under `place` from `source`.
    pub fn new(
        place: CredentialsPlace,
        source: Arc<dyn CredentialSource>,
        settings: ConnectSettings,
    ) -> Connections {
        Connections {
            place,
            source,
            settings,
            adapters: Mutex::new(HashMap::new()),
        }
    }

    /// The shop's adapter: the one kept, or a new one from its credentials.
    pub async fn for_shop(&self, shop: &Shop) -> Result<Arc<dyn PlatformCodes>, ConnectError> {
        if shop.platform == Platform::Generic {
            return Err(ConnectError::Unsupported(shop.shop.clone()));
        }
        if let Ok(adapters) = self.adapters.lock() {
            if let Some((adapter, built)) = adapters.get(&shop.shop) {
                if built.elapsed() < self.settings.ttl {
                    return Ok(adapter.clone());
                }
            }
        }
        let adapter = self.build(shop).await?;
        if let Ok(mut adapters) = self.adapters.lock() {
            // Another task may have built one meanwhile: keep the first, so
            // every task paces on the same bucket.
            let now = Instant::now();
            let entry = adapters
                .entry(shop.shop.clone())
                .or_insert_with(|| (adapter.clone(), now));
            if entry.1.elapsed() >= self.settings.ttl {
                *entry = (adapter.clone(), now);
            }
            return Ok(entry.0.clone());
        }
        Ok(adapter)
    }

    /// Forgets a shop's adapter (its credentials were refused: read them again).
    pub fn forget(&self, shop: &ShopId) {
        if let Ok(mut adapters) = self.adapters.lock() {
            adapters.remove(shop);
        }
    }

    async fn build(&self, shop: &Shop) -> Result<Arc<dyn PlatformCodes>, ConnectError> {
        let id = &shop.shop;
        let invalid = |reason: String| ConnectError::Invalid {
            shop: id.clone(),
            reason,
        };
        let reference = self
            .place
            .reference(id)
            .map_err(|e| invalid(format!("no valid reference for the shop: {e}")))?;
        // From here every error names the reference (never the value).
        let invalid = |reason: String| invalid(format!("{reference}: {reason}"));
        let value = match self.source.fetch(&reference).await {
            Ok(value) => value,
            Err(FetchError::Missing) => return Err(ConnectError::Missing(id.clone())),
            Err(FetchError::Unavailable(why)) => return Err(ConnectError::Unavailable(why)),
            Err(FetchError::Refused(why)) => return Err(invalid(why)),
        };
        let default_url = format!("https://{id}");
        match shop.platform {
            Platform::Shopify => {
                let value: ShopifyValue = serde_json::from_str(&value).map_err(|e| {
                    invalid(format!(
                        "not the Shopify credentials JSON ({})",
                        e.classify_name()
                    ))
                })?;
                let credentials = match (value.admin_token, value.client_id, value.client_secret) {
                    (Some(token), None, None) if !token.trim().is_empty() => {
                        ShopifyCredentials::AdminToken(token.trim().to_string())
                    }
                    (None, Some(client_id), Some(client_secret))
                        if !client_id.trim().is_empty() && !client_secret.trim().is_empty() =>
                    {
                        ShopifyCredentials::ClientCredentials {
                            client_id: client_id.trim().to_string(),
                            client_secret: client_secret.trim().to_string(),
                        }
                    }
                    _ => {
                        return Err(invalid(
                            "expected admin_token, or client_id with client_secret".into(),
                        ))
                    }
                };
                let url = value.shop_url.unwrap_or(default_url);
                let mut config = ShopifyConfig::new(&url, credentials, shop.currency)
                    .map_err(|e| invalid(e.to_string()))?;
                config.timeout = self.settings.timeout;
                let adapter = ShopifyCodes::new(config).map_err(|e| invalid(e.to_string()))?;
                Ok(Arc::new(adapter))
            }
            Platform::Woocommerce => {
                let value: WooValue = serde_json::from_str(&value).map_err(|e| {
                    invalid(format!(
                        "not the WooCommerce credentials JSON ({})",
                        e.classify_name()
                    ))
                })?;
                let url = value.site_url.unwrap_or(default_url);
                let mut config = WooConfig::new(
                    &url,
                    &value.consumer_key,
                    &value.consumer_secret,
                    shop.currency,
                )
                .map_err(|e| invalid(e.to_string()))?;
                config.timeout = self.settings.timeout;
                let adapter = WooCodes::new(config).map_err(|e| invalid(e.to_string()))?;
                Ok(Arc::new(adapter))
            }
            Platform::Generic => Err(ConnectError::Unsupported(id.clone())),
        }
    }
}

/// What a serde error was about, without the input it quoted.
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "missing, unknown or mistyped fields",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// The deployed source: `env:` references from the environment (local
/// runs), `ssm:` references from SSM Parameter Store (a SecureString read
/// with decryption). SSM's throttling and internal errors are
/// [`FetchError::Unavailable`] (retried); a refusal such as a missing
/// permission is [`FetchError::Refused`] (an operator's to fix).
pub struct EnvAndSsm {
    ssm: OnFirstUse<aws_sdk_ssm::Client>,
}

impl EnvAndSsm {
    /// Over an SSM client built once per container.
    pub fn new(ssm: aws_sdk_ssm::Client) -> EnvAndSsm {
        EnvAndSsm {
            ssm: OnFirstUse::built(ssm),
        }
    }

    /// Over the SSM client `build` makes for the first `ssm:` fetch, not at
    /// start: a client's construction (about 0.5 M instructions) would
    /// almost double a start's (BENCHMARKS.md, section 4).
    pub fn on_first_use(
        build: impl Fn() -> aws_sdk_ssm::Client + Send + Sync + 'static,
    ) -> EnvAndSsm {
        EnvAndSsm {
            ssm: OnFirstUse::new(build),
        }
    }
}

#[async_trait::async_trait]
impl CredentialSource for EnvAndSsm {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, FetchError> {
        match reference.place() {
            SecretPlace::Env(name) => std::env::var(name).map_err(|_| FetchError::Missing),
            SecretPlace::Ssm(name) => {
                use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
                let output = self
                    .ssm
                    .get()
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|error| match error {
                        SdkError::ServiceError(service) => {
                            let service = service.into_err();
                            if service.is_parameter_not_found() {
                                FetchError::Missing
                            } else {
                                let code = service.code().unwrap_or("unknown").to_string();
                                if service.is_internal_server_error() || code.contains("Throttl") {
                                    FetchError::Unavailable(format!("SSM {name}: {code}"))
                                } else {
                                    FetchError::Refused(format!("SSM {name}: {code}"))
                                }
                            }
                        }
                        other => FetchError::Unavailable(format!("SSM {name}: {other}")),
                    })?;
                output
                    .parameter
                    .and_then(|p| p.value)
                    .ok_or(FetchError::Missing)
            }
        }
    }
}

/// Credentials from a map (tests, the local server).
#[derive(Default)]
pub struct StaticCredentials(pub HashMap<String, String>);

#[async_trait::async_trait]
impl CredentialSource for StaticCredentials {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, FetchError> {
        self.0
            .get(&reference.to_string())
            .cloned()
            .ok_or(FetchError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shop_has_its_own_reference_under_the_place() {
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        let ssm = CredentialsPlace::parse("ssm:/cashback/platform/").unwrap();
        assert_eq!(
            ssm.reference(&shop).unwrap().to_string(),
            "ssm:/cashback/platform/demo.myshopify.com"
        );
        let env = CredentialsPlace::parse("env:CASHBACK_SECRET_PLATFORM_").unwrap();
        assert_eq!(
            env.reference(&shop).unwrap().to_string(),
            "env:CASHBACK_SECRET_PLATFORM_DEMO_MYSHOPIFY_COM"
        );
        assert!(CredentialsPlace::parse("env:HOME_").is_err());
        assert!(CredentialsPlace::parse("vault:x").is_err());
        assert!(CredentialsPlace::parse("ssm:/a b/").is_err());
    }
}
