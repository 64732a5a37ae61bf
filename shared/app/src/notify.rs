//! The Notifier port: emails the engine sends to customers.
//!
//! Use cases describe *what* to tell the customer (a [`Notification`]); the
//! adapter in `shared/mail` renders the template (HTML and text) and delivers
//! it through SES v2 or into a local outbox folder. Every notification has an
//! idempotency key that the store records before sending, so a retried run
//! does not send it again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::ids::{Code, Email, ShopId};
use cashback_core::money::Money;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per email the customer should receive, e.g.
    /// `ready:{shop}:{customer}:{order}`; the same key is never sent twice.
    pub idempotency_key: String,
    pub shop: ShopId,
    pub to: Email,
    pub branding: Branding,
    pub kind: NotificationKind,
    /// Signed link that stops reminder emails; also sent as List-Unsubscribe.
    pub unsubscribe_url: Option<String>,
}

/// What the merchant controls in every email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// The program's display name ("CashBack" unless renamed).
    pub display_name: String,
    pub shop_name: String,
    pub shop_url: Option<String>,
    /// Merchant's subject and preview text, replacing the template's defaults.
    pub subject: Option<String>,
    pub preview_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotificationKind {
    /// Cashback earned on an order; pending until `release_at` (None when
    /// issued at once).
    Earned {
        amount: Money,
        order_name: String,
        release_at: Option<DateTime<Utc>>,
        code: Option<Code>,
    },
    /// Pending cashback released: it can be spent now.
    Ready {
        amount: Money,
        balance: Money,
        code: Code,
    },
    /// Reminder `position` (0..6) of the series, while balance is left.
    Reminder {
        position: u8,
        balance: Money,
        code: Code,
        expires_at: Option<DateTime<Utc>>,
    },
    /// A refund or cancellation took cashback back.
    ClawedBack {
        amount: Money,
        order_name: String,
        balance: Money,
        /// What could not be taken and will come out of future cashback.
        debt: Money,
    },
    /// The customer reached a new tier.
    TierUpgraded { tier_name: String, percent: String },
}

impl NotificationKind {
    pub fn name(&self) -> &'static str {
        match self {
            NotificationKind::Earned { .. } => "earned",
            NotificationKind::Ready { .. } => "ready",
            NotificationKind::Reminder { .. } => "reminder",
            NotificationKind::ClawedBack { .. } => "clawed_back",
            NotificationKind::TierUpgraded { .. } => "tier_upgraded",
        }
    }
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The provider's message id (SES MessageId, or the outbox file name).
    pub message_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The provider asked us to slow down; try again later.
    #[error("email provider throttled the send")]
    Throttled,
    /// The address is on the suppression list or bounced: stop the series.
    #[error("the address is suppressed")]
    Suppressed,
    /// The provider refused this message; retrying will not help.
    #[error("email rejected: {0}")]
    Rejected(String),
    /// Network or service failure; retrying may help.
    #[error("email provider unavailable: {0}")]
    Unavailable(String),
}

impl NotifyError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Throttled | NotifyError::Unavailable(_))
    }
}

#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError>;
}
