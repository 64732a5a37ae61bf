//! What the tests of every crate share, in one place: the moto plumbing,
//! fixtures (shops, programs, money), test doubles, fakes of the platforms
//! the engine talks to, fault injection, and the sample deliveries of
//! `events/`. A dev-dependency of every crate's tests; the local server and
//! the benchmarks (never deployed) use the samples as a normal dependency.
//! No Lambda binary links it.
//!
//! # Layout
//! - [`moto`]: DynamoDB tables from template.yaml, SES and SSM on moto,
//!   `MOTO_ENDPOINT` and `REQUIRE_MOTO`.
//! - [`fixtures`]: the demo shop, amounts, instants, the base program.
//! - [`doubles`]: notifiers and code sources that keep what they did.
//! - [`world`]: a shop with a program on any store, orders, refunds, and
//!   reads of what the engine wrote.
//! - [`jobs`]: the scheduled functions' world: a program with reminders,
//!   paid orders, the schedule's events.
//! - [`seeded`]: the HTTP functions' world (a shop with an API key and a
//!   customer with a balance) and requests through a router.
//! - [`reports`]: the report aggregator run over the in-memory store's
//!   change log, before a test reads a report.
//! - [`faults`]: a store that fails at random, the ways DynamoDB can.
//! - [`cut`]: await points around every call, to stop a run as a crash does.
//! - [`samples`]: the sample deliveries in `events/` and their bodies.
//! - [`fakes`]: the outside services the engine calls.

// The sample bodies are whole platform resources in one `json!` each.
#![recursion_limit = "256"]

pub mod cut;
pub mod doubles;
pub mod fakes;
pub mod faults;
pub mod fixtures;
pub mod jobs;
pub mod moto;
pub mod reports;
pub mod samples;
pub mod seeded;
pub mod world;
