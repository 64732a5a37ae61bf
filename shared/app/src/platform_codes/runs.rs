//! Runs over a whole shop's codes: the reconcile (compare each synced code
//! with the ledger, repair drift) and the backfill (bring every existing
//! account's code onto the platform, resumable from a checkpoint per shop).
//!
//! Both page through the shop's accounts ([`Store::list_accounts`], in
//! customer id order) and stop at a deadline, answering where to go on from:
//! a Lambda invocation (or an admin request) does a bounded part, and the
//! next one continues. Platform calls are paced by the adapter (Shopify's
//! cost bucket) and retried per [`SyncPolicy`]; a few run at once
//! ([`RunLimits::concurrency`]) so a run keeps the shop's budget busy
//! without passing it.
//!
//! [`Store::list_accounts`]: crate::store::Store::list_accounts

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::Account;
use cashback_core::program::Program;

use super::mode::Side;
use super::{
    desired_code, sync_customer_code_from_run, wait_or_fail, CodeState, DesiredCode, PlatformCodes,
    PlatformSync, PutOutcome, SyncError, SyncOutcome, SyncPolicy,
};
use crate::context::Context;
use crate::error::AppError;
use crate::store::{Platform, ReconcileRecord};

/// How much one run may do.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Accounts read per store page (the store caps it at 100).
    pub page_size: u32,
    /// Platform syncs in flight at once (the adapter paces them).
    pub concurrency: usize,
    /// No new page is started after this; the run answers where to go on.
    pub deadline: Instant,
}

impl RunLimits {
    /// Pages of 100, four syncs at once, stopping after `budget`.
    pub fn for_budget(budget: std::time::Duration) -> RunLimits {
        RunLimits {
            page_size: 100,
            concurrency: 4,
            deadline: Instant::now() + budget,
        }
    }
}

/// The figures of one reconcile run (its summary line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileSummary {
    /// Codes compared with the ledger (accounts with a synced code).
    pub checked: u64,
    /// Codes whose platform state differed from the ledger's.
    pub drifted: u64,
    /// Drifted codes set back to the ledger's state.
    pub repaired: u64,
    /// Codes that could not be compared or repaired (the platform failed
    /// after retries, or refused); each that may pass later is in `retry`.
    pub failed: u64,
    /// Codes the engine does not manage on the platform (a merchant's own
    /// discount holds the code): never changed, reported.
    pub foreign: u64,
    /// Where the next run goes on from; None when the shop is done.
    pub next: Option<String>,
    /// The customers whose code failed, to be synced again soon (the
    /// function queues them: `SyncRetries`) rather than at the next run.
    #[serde(skip)]
    pub retry: Vec<CustomerId>,
}

/// What a code looked like against the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    /// The platform holds the ledger's state.
    InStep,
    /// The platform holds something else (or nothing, for a code that must work).
    Drifted,
    /// The code on the platform is not the engine's.
    Foreign,
}

/// Compares the platform's code with the state the ledger wants. An
/// inactive code's amount does not matter (Shopify keeps the last amount of
/// an ended code); an inactive code the platform never had is in step.
pub fn drift(desired: &DesiredCode, held: Option<&CodeState>) -> Drift {
    match held {
        None if desired.active => Drift::Drifted,
        None => Drift::InStep,
        Some(state) if !state.managed => Drift::Foreign,
        Some(state) if state.active != desired.active => Drift::Drifted,
        Some(state) if desired.active && state.amount != desired.amount => Drift::Drifted,
        Some(_) => Drift::InStep,
    }
}

/// The program whose codes a run keeps, or nothing when the shop does not
/// sync its codes (off, or the app uninstalled). A run reads the uninstall
/// flag here once; the syncs it makes ([`sync_customer_code_from_run`]) do
/// not read it again.
async fn syncing_program(ctx: &Context, shop: &ShopId) -> Result<Option<Program>, AppError> {
    let program = ctx.shop_program(shop, ctx.now()).await?.program;
    if program.platform_sync == PlatformSync::Off
        || crate::compliance::syncing_stopped(ctx, shop).await?
    {
        // Off, or the app was uninstalled: the platform is not ours to call.
        return Ok(None);
    }
    Ok(Some(program))
}

