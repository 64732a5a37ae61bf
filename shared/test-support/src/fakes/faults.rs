//! Faults a fake platform injects, switchable per test: a fixed queue of
//! next faults (deterministic tests) and rates drawn from a seeded random
//! source (chaos tests, reproducible by seed).

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused by the rate limit (Shopify THROTTLED, WooCommerce 429), not
    /// applied.
    Throttle,
    /// A 5xx before anything is applied.
    ServerError,
    /// Applied, but the answer comes only after the fake's delay: the
    /// caller's deadline passes first.
    Timeout,
    /// Applied, then answered 503: the caller believes it failed and sends
    /// it again (a duplicate).
    Duplicate,
}

/// Rates (0 to 1) of each fault for requests with nothing queued.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub throttle: f64,
    pub server_error: f64,
    pub timeout: f64,
    pub duplicate: f64,
    /// How long a [`Fault::Timeout`] answer waits.
    pub delay: Duration,
    /// Longest random pause before any answer: concurrent calls then reach
    /// the fake out of order.
    pub jitter: Duration,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            throttle: 0.0,
            server_error: 0.0,
            timeout: 0.0,
            duplicate: 0.0,
            delay: Duration::from_secs(2),
            jitter: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
pub struct Faults {
    queue: VecDeque<Option<Fault>>,
    rates: FaultRates,
    rng: StdRng,
    /// Faults injected so far, by kind.
    pub injected: Vec<Fault>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            queue: VecDeque::new(),
            rates: FaultRates::default(),
            rng: StdRng::seed_from_u64(7),
            injected: Vec::new(),
        }
    }
}

impl Faults {
    pub fn push(&mut self, fault: Fault) {
        self.queue.push_back(Some(fault));
    }

    /// The next request goes through untouched (to aim a queued fault at a
    /// later one).
    pub fn pass(&mut self) {
        self.queue.push_back(None);
    }

    pub fn set_rates(&mut self, rates: FaultRates, seed: u64) {
        self.rates = rates;
        self.rng = StdRng::seed_from_u64(seed);
    }

    pub fn delay(&self) -> Duration {
        self.rates.delay
    }

    /// The fault for the next request, if any, and a pause before answering.
    pub fn draw(&mut self) -> (Option<Fault>, Duration) {
        let jitter = if self.rates.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.rates.jitter.mul_f64(self.rng.random::<f64>())
        };
        let queued = self.queue.pop_front();
        let fault = queued.unwrap_or_else(|| {
            let roll: f64 = self.rng.random();
            let r = self.rates;
            let mut edge = r.throttle;
            if roll < edge {
                return Some(Fault::Throttle);
            }
            edge += r.server_error;
            if roll < edge {
                return Some(Fault::ServerError);
            }
            edge += r.timeout;
            if roll < edge {
                return Some(Fault::Timeout);
            }
            edge += r.duplicate;
            (roll < edge).then_some(Fault::Duplicate)
        });
        if let Some(fault) = fault {
            self.injected.push(fault);
        }
        (fault, jitter)
    }
}
