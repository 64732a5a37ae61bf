//! The merchant's controls and reports: the use cases behind the admin API.
//!
//! Every change here goes through the same Store port as the order events,
//! so the running aggregates the reports read follow it as they follow the
//! orders: summed off the write path from the change feed (docs/reports.md).
//!
//! - Program: read, replace (validated, every field error named, the
//!   previous version kept, optionally only if still at an expected
//!   version), and read an earlier version. A new program applies to orders
//!   decided after it; cashback already earned is never recomputed, since
//!   every order record keeps what it earned and its funding.
//! - Cashback coupons: create, list, read, update, pause and approve. Codes
//!   are unique per shop and case-insensitive (a `Code` is lower case), and
//!   may not be a customer's own cashback code.
//! - Customers: by id, email or code; their ledger, paged; manual
//!   adjustments, idempotent as Stripe's API is ([`adjust`]); a new code
//!   when the old one leaked ([`regenerate_code`]).
//! - Catalog import, shop onboarding, reports and the profile properties
//!   email tools sync; exports of the whole table to S3 for large shops.
//!
//! Request bodies arrive as JSON text, so that a malformed field is
//! reported by name like any other invalid field.
//!
//! Layout: one module per area (`program`, `coupons`, `customers`,
//! `catalog`, `onboarding`, `reports`, `profiles`), every item re-exported
//! here; this file keeps what they share (paging, body parsing, the shop
//! and program reads).

use serde::de::DeserializeOwned;

use cashback_core::ids::ShopId;
use cashback_core::program::{FieldError, Program};

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

mod catalog;
mod coupons;
mod customers;
mod exports;
mod imports;
mod onboarding;
mod profiles;
mod program;
mod reports;
mod table_exports;

pub use catalog::*;
pub use coupons::*;
pub use customers::*;
pub use exports::*;
pub use imports::*;
pub use onboarding::*;
pub use profiles::*;
pub use program::*;
pub use reports::*;
pub use table_exports::*;

/// Page size a caller gets without asking.
pub const DEFAULT_PAGE: u32 = 25;
/// The largest page a caller may ask for.
pub const MAX_PAGE: u32 = 100;

/// How long an adjustment's idempotency key is remembered. Stripe keeps
/// keys for 24 hours; a merchant's retry tool may run later than that, and
/// a guard item costs little, so a week.
pub const IDEMPOTENCY_DAYS: i64 = 7;

/// The longest reporting period, in days (ten years).
pub const MAX_REPORT_DAYS: i64 = 3660;

fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

fn field(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a JSON body, naming the field serde stumbled on when it says.
pub fn parse_body<T: DeserializeOwned>(body: &str) -> Result<T, AppError> {
    serde_json::from_str(body).map_err(|error| {
        let message = error.to_string();
        let named = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(str::to_string);
        AppError::InvalidFields(vec![field(
            named.unwrap_or_else(|| "(body)".to_string()),
            message,
        )])
    })
}

/// The shop, read from the store (not the warm cache: an admin sees its
/// own changes at once).
async fn known_shop(ctx: &Context, shop: &ShopId) -> Result<Shop, AppError> {
    ctx.store
        .get_shop(shop)
        .await?
        .ok_or_else(|| AppError::UnknownShop(shop.to_string()))
}

async fn current_program(ctx: &Context, shop: &ShopId) -> Result<Versioned<Program>, AppError> {
    ctx.store
        .get_program(shop)
        .await?
        .ok_or_else(|| AppError::NoProgram(shop.clone()))
}
