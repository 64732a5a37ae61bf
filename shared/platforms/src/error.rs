//! What can go wrong with a webhook, and which HTTP status each case earns.
//!
//! One [`WebhookError`] for the whole crate so the HTTP edge has a single
//! `match`: signature problems are 401 (nothing is parsed or written), a body
//! over [`crate::MAX_BODY_BYTES`] is 413, everything else about the request is
//! 400. Messages say what is wrong and where, and never carry a secret or a
//! computed signature.

use cashback_core::ids::IdError;
use cashback_core::money::{Currency, MoneyError};

/// Why a signature check failed. Always answered with 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {header} header is missing")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is malformed: {reason}")]
    MalformedHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("the {header} header is not base64")]
    NotBase64 { header: &'static str },
    #[error("the signature matches none of the shop's webhook secrets")]
    Mismatch,
    #[error(
        "the signature timestamp {timestamp} is more than {tolerance_secs} s from now ({now})"
    )]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        tolerance_secs: i64,
    },
    #[error("no webhook secret is configured for this shop")]
    NoSecrets,
}

/// Everything that makes a delivery unusable.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("signature check failed: {0}")]
    Signature(#[from] SignatureError),

    #[error("the body is {size} bytes, over the {limit}-byte limit")]
    BodyTooLarge { size: usize, limit: usize },

    #[error("the {header} header is missing")]
    MissingHeader { header: &'static str },

    #[error("the {header} header is invalid: {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: String,
    },

    /// The body is not JSON, or not the shape we expect. serde's message names
    /// the field (`missing field`, `unknown field`, `invalid type`) and the
    /// line and column.
    #[error("the {what} body is not valid: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("{field} is missing")]
    MissingField { field: String },

    #[error("{field} is invalid: {reason}")]
    InvalidField { field: String, reason: String },

    #[error("{field} is not a valid amount: {source}")]
    Money {
        field: String,
        #[source]
        source: MoneyError,
    },

    #[error("{field} is not a valid id: {source}")]
    Id {
        field: String,
        #[source]
        source: IdError,
    },

    #[error("{field} is in {found}, but the shop keeps its ledger in {expected}")]
    CurrencyMismatch {
        field: String,
        expected: Currency,
        found: String,
    },

    #[error("the body is for shop {in_body}, but the request is for shop {in_header}")]
    ShopMismatch { in_header: String, in_body: String },

    /// The topic header (not signed) names an event the signed body does not
    /// show: a paid order delivered as a cancellation, say.
    #[error("the body does not match the topic {topic}: {reason}")]
    TopicMismatch { topic: String, reason: String },
}

impl WebhookError {
    /// The HTTP status the edge answers with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Signature(_) => 401,
            WebhookError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// A stable machine-readable code for the `{"error": {"code", "message"}}` body.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::Signature(_) => "invalid_signature",
            WebhookError::BodyTooLarge { .. } => "body_too_large",
            WebhookError::MissingHeader { .. } => "missing_header",
            WebhookError::InvalidHeader { .. } => "invalid_header",
            WebhookError::Json { .. } => "invalid_json",
            WebhookError::MissingField { .. } => "missing_field",
            WebhookError::InvalidField { .. } => "invalid_field",
            WebhookError::Money { .. } => "invalid_amount",
            WebhookError::Id { .. } => "invalid_id",
            WebhookError::CurrencyMismatch { .. } => "currency_mismatch",
            WebhookError::ShopMismatch { .. } => "shop_mismatch",
            WebhookError::TopicMismatch { .. } => "topic_mismatch",
        }
    }

    pub(crate) fn missing(field: impl Into<String>) -> WebhookError {
        WebhookError::MissingField {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> WebhookError {
        WebhookError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_failures_are_401_and_body_problems_400() {
        assert_eq!(WebhookError::from(SignatureError::Mismatch).status(), 401);
        assert_eq!(
            WebhookError::BodyTooLarge { size: 2, limit: 1 }.status(),
            413
        );
        assert_eq!(WebhookError::missing("order.id").status(), 400);
        assert_eq!(
            WebhookError::CurrencyMismatch {
                field: "currency".into(),
                expected: Currency::USD,
                found: "EUR".into()
            }
            .status(),
            400
        );
    }
}
