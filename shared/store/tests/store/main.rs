//! The store adapters, in one test binary (one link instead of one per
//! file): the conformance suite on both adapters, DynamoDB-specific cases
//! and random order histories (on moto when `MOTO_ENDPOINT` is set, see
//! `cashback_test_support::moto`). `cargo test -p cashback-store --test
//! store histories::` runs one file.
mod bounded;
mod budget;
mod cases;

mod changes;
mod conformance;
mod dynamo;
mod histories;
mod outgoing;
mod reports;