/// Compares every synced code of the shop, from `cursor` on, with the
/// ledger and repairs what drifted, until the shop is done or the deadline
/// passes. Its summary line carries checked, drifted and repaired.
pub async fn reconcile_shop(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    cursor: Option<String>,
    limits: &RunLimits,
    policy: &SyncPolicy,
) -> Result<ReconcileSummary, AppError> {
    let mut summary = ReconcileSummary::default();
    let Some(scope) = reconcile_scope(ctx, shop).await? else {
        tracing::info!(shop = %shop, "platform reconcile: the shop does not sync its codes");
        return Ok(summary);
    };
    let mut cursor = cursor;
    loop {
        let page = ctx
            .store
            .list_accounts(shop, cursor.clone(), limits.page_size)
            .await?;
        let results: Vec<(&CustomerId, Checked)> = stream::iter(page.items.iter())
            .map(|account| async {
                let checked =
                    reconcile_account(ctx, platform, shop, &account.value, &scope, policy).await;
                (&account.value.customer, checked)
            })
            .buffer_unordered(limits.concurrency.max(1))
            .collect()
            .await;
        for (customer, checked) in results {
            summary.add(customer, checked);
        }
        cursor = page.next;
        if cursor.is_none() || Instant::now() >= limits.deadline {
            break;
        }
    }
    summary.next = cursor;
    tracing::info!(
        shop = %shop,
        checked = summary.checked,
        drifted = summary.drifted,
        repaired = summary.repaired,
        failed = summary.failed,
        foreign = summary.foreign,
        finished = summary.next.is_none(),
        "platform reconcile summary"
    );
    Ok(summary)
}

/// What a reconcile goes by, read once per run step (or retry) from the
/// table, not a container's cache.
struct ReconcileScope {
    /// The program whose codes it keeps.
    program: Program,
    /// Whether a customer of the shop was ever synced as store credit.
    store_credit_used: bool,
}

/// The reconcile's scope, or None when there is nothing to reconcile.
async fn reconcile_scope(ctx: &Context, shop: &ShopId) -> Result<Option<ReconcileScope>, AppError> {
    ctx.invalidate(shop);
    let store_credit_used = store_credit_used(ctx, shop).await?;
    let program = match syncing_program(ctx, shop).await? {
        Some(program) => program,
        // Sync off after store credit: its customers' store credit is
        // still checked, since nothing else reads it any more.
        None if store_credit_used && !crate::compliance::syncing_stopped(ctx, shop).await? => {
            ctx.shop_program(shop, ctx.now()).await?.program
        }
        None => return Ok(None),
    };
    Ok(Some(ReconcileScope {
        program,
        store_credit_used,
    }))
}

/// The reconcile of one customer, as a run does it for each ([`reconcile_shop`]):
/// what a sync that failed in a run is retried with, soon after, instead
/// of waiting for the next run. Its summary counts that one customer.
pub async fn reconcile_customer(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    policy: &SyncPolicy,
) -> Result<ReconcileSummary, AppError> {
    let mut summary = ReconcileSummary::default();
    let Some(scope) = reconcile_scope(ctx, shop).await? else {
        return Ok(summary);
    };
    let read = ctx
        .store
        .read(shop, &crate::store::ReadRequest::account(customer))
        .await?;
    let Some(account) = read.accounts.get(customer) else {
        // Erased meanwhile (a redact): nothing of theirs to keep in step.
        return Ok(summary);
    };
    let checked = reconcile_account(ctx, platform, shop, &account.value, &scope, policy).await;
    summary.add(customer, checked);
    Ok(summary)
}

/// What reconciling one account gave.
enum Checked {
    NotSynced,
    InStep,
    Repaired,
    Foreign,
    /// Drifted (true) or unknown (false), and not repaired; `retryable`
    /// when a later try may succeed ([`SyncError::may_pass_later`]).
    Failed {
        drifted: bool,
        retryable: bool,
    },
}

impl Checked {
    /// Failed, and a later try may succeed: the customer is named for a retry.
    fn worth_retrying(&self) -> bool {
        matches!(
            self,
            Checked::Failed {
                retryable: true,
                ..
            }
        )
    }
}

impl ReconcileSummary {
    /// Counts one customer's outcome; one worth retrying is named in `retry`.
    fn add(&mut self, customer: &CustomerId, checked: Checked) {
        if checked.worth_retrying() {
            self.retry.push(customer.clone());
        }
        match checked {
            Checked::NotSynced => return,
            Checked::InStep => {}
            Checked::Repaired => {
                self.drifted += 1;
                self.repaired += 1;
            }
            Checked::Foreign => self.foreign += 1,
            Checked::Failed { drifted, .. } => {
                self.drifted += u64::from(drifted);
                self.failed += 1;
            }
        }
        self.checked += 1;
    }
}

