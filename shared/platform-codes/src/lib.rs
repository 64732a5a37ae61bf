//! The PlatformCodes port's adapters: a customer's balance code kept on the
//! shop's own platform, so it works at a checkout that never calls the
//! engine (DESIGN.md section 9, docs/platform-sync.md).
//!
//! # Layout
//! - [`shopify`]: one basic code discount per customer (GraphQL Admin API),
//!   paced by the cost bucket; admin token or client credentials grant.
//! - [`store_credit`]: Shopify's native store credit, for programs in
//!   store-credit mode (credit and debit by the difference, intent first).
//! - [`woocommerce`]: one fixed-cart coupon per customer (REST API v3).
//! - [`pacing`]: Shopify's cost-based leaky bucket as this container sees it.
//! - [`http`]: the shared HTTPS client, a deadline on every call.
//! - [`connect`]: each shop's credentials, read from its `env:` / `ssm:`
//!   reference (the one loader: [`EnvAndSsm`] in the function), and its
//!   adapter, built from its record and those credentials and kept warm.

pub mod connect;
pub mod http;
pub mod pacing;
pub mod shopify;
pub mod store_credit;
pub mod woocommerce;

pub use connect::{
    ConnectError, ConnectSettings, Connections, CredentialSource, CredentialsPlace, EnvAndSsm,
    FetchError, StaticCredentials,
};
pub use http::{BaseUrl, ConfigError};
pub use shopify::{ShopifyCodes, ShopifyConfig, ShopifyCredentials};
pub use woocommerce::{WooCodes, WooConfig};
