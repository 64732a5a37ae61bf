//! Shop onboarding.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use cashback_core::ids::ShopId;
use cashback_core::money::Currency;
use cashback_core::program::FieldError;

use crate::context::Context;
use crate::error::AppError;
use crate::secret_ref::SecretRef;
use crate::store::*;

use super::{field, parse_body, parse_program};

/// A shop to onboard, as the admin API receives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShop {
    /// The shop's domain, its id everywhere.
    pub shop: ShopId,
    /// The platform whose webhooks it sends.
    pub platform: Platform,
    /// The name customers see in emails.
    pub name: String,
    /// The currency its program and balances are in.
    pub currency: Currency,
    /// `env:CASHBACK_SECRET_<NAME>` or `ssm:/parameter/name`: where the
    /// webhook secret lives, never the secret.
    pub webhook_secret_ref: String,
    /// A first program, optional (the shop earns nothing until it has one).
    #[serde(default)]
    pub program: Option<serde_json::Value>,
}

/// The shop as the admin API shows it: never the API key's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShopView {
    /// The shop's domain.
    pub shop: ShopId,
    /// The platform whose webhooks it sends.
    pub platform: Platform,
    /// The name customers see in emails.
    pub name: String,
    /// The currency of its program and balances.
    pub currency: Currency,
    /// Where its webhook secrets live (never the secrets).
    pub webhook_secret_ref: String,
    /// When it was onboarded.
    pub created_at: DateTime<Utc>,
    /// The program's version, when one was given.
    pub program_version: Option<u64>,
}

/// Onboards a shop. The caller made its API key and passes only the hash
/// (the key is shown once, by the caller, and never stored).
pub async fn create_shop(
    ctx: &Context,
    body: &str,
    api_key_hash: &str,
    now: DateTime<Utc>,
) -> Result<ShopView, AppError> {
    let new: NewShop = parse_body(body)?;
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(field("name", "must be 1 to 100 characters"));
    }
    let reference = match SecretRef::parse(&new.webhook_secret_ref) {
        Ok(reference) => reference.to_string(),
        Err(problem) => {
            errors.push(field(
                "webhook_secret_ref",
                format!("{problem}: where the secret lives, never the secret"),
            ));
            String::new()
        }
    };
    let shop = Shop {
        shop: new.shop.clone(),
        platform: new.platform,
        currency: new.currency,
        name: name.to_string(),
        webhook_secret_ref: reference,
        api_key_hash: api_key_hash.to_string(),
        created_at: now,
        guest_id_key: Some(ctx.new_secret()),
    };
    let program = match &new.program {
        None => None,
        Some(value) => match parse_program(&value.to_string(), &shop) {
            Ok(program) => {
                match crate::marketing::check_email_channel(
                    ctx.marketing_accounts(),
                    &shop.shop,
                    &program,
                )
                .await
                {
                    Ok(()) => {}
                    Err(AppError::InvalidFields(fields)) => {
                        errors.extend(fields.into_iter().map(|f| FieldError {
                            field: format!("program.{}", f.field),
                            message: f.message,
                        }));
                    }
                    Err(other) => return Err(other),
                }
                Some(program)
            }
            Err(AppError::InvalidFields(fields)) => {
                errors.extend(fields.into_iter().map(|f| FieldError {
                    field: format!("program.{}", f.field),
                    message: f.message,
                }));
                None
            }
            Err(other) => return Err(other),
        },
    };
    if !errors.is_empty() {
        return Err(AppError::InvalidFields(errors));
    }
    match ctx.store.create_shop(&shop).await {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(AppError::Conflict(format!(
                "the shop {} is already onboarded",
                shop.shop
            )))
        }
        Err(error) => return Err(error.into()),
    }
    let program_version = match program {
        Some(program) => Some(ctx.store.put_program(&shop.shop, &program, 0, now).await?),
        None => None,
    };
    ctx.invalidate(&shop.shop);
    info!(shop = %shop.shop, platform = ?shop.platform, "shop onboarded");
    Ok(ShopView {
        shop: shop.shop,
        platform: shop.platform,
        name: shop.name,
        currency: shop.currency,
        webhook_secret_ref: shop.webhook_secret_ref,
        created_at: shop.created_at,
        program_version,
    })
}
