//! The PlatformCodes port: the shop platform's side of a customer's balance
//! code (a Shopify discount code, a WooCommerce coupon), and the use case
//! that brings it in step with the ledger.
//!
//! The engine never sends a difference: [`sync_customer_code`] reads the
//! account, derives the code's whole desired state in the core
//! ([`cashback_core::platform_code::desired_code`]) and sets it. Applying it
//! twice, late, or after a newer change was already applied is harmless
//! because each attempt re-reads the account and sends the absolute
//! spendable balance at that moment. Adapters live in the
//! `cashback-platform-codes` crate, wired like the Store and the Notifier.
//!
//! [`runs`] holds what goes over a whole shop: the reconcile (drift
//! repaired, with its checked / drifted / repaired figures) and the
//! resumable backfill of a shop's existing accounts; [`retries`] the port
//! through which a customer whose sync failed in a run is reconciled again
//! within minutes.

use std::time::Duration;

use cashback_core::ids::{Code, CustomerId, ShopId};
use cashback_core::money::Money;
pub use cashback_core::platform_code::{
    desired_code, CodeOwner, Combines, DesiredCode, PlatformSync,
};

use crate::context::Context;
use crate::error::AppError;
use crate::store::ReadRequest;

pub mod mode;
pub mod retries;
pub mod runs;
pub mod store_credit;

use mode::{ModeRecord, Side};

pub use retries::{shop_wide, RetryQueueError, RetryRequest, SyncRetries, SHOP_WIDE_FAILURES};
pub use runs::{
    ask_for_run, backfill_shop, backfill_status, reconcile_customer, reconcile_shop, request_run,
    sync_status, BackfillCheckpoint, BackfillSummary, ParkedStatus, ReconcileSummary, RunAsked,
    RunLimits, RunRequest, SyncStatus,
};

/// The code as the platform holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeState {
    /// The code as customers type it.
    pub code: Code,
    /// The platform's own id (a Shopify `DiscountCodeNode` GID, a
    /// WooCommerce coupon id).
    pub platform_id: String,
    /// The fixed discount the code gives, in the shop's currency.
    pub amount: Money,
    /// Whether the platform accepts the code at checkout now.
    pub active: bool,
    /// Whether the engine made it (its title or description carries the
    /// engine's mark): a code the merchant made by hand is never changed.
    pub managed: bool,
}

/// What [`PlatformCodes::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The platform had no such code; it holds this one now.
    Created(CodeState),
    /// The platform's code now holds the desired state.
    Updated(CodeState),
    /// The code is inactive and the platform has none: nothing to create.
    NotNeeded,
}

/// Why the platform did not take a call, typed so the caller knows whether
/// to wait, retry, park or alarm.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The platform's rate limit: retry after this long.
    #[error("throttled by the platform; retry after {retry_after:?}")]
    Throttled {
        /// How long the platform asked to wait before the next call.
        retry_after: Duration,
    },
    /// A timeout, a 5xx, a dropped connection: retrying may succeed. The
    /// platform may or may not have applied the call.
    #[error("platform call failed: {message}")]
    Transient {
        /// What failed, for the logs.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The platform refused the request, with its own reason (a
    /// validation error): retrying the same request cannot succeed.
    #[error("the platform refused the code: {reason}")]
    Rejected {
        /// The platform's reason, as it gave it.
        reason: String,
    },
    /// The credentials were refused (after one refresh where the adapter
    /// can refresh them).
    #[error("the platform refused the credentials")]
    Unauthorized,
    /// The code exists on the platform but the engine did not make it.
    #[error("the code is taken on the platform by a discount the engine does not manage")]
    CodeTaken,
    /// The call was never sent: it could not leave before its deadline
    /// (the rate limit's wait or the token fetch took too long). Nothing
    /// was applied; a later attempt may send it.
    #[error("platform call not sent: {reason}")]
    NotSent {
        /// What held it back, for the logs.
        reason: String,
    },
}

impl PlatformError {
    /// A transient failure without an underlying error.
    pub fn transient(message: impl Into<String>) -> PlatformError {
        PlatformError::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// Retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PlatformError::Throttled { .. }
                | PlatformError::Transient { .. }
                | PlatformError::NotSent { .. }
        )
    }
}

