//! The customer's own view of their cashback (the portal and the storefront
//! widget), and unsubscribing from reminder emails through a signed link.
//!
//! The view is the account (one read) and a page of its ledger, newest
//! first. Pending cashback is listed per order with its release date; the
//! date lives on the order's record, not on the account, so the view finds
//! the orders still pending from the ledger (walking back from the newest
//! entry only until the per-order pending sums account for the account's
//! whole pending balance, usually one page) and reads those orders'
//! records concurrently. Accounts with nothing pending pay none of this.
//!
//! Unsubscribing sets the account's `reminders.unsubscribed` in one
//! transaction on the version read (retried on a conflict), and is
//! idempotent: a second click changes nothing and writes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tracing::warn;

use cashback_core::ids::{Code, CustomerId, OrderId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::money::{Currency, Money};
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::notices::verify_unsubscribe;
use crate::preferences::PreferenceOutcome;
use crate::store::ReadRequest;

/// Ledger entries per page when the caller does not say.
pub const DEFAULT_ENTRIES: u32 = 20;
/// The most ledger entries one page may carry.
pub const MAX_ENTRIES: u32 = 100;
/// How the pending scan walks the ledger: pages of this many entries...
const PENDING_SCAN_PAGE: u32 = 100;
/// ...at most this many pages; pending older than that shows without a date.
const PENDING_SCAN_PAGES: usize = 10;
/// Orders whose records are read for their release dates, at most.
const MAX_PENDING_ORDERS: usize = 50;

/// What a customer sees of their cashback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    /// The program's name ("CashBack" unless the merchant renamed it).
    pub display_name: String,
    /// The program's currency; every amount below is in it.
    pub currency: Currency,
    /// False when the customer has not earned anything yet.
    pub enrolled: bool,
    /// The balance the customer holds, checkouts' holds included.
    pub available: Money,
    /// Reserved by checkouts in progress.
    pub held: Money,
    /// Available less what checkouts hold.
    pub spendable: Money,
    /// Earned on orders and not released yet: not spendable.
    pub pending: Money,
    /// Pending cashback per order, soonest release first.
    pub pending_releases: Vec<PendingRelease>,
    /// Clawbacks not yet recovered; paid first from new cashback.
    pub debt: Money,
    /// All cashback ever credited, net of clawbacks.
    pub lifetime_issued: Money,
    /// All balance ever spent at checkout, net of restores.
    pub lifetime_used: Money,
    /// The customer's code as they type it (upper case).
    pub code: Option<String>,
    /// The code the customer shares to refer friends ("REF-..."), when
    /// the program pays referrals. It spends nothing.
    #[serde(default)]
    pub referral_code: Option<String>,
    /// The tier the customer's lifetime eligible spend puts them in, if any.
    pub tier: Option<TierView>,
    /// The next tier up, if there is one.
    pub next_tier: Option<NextTier>,
    /// The percent the next order earns from the program (tier or base
    /// rate, partner match and active promotions).
    #[serde(with = "rust_decimal::serde::str")]
    pub earn_percent: Decimal,
    /// The ledger, newest first, one page of it.
    pub entries: Vec<EntryView>,
    /// Pass as `cursor` for older entries; None at the oldest.
    pub next_cursor: Option<String>,
    /// True when the customer turned reminder emails off.
    pub reminders_unsubscribed: bool,
    /// The birthday the shop knows (month and day), if any; the customer
    /// may give it once.
    #[serde(default)]
    pub birthday: Option<cashback_core::bonuses::Birthday>,
}

/// Cashback of one order waiting to be released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRelease {
    /// None for pending the view could not attribute (an unusually long
    /// history); its release date is then unknown.
    pub order_id: Option<OrderId>,
    /// What the order still has pending.
    pub amount: Money,
    /// When it becomes spendable; None when unknown (not attributed, or the
    /// order has no release date yet).
    pub release_at: Option<DateTime<Utc>>,
}

/// The customer's tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierView {
    /// The tier's name, as the merchant named it.
    pub name: String,
    /// The tier's cashback rate, in percent (`7.5` is 7.5%).
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
}

/// The next tier up and what it takes to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextTier {
    /// The tier's name, as the merchant named it.
    pub name: String,
    /// The tier's cashback rate, in percent.
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
    /// The lifetime eligible spend that reaches it.
    pub min_lifetime_spend: Money,
    /// Eligible spend still needed to reach it.
    pub remaining: Money,
}

/// A ledger entry as the customer sees it (no funding split, no notes:
/// those are the merchant's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// When the entry was recorded.
    pub at: DateTime<Utc>,
    /// What moved the money (earn, release, spend, clawback, expiry...).
    pub kind: EntryKind,
    /// The order it belongs to, when it comes from one.
    pub order_id: Option<OrderId>,
    /// Change to the spendable balance: positive credited, negative taken.
    pub available_delta: Money,
    /// Change to pending: positive earned, negative released or clawed back.
    pub pending_delta: Money,
}

