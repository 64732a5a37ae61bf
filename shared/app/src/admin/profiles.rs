//! The profile properties email tools sync, one customer or every customer
//! a page at a time.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use cashback_core::ids::{Code, CustomerId, Email, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;

use crate::context::Context;
use crate::error::AppError;
use crate::store::*;

use super::{bad_cursor, known_shop, page_limit, read_account};

/// What an email tool keeps on a customer's profile (the properties Onward
/// syncs to Klaviyo), under names that say they are ours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileProperties {
    /// Spendable balance.
    pub cashback_balance: Decimal,
    /// Cashback earned, not yet spendable.
    pub cashback_pending_balance: Decimal,
    /// Cashback ever credited.
    pub cashback_lifetime_issued: Decimal,
    /// Cashback ever spent.
    pub cashback_lifetime_used: Decimal,
    /// The customer's code as shown to them; None until they have one.
    pub cashback_discount_code: Option<String>,
    /// The currency of every amount above.
    pub cashback_currency: Currency,
}

/// A customer's profile for an email tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The customer's id at the platform.
    pub customer_id: CustomerId,
    /// Their email, when known.
    pub email: Option<Email>,
    /// The properties to sync.
    pub properties: ProfileProperties,
}

impl Profile {
    /// The profile of an account.
    pub fn of(account: &Account) -> Profile {
        Profile {
            customer_id: account.customer.clone(),
            email: account.email.clone(),
            properties: ProfileProperties {
                cashback_balance: account.available.amount(),
                cashback_pending_balance: account.pending.amount(),
                cashback_lifetime_issued: account.lifetime_issued.amount(),
                cashback_lifetime_used: account.lifetime_used.amount(),
                cashback_discount_code: account.code.as_ref().map(Code::display),
                cashback_currency: account.currency,
            },
        }
    }
}

/// One customer's profile.
pub async fn profile(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<Profile, AppError> {
    known_shop(ctx, shop).await?;
    Ok(Profile::of(&read_account(ctx, shop, customer).await?.value))
}

/// Every customer's profile, a page at a time, from the shop's account
/// index (no scan of the table).
pub async fn export_profiles(
    ctx: &Context,
    shop: &ShopId,
    cursor: Option<String>,
    limit: Option<u32>,
) -> Result<Page<Profile>, AppError> {
    known_shop(ctx, shop).await?;
    let page = ctx
        .store
        .list_accounts(shop, cursor, page_limit(limit))
        .await
        .map_err(bad_cursor)?;
    Ok(Page {
        items: page.items.iter().map(|a| Profile::of(&a.value)).collect(),
        next: page.next,
    })
}

/// Counts per tier key, for tests and callers that want the raw counters.
pub fn tier_counts(counts: &CustomerCounts) -> BTreeMap<String, i64> {
    counts
        .tiers
        .iter()
        .filter(|(_, c)| **c != 0)
        .map(|(k, c)| (k.clone(), *c))
        .collect()
}
