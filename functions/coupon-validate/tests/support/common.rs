//! The world both HTTP functions' tests share (coupon-validate and
//! customer-api): a seeded shop with a customer and balance, on any store.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use rust_decimal_macros::dec;
use tower::ServiceExt;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::{AccountWrite, CodeChange, Platform, Shop, Store, WriteSet};
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::{Code, CustomerId, ShopId, GENERATED_CODE_LENGTH};
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::program::Program;
use cashback_edge::auth::hash_api_key;

pub const API_KEY: &str = "cbk_router_test_key";
pub const ANN_CODE: &str = "CB-ANN0000000001";
pub const ANN_EMAIL: &str = "ann@example.com";

pub struct Silent;

#[async_trait::async_trait]
impl Notifier for Silent {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        Ok(Sent {
            message_id: "none".into(),
        })
    }
}

pub struct FixedCodes(pub Mutex<u8>);

impl CodeSource for FixedCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.lock().unwrap();
        *n = n.wrapping_add(1);
        [*n; GENERATED_CODE_LENGTH]
    }
}

pub fn shop() -> ShopId {
    ShopId::parse("demo.myshopify.com").unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

pub fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

pub fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.redemption.min_order_subtotal = dec!(20);
    program
}

/// A fresh container's Context (empty caches) on `store`.
pub fn fresh_context(store: Arc<dyn Store>) -> Context {
    Context::new(
        store,
        Arc::new(Silent),
        Arc::new(FixedCodes(Mutex::new(0))),
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
        .create_shop(&Shop {
            shop: shop(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: hash_api_key(API_KEY),
            created_at: t0(),
            guest_id_key: None,
        })
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
        Arc::new(FixedCodes(Mutex::new(0))),
        AppConfig::default(),
    )
}

pub async fn memory_context(balance: &str) -> Context {
    seed(Arc::new(cashback_store::MemoryStore::new()), balance).await
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
