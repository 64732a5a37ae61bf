//! The checkout validation endpoint through its router, in one test binary
//! (one link instead of one per file): on the in-memory store, a sample on
//! DynamoDB (moto), and codes only their owner may spend.
//! `cargo test -p coupon-validate --test router owner_only::` runs one file.
mod support;

mod dynamo;
mod owner_only;
mod router;