/// Whether a customer of the shop was ever synced as store credit.
pub async fn store_credit_used(ctx: &Context, shop: &ShopId) -> Result<bool, AppError> {
    Ok(ctx
        .store
        .get_checkpoint(&super::store_credit::used_job(shop))
        .await?
        .is_some())
}

/// Empties store credit left live for a customer whose program no longer
/// keeps it (discount codes, or sync off): the mode record still names it
/// (a change that did not finish: the sync takes it over), or a store
/// credit call came after its last emptying (a sync still holding the
/// store-credit program whose check of the mode failed). True when it
/// emptied some.
async fn empty_store_credit_left(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    account: &Account,
    program: &Program,
    policy: &SyncPolicy,
) -> Result<bool, SyncError> {
    if platform.store_credit().is_none() {
        return Ok(false);
    }
    let record = super::mode::read(ctx, shop, &account.customer).await?;
    if record.side == Side::StoreCredit {
        tracing::warn!(shop = %shop, customer = %account.customer,
            "platform reconcile: a change of mode away from store credit did not finish");
        sync_customer_code_from_run(ctx, platform, shop, &account.customer, None, policy).await?;
        return Ok(true);
    }
    if record.seq == 0 {
        return Ok(false);
    }
    let emptied =
        super::empty_sent_after_emptying(ctx, platform, shop, &account.customer, program, policy)
            .await?;
    if emptied && super::mode::read(ctx, shop, &account.customer).await? != record {
        // The mode changed while this run emptied (a switch to store
        // credit): the sync puts the balance where the program now says.
        sync_customer_code_from_run(ctx, platform, shop, &account.customer, None, policy).await?;
    }
    Ok(emptied)
}

async fn reconcile_account(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    account: &Account,
    scope: &ReconcileScope,
    policy: &SyncPolicy,
) -> Checked {
    let program = &scope.program;
    let mut store_credit_emptied = false;
    if scope.store_credit_used && program.platform_sync != PlatformSync::StoreCredit {
        match empty_store_credit_left(ctx, platform, shop, account, program, policy).await {
            Ok(emptied) => store_credit_emptied = emptied,
            Err(error) => {
                tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                    "platform reconcile: store credit left live could not be emptied");
                if program.platform_sync == PlatformSync::Off {
                    return Checked::Failed {
                        drifted: true,
                        retryable: error.may_pass_later(),
                    };
                }
            }
        }
    }
    if program.platform_sync == PlatformSync::Off {
        return if store_credit_emptied {
            Checked::Repaired
        } else {
            Checked::NotSynced
        };
    }
    let checked = reconcile_code(ctx, platform, shop, account, program, policy).await;
    match checked {
        Checked::InStep | Checked::NotSynced if store_credit_emptied => Checked::Repaired,
        other => other,
    }
}

