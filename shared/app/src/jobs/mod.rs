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
//! - [`bonuses`]: birthday, anniversary, win-back and milestone bonuses.

pub mod bonuses;
pub mod promote;
pub mod reminders;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
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

/// A walk over the due index for some kinds of work, bucket by bucket and
/// shard by shard, one page in memory at a time. The caller takes items
/// with [`DueScan::next`], reports the ones it could not finish with
/// [`DueScan::item_failed`], and saves the checkpoint at the end.
pub(crate) struct DueScan<'a> {
    store: &'a dyn Store,
    job: String,
    kinds: Vec<DueKind>,
    now: DateTime<Utc>,
    page_size: u32,
    settle: Duration,
    bucket: DateTime<Utc>,
    last_bucket: DateTime<Utc>,
    kind_index: usize,
    shard: u32,
    cursor: Option<String>,
    page: VecDeque<DueRef>,
    /// The current (kind, shard) partition has been read to its end.
    partition_done: bool,
    /// No item of the current bucket failed so far.
    bucket_clean: bool,
    /// Every bucket so far was finished: the frontier may still advance.
    contiguous: bool,
    /// The last bucket finished for good, not yet saved.
    frontier: Option<String>,
    saved: Option<String>,
    unsaved: u32,
    finished: bool,
    pub(crate) progress: ScanProgress,
}

