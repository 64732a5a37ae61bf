//! The platform code adapters against the fakes of Shopify and WooCommerce,
//! in one test binary (one link instead of one per file).
//! `cargo test -p cashback-platform-codes --test platform_codes chaos::`
//! runs one file's tests.

mod chaos;
mod credentials;
mod mode_races;
mod runs;
mod shopify;
mod shopify_schema;
mod store_credit;
mod store_credit_beside;
mod store_credit_chaos;
mod store_credit_lost_answers;
mod sync;
mod woocommerce;
