//! Adapters of the Store port (`cashback_app::store::Store`).
//!
//! # Layout
//! - [`memory`]: in-memory, the reference semantics; local runs and fast tests.
//! - [`dynamo`]: DynamoDB through aws-sdk-dynamodb, single table.
//! - [`intercept`]: a decorator that runs every call through an interceptor (faults, crashes, stalls in tests).
//! - [`keys`]: key strings shared by both.

pub mod dynamo;
pub mod intercept;
pub mod keys;
pub mod memory;

pub use dynamo::DynamoStore;
pub use memory::MemoryStore;