/// The platform's side of balance codes, for one shop.
#[async_trait::async_trait]
pub trait PlatformCodes: Send + Sync {
    /// Creates the code or updates it to exactly `desired` (amount, state,
    /// owner, minimum subtotal, combinations). A code the platform says is
    /// taken is looked up: updated when the engine made it, else
    /// [`PlatformError::CodeTaken`].
    async fn put(&self, desired: &DesiredCode) -> Result<PutOutcome, PlatformError>;

    /// Stops the code working (a replaced code). A code the platform does
    /// not know is already inactive: Ok.
    async fn deactivate(&self, code: &Code) -> Result<(), PlatformError>;

    /// The code as the platform holds it, if it does.
    async fn lookup(&self, code: &Code) -> Result<Option<CodeState>, PlatformError>;

    /// The platform's native store credit, where it has one (Shopify): the
    /// adapter a program in [`PlatformSync::StoreCredit`] mode syncs with.
    fn store_credit(&self) -> Option<&dyn store_credit::StoreCreditAccounts> {
        None
    }
}

/// How long and how often [`sync_customer_code`] retries.
#[derive(Debug, Clone)]
pub struct SyncPolicy {
    /// Platform calls at most, the first included; then [`SyncError::Platform`].
    pub max_attempts: u32,
    /// Wait before the second attempt after a transient failure; doubled
    /// after each further one, up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest wait between two attempts, a platform's `retry_after`
    /// included (a longer one is cut to this).
    pub max_backoff: Duration,
    /// Store-credit mode: how long after its intent is written a credit or
    /// debit may still be sent (cut to
    /// [`store_credit::MAX_SEND_WINDOW`]); one not sent by then is dropped
    /// and left to the next attempt.
    pub send_window: Duration,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            max_attempts: 6,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            send_window: store_credit::MAX_SEND_WINDOW,
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The program keeps its codes off the platform, or the account has no
    /// code yet.
    NotSynced,
    /// The platform holds the desired state (or, for an inactive code it
    /// never had, needs nothing).
    Synced(Box<Synced>),
}

/// What a sync set on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The state the code was brought to, derived from the account.
    pub desired: DesiredCode,
    /// What the platform did.
    pub outcome: PutOutcome,
    /// Platform calls made, retries included.
    pub attempts: u32,
}

/// Why a code sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The account or the shop could not be read.
    #[error(transparent)]
    App(#[from] AppError),
    /// The platform did not take the code, after retries where retrying helps.
    #[error("platform sync failed after {attempts} attempt(s): {source}")]
    Platform {
        /// Platform calls made.
        attempts: u32,
        /// The last call's error.
        #[source]
        source: PlatformError,
    },
}

impl SyncError {
    /// A later run may succeed (park and retry rather than alarm at once).
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::App(error) => error.is_retryable(),
            SyncError::Platform { source, .. } => source.is_retryable(),
        }
    }

    /// Worth trying again minutes later: anything but the platform's
    /// refusal of the request itself (its validation, a code a merchant's
    /// discount holds). Refused credentials are worth it: a rotation
    /// fixes them, and until then what keeps failing must end parked,
    /// with its alarm.
    pub fn may_pass_later(&self) -> bool {
        !matches!(
            self,
            SyncError::Platform {
                source: PlatformError::Rejected { .. } | PlatformError::CodeTaken,
                ..
            }
        )
    }
}

/// How many times a run's sync puts the code again because the account
/// changed while it was putting (see [`sync_customer_code_from_run`]).
pub const RUN_RESYNCS: u32 = 3;

/// Whether a successful put is checked against the account again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPut {
    /// Done (the change feed's sync).
    Done,
    /// Re-read the account; when its version moved since the read the put
    /// was based on, put again, at most [`RUN_RESYNCS`] times.
    SettleAgainstChanges,
}

