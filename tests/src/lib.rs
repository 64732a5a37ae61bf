//! Helpers for the end-to-end tests: a store that fails on purpose, and a
//! world (shop, program, store, notifier) to run use cases in.
//!
//! # Layout
//! - [`faults`]: `FaultyStore`, a Store wrapper that injects failures.
//! - [`helpers`]: worlds, orders and notifiers for the tests.
//! - [`cut`]: a store and a notifier with await points around every call,
//!   so a run can be dropped at a chosen one, as a crash drops it.

pub mod cut;
pub mod faults;
pub mod helpers;
