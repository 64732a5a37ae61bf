//! The shop's program: read, replace (validated, optionally only if still at
//! an expected version) and read an earlier version.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use cashback_core::ids::ShopId;
use cashback_core::platform_code::PlatformSync;
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::{current_program, field, known_shop};

/// Why a shop on another platform cannot keep its balances as store credit.
pub const STORE_CREDIT_SHOPIFY_ONLY: &str = "\"store_credit\" is Shopify's native store credit: \
     only a Shopify shop can keep its balances that way (use \"discount_code\")";

/// A version of the shop's program, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramView {
    /// The version number (1 for the first program).
    pub version: u64,
    /// The program as it was at this version.
    pub program: Program,
}

/// The program in force and its version.
pub async fn get_program(ctx: &Context, shop: &ShopId) -> Result<ProgramView, AppError> {
    known_shop(ctx, shop).await?;
    let current = current_program(ctx, shop).await?;
    Ok(ProgramView {
        version: current.version,
        program: current.value,
    })
}

/// An earlier (or the current) version of the program.
pub async fn get_program_version(
    ctx: &Context,
    shop: &ShopId,
    version: u64,
) -> Result<ProgramView, AppError> {
    known_shop(ctx, shop).await?;
    let program = ctx
        .store
        .get_program_version(shop, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("program version {version}")))?;
    Ok(ProgramView { version, program })
}

/// A program from JSON, validated, in the shop's currency.
pub(super) fn parse_program(body: &str, shop: &Shop) -> Result<Program, AppError> {
    let program = Program::from_json(body).map_err(|errors| AppError::InvalidFields(errors.0))?;
    if program.currency != shop.currency {
        return Err(AppError::InvalidFields(vec![field(
            "currency",
            format!("must be the shop's currency, {}", shop.currency.code()),
        )]));
    }
    if program.platform_sync == PlatformSync::StoreCredit && shop.platform != Platform::Shopify {
        return Err(AppError::InvalidFields(vec![field(
            "platform_sync",
            STORE_CREDIT_SHOPIFY_ONLY,
        )]));
    }
    Ok(program)
}

/// Replaces the program. With `expected_version` (the `If-Match` header)
/// only if it is still that version; without, over whatever is current.
/// The previous version stays readable. Orders already decided keep what
/// they earned: the new program applies to orders decided from now on
/// (within the warm containers' cache TTL, `AppConfig::cache_ttl_seconds`).
/// The version records `principal`, who made it.
pub async fn put_program(
    ctx: &Context,
    shop: &ShopId,
    body: &str,
    expected_version: Option<u64>,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<ProgramView, AppError> {
    let known = known_shop(ctx, shop).await?;
    let mut program = parse_program(body, &known)?;
    crate::marketing::check_email_channel(ctx.marketing_accounts(), shop, &program).await?;
    // Kept with the version: who made it, never what the body claims.
    program.changed_by = Some(principal.to_string());
    let expected = match expected_version {
        Some(version) => version,
        None => ctx
            .store
            .get_program(shop)
            .await?
            .map(|p| p.version)
            .unwrap_or(0),
    };
    let version = match ctx.store.put_program(shop, &program, expected, now).await {
        Ok(version) => version,
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::Conflict(format!(
                "the program is no longer at version {expected}; read it again"
            )))
        }
        Err(error) => return Err(error.into()),
    };
    ctx.invalidate(shop);
    info!(shop = %shop, version, by = principal, "program replaced");
    Ok(ProgramView { version, program })
}
