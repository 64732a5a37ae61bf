//! Errors of the use cases. The HTTP edge maps each variant to a status.
//!
//! Causes are kept, not flattened into text: a store failure is carried
//! whole (`Store`, whose `Unavailable` keeps the service's own error as its
//! source), and a ledger refusal keeps the core's error.

use cashback_core::ids::ShopId;
use cashback_core::ledger::LedgerError;
use cashback_core::program::FieldError;

use crate::store::StoreError;

/// Why a use case did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such shop. Holds what the caller named, which may not even parse
    /// as a shop id (so it is answered the same as one that is not onboarded).
    #[error("unknown shop {0}")]
    UnknownShop(String),
    /// The shop has not set up its program yet.
    #[error("shop {0} has no cashback program yet")]
    NoProgram(ShopId),
    /// A request that cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// A request whose fields are wrong, each with why.
    #[error("invalid fields")]
    InvalidFields(Vec<FieldError>),
    /// What was asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts from one caller: retry after the given time.
    #[error("too many attempts; retry after {retry_after_seconds} s")]
    RateLimited {
        /// Seconds until a new attempt may succeed.
        retry_after_seconds: u64,
    },
    /// The ledger refused the change.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keys that sign links could not be read (SSM); retry later.
    #[error(transparent)]
    Secret(#[from] crate::secret_keys::SecretUnavailable),
    /// Kept trying and lost every time to concurrent writers.
    #[error("gave up after {attempts} attempts: {last}")]
    Contended {
        /// How many times it tried.
        attempts: u32,
        /// The last conflict it lost.
        last: String,
    },
}

impl AppError {
    /// A caller (or the platform's retry) may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            AppError::Store(error) => error.is_retryable(),
            AppError::Contended { .. } | AppError::Secret(_) => true,
            _ => false,
        }
    }
}

/// An error and its causes, outermost first, joined by ": ": what a log
/// line or a parked item's reason says (a cause's text is often the useful
/// part, and `Display` shows only the outermost).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
