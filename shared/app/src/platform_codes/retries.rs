//! The SyncRetries port: a customer a run over a shop (a backfill, a
//! reconcile) could not bring in step is queued to be reconciled again
//! within minutes ([`super::reconcile_customer`]), not at the next day's
//! reconcile. It matters most where nothing else would look sooner: a
//! shop that turned sync off after store credit, whose customers' store
//! credit stays live and unread until it is emptied.
//!
//! A request carries no amount and names nothing to send: it asks for the
//! customer's reconcile, which reads the ledger and the platform and does
//! what any reconcile does (follows store credit payments into the ledger,
//! sends the difference). One sent by someone allowed to write to the
//! queue, repeated or late costs a reconcile.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use cashback_core::ids::{CustomerId, ShopId};

/// A run step's failures are the shop's (its platform down, its
/// credentials refused) when more than this many customers failed, and
/// more than half of those it went through: none is queued then (minutes
/// later each would fail the same way, thousands of reconciles against the
/// shop's rate limit), and the step logs the shop as failing, which raises
/// an alarm; the next reconcile, or one asked for once the cause is fixed,
/// takes them all. Scattered failures in a large step are each queued.
pub const SHOP_WIDE_FAILURES: usize = 20;

/// Whether `failed` customers out of `attempted` in one run step are the
/// shop failing ([`SHOP_WIDE_FAILURES`]).
pub fn shop_wide(failed: usize, attempted: u64) -> bool {
    failed > SHOP_WIDE_FAILURES && failed as u64 * 2 > attempted
}

/// One customer to reconcile again (a queued message's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The customer's shop.
    pub shop: ShopId,
    /// Whose code (or store credit).
    pub customer: CustomerId,
}

/// Where the retries wait (SQS, with a delay, on AWS).
#[async_trait]
pub trait SyncRetries: Send + Sync {
    /// Queues each request, handed back after the queue's delay. Sends
    /// every one it can; the error counts those it could not queue.
    async fn retry_later(&self, requests: &[RetryRequest]) -> Result<(), RetryQueueError>;
}

/// The queue did not take some retries (they wait for the next reconcile).
#[derive(Debug, thiserror::Error)]
#[error("{unqueued} sync retries could not be queued: {message}")]
pub struct RetryQueueError {
    /// How many were not queued.
    pub unqueued: usize,
    /// What failed, for the logs.
    pub message: String,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_failures_that_are_most_of_a_step_are_the_shops() {
        assert!(!shop_wide(SHOP_WIDE_FAILURES, SHOP_WIDE_FAILURES as u64));
        assert!(shop_wide(SHOP_WIDE_FAILURES + 1, 30));
        assert!(
            !shop_wide(SHOP_WIDE_FAILURES + 1, 500),
            "scattered in a large step"
        );
        assert!(shop_wide(300, 500));
    }

    #[test]
    fn a_retry_reads_only_with_a_shop_and_a_customer() {
        let read: RetryRequest =
            serde_json::from_str(r#"{"shop":"demo.myshopify.com","customer":"c1"}"#)
                .expect("reads");
        assert_eq!(read.customer.as_str(), "c1");
        for bad in [
            r#"{"shop":"no shop!","customer":"c1"}"#,
            r#"{"customer":"c1"}"#,
            r#"{"shop":"demo.myshopify.com"}"#,
            r#"{"shop":"demo.myshopify.com","customer":"c1","amount":"5.00"}"#,
        ] {
            assert!(serde_json::from_str::<RetryRequest>(bad).is_err(), "{bad}");
        }
    }
}
