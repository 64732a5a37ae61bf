//! `cashback-local demo`: one customer's story, end to end, through the same
//! HTTP routes a shop would call, printed as a timeline. It runs in-process on
//! the embedded default (in-memory store, emails into an outbox folder) and
//! moves the clock instead of waiting 30 days.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::seed::{DEMO_ADMIN_TOKEN, DEMO_API_KEY, DEMO_SHOP, DEMO_WEBHOOK_SECRET};
use crate::server::{run_job, Job, Local};

pub(crate) const CUSTOMER_ID: u64 = 7_000_000_000_000_001;
const CUSTOMER_EMAIL: &str = "ann@example.com";

/// What the story prints; tests read the same lines.
pub struct Timeline {
    pub lines: Vec<String>,
}

impl Timeline {
    fn say(&mut self, at: DateTime<Utc>, text: impl Into<String>) {
        let line = format!("{}  {}", at.format("%Y-%m-%d %H:%M"), text.into());
        println!("{line}");
        self.lines.push(line);
    }
}

pub(crate) async fn call(
    app: &Router,
    request: Request<Body>,
) -> Result<(StatusCode, Value), String> {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, json))
}

pub(crate) async fn webhook(app: &Router, topic: &str, body: &Value) -> Result<Value, String> {
    let body = body.to_string();
    let mut request = Request::post("/webhooks/shopify");
    for (name, value) in
        cashback_test_support::samples::shopify_delivery(topic, &body, DEMO_WEBHOOK_SECRET)
    {
        request = request.header(name, value);
    }
    let (status, json) = call(
        app,
        request.body(Body::from(body)).map_err(|e| e.to_string())?,
    )
    .await?;
    if status != StatusCode::OK {
        return Err(format!("webhook {topic} answered {status}: {json}"));
    }
    Ok(json)
}

async fn balance(app: &Router) -> Result<Value, String> {
    let request = Request::get(format!(
        "/v1/shops/{DEMO_SHOP}/customers/{CUSTOMER_ID}/cashback"
    ))
    .header("authorization", format!("Bearer {DEMO_API_KEY}"))
    .body(Body::empty())
    .map_err(|e| e.to_string())?;
    let (status, json) = call(app, request).await?;
    if status != StatusCode::OK {
        return Err(format!("customer view answered {status}: {json}"));
    }
    Ok(json)
}

fn amount(view: &Value, field: &str) -> String {
    view.pointer(&format!("/{field}/amount"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string()
}

fn money(amount: &str) -> Value {
    json!({"shop_money": {"amount": amount, "currency_code": "USD"}, "presentment_money": {"amount": amount, "currency_code": "USD"}})
}

/// A Shopify REST Order as orders/paid delivers it, placed by Ann.
pub(crate) fn shopify_order(
    id: u64,
    name: &str,
    at: DateTime<Utc>,
    lines: &[(u64, &str, u32, &str)],
    code: Option<(&str, &str)>,
    checkout_id: Option<u64>,
) -> Value {
    let ann = Shopper {
        id: CUSTOMER_ID,
        email: CUSTOMER_EMAIL,
        first_name: "Ann",
    };
    shopify_order_of(&ann, id, name, at, lines, code, checkout_id)
}

/// Who places a demo order.
pub(crate) struct Shopper {
    pub id: u64,
    pub email: &'static str,
    pub first_name: &'static str,
}

/// A Shopify REST Order as orders/paid delivers it, placed by `shopper`.
pub(crate) fn shopify_order_of(
    shopper: &Shopper,
    id: u64,
    name: &str,
    at: DateTime<Utc>,
    lines: &[(u64, &str, u32, &str)],
    code: Option<(&str, &str)>,
    checkout_id: Option<u64>,
) -> Value {
    let mut subtotal = rust_decimal::Decimal::ZERO;
    let line_items: Vec<Value> = lines
        .iter()
        .map(|(line_id, price, quantity, discount)| {
            let price_d: rust_decimal::Decimal = price.parse().unwrap_or_default();
            let discount_d: rust_decimal::Decimal = discount.parse().unwrap_or_default();
            subtotal += price_d * rust_decimal::Decimal::from(*quantity) - discount_d;
            json!({
                "id": line_id, "product_id": line_id + 100, "variant_id": line_id + 200,
                "title": format!("Item {line_id}"), "sku": format!("SKU-{line_id}"), "vendor": "Demo",
                "quantity": quantity, "current_quantity": quantity, "price": price, "price_set": money(price),
                "gift_card": false, "taxable": true, "tax_lines": [], "total_discount": "0.00",
                "discount_allocations": if discount_d.is_zero() { json!([]) } else { json!([{"amount": discount, "amount_set": money(discount), "discount_application_index": 0}]) }
            })
        })
        .collect();
    let subtotal = format!("{:.2}", subtotal);
    let (discount_codes, applications) = match code {
        Some((code, amount)) => (
            json!([{"code": code, "amount": amount, "type": "fixed_amount"}]),
            json!([{"type": "discount_code", "code": code, "value": amount, "value_type": "fixed_amount", "allocation_method": "across", "target_selection": "all", "target_type": "line_item"}]),
        ),
        None => (json!([]), json!([])),
    };
    let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "id": id, "admin_graphql_api_id": format!("gid://shopify/Order/{id}"), "name": name, "order_number": 1000,
        "email": shopper.email, "contact_email": shopper.email, "currency": "USD", "presentment_currency": "USD",
        "created_at": stamp, "processed_at": stamp, "updated_at": stamp, "test": false,
        "financial_status": "paid", "fulfillment_status": null, "taxes_included": false,
        "checkout_id": checkout_id, "payment_gateway_names": ["shopify_payments"],
        "customer": {"id": shopper.id, "email": shopper.email, "first_name": shopper.first_name},
        "line_items": line_items, "discount_codes": discount_codes, "discount_applications": applications,
        "subtotal_price": subtotal, "subtotal_price_set": money(&subtotal),
        "total_price": subtotal, "total_price_set": money(&subtotal),
        "total_tax": "0.00", "total_discounts": code.map(|c| c.1).unwrap_or("0.00"),
        "total_shipping_price_set": money("0.00"), "shipping_lines": [], "note_attributes": [], "refunds": []
    })
}

