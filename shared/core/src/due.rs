//! When scheduled work falls due: the times the store files due work under.
//!
//! Four kinds of work are scheduled: an order's pending cashback to
//! release, an account's next reminder email, an account's balance or
//! holds to expire, and an account's next bonus. Each time is decided here, from the item being written
//! (and the program, for reminders); the adapters only index what they are
//! given, by the hour [`bucket`] the time falls in.

use chrono::{DateTime, Utc};

use crate::ledger::Account;
use crate::orders::OrderRecord;
use crate::program::Program;
use crate::reminders::next_reminder;

/// The hour bucket a due time falls in: `2026-11-23T10`. Scheduled jobs
/// walk the buckets in order, so work is found in the hour it falls due.
pub fn bucket(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H").to_string()
}

/// When an order's pending cashback (with any referral reward hanging on
/// it) falls due, if it is still pending.
pub fn release(record: &OrderRecord) -> Option<DateTime<Utc>> {
    record.due_at()
}

/// When an account's next reminder falls due, if its series is running.
pub fn reminder(program: &Program, account: &Account) -> Option<DateTime<Utc>> {
    next_reminder(program, account).map(|due| due.due_at)
}

/// When an account next has something to expire: the earliest of its
/// balance lots' expiry and its holds' lapse, so a lapsed hold is freed as
/// surely as expired balance is taken.
pub fn expiry(account: &Account) -> Option<DateTime<Utc>> {
    [account.next_expiry(), account.next_hold_expiry()]
        .into_iter()
        .flatten()
        .min()
}

/// When an account's next bonus falls due (birthday, anniversary,
/// win-back, a milestone waiting), as the last decision that touched it set
/// it.
pub fn bonus(account: &Account) -> Option<DateTime<Utc>> {
    account.bonus.due_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_due_time_falls_in_the_bucket_of_its_hour() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 10, 59, 59).unwrap();
        assert_eq!(bucket(at), "2026-11-23T10");
    }
}
