//! When scheduled work falls due: the times the store files due work under.
//!
//! Four kinds of work are scheduled: an order's pending cashback to
//! release, an account's next reminder email, an account's balance or
//! holds to expire, and an account's next bonus. A warning before balance
//! expires is an email like a reminder: it shares the reminder index. Each time is decided here, from the item being written
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

/// Where a due time is filed by a write made at `now`: never before `now`.
///
/// A time can be decided in the past: a refund restores balance to a series
/// that started weeks ago, an admin credits an account whose reminder
/// offsets have passed, a merchant shortens the offsets, a late webhook pays
/// an order whose pending days are over. Filed as it is, it lands in an hour
/// bucket the scheduled job has already finished with (its checkpoint passed
/// it), and nothing reads it again: the work silently never happens. Filed at
/// `now`, the next run finds it. Only the index position moves: the item
/// itself keeps its real time, and the job decides from that.
pub fn filed_at(at: DateTime<Utc>, now: Option<DateTime<Utc>>) -> DateTime<Utc> {
    match now {
        Some(now) if at < now => now,
        _ => at,
    }
}

/// When an order's pending cashback (with any referral reward hanging on
/// it) falls due, if it is still pending.
pub fn release(record: &OrderRecord) -> Option<DateTime<Utc>> {
    record.due_at()
}

/// When an order's "cashback ready" email falls due, if it was recorded
/// with the release and not sent yet (and nothing is pending any more: a
/// pending order is in the release index instead).
pub fn ready(record: &OrderRecord) -> Option<DateTime<Utc>> {
    if record.due_at().is_some() {
        return None;
    }
    record.ready_email.as_ref().map(|email| email.since)
}

/// When an account's next email of the reminder index falls due: its next
/// reminder, if its series is running, or its next warning before balance
/// expires, whichever comes first.
pub fn reminder(program: &Program, account: &Account) -> Option<DateTime<Utc>> {
    [
        next_reminder(program, account).map(|due| due.due_at),
        expiry_warning(program, account),
    ]
    .into_iter()
    .flatten()
    .min()
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

/// When an account's next warning before balance expires falls due, if
/// the program warns and the account has balance that expires and an
/// address that takes email.
pub fn expiry_warning(program: &Program, account: &Account) -> Option<DateTime<Utc>> {
    program.expiry_days?;
    account.email.as_ref()?;
    if account.reminders.unsubscribed || account.reminders.suppressed {
        return None;
    }
    crate::expiry_warnings::next_warning(account, &program.expiry_warning_hours)
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

    #[test]
    fn a_due_time_in_the_past_is_filed_at_the_writes_now() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        let past = now - chrono::Duration::days(20);
        let later = now + chrono::Duration::days(3);
        assert_eq!(filed_at(past, Some(now)), now);
        assert_eq!(filed_at(later, Some(now)), later);
        assert_eq!(filed_at(now, Some(now)), now);
        assert_eq!(
            filed_at(past, None),
            past,
            "a write that names no time files as is"
        );
    }
}
