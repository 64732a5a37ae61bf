//! promote-pending: pending cashback whose date has come becomes spendable,
//! and balance and holds past their time expire.
//!
//! For each due order: one read (the order and its customer's account), the
//! core's [`release_order`], one transaction (the account, the order, the
//! ledger entries, the "ready" email's key; the account's next reminder
//! time). A referral reward pending on the order is released with it: the
//! order's referral credit says so, and the change feed credits the
//! referrer's account off this transaction (`crate::referral`). The order's version makes a second release impossible: a run that
//! loses a race re-reads, and the core then says the release was done (an
//! empty, duplicate result). The "ready" email is sent only after the
//! transaction committed, and its key was recorded in it, so it goes out at
//! most once. For each account due to expire: one read, expire the balance
//! (oldest lots first) and the holds, one transaction.
//!
//! The "cashback earned" and clawback emails are not sent here: the order
//! event that creates the pending cashback (or takes it back) sends them
//! (`events::handle_order_event`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{info, warn};

use cashback_core::ledger::Effect;
use cashback_core::money::Money;
use cashback_core::orders::{release_order, release_order_alone, ReadyEmail};

use crate::context::{Context, ShopProgram};
use crate::error::AppError;
use crate::notices::{notices_for, Notice};
use crate::notify::NotificationKind;
use crate::retry::Attempts;
use crate::store::{
    AccountWrite, DueKind, DueRef, OrderWrite, ReadRequest, WriteOutcome, WriteSet,
};

use super::*;

/// The checkpoint's name in the store.
pub const PROMOTE_JOB: &str = "promote-pending";

/// The checkpoint of the promote run's email pass over the ready index.
pub const READY_EMAILS_JOB: &str = "promote-pending-ready";

/// What a promote run did: the fields of its one summary log line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PromoteOutcome {
    /// Orders whose pending cashback this run released.
    pub released: u64,
    /// Cashback released, per currency, before any debt it paid.
    pub released_amount: Amounts,
    /// Due orders found already released (by an overlapping run) or no
    /// longer pending (cancelled, clawed back).
    pub already_done: u64,
    /// Accounts whose balance or holds expired.
    pub expired_accounts: u64,
    /// Balance that expired, per currency.
    pub expired_amount: Amounts,
    /// Checkout holds that lapsed and were let go.
    pub holds_freed: u64,
    /// "Cashback ready" emails sent, and recorded ones that could not be.
    pub emails_sent: u64,
    /// Recorded "ready" emails that could not be sent (suppressed address,
    /// refused, or out of time); they are not tried again.
    pub emails_lost: u64,
    /// Times the email provider asked to slow down (the send was retried).
    pub emails_throttled: u64,
    /// Items that failed (logged); their buckets are read again next run.
    pub failed: u64,
    /// Items parked (logged at ERROR, listed as parked): they failed for good.
    pub parked: u64,
    /// How far the walk over the due index got.
    #[serde(flatten)]
    pub scan: ScanProgress,
    /// How far the email pass over the ready index got (buckets left when
    /// its deadline came: the emails it could not send wait there).
    pub email_pass: ScanProgress,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl PromoteOutcome {
    /// Everything due was handled: nothing is left for a later run.
    pub fn is_done(&self) -> bool {
        !self.scan.deadline_reached && !self.email_pass.deadline_reached && self.failed == 0
    }
}

