//! Use cases and the ports they need.
//!
//! # Layout
//! - [`notify`]: the Notifier port (customer emails).

pub mod notify;
