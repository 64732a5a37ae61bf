//! The SyncRetries port: what a run over a shop (a backfill, a reconcile)
//! could not bring in step is queued to be tried again within minutes,
//! not at the next day's reconcile. It matters most where nothing else
//! would look sooner: a shop that turned sync off after store credit,
//! whose customers' store credit stays live and unread until it is
//! emptied.
//!
//! A request carries no amount and names nothing to send: it asks for a
//! reconcile (of one customer, [`super::reconcile_customer`], or of the
//! whole shop), which reads the ledger and the platform and does what any
//! reconcile does (follows store credit payments into the ledger, sends
//! the difference). A forged, repeated or late one costs a reconcile.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use cashback_core::ids::{CustomerId, ShopId};

/// Above this many failed customers in one run step, the failure is the
/// shop's (its platform down, its credentials refused): one retry of the
/// whole shop is queued instead of one per customer, so that an outage
/// does not come back as thousands of reconciles against the shop's rate
/// limit.
pub const SHOP_WIDE_FAILURES: usize = 20;

/// What to reconcile again (a queued message's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The shop.
    pub shop: ShopId,
    /// One customer; None: the whole shop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerId>,
}

impl RetryRequest {
    /// The retries a run step's failed customers come to: one per
    /// customer, or one for the shop past [`SHOP_WIDE_FAILURES`].
    pub fn for_failures(shop: &ShopId, customers: &[CustomerId]) -> Vec<RetryRequest> {
        if customers.len() > SHOP_WIDE_FAILURES {
            return vec![RetryRequest {
                shop: shop.clone(),
                customer: None,
            }];
        }
        customers
            .iter()
            .map(|customer| RetryRequest {
                shop: shop.clone(),
                customer: Some(customer.clone()),
            })
            .collect()
    }
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

    fn customers(n: usize) -> Vec<CustomerId> {
        (0..n)
            .map(|i| CustomerId::parse(&format!("c{i}")).expect("an id"))
            .collect()
    }

    #[test]
    fn a_few_failures_are_retried_one_by_one_and_many_as_the_whole_shop() {
        let shop = ShopId::parse("demo.myshopify.com").expect("a shop");
        let few = RetryRequest::for_failures(&shop, &customers(SHOP_WIDE_FAILURES));
        assert_eq!(few.len(), SHOP_WIDE_FAILURES);
        assert!(few.iter().all(|r| r.customer.is_some()));
        let many = RetryRequest::for_failures(&shop, &customers(SHOP_WIDE_FAILURES + 1));
        assert_eq!(
            many,
            vec![RetryRequest {
                shop: shop.clone(),
                customer: None
            }]
        );
        assert!(RetryRequest::for_failures(&shop, &[]).is_empty());
    }

    #[test]
    fn a_shop_retry_reads_without_a_customer_and_a_bad_one_does_not_read() {
        let shop: RetryRequest =
            serde_json::from_str(r#"{"shop":"demo.myshopify.com"}"#).expect("reads");
        assert_eq!(shop.customer, None);
        assert_eq!(
            serde_json::to_string(&shop).expect("writes"),
            r#"{"shop":"demo.myshopify.com"}"#
        );
        for bad in [
            r#"{"shop":"no shop!"}"#,
            r#"{"customer":"c1"}"#,
            // A misspelt customer must not read as a retry of the whole shop.
            r#"{"shop":"demo.myshopify.com","customr":"c1"}"#,
        ] {
            assert!(serde_json::from_str::<RetryRequest>(bad).is_err(), "{bad}");
        }
    }
}