pub(crate) fn shopify_refund(
    id: u64,
    order_id: u64,
    at: DateTime<Utc>,
    line_id: u64,
    quantity: u32,
    subtotal: &str,
) -> Value {
    let stamp = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    json!({
        "id": id, "order_id": order_id, "created_at": stamp, "processed_at": stamp, "note": "Customer returned it", "restock": true,
        "refund_line_items": [{"id": id + 1, "line_item_id": line_id, "quantity": quantity, "restock_type": "return",
                               "subtotal": subtotal.parse::<f64>().unwrap_or(0.0), "subtotal_set": money(subtotal), "total_tax": 0.0, "total_tax_set": money("0.00")}],
        "transactions": [{"id": id + 2, "kind": "refund", "status": "success", "amount": subtotal, "currency": "USD", "gateway": "shopify_payments"}],
        "order_adjustments": []
    })
}

/// Plays the story and returns its timeline. `app` and `local` share one context.
pub async fn play(app: &Router, local: &Local, outbox: &Path) -> Result<Timeline, String> {
    let mut timeline = Timeline { lines: Vec::new() };
    let clock = &local.clock;
    let start = clock.now();
    println!("Demo shop {DEMO_SHOP}: 5% cashback + a 2% partner match, held 30 days, reminders at 0, 3 and 14 days.\n");

    // 1. Ann pays an order.
    let order = shopify_order(
        9_001,
        "#9001",
        start,
        &[(1, "150.00", 1, "0.00"), (2, "45.00", 2, "0.00")],
        None,
        None,
    );
    webhook(app, "orders/paid", &order).await?;
    let view = balance(app).await?;
    let release = view
        .pointer("/pending_releases/0/release_at")
        .and_then(Value::as_str)
        .unwrap_or("in 30 days")
        .to_string();
    timeline.say(clock.now(), format!("Ann pays order #9001 (240.00 USD): earns {} USD cashback, pending until {}; 'cashback earned' email", amount(&view, "pending"), &release[..release.len().min(10)]));
    let code = view
        .pointer("/code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    timeline.say(
        clock.now(),
        format!(
            "Her personal code is {code} (available {} USD)",
            amount(&view, "available")
        ),
    );

    // 2. Thirty days later the promote job releases it.
    let released_at = clock.advance_to(start + Duration::days(30) + Duration::minutes(1));
    let summary = run_job(&local.ctx, Job::Promote, released_at).await?;
    let view = balance(app).await?;
    timeline.say(released_at, format!("promote-pending releases {} order(s): available {} USD, pending {} USD; 'cashback ready' email", summary["released"], amount(&view, "available"), amount(&view, "pending")));

    // 3. The reminder series starts.
    let summary = run_job(&local.ctx, Job::Reminders, released_at).await?;
    timeline.say(
        released_at,
        format!(
            "send-reminders sends reminder 0 ({} email)",
            summary["sent"]
                .as_u64()
                .or(summary["emails_sent"].as_u64())
                .unwrap_or(0)
        ),
    );
    let later = clock.advance_to(start + Duration::days(33) + Duration::minutes(2));
    let summary = run_job(&local.ctx, Job::Reminders, later).await?;
    timeline.say(
        later,
        format!(
            "send-reminders sends reminder 1 three days later ({} email)",
            summary["sent"]
                .as_u64()
                .or(summary["emails_sent"].as_u64())
                .unwrap_or(0)
        ),
    );

    // 4. Checkout: the code on a 10.00 cart takes 10.00 and leaves the rest.
    let validate = json!({
        "code": code, "customer_id": CUSTOMER_ID.to_string(), "currency": "USD",
        "cart": {"lines": [{"line_id": "1", "product_id": "301", "quantity": 1, "unit_price": "10.00"}], "subtotal": "10.00"},
        "reserve": {"checkout_id": "55501"}
    });
    let request = Request::post(format!("/v1/shops/{DEMO_SHOP}/coupons/validate"))
        .header("authorization", format!("Bearer {DEMO_API_KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(validate.to_string()))
        .map_err(|e| e.to_string())?;
    let (status, answer) = call(app, request).await?;
    if status != StatusCode::OK {
        return Err(format!("validate answered {status}: {answer}"));
    }
    let discount = answer
        .pointer("/discount/amount")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    timeline.say(later, format!("At checkout the code is valid: {discount} USD off a 10.00 USD cart, held for the checkout; {} USD would be left", answer.pointer("/balance_after/amount").and_then(Value::as_str).unwrap_or("?")));
    let second = shopify_order(
        9_002,
        "#9002",
        later,
        &[(11, "10.00", 1, &discount)],
        Some((&code, &discount)),
        Some(55_501),
    );
    webhook(app, "orders/paid", &second).await?;
    let view = balance(app).await?;
    timeline.say(
        later,
        format!(
            "Ann pays order #9002 with her code: {discount} USD redeemed, {} USD left on the code",
            amount(&view, "available")
        ),
    );

    // 5. She returns one item of the first order: cashback on it is clawed back.
    let refund = shopify_refund(77_001, 9_001, later, 1, 1, "150.00");
    webhook(app, "refunds/create", &refund).await?;
    let view = balance(app).await?;
    timeline.say(later, format!("Ann returns the 150.00 USD item of #9001: its 10.50 USD cashback is clawed back; available {} USD, debt {} USD (paid first from her next cashback); 'cashback adjusted' email", amount(&view, "available"), amount(&view, "debt")));

    // 6. The shop records Ann's birthday (month and day) ten days on; on the
    //    day the bonus job credits the program's birthday bonus.
    let birthday = later + Duration::days(10);
    let body = json!({"month": birthday.month(), "day": birthday.day()});
    let request = Request::put(format!(
        "/v1/shops/{DEMO_SHOP}/customers/{CUSTOMER_ID}/birthday"
    ))
    .header("authorization", format!("Bearer {DEMO_ADMIN_TOKEN}"))
    .header("content-type", "application/json")
    .body(Body::from(body.to_string()))
    .map_err(|e| e.to_string())?;
    let (status, answer) = call(app, request).await?;
    if status != StatusCode::OK {
        return Err(format!("setting the birthday answered {status}: {answer}"));
    }
    timeline.say(
        later,
        format!(
            "The shop records Ann's birthday: {}",
            birthday.format("%-d %B")
        ),
    );
    let party = clock.advance_to(
        birthday
            .date_naive()
            .and_hms_opt(0, 30, 0)
            .map(|t| t.and_utc())
            .unwrap_or(birthday),
    );
    let summary = run_job(&local.ctx, Job::Bonuses, party).await?;
    let view = balance(app).await?;
    timeline.say(party, format!("The bonus job credits {} birthday bonus ({} USD): available {} USD; 'happy birthday' email", summary["credited"], summary["credited_amount"]["USD"].as_str().unwrap_or("0"), amount(&view, "available")));

    let mut emails: Vec<String> = std::fs::read_dir(outbox)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.ends_with(".eml"))
                .collect()
        })
        .unwrap_or_default();
    emails.sort();
    println!("\n{} emails in {}:", emails.len(), outbox.display());
    for email in &emails {
        println!("  {email}");
    }
    Ok(timeline)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cashback_app::store::Store;
    use cashback_store::MemoryStore;

    use crate::clock::VirtualClock;
    use crate::server::app;

    use super::*;

    #[tokio::test]
    async fn the_demo_story_plays_to_its_end_with_a_birthday_bonus() {
        let outbox = std::env::temp_dir().join(format!("cashback-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&outbox);
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn Store> = memory.clone();
        let clock = VirtualClock::new();
        crate::seed::seed(store.as_ref(), clock.now())
            .await
            .unwrap();
        let ctx = crate::context(store, &outbox, "http://127.0.0.1:3000".into()).unwrap();
        let local = Local {
            ctx,
            clock,
            outbox: outbox.clone(),
            store_name: "memory".into(),
            reports: Some(memory),
        };
        let router = app(local.clone());
        let timeline = play(&router, &local, &outbox).await.unwrap();
        let last = timeline.lines.last().unwrap();
        assert!(
            last.contains("credits 1 birthday bonus (5.00 USD)"),
            "{}",
            timeline.lines.join("\n")
        );
        let emails = std::fs::read_dir(&outbox).unwrap().count();
        assert!(emails >= 5, "{emails} emails");
        let _ = std::fs::remove_dir_all(&outbox);
    }
}
