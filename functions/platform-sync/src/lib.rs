//! The platform-sync Lambda: keeps every customer's balance code on the
//! shop's own platform (a Shopify discount code, a WooCommerce coupon) in
//! step with the ledger (DESIGN.md section 9, docs/platform-sync.md).
//!
//! It is invoked three ways, one handler ([`function_handler`]):
//! - **the table's stream** (an event source mapping of its own, beside the
//!   report aggregator's): every account change that moves what the code
//!   must be (spendable balance, code, owner) becomes one
//!   [`sync_customer_code`] per customer, which reads the account at send
//!   time and sends the absolute amount; a program change of the redemption
//!   rules re-puts every code of the shop (a backfill started over, paced);
//!   a run request written by the admin API, the schedule or a run going
//!   on ([`RunRequest`]) runs here too. Failed records are answered as
//!   batch item failures (`ReportBatchItemFailures`): Lambda retries from
//!   the first, bisects, and parks what keeps failing on the mapping's
//!   on-failure queue, with an alarm; the reconcile repairs what was parked.
//! - **the schedule** (EventBridge): a reconcile request for every shop.
//! - **the retry queue** (SQS): a customer whose sync failed in a run,
//!   reconciled again a few minutes later ([`retries`]).
//! - **a direct invocation** with a [`RunRequest`] as JSON
//!   (`{"run":"reconcile","shop":"..."}`), for an operator.
//!
//! The order webhook never waits on any of it: it only writes the table.
//!
//! # At most one sync in flight per customer
//! An account's items live under one partition key, so all its stream
//! records are on one shard, in write order, and Lambda runs one batch per
//! shard at a time (the mapping keeps `ParallelizationFactor` at 1). Within
//! a batch the customers are deduplicated ([`sync_intents`]): one sync per
//! customer, which reads the latest balance anyway. So two syncs of one
//! customer never race, and since each sends the absolute spendable amount
//! read at send time, a retry or a reordered delivery cannot double
//! anything.
//!
//! # Settings
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | see `cashback_edge::wiring` | store, links | |
//! | `CASHBACK_PLATFORM_CREDENTIALS` | where each shop's platform credentials are: `ssm:/prefix/` (the SecureString `/prefix/{shop}`) or `env:CASHBACK_SECRET_PLATFORM_` (local runs); see `cashback_platform_codes::connect` | `ssm:/cashback/platform/` |
//! | `CASHBACK_SYNC_CONCURRENCY` | syncs in flight at once per batch (the adapters pace each shop) | 8 |
//! | `CASHBACK_SYNC_MAX_ATTEMPTS` | platform calls per sync before its record is failed back to Lambda | 6 |
//! | `CASHBACK_SYNC_RUN_SECONDS` | how long one invocation spends on a reconcile or backfill before asking for the rest | 60 |
//! | `CASHBACK_SYNC_RETRY_QUEUE` | the SQS queue (URL) where a run's failed syncs wait to be reconciled again ([`retries`]); unset: they wait for the next reconcile | unset |
//! | `CASHBACK_SYNC_RETRY_DELAY_SECONDS` | how long each waits there first (at most 900) | 120 |
//! | `CASHBACK_KLAVIYO_CREDENTIALS` | where each shop's Klaviyo parameter is (`ssm:/cashback/klaviyo/`); set: account writes also push the Klaviyo profile of the shops that have one ([`marketing`]) | off |

pub mod changes;
pub mod marketing;
pub mod retries;
pub mod shops;
pub mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use cashback_app::changes::sequence_order;
use cashback_app::platform_codes::{
    backfill_shop, reconcile_shop, request_run, sync_customer_code, PlatformError, PlatformSync,
    RunLimits, RunRequest, SyncError, SyncOutcome, SyncPolicy, SyncRetries,
};
use cashback_app::store::{ParkedSyncs, ReconcileStep, SyncNote};
use cashback_app::{AppError, Context};
use cashback_core::ids::{Code, CustomerId, ShopId};
use cashback_platform_codes::{ConnectError, Connections};

