//! The Notifier port's adapters: customer emails rendered from templates and
//! delivered through SES v2, or written to a local outbox folder.
//!
//! Both adapters send the very same MIME message (multipart/alternative,
//! text and HTML), so what a developer opens from the outbox is what a
//! customer receives, List-Unsubscribe headers included.
//!
//! # Layout
//! - [`templates`]: one template per notification kind, HTML and plain text,
//!   with the merchant's branding; [`templates::render`] is pure.
//! - `mime`: the RFC 5322 / MIME message both adapters send.
//! - `encoding`: base64, RFC 2047 encoded words, a stable hash; small enough
//!   to keep here rather than add dependencies.
//! - [`outbox`]: [`OutboxNotifier`], `.eml` files in a folder for local runs.
//! - [`ses`]: [`SesNotifier`], SES v2 `SendEmail` with raw content.
//! - [`feedback`]: SES bounce and complaint events read into the addresses
//!   to suppress.

mod encoding;
pub mod feedback;
mod mime;
pub mod outbox;
pub mod ses;
pub mod templates;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use outbox::{OutboxConfig, OutboxNotifier};
pub use ses::{SesConfig, SesNotifier};
pub use templates::{render, RenderedEmail};

/// Where an adapter takes the `Date:` header from. Injected so tests (and
/// replays) produce byte-identical messages; production uses [`system_clock`].
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A configuration value from the environment is missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {var} is not a usable sender address")]
    BadFromAddress {
        var: &'static str,
        #[source]
        source: cashback_core::ids::IdError,
    },
    #[error("the sender address must be ASCII (SES does not send from SMTPUTF8 addresses)")]
    NonAsciiFrom,
}

/// Reads an optional variable; blank counts as unset so a template can
/// leave `CASHBACK_SES_CONFIGURATION_SET=` empty.
fn env_opt(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

fn parse_from(var: &'static str, value: &str) -> Result<cashback_core::ids::Email, ConfigError> {
    let email = cashback_core::ids::Email::parse(value)
        .map_err(|source| ConfigError::BadFromAddress { var, source })?;
    if !email.as_str().is_ascii() {
        return Err(ConfigError::NonAsciiFrom);
    }
    Ok(email)
}
