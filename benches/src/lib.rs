//! What the benchmarks share: the worlds they run in, the requests they
//! send, the floors they are compared with, and the arithmetic that turns
//! samples and DynamoDB items into figures.
//!
//! The figures themselves, the machine they ran on and the command that
//! reproduces each are in BENCHMARKS.md at the top of the repository. Two
//! kinds of measurement live here: criterion benches (`benches/`) for
//! in-process costs, and examples plus `run.sh` for what needs a whole
//! process or moto. Nothing here asserts a timing: timings are figures.
//!
//! # Layout
//! - [`webhook`]: the order webhook on the in-memory store, Shopify
//!   deliveries of ten lines, and the floor (parse + one HMAC).
//! - [`checkout`]: checkout validation carts of any size.
//! - [`stats`]: medians, percentiles and spreads of samples.
//! - [`capacity`]: DynamoDB item sizes and capacity units, from the wire.
//! - [`contention`]: DynamoDB's latency and transaction conflicts, modelled
//!   over any store (what moto cannot show).

pub mod capacity;
pub mod checkout;
pub mod contention;
pub mod stats;
pub mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::CodeSource;
use cashback_core::ids::GENERATED_CODE_LENGTH;

/// Accepts every email and delivers none: the benches measure the engine,
/// not a mail provider.
#[derive(Default)]
pub struct DiscardNotifier(AtomicU64);

#[async_trait::async_trait]
impl Notifier for DiscardNotifier {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Sent {
            message_id: n.to_string(),
        })
    }
}

/// A different customer code every time (new customers need one, and a
/// repeated code would be refused as taken).
#[derive(Default)]
pub struct UniqueCodes(AtomicU64);

impl CodeSource for UniqueCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        let mut bytes = [0u8; GENERATED_CODE_LENGTH];
        for byte in bytes.iter_mut().rev() {
            *byte = (n % 32) as u8;
            n /= 32;
        }
        bytes
    }
}

/// Resident memory now and at its peak, in MiB (Linux /proc; 0 elsewhere).
pub fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak so a run's own peak can be read (Linux 4.0+).
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