pub use shops::ShopDirectory;

/// Built once per container, outside the handler.
pub struct Deps {
    /// The use cases' ports (the store; no mail is sent here).
    pub ctx: Context,
    /// Each shop's adapter, kept warm (its pacing state carries over).
    pub connections: Arc<Connections>,
    /// Every onboarded shop (for the scheduled reconcile).
    pub shops: Arc<dyn ShopDirectory>,
    /// Retries of one sync.
    pub policy: SyncPolicy,
    /// Syncs in flight at once per batch.
    pub concurrency: usize,
    /// Time one invocation spends on a run before asking for the rest.
    pub run_budget: Duration,
    /// Each shop's Klaviyo account, for the profile push; None: off.
    pub marketing: Option<Arc<marketing::MarketingConnections>>,
    /// Where a run's failed syncs wait to be tried again; None: they wait
    /// for the next reconcile.
    pub retries: Option<Arc<dyn SyncRetries>>,
}

/// One customer's code to bring in step, from a stream record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The record's id (the stream's sequence number), answered back when
    /// the sync fails.
    pub item: String,
    /// The customer's shop.
    pub shop: ShopId,
    /// Whose code.
    pub customer: CustomerId,
    /// The code the customer had before, when it was replaced: ended first.
    pub previous_code: Option<Code>,
    /// Whether the change moved what the code must be (else only the
    /// marketing profile's figures moved).
    pub moves_code: bool,
}

/// What a batch of intents did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// Intents received.
    pub intents: usize,
    /// Code syncs made (one per customer in the batch whose code moved).
    pub customers: usize,
    /// Codes the platform now holds as the ledger says.
    pub synced: usize,
    /// Customers whose shop keeps no codes on its platform (or who have no
    /// code yet): nothing to do.
    pub not_synced: usize,
    /// Codes the platform refused for good (its validation, a code held by
    /// the merchant's own discount): logged, counted, not retried.
    pub refused: usize,
    /// Syncs or pushes that failed and may succeed later: their records
    /// are failed back to Lambda (retried, then parked).
    pub failed: usize,
    /// Marketing profiles pushed (shops with Klaviyo).
    pub pushed: usize,
    /// The record Lambda must retry from (the earliest failed one), if any.
    pub retry_from: Option<String>,
}

/// One customer's records in a batch.
struct Group {
    /// The earliest record.
    item: String,
    /// Every code replaced meanwhile.
    previous: Vec<Code>,
    /// Whether any record moved what the code must be.
    moves_code: bool,
}

/// How one customer's sync ended.
enum Synced {
    Done,
    /// The shop keeps no codes on its platform, or the account has none.
    Nothing,
    /// The platform refused the code for good; why.
    Refused(String),
    /// Failed after the function's attempts (the record goes back to the
    /// stream); why.
    Failed(String),
    /// The change did not move the code: no sync.
    Untouched,
}

