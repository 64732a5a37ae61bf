//! Scheduled jobs: process the work that has fallen due, until it is done or
//! the deadline comes, and say what was done.
//!
//! A job is one function, "run until done or the deadline -> outcome", that
//! the Lambda and the tests call alike ([`promote::promote_due`],
//! [`reminders::send_reminders`]). It is handed `now` (the EventBridge
//! event's time, so a test replays any date) and a deadline on a [`Clock`]
//! (the Lambda's remaining time less a margin); it never reads the wall
//! clock itself.
//!
//! Both jobs walk the due-work index the same way (`DueScan`): every hour
//! bucket from the job's checkpoint (or a lookback window when there is
//! none) up to the bucket of `now`, every shard, page after page, holding
//! one page at a time. Each item is handled with one read and one
//! transaction, so two overlapping runs, or a run retried after a crash,
//! cannot apply anything twice: the loser of a race re-reads and finds the
//! work done. The checkpoint only moves over buckets that were read to the
//! end with every item handled, and that are old enough
//! ([`JobConfig::settle`]) that nothing can still be written into them; so
//! a run cut off by its deadline, or one that crashed, leaves the rest to
//! the next run, and a missed day is caught up.
//!
//! Emails are recorded in the transaction that calls for them and sent after
//! it commits, paced to the configured send rate (`Sender`); see
//! docs/scheduled-jobs.md and docs/email.md for the exact guarantees.
//!
//! # Layout
//! - this module: configuration, the clock, the due-index walk, the paced sender.
//! - [`promote`]: pending cashback released, balance and holds expired.
//! - [`reminders`]: the reminder series.
//! - [`parked`]: items that keep failing, taken out of the way.
//! - `expiry_warnings`: warnings before balance expires (run by [`reminders`]).
//! - [`bonuses`]: birthday, anniversary, win-back and milestone bonuses.

pub mod bonuses;
mod expiry_warnings;
pub mod parked;
pub mod promote;
pub mod reminders;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, warn};

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::money::Money;

use crate::context::Context;
use crate::error::AppError;
use crate::notify::{Notification, NotifyError};
use crate::retry::Attempts;
use crate::store::{
    due_bucket, AccountWrite, DueKind, DueRef, ReadRequest, Store, StoreError, WriteOutcome,
    WriteSet, DUE_SHARDS,
};

/// How a job walks the index and sends.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    /// Due items asked for per query. DynamoDB returns at most 1 MB per
    /// page anyway; the index projects only keys and the due time.
    pub page_size: u32,
    /// How far back the first run (no checkpoint yet) looks.
    pub lookback: Duration,
    /// A bucket is checkpointed only once its hour ended this long before
    /// `now`. Writers stamp due times with their own `now`, which can lag:
    /// a scheduled event retried by EventBridge keeps its original `time`,
    /// a webhook commits a little after it decided. Rescanning the last
    /// few buckets costs one empty query per shard each.
    pub settle: Duration,
    /// Emails per second this job may send (SES's account send rate, or
    /// this job's share of it). None: no pacing (outbox, tests).
    pub send_rate: Option<f64>,
    /// Tries per email when the provider throttles (the first included).
    pub max_send_attempts: u32,
    /// No new item is started this close to the deadline, so sends already
    /// recorded have time for their retries.
    pub finish_reserve: StdDuration,
    /// Re-reads after losing a race for the same account or order.
    pub max_attempts: u32,
    /// Due items handled at once (never two of one account) by the work
    /// that sends nothing (releases, expiry): DynamoDB's latency, not the
    /// function, bounds a run that handles one at a time.
    pub concurrency: u32,
    /// Items handled at once by the work that sends (the ready emails, the
    /// reminders). Each records its email before sending it, so a run that
    /// dies loses at most this many emails; one keeps up with 14 sends a
    /// second while a read, a write and a send take under 70 ms together.
    pub email_concurrency: u32,
    /// Runs an item may fail (for a reason that may pass) before it is
    /// parked; a permanent failure parks it at once ([`parked`]).
    pub max_item_failures: u32,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            page_size: 100,
            lookback: Duration::days(7),
            settle: Duration::hours(2),
            send_rate: None,
            max_send_attempts: 6,
            finish_reserve: StdDuration::from_secs(5),
            max_attempts: 10,
            concurrency: 32,
            email_concurrency: 1,
            max_item_failures: 5,
        }
    }
}

