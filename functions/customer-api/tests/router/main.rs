//! The customer API through its router, in one test binary (one link
//! instead of one per file): on the in-memory store, a sample on DynamoDB
//! (moto), and cursors. `cargo test -p customer-api --test router cursor::`
//! runs one file.
mod support;

mod cursor;
mod dynamo;
mod router;