/// Compares the customer's code (or store credit, in that mode) with the
/// ledger and repairs what drifted.
async fn reconcile_code(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    account: &Account,
    program: &Program,
    policy: &SyncPolicy,
) -> Checked {
    let Some(desired) = desired_code(account, program) else {
        return Checked::NotSynced;
    };
    match other_side_live(platform, &desired, program, policy).await {
        Ok(None) => {}
        Ok(Some(side)) => {
            // Left live by a change of mode raced by a call that landed late:
            // recorded as live, so the sync ends it before it sends.
            tracing::warn!(shop = %shop, customer = %account.customer, side = ?side,
                "platform reconcile: the balance was live on the side the program does not use");
            let repaired =
                match super::mode::record_maybe_live(ctx, shop, &account.customer, side).await {
                    Ok(()) => {
                        sync_customer_code_from_run(
                            ctx,
                            platform,
                            shop,
                            &account.customer,
                            None,
                            policy,
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
            return match repaired {
                Ok(_) => Checked::Repaired,
                Err(error) => {
                    tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                        "platform reconcile: the other side could not be ended");
                    Checked::Failed {
                        drifted: true,
                        retryable: error.may_pass_later(),
                    }
                }
            };
        }
        Err(error) => {
            tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                "platform reconcile: the other side could not be read");
            return Checked::Failed {
                drifted: false,
                retryable: error.may_pass_later(),
            };
        }
    }
    if program.platform_sync == PlatformSync::StoreCredit {
        // Store credit is compared by the sync itself: it reads the
        // account's balance (and the orders' transactions) and sends only
        // the difference.
        return match sync_customer_code_from_run(
            ctx,
            platform,
            shop,
            &account.customer,
            None,
            policy,
        )
        .await
        {
            Ok(SyncOutcome::Synced(synced)) if synced.outcome != PutOutcome::NotNeeded => {
                Checked::Repaired
            }
            Ok(SyncOutcome::Synced(_)) => Checked::InStep,
            Ok(SyncOutcome::NotSynced) => Checked::NotSynced,
            Err(error) => {
                tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                    "platform reconcile: the store credit could not be brought in step");
                Checked::Failed {
                    drifted: false,
                    retryable: error.may_pass_later(),
                }
            }
        };
    }
    let held = match lookup_with_retries(platform, &desired, policy).await {
        Ok(held) => held,
        Err(error) => {
            tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                "platform reconcile: the code could not be read");
            return Checked::Failed {
                drifted: false,
                retryable: error.may_pass_later(),
            };
        }
    };
    match drift(&desired, held.as_ref()) {
        Drift::InStep => Checked::InStep,
        Drift::Foreign => {
            tracing::warn!(shop = %shop, customer = %account.customer,
                "platform reconcile: the code is held by a discount the engine does not manage");
            Checked::Foreign
        }
        Drift::Drifted => {
            tracing::info!(
                shop = %shop,
                customer = %account.customer,
                held_amount = held.as_ref().map(|h| h.amount.amount().to_string()),
                held_active = held.as_ref().map(|h| h.active),
                ledger_amount = %desired.amount.amount(),
                ledger_active = desired.active,
                "platform code drifted"
            );
            // The repair reads the account again: it sends the balance at
            // the moment of the call, not the one compared above.
            match sync_customer_code_from_run(ctx, platform, shop, &account.customer, None, policy)
                .await
            {
                Ok(_) => Checked::Repaired,
                Err(error) => {
                    tracing::warn!(shop = %shop, customer = %account.customer, error = %error,
                        "platform reconcile: the repair failed");
                    Checked::Failed {
                        drifted: true,
                        retryable: error.may_pass_later(),
                    }
                }
            }
        }
    }
}

/// The discount code of a customer in store-credit mode, when it is still
/// active: a put that failed on our side may still land on the platform
/// after a change of mode ended the code ([`super::mode`]). (The other way
/// round needs no check: a store credit call is never sent once its window
/// has passed, and a change to discount codes waits out every pending one.)
async fn other_side_live(
    platform: &dyn PlatformCodes,
    desired: &DesiredCode,
    program: &Program,
    policy: &SyncPolicy,
) -> Result<Option<Side>, SyncError> {
    if program.platform_sync != PlatformSync::StoreCredit {
        return Ok(None);
    }
    let held = lookup_with_retries(platform, desired, policy).await?;
    Ok(held
        .filter(|code| code.managed && code.active)
        .map(|_| Side::DiscountCode))
}

async fn lookup_with_retries(
    platform: &dyn PlatformCodes,
    desired: &DesiredCode,
    policy: &SyncPolicy,
) -> Result<Option<CodeState>, SyncError> {
    let mut attempts = 0;
    let mut backoff = policy.base_backoff;
    loop {
        attempts += 1;
        match platform.lookup(&desired.code).await {
            Ok(held) => return Ok(held),
            Err(error) => wait_or_fail(error, attempts, policy, &mut backoff).await?,
        }
    }
}

/// The checkpoint job of a shop's backfill.
pub fn backfill_job(shop: &ShopId) -> String {
    format!("platform-backfill#{shop}")
}

/// Where a shop's backfill is. Stored as one string that only grows (the
/// store keeps checkpoints moving forward): the run's start, then the
/// accounts done, then the cursor or the end mark, so a late write of an
/// older position can never move a run back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillCheckpoint {
    /// When the run started: a new run (restart) sorts after every older one.
    pub started_at: DateTime<Utc>,
    /// Accounts gone through so far.
    pub done: u64,
    /// Where to go on from; None when the run is finished.
    pub cursor: Option<String>,
}