/// The job's only view of elapsed time: when it is, and how to wait.
/// Production uses tokio's clock; tests inject one that advances only when
/// slept, to count sends per simulated second.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// The present, on this clock.
    fn now(&self) -> Instant;
    /// Waits this long, on this clock.
    async fn sleep(&self, duration: StdDuration);
}

/// tokio's monotonic clock (virtual under `start_paused` tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[async_trait::async_trait]
impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    async fn sleep(&self, duration: StdDuration) {
        tokio::time::sleep(duration).await;
    }
}

/// What every part of a job's run works from: the use cases' context, the
/// clock, the configuration, the run's `now` and its deadline.
#[derive(Clone, Copy)]
pub(crate) struct Run<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) config: &'a JobConfig,
    /// The run's time (the scheduled event's), never the wall clock.
    pub(crate) now: DateTime<Utc>,
    /// When the run must be finished, on `clock`.
    pub(crate) deadline: Instant,
}

/// A run's state shared by the items it handles at once: the run and the
/// outcome every item counts into (the promote, reminders and bonuses
/// runs each have one, with their own outcome).
pub(crate) struct Counted<'a, O> {
    pub(crate) run: Run<'a>,
    outcome: Mutex<O>,
}

impl<'a, O: Default> Counted<'a, O> {
    pub(crate) fn new(run: Run<'a>) -> Counted<'a, O> {
        Counted {
            run,
            outcome: Mutex::new(O::default()),
        }
    }

    /// Changes the outcome; no lock is held across an await.
    pub(crate) fn count(&self, change: impl FnOnce(&mut O)) {
        let mut outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut outcome);
    }

    /// The outcome once every item is handled.
    pub(crate) fn into_outcome(self) -> O {
        self.outcome
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A job's run failed as a whole (an item's failure is counted, not raised).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading the index, the checkpoint or an item failed: the store is
    /// unavailable or refused. What was committed stays committed.
    #[error("store failed during the run: {0}")]
    Store(#[from] StoreError),
}

impl JobError {
    /// The next run (or EventBridge's retry) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Store(error) => error.is_retryable(),
        }
    }
}

/// Amounts per currency, for summaries (shops keep different currencies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Amounts(pub BTreeMap<String, Decimal>);

impl Amounts {
    /// Adds an amount to its currency's total.
    pub fn add(&mut self, money: Money) {
        *self
            .0
            .entry(money.currency().code().to_string())
            .or_default() += money.amount();
    }
}

/// How far the walk got, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanProgress {
    /// Due-index buckets (hours) read to the end.
    pub buckets_read: u64,
    /// Store queries made (one per shard and page).
    pub queries: u64,
    /// Buckets from where the run stopped up to `now` that still need a run
    /// (0 when everything due was handled).
    pub buckets_left: u64,
    /// The run stopped because the deadline came.
    pub deadline_reached: bool,
    /// The checkpoint after the run: the last bucket finished for good.
    pub checkpoint: Option<String>,
}

fn bucket_start(bucket: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(&format!("{bucket}:00"), "%Y-%m-%dT%H:%M")
        .ok()
        .map(|naive| naive.and_utc())
}

fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .unwrap_or(at)
}

/// How often the checkpoint is saved during a long catch-up, in buckets,
/// so a crash late in it does not throw all of it away.
const CHECKPOINT_EVERY: u32 = 24;

