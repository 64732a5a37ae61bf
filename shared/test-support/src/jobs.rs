//! What the scheduled functions' tests share (promote-pending and
//! send-reminders): the demo shop with a program that sends reminders,
//! orders paid through the order-event use case, the schedule's events as
//! EventBridge sends them, and folders for an outbox.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;

use cashback_app::events::handle_order_event;
use cashback_app::notify::Notifier;
use cashback_app::store::Store;
use cashback_app::{AppConfig, Context};
use cashback_core::ids::*;
use cashback_core::money::Currency;
use cashback_core::order::*;
use cashback_core::program::Program;

use crate::doubles::UniqueCodes;
use crate::fixtures::demo_shop_record;
pub use crate::fixtures::{shop, t0, usd};

/// 10% cashback, pending 30 days; a reminder at once and after 3 days.
pub fn program() -> Program {
    let mut program = crate::fixtures::program();
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

/// A context on `store` and `notifier`, with the demo shop and `program`.
pub async fn context(
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    program: &Program,
) -> Context {
    store
        .create_shop(&demo_shop_record("env:DEMO", String::new(), t0()))
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
