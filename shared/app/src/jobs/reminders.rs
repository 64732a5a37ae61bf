//! send-reminders: the reminder series, one email per due position.
//!
//! For each account the reminder index says is due: one read, the core's
//! [`due_reminder`] (the latest unsent position already due, none when the
//! balance is zero, the customer unsubscribed or the address is suppressed),
//! then one transaction that marks the position sent ([`mark_sent`]), moves
//! the account to its next position's time in the index, and records the
//! email's key `reminder:{customer}:{series start}:{position}`. Only then
//! is the email sent, paced to the configured rate.
//!
//! At most once per position per series: the account's version makes two
//! runs race for the same position, and the loser re-reads and finds it
//! sent; the key, recorded with the account, refuses a second record of
//! the same email even from a stale read. The price of recording before
//! sending: an email whose send fails after its record committed (the
//! provider throttled it past the deadline, refused it, or the run died in
//! between) is not sent later. Throttles are retried within the run for
//! that reason. docs/email.md ("Reminders") states the guarantee exactly.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use cashback_core::reminders::{due_reminder, mark_sent};

use crate::context::{Context, ShopProgram};
use crate::error::AppError;
use crate::notices::Notice;
use crate::notify::NotificationKind;
use crate::retry::Attempts;
use crate::store::{AccountWrite, DueKind, DueRef, ReadRequest, WriteOutcome, WriteSet};

use super::promote::json;
use super::*;

/// The checkpoint's name in the store.
pub const REMINDERS_JOB: &str = "send-reminders";

/// What a reminders run did: the fields of its one summary log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemindersOutcome {
    /// Reminders sent.
    pub sent: u64,
    /// Positions recorded whose email could not be sent (see the module doc).
    pub lost: u64,
    /// Sends the provider throttled (and that were tried again).
    pub throttled: u64,
    /// Addresses the provider reported suppressed; their series stopped.
    pub suppressed: u64,
    /// Positions marked sent with nothing to send (no address or code).
    pub skipped: u64,
    /// Due items with nothing due any more: sent by an overlapping run, the
    /// balance gone, the customer unsubscribed.
    pub not_due: u64,
    /// Items that failed (logged); their buckets are read again next run.
    pub failed: u64,
    /// Items parked (logged at ERROR, listed as parked): they failed for good.
    pub parked: u64,
    /// How far the walk over the due index got.
    #[serde(flatten)]
    pub scan: ScanProgress,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl RemindersOutcome {
    /// Everything due was handled: nothing is left for a later run.
    pub fn is_done(&self) -> bool {
        !self.scan.deadline_reached && self.failed == 0
    }
}

