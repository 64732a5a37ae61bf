//! What the webhook tests share: the demo shop on a store (in memory, or
//! DynamoDB through moto), the router with a fixed clock, the sample events
//! of `events/` as lambda_http hands them over, and a store that fails on
//! demand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use serde_json::Value;
use tower::ServiceExt;

use cashback_app::store::*;
use cashback_app::{AppConfig, Context};
use cashback_core::ids::*;
use cashback_core::ledger::{Account, LedgerEntry};
use cashback_core::money::Currency;
use cashback_core::orders::OrderRecord;
use cashback_core::program::{Program, ReferralReward};
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};
use cashback_store::MemoryStore;
use cashback_test_support::moto;
use cashback_test_support::samples::{
    self, DEMO_SECRET, DEMO_SECRET_REF, DEMO_SHOP, GENERIC_SIGNED_AT,
};
use order_webhook::secrets::{FixedSecrets, SecretCache};
use order_webhook::{router, WebhookState};

pub use cashback_test_support::doubles::{CountingCodes, KeptNotifier};
pub use cashback_test_support::fixtures::{shop as demo_shop, usd};

pub const OTHER_SHOP: &str = "other.myshopify.com";
pub const OTHER_SECRET: &str = "other-shop-secret";

/// The moment the tests receive deliveries: ten seconds after the generic
/// samples were signed, so they are within tolerance.
pub fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(GENERIC_SIGNED_AT + 10, 0).unwrap()
}

/// 10% cashback, pending 30 days (the default), 5.00 per referral.
pub fn program() -> Program {
    let mut program = cashback_test_support::fixtures::program();
    program.referral = Some(ReferralReward::Fixed { amount: dec!(5) });
    program
}

pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// Whether the DynamoDB variants run (see moto.rs: skip with a notice
/// without `MOTO_ENDPOINT`, fail under `REQUIRE_MOTO=1`).
pub fn moto_configured(test_name: &str) -> bool {
    moto::endpoint(test_name).is_some()
}

/// The store adapter a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Dynamo,
}

impl Backend {
    /// A new, empty store of this kind (a fresh moto table for DynamoDB).
    pub async fn store(self) -> Arc<dyn Store> {
        match self {
            Backend::Memory => memory_store(),
            Backend::Dynamo => Arc::new(
                moto::fresh_store("order-webhook")
                    .await
                    .expect("moto is configured"),
            ),
        }
    }

    /// The demo world on a new store of this kind.
    pub async fn world(self) -> World {
        world(self.store().await).await
    }

    /// The demo world, and what sums its change feed into reports (the
    /// report aggregator's part, which no webhook does).
    pub async fn world_with_reports(self) -> (World, Reports) {
        match self {
            Backend::Memory => {
                let memory = Arc::new(MemoryStore::new());
                (world(memory.clone()).await, Reports::Memory(memory))
            }
            Backend::Dynamo => {
                let store = Arc::new(
                    moto::fresh_store("order-webhook")
                        .await
                        .expect("moto is configured"),
                );
                (world(store.clone()).await, Reports::Dynamo(store))
            }
        }
    }

    pub async fn world_with(self, demo_secret_value: &str, at: DateTime<Utc>) -> World {
        world_with(self.store().await, demo_secret_value, at).await
    }
}

/// The report aggregator over a test's store.
pub enum Reports {
    Memory(Arc<MemoryStore>),
    Dynamo(Arc<cashback_store::DynamoStore>),
}

impl Reports {
    /// Sums every change not summed yet into the report items.
    pub async fn catch_up(&self) {
        match self {
            Reports::Memory(store) => {
                cashback_test_support::reports::catch_up(store).await;
            }
            Reports::Dynamo(store) => {
                let endpoint = std::env::var("MOTO_ENDPOINT").expect("a store on moto");
                cashback_test_support::reports::catch_up_on_moto(store, &endpoint).await;
            }
        }
    }
}

pub struct World {
    pub store: Arc<dyn Store>,
    pub ctx: Context,
    pub secrets: Arc<SecretCache>,
    pub router: Router,
}