/// Brings one customer's code on the platform in step with their account:
/// reads the account (one store read per attempt, so every attempt sends
/// the balance at that moment), derives the desired state, and puts it;
/// `previous_code`, when the customer's code was replaced, is deactivated
/// first. Throttling and transient failures are retried per `policy`.
///
/// Whether the shop may still be called (the app not uninstalled) is its
/// caller's to check, once per sync: the change feed's sync and each run
/// ([`reconcile_shop`], [`backfill_shop`]) read the shop's uninstall flag
/// before they call here, so a sync costs one read of it, not two.
///
/// This is the change feed's sync, and it puts once: the feed syncs one
/// customer one change at a time, each sync reading the account after the
/// change that caused it, so the last of its puts always reflects a read
/// no older than the last change. A put from outside that sequence (a
/// reconcile or a backfill) can read before a change and land after the
/// feed's sync of it; those go through [`sync_customer_code_from_run`].
pub async fn sync_customer_code(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
) -> Result<SyncOutcome, SyncError> {
    sync_code(
        ctx,
        platform,
        shop,
        customer,
        previous_code,
        policy,
        AfterPut::Done,
    )
    .await
}

/// [`sync_customer_code`] for the runs over a shop ([`reconcile_shop`],
/// [`backfill_shop`]), which may interleave with the change feed's sync of
/// the same customer: the run reads 50.00, a redemption commits and the
/// feed's sync puts 0.00, then the run's put of 50.00 lands. So after a
/// successful put of a discount code the account is read again and, when
/// its version moved since the read the put was based on, the code is put
/// again from a fresh read (at most [`RUN_RESYNCS`] times): the run's last
/// put is based on a read no older than the account's last change. One
/// more store read per synced code, for runs only. Store-credit mode keeps
/// its own mechanism (its intents, [`store_credit`]).
pub async fn sync_customer_code_from_run(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
) -> Result<SyncOutcome, SyncError> {
    sync_code(
        ctx,
        platform,
        shop,
        customer,
        previous_code,
        policy,
        AfterPut::SettleAgainstChanges,
    )
    .await
}

async fn sync_code(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
    after_put: AfterPut,
) -> Result<SyncOutcome, SyncError> {
    let mut program = ctx.shop_program(shop, ctx.now()).await?.program;
    for _ in 0..mode::TRIES {
        let Some(side) = Side::of(program.platform_sync) else {
            // Sync turned off: a code is left as it is (the merchant ends it
            // on the platform), but store credit the engine put is followed
            // and emptied, since nothing reads its payments from now on.
            let record = mode::read(ctx, shop, customer).await?;
            if (record.side == Side::StoreCredit || record.seq > 0)
                && take_over(
                    ctx,
                    platform,
                    shop,
                    customer,
                    None,
                    policy,
                    &program,
                    Side::DiscountCode,
                )
                .await?
                .is_none()
            {
                program = fresh_program(ctx, shop).await?;
                continue;
            }
            return Ok(SyncOutcome::NotSynced);
        };
        if side == Side::StoreCredit && platform.store_credit().is_none() {
            // Refused before the code is ended: nothing would hold the balance.
            return Err(SyncError::Platform {
                attempts: 0,
                source: PlatformError::Rejected {
                    reason: "this platform has no store credit (platform_sync \"store_credit\" \
                             is Shopify's)"
                        .into(),
                },
            });
        }
        let Some(held) = take_over(
            ctx,
            platform,
            shop,
            customer,
            previous_code,
            policy,
            &program,
            side,
        )
        .await?
        else {
            // Another sync wrote the mode meanwhile: the program it acted on
            // may be newer than this one's.
            program = fresh_program(ctx, shop).await?;
            continue;
        };
        let sent = match platform
            .store_credit()
            .filter(|_| side == Side::StoreCredit)
        {
            Some(accounts) => {
                store_credit::sync_store_credit(ctx, accounts, shop, customer, &program, policy)
                    .await
            }
            // Discount codes (a platform without store credit was refused above).
            None => {
                put_code(
                    ctx,
                    platform,
                    shop,
                    customer,
                    previous_code,
                    policy,
                    after_put,
                    &program,
                )
                .await
            }
        };
        // Checked whatever the send's outcome: a call that failed may still
        // have landed.
        let now = mode::read(ctx, shop, customer).await.inspect_err(|error| {
            tracing::error!(shop = %shop, customer = %customer, error = %error,
                side = ?side, "platform sync mode unreadable after a send; the reconcile run \
                checks the other side");
        })?;
        if now == held {
            return sent;
        }
        tracing::warn!(shop = %shop, customer = %customer, side = ?side,
            "the platform sync mode changed while this sync sent; synced again");
        mode::record_maybe_live(ctx, shop, customer, side).await?;
        program = fresh_program(ctx, shop).await?;
    }
    Err(mode::contended(customer))
}

