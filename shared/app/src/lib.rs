//! Use cases and the ports they need: the code every function and the local
//! server call.
//!
//! # Layout
//! - [`store`]: the Store port (one read, one transactional write per use case).
//! - [`records`]: what the store keeps beside the ledger (shops, coupons, API keys).
//! - [`sets`]: the read and write sets a use case hands the store.
//! - [`reports`]: the running aggregates reports are made of.
//! - [`changes`]: the change feed (committed account and ledger changes) for
//!   the work that follows a write without being part of it.
//! - [`aggregator`]: the report aggregator, summing the change feed into the
//!   running aggregates off the write path, exactly once.
//! - [`notify`]: the Notifier port (customer emails).
//! - [`outgoing`]: signed events to the merchant's endpoints and event bus.
//! - [`platform_codes`]: the PlatformCodes port (the balance code kept on the
//!   shop's platform) and the use case that syncs it.
//! - [`marketing`]: the Marketing port (profile properties and events in the
//!   shop's marketing tool) and what is sent, derived from the ledger.
//! - [`context`]: ports, configuration and the warm cache, handed to every use case.
//! - [`events`]: an order event from a platform, applied to the ledger.
//! - [`api_keys`]: a shop's API keys, their scopes, use and revocation.
//! - [`checkout`]: a code checked against a cart at checkout; holds.
//! - [`compliance`]: customer data requests and redactions, shop redaction, uninstall.
//! - [`portal`]: the customer's view of their cashback; unsubscribe.
//! - [`preferences`]: the customer's email preferences (reminders off or on).
//! - [`bonuses`]: a customer's birthday, set by them, the shop or its platform.
//! - [`notices`]: which emails a change calls for; signed unsubscribe links.
//! - [`secret_keys`]: secrets (the link keys, the Shopify app secret) read on first use.
//! - [`resend`]: a customer's last email sent again (the merchant's dashboard).
//! - [`error`]: the use cases' errors.
//! - [`secret_ref`]: where a shop's webhook secrets live, parsed once.
//! - `retry`: the attempts of a read-decide-write that lost to another writer
//!   or was throttled: full-jitter backoff within a time budget.
#![warn(missing_docs)]

pub mod admin;
pub mod aggregator;
pub mod api_keys;
pub mod bonuses;
pub mod changes;
pub mod checkout;
pub mod compliance;
pub mod context;
pub mod coupon_shards;
pub mod coupon_uses;
pub mod error;
pub mod events;
pub mod jobs;
pub mod marketing;
pub mod notices;
pub mod notify;
pub mod on_first_use;
pub mod outgoing;
pub mod platform_codes;
pub mod portal;
pub mod preferences;
pub mod records;
pub mod referral;
pub mod reports;
pub mod resend;
pub mod retry;
pub mod secret_keys;
pub mod secret_ref;
pub mod sets;
pub mod store;

pub use context::{AppConfig, CodeSource, Context};
pub use error::AppError;
