//! Requests about a customer's personal data and the shop's lifecycle, as
//! Shopify's mandatory compliance topics and `app/uninstalled` ask them
//! (docs/compliance.md):
//!
//! - [`record_data_request`]: a data request recorded (which accounts
//!   are the customer's, and the date to answer by), never answered with
//!   the data: the merchant fetches it through the admin API;
//! - [`customer_export`]: everything the engine holds about a customer
//!   (account, codes, the whole ledger), for the merchant to hand over
//!   within 30 days of a data request;
//! - [`redact_customer`]: the customer's personal data erased (the core's
//!   [`cashback_core::privacy::redact`]) and the email-owner index
//!   forgotten; the money and its ledger entries stay, anonymised;
//! - [`redact_shop`]: every item of the shop deleted, once the shop has
//!   been uninstalled for 48 hours (Shopify sends it then);
//! - [`uninstall`] / [`syncing_stopped`]: the shop marked uninstalled on
//!   its record, which the code sync reads to stop sending codes;
//! - [`reinstall`]: the app installed again, syncing resumed and every
//!   code reconciled.
//!
//! A customer is named by the platform's id and email: both are looked up
//! in one read (their account, the guest account the email would earn on,
//! and the account the email-owner index names), so a guest's account and
//! an account the email moved to are found too. Only accounts of the shop
//! the request was verified for are read or written: every key is the
//! shop's.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use cashback_core::ids::{CustomerId, Email, ShopId};
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::privacy;
use cashback_core::program::Program;

use crate::admin::CustomerView;
use crate::context::Context;
use crate::error::AppError;
use crate::platform_codes::{self, RunAsked, RunRequest};
use crate::retry::Attempts;
use crate::store::{AccountWrite, ReadRequest, Versioned, WriteSet};

/// How long a merchant has to answer a data request or carry out a
/// redaction (Shopify's rule).
pub const ANSWER_WITHIN_DAYS: i64 = 30;

/// At most this many ledger entries per account go in one export (a
/// webhook answers within seconds); an account with more says so
/// (`ledger_truncated`) and the admin API's ledger pages give the rest.
pub const MAX_EXPORT_ENTRIES: usize = 5_000;

/// Who a compliance request is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The platform's customer id.
    pub customer: Option<CustomerId>,
    /// The customer's email.
    pub email: Option<Email>,
}

/// What the engine holds about one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerExport {
    /// The shop the data is kept for.
    pub shop: ShopId,
    /// The platform's id of the request, to quote in the answer.
    pub request_id: Option<String>,
    /// When the export was made.
    pub generated_at: DateTime<Utc>,
    /// The date by which the merchant must answer the customer.
    pub answer_by: DateTime<Utc>,
    /// Every account found for the customer (usually one).
    pub accounts: Vec<AccountExport>,
}

/// One account's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountExport {
    /// Balances, email, balance code, tier, as the merchant sees them.
    pub account: CustomerView,
    /// The code the customer shares to refer others.
    pub referral_code: Option<String>,
    /// The ledger, newest first.
    pub ledger: Vec<LedgerEntry>,
    /// More entries exist than [`MAX_EXPORT_ENTRIES`].
    pub ledger_truncated: bool,
}

/// A data request, recorded: what the webhook answers and logs. It holds
/// no personal data; the export itself is read by the merchant through the
/// admin API (docs/compliance.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataRequest {
    /// What the merchant quotes to find the request again: the platform's
    /// request id, else the delivery's id.
    pub reference: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The date by which the merchant must answer the customer.
    pub answer_by: DateTime<Utc>,
    /// The accounts that hold the customer's data (their ids, which the
    /// admin API's customer, ledger and profile routes take).
    pub accounts: Vec<CustomerId>,
}

/// What a redaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Redacted {
    /// Accounts whose personal data was erased now.
    pub accounts_redacted: usize,
    /// Accounts found that held none any more (a repeated request).
    pub accounts_already_clean: usize,
}