/// Which buckets are finished for good, while items of several buckets are
/// handled at once and finish in any order. A bucket is finished when it
/// was read to the end, none of its items is still being handled, none
/// failed, and it is settled; the frontier (the checkpoint to be) moves
/// over finished buckets in order and stops for the run at the first
/// bucket that failed or is not settled.
struct Buckets {
    now: DateTime<Utc>,
    settle: Duration,
    /// The first bucket the frontier has not passed.
    next: DateTime<Utc>,
    /// Every bucket before this one was read to the end.
    read_before: DateTime<Utc>,
    in_flight: HashMap<DateTime<Utc>, u64>,
    failed: HashSet<DateTime<Utc>>,
    /// The frontier met a bucket that cannot be finished in this run.
    blocked: bool,
    /// The last bucket finished for good.
    frontier: Option<DateTime<Utc>>,
    /// Buckets the frontier passed since the checkpoint was last saved.
    unsaved: u32,
}

impl Buckets {
    fn advance(&mut self) {
        while !self.blocked && self.next < self.read_before {
            let settled = self.next + Duration::hours(1) + self.settle <= self.now;
            if self.failed.contains(&self.next) || !settled {
                self.blocked = true;
                return;
            }
            if self.in_flight.get(&self.next).copied().unwrap_or(0) > 0 {
                return;
            }
            self.frontier = Some(self.next);
            self.unsaved += 1;
            self.next += Duration::hours(1);
        }
    }

    fn started(&mut self, bucket: DateTime<Utc>) {
        *self.in_flight.entry(bucket).or_default() += 1;
    }

    /// An item of `bucket` is no longer being handled: `finished` says
    /// whether it was done (or parked); if not, the bucket stays before the
    /// checkpoint and the next run reads it again.
    fn ended(&mut self, bucket: DateTime<Utc>, finished: bool) {
        if let Some(count) = self.in_flight.get_mut(&bucket) {
            *count = count.saturating_sub(1);
        }
        if !finished {
            self.failed.insert(bucket);
        }
        self.advance();
    }
}

/// One due item, and the hour bucket it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Due {
    pub(crate) kind: DueKind,
    pub(crate) item: DueRef,
    bucket: DateTime<Utc>,
}

impl Due {
    /// Whose account the item changes: no two items of one account are
    /// handled at once.
    fn account_key(&self) -> String {
        match (&self.item.customer, &self.item.order) {
            (Some(customer), _) => format!("{}|c|{customer}", self.item.shop),
            (None, Some(order)) => format!("{}|o|{order}", self.item.shop),
            (None, None) => format!("{}|-", self.item.shop),
        }
    }
}

/// A walk over the due index for some kinds of work, bucket by bucket and
/// shard by shard, one page in memory at a time. It hands out items with
/// [`DueScan::next`]; the walker reports each one's end to the shared
/// [`Buckets`], and the checkpoint is saved from there.
pub(crate) struct DueScan<'a> {
    store: &'a dyn Store,
    job: String,
    kinds: Vec<DueKind>,
    now: DateTime<Utc>,
    page_size: u32,
    bucket: DateTime<Utc>,
    last_bucket: DateTime<Utc>,
    kind_index: usize,
    shard: u32,
    cursor: Option<String>,
    page: VecDeque<DueRef>,
    /// The current (kind, shard) partition has been read to its end.
    partition_done: bool,
    buckets: &'a Mutex<Buckets>,
    saved: Option<String>,
    finished: bool,
    pub(crate) progress: ScanProgress,
}

