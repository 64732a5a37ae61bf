//! Helpers for the end-to-end tests: a store that fails on purpose, and a
//! world (shop, program, store, notifier) to run use cases in.
//!
//! # Layout
//! - [`faults`]: `FaultyStore`, a Store wrapper that injects failures.
//! - [`helpers`]: worlds, orders and notifiers for the tests.

pub mod faults;
pub mod helpers;
