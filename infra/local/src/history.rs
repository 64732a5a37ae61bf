//! The demo shop's past eight weeks, played at start so the dashboard has
//! something to show: five customers' orders, cashback released after its
//! 30-day hold, codes spent at checkout, a return, and the demo customer's
//! welcome credit and a pending order a week old.
//!
//! The server's clock starts [`HISTORY_DAYS`] in the past and is moved
//! forward through the story, so every step goes through the same routes a
//! shop would call (webhooks, checkout validation) at its own time, and the
//! promote job runs as its schedule would have: the ledger, the reports'
//! daily figures and the release dates are those of a shop that has been
//! running for two months. Every step is idempotent (orders and refunds by
//! their ids, the credit by its key): a restart on DynamoDB adds nothing.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use cashback_app::admin;
use cashback_core::ids::CustomerId;

use crate::demo::{self, Shopper, CUSTOMER_ID};
use crate::seed::{demo_shop_id, DEMO_API_KEY, DEMO_SHOP};
use crate::server::{run_job, Job, Local};

/// How far back the history starts.
pub const HISTORY_DAYS: i64 = 56;

const SHOPPERS: [Shopper; 5] = [
    Shopper {
        id: CUSTOMER_ID,
        email: "ann@example.com",
        first_name: "Ann",
    },
    Shopper {
        id: 7_000_000_000_000_002,
        email: "bea@example.com",
        first_name: "Bea",
    },
    Shopper {
        id: 7_000_000_000_000_003,
        email: "carl@example.com",
        first_name: "Carl",
    },
    Shopper {
        id: 7_000_000_000_000_004,
        email: "dina@example.com",
        first_name: "Dina",
    },
    Shopper {
        id: 7_000_000_000_000_005,
        email: "eli@example.com",
        first_name: "Eli",
    },
];

const ANN: usize = 0;
const BEA: usize = 1;
const CARL: usize = 2;
const DINA: usize = 3;
const ELI: usize = 4;

/// One thing that happens in the shop.
enum Step {
    /// An order paid: (price, quantity) per line.
    Order {
        shopper: usize,
        order: u64,
        lines: &'static [(&'static str, u32)],
    },
    /// The shopper spends their code on a cart of this subtotal (skipped
    /// when the code cannot be used yet).
    Spend {
        shopper: usize,
        order: u64,
        cart: &'static str,
    },
    /// One unit of an order's first line comes back.
    Return { order: u64, price: &'static str },
    /// The shop credits the demo customer a welcome amount (after their
    /// first order: an adjustment needs an account).
    WelcomeCredit,
}

/// (day since the start, hour, step), in time order; a line each.
#[rustfmt::skip]
const STORY: &[(i64, u32, Step)] = &[
    (1, 10, Step::Order { shopper: BEA, order: 9_201, lines: &[("120.00", 1)] }),
    (3, 15, Step::Order { shopper: CARL, order: 9_202, lines: &[("32.00", 2)] }),
    (5, 11, Step::Order { shopper: DINA, order: 9_203, lines: &[("210.00", 1)] }),
    (6, 18, Step::Order { shopper: ANN, order: 9_204, lines: &[("90.00", 1)] }),
    (7, 9, Step::WelcomeCredit),
    (8, 12, Step::Order { shopper: ELI, order: 9_205, lines: &[("45.00", 1)] }),
    (11, 14, Step::Order { shopper: BEA, order: 9_206, lines: &[("40.00", 2)] }),
    (13, 16, Step::Order { shopper: CARL, order: 9_207, lines: &[("150.00", 1)] }),
    (16, 10, Step::Order { shopper: DINA, order: 9_208, lines: &[("35.00", 1)] }),
    (19, 19, Step::Order { shopper: ANN, order: 9_209, lines: &[("60.00", 1)] }),
    (22, 13, Step::Order { shopper: ELI, order: 9_210, lines: &[("130.00", 1)] }),
    (24, 11, Step::Order { shopper: BEA, order: 9_211, lines: &[("95.00", 1)] }),
    (27, 17, Step::Order { shopper: CARL, order: 9_212, lines: &[("40.00", 1)] }),
    (29, 12, Step::Order { shopper: DINA, order: 9_213, lines: &[("175.00", 1), ("25.00", 1)] }),
    (33, 15, Step::Spend { shopper: BEA, order: 9_214, cart: "60.00" }),
    (34, 10, Step::Order { shopper: ELI, order: 9_215, lines: &[("70.00", 1)] }),
    (36, 20, Step::Spend { shopper: DINA, order: 9_216, cart: "100.00" }),
    (38, 14, Step::Spend { shopper: ANN, order: 9_217, cart: "50.00" }),
    (40, 11, Step::Return { order: 9_213, price: "175.00" }),
    (42, 9, Step::Order { shopper: BEA, order: 9_218, lines: &[("140.00", 1)] }),
    (43, 16, Step::Spend { shopper: CARL, order: 9_219, cart: "30.00" }),
    (45, 13, Step::Order { shopper: CARL, order: 9_220, lines: &[("55.00", 1)] }),
    (47, 18, Step::Spend { shopper: BEA, order: 9_221, cart: "25.00" }),
    (48, 10, Step::Order { shopper: DINA, order: 9_222, lines: &[("88.00", 1)] }),
    (49, 12, Step::Order { shopper: ANN, order: 9_101, lines: &[("80.00", 1), ("25.00", 2)] }),
    (52, 15, Step::Order { shopper: ELI, order: 9_223, lines: &[("99.00", 1)] }),
    (53, 11, Step::Spend { shopper: ELI, order: 9_224, cart: "40.00" }),
    (54, 17, Step::Spend { shopper: DINA, order: 9_225, cart: "30.00" }),
    (55, 10, Step::Order { shopper: BEA, order: 9_226, lines: &[("48.00", 1)] }),
];

