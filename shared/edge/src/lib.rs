//! The edge every function shares: JSON errors with their HTTP status,
//! logging, wiring the ports from the environment, and API-key checks.
//!
//! # Layout
//! - [`error`]: `ApiError`, the one JSON error shape, and how each use-case
//!   error maps to a status.
//! - [`telemetry`]: JSON logs through tracing.
//! - [`aws`]: the SDK's shared HTTPS client (compiled-in trust store) and
//!   clients built on first use.
//! - [`lazy_store`]: a store whose adapter (the DynamoDB client) is built by
//!   its first call.
//! - [`route_parts`]: a router whose parts are built by their first request.
//! - [`wiring`]: the store, notifier and configuration from environment variables.
//! - [`auth`]: API keys (stored hashed) and the admin token.
//! - [`extract`]: axum extractors that refuse with `ApiError` (path values,
//!   query, principal, idempotency key, `If-Match`, the body).
//! - [`scheduled`]: what the scheduled functions share (settings, now, deadline, errors).
//! - [`deadline`]: time left in an invocation, from the runtime's deadline.

pub mod auth;
pub mod aws;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod lazy_store;
pub mod route_parts;
pub mod scheduled;
pub mod telemetry;
pub mod wiring;

pub use error::ApiError;
