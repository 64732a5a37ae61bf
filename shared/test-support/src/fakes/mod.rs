//! Fakes of the outside services the engine calls, following their
//! documented requests, responses, errors and rate limits.

pub mod faults;
pub mod klaviyo;
pub mod merchant;
pub mod shopify;
pub mod woocommerce;