fn locked(buckets: &Mutex<Buckets>) -> std::sync::MutexGuard<'_, Buckets> {
    // Never held across an await; a panic while held poisons nothing we rely on.
    buckets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<'a> DueScan<'a> {
    /// Where the walk starts: after the checkpoint, or the lookback window.
    async fn first_bucket(
        store: &dyn Store,
        job: &str,
        now: DateTime<Utc>,
        config: &JobConfig,
    ) -> Result<(DateTime<Utc>, Option<String>), StoreError> {
        let last_bucket = hour_start(now);
        let checkpoint = store.get_checkpoint(job).await?;
        let first = match checkpoint.as_deref().map(|c| (c, bucket_start(c))) {
            // Even a checkpoint ahead of `now` (a replayed date) rescans now's bucket.
            Some((_, Some(done))) => (done + Duration::hours(1)).min(last_bucket),
            Some((raw, None)) => {
                warn!(
                    job,
                    checkpoint = raw,
                    "unreadable checkpoint; using the lookback window"
                );
                hour_start(now - config.lookback)
            }
            None => hour_start(now - config.lookback),
        };
        Ok((first, checkpoint))
    }

    /// The next due item, reading the next page or partition when needed;
    /// None when every bucket up to `now` has been read. The item counts as
    /// being handled until the walker reports its end.
    pub(crate) async fn next(&mut self) -> Result<Option<Due>, StoreError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some(item) = self.page.pop_front() {
                locked(self.buckets).started(self.bucket);
                return Ok(Some(Due {
                    kind: self.kinds[self.kind_index],
                    item,
                    bucket: self.bucket,
                }));
            }
            if !self.partition_done {
                let kind = self.kinds[self.kind_index];
                let page = self
                    .store
                    .due(
                        kind,
                        &due_bucket(self.bucket),
                        self.shard,
                        self.now,
                        self.cursor.take(),
                        self.page_size,
                    )
                    .await?;
                self.progress.queries += 1;
                self.partition_done = page.next.is_none();
                self.cursor = page.next;
                self.page = page.items.into();
                continue;
            }
            self.advance().await?;
        }
    }

    /// Moves to the next partition: shard, then kind, then bucket.
    async fn advance(&mut self) -> Result<(), StoreError> {
        self.partition_done = false;
        self.cursor = None;
        self.shard += 1;
        if self.shard < DUE_SHARDS {
            return Ok(());
        }
        self.shard = 0;
        self.kind_index += 1;
        if self.kind_index < self.kinds.len() {
            return Ok(());
        }
        self.kind_index = 0;
        self.progress.buckets_read += 1;
        self.bucket += Duration::hours(1);
        let save = {
            let mut buckets = locked(self.buckets);
            buckets.read_before = self.bucket;
            buckets.advance();
            buckets.unsaved >= CHECKPOINT_EVERY
        };
        if save {
            self.save().await?;
        }
        if self.bucket > self.last_bucket {
            self.finished = true;
        }
        Ok(())
    }

    /// Stops the walk where it is (the deadline came): the current bucket and
    /// those after it are left for the next run.
    pub(crate) fn stop(&mut self) {
        if !self.finished {
            self.progress.deadline_reached = true;
            let left = (self.last_bucket - self.bucket).num_hours() + 1;
            self.progress.buckets_left = u64::try_from(left).unwrap_or(0);
            self.finished = true;
        }
    }

    /// The run ran out of time with items of `from` (and maybe later
    /// buckets) left for the next run.
    fn out_of_time(&mut self, from: DateTime<Utc>) {
        self.progress.deadline_reached = true;
        let left = (self.last_bucket - from).num_hours() + 1;
        self.progress.buckets_left = self
            .progress
            .buckets_left
            .max(u64::try_from(left).unwrap_or(0));
    }

    /// Saves the checkpoint if it moved.
    pub(crate) async fn save(&mut self) -> Result<(), StoreError> {
        let frontier = {
            let mut buckets = locked(self.buckets);
            buckets.unsaved = 0;
            buckets.frontier.map(due_bucket)
        };
        if let Some(frontier) = frontier {
            if self
                .saved
                .as_deref()
                .is_none_or(|saved| saved < frontier.as_str())
            {
                self.store.put_checkpoint(&self.job, &frontier).await?;
                self.saved = Some(frontier);
            }
        }
        self.progress.checkpoint = self.saved.clone();
        Ok(())
    }
}

/// What became of one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    Sent,
    /// The provider says the address is suppressed or bounced.
    Suppressed,
    /// Not sent, and not retried: recorded, so it will not be sent later.
    Lost(String),
}