/// Releases and expires everything due at `now`, then sends the "cashback
/// ready" emails, until done or `deadline`.
///
/// Releases come first and keep many accounts in flight
/// ([`JobConfig::concurrency`]); each records its ready email on the order
/// (filed in the ready index), so a release never waits for the send rate.
/// The email pass then walks the ready index with its own checkpoint
/// ([`READY_EMAILS_JOB`]), paced to [`JobConfig::send_rate`], with what is
/// left of the run; what it cannot send before the deadline is left in the
/// index for the next run, never recorded and never lost.
pub async fn promote_due(
    ctx: &Context,
    clock: &dyn Clock,
    config: &JobConfig,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<PromoteOutcome, JobError> {
    let run = Run {
        ctx,
        clock,
        config,
        now,
        deadline,
    };
    let started = clock.now();
    let sender = Sender::new(ctx, clock, config);
    let promote: PromoteRun<'_> = Counted::new(run);
    let kinds = [DueKind::Release, DueKind::Expiry];
    let end = walk_due(
        run,
        &sender,
        PROMOTE_JOB,
        &kinds,
        &promote,
        config.concurrency,
    )
    .await?;
    let emails = if end.result.is_ok() {
        let ready = [DueKind::Ready];
        let pass = walk_due(
            run,
            &sender,
            READY_EMAILS_JOB,
            &ready,
            &promote,
            config.email_concurrency,
        );
        Some(pass.await?)
    } else {
        None
    };
    let mut outcome = promote.into_outcome();
    outcome.failed += end.failed;
    outcome.parked = end.parked;
    outcome.scan = end.scan.clone();
    if let Some(emails) = &emails {
        outcome.failed += emails.failed;
        outcome.parked += emails.parked;
        outcome.email_pass = emails.scan.clone();
    }
    outcome.emails_throttled = sender.throttled();
    outcome.duration_ms = u64::try_from(clock.now().saturating_duration_since(started).as_millis())
        .unwrap_or(u64::MAX);
    log_summary(&outcome);
    end.finish()?;
    if let Some(emails) = emails {
        emails.finish()?;
    }
    Ok(outcome)
}

/// The run's state, shared by the items it handles at once.
type PromoteRun<'a> = Counted<'a, PromoteOutcome>;

#[async_trait::async_trait]
impl DueHandler for Counted<'_, PromoteOutcome> {
    async fn handle(
        &self,
        sender: &Sender<'_>,
        kind: DueKind,
        due: &DueRef,
    ) -> Result<Handled, AppError> {
        match kind {
            DueKind::Release => release_one(self, sender, due).await,
            DueKind::Expiry => expire_one(self, due).await,
            DueKind::Ready => send_ready(self, sender, due).await,
            DueKind::Reminder | DueKind::Bonus => Ok(Handled::Done),
        }
    }
}

fn log_summary(outcome: &PromoteOutcome) {
    info!(
        job = PROMOTE_JOB,
        released = outcome.released,
        released_amount = %json(&outcome.released_amount),
        already_done = outcome.already_done,
        expired_accounts = outcome.expired_accounts,
        expired_amount = %json(&outcome.expired_amount),
        holds_freed = outcome.holds_freed,
        emails_sent = outcome.emails_sent,
        emails_lost = outcome.emails_lost,
        emails_throttled = outcome.emails_throttled,
        failed = outcome.failed,
        parked = outcome.parked,
        buckets_read = outcome.scan.buckets_read,
        queries = outcome.scan.queries,
        buckets_left = outcome.scan.buckets_left,
        deadline_reached = outcome.scan.deadline_reached,
        checkpoint = outcome.scan.checkpoint.as_deref(),
        email_buckets_left = outcome.email_pass.buckets_left,
        email_deadline_reached = outcome.email_pass.deadline_reached,
        email_checkpoint = outcome.email_pass.checkpoint.as_deref(),
        duration_ms = outcome.duration_ms,
        "promote run finished"
    );
}

pub(crate) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// What one release decided.
enum Released {
    Done {
        amount: Money,
        /// Emails other than "ready" the release called for, recorded with
        /// it (the ready email waits on the order for the email pass).
        notices: Vec<Notice>,
        shop: Box<ShopProgram>,
    },
    AlreadyDone,
}

