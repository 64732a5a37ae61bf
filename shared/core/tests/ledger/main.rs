//! The core's rules from the outside, in one test binary (one link instead
//! of one per file): ledger scenarios and properties, the parties of an
//! order (referrer, buyer, coupon owner), referral properties.
//! `cargo test -p cashback-core --test ledger parties::` runs one file.
mod support;

mod bonus_scenarios;
mod ledger_properties;
mod ledger_scenarios;
mod lot_properties;
mod order_created;
mod parties;
mod referral_properties;
