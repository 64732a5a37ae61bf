//! The limit on guessing codes: unknown codes counted per shop and source in
//! a store counter, and the sources this container saw over the limit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use cashback_core::ids::ShopId;

use crate::context::Context;
use crate::error::AppError;

use super::{GUESS_LIMIT, GUESS_WINDOW_SECONDS};

/// The counter key for a shop and source: hashed, so no IP is stored.
pub(super) fn caller_key(shop: &ShopId, source: &str) -> String {
    let digest = Sha256::digest(format!("{shop}\n{source}").as_bytes());
    hex::encode(&digest[..16])
}

/// The store counter of a caller's unknown codes in the window of `now`.
/// The window is in the key, so a new window starts a new count with no
/// reset to race; the counter outlives its window a little for the TTL.
pub(super) fn guess_counter(caller_key: &str, now: DateTime<Utc>) -> String {
    let window = now.timestamp().div_euclid(GUESS_WINDOW_SECONDS);
    format!("guess#{caller_key}#{window}")
}

pub(super) fn window_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let window = now.timestamp().div_euclid(GUESS_WINDOW_SECONDS);
    DateTime::<Utc>::from_timestamp((window + 1) * GUESS_WINDOW_SECONDS, 0)
        .unwrap_or(now + Duration::seconds(GUESS_WINDOW_SECONDS))
}

/// Counts one unknown code for the caller; 429 past the limit.
pub(super) async fn count_unknown(
    ctx: &Context,
    caller_key: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let end = window_end(now);
    let count = ctx
        .store
        .increment_counter(
            &guess_counter(caller_key, now),
            end + Duration::seconds(GUESS_WINDOW_SECONDS),
        )
        .await?;
    if count > GUESS_LIMIT {
        ctx.guesses.block_until(caller_key, end, now);
        return Err(AppError::RateLimited {
            retry_after_seconds: retry_after(end, now),
        });
    }
    Ok(())
}

pub(super) fn retry_after(end: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((end - now).num_seconds()).unwrap_or(1).max(1)
}

/// Sources over the limit as this warm container saw them, until their
/// window ends: refused without a read. Kept in the [`Context`]; another
/// container learns the same from the counter in its first read.
#[derive(Default)]
pub struct GuessBlocks(Mutex<BTreeMap<String, DateTime<Utc>>>);

impl GuessBlocks {
    pub(super) fn blocked_for(&self, caller_key: &str, now: DateTime<Utc>) -> Option<u64> {
        let blocked = self.0.lock().ok()?;
        let until = *blocked.get(caller_key)?;
        (until > now).then(|| retry_after(until, now))
    }

    pub(super) fn block_until(&self, caller_key: &str, until: DateTime<Utc>, now: DateTime<Utc>) {
        if let Ok(mut blocked) = self.0.lock() {
            // Forget finished windows so the map stays as small as the attack.
            blocked.retain(|_, end| *end > now);
            blocked.insert(caller_key.to_string(), until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_retry_after_is_what_is_left_of_the_window() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 2, 0).unwrap();
        let end = window_end(now);
        assert_eq!(end, Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap());
        assert_eq!(retry_after(end, now), 180);
    }
}
