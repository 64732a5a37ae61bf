//! The pages on the local server: the demo shop's dashboard user and a
//! signed link to the demo customer's page (their history is played by
//! [`crate::history`]).

use chrono::{DateTime, Duration, Utc};

use cashback_app::Context;
use cashback_core::ids::CustomerId;
use cashback_pages::auth::{hash_password_with, DashboardUser};
use cashback_pages::customer::signed_link;
use cashback_pages::PagesConfig;

use crate::demo::CUSTOMER_ID;
use crate::seed::demo_shop_id;

/// How long the printed customer link works.
const LINK_DAYS: i64 = 30;

fn demo_customer() -> Result<CustomerId, String> {
    CustomerId::parse(&CUSTOMER_ID.to_string()).map_err(|e| e.to_string())
}

/// The demo customer's page, as the shop's server would link to it.
pub async fn demo_customer_url(ctx: &Context, now: DateTime<Utc>) -> Result<String, String> {
    let keys = ctx
        .config
        .link_keys
        .get()
        .await
        .map_err(|e| e.to_string())?;
    Ok(signed_link(
        &keys.current,
        &ctx.config.public_base_url,
        &demo_shop_id(),
        &demo_customer()?,
        now + Duration::days(LINK_DAYS),
    ))
}

/// The demo shop's dashboard sign-in (local only, like the other demo values).
pub const DEMO_DASHBOARD_EMAIL: &str = "owner@demo.myshopify.com";
pub const DEMO_DASHBOARD_PASSWORD: &str = "demo-dashboard-password";

/// The pages' configuration from the environment, with the demo shop's
/// dashboard user added. Its hash has a low cost so a development build
/// signs in at once; real users get [`cashback_pages::auth::hash_password`].
pub fn pages_config() -> PagesConfig {
    let mut config = PagesConfig::from_env();
    config.dashboard_users.push(DashboardUser {
        shop: demo_shop_id(),
        email: DEMO_DASHBOARD_EMAIL.into(),
        password_hash: hash_password_with(DEMO_DASHBOARD_PASSWORD, rand_salt(), 10_000),
    });
    config
}

fn rand_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    for (i, byte) in DEMO_DASHBOARD_EMAIL.bytes().enumerate() {
        salt[i % 16] ^= byte;
    }
    salt
}
