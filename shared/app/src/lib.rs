//! Use cases and the ports they need.
//!
//! # Layout
//! - [`store`]: the Store port (one read, one transactional write per use case).
//! - [`notify`]: the Notifier port (customer emails).

pub mod notify;
pub mod store;
