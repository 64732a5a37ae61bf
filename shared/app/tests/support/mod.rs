//! What the use-case tests share: a shop on the in-memory store, a notifier
//! that keeps what it was asked to send, and fixed code bytes.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal_macros::dec;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::program::Program;
use cashback_store::MemoryStore;

#[derive(Default)]
pub struct KeptNotifier {
    pub sent: Mutex<Vec<Notification>>,
}

#[async_trait::async_trait]
impl Notifier for KeptNotifier {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        let mut sent = self.sent.lock().unwrap();
        sent.push(notification.clone());
        Ok(Sent {
            message_id: format!("m{}", sent.len()),
        })
    }
}

impl KeptNotifier {
    pub fn kinds(&self) -> Vec<&'static str> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.kind.name())
            .collect()
    }
}

pub struct CountingCodes(pub Mutex<u8>);

impl CodeSource for CountingCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.lock().unwrap();
        *n = n.wrapping_add(1);
        [*n; GENERATED_CODE_LENGTH]
    }
}

pub fn shop() -> ShopId {
    ShopId::parse("demo.myshopify.com").unwrap()
}

pub fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

pub fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program
}

pub struct World {
    pub store: Arc<MemoryStore>,
    pub notifier: Arc<KeptNotifier>,
    pub ctx: Context,
}

pub async fn world(program: Program) -> World {
    let store = Arc::new(MemoryStore::new());
    let notifier = Arc::new(KeptNotifier::default());
    store
        .create_shop(&Shop {
            shop: shop(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: String::new(),
            created_at: t0(),
        })
        .await
        .unwrap();
    store.put_program(&shop(), &program, 0, t0()).await.unwrap();
    let ctx = Context::new(
        store.clone(),
        notifier.clone(),
        Arc::new(CountingCodes(Mutex::new(0))),
        AppConfig::default(),
    );
    World {
        store,
        notifier,
        ctx,
    }
}

pub fn line(id: &str, price: &str, quantity: u32) -> Line {
    Line {
        line_id: LineId::parse(id).unwrap(),
        product_id: None,
        variant_id: None,
        sku: None,
        vendor: None,
        quantity,
        unit_price: usd(price),
        discount: usd("0"),
        included_tax: None,
        gift_card: false,
        compare_at_price: None,
        collection_ids: Vec::new(),
    }
}

pub fn order(id: &str, customer: &str, lines: Vec<Line>) -> Order {
    let total = lines.iter().fold(usd("0"), |sum, l| {
        sum.checked_add(l.net_merchandise().unwrap()).unwrap()
    });
    Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse(customer).unwrap()),
            email: Some(Email::parse(&format!("{customer}@example.com")).unwrap()),
        },
        currency: Currency::USD,
        lines,
        subtotal: total,
        shipping: usd("0"),
        total,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_method: None,
        referral_code: None,
        occurred_at: t0(),
    }
}

pub fn refund(order_id: &str, refund_id: &str, lines: &[(&str, u32)]) -> OrderEvent {
    OrderEvent::Refunded(Refund {
        refund_id: RefundId::parse(refund_id).unwrap(),
        order_id: OrderId::parse(order_id).unwrap(),
        basis: RefundBasis::Lines {
            lines: lines
                .iter()
                .map(|(id, q)| RefundedLine {
                    line_id: LineId::parse(id).unwrap(),
                    quantity: *q,
                })
                .collect(),
        },
        occurred_at: t0(),
    })
}
