//! SDK errors become `StoreError`s here, and nowhere else.
//!
//! Two kinds of failure matter to the use cases: a condition that did not
//! hold (someone else wrote first, a limit was reached, a guard existed) and
//! a transient failure worth retrying later (throttling, timeouts, 5xx).
//! A condition can fail alone (`ConditionalCheckFailedException`) or inside a
//! cancelled transaction (`TransactionCanceledException`, one reason per
//! item, in the order the items were sent), so the helpers below recognise
//! it in both places, as neoeinstein/modyne's `error.rs` does. The SDK's
//! error, with its whole cause chain, is kept in every message.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::CancellationReason;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use cashback_app::store::{StoreError, Unreachable};

/// Error codes (top level or in a cancellation reason) that mean "the
/// service is busy or briefly broken": retry later.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ProvisionedThroughputExceeded",
    "ThrottlingException",
    "ThrottlingError",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Error codes that mean another transaction touched the same item at the
/// same moment: read again and retry.
const CONFLICT_CODES: &[&str] = &["TransactionConflictException", "TransactionConflict"];

pub(crate) fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

pub(crate) fn is_conflict_code(code: &str) -> bool {
    CONFLICT_CODES.contains(&code)
}

/// Maps any SDK failure that no caller handles specially.
pub(crate) fn from_sdk<E>(operation: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let cause = DisplayErrorContext(&error).to_string();
    let unavailable = |error| {
        StoreError::Unavailable(Unreachable::caused_by(
            format!("{operation}: {cause}"),
            error,
        ))
    };
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => unavailable(error),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if is_conflict_code(code) {
                StoreError::Conflict(format!("{operation}: {cause}"))
            } else if is_transient_code(code) || service.raw().status().is_server_error() {
                unavailable(error)
            } else {
                StoreError::Other(format!("{operation}: {cause}"))
            }
        }
        _ => StoreError::Other(format!("{operation}: {cause}")),
    }
}

/// The failure of a conditional single-item request: "the condition did
/// not hold", or anything else (already a `StoreError`).
pub(crate) enum Conditional {
    Failed,
    Error(StoreError),
}

/// An operation error that may say "the condition did not hold".
pub(crate) trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for PutItemError {
    fn is_condition_failure(&self) -> bool {
        matches!(self, PutItemError::ConditionalCheckFailedException(_))
    }
}

impl ConditionFailure for UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        matches!(self, UpdateItemError::ConditionalCheckFailedException(_))
    }
}

/// A cancelled transaction whose reasons include a failed condition.
impl ConditionFailure for TransactWriteItemsError {
    fn is_condition_failure(&self) -> bool {
        match self {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => cancelled
                .cancellation_reasons()
                .iter()
                .any(is_condition_failed),
            _ => false,
        }
    }
}

/// Sorts a failed single-item request (or a transaction) into "the
/// condition did not hold" and every other failure.
pub(crate) fn conditional<E>(operation: &str, error: SdkError<E, HttpResponse>) -> Conditional
where
    E: ConditionFailure + ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &error {
        if service.err().is_condition_failure() {
            return Conditional::Failed;
        }
    }
    Conditional::Error(from_sdk(operation, error))
}

/// The reasons of a cancelled transaction, one per item in request order;
/// None when the failure was something else.
pub(crate) fn cancellation_reasons(
    error: &SdkError<TransactWriteItemsError, HttpResponse>,
) -> Option<Vec<CancellationReason>> {
    match error {
        SdkError::ServiceError(service) => match service.err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                Some(cancelled.cancellation_reasons().to_vec())
            }
            _ => None,
        },
        _ => None,
    }
}

/// A cancellation reason that says this item's condition did not hold.
pub(crate) fn is_condition_failed(reason: &CancellationReason) -> bool {
    reason.code() == Some("ConditionalCheckFailed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;

    #[test]
    fn an_unavailable_store_keeps_the_services_error_as_its_source() {
        let error: SdkError<GetItemError, HttpResponse> =
            SdkError::timeout_error("connect timed out after 3.1s");
        let store = from_sdk("GetItem", error);
        assert!(matches!(store, StoreError::Unavailable(_)), "{store:?}");
        assert!(store.is_retryable());
        assert!(store
            .to_string()
            .starts_with("store unavailable: GetItem: "));
        let source = std::error::Error::source(&store).expect("the SDK's error is kept");
        assert!(source
            .downcast_ref::<SdkError<GetItemError, HttpResponse>>()
            .is_some());
    }
}
