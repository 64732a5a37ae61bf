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
//! - [`coupon`]: cashback coupons and their limits.
//! - [`redeem`]: what the customer's code may take off a cart, or why not.
//! - [`ledger`]: the account, its entries, lots, holds, expiry, adjustments.
//! - [`orders`]: order events applied to the ledger; release of pending.
//! - [`referrals`]: the referral reward credited to the referrer off the referred order's write.
//! - [`platform_code`]: the balance code as the shop's platform must hold it.
//! - [`store_credit`]: which part of a customer's store credit on the platform is cashback.
//! - [`privacy`]: what erasing a customer's personal data leaves of their account.
//! - [`reminders`]: the reminder series.
//! - [`bonuses`]: birthday, anniversary, win-back and milestone bonuses.
//! - [`import`]: balances and codes moved over from another app, checked row by row.
//! - [`expiry_warnings`]: emails before balance expires, once per lot and offset.
//! - [`due`]: when scheduled work (release, reminders, expiry) falls due.

#![warn(missing_docs)]
// Money is exact decimals here: a float anywhere in the rules is a bug.
#![deny(clippy::float_arithmetic)]

pub mod bonuses;
pub mod coupon;
pub mod due;
pub mod earn;
pub mod expiry_warnings;
pub mod ids;
pub mod import;
pub mod ledger;
pub mod money;
pub mod order;
pub mod orders;
pub mod platform_code;
pub mod privacy;
pub mod program;
pub mod redeem;
pub mod referrals;
pub mod reminders;
pub mod store_credit;
