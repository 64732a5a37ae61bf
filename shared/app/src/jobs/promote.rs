//! promote-pending: pending cashback whose date has come becomes spendable,
//! and balance and holds past their time expire.
//!
//! For each due order: one read (the order and its customer's account), the
//! core's [`release_order`], one transaction (the account, the order, the
//! ledger entries, the "ready" email's key; the account's next reminder
//! time). A referral reward pending on the order is released with it, in
//! the same transaction: its referrer's account costs one more read. The order's version makes a second release impossible: a run that
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
use cashback_core::orders::release_order;

use crate::context::{Context, ShopProgram};
use crate::error::AppError;
use crate::notices::{notices_for, Notice};
use crate::retry::Attempts;
use crate::store::{
    AccountWrite, DueKind, DueRef, OrderWrite, ReadRequest, WriteOutcome, WriteSet,
};

use super::*;

/// The checkpoint's name in the store.
pub const PROMOTE_JOB: &str = "promote-pending";

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
    /// How far the walk over the due index got.
    #[serde(flatten)]
    pub scan: ScanProgress,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl PromoteOutcome {
    /// Everything due was handled: nothing is left for a later run.
    pub fn is_done(&self) -> bool {
        !self.scan.deadline_reached && self.failed == 0
    }
}

/// Releases and expires everything due at `now`, until done or `deadline`.
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
    let mut promote = PromoteRun {
        run,
        outcome: PromoteOutcome::default(),
    };
    let kinds = [DueKind::Release, DueKind::Expiry];
    let end = walk_due(run, PROMOTE_JOB, &kinds, &mut promote).await?;
    let mut outcome = promote.outcome;
    outcome.failed += end.failed;
    outcome.scan = end.scan.clone();
    outcome.emails_throttled = end.throttled;
    outcome.duration_ms = end.duration_ms;
    log_summary(&outcome);
    end.finish()?;
    Ok(outcome)
}

/// A promote run's state, for [`walk_due`].
struct PromoteRun<'a> {
    run: Run<'a>,
    outcome: PromoteOutcome,
}

#[async_trait::async_trait]
impl DueHandler for PromoteRun<'_> {
    async fn handle(
        &mut self,
        sender: &mut Sender<'_>,
        kind: DueKind,
        due: &DueRef,
    ) -> Result<(), AppError> {
        match kind {
            DueKind::Release => release_one(&self.run, sender, due, &mut self.outcome).await,
            DueKind::Expiry => expire_one(&self.run, due, &mut self.outcome).await,
            DueKind::Reminder | DueKind::Bonus => Ok(()),
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
        buckets_read = outcome.scan.buckets_read,
        queries = outcome.scan.queries,
        buckets_left = outcome.scan.buckets_left,
        deadline_reached = outcome.scan.deadline_reached,
        checkpoint = outcome.scan.checkpoint.as_deref(),
        duration_ms = outcome.duration_ms,
        "promote run finished"
    );
}

pub(crate) fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// What one release decided, before its email is sent.
enum Released {
    Done {
        amount: Money,
        notices: Vec<Notice>,
        shop: Box<ShopProgram>,
    },
    AlreadyDone,
}

/// Releases one due order, then sends its "ready" email.
async fn release_one(
    run: &Run<'_>,
    sender: &mut Sender<'_>,
    due: &DueRef,
    outcome: &mut PromoteOutcome,
) -> Result<(), AppError> {
    match commit_release(run, due).await? {
        Released::AlreadyDone => outcome.already_done += 1,
        Released::Done {
            amount,
            notices,
            shop,
        } => {
            outcome.released += 1;
            outcome.released_amount.add(amount);
            for notice in notices {
                let customer = notice.customer.clone();
                let notification =
                    notice.into_notification(run.ctx, &shop.shop.name, &shop.program);
                match sender.send(&notification, run.deadline).await {
                    Delivery::Sent => outcome.emails_sent += 1,
                    Delivery::Suppressed => {
                        outcome.emails_lost += 1;
                        mark_suppressed(run, &due.shop, &customer).await?;
                    }
                    Delivery::Lost(reason) => {
                        outcome.emails_lost += 1;
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
            }
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
        // A referral reward hanging on the order is released with it: its
        // referrer's account is read too (one more read, only then).
        let mut referrer = match record
            .value
            .referral
            .as_ref()
            .filter(|r| r.pending.is_positive())
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
        let (applied, referred) = release_order(
            program,
            &mut account.value,
            referrer.as_mut().map(|r| &mut r.value),
            &mut record.value,
            now,
        )?;
        if applied.duplicate || (applied.is_empty() && referred.is_empty()) {
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
        let notices = notices_for(&due.shop, &account.value, &record.value, &applied, program);
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
                record: record.value,
                expected_version: record.version,
            }),
            notifications: notices.iter().map(|n| n.key.clone()).collect(),
            accounts_read,
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
async fn expire_one(
    run: &Run<'_>,
    due: &DueRef,
    outcome: &mut PromoteOutcome,
) -> Result<(), AppError> {
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
            return Ok(());
        };
        let applied = account.value.expire_balance(now)?;
        let freed = account.value.expire_holds(now);
        if applied.entries.is_empty() && freed.is_empty() {
            // Done by an overlapping run, or the index lagged the account.
            return Ok(());
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
        };
        match ctx.store.write(&due.shop, write).await {
            Ok(_) => {
                outcome.expired_accounts += 1;
                if expired.is_positive() {
                    outcome.expired_amount.add(expired);
                }
                outcome.holds_freed += freed.len() as u64;
                return Ok(());
            }
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