/// Releases one due order; its ready email is left to the email pass.
async fn release_one(
    promote: &PromoteRun<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Handled, AppError> {
    let run = &promote.run;
    match commit_release(run, due).await? {
        Released::AlreadyDone => promote.count(|o| o.already_done += 1),
        Released::Done {
            amount,
            notices,
            shop,
        } => {
            promote.count(|o| {
                o.released += 1;
                o.released_amount.add(amount);
            });
            for notice in notices {
                let customer = notice.customer.clone();
                let notification = notice
                    .into_notification(run.ctx, &shop.shop.name, &shop.program)
                    .await?;
                deliver(promote, sender, due, &customer, &notification, false).await?;
            }
        }
    }
    Ok(Handled::Done)
}

/// Sends one recorded email and counts what became of it.
async fn deliver(
    promote: &PromoteRun<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
    customer: &cashback_core::ids::CustomerId,
    notification: &crate::notify::Notification,
    slot_taken: bool,
) -> Result<(), AppError> {
    let run = &promote.run;
    let delivery = if slot_taken {
        sender.send_in_slot(notification, run.deadline).await
    } else {
        sender.send(notification, run.deadline).await
    };
    match delivery {
        Delivery::Sent => promote.count(|o| o.emails_sent += 1),
        Delivery::Suppressed => {
            promote.count(|o| o.emails_lost += 1);
            mark_suppressed(run, &due.shop, customer).await?;
        }
        Delivery::Lost(reason) => {
            promote.count(|o| o.emails_lost += 1);
            warn!(
                job = PROMOTE_JOB,
                kind = notification.kind.name(),
                shop = %due.shop,
                customer = %customer,
                reason,
                "recorded email not sent"
            );
        }
    }
    Ok(())
}

/// One read, the core's decision, one transaction; again from a fresh read
/// if another writer changed the account or the order meanwhile.
async fn commit_release(run: &Run<'_>, due: &DueRef) -> Result<Released, AppError> {
    let (ctx, now) = (run.ctx, run.now);
    let (Some(order_id), Some(customer)) = (&due.order, &due.customer) else {
        // Pending cashback always has an order and a customer; an index item
        // without them was not written by us.
        return Err(AppError::Invalid(format!(
            "release index item of shop {} names no order or customer",
            due.shop
        )));
    };
    let shop = ctx.shop_program(&due.shop, now).await?;
    let program = &shop.program;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let mut read = ctx
            .store
            .read(
                &due.shop,
                &ReadRequest {
                    order: Some(order_id.clone()),
                    ..ReadRequest::account(customer)
                },
            )
            .await?;
        let Some(mut record) = read.order.take() else {
            return Ok(Released::AlreadyDone);
        };
        let mut accounts_read = read.accounts_read();
        let Some(mut account) = read.accounts.remove(customer) else {
            return Err(AppError::NotFound(format!(
                "account {customer} of order {order_id} in shop {}",
                due.shop
            )));
        };
        // A referral reward hanging on the order is released with it. Its
        // referrer's account follows off this write (the change feed
        // settles the order's referral credit), except for a reward granted
        // before that, whose referrer's account is read and written here
        // (one more read, only then).
        let referral_deferred =
            record.value.referral.as_ref().is_some_and(|r| {
                r.pending.is_positive() && !crate::referral::written_with_order(r)
            });
        let mut referrer = match record
            .value
            .referral
            .as_ref()
            .filter(|r| r.pending.is_positive() && crate::referral::written_with_order(r))
        {
            Some(referral) => {
                let again = ctx
                    .store
                    .read(&due.shop, &ReadRequest::account(&referral.referrer))
                    .await?;
                again.accounts.get(&referral.referrer).cloned()
            }
            None => None,
        };
        if let Some(referrer) = &referrer {
            accounts_read.add(referrer);
        }
        let (applied, referred) = if referral_deferred {
            let applied = release_order_alone(program, &mut account.value, &mut record.value, now)?;
            (applied, Default::default())
        } else {
            release_order(
                program,
                &mut account.value,
                referrer.as_mut().map(|r| &mut r.value),
                &mut record.value,
                now,
            )?
        };
        if applied.duplicate || (applied.is_empty() && referred.is_empty() && !referral_deferred) {
            return Ok(Released::AlreadyDone);
        }
        let amount = applied
            .effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Released { amount, .. } => Some(*amount),
                _ => None,
            })
            .unwrap_or(Money::zero(record.value.currency));
        let (ready, notices): (Vec<Notice>, Vec<Notice>) =
            notices_for(&due.shop, &account.value, &record.value, &applied, program)
                .into_iter()
                .partition(|n| matches!(n.kind, NotificationKind::Ready { .. }));
        // The ready email waits on the order (in the ready index) for the
        // paced email pass: the release does not wait for the send rate.
        record.value.ready_email = ready.iter().find_map(|notice| match &notice.kind {
            NotificationKind::Ready { amount, .. } => Some(ReadyEmail {
                amount: *amount,
                since: now,
            }),
            _ => None,
        });
        let referrer_write = referrer
            .filter(|_| !referred.is_empty())
            .map(|referrer| AccountWrite::of(program, referrer).with_entries(referred.entries));
        let write = WriteSet {
            accounts: std::iter::once(
                AccountWrite::of(program, account).with_entries(applied.entries),
            )
            .chain(referrer_write)
            .collect(),
            order: Some(OrderWrite {
                lines_stored: read.order_lines_stored,
                refunds_stored: read.order_refunds_stored,
                record: record.value,
                expected_version: record.version,
            }),
            notifications: notices.iter().map(|n| n.key.clone()).collect(),
            marketing_events: crate::marketing::queued_events(program, &notices, now),
            accounts_read,
            now: Some(now),
            ..WriteSet::default()
        };
        match ctx.store.write(&due.shop, write).await {
            Ok(WriteOutcome::Committed) => {
                return Ok(Released::Done {
                    amount,
                    notices,
                    shop: Box::new(shop),
                })
            }
            // The "ready" key is there: another run released this order
            // after our read. A fresh read will show it.
            Ok(WriteOutcome::Duplicate { .. }) => {
                attempts.lost("ready email already recorded").await;
            }
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}

