//! What the function's tests share: a shop with a program on any store,
//! orders paid through the order-event use case, scheduled events and
//! invocation contexts, and moto (DynamoDB and SES) when `MOTO_ENDPOINT` is
//! set.
#![allow(dead_code)]

#[path = "../../../../shared/store/tests/support/moto.rs"]
pub mod moto;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, TimeZone, Utc};
use lambda_runtime::LambdaEvent;
use rust_decimal_macros::dec;

use cashback_app::events::handle_order_event;
use cashback_app::notify::Notifier;
use cashback_app::store::{Platform, Shop, Store};
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::money::{Currency, Money};
use cashback_core::order::*;
use cashback_core::program::Program;

pub fn shop() -> ShopId {
    ShopId::parse("demo.myshopify.com").unwrap()
}

pub fn usd(amount: &str) -> Money {
    Money::parse(amount, Currency::USD).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

/// 10% cashback, pending 30 days; a reminder at once and after 3 days.
pub fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.shop_url = Some("https://demo.example.com".into());
    program.reminders = [(0u8, 0u32), (1, 3)]
        .into_iter()
        .map(
            |(position, offset_days)| cashback_core::program::ReminderPosition {
                position,
                enabled: true,
                offset_days,
                subject: format!("Reminder {position}: your CashBack is waiting"),
                preview_text: String::new(),
            },
        )
        .collect();
    program
}

/// Unique codes for any number of customers.
#[derive(Default)]
pub struct UniqueCodes(AtomicU64);

impl CodeSource for UniqueCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        let mut n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let mut bytes = [0u8; GENERATED_CODE_LENGTH];
        for byte in bytes.iter_mut().rev() {
            *byte = (n % 32) as u8;
            n /= 32;
        }
        bytes
    }
}

/// A context on `store` and `notifier`, with the demo shop and `program`.
pub async fn context(
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    program: &Program,
) -> Context {
    store
        .create_shop(&Shop {
            shop: shop(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: String::new(),
            created_at: t0(),
            guest_id_key: None,
        })
        .await
        .unwrap();
    store.put_program(&shop(), program, 0, t0()).await.unwrap();
    Context::new(
        store,
        notifier,
        Arc::new(UniqueCodes::default()),
        AppConfig::default(),
    )
}

/// Customer `customer` pays order `id` of `amount` at t0.
pub async fn pay(ctx: &Context, id: &str, customer: &str, amount: &str) {
    let total = usd(amount);
    let order = Order {
        order_id: OrderId::parse(id).unwrap(),
        customer: CustomerRef {
            id: Some(CustomerId::parse(customer).unwrap()),
            email: Some(Email::parse(&format!("{customer}@example.com")).unwrap()),
        },
        currency: Currency::USD,
        lines: vec![Line {
            line_id: LineId::parse("1").unwrap(),
            product_id: None,
            variant_id: None,
            sku: None,
            vendor: None,
            quantity: 1,
            unit_price: total,
            discount: usd("0"),
            included_tax: None,
            gift_card: false,
            compare_at_price: None,
            collection_ids: Vec::new(),
        }],
        subtotal: total,
        shipping: usd("0"),
        total,
        discount_codes: Vec::new(),
        checkout_id: None,
        payment_methods: Vec::new(),
        placed_at: None,
        referral_code: None,
        occurred_at: t0(),
    };
    handle_order_event(ctx, &shop(), &OrderEvent::Paid(order), t0())
        .await
        .unwrap();
}

/// The schedule's event at `time` (as EventBridge sends it), in an
/// invocation with `seconds_left` before its deadline.
pub fn scheduled(time: Option<DateTime<Utc>>, seconds_left: u64) -> LambdaEvent<EventBridgeEvent> {
    let mut json = serde_json::json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/cashback-schedule"],
        "detail": {}
    });
    if let Some(time) = time {
        json["time"] = serde_json::Value::String(time.to_rfc3339());
    }
    let payload: EventBridgeEvent = serde_json::from_value(json).unwrap();
    let mut context = lambda_runtime::Context::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + seconds_left * 1000;
    LambdaEvent::new(payload, context)
}

/// A fresh folder for an outbox.
pub fn temp_dir(label: &str) -> PathBuf {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    std::env::temp_dir().join(format!("{label}-{}-{nanos}", std::process::id()))
}

/// An SES notifier on moto with a freshly verified sender.
pub async fn ses_on_moto(endpoint: &str) -> (cashback_mail::SesNotifier, String) {
    let sdk = moto::sdk_config().await;
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let from = format!(
        "rewards-{}-{nanos}@mail.demo.example.com",
        std::process::id()
    );
    let mut config = cashback_mail::SesConfig::new(Email::parse(&from).unwrap());
    config.endpoint_url = Some(endpoint.to_string());
    let notifier = cashback_mail::SesNotifier::from_sdk_config(&sdk, config);
    notifier
        .client()
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("moto verifies the sender identity");
    (notifier, from)
}

/// What moto recorded of raw SES sends from `from`: (destinations, raw MIME).
pub async fn moto_ses_messages(endpoint: &str, from: &str) -> Vec<(Vec<String>, String)> {
    let endpoint = endpoint.to_string();
    let data = tokio::task::spawn_blocking(move || get_json(&endpoint, "/moto-api/data.json"))
        .await
        .unwrap();
    data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|message| message["source"] == from)
        .map(|message| {
            let to = message["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect();
            (
                to,
                message["raw_data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `GET {endpoint}{path}` over plain HTTP/1.0 (moto on loopback), as JSON.
fn get_json(endpoint: &str, path: &str) -> serde_json::Value {
    let authority = endpoint
        .trim_end_matches('/')
        .strip_prefix("http://")
        .expect("MOTO_ENDPOINT is an http:// URL")
        .to_string();
    let mut stream = TcpStream::connect(&authority).expect("connect to moto");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    serde_json::from_str(body).expect("JSON from moto")
}
