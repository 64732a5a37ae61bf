//! The SyncRetries port: customers whose sync failed in a run over a shop
//! (a backfill, a reconcile) are queued to be reconciled again within
//! minutes ([`super::reconcile_customer`]), not at the next day's
//! reconcile. It matters most where nothing else would look sooner: a
//! shop that turned sync off after store credit, whose customers' store
//! credit stays live and unread until it is emptied.
//!
//! A request moves no money and names nothing to send: it only asks for
//! the customer's reconcile, which reads everything from the table and the
//! platform. A forged, repeated or late one costs a reconcile.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use cashback_core::ids::{CustomerId, ShopId};

/// One customer to reconcile again (a queued message's body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRequest {
    /// The customer's shop.
    pub shop: ShopId,
    /// Whose code (or store credit).
    pub customer: CustomerId,
}

/// Where the retries wait (SQS, with a delay, on AWS).
#[async_trait]
pub trait SyncRetries: Send + Sync {
    /// Queues each customer of `shop` to be reconciled again after the
    /// queue's delay.
    async fn retry_later(
        &self,
        shop: &ShopId,
        customers: &[CustomerId],
    ) -> Result<(), RetryQueueError>;
}

/// The queue did not take the retries (they wait for the next reconcile).
#[derive(Debug, thiserror::Error)]
#[error("the sync retries could not be queued: {message}")]
pub struct RetryQueueError {
    /// What failed, for the logs.
    pub message: String,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RetryQueueError {
    /// A failure with its cause.
    pub fn new(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> RetryQueueError {
        RetryQueueError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