impl From<&LedgerEntry> for EntryView {
    fn from(entry: &LedgerEntry) -> EntryView {
        EntryView {
            at: entry.at,
            kind: entry.kind,
            order_id: entry.order_id.clone(),
            available_delta: entry.available_delta,
            pending_delta: entry.pending_delta,
        }
    }
}

/// Which page of the ledger to show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EntriesPage {
    /// A `next_cursor` from a previous view.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Entries per page: [`DEFAULT_ENTRIES`] when None, at most [`MAX_ENTRIES`].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The customer's cashback as of `now`.
pub async fn customer_view(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    page: &EntriesPage,
    now: DateTime<Utc>,
) -> Result<CustomerView, AppError> {
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let cursor = match &page.cursor {
        Some(cursor) => Some(decode_cursor(cursor)?),
        None => None,
    };
    let limit = page.limit.unwrap_or(DEFAULT_ENTRIES).clamp(1, MAX_ENTRIES);
    let read = ctx
        .store
        .read(shop, &ReadRequest::account(customer))
        .await?;
    let Some(found) = read.accounts.get(customer) else {
        // Someone who has not earned yet sees an empty account, not an error:
        // the widget shows "0.00" and how the program works.
        let empty = Account::open(shop.clone(), customer.clone(), program.currency);
        return Ok(view_of(
            program,
            &empty,
            false,
            Vec::new(),
            Vec::new(),
            None,
            now,
        ));
    };
    let mut account = found.value.clone();
    // Holds past their expiry no longer lower what can be spent.
    account.expire_holds(now);
    let entries = ctx
        .store
        .ledger(shop, customer, cursor, limit)
        .await
        .map_err(crate::admin::bad_cursor)?;
    let pending = pending_releases(ctx, shop, &account).await?;
    let next_cursor = entries.next.as_deref().map(encode_cursor);
    let entry_views = entries.items.iter().map(EntryView::from).collect();
    Ok(view_of(
        program,
        &account,
        true,
        pending,
        entry_views,
        next_cursor,
        now,
    ))
}

fn view_of(
    program: &Program,
    account: &Account,
    enrolled: bool,
    pending_releases: Vec<PendingRelease>,
    entries: Vec<EntryView>,
    next_cursor: Option<String>,
    now: DateTime<Utc>,
) -> CustomerView {
    let currency = program.currency;
    let spend = account.lifetime_eligible_spend.amount();
    // The rate of the next order comes from lifetime spend, as earn() decides it.
    let tier_index = program.tier_for(spend);
    let tier = tier_index
        .and_then(|index| program.tiers.get(index))
        .map(|tier| TierView {
            name: tier.name.clone(),
            percent: tier.percent,
        });
    let next_tier = program
        .tiers
        .iter()
        .find(|tier| tier.min_lifetime_spend > spend)
        .map(|tier| NextTier {
            name: tier.name.clone(),
            percent: tier.percent,
            min_lifetime_spend: Money::round_toward_zero(tier.min_lifetime_spend, currency),
            remaining: Money::round_toward_zero(tier.min_lifetime_spend - spend, currency),
        });
    let own_percent = tier
        .as_ref()
        .map(|t| t.percent)
        .unwrap_or(program.earning.merchant_percent);
    let promotions: Decimal = program
        .promotions
        .iter()
        .filter(|p| p.is_active(now))
        .map(|p| p.bonus_percent)
        .sum();
    CustomerView {
        display_name: program.display_name.clone(),
        currency,
        enrolled,
        available: account.available,
        held: account.held(),
        spendable: account.spendable(),
        pending: account.pending,
        pending_releases,
        debt: account.debt,
        lifetime_issued: account.lifetime_issued,
        lifetime_used: account.lifetime_used,
        code: account.code.as_ref().map(Code::display),
        referral_code: account
            .referral_code
            .as_ref()
            .filter(|_| program.referral.is_some())
            .map(Code::display),
        tier,
        next_tier,
        earn_percent: (own_percent + program.earning.partner_match_percent + promotions)
            .normalize(),
        entries,
        next_cursor,
        reminders_unsubscribed: account.reminders.unsubscribed,
        birthday: account.bonus.birthday,
    }
}

