//! Resending a customer's last email, from the merchant's dashboard (the
//! customer says it never came, or deleted it).
//!
//! The last email is read from what the customer's history says was sent,
//! newest first: an order's cashback earned, cashback become spendable,
//! cashback taken back by a return, or the reminder of the current series
//! (the engine keeps no copy of sent messages). It is built as a [`Notice`]
//! of the same kind and sent through [`Notice::into_notification`] and the
//! Notifier like any other, so the merchant's subject, preview text and
//! branding apply; figures that move (the balance, the debt, the code) are
//! today's. A tier announcement is not in the ledger and is never resent.
//!
//! Rules:
//! - an unsubscribed customer, or an address that bounced, is sent nothing
//!   (as [`crate::notices::notices_for`] sends them nothing);
//! - a shop whose emails go out through its Klaviyo flows only is sent
//!   nothing by the engine, a resend included;
//! - at most one resend per customer every [`RESEND_EVERY_MINUTES`]: a
//!   counter per ten-minute window, and a resend is refused while the
//!   current or the previous window holds one, so two resends are always at
//!   least ten minutes apart. The counter is taken before the send, so two
//!   clicks racing send one email; the next window is read too, so a server
//!   whose clock is a moment behind another's does not send again;
//! - each resend is logged with who asked for it.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tracing::info;

use cashback_core::ids::{CustomerId, ShopId};
use cashback_core::ledger::{Account, EntryKind, LedgerEntry};
use cashback_core::program::Program;

use crate::context::Context;
use crate::error::AppError;
use crate::notices::Notice;
use crate::notify::{NotificationKind, NotifyError};
use crate::store::ReadRequest;

/// The shortest time between two resends to one customer.
pub const RESEND_EVERY_MINUTES: i64 = 10;

/// How far back the history is searched for the last email.
const LOOKBACK_ENTRIES: u32 = 50;

/// What became of a resend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendOutcome {
    /// Sent again; `kind` names the email (`earned`, `ready`, ...).
    Sent {
        /// The email's kind, as [`NotificationKind::name`] gives it.
        kind: &'static str,
    },
    /// The customer stopped cashback emails, or their address bounced.
    Unsubscribed,
    /// The shop sends its emails through its Klaviyo flows only: the
    /// engine sends none of its own, a resend included (Klaviyo counts an
    /// event once per `unique_id`, so it cannot be sent there again either).
    SentByKlaviyo,
    /// No address, or nothing was ever sent to it.
    NothingToResend,
    /// Resent less than ten minutes ago; possible again from `retry_after`.
    TooSoon {
        /// The earliest time a resend is accepted again.
        retry_after: DateTime<Utc>,
    },
}

