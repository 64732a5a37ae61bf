//! A customer's birthday, as the customer, the merchant or the shop's
//! platform gives it: stored on the account as month and day only, with
//! who set it, and the account's next bonus rescheduled with it
//! ([`BonusState::set_birthday`](cashback_core::bonuses::BonusState::set_birthday)).
//! The bonus job that pays birthdays and the other bonuses is
//! [`crate::jobs::bonuses`].
//!
//! One read, one transaction on the version read, retried on a conflict;
//! setting the birthday already stored writes nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use cashback_core::bonuses::{Birthday, BirthdayRefused, BirthdaySource};
use cashback_core::ids::{CustomerId, ShopId};

use crate::context::Context;
use crate::error::AppError;
use crate::retry::Attempts;
use crate::store::{AccountWrite, ReadRequest, WriteOutcome, WriteSet};

/// What became of a birthday given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthdayOutcome {
    /// Stored.
    Changed,
    /// Already so, or a platform's value where a person set one: nothing
    /// was written.
    Unchanged,
    /// No account yet: nothing was written.
    UnknownCustomer,
}

/// Stores `birthday` on the customer's account as `source` gives it. The
/// customer's second entry, and their first before they have an earning
/// order, are refused ([`AppError::Conflict`]): they set it once, the shop
/// may correct it.
pub async fn set_birthday(
    ctx: &Context,
    shop: &ShopId,
    customer: &CustomerId,
    birthday: Birthday,
    source: BirthdaySource,
    now: DateTime<Utc>,
) -> Result<BirthdayOutcome, AppError> {
    let shop_program = ctx.shop_program(shop, now).await?;
    let program = &shop_program.program;
    let mut attempts = Attempts::new(ctx.config.max_attempts);
    while let Some(attempt) = attempts.start() {
        let read = ctx
            .store
            .read(shop, &ReadRequest::account(customer))
            .await?;
        let Some(found) = read.accounts.get(customer).cloned() else {
            return Ok(BirthdayOutcome::UnknownCustomer);
        };
        let mut account = found.value;
        match account.set_birthday(birthday, source, &program.bonuses, now) {
            Ok(true) => {}
            Ok(false) => return Ok(BirthdayOutcome::Unchanged),
            Err(refused @ (BirthdayRefused::AlreadySet | BirthdayRefused::NoEarningOrder)) => {
                return Err(AppError::Conflict(refused.to_string()))
            }
        }
        let writes = WriteSet {
            accounts_read: read.accounts_read(),
            ..WriteSet::account(AccountWrite::new(program, account, found.version))
        };
        match ctx.store.write(shop, writes).await {
            Ok(WriteOutcome::Committed) => {
                // The date itself is personal: never logged.
                info!(shop = %shop, customer = %customer, attempt, source = ?source, "birthday set");
                return Ok(BirthdayOutcome::Changed);
            }
            Ok(WriteOutcome::Duplicate { .. }) => {
                attempts.lost("unguarded write reported a duplicate").await;
            }
            Err(error) if error.is_conflict() => attempts.lost(error).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(attempts.gave_up())
}
