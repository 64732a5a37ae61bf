//! The webhook parsers and signatures of every platform, in one test
//! binary (one link instead of one per file); the payloads are in
//! `tests/fixtures/`. `cargo test -p cashback-platforms --test platforms
//! robustness::` runs one file.
mod common;

mod generic;
mod robustness;
mod shop_requests;
mod shopify;
mod woocommerce;
