//! Which shops have a Klaviyo account: the `MarketingAccounts` port over
//! the shops' Klaviyo parameters (`{"private_key": "pk_...", ...}` under a
//! [`CredentialsPlace`], docs/klaviyo.md), asked when a program that sends
//! Klaviyo events is saved. The value is read, the key checked, and
//! dropped: nothing of it reaches a log or an error.

use std::sync::Arc;

use serde_json::Value;

use aws_config::SdkConfig;
use cashback_app::marketing::{MarketingAccounts, MarketingError};
use cashback_app::Context;
use cashback_core::ids::ShopId;
use cashback_platform_codes::ConfigError;
use cashback_platform_codes::{CredentialSource, CredentialsPlace, EnvAndSsm, FetchError};

use crate::PrivateKey;

/// The shops' Klaviyo parameters under one place.
pub struct KlaviyoAccounts {
    place: CredentialsPlace,
    source: Arc<dyn CredentialSource>,
}

impl KlaviyoAccounts {
    pub fn new(place: CredentialsPlace, source: Arc<dyn CredentialSource>) -> KlaviyoAccounts {
        KlaviyoAccounts { place, source }
    }
}

#[async_trait::async_trait]
impl MarketingAccounts for KlaviyoAccounts {
    async fn has_account(&self, shop: &ShopId) -> Result<bool, MarketingError> {
        let reference = self
            .place
            .reference(shop)
            .map_err(|e| MarketingError::Rejected {
                reason: format!("no parameter name for the shop: {e}"),
            })?;
        let value = match self.source.fetch(&reference).await {
            Ok(value) => value,
            Err(FetchError::Missing) => return Ok(false),
            Err(FetchError::Unavailable(why)) => return Err(MarketingError::transient(why)),
            Err(FetchError::Refused(why)) => return Err(MarketingError::Rejected { reason: why }),
        };
        let key = serde_json::from_str::<Value>(&value)
            .ok()
            .and_then(|v| v.get("private_key")?.as_str().map(PrivateKey::parse));
        match key {
            Some(Ok(_)) => Ok(true),
            _ => Err(MarketingError::Rejected {
                reason: format!(
                    "{reference} must hold {{\"private_key\": \"pk_...\"}} with a private API key"
                ),
            }),
        }
    }
}

/// The setting naming where the shops' Klaviyo parameters are
/// (`ssm:/cashback/klaviyo/`), the same the platform-sync function reads.
pub const PLACE_ENV: &str = "CASHBACK_KLAVIYO_CREDENTIALS";

/// [`PLACE_ENV`]'s place; None when it is not set (Klaviyo is off).
pub fn place_from_env() -> Result<Option<CredentialsPlace>, ConfigError> {
    match std::env::var(PLACE_ENV) {
        Ok(value) if !value.trim().is_empty() => CredentialsPlace::parse(&value)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("{PLACE_ENV}: {e}"))),
        _ => Ok(None),
    }
}

/// `ctx` knowing which shops have a Klaviyo key when [`PLACE_ENV`] is set
/// (the parameters read from the environment and SSM through `sdk`'s
/// configuration); `ctx` as it is otherwise, so a program that sends
/// Klaviyo events is refused.
pub fn with_accounts_from_env(ctx: Context, sdk: &SdkConfig) -> Result<Context, ConfigError> {
    let Some(place) = place_from_env()? else {
        return Ok(ctx);
    };
    // The SSM client is built by the first key read, not at start.
    let sdk = sdk.clone();
    let source = EnvAndSsm::on_first_use(move || aws_sdk_ssm::Client::new(&sdk));
    Ok(ctx.with_marketing_accounts(Arc::new(KlaviyoAccounts::new(place, Arc::new(source)))))
}