/// Why a resend failed.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// The shop, program or account could not be read, or the counter written.
    #[error(transparent)]
    App(#[from] AppError),
    /// The email provider did not take the message; the resend counted.
    #[error("the email could not be sent")]
    Notify(#[source] NotifyError),
}

fn window(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(RESEND_EVERY_MINUTES * 60)
}

fn counter_key(shop: &ShopId, customer: &CustomerId, window: i64) -> String {
    format!("resend:{shop}:{customer}:{window}")
}

fn window_start(window: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(window * RESEND_EVERY_MINUTES * 60, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Sends the customer's last email again. `principal` is who asked (the
/// dashboard user), for the log.
pub async fn resend_last_email(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    principal: &str,
    now: DateTime<Utc>,
) -> Result<ResendOutcome, ResendError> {
    let shop_program = ctx.shop_program(shop, now).await?;
    let current = window(now);
    // The next window too: another instance whose clock is a moment ahead
    // may already have counted a resend there.
    let keys = [
        counter_key(shop, customer, current),
        counter_key(shop, customer, current - 1),
        counter_key(shop, customer, current + 1),
    ];
    let read = ctx
        .store
        .read(
            shop,
            &ReadRequest {
                counters: keys.to_vec(),
                ..ReadRequest::account(customer)
            },
        )
        .await
        .map_err(AppError::from)?;
    let Some(account) = read.accounts.get(customer).map(|a| a.value.clone()) else {
        return Err(AppError::NotFound("customer".into()).into());
    };
    if account.reminders.unsubscribed || account.reminders.suppressed {
        return Ok(ResendOutcome::Unsubscribed);
    }
    if !shop_program.program.email_channel.sends_ses() {
        return Ok(ResendOutcome::SentByKlaviyo);
    }
    let too_soon = ResendOutcome::TooSoon {
        retry_after: window_start(current + 2),
    };
    let counted = |key: &String| read.counters.get(key).copied().unwrap_or(0) > 0;
    if counted(&keys[2]) {
        return Ok(ResendOutcome::TooSoon {
            retry_after: window_start(current + 3),
        });
    }
    if counted(&keys[0]) {
        return Ok(too_soon);
    }
    if counted(&keys[1]) {
        return Ok(ResendOutcome::TooSoon {
            retry_after: window_start(current + 1),
        });
    }
    let Some(to) = account.email.clone() else {
        return Ok(ResendOutcome::NothingToResend);
    };
    let entries = ctx
        .store
        .ledger(shop, customer, None, LOOKBACK_ENTRIES)
        .await
        .map_err(AppError::from)?
        .items;
    let Some(kind) = last_email(ctx, shop, &account, &shop_program.program, &entries).await? else {
        return Ok(ResendOutcome::NothingToResend);
    };
    // Counted before the send: of two clicks racing, one sends.
    let expires_at = window_start(current + 2);
    let count = ctx
        .store
        .increment_counter(&keys[0], expires_at)
        .await
        .map_err(AppError::from)?;
    if count > 1 {
        return Ok(too_soon);
    }
    let name = kind.name();
    let notice = Notice {
        key: keys[0].clone(),
        shop: shop.clone(),
        customer: customer.clone(),
        to,
        kind,
    };
    let notification = notice
        .into_notification(ctx, &shop_program.shop.name, &shop_program.program)
        .await?;
    match ctx.notifier.send(&notification).await {
        Ok(_) => {
            info!(shop = %shop, customer = %customer, kind = name, by = principal, "last email resent");
            Ok(ResendOutcome::Sent { kind: name })
        }
        Err(error) => {
            info!(shop = %shop, customer = %customer, kind = name, by = principal, %error, "last email resend failed");
            Err(ResendError::Notify(error))
        }
    }
}

/// The last email the history shows, as it would be sent today.
async fn last_email(
    ctx: &Context,
    shop: &ShopId,
    account: &Account,
    program: &Program,
    entries: &[LedgerEntry],
) -> Result<Option<NotificationKind>, AppError> {
    let entry = entries.iter().find(|e| sends_email(e));
    // The reminder of the current series went out at its due time or later.
    let reminder = account
        .reminders
        .last_sent
        .zip(account.reminders.series_started_at)
        .and_then(|(position, started)| {
            let found = program.reminders.iter().find(|r| r.position == position)?;
            Some((
                position,
                started + Duration::days(i64::from(found.offset_days)),
            ))
        });
    if let (Some((position, sent_at)), Some(code)) = (reminder, account.code.clone()) {
        if entry.is_none_or(|e| e.at <= sent_at) {
            return Ok(Some(NotificationKind::Reminder {
                position,
                balance: account.available,
                code,
                expires_at: account.next_expiry(),
            }));
        }
    }
    let Some(entry) = entry else {
        return Ok(None);
    };
    let Some(order) = entry.order_id.clone() else {
        return Ok(None);
    };
    Ok(match entry.kind {
        EntryKind::Earn => {
            let amount = entry
                .available_delta
                .checked_add(entry.pending_delta)
                .unwrap_or(entry.pending_delta);
            // Still pending: the date it becomes spendable.
            let release_at = if entry.pending_delta.is_positive() {
                let read = ctx
                    .store
                    .read(shop, &ReadRequest::order(order.clone()))
                    .await?;
                read.order
                    .map(|o| o.value)
                    .filter(|record| !record.released && !record.cancelled)
                    .and_then(|record| record.release_at)
            } else {
                None
            };
            Some(NotificationKind::Earned {
                amount,
                order_name: order.to_string(),
                release_at,
                code: account.code.clone(),
            })
        }
        EntryKind::Release => account.code.clone().map(|code| NotificationKind::Ready {
            amount: entry.available_delta,
            balance: account.available,
            code,
        }),
        EntryKind::Clawback => {
            let taken = entry
                .available_delta
                .checked_add(entry.pending_delta)
                .unwrap_or(entry.available_delta);
            Some(NotificationKind::ClawedBack {
                amount: taken.negated(),
                order_name: order.to_string(),
                balance: account.available,
                debt: entry.debt_delta.clamp_non_negative(),
            })
        }
        _ => None,
    })
}

/// Entries whose change the customer was told of by email: an order's
/// cashback earned, released, or taken back by a return. A clawback that
/// only paid debt from new cashback (debt going down) had no email of its
/// own.
fn sends_email(entry: &LedgerEntry) -> bool {
    if entry.order_id.is_none() {
        return false;
    }
    match entry.kind {
        EntryKind::Earn => entry
            .available_delta
            .checked_add(entry.pending_delta)
            .is_ok_and(|total| total.is_positive()),
        EntryKind::Release => entry.available_delta.is_positive(),
        EntryKind::Clawback => !entry.debt_delta.is_negative(),
        _ => false,
    }
}
