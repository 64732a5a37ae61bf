//! The customer's email preferences as they set them from their cashback
//! page: stop or restart reminder emails.
//!
//! Setting the flag also sets when the next reminder is due
//! ([`next_reminder`](cashback_core::reminders::next_reminder): none while
//! unsubscribed), in one transaction on the version read, retried on a
//! conflict. Setting the value already there
//! writes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use cashback_core::ids::{CustomerId, ShopId};

use crate::context::Context;
use crate::error::AppError;
use crate::retry::Attempts;
use crate::store::{AccountWrite, ReadRequest, WriteOutcome, WriteSet};

/// What became of a preference change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceOutcome {
    /// The preference was written.
    Changed,
    /// Already so: nothing was written.
    Unchanged,
    /// No account yet (nothing earned): there is nothing to remind of.
    UnknownCustomer,
}

/// Turns reminder emails off (`unsubscribed = true`) or back on.
pub async fn set_reminders(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    unsubscribed: bool,
    now: DateTime<Utc>,
) -> Result<PreferenceOutcome, AppError> {
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
    while let Some(attempt) = attempts.start() {
        let read = ctx
            .store
            .read(shop, &ReadRequest::account(customer))
            .await?;
        let Some(found) = read.accounts.get(customer).cloned() else {
            return Ok(PreferenceOutcome::UnknownCustomer);
        };
        if found.value.reminders.unsubscribed == unsubscribed {
            return Ok(PreferenceOutcome::Unchanged);
        }
        let mut account = found.value;
        account.reminders.unsubscribed = unsubscribed;
        let writes = WriteSet {
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::new(program, account, found.version))
        };
        match ctx.store.write(shop, writes).await {
            Ok(WriteOutcome::Committed) => {
                info!(shop = %shop, attempt, unsubscribed, "customer set reminder emails");
                return Ok(PreferenceOutcome::Changed);
            }
            Ok(WriteOutcome::Duplicate { .. }) => {
                attempts.lost("unguarded write reported a duplicate").await;
            }
            Err(error) if error.is_retryable() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
