//! Time left in an invocation, from the runtime's deadline.
//!
//! Lambda's Runtime API sends `Lambda-Runtime-Deadline-Ms` as epoch
//! milliseconds. `cargo lambda watch` (1.9) sends the function timeout as a
//! plain duration in milliseconds instead (`600000`), which read as an epoch
//! time is in 1970: a scheduled job would stop before it started. A value
//! that small cannot be a real deadline, so it is taken as a duration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// No real deadline falls before this (2001-09-09 in epoch milliseconds).
const SMALLEST_EPOCH_DEADLINE_MS: u64 = 1_000_000_000_000;

/// Time left until the deadline, less `margin`; zero if already past.
pub fn time_left(deadline_ms: u64, now: SystemTime, margin: Duration) -> Duration {
    let left = if deadline_ms < SMALLEST_EPOCH_DEADLINE_MS {
        Duration::from_millis(deadline_ms)
    } else {
        (UNIX_EPOCH + Duration::from_millis(deadline_ms))
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    };
    left.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_leaves_the_time_until_it_less_the_margin() {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_433_904_000);
        let left = time_left(1_795_433_904_000 + 300_000, now, Duration::from_secs(15));
        assert_eq!(left, Duration::from_secs(285));
    }

    #[test]
    fn a_deadline_in_the_past_leaves_nothing() {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_433_904_000);
        assert_eq!(
            time_left(1_795_433_000_000, now, Duration::ZERO),
            Duration::ZERO
        );
    }

    #[test]
    fn cargo_lambda_watch_sends_a_duration_which_is_taken_as_one() {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_433_904_000);
        assert_eq!(
            time_left(600_000, now, Duration::from_secs(15)),
            Duration::from_secs(585)
        );
    }
}