/// Sends emails no faster than the configured rate, retrying the same
/// email when the provider throttles. Shared by the items a run handles at
/// once: the slots are handed out in turn.
///
/// Pacing is by slots `1 / rate` apart: an attempt (retries included) takes
/// the next free slot, so no second of the clock sees more attempts than the
/// rate. A throttle doubles the spacing for the rest of the run (another
/// job or run may share the account's rate) and waits an exponential
/// backoff before retrying; successes bring the spacing back down.
pub(crate) struct Sender<'a> {
    ctx: &'a Context,
    clock: &'a dyn Clock,
    base_interval: Option<StdDuration>,
    max_attempts: u32,
    pace: Mutex<Pace>,
}

#[derive(Debug, Default)]
struct Pace {
    interval: Option<StdDuration>,
    next_slot: Option<Instant>,
    successes_since_throttle: u32,
    throttled: u64,
}

const MIN_BACKOFF: StdDuration = StdDuration::from_millis(100);
const MAX_BACKOFF: StdDuration = StdDuration::from_secs(5);

impl<'a> Sender<'a> {
    pub(crate) fn new(ctx: &'a Context, clock: &'a dyn Clock, config: &JobConfig) -> Sender<'a> {
        let interval = config
            .send_rate
            .filter(|rate| rate.is_finite() && *rate > 0.0)
            .map(|rate| StdDuration::from_secs_f64(1.0 / rate));
        Sender {
            ctx,
            clock,
            base_interval: interval,
            max_attempts: config.max_send_attempts.max(1),
            pace: Mutex::new(Pace {
                interval,
                ..Pace::default()
            }),
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends the provider asked to slow down so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.pace().throttled
    }

    /// Takes the next send slot and waits for it; false (and no slot taken)
    /// if it falls after `deadline`. Taken before an email is recorded, so
    /// an email is recorded only when it can be sent in this run.
    pub(crate) async fn wait_slot(&self, deadline: Instant) -> bool {
        let slot = {
            let mut pace = self.pace();
            let Some(interval) = pace.interval else {
                return true;
            };
            let now = self.clock.now();
            let slot = pace.next_slot.map_or(now, |slot| slot.max(now));
            if slot > deadline {
                return false;
            }
            pace.next_slot = Some(slot + interval);
            slot
        };
        let now = self.clock.now();
        if slot > now {
            self.clock.sleep(slot - now).await;
        }
        true
    }