/// The shop's program read from the store, not the cache.
async fn fresh_program(
    ctx: &Context,
    shop: &ShopId,
) -> Result<cashback_core::program::Program, SyncError> {
    ctx.invalidate(shop);
    Ok(ctx.shop_program(shop, ctx.now()).await?.program)
}

/// Takes the customer's mode record over for `side`, ending the other side
/// first when the record says it may be live ([`mode`]). The record held,
/// or None when another sync wrote it meanwhile.
#[allow(clippy::too_many_arguments)]
async fn take_over(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
    program: &cashback_core::program::Program,
    side: Side,
) -> Result<Option<ModeRecord>, SyncError> {
    let current = mode::read(ctx, shop, customer).await?;
    let Some(switching) = mode::take_over_from(&current, side) else {
        if side == Side::DiscountCode && current.seq > 0 {
            // Emptied here, not through the mode record: an emptying that
            // cannot finish yet must not stop the code's own sync.
            if let Err(error) =
                empty_sent_after_emptying(ctx, platform, shop, customer, program, policy).await
            {
                tracing::warn!(shop = %shop, customer = %customer, error = %error,
                    "store credit sent after it was emptied could not be emptied yet; the reconcile tries again");
            }
        }
        return Ok(Some(current));
    };
    // About to end a side: the program may have changed since this sync
    // read it (another container's cache), so it is read from the table.
    // (Sync turned off ends store credit as discount codes do.)
    let wanted =
        Side::of(fresh_program(ctx, shop).await?.platform_sync).unwrap_or(Side::DiscountCode);
    if wanted != side {
        return Ok(None);
    }
    if switching != current && !mode::compare_and_set(ctx, shop, customer, &switching).await? {
        return Ok(None);
    }
    if side == Side::StoreCredit {
        // The reconcile checks this shop's store credit from now on, in
        // whatever mode.
        ctx.store
            .put_checkpoint(&store_credit::used_job(shop), "1")
            .await
            .map_err(AppError::from)?;
    }
    match side.other() {
        Side::DiscountCode => {
            end_codes(ctx, platform, shop, customer, previous_code, policy).await?;
        }
        Side::StoreCredit => {
            // Followed into the ledger and emptied before the code is put.
            if let Some(accounts) = platform.store_credit() {
                store_credit::empty_store_credit(ctx, accounts, shop, customer, program, policy)
                    .await?;
            }
        }
    }
    let settled = mode::settled_after(&switching);
    if !mode::compare_and_set(ctx, shop, customer, &settled).await? {
        return Ok(None);
    }
    Ok(Some(settled))
}

/// Empties the customer's store credit again when a store credit call was
/// sent after its last emptying (a sync still holding the store-credit
/// program whose check of the mode failed after its send): true when it
/// did.
pub(crate) async fn empty_sent_after_emptying(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    program: &cashback_core::program::Program,
    policy: &SyncPolicy,
) -> Result<bool, SyncError> {
    let Some(accounts) = platform.store_credit() else {
        return Ok(false);
    };
    if !store_credit::credited_since_emptied(ctx, shop, customer).await? {
        return Ok(false);
    }
    tracing::warn!(shop = %shop, customer = %customer,
        "store credit sent after it was emptied; emptied again");
    store_credit::empty_store_credit(ctx, accounts, shop, customer, program, policy).await?;
    Ok(true)
}

