//! Warnings before balance expires.
//!
//! A program whose balance expires (`expiry_days`) warns the customer by
//! email at offsets before each lot goes (`expiry_warning_hours`; 30 days,
//! 7 days and 24 hours unless set). Lots are grouped by the UTC day they
//! expire on, so balance credited on one day (and lots merged by expiry
//! day) get one warning per offset, naming the amount and the date.
//!
//! Each warning is keyed `{customer}:{expiry day}:{offset}h`: recorded with
//! the account's change, it goes out at most once whatever the retries. The
//! account remembers when warnings were last decided
//! ([`Account::expiry_warned_until`]), so the next one's time is known
//! without a list of what was sent: [`next_warning`] is filed in the expiry
//! index with the account, and [`due_warnings`] decides them when it comes.
//!
//! A warning's time is never before its lot was credited: balance credited
//! with less time left than an offset is warned at once for that offset.
//! When several offsets of one day fall due together (a run that missed
//! some), only the most urgent is sent: the customer does not get "30
//! days left" and "24 hours left" at the same moment.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::ids::CustomerId;
use crate::ledger::Account;
use crate::money::Money;

/// 30 days, 7 days, 24 hours.
pub const DEFAULT_OFFSETS_HOURS: [u32; 3] = [720, 168, 24];
/// The most offsets a program may set.
pub const MAX_OFFSETS: usize = 5;
/// The longest offset, in hours (a year).
pub const MAX_OFFSET_HOURS: u32 = 8_760;

/// One warning to send: what expires on which day, and how long before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWarning {
    /// The UTC day the balance expires on.
    pub expires_on: NaiveDate,
    /// The moment the first of it expires.
    pub expires_at: DateTime<Utc>,
    /// What expires that day (what is left of its lots).
    pub amount: Money,
    /// The offset this warning is for, in hours.
    pub offset_hours: u32,
}

impl ExpiryWarning {
    /// The warning's once-only key for `customer` (the caller adds the shop
    /// and the kind).
    pub fn key(&self, customer: &CustomerId) -> String {
        format!("{customer}:{}:{}h", self.expires_on, self.offset_hours)
    }
}

/// Checks a program's offsets, naming each bad one by its JSON path.
pub(crate) fn check_offsets(hours: &[u32], fail: &mut impl FnMut(String, &str)) {
    if hours.len() > MAX_OFFSETS {
        fail(
            "expiry_warning_hours".into(),
            &format!("at most {MAX_OFFSETS} offsets"),
        );
    }
    for (index, offset) in hours.iter().enumerate() {
        if *offset == 0 || *offset > MAX_OFFSET_HOURS {
            fail(
                format!("expiry_warning_hours[{index}]"),
                &format!("must be between 1 and {MAX_OFFSET_HOURS} hours"),
            );
        } else if hours[..index].contains(offset) {
            fail(format!("expiry_warning_hours[{index}]"), "is given twice");
        }
    }
}

/// The lots' balance by the UTC day it expires on: the first moment of
/// that day's expiry, the earliest credit, and what is left.
fn by_day(account: &Account) -> BTreeMap<NaiveDate, (DateTime<Utc>, DateTime<Utc>, Money)> {
    let mut days: BTreeMap<NaiveDate, (DateTime<Utc>, DateTime<Utc>, Money)> = BTreeMap::new();
    for lot in &account.lots {
        let Some(expires_at) = lot.expires_at else {
            continue;
        };
        let day = days.entry(expires_at.date_naive()).or_insert((
            expires_at,
            lot.credited_at,
            Money::zero(account.currency),
        ));
        day.0 = day.0.min(expires_at);
        day.1 = day.1.min(lot.credited_at);
        day.2 = day.2.checked_add(lot.remaining).unwrap_or(day.2);
    }
    days
}

/// When an offset's warning falls due for a day: `offset` before it
/// expires, never before the balance was credited; None when that is not
/// before the expiry itself.
fn warning_time(
    expires_at: DateTime<Utc>,
    credited_at: DateTime<Utc>,
    offset_hours: u32,
) -> Option<DateTime<Utc>> {
    let at = (expires_at - Duration::hours(i64::from(offset_hours))).max(credited_at);
    (at < expires_at).then_some(at)
}

/// When the account's next warning falls due, if any: the earliest
/// warning time after the last decision.
pub fn next_warning(account: &Account, offsets_hours: &[u32]) -> Option<DateTime<Utc>> {
    by_day(account)
        .values()
        .flat_map(|(expires_at, credited_at, _)| {
            offsets_hours
                .iter()
                .filter_map(|offset| warning_time(*expires_at, *credited_at, *offset))
        })
        .filter(|at| account.expiry_warned_until.is_none_or(|until| *at > until))
        .min()
}

