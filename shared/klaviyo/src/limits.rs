//! Klaviyo's documented rate limits, kept locally: every endpoint has a
//! burst limit (per second) and a steady limit (per minute), per account
//! (per private key). [`Limiter`] holds each call until both windows have
//! room, counting the calls this adapter sent, and pauses the endpoint for
//! a 429's Retry-After (calls of other containers share the account's
//! budget, so a 429 can still come).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One endpoint's limits: at most `burst` calls in any `burst_window`, and
/// at most `steady` in any `steady_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub burst_window: Duration,
    pub steady: u32,
    pub steady_window: Duration,
}

impl RateLimit {
    /// Create or Update Profile (`POST /api/profile-import`): burst 75/s,
    /// steady 750/m (the spec's `x-klaviyo-ratelimit`).
    pub const PROFILE_IMPORT: RateLimit = RateLimit::per_second_and_minute(75, 750);

    /// Create Event (`POST /api/events`): burst 350/s, steady 3500/m.
    pub const CREATE_EVENT: RateLimit = RateLimit::per_second_and_minute(350, 3500);

    pub const fn per_second_and_minute(burst: u32, steady: u32) -> RateLimit {
        RateLimit {
            burst,
            burst_window: Duration::from_secs(1),
            steady,
            steady_window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// When each call in the steady window was let through, oldest first.
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// The local limiter of one endpoint.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    /// Added to each window: a call let through at `t` may reach Klaviyo a
    /// little later than one let through after it.
    margin: Duration,
    state: Mutex<State>,
}

impl Limiter {
    pub fn new(limit: RateLimit, margin: Duration) -> Limiter {
        Limiter {
            limit: RateLimit {
                burst: limit.burst.max(1),
                steady: limit.steady.max(1),
                ..limit
            },
            margin,
            state: Mutex::new(State::default()),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// How long a call must wait at `now`; zero: it is counted as sent.
    fn try_take(&self, now: Instant) -> Duration {
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        if let Some(until) = state.paused_until {
            if until > now {
                return until - now;
            }
            state.paused_until = None;
        }
        let steady_window = self.limit.steady_window + self.margin;
        while state
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= steady_window)
        {
            state.sent.pop_front();
        }
        let len = state.sent.len();
        let burst = self.limit.burst as usize;
        let steady = self.limit.steady as usize;
        let mut wait = Duration::ZERO;
        if len >= burst {
            let free_at = state.sent[len - burst] + self.limit.burst_window + self.margin;
            wait = wait.max(free_at.saturating_duration_since(now));
        }
        if len >= steady {
            let free_at = state.sent[len - steady] + steady_window;
            wait = wait.max(free_at.saturating_duration_since(now));
        }
        if wait.is_zero() {
            state.sent.push_back(now);
        }
        wait
    }

    /// Waits until a call fits both windows (and any pause is over), and
    /// counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = self.try_take(Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Holds every call until `retry_after` from now (a 429's Retry-After).
    pub fn pause_for(&self, retry_after: Duration) {
        if let Ok(mut state) = self.state.lock() {
            let until = Instant::now() + retry_after;
            state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RateLimit {
        RateLimit {
            burst: 3,
            burst_window: Duration::from_millis(100),
            steady: 5,
            steady_window: Duration::from_millis(400),
        }
    }

    #[test]
    fn both_windows_are_kept() {
        let limiter = Limiter::new(limit(), Duration::ZERO);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.try_take(start), Duration::ZERO);
        }
        // The fourth waits for the burst window.
        assert_eq!(limiter.try_take(start), Duration::from_millis(100));
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.try_take(later), Duration::ZERO);
        assert_eq!(limiter.try_take(later), Duration::ZERO);
        // Five in the steady window: the sixth waits for the first to leave.
        assert_eq!(
            limiter.try_take(start + Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        assert_eq!(
            limiter.try_take(start + Duration::from_millis(400)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_pause_holds_every_call() {
        let limiter = Limiter::new(limit(), Duration::ZERO);
        limiter.pause_for(Duration::from_secs(2));
        let wait = limiter.try_take(Instant::now());
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
    }

    #[test]
    fn the_documented_limits() {
        assert_eq!(RateLimit::PROFILE_IMPORT.burst, 75);
        assert_eq!(RateLimit::PROFILE_IMPORT.steady, 750);
        assert_eq!(RateLimit::CREATE_EVENT.burst, 350);
        assert_eq!(RateLimit::CREATE_EVENT.steady, 3500);
        assert_eq!(
            RateLimit::CREATE_EVENT.steady_window,
            Duration::from_secs(60)
        );
    }
}
