//! A shop's Shopify credentials, read from where its reference points: the
//! same `env:CASHBACK_SECRET_<NAME>` / `ssm:/parameter/name` references as
//! webhook secrets ([`SecretRef`], one rule for both), never from the
//! repository or the shop's record.
//!
//! The value stored there is one of:
//! - the shop's Admin API access token (`shpat_...`), from a custom app
//!   installed on the shop: [`ShopifyCredentials::AdminToken`];
//! - `{"client_id": "...", "client_secret": "..."}`, an app of the
//!   merchant's own organization: [`ShopifyCredentials::ClientCredentials`],
//!   exchanged by the adapter for a token through the client credentials
//!   grant (`POST https://{shop}.myshopify.com/admin/oauth/access_token`,
//!   `grant_type=client_credentials`), which lasts about 24 hours: cached,
//!   fetched again shortly before it expires and once after a 401
//!   ([`crate::shopify`]).
//!
//! By default a shop's reference is `ssm:/cashback/shopify-credentials/{shop}`
//! ([`default_reference`]; the prefix is `CASHBACK_SHOPIFY_CREDENTIALS_PREFIX`
//! when set). Errors name the reference, never the value.

use std::collections::HashMap;

use serde::Deserialize;

use cashback_app::secret_ref::{SecretPlace, SecretRef, SecretRefError};
use cashback_core::ids::ShopId;

use crate::shopify::ShopifyCredentials;

/// The environment variable that may change [`DEFAULT_PREFIX`].
pub const PREFIX_ENV: &str = "CASHBACK_SHOPIFY_CREDENTIALS_PREFIX";
/// Where shops' credentials live in SSM unless told otherwise.
pub const DEFAULT_PREFIX: &str = "/cashback/shopify-credentials/";

/// Why a shop's credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The reference is not one the engine accepts.
    #[error(transparent)]
    BadReference(#[from] SecretRefError),
    /// Nothing is stored at the reference.
    #[error("no credentials at {reference}")]
    Missing {
        /// The reference, as `env:NAME` or `ssm:NAME`.
        reference: String,
    },
    /// The store was not reachable (throttled, timed out): retry later.
    #[error("credentials at {reference} unavailable: {message}")]
    Unavailable {
        /// The reference.
        reference: String,
        /// What failed.
        message: String,
    },
    /// The stored value is neither a token nor a client id and secret.
    #[error("credentials at {reference} are malformed: {reason}")]
    Malformed {
        /// The reference.
        reference: String,
        /// What is wrong, never quoting the value.
        reason: &'static str,
    },
}

impl CredentialsError {
    /// A later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CredentialsError::Unavailable { .. })
    }
}

