//! What people see: server-rendered pages over the same use cases as the
//! JSON API (no rule lives here, only presentation).
//!
//! The customer's cashback page:
//!
//! | route | who reaches it |
//! | --- | --- |
//! | `GET /pages/proxy` | Shopify's app proxy (`/apps/cashback` in the shop), signature checked as the customer API does; answers `application/liquid` so the theme wraps it |
//! | `POST /pages/proxy/preferences` | the page's email preference form, through the proxy |
//! | `POST /pages/proxy/birthday` | the page's birthday form (given once), through the proxy |
//! | `GET /pages/shops/{shop}/customers/{id}?expires=&sig=` | a signed link (WooCommerce My Account), a whole page |
//! | `POST /pages/shops/{shop}/customers/{id}/preferences?expires=&sig=` | its preference form |
//! | `POST /pages/shops/{shop}/customers/{id}/birthday?expires=&sig=` | its birthday form |
//! | `POST /pages/shops/{shop}/customers/{id}/link` | the shop's server, with an API key of the `portal_server` scope: mints a signed link |
//! | `GET /pages/proxy/widget.json` | the embeddable widget's JSON through the app proxy, checked as the page |
//! | `GET /pages/shops/{shop}/customers/{id}/widget.json?expires=&sig=` | the widget's JSON from a signed link |
//! | `GET /pages/assets/{file}`, `GET /pages/proxy/assets/{file}` | the stylesheet, the page's script and the widget's |
//!
//! # Layout
//! - [`customer`]: the customer's page handlers and its template.
//! - [`link`]: signed page links and the form token.
//! - [`dashboard`]: the merchant's dashboard (customers, ledger, adjustments).
//! - [`embedded`]: Shopify admin's App Bridge session tokens.
//! - [`program`]: the program editor and its versions.
//! - [`coupons`]: cashback coupons (list, create, edit, approve, pause).
//! - [`reports`], [`charts`]: reports as SVG charts, tables and CSV.
//! - [`platform_sync`]: the platform sync panel (codes kept on the shop's platform).
//! - [`auth`]: dashboard users, sessions and CSRF tokens.
//! - [`widget`]: the embeddable widget's JSON (balance and code on any page).
//! - [`assets`]: the stylesheet and the scripts, compiled in.
//! - `routes`: the route table, in parts the Lambda builds on first use.

pub mod assets;
pub mod auth;
pub mod charts;
pub mod coupons;
pub mod customer;
pub mod dashboard;
pub mod embedded;
pub mod link;
pub mod platform_sync;
pub mod program;
pub mod reports;
mod routes;
pub mod widget;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

use cashback_app::Context;
use customer_api::CustomerApiConfig;

/// The page forms are a few fields; nothing larger is read.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// How long a minted page link works.
pub const DEFAULT_LINK_TTL_SECONDS: i64 = 3600;

/// What the pages need besides the context.
#[derive(Clone, Debug)]
pub struct PagesConfig {
    /// The app proxy secret and the age a proxied request may have, as the
    /// customer API checks them.
    pub proxy: CustomerApiConfig,
    pub link_ttl_seconds: i64,
    /// Who may sign in to which shop's dashboard.
    pub dashboard_users: Vec<auth::DashboardUser>,
    /// The Shopify app's API key (client id): the `aud` of App Bridge
    /// session tokens. None: the embedded dashboard is off.
    pub shopify_api_key: Option<String>,
}

impl PagesConfig {
    pub fn from_env() -> PagesConfig {
        PagesConfig {
            proxy: CustomerApiConfig::from_env(),
            link_ttl_seconds: DEFAULT_LINK_TTL_SECONDS,
            dashboard_users: users_from_env(),
            shopify_api_key: std::env::var("CASHBACK_SHOPIFY_API_KEY")
                .ok()
                .map(|key| key.trim().to_string())
                .filter(|key| !key.is_empty()),
        }
    }
}

/// `CASHBACK_DASHBOARD_USERS`: a JSON list of `{"shop", "email",
/// "password_hash"}` (hashes from [`auth::hash_password`]). Unset or
/// unreadable: nobody can sign in (logged).
fn users_from_env() -> Vec<auth::DashboardUser> {
    let Ok(raw) = std::env::var("CASHBACK_DASHBOARD_USERS") else {
        return Vec::new();
    };
    serde_json::from_str(&raw).unwrap_or_else(|error| {
        tracing::warn!(%error, "CASHBACK_DASHBOARD_USERS is not a list of users; nobody can sign in");
        Vec::new()
    })
}

#[derive(Clone)]
pub(crate) struct PagesState {
    pub ctx: Context,
    pub config: Arc<PagesConfig>,
}

impl PagesState {
    /// The key that signs and checks this deployment's page links, form
    /// tokens and dashboard sessions. The router's outer layer
    /// ([`with_link_keys`]) reads the keys before any handler runs; were it
    /// ever skipped, a key of this process alone takes their place: it
    /// checks nothing anyone else signed, so it fails closed.
    pub(crate) fn link_key(&self) -> &[u8] {
        match self.ctx.config.link_keys.if_loaded() {
            Some(keys) => &keys.current,
            None => process_only_key(),
        }
    }
}

fn process_only_key() -> &'static [u8] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        key
    })
}

/// Reads the link keys on a container's first request (they are not read
/// at start: BENCHMARKS.md, section 4); 503 while they cannot be read.
async fn with_link_keys(
    State(ctx): State<Context>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match ctx.config.link_keys.get().await {
        Ok(_) => next.run(request).await,
        Err(error) => {
            tracing::error!(%error, "link keys unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable; retry later",
            )
                .into_response()
        }
    }
}

/// The page routes, configured from the environment.
pub fn router(ctx: Context) -> Router {
    router_with(ctx, PagesConfig::from_env())
}

/// Every page route, built at once, with an explicit configuration: one
/// router to merge with others (tests, local server).
pub fn router_with(ctx: Context, config: PagesConfig) -> Router {
    routes::parts().all(PagesState {
        ctx,
        config: Arc::new(config),
    })
}

/// The Lambda's router: each group of routes is built by the first request
/// under its prefix (`routes`).
pub fn router_on_first_use(ctx: Context, config: PagesConfig) -> Router {
    routes::parts().on_first_use(PagesState {
        ctx,
        config: Arc::new(config),
    })
}

/// Every route's path: what API Gateway must send to this function.
pub fn route_paths() -> Vec<&'static str> {
    routes::parts().paths()
}
