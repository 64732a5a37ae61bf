//! The reminder series: emails that bring a customer back while balance waits.
//!
//! A series starts when cashback becomes available (a release, or an
//! immediate earn) and restarts at position 0 with every new one. Position k
//! is due its offset in days after the series started; disabled positions are
//! skipped and the others keep their offsets. The series stops when the
//! available balance is zero, when the customer unsubscribed, or when the
//! address bounced or is suppressed. A position is sent at most once per
//! series: if a run comes late and several positions are due, only the latest
//! is sent, so a customer never gets a burst of reminders.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::Account;
use crate::program::Program;

/// Where an account's reminder series stands, kept on the account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReminderState {
    /// When the current series started (cashback became available).
    #[serde(default)]
    pub series_started_at: Option<DateTime<Utc>>,
    /// The last position sent in the current series.
    #[serde(default)]
    pub last_sent: Option<u8>,
    /// The customer turned reminders off (the email's unsubscribe link or
    /// their preferences); no reminder is sent while it is set.
    #[serde(default)]
    pub unsubscribed: bool,
    /// SES reported the address bounced or suppressed.
    #[serde(default)]
    pub suppressed: bool,
}

impl ReminderState {
    pub(crate) fn restart(&mut self, at: DateTime<Utc>) {
        self.series_started_at = Some(at);
        self.last_sent = None;
    }
}

/// A reminder position due for sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueReminder {
    /// The program's reminder position (0 to 6) whose texts to send.
    pub position: u8,
    /// When it falls due: the series' start plus the position's offset.
    pub due_at: DateTime<Utc>,
    /// Identifies the series, so a send recorded against an older series
    /// is refused.
    pub series_started_at: DateTime<Utc>,
}

/// Why [`mark_sent`] refused to record a send: the reminder must not go out
/// (or already went out), so a concurrent or repeated run sends nothing twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReminderError {
    /// That position, or a later one, was already sent in this series; holds
    /// the position refused.
    #[error("position {0} was already sent in this series")]
    AlreadySent(u8),
    /// New cashback became available and restarted the series after the
    /// reminder was chosen: it belongs to a series that no longer runs.
    #[error("the series restarted since this reminder was due")]
    StaleSeries,
}

fn is_active(account: &Account) -> Option<DateTime<Utc>> {
    let state = &account.reminders;
    if state.unsubscribed || state.suppressed || !account.available.is_positive() {
        return None;
    }
    state.series_started_at
}

fn unsent_positions<'a>(
    program: &'a Program,
    account: &'a Account,
) -> impl Iterator<Item = (u8, u32)> + 'a {
    let last = account.reminders.last_sent;
    let mut positions: Vec<(u8, u32)> = program
        .reminders
        .iter()
        .filter(|r| r.enabled && last.is_none_or(|sent| r.position > sent))
        .map(|r| (r.position, r.offset_days))
        .collect();
    positions.sort();
    positions.into_iter()
}

/// When the next reminder falls due, if the series is running.
pub fn next_reminder(program: &Program, account: &Account) -> Option<DueReminder> {
    let started = is_active(account)?;
    unsent_positions(program, account)
        .next()
        .map(|(position, offset)| DueReminder {
            position,
            due_at: started + Duration::days(i64::from(offset)),
            series_started_at: started,
        })
}

/// The reminder to send now: the latest unsent position already due.
pub fn due_reminder(
    program: &Program,
    account: &Account,
    now: DateTime<Utc>,
) -> Option<DueReminder> {
    let started = is_active(account)?;
    unsent_positions(program, account)
        .map(|(position, offset)| DueReminder {
            position,
            due_at: started + Duration::days(i64::from(offset)),
            series_started_at: started,
        })
        .take_while(|due| due.due_at <= now)
        .last()
}

/// Records that `due` was sent. Refused if that position (or a later one)
/// was already sent, or the series restarted meanwhile.
pub fn mark_sent(account: &mut Account, due: &DueReminder) -> Result<(), ReminderError> {
    let state = &mut account.reminders;
    if state.series_started_at != Some(due.series_started_at) {
        return Err(ReminderError::StaleSeries);
    }
    if state.last_sent.is_some_and(|sent| sent >= due.position) {
        return Err(ReminderError::AlreadySent(due.position));
    }
    state.last_sent = Some(due.position);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CustomerId, ShopId};
    use crate::money::{Currency, Money};
    use crate::program::ReminderPosition;
    use chrono::TimeZone;

    fn program() -> Program {
        let mut program = Program::new(Currency::USD);
        program.reminders = [(0, true, 0), (1, true, 3), (2, false, 7), (3, true, 14)]
            .into_iter()
            .map(|(position, enabled, offset_days)| ReminderPosition {
                position,
                enabled,
                offset_days,
                subject: format!("Reminder {position}"),
                preview_text: String::new(),
            })
            .collect();
        program
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn account_with_balance() -> Account {
        let mut account = Account::open(
            ShopId::parse("s").unwrap(),
            CustomerId::parse("c").unwrap(),
            Currency::USD,
        );
        account.available = Money::parse("10.00", Currency::USD).unwrap();
        account.reminders.restart(start());
        account
    }

    #[test]
    fn positions_fall_due_at_their_offsets_skipping_disabled_ones() {
        let program = program();
        let mut account = account_with_balance();
        let mut sent = Vec::new();
        for day in 0..30 {
            let now = start() + Duration::days(day);
            if let Some(due) = due_reminder(&program, &account, now) {
                mark_sent(&mut account, &due).unwrap();
                sent.push((due.position, day));
            }
        }
        assert_eq!(sent, [(0, 0), (1, 3), (3, 14)]);
        assert_eq!(next_reminder(&program, &account), None);
    }

    #[test]
    fn a_late_run_sends_only_the_latest_due_position() {
        let program = program();
        let account = account_with_balance();
        let due = due_reminder(&program, &account, start() + Duration::days(20)).unwrap();
        assert_eq!(due.position, 3);
    }

    #[test]
    fn a_position_is_sent_at_most_once_per_series() {
        let program = program();
        let mut account = account_with_balance();
        let due = due_reminder(&program, &account, start()).unwrap();
        mark_sent(&mut account, &due).unwrap();
        assert_eq!(
            mark_sent(&mut account, &due),
            Err(ReminderError::AlreadySent(0))
        );
        account.reminders.restart(start() + Duration::days(1));
        assert_eq!(
            mark_sent(&mut account, &due),
            Err(ReminderError::StaleSeries)
        );
        let again = due_reminder(&program, &account, start() + Duration::days(1)).unwrap();
        assert_eq!(again.position, 0);
    }

    #[test]
    fn the_series_stops_at_zero_balance_and_on_unsubscribe_or_bounce() {
        let program = program();
        let mut account = account_with_balance();
        account.available = Money::zero(Currency::USD);
        assert_eq!(next_reminder(&program, &account), None);
        let mut account = account_with_balance();
        account.reminders.unsubscribed = true;
        assert_eq!(due_reminder(&program, &account, start()), None);
        let mut account = account_with_balance();
        account.reminders.suppressed = true;
        assert_eq!(next_reminder(&program, &account), None);
    }
}
