//! Outgoing events: what happened to a customer's cashback, sent to the
//! merchant's own systems (docs/outgoing-events.md).
//!
//! # Layout
//! - [`events`]: the events a batch of the change feed makes (pure).
//! - [`url`]: where an endpoint may point (no private networks).
//! - [`endpoints`]: a shop's endpoints and their deliveries: records, the
//!   [`EndpointStore`] port, the admin use cases.
//! - [`delivery`]: signing, sending, retrying, parking; the HTTP and event
//!   bus ports.

pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod url;

pub use endpoints::EndpointStore;
pub use events::{events_from_changes, EventBody, EventKind, OutgoingEvent};