impl<'a> DueScan<'a> {
    pub(crate) async fn start(
        store: &'a dyn Store,
        job: &str,
        kinds: &[DueKind],
        now: DateTime<Utc>,
        config: &JobConfig,
    ) -> Result<DueScan<'a>, StoreError> {
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
        Ok(DueScan {
            store,
            job: job.to_string(),
            kinds: kinds.to_vec(),
            now,
            page_size: config.page_size.max(1),
            settle: config.settle,
            bucket: first,
            last_bucket,
            kind_index: 0,
            shard: 0,
            cursor: None,
            page: VecDeque::new(),
            partition_done: false,
            bucket_clean: true,
            contiguous: true,
            frontier: None,
            saved: checkpoint,
            unsaved: 0,
            finished: kinds.is_empty(),
            progress: ScanProgress::default(),
        })
    }

    /// The next due item, reading the next page or partition when needed;
    /// None when every bucket up to `now` has been read.
    pub(crate) async fn next(&mut self) -> Result<Option<(DueKind, DueRef)>, StoreError> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if let Some(item) = self.page.pop_front() {
                return Ok(Some((self.kinds[self.kind_index], item)));
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
        self.bucket_finished().await?;
        self.bucket += Duration::hours(1);
        if self.bucket > self.last_bucket {
            self.finished = true;
        }
        Ok(())
    }

    async fn bucket_finished(&mut self) -> Result<(), StoreError> {
        self.progress.buckets_read += 1;
        let settled = self.bucket + Duration::hours(1) + self.settle <= self.now;
        if self.contiguous && self.bucket_clean && settled {
            self.frontier = Some(due_bucket(self.bucket));
            self.unsaved += 1;
            if self.unsaved >= CHECKPOINT_EVERY {
                self.save().await?;
            }
        } else {
            self.contiguous = false;
        }
        self.bucket_clean = true;
        Ok(())
    }

    /// An item of the current bucket was not finished: the bucket stays
    /// before the checkpoint, so the next run reads it again.
    pub(crate) fn item_failed(&mut self) {
        self.bucket_clean = false;
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

    /// Saves the checkpoint if it moved.
    pub(crate) async fn save(&mut self) -> Result<(), StoreError> {
        if let Some(frontier) = &self.frontier {
            if self
                .saved
                .as_deref()
                .is_none_or(|saved| saved < frontier.as_str())
            {
                self.store.put_checkpoint(&self.job, frontier).await?;
                self.saved = Some(frontier.clone());
            }
        }
        self.unsaved = 0;
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
/// email when the provider throttles.
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
    interval: Option<StdDuration>,
    next_slot: Option<Instant>,
    max_attempts: u32,
    successes_since_throttle: u32,
    pub(crate) throttled: u64,
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
            interval,
            next_slot: None,
            max_attempts: config.max_send_attempts.max(1),
            successes_since_throttle: 0,
            throttled: 0,
        }
    }

    /// Waits for the next slot; false if it falls after `deadline`.
    async fn wait_slot(&mut self, deadline: Instant) -> bool {
        let Some(interval) = self.interval else {
            return true;
        };
        let now = self.clock.now();
        let slot = self.next_slot.map_or(now, |slot| slot.max(now));
        if slot > deadline {
            return false;
        }
        if slot > now {
            self.clock.sleep(slot - now).await;
        }
        self.next_slot = Some(slot + interval);
        true
    }

    /// Sends one recorded email, retrying throttles until `deadline`.
    /// Other failures are not retried: `Unavailable` may mean SES accepted
    /// the message (it has no idempotency key), and a duplicate is worse
    /// than a missed reminder.
    pub(crate) async fn send(
        &mut self,
        notification: &Notification,
        deadline: Instant,
    ) -> Delivery {
        let mut backoff = self.interval.unwrap_or(MIN_BACKOFF).max(MIN_BACKOFF);
        for attempt in 1..=self.max_attempts {
            if !self.wait_slot(deadline).await {
                return Delivery::Lost("the deadline came before a send slot".into());
            }
            match self.ctx.notifier.send(notification).await {
                Ok(_) => {
                    self.successes_since_throttle += 1;
                    self.speed_up();
                    return Delivery::Sent;
                }
                Err(NotifyError::Suppressed) => return Delivery::Suppressed,
                Err(NotifyError::Throttled) if attempt < self.max_attempts => {
                    self.throttled += 1;
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

    fn slow_down(&mut self) {
        self.successes_since_throttle = 0;
        self.interval = self
            .interval
            .map(|interval| (interval * 2).min(MAX_BACKOFF));
    }

    fn speed_up(&mut self) {
        // After a run of successes, halve the spacing back toward the rate.
        if let (Some(interval), Some(base)) = (self.interval, self.base_interval) {
            if interval > base && self.successes_since_throttle >= 10 {
                self.interval = Some((interval / 2).max(base));
                self.successes_since_throttle = 0;
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
        };
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

/// A job's own part of a run: what to do with one due item.
#[async_trait::async_trait]
pub(crate) trait DueHandler: Send {
    async fn handle(
        &mut self,
        sender: &mut Sender<'_>,
        kind: DueKind,
        due: &DueRef,
    ) -> Result<(), AppError>;
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
    pub throttled: u64,
    pub duration_ms: u64,
}

impl WalkEnd {
    /// The run's own error, then the checkpoint's.
    pub fn finish(self) -> Result<(), JobError> {
        self.result?;
        self.saved
    }
}

/// Walks every due item of `kinds` from the job's checkpoint up to `now`,
/// handing each to `handler`, until done or the deadline (less the finish
/// reserve). An item that fails is logged and counted and its bucket is read
/// again next run; a store that is down ends the run. Whatever happened,
/// the progress that is certain is saved.
pub(crate) async fn walk_due(
    run: Run<'_>,
    job: &'static str,
    kinds: &[DueKind],
    handler: &mut dyn DueHandler,
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
    let mut sender = Sender::new(ctx, clock, config);
    let mut scan = DueScan::start(ctx.store.as_ref(), job, kinds, now, config).await?;
    let mut failed = 0;
    let result = loop {
        if clock.now() >= stop_at {
            scan.stop();
            break Ok(());
        }
        let (kind, due) = match scan.next().await {
            Ok(Some(item)) => item,
            Ok(None) => break Ok(()),
            Err(error) => break Err(JobError::from(error)),
        };
        if let Err(error) = handler.handle(&mut sender, kind, &due).await {
            log_item_failure(job, kind, &due, &error);
            failed += 1;
            scan.item_failed();
            if let Some(fatal) = item_error_is_fatal(&error) {
                break Err(JobError::from(fatal));
            }
        }
    };
    let saved = scan.save().await.map_err(JobError::from);
    Ok(WalkEnd {
        result,
        saved,
        scan: scan.progress.clone(),
        failed,
        throttled: sender.throttled,
        duration_ms: u64::try_from(clock.now().saturating_duration_since(started).as_millis())
            .unwrap_or(u64::MAX),
    })
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
