//! The retry of a read-decide-write: read, let the core decide, write on
//! the version read; when another writer got there first, pause a little
//! and do all three again on fresh data, up to a limit.
//!
//! Every use case that writes an account or an order loops this way. The
//! loop itself stays in the use case (what counts as losing a race differs:
//! a version conflict, a code taken, a coupon's last use gone), and
//! [`Attempts`] keeps what they share: the count, the pause after a loss,
//! the last reason, and the error when every attempt lost
//! ([`AppError::Contended`]).
//!
//! ```text
//! let mut attempts = Attempts::new(ctx.config.max_attempts);
//! while let Some(attempt) = attempts.start() {
//!     let read = ctx.store.read(shop, &ReadRequest::account(customer)).await?;
//!     // ... decide ...
//!     match ctx.store.write(shop, writes).await {
//!         Ok(_) => return Ok(done),
//!         Err(error) if error.is_conflict() => attempts.lost(error).await,
//!         Err(error) => return Err(error.into()),
//!     }
//! }
//! Err(attempts.gave_up())
//! ```

use std::time::Duration;

use crate::error::AppError;
use crate::jobs::Clock;

/// The attempts of one read-decide-write: how many are left, how to pause
/// after a lost one, and why the last one lost.
pub(crate) struct Attempts<'a> {
    limit: u32,
    started: u32,
    last: String,
    pause: Pause<'a>,
}

/// How to wait before trying again.
enum Pause<'a> {
    /// A short jittered sleep on tokio's clock (the request paths).
    Jittered,
    /// A short growing sleep on a job's clock, so tests can run it virtually.
    On(&'a dyn Clock),
}

impl Attempts<'static> {
    /// At most `limit` attempts, pausing on tokio's clock between them.
    pub(crate) fn new(limit: u32) -> Attempts<'static> {
        Attempts {
            limit,
            started: 0,
            last: String::new(),
            pause: Pause::Jittered,
        }
    }
}

impl<'a> Attempts<'a> {
    /// At most `limit` attempts, pausing on a job's clock between them.
    pub(crate) fn on_clock(limit: u32, clock: &'a dyn Clock) -> Attempts<'a> {
        Attempts {
            limit,
            started: 0,
            last: String::new(),
            pause: Pause::On(clock),
        }
    }

    /// Starts the next attempt: its number (from 1), or None when every
    /// attempt was used.
    pub(crate) fn start(&mut self) -> Option<u32> {
        (self.started < self.limit).then(|| {
            self.started += 1;
            self.started
        })
    }

    /// The attempt lost to a concurrent writer: remembers why and pauses
    /// before the next one.
    pub(crate) async fn lost(&mut self, reason: impl ToString) {
        self.last = reason.to_string();
        match self.pause {
            Pause::Jittered => jittered_pause(self.started).await,
            Pause::On(clock) => clock_pause(clock, self.started).await,
        }
    }

    /// The error once every attempt lost, with the last reason.
    pub(crate) fn gave_up(self) -> AppError {
        AppError::Contended {
            attempts: self.limit,
            last: self.last,
        }
    }
}

/// Small and jittered: losers of a race should not collide again.
async fn jittered_pause(attempt: u32) {
    let jitter = u64::from(std::process::id() ^ attempt.wrapping_mul(2654435761)) % 7;
    let millis = (u64::from(attempt.min(6)) * 5) + jitter;
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// Small and growing: the loser of a race should not collide again.
async fn clock_pause(clock: &dyn Clock, attempt: u32) {
    let millis = u64::from(attempt.min(8)) * 5 + u64::from(attempt.wrapping_mul(7919) % 5);
    clock.sleep(Duration::from_millis(millis)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_attempt_is_numbered_and_the_last_reason_is_kept() {
        let mut attempts = Attempts::new(3);
        let mut seen = Vec::new();
        while let Some(attempt) = attempts.start() {
            seen.push(attempt);
            attempts.lost(format!("lost {attempt}")).await;
        }
        assert_eq!(seen, [1, 2, 3]);
        match attempts.gave_up() {
            AppError::Contended { attempts, last } => {
                assert_eq!(attempts, 3);
                assert_eq!(last, "lost 3");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A clock that only records the sleeps asked of it.
    #[derive(Default)]
    struct Sleeps(std::sync::Mutex<Vec<Duration>>);

    #[async_trait::async_trait]
    impl Clock for Sleeps {
        fn now(&self) -> tokio::time::Instant {
            tokio::time::Instant::now()
        }

        async fn sleep(&self, duration: Duration) {
            self.0.lock().unwrap().push(duration);
        }
    }

    #[tokio::test]
    async fn a_job_pauses_on_its_own_clock_after_every_lost_attempt() {
        let clock = Sleeps::default();
        let mut attempts = Attempts::on_clock(3, &clock);
        while attempts.start().is_some() {
            attempts.lost("conflict").await;
        }
        let slept: Vec<u128> = clock
            .0
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_millis)
            .collect();
        // 5 ms a lost attempt, growing, with a little spread: the last
        // pause comes before giving up, as it always did.
        assert_eq!(slept, [5 + 7919 % 5, 10 + 15838 % 5, 15 + 23757 % 5]);
        assert!(matches!(
            attempts.gave_up(),
            AppError::Contended { attempts: 3, .. }
        ));
    }

    #[test]
    fn no_attempt_is_started_past_the_limit() {
        let mut attempts = Attempts::new(0);
        assert_eq!(attempts.start(), None);
    }
}
