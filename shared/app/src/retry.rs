//! The retry of a read-decide-write: read, let the core decide, write on
//! the version read; when another writer got there first (a conflict) or
//! DynamoDB asked us to slow down (a throttle), pause a random while and do
//! all three again on fresh data, up to a limit and within a time budget.
//!
//! Every use case that writes an account or an order loops this way. The
//! loop itself stays in the use case (what counts as losing a race differs:
//! a version conflict, a code taken, a coupon's last use gone), and
//! `Attempts` keeps what they share: the count, the budget, the pause
//! after a loss, the last reason, and the error when every attempt lost or
//! time ran out ([`AppError::Contended`]).
//!
//! ```text
//! let mut attempts = Attempts::new(ctx.config.max_attempts).within(ctx.config.retry_budget);
//! while let Some(attempt) = attempts.start() {
//!     let read = ctx.store.read(shop, &ReadRequest::account(customer)).await?;
//!     // ... decide ...
//!     match ctx.store.write(shop, writes).await {
//!         Ok(_) => return Ok(done),
//!         Err(error) if error.is_retryable() => attempts.lost(error).await,
//!         Err(error) => return Err(error.into()),
//!     }
//! }
//! Err(attempts.gave_up())
//! ```
//!
//! The pause is "full jitter" exponential backoff: a uniformly random time
//! between zero and a ceiling that doubles with each loss, up to a cap
//! ([`Backoff::pause`]). Writers that collided draw different pauses, so
//! they do not collide again; and a burst of throttled requests spreads out
//! instead of coming back together.
//!
//! The budget bounds the whole loop, attempts and pauses together: no pause
//! runs past it, and no attempt starts unless the time left covers the
//! longest attempt seen so far (each store call is itself bounded by the
//! SDK's operation timeout, shared/edge's wiring). A platform waits 5 s for
//! a webhook's answer: [`Backoff::REQUEST`] spends at most 2 s retrying, so
//! the shop's program, the emails after the commit and the answer fit in
//! what is left. When the budget is spent the use case answers 503 and the
//! platform delivers again later (every effect is keyed, so that is safe).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::AppError;
use crate::jobs::{Clock, TokioClock};

/// How long to pause after a lost attempt, and how long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first pause; each further loss doubles it.
    pub base: Duration,
    /// No ceiling grows past this.
    pub cap: Duration,
    /// Attempts and pauses together stay within this.
    pub budget: Duration,
}

impl Backoff {
    /// A request a caller waits on (a webhook, a checkout, a customer's
    /// page): a transaction holds its items for 10-20 ms, so the first
    /// pauses are that short; 2 s in all leaves 3 s of a platform's 5 s for
    /// everything else.
    pub const REQUEST: Backoff = Backoff {
        base: Duration::from_millis(15),
        cap: Duration::from_millis(500),
        budget: Duration::from_secs(2),
    };

    /// One item of a scheduled run: nobody waits on it, the run has its own
    /// deadline, and an item that still fails is retried by the next run.
    pub const JOB: Backoff = Backoff {
        base: Duration::from_millis(15),
        cap: Duration::from_secs(1),
        budget: Duration::from_secs(10),
    };

    /// The ceiling of the pause after the `lost`-th lost attempt (from 1):
    /// `base`, doubled for each loss before it, at most `cap`.
    pub fn ceiling(&self, lost: u32) -> Duration {
        let doublings = lost.saturating_sub(1).min(30);
        self.base
            .checked_mul(1 << doublings)
            .map_or(self.cap, |ceiling| ceiling.min(self.cap))
    }

    /// The pause after the `lost`-th lost attempt: uniformly random in
    /// `0..=ceiling(lost)` (full jitter).
    pub fn pause(&self, lost: u32) -> Duration {
        jitter(self.ceiling(lost), random_u64())
    }
}

/// `random` spread uniformly over `0..=ceiling`.
fn jitter(ceiling: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

/// A random number for the jitter: std's per-process random hashing keys
/// (seeded from the operating system) over a counter. Not for secrets.
fn random_u64() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// The request paths' clock: tokio's.
static TOKIO: TokioClock = TokioClock;

/// The attempts of one read-decide-write: how many are left, how much time,
/// how to pause after a lost one, and why the last one lost.
pub(crate) struct Attempts<'a> {
    limit: u32,
    started: u32,
    last: String,
    clock: &'a dyn Clock,
    backoff: Backoff,
    /// When the attempts were made: the budget runs from here.
    began: Instant,
    /// When the attempt in progress started.
    attempt_began: Instant,
    /// The longest attempt so far: the next one must fit in the time left.
    longest: Duration,
    out_of_time: bool,
}

