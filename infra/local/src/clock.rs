//! The local server's clock: real time plus an offset that only moves
//! forward, so a merchant can watch a 30-day hold release in a minute.
//! Every route (webhooks, checkout validation, the customer and admin APIs)
//! reads it through the context, and the scheduled jobs run at it, so the
//! ledger's times, holds, coupon dates and the jobs' checkpoints stay
//! consistent with each other.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Default)]
pub struct VirtualClock {
    offset_seconds: AtomicI64,
}

impl VirtualClock {
    pub fn new() -> Arc<VirtualClock> {
        Arc::new(VirtualClock::default())
    }

    /// A clock that starts at `at` (in the past: the demo shop's history
    /// is played from there up to the present).
    pub fn starting_at(at: DateTime<Utc>) -> Arc<VirtualClock> {
        let clock = VirtualClock::default();
        clock
            .offset_seconds
            .store((at - Utc::now()).num_seconds(), Ordering::SeqCst);
        Arc::new(clock)
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.offset_seconds.load(Ordering::SeqCst))
    }

    /// Moves the clock to `at` if that is later than now; never backwards
    /// (the jobs' checkpoints only move forward too).
    pub fn advance_to(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Round up, so the clock lands at or just after `at`, never before.
        let wanted = ((at - Utc::now()).num_milliseconds() + 999).div_euclid(1000);
        self.offset_seconds.fetch_max(wanted, Ordering::SeqCst);
        self.now()
    }

    pub fn advance_by(&self, by: Duration) -> DateTime<Utc> {
        self.offset_seconds
            .fetch_add(by.num_seconds().max(0), Ordering::SeqCst);
        self.now()
    }
}