    /// Sends one recorded email whose first slot the caller already waited
    /// for ([`Sender::wait_slot`]), retrying throttles until `deadline`.
    /// Other failures are not retried: `Unavailable` may mean SES accepted
    /// the message (it has no idempotency key), and a duplicate is worse
    /// than a missed email.
    pub(crate) async fn send_in_slot(
        &self,
        notification: &Notification,
        deadline: Instant,
    ) -> Delivery {
        let mut backoff = self.pace().interval.unwrap_or(MIN_BACKOFF).max(MIN_BACKOFF);
        for attempt in 1..=self.max_attempts {
            if attempt > 1 && !self.wait_slot(deadline).await {
                return Delivery::Lost("the deadline came before a send slot".into());
            }
            match self.ctx.send_email(notification).await {
                Ok(_) => {
                    self.speed_up();
                    return Delivery::Sent;
                }
                Err(NotifyError::Suppressed) => return Delivery::Suppressed,
                Err(NotifyError::Throttled) if attempt < self.max_attempts => {
                    self.slow_down();
                    if self.clock.now() + backoff > deadline {
                        return Delivery::Lost("throttled until the deadline".into());
                    }
                    self.clock.sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => return Delivery::Lost(error.to_string()),
            }
        }
        Delivery::Lost("throttled on every attempt".into())
    }

    /// Waits for a slot, then sends ([`Sender::send_in_slot`]).
    pub(crate) async fn send(&self, notification: &Notification, deadline: Instant) -> Delivery {
        if !self.wait_slot(deadline).await {
            return Delivery::Lost("the deadline came before a send slot".into());
        }
        self.send_in_slot(notification, deadline).await
    }

    fn slow_down(&self) {
        let mut pace = self.pace();
        pace.throttled += 1;
        pace.successes_since_throttle = 0;
        pace.interval = pace
            .interval
            .map(|interval| (interval * 2).min(MAX_BACKOFF));
    }

    fn speed_up(&self) {
        // After a run of successes, halve the spacing back toward the rate.
        let mut pace = self.pace();
        pace.successes_since_throttle += 1;
        if let (Some(interval), Some(base)) = (pace.interval, self.base_interval) {
            if interval > base && pace.successes_since_throttle >= 10 {
                pace.interval = Some((interval / 2).max(base));
                pace.successes_since_throttle = 0;
            }
        }
    }
}

/// Marks an account's address as suppressed (SES said so at send time), so
/// notices and the reminder series stop. One read, one write, retried on
/// conflict; the reminder index entry goes with it.
pub(crate) async fn mark_suppressed(
    run: &Run<'_>,
    shop: &ShopId,
    customer: &CustomerId,
) -> Result<(), AppError> {
    let ctx = run.ctx;
    let program = ctx.shop_program(shop, run.now).await?.program;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let read = ctx
            .store
            .read(shop, &ReadRequest::account(customer))
            .await?;
        let Some(mut account) = read.accounts.get(customer).cloned() else {
            return Ok(());
        };
        if account.value.reminders.suppressed {
            return Ok(());
        }
        account.value.reminders.suppressed = true;
        let write = WriteSet {
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::of(&program, account))
        }
        .at(run.now);
        match ctx.store.write(shop, write).await {
            Ok(WriteOutcome::Committed) | Ok(WriteOutcome::Duplicate { .. }) => return Ok(()),
            Err(error) if error.is_conflict() => {
                attempts
                    .lost(format!("marking {customer} suppressed"))
                    .await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}

/// How one due item ended, as the handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Done (or found done): its bucket may be checkpointed.
    Done,
    /// Left untouched for the next run (no send slot before the deadline):
    /// its bucket stays before the checkpoint. Not a failure.
    Left,
}

/// A job's own part of a run: what to do with one due item. Called for
/// several items at once (never two of one account).
#[async_trait::async_trait]
pub(crate) trait DueHandler: Sync {
    async fn handle(
        &self,
        sender: &Sender<'_>,
        kind: DueKind,
        due: &DueRef,
    ) -> Result<Handled, AppError>;
}

/// How a walk over the due index ended.
pub(crate) struct WalkEnd {
    /// The run failed as a whole (the store went down): still keep what the
    /// walk saved and report it.
    pub result: Result<(), JobError>,
    /// Saving the checkpoint failed.
    pub saved: Result<(), JobError>,
    pub scan: ScanProgress,
    pub failed: u64,
    /// Items parked by this run (not counted in `failed`).
    pub parked: u64,
    pub duration_ms: u64,
}

impl WalkEnd {
    /// The run's own error, then the checkpoint's.
    pub fn finish(self) -> Result<(), JobError> {
        self.result?;
        self.saved
    }
}

/// How one item's handling ended, for the walker.
enum ItemEnd {
    Done,
    Left,
    Parked,
    Failed,
    /// The store is down: the run ends.
    Fatal(StoreError),
}

/// Walks every due item of `kinds` from the job's checkpoint up to `now`,
/// handing each to `handler`, up to `config.concurrency` items at once and
/// never two of one account, until done or the deadline (less the finish
/// reserve): from then on no new item is started, and those started are
/// let finish. An item that fails is parked or left for the next run
/// ([`parked`]); a store that is down ends the run. Whatever happened, the
/// progress that is certain is saved.
///
/// The index is read ahead by one page while items are handled (the reader
/// and the workers share one task), so queries do not stall the work.
pub(crate) async fn walk_due(
    run: Run<'_>,
    sender: &Sender<'_>,
    job: &'static str,
    kinds: &[DueKind],
    handler: &dyn DueHandler,
    concurrency: u32,
) -> Result<WalkEnd, JobError> {
    let Run {
        ctx,
        clock,
        config,
        now,
        deadline,
    } = run;
    let started = clock.now();
    let stop_at = deadline
        .checked_sub(config.finish_reserve)
        .unwrap_or(deadline);
    let store = ctx.store.as_ref();
    let (first, checkpoint) = DueScan::first_bucket(store, job, now, config).await?;
    let buckets = Mutex::new(Buckets {
        now,
        settle: config.settle,
        next: first,
        read_before: first,
        in_flight: HashMap::new(),
        failed: HashSet::new(),
        blocked: false,
        frontier: None,
        unsaved: 0,
    });
    let mut scan = DueScan {
        store,
        job: job.to_string(),
        kinds: kinds.to_vec(),
        now,
        page_size: config.page_size.max(1),
        bucket: first,
        last_bucket: hour_start(now),
        kind_index: 0,
        shard: 0,
        cursor: None,
        page: VecDeque::new(),
        partition_done: false,
        buckets: &buckets,
        saved: checkpoint,
        finished: kinds.is_empty(),
        progress: ScanProgress::default(),
    };
    let limit = concurrency.max(1) as usize;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Due>(scan.page_size as usize);

    // The reader: due items into the channel, until the end, the deadline,
    // or the workers stop listening.
    let reader = async {
        let result = loop {
            if clock.now() >= stop_at {
                scan.stop();
                break Ok(());
            }
            match scan.next().await {
                Ok(Some(due)) => {
                    let bucket = due.bucket;
                    if tx.send(due).await.is_err() {
                        // The workers stopped: this item was not handled.
                        locked(&buckets).ended(bucket, false);
                        scan.stop();
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(JobError::from(error)),
            }
        };
        drop(tx);
        result
    };

    // The workers: up to `limit` items at once, one per account.
    let workers = async {
        let mut running: FuturesUnordered<BoxFuture<'_, (Due, ItemEnd)>> = FuturesUnordered::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut waiting: VecDeque<Due> = VecDeque::new();
        let (mut open, mut stopping, mut out_of_time) = (true, false, false);
        let (mut failed, mut parked) = (0u64, 0u64);
        let mut fatal: Option<StoreError> = None;
        let start = |due: Due| -> BoxFuture<'_, (Due, ItemEnd)> {
            Box::pin(async move {
                let end = handle_item(run, sender, job, handler, &due).await;
                (due, end)
            })
        };
        loop {
            if !stopping && (fatal.is_some() || out_of_time || clock.now() >= stop_at) {
                stopping = true;
            }
            if !stopping {
                let mut i = 0;
                while running.len() < limit && i < waiting.len() {
                    if busy.contains(&waiting[i].account_key()) {
                        i += 1;
                    } else if let Some(due) = waiting.remove(i) {
                        busy.insert(due.account_key());
                        running.push(start(due));
                    }
                }
            }
            let pull = open && !stopping && running.len() < limit && waiting.len() < limit;
            if !pull && running.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some((due, end)) = running.next(), if !running.is_empty() => {
                    busy.remove(&due.account_key());
                    let finished = match end {
                        ItemEnd::Done => true,
                        ItemEnd::Parked => {
                            parked += 1;
                            true
                        }
                        ItemEnd::Left => {
                            out_of_time = true;
                            false
                        }
                        ItemEnd::Failed => {
                            failed += 1;
                            false
                        }
                        ItemEnd::Fatal(error) => {
                            failed += 1;
                            fatal.get_or_insert(error);
                            false
                        }
                    };
                    locked(&buckets).ended(due.bucket, finished);
                }
                received = rx.recv(), if pull => match received {
                    Some(due) if busy.contains(&due.account_key()) => waiting.push_back(due),
                    Some(due) => {
                        busy.insert(due.account_key());
                        running.push(start(due));
                    }
                    None => open = false,
                },
            }
        }
        // Items read but never started stay "in flight": their buckets are
        // left for the next run.
        rx.close();
        while rx.recv().await.is_some() {}
        (failed, parked, fatal, out_of_time)
    };

    let (read, (failed, parked, fatal, out_of_time)) = tokio::join!(reader, workers);
    if fatal.is_some() || out_of_time || clock.now() >= stop_at {
        scan.stop();
    }
    if out_of_time || clock.now() >= stop_at {
        // Items were left for the next run: from the first bucket the
        // frontier could not pass.
        let from = locked(&buckets).next;
        scan.out_of_time(from);
    }
    let result = match (fatal, read) {
        (Some(error), _) => Err(JobError::from(error)),
        (None, read) => read,
    };
    let saved = scan.save().await.map_err(JobError::from);
    Ok(WalkEnd {
        result,
        saved,
        scan: scan.progress.clone(),
        failed,
        parked,
        duration_ms: u64::try_from(clock.now().saturating_duration_since(started).as_millis())
            .unwrap_or(u64::MAX),
    })
}

/// Handles one item; on failure, parks it or leaves it ([`parked`]).
async fn handle_item(
    run: Run<'_>,
    sender: &Sender<'_>,
    job: &'static str,
    handler: &dyn DueHandler,
    due: &Due,
) -> ItemEnd {
    let error = match handler.handle(sender, due.kind, &due.item).await {
        Ok(Handled::Done) => return ItemEnd::Done,
        Ok(Handled::Left) => return ItemEnd::Left,
        Err(error) => error,
    };
    if let Some(fatal) = item_error_is_fatal(&error) {
        log_item_failure(job, due.kind, &due.item, &error);
        return ItemEnd::Fatal(fatal);
    }
    match parked::after_failure(
        run.ctx, run.config, job, due.kind, &due.item, &error, run.now,
    )
    .await
    {
        Ok(parked::Fate::Parked) => ItemEnd::Parked,
        Ok(parked::Fate::Retry) => {
            log_item_failure(job, due.kind, &due.item, &error);
            ItemEnd::Failed
        }
        Err(store) => {
            log_item_failure(job, due.kind, &due.item, &error);
            warn!(job, error = %store, "could not count or park the failed item");
            ItemEnd::Failed
        }
    }
}

/// What to do with an item's error: a store that is down ends the run (the
/// next query would fail too); anything else is this item's problem.
pub(crate) fn item_error_is_fatal(error: &AppError) -> Option<StoreError> {
    match error {
        AppError::Store(StoreError::Unavailable(cause)) => {
            Some(StoreError::Unavailable(cause.clone()))
        }
        _ => None,
    }
}

/// Logs an item that could not be handled, with its cause chain.
pub(crate) fn log_item_failure(job: &str, kind: DueKind, due: &DueRef, error: &AppError) {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    error!(
        job,
        kind = ?kind,
        shop = %due.shop,
        customer = due.customer.as_ref().map(|c| c.to_string()),
        order = due.order.as_ref().map(|o| o.to_string()),
        error = %error,
        causes = ?causes,
        "due item not handled; its bucket will be read again"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_bucket_name_reads_back_as_the_start_of_its_hour() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 42, 7).unwrap();
        let bucket = due_bucket(at);
        assert_eq!(bucket, "2026-11-23T10");
        assert_eq!(bucket_start(&bucket), Some(hour_start(at)));
        assert_eq!(bucket_start("garbage"), None);
    }

    #[test]
    fn amounts_add_up_per_currency() {
        use cashback_core::money::Currency;
        let mut amounts = Amounts::default();
        amounts.add(Money::parse("1.50", Currency::USD).unwrap());
        amounts.add(Money::parse("2.25", Currency::USD).unwrap());
        amounts.add(Money::parse("100", Currency::JPY).unwrap());
        assert_eq!(
            serde_json::to_string(&amounts).unwrap(),
            r#"{"JPY":"100","USD":"3.75"}"#
        );
    }
}
