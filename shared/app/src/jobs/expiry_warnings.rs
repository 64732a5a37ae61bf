//! Warnings before balance expires, sent by the reminders run as it walks
//! the reminder index (a warning's time is filed there with the next
//! reminder's: `cashback_core::due::reminder`).
//!
//! For an account due: one read, the core's [`due_warnings`] (at most one
//! per expiry day, each keyed by customer, expiry day and offset), one
//! transaction (the account, now decided up to the run's time, with its
//! next warning or reminder filed again, and the warnings' keys), then the
//! emails. A key recorded before makes the write a duplicate: an
//! overlapping run sent it, and a fresh read shows the account decided.

use cashback_core::expiry_warnings::due_warnings;

use crate::notices::Notice;
use crate::notify::NotificationKind;
use crate::store::{AccountWrite, DueRef, ReadRequest, WriteOutcome, WriteSet};

use super::*;

/// What [`warn_one`] sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Warned {
    /// Warnings sent.
    pub sent: u64,
    /// Recorded warnings the provider refused (or out of time).
    pub lost: u64,
    /// Recorded warnings to a suppressed address (the account is marked).
    pub suppressed: u64,
}

/// The warning's once-only key in the shop.
fn warning_key(shop: &ShopId, key: &str) -> String {
    format!("expiry-warning:{shop}:{key}")
}

/// Decides and sends the account's warnings due at the run's time.
pub(crate) async fn warn_one(
    run: &Run<'_>,
    sender: &Sender<'_>,
    due: &DueRef,
) -> Result<Warned, AppError> {
    let (ctx, now) = (run.ctx, run.now);
    let mut outcome = Warned::default();
    let Some(customer) = &due.customer else {
        return Ok(outcome);
    };
    let shop = ctx.shop_program(&due.shop, now).await?;
    let program = &shop.program;
    if program.expiry_days.is_none() || program.expiry_warning_hours.is_empty() {
        return Ok(outcome);
    }
    let mut attempts = Attempts::on_clock(run.config.max_attempts, run.clock);
    let notices = loop {
        if attempts.start().is_none() {
            return Err(attempts.gave_up());
        }
        let read = ctx
            .store
            .read(&due.shop, &ReadRequest::account(customer))
            .await?;
        let Some(mut account) = read.accounts.get(customer).cloned() else {
            return Ok(outcome);
        };
        let warnings = due_warnings(&mut account.value, &program.expiry_warning_hours, now);
        if warnings.is_empty() {
            // The item was due for a reminder: the reminder's run does it
            // and files the account's next time.
            return Ok(outcome);
        }
        let a = &account.value;
        let notices: Vec<Notice> = match &a.email {
            // No address, unsubscribed or suppressed: decided, nothing sent.
            Some(to) if !a.reminders.unsubscribed && !a.reminders.suppressed => warnings
                .iter()
                .map(|warning| Notice {
                    key: warning_key(&due.shop, &warning.key(customer)),
                    shop: due.shop.clone(),
                    customer: customer.clone(),
                    to: to.clone(),
                    kind: NotificationKind::ExpiryWarning {
                        amount: warning.amount,
                        expires_at: warning.expires_at,
                        hours_before: warning.offset_hours,
                        balance: a.spendable(),
                        code: a.code.clone(),
                    },
                })
                .collect(),
            _ => Vec::new(),
        };
        let write = WriteSet {
            notifications: notices.iter().map(|n| n.key.clone()).collect(),
            marketing_events: crate::marketing::queued_events(program, &notices, now),
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::of(program, account))
        };
        match ctx.store.write(&due.shop, write).await {
            Ok(WriteOutcome::Committed) => break notices,
            Ok(WriteOutcome::Duplicate { .. }) => {
                attempts.lost("expiry warning already recorded").await;
            }
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    };
    for notice in notices {
        let notification = notice
            .into_notification(ctx, &shop.shop.name, program)
            .await?;
        match sender.send(&notification, run.deadline).await {
            Delivery::Sent => outcome.sent += 1,
            Delivery::Suppressed => {
                outcome.suppressed += 1;
                mark_suppressed(run, &due.shop, customer).await?;
            }
            Delivery::Lost(reason) => {
                outcome.lost += 1;
                warn!(
                    job = reminders::REMINDERS_JOB,
                    kind = notification.kind.name(),
                    shop = %due.shop,
                    customer = %customer,
                    reason,
                    "recorded email not sent"
                );
            }
        }
    }
    Ok(outcome)
}