impl Attempts<'static> {
    /// At most `limit` attempts within [`Backoff::REQUEST`], on tokio's clock.
    pub(crate) fn new(limit: u32) -> Attempts<'static> {
        Attempts::with(limit, &TOKIO, Backoff::REQUEST)
    }
}

impl<'a> Attempts<'a> {
    /// At most `limit` attempts within [`Backoff::JOB`], on a job's clock.
    pub(crate) fn on_clock(limit: u32, clock: &'a dyn Clock) -> Attempts<'a> {
        Attempts::with(limit, clock, Backoff::JOB)
    }

    /// The same attempts within `budget` (from when they were made) instead
    /// of their backoff's ([`AppConfig::retry_budget`](crate::AppConfig)).
    pub(crate) fn within(mut self, budget: Duration) -> Attempts<'a> {
        self.backoff.budget = budget;
        self
    }

    /// At most `limit` attempts, pausing and keeping time as `backoff` says
    /// on `clock`. The budget runs from now.
    pub(crate) fn with(limit: u32, clock: &'a dyn Clock, backoff: Backoff) -> Attempts<'a> {
        let now = clock.now();
        Attempts {
            limit,
            started: 0,
            last: String::new(),
            clock,
            backoff,
            began: now,
            attempt_began: now,
            longest: Duration::ZERO,
            out_of_time: false,
        }
    }

    /// Starts the next attempt: its number (from 1), or None when every
    /// attempt was used or the time left would not cover one. The first
    /// attempt always starts.
    pub(crate) fn start(&mut self) -> Option<u32> {
        if self.started >= self.limit || self.out_of_time {
            return None;
        }
        let now = self.clock.now();
        if self.started > 0 && self.time_left(now) < self.longest {
            self.out_of_time = true;
            return None;
        }
        self.started += 1;
        self.attempt_began = now;
        Some(self.started)
    }

    /// The attempt lost (to a concurrent writer, or throttled): remembers
    /// why and pauses before the next one, unless the pause and another
    /// attempt would not fit in the time left (then the next
    /// [`start`](Self::start) gives up at once, without waiting).
    pub(crate) async fn lost(&mut self, reason: impl ToString) {
        self.last = reason.to_string();
        let now = self.clock.now();
        self.longest = self
            .longest
            .max(now.saturating_duration_since(self.attempt_began));
        if self.started >= self.limit {
            return;
        }
        let pause = self.backoff.pause(self.started);
        if pause + self.longest > self.time_left(now) {
            self.out_of_time = true;
            return;
        }
        self.clock.sleep(pause).await;
    }

    /// The error once every attempt lost or the time ran out, with the last
    /// reason.
    pub(crate) fn gave_up(self) -> AppError {
        let last = if self.out_of_time {
            format!(
                "out of time ({} ms) after {} attempts; last: {}",
                self.backoff.budget.as_millis(),
                self.started,
                self.last
            )
        } else {
            self.last
        };
        AppError::Contended {
            attempts: self.started,
            last,
        }
    }

    fn time_left(&self, now: Instant) -> Duration {
        (self.began + self.backoff.budget).saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A clock that moves only when told: by the sleeps asked of it, and by
    /// the time a test says an attempt took.
    struct FakeClock {
        now: Mutex<Instant>,
        sleeps: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock {
                now: Mutex::new(Instant::now()),
                sleeps: Mutex::new(Vec::new()),
            }
        }

        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }

        fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }

