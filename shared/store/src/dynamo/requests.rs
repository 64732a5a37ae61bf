//! Counting round trips: an SDK interceptor that sees every HTTP attempt.
//!
//! The budgets in DESIGN.md section 7 are counted in requests, so the count
//! comes from the SDK itself rather than from our own bookkeeping: a retry
//! the SDK makes on its own (throttling, a dropped connection) is a request
//! too and shows up here. Operations are told apart by the operation name
//! the SDK puts in the config bag.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use cashback_app::store::RequestCounts;

#[derive(Debug, Default)]
struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
    queries: AtomicU64,
    other: AtomicU64,
}

/// Shared by the interceptor inside the client and the store that reports.
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestCounter {
    counts: Arc<Counts>,
}

impl RequestCounter {
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            reads: self.counts.reads.load(Ordering::Relaxed),
            writes: self.counts.writes.load(Ordering::Relaxed),
            queries: self.counts.queries.load(Ordering::Relaxed),
            other: self.counts.other.load(Ordering::Relaxed),
        }
    }

    fn record(&self, operation: &str) {
        let counter = match operation {
            "BatchGetItem" => &self.counts.reads,
            "TransactWriteItems" => &self.counts.writes,
            "Query" => &self.counts.queries,
            _ => &self.counts.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "CashbackRequestCounter"
    }

    /// Called once per attempt, just before the request goes on the wire.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name()).unwrap_or("");
        self.record(operation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_counted_under_their_budget_heading() {
        let counter = RequestCounter::default();
        for operation in [
            "BatchGetItem",
            "TransactWriteItems",
            "TransactWriteItems",
            "Query",
            "GetItem",
        ] {
            counter.record(operation);
        }
        assert_eq!(
            counter.snapshot(),
            RequestCounts {
                reads: 1,
                writes: 2,
                queries: 1,
                other: 1
            }
        );
    }
}
