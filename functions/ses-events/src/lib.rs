//! The ses-events Lambda: SES publishes every bounce and complaint of the
//! configuration set our sends use to EventBridge (template.yaml:
//! `CashbackEmailEvents`), and a rule hands them here. A permanent bounce
//! or a complaint suppresses the address (the shop's account that uses it,
//! `cashback_app::preferences::suppress_address`): no notice, reminder or
//! expiry warning goes to it again. A transient bounce, a delivery or an
//! open changes nothing.
//!
//! A store failure is returned as an error, so Lambda's asynchronous
//! invocation retries the event (suppressing twice writes nothing); an event
//! that cannot be read, or names a shop we do not know, is logged and
//! dropped: retrying cannot change it.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use tracing::{info, warn};

use cashback_app::error::AppError;
use cashback_app::preferences::{suppress_address, PreferenceOutcome};
use cashback_app::Context;
use cashback_mail::feedback::{read_feedback, FeedbackKind};

/// What one event did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SesEventOutcome {
    /// Why the addresses were suppressed; None when the event suppresses nobody.
    pub kind: Option<FeedbackKind>,
    /// Accounts newly marked suppressed.
    pub suppressed: u32,
    /// Addresses already suppressed, or no longer an account's address.
    pub unchanged: u32,
    /// Addresses no account of the shop uses.
    pub unknown: u32,
}

/// Why an event must be delivered again.
#[derive(Debug, thiserror::Error)]
#[error("could not record the SES event: {0}")]
pub struct SesEventError(#[source] pub AppError);

impl From<SesEventError> for Diagnostic {
    fn from(error: SesEventError) -> Diagnostic {
        let class = if error.0.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        Diagnostic {
            error_type: format!("{class}.Store"),
            error_message: error.to_string(),
        }
    }
}

/// One event from EventBridge (its `detail` is SES's event).
pub async fn function_handler(
    ctx: &Context,
    event: LambdaEvent<EventBridgeEvent>,
) -> Result<SesEventOutcome, SesEventError> {
    let now = event.payload.time.unwrap_or_else(Utc::now);
    let mut outcome = SesEventOutcome::default();
    let feedback = match read_feedback(&event.payload.detail) {
        Ok(Some(feedback)) => feedback,
        Ok(None) => return Ok(outcome),
        Err(error) => {
            warn!(error = %error, detail_type = event.payload.detail_type, "SES event dropped");
            return Ok(outcome);
        }
    };
    outcome.kind = Some(feedback.kind);
    for address in &feedback.addresses {
        match suppress_address(ctx, &feedback.shop, address, now).await {
            Ok(PreferenceOutcome::Changed) => outcome.suppressed += 1,
            Ok(PreferenceOutcome::Unchanged) => outcome.unchanged += 1,
            Ok(PreferenceOutcome::UnknownCustomer) => outcome.unknown += 1,
            Err(AppError::UnknownShop(_) | AppError::NoProgram(_)) => {
                warn!(shop = %feedback.shop, "SES event for a shop not here; dropped");
                outcome.unknown += 1;
            }
            Err(error) => return Err(SesEventError(error)),
        }
    }
    info!(
        shop = %feedback.shop,
        kind = ?feedback.kind,
        suppressed = outcome.suppressed,
        unchanged = outcome.unchanged,
        unknown = outcome.unknown,
        "SES feedback recorded"
    );
    Ok(outcome)
}
