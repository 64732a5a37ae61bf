//! The world the HTTP functions' tests share (coupon-validate,
//! customer-api and the pages): a seeded shop with an API key and a
//! customer, Ann, with a balance on her code, on any store; and requests
//! sent through a router.
//!
//! Its clock starts on 2026-01-05 09:00 UTC ([`t0`]), and its program
//! ([`program`]) asks for a 20.00 order before a balance can be spent.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use tower::ServiceExt;

use cashback_app::store::{AccountWrite, CodeChange, Store, WriteSet};
use cashback_app::{AppConfig, Context};
use cashback_core::ids::{Code, CustomerId};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;
use cashback_core::program::Program;
use cashback_edge::auth::hash_api_key;

use crate::doubles::{CountingCodes, Silent};
use crate::fixtures::demo_shop_record;
pub use crate::fixtures::{shop, usd};

/// The shop's API key (its hash is what the shop record keeps).
pub const API_KEY: &str = "cbk_router_test_key";
/// Ann's balance code and email.
pub const ANN_CODE: &str = "CB-ANN0000000001";
pub const ANN_EMAIL: &str = "ann@example.com";

/// When the seeded world starts: 2026-01-05 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!("a valid instant"))
}

/// The base program ([`crate::fixtures::program`]) with a 20.00 minimum
/// order for spending a balance.
pub fn program() -> Program {
    let mut program = crate::fixtures::program();
    program.redemption.min_order_subtotal = dec!(20);
    program
}

/// A fresh container's Context (empty caches) on `store`.
pub fn fresh_context(store: Arc<dyn Store>) -> Context {
    Context::new(
        store,
        Arc::new(Silent),
        Arc::new(CountingCodes::default()),
        AppConfig::default(),
    )
}

/// [`seed`] on a store shared with other contexts.
pub async fn seed_context(store: Arc<dyn Store>, balance: &str) -> Context {
    seed(store, balance).await
}

/// A shop with `program` on `store`, Ann holding `balance` on her code.
pub async fn seed(store: Arc<dyn Store>, balance: &str) -> Context {
    store
        .create_shop(&demo_shop_record("env:DEMO", hash_api_key(API_KEY), t0()))
        .await
        .unwrap();
    store
        .put_program(&shop(), &program(), 0, t0())
        .await
        .unwrap();
    let mut account = Account::open(shop(), CustomerId::parse("ann").unwrap(), Currency::USD);
    account.code = Some(Code::parse(ANN_CODE).unwrap());
    account.email = Some(cashback_core::ids::Email::parse(ANN_EMAIL).unwrap());
    let applied = account
        .adjust(usd(balance), "seed", "ann", &program(), t0())
        .unwrap();
    store
        .write(
            &shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries: applied.entries,
                    reminder_due_at: None,
                    code_change: Some(CodeChange {
                        new_code: Code::parse(ANN_CODE).unwrap(),
                        old_code: None,
                        referral_code: None,
                    }),
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    Context::new(
        store,
        Arc::new(Silent),
        Arc::new(CountingCodes::default()),
        AppConfig::default(),
    )
}

/// [`seed`] on a new in-memory store, its report sums caught up (Ann's
/// balance shows in the reports).
pub async fn memory_context(balance: &str) -> Context {
    let store = Arc::new(cashback_store::MemoryStore::new());
    let ctx = seed(store.clone(), balance).await;
    crate::reports::catch_up(&store).await;
    ctx
}

pub async fn send(
    router: Router,
    request: Request<Body>,
) -> (StatusCode, Response<()>, serde_json::Value) {
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (parts.status, Response::from_parts(parts, ()), json)
}

/// The status, the headers and the body as text (for the HTML pages).
pub async fn send_text(
    router: Router,
    request: Request<Body>,
) -> (StatusCode, Response<()>, String) {
    let response = router.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        Response::from_parts(parts, ()),
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// A route's path (`/v1/shops/{shop}/customers/{id}`) as a request for the
/// seeded world: the demo shop, Ann, the stylesheet for a `{file}`, and
/// `x-1` for any other parameter.
pub fn concrete_path(route: &str) -> String {
    route
        .split('/')
        .map(|segment| match segment {
            "{shop}" => "demo.myshopify.com",
            "{id}" => "ann",
            "{file}" => "cashback.css",
            segment if segment.starts_with('{') => "x-1",
            segment => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A sweep of two routers that must answer alike (a function's whole
/// router and the one it builds in parts): the requests to send (each
/// route's concrete path, unknown paths, path tricks) and which of them
/// reached a handler.
pub struct RouteSweep {
    /// Every path to send, the routes' first.
    pub uris: Vec<String>,
    routes: usize,
    unknown: Vec<String>,
    handled: std::collections::BTreeSet<String>,
}

impl RouteSweep {
    /// The routes as [`concrete_path`]s, then `unknown` and `tricks`.
    pub fn new(routes: &[&str], unknown: &[&str], tricks: &[&str]) -> RouteSweep {
        let uris = routes
            .iter()
            .map(|route| concrete_path(route))
            .chain(unknown.iter().chain(tricks).map(|path| path.to_string()))
            .collect();
        RouteSweep {
            uris,
            routes: routes.len(),
            unknown: unknown.iter().map(|path| path.to_string()).collect(),
            handled: std::collections::BTreeSet::new(),
        }
    }

    /// Notes an answer to `uri`: the router's own 404 has no body, a
    /// handler's answer has one (or another status).
    pub fn answered(&mut self, uri: &str, status: StatusCode, body: &str) {
        if !(status == StatusCode::NOT_FOUND && body.is_empty()) {
            self.handled.insert(uri.to_string());
        }
    }

    /// Every route reached a handler, and no unknown path did.
    pub fn assert_routes_answered(&self) {
        let unanswered: Vec<&String> = self.uris[..self.routes]
            .iter()
            .filter(|uri| !self.handled.contains(*uri))
            .collect();
        assert!(unanswered.is_empty(), "no handler answered: {unanswered:?}");
        let reached: Vec<&String> = self
            .unknown
            .iter()
            .filter(|uri| self.handled.contains(*uri))
            .collect();
        assert!(
            reached.is_empty(),
            "unknown paths reached a handler: {reached:?}"
        );
    }
}