/// Syncs the customers of a batch: one sync per customer however many
/// records name them (the earliest record stands for the customer; every
/// replaced code is ended), several customers at once, each shop paced by
/// its adapter.
pub async fn sync_intents(deps: &Deps, intents: Vec<Intent>) -> BatchOutcome {
    let mut outcome = BatchOutcome {
        intents: intents.len(),
        ..BatchOutcome::default()
    };
    // (shop, customer) -> (earliest record, replaced codes, code moved),
    // in first-seen order.
    let mut order: Vec<(ShopId, CustomerId)> = Vec::new();
    let mut grouped: HashMap<(ShopId, CustomerId), Group> = HashMap::new();
    for intent in intents {
        let key = (intent.shop, intent.customer);
        let entry = grouped.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Group {
                item: intent.item.clone(),
                previous: Vec::new(),
                moves_code: false,
            }
        });
        if sequence_order(&intent.item, &entry.item).is_lt() {
            entry.item = intent.item;
        }
        entry.moves_code |= intent.moves_code;
        if let Some(previous) = intent.previous_code {
            if !entry.previous.contains(&previous) {
                entry.previous.push(previous);
            }
        }
    }
    let results: Vec<(ShopId, String, Synced, Option<marketing::Pushed>)> =
        futures::stream::iter(order.into_iter().filter_map(|key| {
            let group = grouped.remove(&key)?;
            Some((key, group))
        }))
        .map(|((shop, customer), group)| async move {
            let synced = if group.moves_code {
                sync_one(deps, &shop, &customer, &group.previous).await
            } else {
                Synced::Untouched
            };
            let pushed = match &deps.marketing {
                Some(connections) => {
                    Some(marketing::push_one(&deps.ctx, connections, &shop, &customer).await)
                }
                None => None,
            };
            (shop, group.item, synced, pushed)
        })
        .buffer_unordered(deps.concurrency.max(1))
        .collect()
        .await;
    let mut notes: Vec<(ShopId, SyncNote)> = Vec::new();
    let now = deps.ctx.now();
    for (shop, item, result, pushed) in results {
        if !matches!(result, Synced::Untouched) {
            outcome.customers += 1;
        }
        note_result(&mut notes, shop, &result, now);
        let push_failed = matches!(pushed, Some(marketing::Pushed::Failed));
        if matches!(pushed, Some(marketing::Pushed::Done)) {
            outcome.pushed += 1;
        }
        match result {
            Synced::Done => outcome.synced += 1,
            Synced::Nothing => outcome.not_synced += 1,
            Synced::Refused(_) => outcome.refused += 1,
            Synced::Untouched | Synced::Failed(_) => {}
        }
        if matches!(result, Synced::Failed(_)) || push_failed {
            outcome.failed += 1;
            let earlier = outcome
                .retry_from
                .as_deref()
                .is_none_or(|first| sequence_order(&item, first).is_lt());
            if earlier {
                outcome.retry_from = Some(item);
            }
        }
    }
    for (shop, note) in notes {
        note_sync(&deps.ctx, &shop, &note).await;
    }
    tracing::info!(
        intents = outcome.intents,
        customers = outcome.customers,
        synced = outcome.synced,
        not_synced = outcome.not_synced,
        refused = outcome.refused,
        failed = outcome.failed,
        pushed = outcome.pushed,
        "platform sync batch"
    );
    outcome
}

/// Adds one sync's result to its shop's note for the batch: a code put
/// moves the last sync time, a sync given up on is counted as parked with
/// its reason.
fn note_result(
    notes: &mut Vec<(ShopId, SyncNote)>,
    shop: ShopId,
    result: &Synced,
    now: DateTime<Utc>,
) {
    let reason = match result {
        Synced::Done => None,
        Synced::Refused(reason) | Synced::Failed(reason) => Some(reason),
        Synced::Nothing | Synced::Untouched => return,
    };
    let index = match notes.iter().position(|(s, _)| *s == shop) {
        Some(index) => index,
        None => {
            notes.push((shop, SyncNote::default()));
            notes.len() - 1
        }
    };
    let note = &mut notes[index].1;
    match reason {
        None => note.synced_at = Some(now),
        Some(reason) => {
            let count = note.parked.as_ref().map_or(0, |p| p.count) + 1;
            note.parked = Some(ParkedSyncs {
                count,
                reason: reason.clone(),
                at: now,
            });
        }
    }
}

/// What a reconcile step adds to the shop's sync record.
fn reconcile_note(
    summary: &cashback_app::platform_codes::ReconcileSummary,
    first: bool,
    now: DateTime<Utc>,
) -> SyncNote {
    SyncNote {
        synced_at: (summary.repaired > 0).then_some(now),
        reconcile: Some(ReconcileStep {
            first,
            finished: summary.next.is_none(),
            at: now,
            checked: summary.checked,
            drifted: summary.drifted,
            repaired: summary.repaired,
            failed: summary.failed,
        }),
        ..SyncNote::default()
    }
}

