//! Pacing for Shopify's cost-based leaky bucket (GraphQL Admin API): every
//! call's requested cost is taken from the bucket before it is sent, the
//! bucket refills at the restore rate, and each answer's
//! `extensions.cost.throttleStatus` corrects the estimate. So a run keeps
//! many calls in flight without passing the shop's budget; a THROTTLED
//! answer (another container sharing the bucket) says how long to wait.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `extensions.cost.throttleStatus` of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

impl ThrottleStatus {
    /// Reads it from a GraphQL answer's `extensions`, if present.
    pub fn from_answer(answer: &serde_json::Value) -> Option<(ThrottleStatus, Option<f64>)> {
        let cost = answer.get("extensions")?.get("cost")?;
        let status = cost.get("throttleStatus")?;
        let number = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        let parsed = ThrottleStatus {
            maximum_available: number(status, "maximumAvailable")?,
            currently_available: number(status, "currentlyAvailable")?,
            restore_rate: number(status, "restoreRate")?,
        };
        let sane = parsed.maximum_available > 0.0
            && parsed.restore_rate > 0.0
            && parsed.currently_available.is_finite();
        sane.then(|| (parsed, number(cost, "requestedQueryCost")))
    }

    /// How long until `cost` points are available.
    pub fn wait_for(&self, cost: f64) -> Duration {
        let missing = (cost - self.currently_available).max(0.0);
        Duration::from_secs_f64((missing / self.restore_rate).min(60.0))
    }
}

#[derive(Debug)]
struct State {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    at: Instant,
    observed: bool,
}

impl State {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.at = now;
    }
}

/// One shop's bucket as this container sees it.
#[derive(Debug)]
pub struct CostBucket {
    state: Mutex<State>,
}

impl CostBucket {
    /// A bucket assumed to hold `maximum` points refilled at `restore_rate`
    /// per second until the first answer tells the real figures.
    pub fn new(maximum: f64, restore_rate: f64) -> CostBucket {
        CostBucket {
            state: Mutex::new(State {
                maximum,
                available: maximum,
                restore_rate: restore_rate.max(0.001),
                at: Instant::now(),
                observed: false,
            }),
        }
    }

    /// Waits until `cost` points are available and takes them.
    pub async fn acquire(&self, cost: f64) {
        loop {
            let wait = {
                let Ok(mut state) = self.state.lock() else {
                    return;
                };
                state.refill(Instant::now());
                let cost = cost.min(state.maximum);
                if state.available >= cost {
                    state.available -= cost;
                    return;
                }
                Duration::from_secs_f64((cost - state.available) / state.restore_rate)
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Waits until `cost` points are available and takes them, unless they
    /// cannot be had before `deadline`: then takes nothing and says false.
    pub async fn acquire_by(&self, cost: f64, deadline: tokio::time::Instant) -> bool {
        loop {
            let wait = {
                let Ok(mut state) = self.state.lock() else {
                    return false;
                };
                state.refill(Instant::now());
                let cost = cost.min(state.maximum);
                if state.available >= cost {
                    state.available -= cost;
                    return true;
                }
                Duration::from_secs_f64((cost - state.available) / state.restore_rate)
            };
            let wait = wait.max(Duration::from_millis(1));
            if tokio::time::Instant::now() + wait > deadline {
                return false;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Corrects the estimate from an answer: never above what the platform
    /// reported (calls of other containers count too), and the platform's
    /// own maximum and restore rate from then on.
    pub fn observe(&self, status: ThrottleStatus) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.refill(Instant::now());
        state.maximum = status.maximum_available;
        state.restore_rate = status.restore_rate;
        state.available = if state.observed {
            state.available.min(status.currently_available)
        } else {
            status.currently_available
        };
        state.observed = true;
    }

    /// Points this container believes are available now.
    pub fn available(&self) -> f64 {
        self.state
            .lock()
            .map(|mut s| {
                s.refill(Instant::now());
                s.available
            })
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_the_answers_extensions() {
        let answer = serde_json::json!({"extensions": {"cost": {
            "requestedQueryCost": 10, "actualQueryCost": 10,
            "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1990, "restoreRate": 100.0}}}});
        let (status, requested) = ThrottleStatus::from_answer(&answer).unwrap();
        assert_eq!(status.currently_available, 1990.0);
        assert_eq!(requested, Some(10.0));
        let status = ThrottleStatus {
            currently_available: 5.0,
            ..status
        };
        assert_eq!(status.wait_for(10.0), Duration::from_millis(50));
        assert!(ThrottleStatus::from_answer(&serde_json::json!({})).is_none());
    }

    #[tokio::test]
    async fn a_call_waits_until_the_bucket_holds_its_cost() {
        let bucket = CostBucket::new(20.0, 100.0);
        let started = Instant::now();
        bucket.acquire(10.0).await;
        bucket.acquire(10.0).await;
        bucket.acquire(10.0).await;
        assert!(started.elapsed() >= Duration::from_millis(90));
        bucket.observe(ThrottleStatus {
            maximum_available: 20.0,
            currently_available: 0.0,
            restore_rate: 100.0,
        });
        assert!(bucket.available() < 5.0);
    }

    #[tokio::test]
    async fn a_call_that_cannot_have_its_cost_by_its_deadline_takes_nothing() {
        let bucket = CostBucket::new(20.0, 10.0);
        bucket.acquire(20.0).await;
        let soon = tokio::time::Instant::now() + Duration::from_millis(100);
        assert!(!bucket.acquire_by(10.0, soon).await);
        let later = tokio::time::Instant::now() + Duration::from_secs(3);
        assert!(bucket.acquire_by(10.0, later).await);
    }
}