impl BackfillCheckpoint {
    /// The stored form: `{started}|{done:012}|a|{cursor}` while running,
    /// `{started}|{done:012}|z|` when finished.
    pub fn encode(&self) -> String {
        let started = self.started_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        match &self.cursor {
            Some(cursor) => format!("{started}|{:012}|a|{cursor}", self.done),
            None => format!("{started}|{:012}|z|", self.done),
        }
    }

    /// Reads the stored form; None for anything else.
    pub fn decode(stored: &str) -> Option<BackfillCheckpoint> {
        let mut parts = stored.splitn(4, '|');
        let started_at = DateTime::parse_from_rfc3339(parts.next()?)
            .ok()?
            .with_timezone(&Utc);
        let done = parts.next()?.parse().ok()?;
        let cursor = match (parts.next()?, parts.next()?) {
            ("a", cursor) if !cursor.is_empty() => Some(cursor.to_string()),
            ("z", "") => None,
            _ => return None,
        };
        Some(BackfillCheckpoint {
            started_at,
            done,
            cursor,
        })
    }

    /// Whether the run has gone through every account.
    pub fn finished(&self) -> bool {
        self.cursor.is_none()
    }
}

/// The figures of one backfill step (its summary line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillSummary {
    /// Accounts whose code was put on the platform in this step.
    pub synced: u64,
    /// Accounts with nothing to put (no code yet, or an inactive code the
    /// platform does not have).
    pub skipped: u64,
    /// Accounts the platform did not take (each that may pass later is in
    /// `retry`), or that could not be read.
    pub failed: u64,
    /// Where the run is now.
    pub checkpoint: BackfillCheckpoint,
    /// The customers whose sync failed, to be synced again soon (the
    /// function queues them: `SyncRetries`) rather than at the next
    /// reconcile.
    #[serde(skip)]
    pub retry: Vec<CustomerId>,
}

/// One step of a shop's backfill: goes on from the shop's checkpoint (or
/// starts a run at `now` when there is none, the last one finished, or
/// `restart` is set), syncs every account's code page by page until the
/// deadline, and saves the checkpoint after each page, so a step that
/// stops anywhere (deadline, timeout, crash) loses at most one page, and
/// that page is only sent again (absolute amounts: harmless).
pub async fn backfill_shop(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    restart: bool,
    now: DateTime<Utc>,
    limits: &RunLimits,
    policy: &SyncPolicy,
) -> Result<BackfillSummary, AppError> {
    let job = backfill_job(shop);
    let stored = ctx.store.get_checkpoint(&job).await?;
    let resumed = stored.as_deref().and_then(BackfillCheckpoint::decode);
    let mut checkpoint = match resumed {
        Some(checkpoint) if !restart && !checkpoint.finished() => checkpoint,
        _ => BackfillCheckpoint {
            started_at: now,
            done: 0,
            cursor: None,
        },
    };
    let mut summary = BackfillSummary {
        synced: 0,
        skipped: 0,
        failed: 0,
        checkpoint: checkpoint.clone(),
        retry: Vec::new(),
    };
    // The program as the table holds it now, not as this container cached
    // it: a backfill follows a change of program.
    ctx.invalidate(shop);
    // A shop that turned sync off is still gone through while the app is
    // installed: each sync empties the store credit the engine put there
    // (and does nothing for a customer who had none).
    if crate::compliance::syncing_stopped(ctx, shop).await? {
        tracing::info!(shop = %shop, "platform backfill: the app was uninstalled");
        return Ok(summary);
    }
    loop {
        let page = ctx
            .store
            .list_accounts(shop, checkpoint.cursor.clone(), limits.page_size)
            .await?;
        let results: Vec<(&CustomerId, Result<SyncOutcome, SyncError>)> =
            stream::iter(page.items.iter())
                .map(|account| async {
                    let customer = &account.value.customer;
                    let result =
                        sync_customer_code_from_run(ctx, platform, shop, customer, None, policy)
                            .await;
                    (customer, result)
                })
                .buffer_unordered(limits.concurrency.max(1))
                .collect()
                .await;
        for (customer, result) in results {
            match result {
                Ok(SyncOutcome::Synced(synced))
                    if !matches!(synced.outcome, super::PutOutcome::NotNeeded) =>
                {
                    summary.synced += 1;
                }
                Ok(_) => summary.skipped += 1,
                Err(SyncError::App(error)) if !error.is_retryable() => {
                    // The account went away meanwhile (its retry finds
                    // nothing to do), or cannot be read (its retry ends
                    // parked, with the alarm).
                    tracing::warn!(shop = %shop, error = %error, "platform backfill: account skipped");
                    summary.failed += 1;
                    summary.retry.push(customer.clone());
                }
                Err(SyncError::App(error)) => return Err(error),
                Err(error) => {
                    tracing::warn!(shop = %shop, customer = %customer, error = %error,
                        "platform backfill: code not synced");
                    summary.failed += 1;
                    // The platform's refusal is not tried again (the
                    // reconcile reports it); anything else may pass later.
                    if error.may_pass_later() {
                        summary.retry.push(customer.clone());
                    }
                }
            }
        }
        checkpoint.done += page.items.len() as u64;
        checkpoint.cursor = page.next;
        ctx.store.put_checkpoint(&job, &checkpoint.encode()).await?;
        if checkpoint.finished() || Instant::now() >= limits.deadline {
            break;
        }
    }
    summary.checkpoint = checkpoint;
    tracing::info!(
        shop = %shop,
        synced = summary.synced,
        skipped = summary.skipped,
        failed = summary.failed,
        done = summary.checkpoint.done,
        finished = summary.checkpoint.finished(),
        "platform backfill summary"
    );
    Ok(summary)
}