/// Puts the customer's discount code at the ledger's spendable balance
/// (`previous_code`, when the code was replaced, deactivated first).
#[allow(clippy::too_many_arguments)]
async fn put_code(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
    after_put: AfterPut,
    program: &cashback_core::program::Program,
) -> Result<SyncOutcome, SyncError> {
    let mut attempts = 0;
    let mut backoff = policy.base_backoff;
    if let Some(previous) = previous_code {
        loop {
            attempts += 1;
            match platform.deactivate(previous).await {
                Ok(()) => break,
                Err(error) => {
                    wait_or_fail(error, attempts, policy, &mut backoff).await?;
                }
            }
        }
    }
    let request = ReadRequest::account(customer);
    let mut resyncs = 0;
    loop {
        let read = ctx
            .store
            .read(shop, &request)
            .await
            .map_err(AppError::from)?;
        let Some(account) = read.accounts.get(customer) else {
            return Err(AppError::NotFound(format!("customer {customer}")).into());
        };
        let read_version = account.version;
        let Some(desired) = desired_code(&account.value, program) else {
            return Ok(SyncOutcome::NotSynced);
        };
        attempts += 1;
        match platform.put(&desired).await {
            Ok(outcome) => {
                if after_put == AfterPut::SettleAgainstChanges {
                    let now = ctx
                        .store
                        .read(shop, &request)
                        .await
                        .map_err(AppError::from)?
                        .accounts
                        .get(customer)
                        .map(|account| account.version);
                    if now != Some(read_version) {
                        if resyncs < RUN_RESYNCS {
                            resyncs += 1;
                            tracing::info!(
                                shop = %shop,
                                customer = %customer,
                                resyncs,
                                "the account changed during the put: synced again"
                            );
                            continue;
                        }
                        tracing::warn!(
                            shop = %shop,
                            customer = %customer,
                            resyncs,
                            "the account kept changing during the puts; the code may \
                             hold an older balance until the next sync or reconcile"
                        );
                    }
                }
                tracing::info!(
                    shop = %shop,
                    customer = %customer,
                    amount = %desired.amount.amount(),
                    active = desired.active,
                    attempts,
                    "platform code synced"
                );
                return Ok(SyncOutcome::Synced(Box::new(Synced {
                    desired,
                    outcome,
                    attempts,
                })));
            }
            Err(error) => wait_or_fail(error, attempts, policy, &mut backoff).await?,
        }
    }
}

/// Ends the customer's discount codes on the platform (theirs now and the
/// one it replaced), with retries: the program keeps the balance as store
/// credit instead.
async fn end_codes(
    ctx: &Context,
    platform: &dyn PlatformCodes,
    shop: &ShopId,
    customer: &CustomerId,
    previous_code: Option<&Code>,
    policy: &SyncPolicy,
) -> Result<(), SyncError> {
    let read = ctx
        .store
        .read(shop, &ReadRequest::account(customer))
        .await
        .map_err(AppError::from)?;
    let current = read
        .accounts
        .get(customer)
        .and_then(|account| account.value.code.clone());
    for code in current.iter().chain(previous_code) {
        let mut attempts = 0;
        let mut backoff = policy.base_backoff;
        loop {
            attempts += 1;
            match platform.deactivate(code).await {
                Ok(()) => break,
                Err(error) => wait_or_fail(error, attempts, policy, &mut backoff).await?,
            }
        }
        tracing::info!(shop = %shop, customer = %customer, "discount code ended: the balance is store credit");
    }
    Ok(())
}

/// Waits before the next attempt, or gives up with the error.
async fn wait_or_fail(
    error: PlatformError,
    attempts: u32,
    policy: &SyncPolicy,
    backoff: &mut Duration,
) -> Result<(), SyncError> {
    if !error.is_retryable() || attempts >= policy.max_attempts {
        tracing::warn!(attempts, error = %error, "platform code sync gave up");
        return Err(SyncError::Platform {
            attempts,
            source: error,
        });
    }
    let wait = match &error {
        PlatformError::Throttled { retry_after } => (*retry_after).min(policy.max_backoff),
        _ => {
            let wait = *backoff;
            *backoff = (*backoff * 2).min(policy.max_backoff);
            wait
        }
    };
    tracing::info!(attempts, error = %error, wait_ms = wait.as_millis() as u64, "platform call retried");
    tokio::time::sleep(wait).await;
    Ok(())
}