/// Writes a note to the shop's sync record. The record is what the
/// dashboard shows, not what the sync relies on: a failed write is logged
/// and the sync's outcome stands.
async fn note_sync(ctx: &Context, shop: &ShopId, note: &SyncNote) {
    if let Err(error) = ctx.store.note_sync(shop, note).await {
        tracing::warn!(shop = %shop, error = %error, "the shop's sync record was not updated");
    }
}

/// Whether the shop keeps its codes on its platform now, and its record.
/// The one read of the shop's uninstall flag for a customer's sync
/// (`sync_customer_code` does not read it again).
async fn syncing_shop(
    ctx: &Context,
    shop: &ShopId,
) -> Result<Option<cashback_app::store::Shop>, AppError> {
    platform_shop(ctx, shop, OffShops::None).await
}

/// Which shops with sync off may still be called (only to empty the store
/// credit the engine put there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffShops {
    None,
    /// Those one of whose customers was synced as store credit.
    UsedStoreCredit,
    /// All (the backfill the change to sync off asks for).
    All,
}

/// The shop's record when its platform may be called: the app installed
/// and the program syncing, or syncing turned off for the shops `off`
/// names (whose runs only empty the store credit the engine put there).
async fn platform_shop(
    ctx: &Context,
    shop: &ShopId,
    off: OffShops,
) -> Result<Option<cashback_app::store::Shop>, AppError> {
    let shop_program = match ctx.shop_program(shop, ctx.now()).await {
        Ok(found) => found,
        // A shop gone, or without a program: nothing to keep in step.
        Err(AppError::UnknownShop(_) | AppError::NoProgram(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    // With sync off, only a shop that used store credit has anything left
    // to do (its store credit emptied); no other is called, nor are its
    // credentials read.
    let callable = shop_program.program.platform_sync != PlatformSync::Off
        || match off {
            OffShops::None => false,
            OffShops::All => true,
            OffShops::UsedStoreCredit => {
                cashback_app::platform_codes::runs::store_credit_used(ctx, shop).await?
            }
        };
    if !callable || cashback_app::compliance::syncing_stopped(ctx, shop).await? {
        // Off, or the app was uninstalled: the platform is not ours to call.
        return Ok(None);
    }
    Ok(Some(shop_program.shop))
}

/// The shop's adapter when its platform may be called for a run or a
/// retry ([`platform_shop`]); None for a shop with nothing to keep in step
/// or on a platform without codes (generic).
async fn callable_platform(
    deps: &Deps,
    shop: &ShopId,
    off: OffShops,
) -> Result<Option<Arc<dyn cashback_app::platform_codes::PlatformCodes>>, RunError> {
    let Some(record) = platform_shop(&deps.ctx, shop, off).await? else {
        return Ok(None);
    };
    match deps.connections.for_shop(&record).await {
        Ok(platform) => Ok(Some(platform)),
        Err(ConnectError::Unsupported(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The records of a Lambda batch (the stream's or the retry queue's).
fn records_of(payload: &serde_json::Value) -> &[serde_json::Value] {
    payload
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

async fn sync_one(deps: &Deps, shop: &ShopId, customer: &CustomerId, previous: &[Code]) -> Synced {
    let record = match syncing_shop(&deps.ctx, shop).await {
        Ok(Some(record)) => record,
        Ok(None) => return Synced::Nothing,
        Err(error) => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error, "platform sync: shop unreadable");
            return Synced::Failed(format!("the shop could not be read: {error}"));
        }
    };
    let platform = match deps.connections.for_shop(&record).await {
        Ok(platform) => platform,
        Err(ConnectError::Unsupported(_)) => return Synced::Nothing,
        Err(error) => {
            // Missing or wrong credentials are an operator's to fix: the
            // record is retried, then parked, and the alarm says so.
            tracing::error!(shop = %shop, error = %error, "platform sync: no adapter for the shop");
            return Synced::Failed(error.to_string());
        }
    };
    // Every replaced code but the last is ended first; the last goes with
    // the sync itself.
    let (last, earlier) = match previous.split_last() {
        Some((last, earlier)) => (Some(last), earlier),
        None => (None, &[][..]),
    };
    for code in earlier {
        if let Err(error) = platform.deactivate(code).await {
            tracing::warn!(shop = %shop, customer = %customer, error = %error, "platform sync: a replaced code was not ended");
            return Synced::Failed(format!("a replaced code was not ended: {error}"));
        }
    }
    match sync_customer_code(
        &deps.ctx,
        platform.as_ref(),
        shop,
        customer,
        last,
        &deps.policy,
    )
    .await
    {
        Ok(SyncOutcome::Synced(_)) => Synced::Done,
        Ok(SyncOutcome::NotSynced) => Synced::Nothing,
        Err(SyncError::App(AppError::NotFound(_))) => Synced::Nothing,
        Err(SyncError::Platform {
            source: PlatformError::Unauthorized,
            ..
        }) => {
            // Read the credentials again on the next attempt (a rotation).
            deps.connections.forget(shop);
            tracing::error!(shop = %shop, customer = %customer, "platform sync: credentials refused");
            Synced::Failed(PlatformError::Unauthorized.to_string())
        }
        Err(SyncError::Platform {
            source: source @ (PlatformError::Rejected { .. } | PlatformError::CodeTaken),
            ..
        }) => {
            tracing::error!(shop = %shop, customer = %customer, error = %source, "platform sync: the platform refused the code");
            Synced::Refused(source.to_string())
        }
        Err(error) => {
            tracing::warn!(shop = %shop, customer = %customer, error = %error, "platform sync failed; the record is retried");
            Synced::Failed(error.to_string())
        }
    }
}

/// What a run did in this invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "run", rename_all = "snake_case")]
pub enum RunOutcome {
    /// A reconcile step.
    Reconcile {
        /// The shop.
        shop: ShopId,
        /// Its figures (summary line).
        summary: cashback_app::platform_codes::ReconcileSummary,
    },
    /// A backfill step.
    Backfill {
        /// The shop.
        shop: ShopId,
        /// Its figures and checkpoint.
        summary: cashback_app::platform_codes::BackfillSummary,
    },
    /// The shop does not keep its codes on a platform (or is gone).
    Skipped {
        /// The shop.
        shop: ShopId,
    },
}

/// Why a run failed (the request is then retried by the stream or the caller).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The shop's adapter could not be built.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

impl RunError {
    /// Running it again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::App(error) => error.is_retryable(),
            RunError::Connect(error) => error.is_retryable(),
        }
    }
}

/// Runs one step of a reconcile or backfill, for at most the run budget,
/// and asks for its own continuation when the shop is not done (the
/// request's write reaches this function again through the stream).
/// `requested_at` is when the request being run was made.
pub async fn run_request(
    deps: &Deps,
    request: &RunRequest,
    requested_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<RunOutcome, RunError> {
    let shop = request.shop().clone();
    // Sync off: a backfill (asked for by the change to sync off) still
    // empties store credit the engine put, whatever the shop's mark says;
    // a reconcile runs only for a shop that used store credit.
    let off = match request {
        RunRequest::Backfill { .. } => OffShops::All,
        RunRequest::Reconcile { .. } => OffShops::UsedStoreCredit,
    };
    let Some(platform) = callable_platform(deps, &shop, off).await? else {
        tracing::info!(shop = %shop, "platform run skipped: the shop does not sync its codes");
        return Ok(RunOutcome::Skipped { shop });
    };
    let limits = RunLimits {
        page_size: 100,
        concurrency: deps.concurrency.max(1),
        deadline: Instant::now() + deps.run_budget,
    };
    match request {
        RunRequest::Reconcile { cursor, .. } => {
            let summary = reconcile_shop(
                &deps.ctx,
                platform.as_ref(),
                &shop,
                cursor.clone(),
                &limits,
                &deps.policy,
            )
            .await?;
            note_sync(
                &deps.ctx,
                &shop,
                &reconcile_note(&summary, cursor.is_none(), now),
            )
            .await;
            if let Some(next) = &summary.next {
                let more = RunRequest::Reconcile {
                    shop: shop.clone(),
                    cursor: Some(next.clone()),
                };
                request_run(&deps.ctx, &more, now, requested_at).await?;
            }
            retries::queue_retries(deps, &shop, &summary.retry, summary.checked).await;
            Ok(RunOutcome::Reconcile { shop, summary })
        }
        RunRequest::Backfill { restart, .. } => {
            let summary = backfill_shop(
                &deps.ctx,
                platform.as_ref(),
                &shop,
                *restart,
                now,
                &limits,
                &deps.policy,
            )
            .await?;
            if summary.synced > 0 {
                let note = SyncNote {
                    synced_at: Some(now),
                    ..SyncNote::default()
                };
                note_sync(&deps.ctx, &shop, &note).await;
            }
            if !summary.checkpoint.finished() {
                let more = RunRequest::Backfill {
                    shop: shop.clone(),
                    restart: false,
                };
                request_run(&deps.ctx, &more, now, requested_at).await?;
            }
            let attempted = summary.synced + summary.skipped + summary.failed;
            retries::queue_retries(deps, &shop, &summary.retry, attempted).await;
            Ok(RunOutcome::Backfill { shop, summary })
        }
    }
}

/// The schedule's run: a reconcile request for every onboarded shop (each
/// then runs in its own invocation, through the stream). Returns how many
/// were requested.
pub async fn request_reconcile_everywhere(
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<usize, RunError> {
    let shops = deps.shops.shops().await.map_err(AppError::from)?;
    let mut requested = 0;
    for shop in shops {
        if platform_shop(&deps.ctx, &shop, OffShops::UsedStoreCredit)
            .await?
            .is_none()
        {
            continue;
        }
        request_run(
            &deps.ctx,
            &RunRequest::Reconcile { shop, cursor: None },
            now,
            None,
        )
        .await?;
        requested += 1;
    }
    tracing::info!(requested, "platform reconcile scheduled");
    Ok(requested)
}

/// Why an invocation failed as a whole (a stream batch never does: its
/// failures are answered per record).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is none of the shapes this function takes.
    #[error("not an event this function takes: {0}")]
    Unknown(String),
    /// A run or the schedule's requests failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl HandlerError {
    /// Invoking again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Unknown(_) => false,
            HandlerError::Run(error) => error.is_retryable(),
        }
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> lambda_runtime::Diagnostic {
        let kind = match &error {
            HandlerError::Unknown(_) => "UnknownEvent",
            HandlerError::Run(RunError::App(_)) => "Store",
            HandlerError::Run(RunError::Connect(_)) => "Credentials",
        };
        let class = if error.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        lambda_runtime::Diagnostic {
            error_type: format!("{class}.{kind}"),
            error_message: error.to_string(),
        }
    }
}

/// The Lambda's handler: a stream batch, the schedule, or a run request.
pub async fn function_handler(
    deps: &Deps,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, HandlerError> {
    let left = cashback_edge::deadline::time_left(
        event.context.deadline,
        std::time::SystemTime::now(),
        Duration::ZERO,
    );
    handle_until(deps, event.payload, Utc::now(), Some(Instant::now() + left)).await
}

/// [`function_handler`] at `now`, with no deadline (tests).
pub async fn handle(
    deps: &Deps,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, HandlerError> {
    handle_until(deps, payload, now, None).await
}

/// [`function_handler`] at `now`, the invocation ending at `deadline`
/// (the retry queue's batch starts nothing it cannot finish).
pub async fn handle_until(
    deps: &Deps,
    payload: serde_json::Value,
    now: DateTime<Utc>,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, HandlerError> {
    if retries::is_queue_batch(&payload) {
        return Ok(retries::handle_messages(deps, payload, deadline).await);
    }
    if payload.get("Records").is_some() {
        let answer = stream::handle_records(deps, payload, now).await;
        return Ok(answer);
    }
    if payload.get("detail-type").and_then(|v| v.as_str()) == Some("Scheduled Event") {
        let now = payload
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(now, |t| t.with_timezone(&Utc));
        let requested = request_reconcile_everywhere(deps, now).await?;
        return Ok(serde_json::json!({ "reconcile_requested": requested }));
    }
    if payload.get("run").is_some() {
        let request: RunRequest = serde_json::from_value(payload)
            .map_err(|e| HandlerError::Unknown(format!("a run request that does not read: {e}")))?;
        let outcome = run_request(deps, &request, None, now).await?;
        return serde_json::to_value(outcome)
            .map_err(|e| HandlerError::Unknown(format!("the answer does not serialise: {e}")));
    }
    Err(HandlerError::Unknown(
        "expected a DynamoDB stream batch, a retry queue batch, a scheduled event or a run request"
            .into(),
    ))
}

/// The function's settings (see the module doc).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where each shop's platform credentials are.
    pub place: cashback_platform_codes::CredentialsPlace,
    /// Syncs in flight at once per batch.
    pub concurrency: usize,
    /// Platform calls per sync.
    pub max_attempts: u32,
    /// Time one invocation spends on a run.
    pub run_budget: Duration,
    /// Where each shop's Klaviyo parameter is; None: no profile push.
    pub klaviyo: Option<cashback_platform_codes::CredentialsPlace>,
    /// The retry queue's URL; None: a run's failed syncs wait for the next
    /// reconcile.
    pub retry_queue: Option<String>,
    /// How long a retry waits in the queue before it is handed back.
    pub retry_delay: Duration,
}

/// A setting that is not usable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct SettingError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn setting(name: &'static str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, SettingError> {
    match setting(name) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|_| SettingError {
            name,
            message: format!("{value:?} is not a number"),
        }),
    }
}

/// The settings from the environment.
pub fn settings_from_env() -> Result<Settings, SettingError> {
    let place = setting("CASHBACK_PLATFORM_CREDENTIALS")
        .unwrap_or_else(|| "ssm:/cashback/platform/".into());
    let place =
        cashback_platform_codes::CredentialsPlace::parse(&place).map_err(|e| SettingError {
            name: "CASHBACK_PLATFORM_CREDENTIALS",
            message: e.to_string(),
        })?;
    let klaviyo = setting("CASHBACK_KLAVIYO_CREDENTIALS")
        .map(|place| {
            cashback_platform_codes::CredentialsPlace::parse(&place).map_err(|e| SettingError {
                name: "CASHBACK_KLAVIYO_CREDENTIALS",
                message: e.to_string(),
            })
        })
        .transpose()?;
    Ok(Settings {
        klaviyo,
        place,
        retry_queue: setting("CASHBACK_SYNC_RETRY_QUEUE"),
        retry_delay: Duration::from_secs(
            number::<u64>("CASHBACK_SYNC_RETRY_DELAY_SECONDS", 120)?
                .clamp(0, retries::MAX_DELAY.as_secs()),
        ),
        concurrency: number::<usize>("CASHBACK_SYNC_CONCURRENCY", 8)?.clamp(1, 64),
        max_attempts: number::<u32>("CASHBACK_SYNC_MAX_ATTEMPTS", 6)?.clamp(1, 20),
        run_budget: Duration::from_secs(
            number::<u64>("CASHBACK_SYNC_RUN_SECONDS", 60)?.clamp(1, 840),
        ),
    })
}

impl Deps {
    /// The function's dependencies from its parts and settings.
    pub fn new(
        ctx: Context,
        connections: Arc<Connections>,
        shops: Arc<dyn ShopDirectory>,
        settings: &Settings,
    ) -> Deps {
        Deps {
            ctx,
            connections,
            shops,
            policy: SyncPolicy {
                max_attempts: settings.max_attempts,
                ..SyncPolicy::default()
            },
            concurrency: settings.concurrency,
            run_budget: settings.run_budget,
            marketing: None,
            retries: None,
        }
    }
}