/// The shop's backfill checkpoint, if a run was ever started.
pub async fn backfill_status(
    ctx: &Context,
    shop: &ShopId,
) -> Result<Option<BackfillCheckpoint>, AppError> {
    let stored = ctx.store.get_checkpoint(&backfill_job(shop)).await?;
    Ok(stored.as_deref().and_then(BackfillCheckpoint::decode))
}

/// Every request's checkpoint job starts with this; the sync function
/// watches the table's stream for writes of such items.
pub const REQUEST_JOB_PREFIX: &str = "platform-sync-request#";

/// A run over a shop's codes, asked for by the admin API, the schedule, a
/// program change, or a run that must go on in the next invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "run", rename_all = "snake_case")]
pub enum RunRequest {
    /// Compare every synced code with the ledger, from `cursor` on.
    Reconcile {
        /// The shop whose codes are compared.
        shop: ShopId,
        /// Where to go on from (None: from the first account).
        #[serde(default)]
        cursor: Option<String>,
    },
    /// Put every account's code on the platform (resumes the shop's run,
    /// or starts one over with `restart`).
    Backfill {
        /// The shop whose codes are put.
        shop: ShopId,
        /// Start over even when a run is under way (a program change of
        /// the redemption rules: every code must take the new rules).
        #[serde(default)]
        restart: bool,
    },
}

impl RunRequest {
    /// The shop the run is for.
    pub fn shop(&self) -> &ShopId {
        match self {
            RunRequest::Reconcile { shop, .. } | RunRequest::Backfill { shop, .. } => shop,
        }
    }

    /// The request's checkpoint job: one per shop and kind, so a newer
    /// request of a kind replaces an older one.
    pub fn job(&self) -> String {
        match self {
            RunRequest::Reconcile { shop, .. } => format!("{REQUEST_JOB_PREFIX}reconcile#{shop}"),
            RunRequest::Backfill { shop, .. } => format!("{REQUEST_JOB_PREFIX}backfill#{shop}"),
        }
    }

    /// The stored value: `{at}|{cursor}` or `{at}|restart` / `{at}|resume`,
    /// the time first so a newer request always moves the checkpoint on.
    pub fn value(&self, at: DateTime<Utc>) -> String {
        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        match self {
            RunRequest::Reconcile { cursor, .. } => {
                format!("{at}|{}", cursor.as_deref().unwrap_or(""))
            }
            RunRequest::Backfill { restart: true, .. } => format!("{at}|restart"),
            RunRequest::Backfill { restart: false, .. } => format!("{at}|resume"),
        }
    }

    /// The request a checkpoint job and value stand for, and when it was
    /// made; None for any other job.
    pub fn decode(job: &str, value: &str) -> Option<(RunRequest, DateTime<Utc>)> {
        let rest = job.strip_prefix(REQUEST_JOB_PREFIX)?;
        let (kind, shop) = rest.split_once('#')?;
        let shop = ShopId::parse(shop).ok()?;
        let (at, detail) = value.split_once('|')?;
        let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
        let request = match (kind, detail) {
            ("reconcile", "") => RunRequest::Reconcile { shop, cursor: None },
            ("reconcile", cursor) => RunRequest::Reconcile {
                shop,
                cursor: Some(cursor.to_string()),
            },
            ("backfill", "restart") => RunRequest::Backfill {
                shop,
                restart: true,
            },
            ("backfill", "resume") => RunRequest::Backfill {
                shop,
                restart: false,
            },
            _ => return None,
        };
        Some((request, at))
    }
}

