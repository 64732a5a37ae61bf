//! The cashback domain: money, program rules, coupons and the account ledger.
//!
//! Pure and synchronous: no I/O, no clock (every rule takes the time it needs
//! as an argument), no AWS or Lambda types. The adapters at the edges turn
//! platform payloads into [`order::OrderEvent`]s and persist what the rules
//! return.
//!
//! # Layout
//! - [`money`]: `Money` and `Currency`, exact decimals at the minor unit.
//! - [`ids`]: ids, emails and codes, parsed once.
//! - [`order`]: orders, refunds and carts in platform-neutral terms.
//! - [`program`]: a shop's program configuration and its validation.
//! - [`earn`]: the eligible base and the earn formula.

pub mod coupon;
pub mod earn;
pub mod ids;
pub mod money;
pub mod order;
pub mod program;
pub mod redeem;