        async fn sleep(&self, duration: Duration) {
            self.sleeps.lock().unwrap().push(duration);
            self.advance(duration);
        }
    }

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

    #[tokio::test]
    async fn a_job_pauses_on_its_own_clock_between_lost_attempts() {
        let clock = FakeClock::new();
        let mut attempts = Attempts::on_clock(3, &clock);
        while attempts.start().is_some() {
            attempts.lost("conflict").await;
        }
        let slept = clock.sleeps();
        // A pause between attempts, none after the last: giving up is at once.
        assert_eq!(slept.len(), 2);
        for (lost, pause) in (1..).zip(&slept) {
            assert!(*pause <= Backoff::JOB.ceiling(lost), "{pause:?}");
        }
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

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_millis(15),
            cap: Duration::from_millis(500),
            budget: Duration::from_secs(2),
        };
        let ceilings: Vec<u128> = (1..=8).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [15, 30, 60, 120, 240, 480, 500, 500]);
        assert_eq!(backoff.ceiling(u32::MAX), backoff.cap);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let ceiling = Duration::from_millis(100);
        assert_eq!(jitter(ceiling, 0), Duration::ZERO);
        assert_eq!(jitter(ceiling, 100_000_000), ceiling);
        assert_eq!(jitter(ceiling, 100_000_001), Duration::ZERO);
        assert_eq!(jitter(Duration::ZERO, u64::MAX), Duration::ZERO);
    }

    /// Many losers of the same race: every pause within its ceiling, the
    /// pauses spread over it (full jitter: some in its lower half, not all
    /// alike), so the losers do not meet again.
    #[tokio::test]
    async fn a_conflict_is_retried_after_a_jittered_pause_within_bounds() {
        let mut first_pauses = Vec::new();
        for _ in 0..200 {
            let clock = FakeClock::new();
            let mut attempts = Attempts::with(5, &clock, Backoff::REQUEST);
            let mut tries = 0;
            while attempts.start().is_some() {
                tries += 1;
                clock.advance(Duration::from_millis(5));
                attempts.lost("transaction conflict").await;
            }
            assert_eq!(tries, 5, "the limit, well within the budget");
            let slept = clock.sleeps();
            assert_eq!(slept.len(), 4);
            for (lost, pause) in (1..).zip(&slept) {
                assert!(
                    *pause <= Backoff::REQUEST.ceiling(lost),
                    "{lost}: {pause:?}"
                );
            }
            first_pauses.push(slept[0]);
        }
        let ceiling = Backoff::REQUEST.ceiling(1);
        assert!(first_pauses.iter().any(|p| *p < ceiling / 2));
        assert!(first_pauses.iter().any(|p| *p > ceiling / 2));
        first_pauses.sort();
        first_pauses.dedup();
        assert!(first_pauses.len() > 100, "{} distinct", first_pauses.len());
    }

    /// Whatever an attempt costs, retrying never runs past the budget: no
    /// pause crosses it and no attempt starts that the time left cannot
    /// hold (attempts here take the same time each, as the SDK's operation
    /// timeout bounds a real one).
    #[tokio::test]
    async fn the_budget_is_never_exceeded() {
        for attempt_ms in [0u64, 1, 7, 40, 150, 333, 700, 1_999] {
            for _ in 0..20 {
                let clock = FakeClock::new();
                let began = clock.now();
                let mut attempts = Attempts::with(1_000, &clock, Backoff::REQUEST);
                let mut tries = 0;
                while attempts.start().is_some() {
                    tries += 1;
                    clock.advance(Duration::from_millis(attempt_ms));
                    attempts.lost("throttled").await;
                }
                let spent = clock.now() - began;
                assert!(
                    spent <= Backoff::REQUEST.budget,
                    "{attempt_ms} ms attempts: {tries} tries took {spent:?}"
                );
                assert!(tries >= 1);
                if attempt_ms <= 40 {
                    assert!(tries > 3, "{attempt_ms} ms attempts: only {tries} tries");
                }
                match attempts.gave_up() {
                    AppError::Contended { attempts, last } => {
                        assert_eq!(attempts, tries);
                        if attempt_ms > 0 {
                            assert!(last.starts_with("out of time"), "{last}");
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    /// A budget from the configuration replaces the backoff's.
    #[tokio::test]
    async fn a_configured_budget_bounds_the_retries() {
        let budget = Duration::from_millis(300);
        let clock = FakeClock::new();
        let began = clock.now();
        let mut attempts = Attempts::with(1_000, &clock, Backoff::REQUEST).within(budget);
        while attempts.start().is_some() {
            clock.advance(Duration::from_millis(20));
            attempts.lost("conflict").await;
        }
        assert!(clock.now() - began <= budget);
    }

    /// An attempt longer than the budget still runs once (there is no
    /// answer without it), and then nothing more is tried or waited for.
    #[tokio::test]
    async fn one_slow_attempt_leaves_no_time_for_another() {
        let clock = FakeClock::new();
        let mut attempts = Attempts::with(25, &clock, Backoff::REQUEST);
        assert_eq!(attempts.start(), Some(1));
        clock.advance(Backoff::REQUEST.budget + Duration::from_millis(1));
        attempts.lost("timed out").await;
        assert_eq!(attempts.start(), None);
        assert!(clock.sleeps().is_empty());
    }
}