/// The accounts of the shop that belong to `subject`: its customer id's,
/// the guest account its email earns on, and the account the email-owner
/// index names. One read (two when the index names an account not read).
async fn subject_accounts(
    ctx: &Context,
    shop: &ShopId,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<Vec<Versioned<Account>>, AppError> {
    let record = ctx.shop(shop, now).await?;
    let mut wanted: Vec<CustomerId> = subject.customer.iter().cloned().collect();
    if let Some(email) = &subject.email {
        let guest = record.guest_id(email);
        if !wanted.contains(&guest) {
            wanted.push(guest);
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let request = ReadRequest {
        accounts: wanted.clone(),
        email_owners: subject.email.iter().cloned().collect(),
        ..ReadRequest::default()
    };
    let mut read = ctx.store.read(shop, &request).await?;
    let mut found: Vec<Versioned<Account>> = wanted
        .iter()
        .filter_map(|customer| read.accounts.remove(customer))
        .collect();
    if let Some(email) = &subject.email {
        if let Some(owner) = read.email_owners.remove(email) {
            if !wanted.contains(&owner) {
                let mut more = ctx.store.read(shop, &ReadRequest::account(&owner)).await?;
                // The index may lag a changed address: only an account
                // that holds this email now is the subject's.
                if let Some(account) = more.accounts.remove(&owner) {
                    if account.value.email.as_ref() == Some(email) {
                        found.push(account);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Records a data request about the subject: finds their accounts (one
/// read) and says by when to answer. Nothing is written and no personal
/// data is returned: the merchant reads the export through the admin API.
pub async fn record_data_request(
    ctx: &Context,
    shop: &ShopId,
    subject: &Subject,
    reference: String,
    now: DateTime<Utc>,
) -> Result<DataRequest, AppError> {
    let accounts = subject_accounts(ctx, shop, subject, now)
        .await?
        .into_iter()
        .map(|account| account.value.customer)
        .collect();
    Ok(DataRequest {
        reference,
        received_at: now,
        answer_by: now + Duration::days(ANSWER_WITHIN_DAYS),
        accounts,
    })
}

/// Everything the engine holds about the subject at this shop.
pub async fn customer_export(
    ctx: &Context,
    shop: &ShopId,
    subject: &Subject,
    request_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<CustomerExport, AppError> {
    let program = ctx.store.get_program(shop).await?;
    let mut accounts = Vec::new();
    for account in subject_accounts(ctx, shop, subject, now).await? {
        let customer = account.value.customer.clone();
        let mut ledger = Vec::new();
        let mut cursor = None;
        let mut truncated = false;
        loop {
            let page = ctx.store.ledger(shop, &customer, cursor, 1000).await?;
            ledger.extend(page.items);
            if ledger.len() >= MAX_EXPORT_ENTRIES {
                truncated = page.next.is_some() || ledger.len() > MAX_EXPORT_ENTRIES;
                ledger.truncate(MAX_EXPORT_ENTRIES);
                break;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        accounts.push(AccountExport {
            account: CustomerView::of(&account, program.as_ref().map(|p| &p.value)),
            referral_code: account.value.referral_code.as_ref().map(|c| c.display()),
            ledger,
            ledger_truncated: truncated,
        });
    }
    Ok(CustomerExport {
        shop: shop.clone(),
        request_id,
        generated_at: now,
        answer_by: now + Duration::days(ANSWER_WITHIN_DAYS),
        accounts,
    })
}

/// Erases the subject's personal data at this shop: each account found is
/// written back redacted (on the version read; a concurrent change makes
/// it read again), and the email-owner index forgets the addresses. The
/// balances and ledger entries stay. Repeating it changes nothing more.
pub async fn redact_customer(
    ctx: &Context,
    shop: &ShopId,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<Redacted, AppError> {
    let program = match ctx.shop_program(shop, now).await {
        Ok(found) => found.program,
        Err(AppError::NoProgram(_)) => Program::new(ctx.shop(shop, now).await?.currency),
        Err(error) => return Err(error),
    };
    let mut attempts = Attempts::new(ctx.config.max_attempts);
    let mut forget: Vec<(Email, CustomerId)> = Vec::new();
    'attempt: while attempts.start().is_some() {
        let mut outcome = Redacted::default();
        for account in subject_accounts(ctx, shop, subject, now).await? {
            let customer = account.value.customer.clone();
            for email in account.value.email.iter().chain(subject.email.iter()) {
                if !forget.contains(&(email.clone(), customer.clone())) {
                    forget.push((email.clone(), customer.clone()));
                }
            }
            if !privacy::holds_personal_data(&account.value) {
                outcome.accounts_already_clean += 1;
                continue;
            }
            let redacted = Versioned {
                value: privacy::redact(&account.value),
                version: account.version,
            };
            let write = WriteSet::account(AccountWrite::of(&program, redacted));
            match ctx.store.write(shop, write).await {
                Ok(_) => outcome.accounts_redacted += 1,
                Err(error) if error.is_conflict() => {
                    attempts.lost(error).await;
                    continue 'attempt;
                }
                Err(error) => return Err(error.into()),
            }
        }
        for (email, customer) in &forget {
            ctx.store.forget_email(shop, email, customer).await?;
        }
        return Ok(outcome);
    }
    Err(attempts.gave_up())
}

/// How long a shop must have been uninstalled before a redaction deletes
/// its data: Shopify sends `shop/redact` 48 hours after the uninstall, so
/// one sent sooner (a leaked secret sending `app/uninstalled` and then
/// `shop/redact` at once) is not Shopify's.
pub const REDACT_AFTER_UNINSTALL_HOURS: i64 = 48;

/// What a shop redaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopRedaction {
    /// Every item of the shop was deleted; how many.
    Deleted(u64),
    /// The shop was uninstalled less than [`REDACT_AFTER_UNINSTALL_HOURS`]
    /// ago: nothing was deleted, and the request is to be repeated from
    /// `due_at` on (Shopify repeats a delivery answered with an error).
    NotDue {
        /// When the shop was uninstalled.
        uninstalled_at: DateTime<Utc>,
        /// From when a redaction deletes the shop's data.
        due_at: DateTime<Utc>,
    },
}

/// Deletes every item the engine holds for the shop, once it has been
/// uninstalled at least [`REDACT_AFTER_UNINSTALL_HOURS`] before `now`
/// ([`ShopRedaction::NotDue`] before then, nothing changed). The warm cache
/// forgets the shop too. For a shop still installed it is
/// [`AppError::Conflict`] and nothing changes.
pub async fn redact_shop(
    ctx: &Context,
    shop: &ShopId,
    now: DateTime<Utc>,
) -> Result<ShopRedaction, AppError> {
    let Some(uninstalled_at) = ctx.store.shop_uninstalled_at(shop).await? else {
        return Err(AppError::Conflict(format!(
            "shop {shop} is installed: its data is deleted only after an uninstall"
        )));
    };
    let due_at = redaction_due_at(uninstalled_at);
    if now < due_at {
        return Ok(ShopRedaction::NotDue {
            uninstalled_at,
            due_at,
        });
    }
    let deleted = ctx.store.delete_shop_data(shop).await?;
    ctx.invalidate(shop);
    Ok(ShopRedaction::Deleted(deleted))
}

/// From when the data of a shop uninstalled at `uninstalled_at` may be
/// deleted.
pub fn redaction_due_at(uninstalled_at: DateTime<Utc>) -> DateTime<Utc> {
    uninstalled_at + Duration::hours(REDACT_AFTER_UNINSTALL_HOURS)
}

/// Marks the shop uninstalled at `now` (the first time only: a repeated
/// delivery keeps the first time).
pub async fn uninstall(ctx: &Context, shop: &ShopId, now: DateTime<Utc>) -> Result<(), AppError> {
    if ctx.store.shop_uninstalled_at(shop).await?.is_none() {
        ctx.store.set_shop_uninstalled(shop, Some(now)).await?;
    }
    Ok(())
}

/// What [`reinstall`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reinstalled {
    /// When the shop had been uninstalled (None: it was installed, and
    /// nothing changed).
    pub uninstalled_at: Option<DateTime<Utc>>,
    /// The reconcile asked for, which repairs every code the platform
    /// kept while syncing was stopped (None: nothing was uninstalled, or
    /// the program keeps its codes off the platform).
    pub reconcile: Option<RunAsked>,
}

/// The app is installed on the shop again (the embedded dashboard opened
/// with the shop's session token, or an operator says so): syncing
/// resumes, and a reconcile of every code is asked for, since the ledger
/// went on while the platform's codes stood still. A shop that was not
/// uninstalled is left as it is (nothing is written, no run is asked for);
/// an unknown shop is [`AppError::NotFound`].
pub async fn reinstall(
    ctx: &Context,
    shop: &ShopId,
    now: DateTime<Utc>,
) -> Result<Reinstalled, AppError> {
    // An unknown shop is 404 here, before anything is written.
    ctx.shop(shop, now).await?;
    let Some(uninstalled_at) = ctx.store.shop_uninstalled_at(shop).await? else {
        return Ok(Reinstalled {
            uninstalled_at: None,
            reconcile: None,
        });
    };
    ctx.store.set_shop_uninstalled(shop, None).await?;
    let request = RunRequest::Reconcile {
        shop: shop.clone(),
        cursor: None,
    };
    let reconcile = match platform_codes::ask_for_run(ctx, request, now).await {
        Ok(asked) => Some(asked),
        // No program yet, or platform_sync is off: no code of the shop is
        // on the platform.
        Err(AppError::Conflict(_) | AppError::NoProgram(_)) => None,
        Err(error) => return Err(error),
    };
    tracing::info!(
        shop = %shop,
        %uninstalled_at,
        reconcile = reconcile.is_some(),
        "shop installed again: code syncing resumed"
    );
    Ok(Reinstalled {
        uninstalled_at: Some(uninstalled_at),
        reconcile,
    })
}

/// Whether codes must no longer be sent to the shop's platform (the app
/// was uninstalled): the code sync asks this before calling the platform.
pub async fn syncing_stopped(ctx: &Context, shop: &ShopId) -> Result<bool, AppError> {
    Ok(ctx.store.shop_uninstalled_at(shop).await?.is_some())
}
