//! A Store wrapper that fails on purpose, at random points, in the ways a
//! real DynamoDB call can:
//! - **before**: the request never reached the table (throttled, connection
//!   refused): nothing changed, the caller sees an error;
//! - **after**: the write committed but the answer was lost (a timeout):
//!   the caller sees an error for a write that happened, the ambiguous case;
//! - reads fail the same way (throttling, timeouts).
//!
//! The random source is seeded, so a failing history can be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use cashback_app::store::{Store, StoreError};
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};

/// How often each kind of fault happens, as a probability per call.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub read_fails: f64,
    pub write_fails_before: f64,
    pub write_fails_after_commit: f64,
}

impl FaultRates {
    pub const NONE: FaultRates = FaultRates {
        read_fails: 0.0,
        write_fails_before: 0.0,
        write_fails_after_commit: 0.0,
    };
}

/// What was injected, for the figures in docs/reliability.md.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub reads_failed: AtomicU64,
    pub writes_failed_before: AtomicU64,
    pub writes_failed_after_commit: AtomicU64,
}

/// The faults, as an interceptor of every store call.
pub struct Faults {
    rates: Mutex<FaultRates>,
    rng: Mutex<StdRng>,
    pub counts: FaultCounts,
}

/// The in-memory (or any) store with [`Faults`] around it.
pub type FaultyStore = Intercepted<Faults>;

/// A store that fails at `rates`, from a seeded random source.
pub fn faulty_store(inner: Arc<dyn Store>, rates: FaultRates, seed: u64) -> FaultyStore {
    Intercepted::new(
        inner,
        Faults {
            rates: Mutex::new(rates),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: FaultCounts::default(),
        },
    )
}

impl Faults {
    pub fn set_rates(&self, rates: FaultRates) {
        if let Ok(mut current) = self.rates.lock() {
            *current = rates;
        }
    }

    fn roll(&self, pick: fn(&FaultRates) -> f64) -> bool {
        let rate = self.rates.lock().map(|r| pick(&r)).unwrap_or(0.0);
        rate > 0.0
            && self
                .rng
                .lock()
                .map(|mut rng| rng.random_bool(rate.min(1.0)))
                .unwrap_or(false)
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected fault: {what}").into())
}

impl Interceptor for Faults {
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        Box::pin(async move {
            match call {
                Call::Read | Call::Due if self.roll(|r| r.read_fails) => {
                    self.counts.reads_failed.fetch_add(1, Ordering::Relaxed);
                    Err(injected("read throttled"))
                }
                Call::Write if self.roll(|r| r.write_fails_before) => {
                    self.counts
                        .writes_failed_before
                        .fetch_add(1, Ordering::Relaxed);
                    Err(injected("write refused before reaching the table"))
                }
                Call::Write => {
                    let outcome = run.await?;
                    if self.roll(|r| r.write_fails_after_commit) {
                        self.counts
                            .writes_failed_after_commit
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(injected("write committed, answer lost"));
                    }
                    Ok(outcome)
                }
                _ => run.await,
            }
        })
    }
}