/// Expires one account's balance and holds that are past their time.
async fn expire_one(promote: &PromoteRun<'_>, due: &DueRef) -> Result<Handled, AppError> {
    let run = &promote.run;
    let (ctx, now) = (run.ctx, run.now);
    let Some(customer) = &due.customer else {
        return Err(AppError::Invalid(format!(
            "expiry index item of shop {} names no customer",
            due.shop
        )));
    };
    let program = ctx.shop_program(&due.shop, now).await?.program;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let read = ctx
            .store
            .read(&due.shop, &ReadRequest::account(customer))
            .await?;
        let Some(mut account) = read.accounts.get(customer).cloned() else {
            return Ok(Handled::Done);
        };
        let applied = account.value.expire_balance(now)?;
        let freed = account.value.expire_holds(now);
        if applied.entries.is_empty() && freed.is_empty() {
            // Done by an overlapping run, or the index lagged the account.
            return Ok(Handled::Done);
        }
        let expired = Money::sum(
            account.value.currency,
            applied.entries.iter().map(|e| &e.available_delta),
        )
        .map_err(cashback_core::ledger::LedgerError::from)?
        .negated();
        let write = WriteSet {
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::of(&program, account).with_entries(applied.entries))
        }
        .at(now);
        match ctx.store.write(&due.shop, write).await {
            Ok(_) => {
                promote.count(|o| {
                    o.expired_accounts += 1;
                    if expired.is_positive() {
                        o.expired_amount.add(expired);
                    }
                    o.holds_freed += freed.len() as u64;
                });
                return Ok(Handled::Done);
            }
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}