/// The account's pending cashback per order, with release dates.
pub(crate) async fn pending_releases(
    ctx: &Context,
    shop: &ShopId,
    account: &Account,
) -> Result<Vec<PendingRelease>, AppError> {
    let currency = account.currency;
    if !account.pending.is_positive() {
        return Ok(Vec::new());
    }
    // Newest first, an order's pending entries show their settlements
    // (release, clawback: negative) before their earn (positive, once per
    // order). So once no order's partial sum is negative and the positive
    // ones add up to the account's pending, every order still pending has
    // been seen: older entries can only belong to orders that net to zero.
    let mut partial: BTreeMap<OrderId, Decimal> = BTreeMap::new();
    let mut cursor = None;
    for _ in 0..PENDING_SCAN_PAGES {
        let page = ctx
            .store
            .ledger(shop, &account.customer, cursor, PENDING_SCAN_PAGE)
            .await?;
        for entry in &page.items {
            if let (Some(order), false) = (&entry.order_id, entry.pending_delta.is_zero()) {
                *partial.entry(order.clone()).or_default() += entry.pending_delta.amount();
            }
        }
        let settled = partial.values().all(|sum| !sum.is_sign_negative());
        let seen: Decimal = partial.values().filter(|sum| **sum > Decimal::ZERO).sum();
        if (settled && seen == account.pending.amount()) || page.next.is_none() {
            break;
        }
        cursor = page.next;
    }
    let open: Vec<OrderId> = partial
        .into_iter()
        .filter(|(_, sum)| *sum > Decimal::ZERO)
        .map(|(order, _)| order)
        .take(MAX_PENDING_ORDERS)
        .collect();
    // The port reads one order per read: read them side by side, so the
    // view waits for one round trip, not one per order.
    let mut reads = JoinSet::new();
    for order in open {
        let store = ctx.store.clone();
        let shop = shop.clone();
        reads.spawn(async move { store.read(&shop, &ReadRequest::order(order)).await });
    }
    let mut releases = Vec::new();
    while let Some(joined) = reads.join_next().await {
        let read = match joined {
            Ok(read) => read?,
            Err(error) => {
                warn!(%error, "pending order read did not finish");
                continue;
            }
        };
        if let Some(record) = read.order.map(|o| o.value) {
            if !record.cancelled && !record.released && record.pending.is_positive() {
                releases.push(PendingRelease {
                    order_id: Some(record.order_id),
                    amount: record.pending,
                    release_at: record.release_at,
                });
            }
        }
    }
    releases.sort_by(|a, b| (a.release_at, &a.order_id).cmp(&(b.release_at, &b.order_id)));
    let listed =
        Money::sum(currency, releases.iter().map(|r| &r.amount)).unwrap_or(Money::zero(currency));
    if let Ok(rest) = account.pending.checked_sub(listed) {
        if rest.is_positive() {
            releases.push(PendingRelease {
                order_id: None,
                amount: rest,
                release_at: None,
            });
        }
    }
    Ok(releases)
}

/// Store cursors are opaque and may hold any character: hex makes them
/// safe in a query string.
fn encode_cursor(cursor: &str) -> String {
    hex::encode(cursor.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, AppError> {
    hex::decode(cursor.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| AppError::Invalid("cursor is not one this API returned".into()))
}

/// What became of an unsubscribe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeOutcome {
    /// Reminder emails are off from now on.
    Unsubscribed,
    /// Already unsubscribed: nothing was written.
    AlreadyUnsubscribed,
    /// The link's signature does not match: nothing was read or written.
    BadSignature,
    /// The link is genuine but no such account exists.
    UnknownCustomer,
}

/// Whether an unsubscribe link is genuine (for a confirmation page that
/// must not change anything). Fails only when the link keys cannot be read.
pub async fn unsubscribe_link_is_valid(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    signature: &str,
) -> Result<bool, AppError> {
    let keys = ctx.config.link_keys.get().await?;
    Ok(keys
        .all()
        .any(|secret| verify_unsubscribe(secret, shop, customer, signature)))
}

/// Stops every cashback email (earned, ready, reminders, clawback, tier)
/// for the customer the signed link names.
pub async fn unsubscribe(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    signature: &str,
    now: DateTime<Utc>,
) -> Result<UnsubscribeOutcome, AppError> {
    if !unsubscribe_link_is_valid(ctx, shop, customer, signature).await? {
        return Ok(UnsubscribeOutcome::BadSignature);
    }
    // One rule for the flag, whether the link or the cashback page sets it.
    Ok(
        match crate::preferences::set_reminders(ctx, shop, customer, true, now).await? {
            PreferenceOutcome::Changed => UnsubscribeOutcome::Unsubscribed,
            PreferenceOutcome::Unchanged => UnsubscribeOutcome::AlreadyUnsubscribed,
            PreferenceOutcome::UnknownCustomer => UnsubscribeOutcome::UnknownCustomer,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_the_round_trip_through_a_query_string() {
        let raw = "LEDGER#2026-01-01T00:00:00.000000Z#order:1:paid:0";
        let encoded = encode_cursor(raw);
        assert!(encoded.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(decode_cursor(&encoded).unwrap(), raw);
        assert!(decode_cursor("not hex").is_err());
    }
}