/// The once-only key of a reminder position in a series.
pub fn reminder_key(
    customer: &cashback_core::ids::CustomerId,
    series_started_at: DateTime<Utc>,
    position: u8,
) -> String {
    format!(
        "reminder:{customer}:{}:{position}",
        series_started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// Sends every reminder due at `now`, until done or `deadline`.
pub async fn send_reminders(
    ctx: &Context,
    clock: &dyn Clock,
    config: &JobConfig,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<RemindersOutcome, JobError> {
    let run = Run {
        ctx,
        clock,
        config,
        now,
        deadline,
    };
    let sender = Sender::new(ctx, clock, config);
    let reminders: RemindersRun<'_> = Counted::new(run);
    let kinds = [DueKind::Reminder];
    let end = walk_due(
        run,
        &sender,
        REMINDERS_JOB,
        &kinds,
        &reminders,
        config.email_concurrency,
    )
    .await?;
    let mut outcome = reminders.into_outcome();
    outcome.failed += end.failed;
    outcome.parked = end.parked;
    outcome.scan = end.scan.clone();
    outcome.throttled = sender.throttled();
    outcome.duration_ms = end.duration_ms;
    log_summary(&outcome);
    end.finish()?;
    Ok(outcome)
}

/// The run's state, shared by the items it handles at once.
type RemindersRun<'a> = Counted<'a, RemindersOutcome>;

#[async_trait::async_trait]
impl DueHandler for Counted<'_, RemindersOutcome> {
    async fn handle(
        &self,
        sender: &Sender<'_>,
        _kind: DueKind,
        due: &DueRef,
    ) -> Result<Handled, AppError> {
        let warned = super::expiry_warnings::warn_one(&self.run, sender, due).await?;
        self.count(|o| {
            o.sent += warned.sent;
            o.lost += warned.lost;
            o.suppressed += warned.suppressed;
        });
        remind_one(self, sender, due).await
    }
}

fn log_summary(outcome: &RemindersOutcome) {
    info!(
        job = REMINDERS_JOB,
        sent = outcome.sent,
        lost = outcome.lost,
        throttled = outcome.throttled,
        suppressed = outcome.suppressed,
        skipped = outcome.skipped,
        not_due = outcome.not_due,
        failed = outcome.failed,
        parked = outcome.parked,
        buckets_read = outcome.scan.buckets_read,
        queries = outcome.scan.queries,
        buckets_left = outcome.scan.buckets_left,
        deadline_reached = outcome.scan.deadline_reached,
        checkpoint = outcome.scan.checkpoint.as_deref(),
        duration_ms = outcome.duration_ms,
        summary = %json(outcome),
        "reminders run finished"
    );
}

/// What recording a position decided.
enum Recorded {
    /// Recorded; this email is to be sent now.
    Send(Box<Notice>, Box<ShopProgram>),
    /// Recorded, but there is nowhere to send it (no address or code).
    Nothing,
    /// Nothing due any more.
    NotDue,
    /// No send slot before the deadline: nothing recorded, left for the
    /// next run.
    Left,
}

/// Records one account's due position, then sends its email.
async fn remind_one(
    reminders: &RemindersRun<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Handled, AppError> {
    let run = &reminders.run;
    match record_position(run, sender, due).await? {
        Recorded::Left => return Ok(Handled::Left),
        Recorded::NotDue => reminders.count(|o| o.not_due += 1),
        Recorded::Nothing => reminders.count(|o| o.skipped += 1),
        Recorded::Send(notice, shop) => {
            let customer = notice.customer.clone();
            let notification = notice
                .into_notification(run.ctx, &shop.shop.name, &shop.program)
                .await?;
            match sender.send_in_slot(&notification, run.deadline).await {
                Delivery::Sent => reminders.count(|o| o.sent += 1),
                Delivery::Suppressed => {
                    reminders.count(|o| o.suppressed += 1);
                    mark_suppressed(run, &due.shop, &customer).await?;
                }
                Delivery::Lost(reason) => {
                    reminders.count(|o| o.lost += 1);
                    warn!(
                        job = REMINDERS_JOB,
                        shop = %due.shop,
                        customer = %customer,
                        key = notification.idempotency_key,
                        reason,
                        "reminder recorded but not sent; it will not be sent again"
                    );
                }
            }
        }
    }
    Ok(Handled::Done)
}

/// One read, the core's decision, one transaction that marks the position
/// sent and records the email's key; again from a fresh read on conflict.
/// The send slot is taken before the position is recorded: a position the
/// run has no time to send is left due for the next run.
async fn record_position(
    run: &Run<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Recorded, AppError> {
    let (ctx, now) = (run.ctx, run.now);
    let Some(customer) = &due.customer else {
        return Err(AppError::Invalid(format!(
            "reminder index item of shop {} names no customer",
            due.shop
        )));
    };
    let shop = ctx.shop_program(&due.shop, now).await?;
    let program = &shop.program;
    let mut slot_taken = false;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let read = ctx
            .store
            .read(&due.shop, &ReadRequest::account(customer))
            .await?;
        let Some(mut account) = read.accounts.get(customer).cloned() else {
            return Ok(Recorded::NotDue);
        };
        let Some(reminder) = due_reminder(program, &account.value, now) else {
            return Ok(Recorded::NotDue);
        };
        if mark_sent(&mut account.value, &reminder).is_err() {
            return Ok(Recorded::NotDue);
        }
        let key = reminder_key(customer, reminder.series_started_at, reminder.position);
        let notice = match (&account.value.email, &account.value.code) {
            (Some(to), Some(code)) => Some(Notice {
                key: key.clone(),
                shop: due.shop.clone(),
                customer: customer.clone(),
                to: to.clone(),
                kind: NotificationKind::Reminder {
                    position: reminder.position,
                    balance: account.value.available,
                    code: code.clone(),
                    expires_at: account.value.next_expiry(),
                },
            }),
            _ => None,
        };
        if notice.is_some() && !slot_taken {
            if !sender.wait_slot(run.deadline).await {
                return Ok(Recorded::Left);
            }
            slot_taken = true;
        }
        let write = WriteSet {
            notifications: vec![key],
            marketing_events: crate::marketing::queued_events(program, notice.as_slice(), now),
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::of(program, account))
        }
        .at(now);
        match ctx.store.write(&due.shop, write).await {
            Ok(WriteOutcome::Committed) => {
                return Ok(match notice {
                    Some(notice) => Recorded::Send(Box::new(notice), Box::new(shop)),
                    None => Recorded::Nothing,
                })
            }
            // The key is recorded: this position was sent from another read.
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(Recorded::NotDue),
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
