//! Errors of the use cases. The HTTP edge maps each variant to a status.

use cashback_core::ledger::LedgerError;
use cashback_core::program::FieldError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("unknown shop {0}")]
    UnknownShop(String),
    #[error("shop {0} has no cashback program yet")]
    NoProgram(String),
    #[error("{0}")]
    Invalid(String),
    #[error("invalid fields")]
    InvalidFields(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Kept trying and lost every time to concurrent writers.
    #[error("gave up after {attempts} attempts: {last}")]
    Contended { attempts: u32, last: String },
}

impl AppError {
    /// A caller (or the platform's retry) may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            AppError::Store(error) => error.is_retryable(),
            AppError::Contended { .. } => true,
            _ => false,
        }
    }
}
