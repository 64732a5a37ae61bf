//! The order webhook through its router, in one test binary (one link
//! instead of one per file): the sample events end to end, topics,
//! secret references, balance codes and referrals.
//! `cargo test -p order-webhook --test webhook topics::` runs one file.
mod support;

mod balance_codes;
mod cart_coupons;
mod compliance;
mod order_created;
mod references;
mod referrals;
mod topics;
mod webhook;