/// The reference a shop's credentials live at by default:
/// `ssm:{prefix}{shop}` with the prefix from [`PREFIX_ENV`] or
/// [`DEFAULT_PREFIX`].
pub fn default_reference(shop: &ShopId) -> Result<SecretRef, SecretRefError> {
    let prefix = std::env::var(PREFIX_ENV)
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    SecretRef::parse(&format!("ssm:{}{shop}", prefix.trim()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientPair {
    client_id: String,
    client_secret: String,
}

/// Reads a stored value as credentials: JSON with `client_id` and
/// `client_secret`, else a single access token.
pub fn parse_credentials(
    reference: &SecretRef,
    value: &str,
) -> Result<ShopifyCredentials, CredentialsError> {
    let malformed = |reason| CredentialsError::Malformed {
        reference: reference.to_string(),
        reason,
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(malformed("the value is empty"));
    }
    if value.starts_with('{') {
        let pair: ClientPair = serde_json::from_str(value).map_err(|_| {
            malformed(
                "JSON credentials must be {\"client_id\": \"...\", \"client_secret\": \"...\"}",
            )
        })?;
        let (id, secret) = (pair.client_id.trim(), pair.client_secret.trim());
        if id.is_empty() || secret.is_empty() {
            return Err(malformed("client_id and client_secret must not be blank"));
        }
        return Ok(ShopifyCredentials::ClientCredentials {
            client_id: id.to_string(),
            client_secret: secret.to_string(),
        });
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) || value.len() > 512 {
        return Err(malformed(
            "an access token is one word (shpat_...) of at most 512 characters",
        ));
    }
    Ok(ShopifyCredentials::AdminToken(value.to_string()))
}

/// Where a WooCommerce site's REST API key lives by default.
pub const DEFAULT_WOO_PREFIX: &str = "/cashback/woocommerce-credentials/";

/// A WooCommerce site's REST API key (WooCommerce > Settings > Advanced >
/// REST API, Read/Write), sent over HTTPS only.
#[derive(Clone, PartialEq, Eq)]
pub struct WooCredentials {
    /// `ck_...`.
    pub consumer_key: String,
    /// `cs_...`.
    pub consumer_secret: String,
}

impl std::fmt::Debug for WooCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WooCredentials(<redacted>)")
    }
}

/// The reference a WooCommerce site's key lives at by default:
/// `ssm:/cashback/woocommerce-credentials/{shop}`.
pub fn default_woo_reference(shop: &ShopId) -> Result<SecretRef, SecretRefError> {
    SecretRef::parse(&format!("ssm:{DEFAULT_WOO_PREFIX}{shop}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WooPair {
    consumer_key: String,
    consumer_secret: String,
}

/// Reads `{"consumer_key": "ck_...", "consumer_secret": "cs_..."}`.
pub fn parse_woo_credentials(
    reference: &SecretRef,
    value: &str,
) -> Result<WooCredentials, CredentialsError> {
    let malformed = |reason| CredentialsError::Malformed {
        reference: reference.to_string(),
        reason,
    };
    let pair: WooPair = serde_json::from_str(value.trim()).map_err(|_| {
        malformed("must be {\"consumer_key\": \"ck_...\", \"consumer_secret\": \"cs_...\"}")
    })?;
    let (key, secret) = (pair.consumer_key.trim(), pair.consumer_secret.trim());
    if key.is_empty() || secret.is_empty() {
        return Err(malformed(
            "consumer_key and consumer_secret must not be blank",
        ));
    }
    Ok(WooCredentials {
        consumer_key: key.to_string(),
        consumer_secret: secret.to_string(),
    })
}

/// Reads a WooCommerce site's key: fetched from `store`, then parsed.
pub async fn load_woo_credentials(
    store: &dyn CredentialStore,
    reference: &SecretRef,
) -> Result<WooCredentials, CredentialsError> {
    let value = store.read(reference).await?;
    parse_woo_credentials(reference, &value)
}

/// Where credential values are read from.
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// The raw value at `reference`.
    async fn read(&self, reference: &SecretRef) -> Result<String, CredentialsError>;
}

/// Reads a shop's credentials: fetched from `store`, then parsed.
pub async fn load_credentials(
    store: &dyn CredentialStore,
    reference: &SecretRef,
) -> Result<ShopifyCredentials, CredentialsError> {
    let value = store.read(reference).await?;
    parse_credentials(reference, &value)
}

/// The environment (`env:`) and SSM Parameter Store (`ssm:`, a SecureString
/// read with decryption): what the deployed functions use.
pub struct EnvAndSsmCredentials {
    ssm: aws_sdk_ssm::Client,
}

impl EnvAndSsmCredentials {
    /// Over an SSM client built once per container.
    pub fn new(ssm: aws_sdk_ssm::Client) -> EnvAndSsmCredentials {
        EnvAndSsmCredentials { ssm }
    }
}

#[async_trait::async_trait]
impl CredentialStore for EnvAndSsmCredentials {
    async fn read(&self, reference: &SecretRef) -> Result<String, CredentialsError> {
        let missing = || CredentialsError::Missing {
            reference: reference.to_string(),
        };
        match reference.place() {
            SecretPlace::Env(name) => std::env::var(name).map_err(|_| missing()),
            SecretPlace::Ssm(name) => {
                use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
                let output = self
                    .ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|error| match error {
                        SdkError::ServiceError(service) => {
                            let service = service.into_err();
                            if service.is_parameter_not_found() {
                                missing()
                            } else {
                                CredentialsError::Unavailable {
                                    reference: reference.to_string(),
                                    message: service.code().unwrap_or("unknown").to_string(),
                                }
                            }
                        }
                        other => CredentialsError::Unavailable {
                            reference: reference.to_string(),
                            message: other.to_string(),
                        },
                    })?;
                output.parameter.and_then(|p| p.value).ok_or_else(missing)
            }
        }
    }
}

/// Fixed values by reference (`ssm:/name` -> value): tests and local runs.
#[derive(Default)]
pub struct FixedCredentials(HashMap<String, String>);

impl FixedCredentials {
    /// Values by reference, written as `env:NAME` or `ssm:NAME`.
    pub fn new<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> FixedCredentials {
        FixedCredentials(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[async_trait::async_trait]
impl CredentialStore for FixedCredentials {
    async fn read(&self, reference: &SecretRef) -> Result<String, CredentialsError> {
        self.0
            .get(&reference.to_string())
            .cloned()
            .ok_or_else(|| CredentialsError::Missing {
                reference: reference.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> SecretRef {
        SecretRef::parse("ssm:/cashback/shopify-credentials/demo.myshopify.com").unwrap()
    }

    #[test]
    fn a_single_word_is_an_admin_token_and_json_is_a_client_pair() {
        assert!(matches!(
            parse_credentials(&reference(), " shpat_0123456789abcdef\n").unwrap(),
            ShopifyCredentials::AdminToken(ref t) if t == "shpat_0123456789abcdef"
        ));
        let pair = parse_credentials(
            &reference(),
            r#"{"client_id": "abc123", "client_secret": "shpss_secret_value"}"#,
        )
        .unwrap();
        assert!(matches!(
            pair,
            ShopifyCredentials::ClientCredentials { ref client_id, ref client_secret }
                if client_id == "abc123" && client_secret == "shpss_secret_value"
        ));
    }

    #[test]
    fn malformed_values_are_refused_without_quoting_them() {
        for bad in [
            "",
            "   ",
            "shpat_one two",
            r#"{"client_id": "abc"}"#,
            r#"{"client_id": "", "client_secret": "shpss_hidden_1"}"#,
            r#"{"client_id": "a", "client_secret": "shpss_hidden_2", "extra": 1}"#,
            "{not json shpss_hidden_3",
        ] {
            let error = parse_credentials(&reference(), bad).unwrap_err();
            assert!(matches!(error, CredentialsError::Malformed { .. }), "{bad}");
            let shown = error.to_string();
            assert!(!shown.contains("shpss_hidden"), "{shown}");
            assert!(!shown.contains("shpat_one"), "{shown}");
            assert!(shown.contains("/cashback/shopify-credentials/demo.myshopify.com"));
        }
    }

    #[test]
    fn the_default_reference_is_the_shops_ssm_parameter() {
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        assert_eq!(
            default_reference(&shop).unwrap().to_string(),
            "ssm:/cashback/shopify-credentials/demo.myshopify.com"
        );
    }

    #[tokio::test]
    async fn a_woocommerce_key_is_a_consumer_key_and_secret_pair() {
        let shop = ShopId::parse("shop.example").unwrap();
        let reference = default_woo_reference(&shop).unwrap();
        assert_eq!(
            reference.to_string(),
            "ssm:/cashback/woocommerce-credentials/shop.example"
        );
        let store = FixedCredentials::new([(
            reference.to_string(),
            r#"{"consumer_key": "ck_1", "consumer_secret": "cs_hidden"}"#,
        )]);
        let key = load_woo_credentials(&store, &reference).await.unwrap();
        assert_eq!(key.consumer_key, "ck_1");
        assert_eq!(key.consumer_secret, "cs_hidden");
        assert!(!format!("{key:?}").contains("cs_hidden"));
        let error = parse_woo_credentials(&reference, "cs_hidden").unwrap_err();
        assert!(!error.to_string().contains("cs_hidden"));
    }

    #[tokio::test]
    async fn credentials_are_loaded_from_their_reference_or_missing() {
        let store = FixedCredentials::new([(reference().to_string(), "shpat_abc")]);
        assert!(matches!(
            load_credentials(&store, &reference()).await.unwrap(),
            ShopifyCredentials::AdminToken(_)
        ));
        let other =
            SecretRef::parse("ssm:/cashback/shopify-credentials/other.myshopify.com").unwrap();
        let error = load_credentials(&store, &other).await.unwrap_err();
        assert!(matches!(error, CredentialsError::Missing { .. }));
        assert!(!error.is_retryable());
    }
}
