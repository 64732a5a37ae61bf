//! The Notifier port: emails the engine sends to customers.
//!
//! Use cases describe *what* to tell the customer (a [`Notification`]); the
//! adapter in `shared/mail` renders the template (HTML and text) and delivers
//! it through SES v2 or into a local outbox folder. Every notification has an
//! idempotency key that the store records before sending, so a retried run
//! does not send it again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cashback_core::bonuses::{BonusKind, ExtraPercentOffer};
use cashback_core::ids::{Code, Email, ShopId};
use cashback_core::money::Money;

/// One email to one customer, ready for the Notifier: who it goes to, the
/// shop's branding, and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per email the customer should receive, e.g.
    /// `ready:{shop}:{customer}:{order}`; the same key is never sent twice.
    pub idempotency_key: String,
    /// The shop the customer belongs to (the sender and the template's shop).
    pub shop: ShopId,
    /// The customer's address.
    pub to: Email,
    /// Names and texts the merchant set for the shop's emails.
    pub branding: Branding,
    /// What the email says, with its figures.
    pub kind: NotificationKind,
    /// Signed link that stops reminder emails; also sent as List-Unsubscribe.
    pub unsubscribe_url: Option<String>,
}

/// What the merchant controls in every email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branding {
    /// The program's display name ("CashBack" unless renamed).
    pub display_name: String,
    /// The shop's name, as shown in the email.
    pub shop_name: String,
    /// The shop's web address, linked from the email when set.
    pub shop_url: Option<String>,
    /// Merchant's subject and preview text, replacing the template's defaults.
    pub subject: Option<String>,
    /// The line inboxes show after the subject, replacing the template's.
    pub preview_text: Option<String>,
}

/// What an email tells the customer. Amounts are in the account's currency
/// and never negative; a template shows them as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotificationKind {
    /// Cashback earned on an order; pending until `release_at` (None when
    /// issued at once).
    Earned {
        /// The order's cashback, net of what the same change took back.
        amount: Money,
        /// The order's name on the platform (`#1001`).
        order_name: String,
        /// When it becomes spendable; None when credited at once.
        release_at: Option<DateTime<Utc>>,
        /// The customer's balance code, when they have one yet.
        code: Option<Code>,
    },
    /// Pending cashback released: it can be spent now.
    Ready {
        /// What became spendable (the release less the debt it paid).
        amount: Money,
        /// The spendable balance after the release.
        balance: Money,
        /// The customer's balance code, to type at checkout.
        code: Code,
    },
    /// Reminder `position` (0..6) of the series, while balance is left.
    Reminder {
        /// The reminder's place in the program's series (its texts live there).
        position: u8,
        /// The spendable balance the reminder is about (more than zero).
        balance: Money,
        /// The customer's balance code, to type at checkout.
        code: Code,
        /// When the oldest part of the balance expires, if it can.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A refund or cancellation took cashback back.
    ClawedBack {
        /// Cashback this change took back, positive; includes `debt`.
        amount: Money,
        /// The order's name on the platform (`#1001`).
        order_name: String,
        /// The spendable balance after the clawback.
        balance: Money,
        /// What could not be taken and will come out of future cashback.
        debt: Money,
    },
    /// Balance is about to expire: `amount` goes at `expires_at`.
    ExpiryWarning {
        /// What expires that day (what is left of the lots expiring then).
        amount: Money,
        /// When it expires (the first of that day's lots).
        expires_at: DateTime<Utc>,
        /// How long before the expiry this warning is, in hours (its offset
        /// in the program).
        hours_before: u32,
        /// The spendable balance now.
        balance: Money,
        /// The customer's balance code, to spend it before it goes.
        code: Option<Code>,
    },
    /// A bonus was credited, or a milestone reached (with or without an
    /// amount).
    Bonus {
        /// Which bonus.
        bonus: BonusKind,
        /// What was credited, spendable now; None: the milestone's email alone.
        amount: Option<Money>,
        /// For a milestone: the lifetime spend reached.
        milestone: Option<Money>,
        /// The spendable balance after it.
        balance: Money,
        /// The customer's balance code, when they have one.
        code: Option<Code>,
        /// A win-back paid as an extra percent on the next order: the offer.
        #[serde(default)]
        extra_percent: Option<ExtraPercentOffer>,
    },
    /// The customer reached a new tier.
    TierUpgraded {
        /// The new tier's name.
        tier_name: String,
        /// The new tier's cashback rate, in percent as shown (`7.5`).
        percent: String,
    },
}

impl NotificationKind {
    /// The kind's stable name (`earned`, `ready`, `reminder`, `clawed_back`,
    /// `expiry_warning`, `tier_upgraded`, `bonus`): in keys, logs and template names.
    pub fn name(&self) -> &'static str {
        match self {
            NotificationKind::Earned { .. } => "earned",
            NotificationKind::Ready { .. } => "ready",
            NotificationKind::Reminder { .. } => "reminder",
            NotificationKind::ClawedBack { .. } => "clawed_back",
            NotificationKind::ExpiryWarning { .. } => "expiry_warning",
            NotificationKind::TierUpgraded { .. } => "tier_upgraded",
            NotificationKind::Bonus { .. } => "bonus",
        }
    }
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The provider's message id (SES MessageId, or the outbox file name).
    pub message_id: String,
}

/// Why an email was not sent.
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
    /// Trying the same email again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Throttled | NotifyError::Unavailable(_))
    }
}

/// Sends the customers' emails (SES, or a local outbox folder).
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one email now. It does not deduplicate: callers record the
    /// `idempotency_key` in the store first, so each key is sent at most once.
    /// The error says whether a later try may succeed
    /// ([`NotifyError::is_retryable`]).
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError>;
}