/// What the email pass found on a ready item.
enum Claimed {
    /// Claimed (the ready key recorded, the order out of the ready index):
    /// send it now, in the slot already taken.
    Send(Box<Notice>, Box<ShopProgram>),
    /// Cleared with nothing to send (no address or code any more, the
    /// customer unsubscribed, the address suppressed), or already sent.
    Nothing,
    /// No send slot before the deadline: left as it is for the next run.
    Left,
}

/// The email pass's item: one read (the order and its account), a send slot,
/// then one transaction that records the ready key and clears the order's
/// ready email (taking it out of the ready index), then the send. A slot is
/// taken before anything is recorded, so an email the run has no time for
/// stays in the index for the next run; a recorded one is sent at most once.
async fn send_ready(
    promote: &PromoteRun<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Handled, AppError> {
    let run = &promote.run;
    match claim_ready(run, sender, due).await? {
        Claimed::Left => Ok(Handled::Left),
        Claimed::Nothing => Ok(Handled::Done),
        Claimed::Send(notice, shop) => {
            let customer = notice.customer.clone();
            let notification = notice
                .into_notification(run.ctx, &shop.shop.name, &shop.program)
                .await?;
            deliver(promote, sender, due, &customer, &notification, true).await?;
            Ok(Handled::Done)
        }
    }
}

async fn claim_ready(
    run: &Run<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Claimed, AppError> {
    let (ctx, now) = (run.ctx, run.now);
    let (Some(order_id), Some(customer)) = (&due.order, &due.customer) else {
        return Err(AppError::Invalid(format!(
            "ready index item of shop {} names no order or customer",
            due.shop
        )));
    };
    let shop = ctx.shop_program(&due.shop, now).await?;
    let mut slot_taken = false;
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    while attempts.start().is_some() {
        let read = ctx
            .store
            .read(
                &due.shop,
                &ReadRequest {
                    order: Some(order_id.clone()),
                    ..ReadRequest::account(customer)
                },
            )
            .await?;
        let Some(mut record) = read.order.clone() else {
            return Ok(Claimed::Nothing);
        };
        let Some(ready) = record.value.ready_email.take() else {
            // Sent (or cleared) by an overlapping run.
            return Ok(Claimed::Nothing);
        };
        let Some(account) = read.accounts.get(customer) else {
            return Err(AppError::NotFound(format!(
                "account {customer} of order {order_id} in shop {}",
                due.shop
            )));
        };
        let account = &account.value;
        let reminders = &account.reminders;
        let notice = match (&account.email, &account.code) {
            (Some(to), Some(code)) if !reminders.unsubscribed && !reminders.suppressed => {
                Some(Notice {
                    key: format!("ready:{customer}:{order_id}"),
                    shop: due.shop.clone(),
                    customer: customer.clone(),
                    to: to.clone(),
                    kind: NotificationKind::Ready {
                        amount: ready.amount,
                        balance: account.available,
                        code: code.clone(),
                    },
                })
            }
            _ => None,
        };
        if notice.is_some() && !slot_taken {
            if !sender.wait_slot(run.deadline).await {
                return Ok(Claimed::Left);
            }
            slot_taken = true;
        }
        let write = WriteSet {
            order: Some(
                OrderWrite::of(record, read.order_lines_stored)
                    .with_refunds_stored(read.order_refunds_stored),
            ),
            notifications: notice.iter().map(|n| n.key.clone()).collect(),
            marketing_events: crate::marketing::queued_events(
                &shop.program,
                notice.as_slice(),
                now,
            ),
            now: Some(now),
            ..WriteSet::default()
        };
        match ctx.store.write(&due.shop, write).await {
            Ok(WriteOutcome::Committed) => {
                return Ok(match notice {
                    Some(notice) => Claimed::Send(Box::new(notice), Box::new(shop)),
                    None => Claimed::Nothing,
                })
            }
            // The key is recorded: claimed by another run from its read.
            Ok(WriteOutcome::Duplicate { .. }) => return Ok(Claimed::Nothing),
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