/// Records a run request where the sync function sees it (the table's
/// stream carries the write to it): the admin API answers at once, and the
/// run happens off every request path. `after`, when a run asks for its own
/// continuation, is the time of the request it continues: the new one is
/// stamped later even if clocks disagree, so it always moves the checkpoint.
pub async fn request_run(
    ctx: &Context,
    request: &RunRequest,
    now: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, AppError> {
    let at = match after {
        Some(previous) if previous >= now => previous + chrono::Duration::milliseconds(1),
        _ => now,
    };
    ctx.store
        .put_checkpoint(&request.job(), &request.value(at))
        .await?;
    tracing::info!(shop = %request.shop(), job = %request.job(), "platform run requested");
    Ok(at)
}

/// A run the admin API asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunAsked {
    /// The run, as the sync function will see it.
    #[serde(flatten)]
    pub request: RunRequest,
    /// When it was asked for (its request's stamp).
    pub requested_at: DateTime<Utc>,
}

/// Asks the sync function for a run over the shop's codes (a reconcile
/// from the first account, or a backfill: resumed, or started over with
/// `restart`). Refused (409) when the shop's program keeps its codes off
/// the platform; 404 for an unknown shop.
pub async fn ask_for_run(
    ctx: &Context,
    request: RunRequest,
    now: DateTime<Utc>,
) -> Result<RunAsked, AppError> {
    if syncing_program(ctx, request.shop()).await?.is_none() {
        return Err(AppError::Conflict(
            "the shop does not sync its codes (platform_sync is off, or the app was uninstalled)"
                .into(),
        ));
    }
    let requested_at = request_run(ctx, &request, now, None).await?;
    Ok(RunAsked {
        request,
        requested_at,
    })
}

/// Where a shop's codes stand on its platform: the admin API's
/// `GET /v1/shops/{shop}/platform-sync` and the dashboard's status panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// The program's setting.
    pub platform_sync: PlatformSync,
    /// The shop's platform.
    pub platform: Platform,
    /// Whether the engine keeps the shop's codes on its platform now: the
    /// program syncs, the platform keeps codes, the app is installed.
    pub connected: bool,
    /// When the app was uninstalled (Shopify's app/uninstalled), if it is.
    pub uninstalled_at: Option<DateTime<Utc>>,
    /// When a customer's code was last put on the platform.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Syncs given up on since the last finished reconcile.
    pub parked: ParkedStatus,
    /// The last reconcile's figures, if one ran.
    pub reconcile: Option<ReconcileRecord>,
    /// The last (or running) backfill, if one was ever started.
    pub backfill: Option<BackfillCheckpoint>,
}

/// Syncs given up on (the platform kept failing or refused them) since
/// the last finished reconcile, which repairs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedStatus {
    /// How many.
    pub count: u64,
    /// Why the newest one was given up on.
    pub newest_reason: Option<String>,
    /// When.
    pub newest_at: Option<DateTime<Utc>>,
}

/// The shop's sync setting and state: its record (last sync, parked
/// syncs, last reconcile), its uninstall flag and its backfill.
pub async fn sync_status(ctx: &Context, shop: &ShopId) -> Result<SyncStatus, AppError> {
    let shop_program = ctx.shop_program(shop, ctx.now()).await?;
    let uninstalled_at = ctx.store.shop_uninstalled_at(shop).await?;
    let record = ctx.store.sync_record(shop).await?;
    let platform = shop_program.shop.platform;
    let platform_sync = shop_program.program.platform_sync;
    Ok(SyncStatus {
        platform_sync,
        platform,
        connected: platform_sync != PlatformSync::Off
            && platform != Platform::Generic
            && uninstalled_at.is_none(),
        uninstalled_at,
        last_synced_at: record.last_synced_at,
        parked: ParkedStatus {
            count: record.parked,
            newest_reason: record.parked_reason,
            newest_at: record.parked_at,
        },
        reconcile: record.reconcile,
        backfill: backfill_status(ctx, shop).await?,
    })
}