/// The warnings due at `now` (at most one per expiry day: the most urgent
/// offset due), and the account marked as decided up to `now`. Balance
/// that has expired already (or expires at `now`) is not warned about.
pub fn due_warnings(
    account: &mut Account,
    offsets_hours: &[u32],
    now: DateTime<Utc>,
) -> Vec<ExpiryWarning> {
    let mut warnings = Vec::new();
    for (day, (expires_at, credited_at, amount)) in by_day(account) {
        if expires_at <= now || !amount.is_positive() {
            continue;
        }
        let most_urgent = offsets_hours
            .iter()
            .filter(|offset| {
                warning_time(expires_at, credited_at, **offset).is_some_and(|at| {
                    at <= now && account.expiry_warned_until.is_none_or(|until| at > until)
                })
            })
            .min();
        if let Some(offset) = most_urgent {
            warnings.push(ExpiryWarning {
                expires_on: day,
                expires_at,
                amount,
                offset_hours: *offset,
            });
        }
    }
    if account.expiry_warned_until.is_none_or(|until| until < now) {
        account.expiry_warned_until = Some(now);
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ShopId;
    use crate::ledger::Lot;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn account(lots: &[(DateTime<Utc>, DateTime<Utc>, &str)]) -> Account {
        let mut account = Account::open(
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse("ann").unwrap(),
            Currency::USD,
        );
        for (credited_at, expires_at, amount) in lots {
            account.lots.push(Lot {
                credited_at: *credited_at,
                expires_at: Some(*expires_at),
                remaining: usd(amount),
            });
            account.available = account.available.checked_add(usd(amount)).unwrap();
        }
        account
    }

    #[test]
    fn each_offset_is_warned_once_with_the_days_amount() {
        // Two lots expiring on Dec 31 (10:00 and 18:00), one on Dec 20.
        let mut ann = account(&[
            (at(1, 0), at(31, 10), "5.00"),
            (at(1, 8), at(31, 18), "2.50"),
            (at(1, 0), at(20, 0), "1.00"),
        ]);
        let offsets = [168, 24];
        // Dec 13 00:00: 7 days before Dec 20.
        assert_eq!(next_warning(&ann, &offsets), Some(at(13, 0)));
        assert!(due_warnings(&mut ann, &offsets, at(12, 23)).is_empty());
        let first = due_warnings(&mut ann, &offsets, at(13, 0));
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].amount, usd("1.00"));
        assert_eq!(first[0].offset_hours, 168);
        assert_eq!(first[0].key(&ann.customer), "ann:2026-12-20:168h");
        // Again at the same time: nothing.
        assert!(due_warnings(&mut ann, &offsets, at(13, 0)).is_empty());
        assert_eq!(next_warning(&ann, &offsets), Some(at(19, 0)));
        let day_before = due_warnings(&mut ann, &offsets, at(19, 0));
        assert_eq!(day_before[0].offset_hours, 24);
        // Dec 24 10:00: the Dec 31 lots together, timed by the first.
        assert_eq!(next_warning(&ann, &offsets), Some(at(24, 10)));
        let week = due_warnings(&mut ann, &offsets, at(24, 12));
        assert_eq!(week.len(), 1);
        assert_eq!(week[0].amount, usd("7.50"));
        assert_eq!(week[0].expires_on.to_string(), "2026-12-31");
        assert_eq!(week[0].expires_at, at(31, 10));
    }

    #[test]
    fn a_missed_run_sends_only_the_most_urgent_and_late_credit_is_warned_at_once() {
        let mut ann = account(&[(at(1, 0), at(20, 0), "1.00")]);
        let offsets = DEFAULT_OFFSETS_HOURS;
        // 30 days before Dec 20 is before the credit: warned at the credit.
        assert_eq!(next_warning(&ann, &offsets), Some(at(1, 0)));
        // Nobody ran until Dec 19 12:00: 30 and 7 days are passed over.
        let late = due_warnings(&mut ann, &offsets, at(19, 12));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].offset_hours, 24);
        assert_eq!(next_warning(&ann, &offsets), None);
        // Expired balance is not warned about.
        let mut old = account(&[(at(1, 0), at(2, 0), "1.00")]);
        assert!(due_warnings(&mut old, &offsets, at(2, 0)).is_empty());
        assert!(due_warnings(&mut old, &[], at(1, 12)).is_empty());
    }

    #[test]
    fn offsets_are_checked() {
        let mut errors = Vec::new();
        check_offsets(&[0, 24, 24, 9_000, 1, 2], &mut |field, message: &str| {
            errors.push(format!("{field}: {message}"));
        });
        assert_eq!(
            errors,
            vec![
                "expiry_warning_hours: at most 5 offsets",
                "expiry_warning_hours[0]: must be between 1 and 8760 hours",
                "expiry_warning_hours[2]: is given twice",
                "expiry_warning_hours[3]: must be between 1 and 8760 hours",
            ]
        );
    }
}