/// Line ids unique per order (the first is `order * 10`), so a return
/// names the right line.
fn lines_of(
    order: u64,
    lines: &[(&'static str, u32)],
) -> Vec<(u64, &'static str, u32, &'static str)> {
    lines
        .iter()
        .zip(0..)
        .map(|((price, quantity), i)| (order * 10 + i, *price, *quantity, "0.00"))
        .collect()
}

async fn code_of(app: &Router, shopper: &Shopper) -> Result<Option<String>, String> {
    let request = Request::get(format!(
        "/v1/shops/{DEMO_SHOP}/customers/{}/cashback",
        shopper.id
    ))
    .header("authorization", format!("Bearer {DEMO_API_KEY}"))
    .body(Body::empty())
    .map_err(|e| e.to_string())?;
    let (status, view) = demo::call(app, request).await?;
    if status != StatusCode::OK {
        return Err(format!("customer view answered {status}: {view}"));
    }
    Ok(view["code"].as_str().map(str::to_string))
}

/// The code at checkout on a one-line cart, held for the checkout, then the
/// order paid with it. Nothing when the code cannot be used yet.
async fn spend(
    app: &Router,
    shopper: &Shopper,
    order: u64,
    cart: &str,
    at: DateTime<Utc>,
) -> Result<(), String> {
    let Some(code) = code_of(app, shopper).await? else {
        return Ok(());
    };
    let checkout = order + 50_000;
    let validate = json!({
        "code": code, "customer_id": shopper.id.to_string(), "currency": "USD",
        "cart": {"lines": [{"line_id": "1", "product_id": "301", "quantity": 1, "unit_price": cart}], "subtotal": cart},
        "reserve": {"checkout_id": checkout.to_string()}
    });
    let request = Request::post(format!("/v1/shops/{DEMO_SHOP}/coupons/validate"))
        .header("authorization", format!("Bearer {DEMO_API_KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(validate.to_string()))
        .map_err(|e| e.to_string())?;
    let (status, answer) = demo::call(app, request).await?;
    if status != StatusCode::OK {
        return Err(format!("validate answered {status}: {answer}"));
    }
    let Some(discount) = answer
        .pointer("/discount/amount")
        .and_then(Value::as_str)
        .filter(|_| answer["valid"] == true)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let body = demo::shopify_order_of(
        shopper,
        order,
        &format!("#{order}"),
        at,
        &[(order * 10, cart, 1, &discount)],
        Some((&code, &discount)),
        Some(checkout),
    );
    demo::webhook(app, "orders/paid", &body).await.map(|_| ())
}

/// Plays the story from the clock's time (which must be [`HISTORY_DAYS`]
/// ago) up to the present, then leaves the clock at the present.
pub async fn play(app: &Router, local: &Local) -> Result<(), String> {
    let start = local.clock.now();
    for (day, hour, step) in STORY {
        let at = local
            .clock
            .advance_to(start + Duration::days(*day) + Duration::hours(i64::from(*hour)));
        // Releases due by now, as the hourly schedule would have made them.
        run_job(&local.ctx, Job::Promote, at).await?;
        match step {
            Step::Order {
                shopper,
                order,
                lines,
            } => {
                let body = demo::shopify_order_of(
                    &SHOPPERS[*shopper],
                    *order,
                    &format!("#{order}"),
                    at,
                    &lines_of(*order, lines),
                    None,
                    None,
                );
                demo::webhook(app, "orders/paid", &body).await?;
            }
            Step::Spend {
                shopper,
                order,
                cart,
            } => spend(app, &SHOPPERS[*shopper], *order, cart, at).await?,
            Step::Return { order, price } => {
                let refund = demo::shopify_refund(order + 70_000, *order, at, order * 10, 1, price);
                demo::webhook(app, "refunds/create", &refund).await?;
            }
            Step::WelcomeCredit => {
                let ann = CustomerId::parse(&CUSTOMER_ID.to_string()).map_err(|e| e.to_string())?;
                admin::adjust(
                    &local.ctx,
                    &demo_shop_id(),
                    &ann,
                    r#"{"amount": "12.50", "reason": "Welcome credit"}"#,
                    "local-demo-welcome-credit",
                    "local-demo-seed",
                    at,
                )
                .await
                .map_err(|e| format!("crediting the demo customer: {e}"))?;
            }
        }
    }
    let now = local.clock.advance_to(Utc::now());
    run_job(&local.ctx, Job::Promote, now).await?;
    local.catch_up_reports().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cashback_app::store::Store;
    use cashback_store::MemoryStore;

    use super::*;
    use crate::clock::VirtualClock;
    use crate::server::app;

    async fn played(memory: Arc<MemoryStore>, outbox: &std::path::Path) -> Local {
        let store: Arc<dyn Store> = memory.clone();
        let clock = VirtualClock::starting_at(Utc::now() - Duration::days(HISTORY_DAYS));
        crate::seed::seed(store.as_ref(), clock.now())
            .await
            .unwrap();
        let ctx = crate::context(store, outbox, "http://127.0.0.1:3000".into()).unwrap();
        let local = Local {
            ctx,
            clock,
            outbox: outbox.to_path_buf(),
            store_name: "memory".into(),
            reports: Some(memory),
        };
        play(&app(local.clone()), &local).await.unwrap();
        local
    }

    #[tokio::test]
    async fn the_demo_history_fills_the_last_month_of_the_reports_charts() {
        let store = Arc::new(MemoryStore::new());
        let outbox =
            std::env::temp_dir().join(format!("cashback-local-history-{}", std::process::id()));
        let local = played(store.clone(), &outbox).await;
        let now = local.clock.now();
        assert!(
            (now - Utc::now()).num_minutes().abs() <= 1,
            "the clock is back at the present: {now}"
        );
        let shop = demo_shop_id();
        let to = now.date_naive();
        let from = to - Duration::days(29);
        // The reports page's default: the last 30 days, a bar per day.
        let month = admin::report(&local.ctx, &shop, from, to).await.unwrap();
        assert!(month.issued.total.is_sign_positive() && !month.issued.total.is_zero());
        assert!(!month.redeemed.is_zero(), "codes were spent: {month:?}");
        assert!(!month.clawed_back.total.is_zero(), "a return: {month:?}");
        assert!(month.redemption_rate.is_some() && month.repeat_purchase_rate.is_some());
        let mut days_with_figures = 0;
        let mut day = from;
        while day <= to {
            let one = admin::report(&local.ctx, &shop, day, day).await.unwrap();
            if !one.issued.total.is_zero() || !one.redeemed.is_zero() {
                days_with_figures += 1;
            }
            day += Duration::days(1);
        }
        assert!(days_with_figures >= 8, "{days_with_figures} days");

        // The demo customer: spendable balance, and last week's order pending.
        let ann = CustomerId::parse(&CUSTOMER_ID.to_string()).unwrap();
        let view = admin::get_customer(&local.ctx, &shop, &ann).await.unwrap();
        assert!(view.available.is_sign_positive() && !view.available.is_zero());
        assert!(!view.pending.is_zero(), "{view:?}");
        assert!(!view.lifetime_used.is_zero(), "Ann spent her code once");

        // Played again (a restart on a kept store): nothing is added.
        let again = played(store, &outbox).await;
        let twice = admin::report(&again.ctx, &shop, from, to).await.unwrap();
        assert_eq!(twice.issued, month.issued);
        assert_eq!(twice.redeemed, month.redeemed);
        let view_again = admin::get_customer(&again.ctx, &shop, &ann).await.unwrap();
        assert_eq!(view_again.available, view.available);
        let _ = std::fs::remove_dir_all(&outbox);
    }
}