/// The demo shop (and another shop with its own secret) on `store`, with
/// the demo secret's env variable holding `demo_secret_value`.
pub async fn world_with(
    store: Arc<dyn Store>,
    demo_secret_value: &str,
    at: DateTime<Utc>,
) -> World {
    for (shop, reference) in [
        (DEMO_SHOP, DEMO_SECRET_REF),
        (OTHER_SHOP, "env:CASHBACK_SECRET_OTHER_SHOP"),
    ] {
        store
            .create_shop(&Shop {
                shop: ShopId::parse(shop).unwrap(),
                platform: Platform::Shopify,
                currency: Currency::USD,
                name: "Demo Store".into(),
                webhook_secret_ref: reference.into(),
                api_key_hash: String::new(),
                created_at: at,
                guest_id_key: None,
            })
            .await
            .unwrap();
        store
            .put_program(&ShopId::parse(shop).unwrap(), &program(), 0, at)
            .await
            .unwrap();
    }
    let ctx = Context::new(
        store.clone(),
        Arc::new(KeptNotifier::default()),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    let secrets = Arc::new(SecretCache::new(
        Arc::new(FixedSecrets::new([
            (DEMO_SECRET_REF, demo_secret_value),
            ("env:CASHBACK_SECRET_OTHER_SHOP", OTHER_SECRET),
        ])),
        300,
    ));
    let state = WebhookState::new(ctx.clone(), secrets.clone()).with_clock(Arc::new(move || at));
    World {
        router: router(state),
        store,
        ctx,
        secrets,
    }
}

impl World {
    /// The same shops and store, the router's clock at `at`.
    pub fn at(&self, at: DateTime<Utc>) -> World {
        let state = WebhookState::new(self.ctx.clone(), self.secrets.clone())
            .with_clock(Arc::new(move || at));
        World {
            router: router(state),
            store: self.store.clone(),
            ctx: self.ctx.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

pub async fn world(store: Arc<dyn Store>) -> World {
    world_with(store, DEMO_SECRET, now()).await
}

/// The request lambda_http builds from `events/{file}`: the same conversion
/// the deployed function goes through.
pub fn event_request(file: &str) -> Request<Body> {
    let path = format!("{}/../../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (parts, body) = request.into_parts();
    Request::from_parts(parts, Body::new(body))
}

/// A request to `/webhooks/{platform}` with these headers and body.
pub fn request(
    platform: &str,
    headers: &[(String, String)],
    body: impl Into<Vec<u8>>,
) -> Request<Body> {
    let mut builder = Request::post(format!("/webhooks/{platform}"));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body.into())).unwrap()
}

/// The sample's headers with `name` replaced (or removed when None).
pub fn with_header(
    headers: &[(String, String)],
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    if let Some(value) = value {
        out.push((name.to_string(), value.to_string()));
    }
    out
}

pub async fn send(world: &World, request: Request<Body>) -> (StatusCode, Value) {
    let response = world.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

pub async fn deliver(world: &World, file: &str) -> (StatusCode, Value) {
    send(world, event_request(file)).await
}

pub async fn account(world: &World, customer: &str) -> Option<Account> {
    let id = CustomerId::parse(customer).unwrap();
    let read = world
        .store
        .read(
            &demo_shop(),
            &ReadRequest {
                accounts: vec![id.clone()],
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.accounts.get(&id).map(|a| a.value.clone())
}

pub async fn order_record(world: &World, order: &str) -> Option<OrderRecord> {
    let read = world
        .store
        .read(
            &demo_shop(),
            &ReadRequest {
                order: Some(OrderId::parse(order).unwrap()),
                ..ReadRequest::default()
            },
        )
        .await
        .unwrap();
    read.order.map(|o| o.value)
}

pub async fn ledger(world: &World, customer: &str) -> Vec<LedgerEntry> {
    world
        .store
        .ledger(
            &demo_shop(),
            &CustomerId::parse(customer).unwrap(),
            None,
            100,
        )
        .await
        .unwrap()
        .items
}

/// Opens an account with a code of its own (a customer who can refer).
pub async fn seed_account(world: &World, customer: &str, code: &str, email: Option<&str>) {
    let mut account = Account::open(
        demo_shop(),
        CustomerId::parse(customer).unwrap(),
        Currency::USD,
    );
    account.code = Some(Code::parse(code).unwrap());
    account.email = email.map(|e| Email::parse(e).unwrap());
    let outcome = world
        .store
        .write(
            &demo_shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries: Vec::new(),
                    reminder_due_at: None,
                    code_change: Some(CodeChange {
                        new_code: Code::parse(code).unwrap(),
                        old_code: None,
                        referral_code: None,
                    }),
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

pub fn shopify_customer() -> String {
    samples::SHOPIFY_CUSTOMER_ID.to_string()
}

pub fn shopify_order() -> String {
    samples::SHOPIFY_ORDER_ID.to_string()
}

/// Writes fail as a throttled DynamoDB's would, while `failing` is set.
pub struct Flaky {
    pub failing: AtomicBool,
}

impl Interceptor for Flaky {
    fn around<'a, T: Send + 'a>(&'a self, call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        if call == Call::Write && self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("throttled".into())) });
        }
        run
    }
}

/// A MemoryStore behind [`Flaky`].
pub type FlakyStore = Intercepted<Flaky>;

pub fn flaky_store(failing: bool) -> FlakyStore {
    Intercepted::new(
        Arc::new(cashback_store::MemoryStore::new()),
        Flaky {
            failing: AtomicBool::new(failing),
        },
    )
}

/// Opens an account with a balance code, `available` balance (a merchant
/// credit, with its entry) and a referral code, as the engine writes them.
pub async fn seed_customer(
    world: &World,
    customer: &str,
    code: &str,
    email: Option<&str>,
    available: &str,
    referral_code: Option<&str>,
) {
    let mut account = Account::open(
        demo_shop(),
        CustomerId::parse(customer).unwrap(),
        Currency::USD,
    );
    account.code = Some(Code::parse(code).unwrap());
    account.email = email.map(|e| Email::parse(e).unwrap());
    account.referral_code = referral_code.map(|c| Code::parse(c).unwrap());
    let entries = if usd(available).is_positive() {
        account
            .adjust(usd(available), "seed", customer, &program(), now())
            .unwrap()
            .entries
    } else {
        Vec::new()
    };
    let outcome = world
        .store
        .write(
            &demo_shop(),
            WriteSet {
                accounts: vec![AccountWrite {
                    account,
                    expected_version: 0,
                    entries,
                    reminder_due_at: None,
                    code_change: Some(CodeChange {
                        new_code: Code::parse(code).unwrap(),
                        old_code: None,
                        referral_code: referral_code.map(|c| Code::parse(c).unwrap()),
                    }),
                }],
                ..WriteSet::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Committed);
}

/// A platform that counts the calls it gets and takes every code.
#[derive(Default)]
pub struct CountingPlatform {
    pub calls: std::sync::atomic::AtomicUsize,
    /// The amount of the last code put.
    pub last_amount: Mutex<Option<cashback_core::money::Money>>,
}

#[async_trait::async_trait]
impl cashback_app::platform_codes::PlatformCodes for CountingPlatform {
    async fn put(
        &self,
        desired: &cashback_app::platform_codes::DesiredCode,
    ) -> Result<cashback_app::platform_codes::PutOutcome, cashback_app::platform_codes::PlatformError>
    {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *self.last_amount.lock().unwrap() = Some(desired.amount);
        Ok(cashback_app::platform_codes::PutOutcome::Updated(
            cashback_app::platform_codes::CodeState {
                code: desired.code.clone(),
                platform_id: "gid://shopify/DiscountCodeNode/1".into(),
                amount: desired.amount,
                active: desired.active,
                managed: true,
            },
        ))
    }

    async fn deactivate(
        &self,
        _code: &cashback_core::ids::Code,
    ) -> Result<(), cashback_app::platform_codes::PlatformError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    async fn lookup(
        &self,
        _code: &cashback_core::ids::Code,
    ) -> Result<
        Option<cashback_app::platform_codes::CodeState>,
        cashback_app::platform_codes::PlatformError,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(None)
    }
}
