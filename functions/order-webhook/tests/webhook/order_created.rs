//! Shopify's orders/create through the webhook router: the balance code's
//! discount is debited from its owner when the order is placed, so the
//! code synced to the platform shows less before the order is paid; the
//! paid event spends nothing more. An unpaid order charges at most what is
//! spendable: two checkouts that both spent the same balance leave the
//! rest as the owner's debt once the second is paid, shown in the shop
//! report, and unpaid orders alone never put the owner in debt. The order
//! as paid is what earns, not the order as placed.
//! Each case runs on the in-memory store and on DynamoDB through moto.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::*;
use cashback_app::admin;
use cashback_app::platform_codes::{sync_customer_code, SyncPolicy};
use cashback_core::ids::CustomerId;
use cashback_core::ledger::EntryKind;
use cashback_core::platform_code::PlatformSync;
use cashback_test_support::samples::{self, shopify_delivery, Stage, DEMO_SECRET};

macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Backend::Memory).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $case() {
                    if crate::support::moto_configured(stringify!($case)) {
                        super::$case(super::Backend::Dynamo).await;
                    }
                }
            )*
        }
    };
}

on_every_store!(
    orders_create_lowers_the_code_at_once_and_the_paid_event_spends_nothing_more,
    two_checkouts_spending_the_same_balance_leave_the_rest_as_debt_in_the_report,
    unpaid_orders_with_someone_elses_code_never_put_its_owner_in_debt,
    the_paid_event_s_lines_replace_the_lines_of_the_order_as_placed,
    a_refund_before_payment_is_measured_against_the_lines_as_paid,
);

const ANN_CODE: &str = "CB-ANN-BALANCE";
const SECOND_ORDER: u64 = 5_920_381_274_650_002_222;

/// The sample order under `id`, paid with Ann's code (15.75 off) by a
/// guest; at `created`, as orders/create delivers it before payment.
fn order_json(id: u64, stage: Stage, created: bool, guest: &str) -> String {
    let mut order = samples::shopify_order_with(id, &format!("#{}", id % 10_000), stage);
    order["discount_codes"][0]["code"] = json!(ANN_CODE);
    order["discount_applications"][0]["code"] = json!(ANN_CODE);
    order["customer"] = Value::Null;
    order["email"] = json!(guest);
    order["contact_email"] = json!(guest);
    order["checkout_id"] = json!(id % 1_000_000);
    if created {
        order["financial_status"] = json!("pending");
    }
    order.to_string()
}

async fn shopify(world: &World, topic: &str, body: String) -> Value {
    let headers = shopify_delivery(topic, &body, DEMO_SECRET);
    let (status, answer) = send(world, request("shopify", &headers, body)).await;
    assert_eq!(status, StatusCode::OK, "{topic}: {answer}");
    answer
}

async fn ann(world: &World) -> cashback_core::ledger::Account {
    let ann = account(world, "ann").await.unwrap();
    ann.check(&ledger(world, "ann").await).unwrap();
    ann
}

async fn redeems(world: &World) -> usize {
    ledger(world, "ann")
        .await
        .iter()
        .filter(|e| e.kind == EntryKind::Redeem)
        .count()
}

async fn orders_create_lowers_the_code_at_once_and_the_paid_event_spends_nothing_more(
    backend: Backend,
) {
    let world = backend.world().await;
    let mut synced = program();
    synced.platform_sync = PlatformSync::DiscountCode;
    world
        .store
        .put_program(&demo_shop(), &synced, 1, now())
        .await
        .unwrap();
    world.ctx.invalidate(&demo_shop());
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    let id = samples::SHOPIFY_ORDER_ID;

    let answer = shopify(
        &world,
        "orders/create",
        order_json(id, Stage::Paid, true, "guest@example.com"),
    )
    .await;
    assert_eq!(answer["applied"], 1, "{answer}");
    let after_create = ann(&world).await;
    assert_eq!(after_create.available, usd("14.25"), "15.75 spent at once");
    assert_eq!(after_create.lifetime_used, usd("15.75"));
    // The next sync puts the lower amount on the platform's code.
    let platform = CountingPlatform::default();
    let owner = CustomerId::parse("ann").unwrap();
    sync_customer_code(
        &world.ctx,
        &platform,
        &demo_shop(),
        &owner,
        None,
        &SyncPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!(*platform.last_amount.lock().unwrap(), Some(usd("14.25")));

    // Paid, then fulfilled, then a repeat of the created delivery: the
    // redemption stays the one made at creation.
    let answer = shopify(
        &world,
        "orders/paid",
        order_json(id, Stage::Paid, false, "guest@example.com"),
    )
    .await;
    assert_eq!(answer["applied"], 1, "the guest earns: {answer}");
    shopify(
        &world,
        "orders/fulfilled",
        order_json(id, Stage::Fulfilled, false, "guest@example.com"),
    )
    .await;
    let answer = shopify(
        &world,
        "orders/create",
        order_json(id, Stage::Paid, true, "guest@example.com"),
    )
    .await;
    assert_eq!(answer["duplicates"], 1, "{answer}");
    assert_eq!(ann(&world).await.available, usd("14.25"));
    assert_eq!(redeems(&world).await, 1);
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.paid_by, Some(owner));
    assert_eq!(record.redeemed, usd("15.75"));
    assert!(record.earned.is_some(), "the paid event still earns");
}

async fn two_checkouts_spending_the_same_balance_leave_the_rest_as_debt_in_the_report(
    backend: Backend,
) {
    let (world, reports) = backend.world_with_reports().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "20.00",
        None,
    )
    .await;
    // Both checkouts saw a 20.00 code (the platform had not heard of either
    // order yet) and took 15.75 each. Unpaid, the second is charged only
    // what is left.
    shopify(
        &world,
        "orders/create",
        order_json(
            samples::SHOPIFY_ORDER_ID,
            Stage::Paid,
            true,
            "one@example.com",
        ),
    )
    .await;
    shopify(
        &world,
        "orders/create",
        order_json(SECOND_ORDER, Stage::Paid, true, "two@example.com"),
    )
    .await;
    let after = ann(&world).await;
    assert_eq!(after.available, usd("0.00"));
    assert_eq!(after.debt, usd("0.00"), "no debt before payment");
    assert_eq!(after.lifetime_used, usd("20.00"));
    let second = order_record(&world, &SECOND_ORDER.to_string())
        .await
        .unwrap();
    assert_eq!(second.redeemed, usd("4.25"));
    assert_eq!(second.shortfall, usd("0.00"));
    // The first one's paid event changes nothing for Ann; the second's
    // charges the rest, as debt.
    shopify(
        &world,
        "orders/paid",
        order_json(
            samples::SHOPIFY_ORDER_ID,
            Stage::Paid,
            false,
            "one@example.com",
        ),
    )
    .await;
    assert_eq!(ann(&world).await.debt, usd("0.00"));
    assert_eq!(redeems(&world).await, 2);
    shopify(
        &world,
        "orders/paid",
        order_json(SECOND_ORDER, Stage::Paid, false, "two@example.com"),
    )
    .await;
    let after = ann(&world).await;
    assert_eq!(after.debt, usd("11.50"), "31.50 granted, 20.00 covered");
    assert_eq!(after.lifetime_used, usd("31.50"));
    let second = order_record(&world, &SECOND_ORDER.to_string())
        .await
        .unwrap();
    assert_eq!(second.redeemed, usd("4.25"));
    assert_eq!(second.shortfall, usd("11.50"));
    // Fulfilled and a repeated paid event charge nothing more.
    shopify(
        &world,
        "orders/fulfilled",
        order_json(SECOND_ORDER, Stage::Fulfilled, false, "two@example.com"),
    )
    .await;
    assert_eq!(ann(&world).await.debt, usd("11.50"));
    assert_eq!(redeems(&world).await, 3);

    reports.catch_up().await;
    let day = now().date_naive();
    let report = admin::report(&world.ctx, &demo_shop(), day, day)
        .await
        .unwrap();
    assert_eq!(report.redeemed, rust_decimal_macros::dec!(31.50));
    assert_eq!(report.redeemed_as_debt, rust_decimal_macros::dec!(11.50));
    assert_eq!(report.liability.debt, rust_decimal_macros::dec!(11.50));
}

/// The sample order, unpaid, from a stranger who typed Ann's code for
/// `discount` off.
fn unpaid_order_with_anns_code(id: u64, discount: &str) -> String {
    let mut order: Value =
        serde_json::from_str(&order_json(id, Stage::Paid, true, "stranger@example.com")).unwrap();
    // The code's own amount counts (no application allocates it).
    order["discount_codes"][0]["amount"] = json!(discount);
    order["discount_applications"] = json!([]);
    order.to_string()
}

async fn unpaid_orders_with_someone_elses_code_never_put_its_owner_in_debt(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "10.00",
        None,
    )
    .await;
    // Three orders by manual payment, never paid, each with Ann's code for
    // her whole balance.
    let ids = [
        samples::SHOPIFY_ORDER_ID,
        SECOND_ORDER,
        SECOND_ORDER + 1_000,
    ];
    for id in ids {
        let answer = shopify(
            &world,
            "orders/create",
            unpaid_order_with_anns_code(id, "10.00"),
        )
        .await;
        assert_eq!(answer["applied"], 1, "{answer}");
    }
    let after = ann(&world).await;
    assert_eq!(after.debt, usd("0.00"), "{after:?}");
    assert_eq!(after.available, usd("0.00"));
    assert_eq!(after.lifetime_used, usd("10.00"));
    assert_eq!(redeems(&world).await, 1, "orders 2 and 3 charge nothing");
    for id in &ids[1..] {
        let record = order_record(&world, &id.to_string()).await.unwrap();
        assert_eq!(record.redeemed, usd("0.00"));
        assert_eq!(record.shortfall, usd("0.00"));
    }
    // Cancelled unpaid: the first gives the 10.00 back, the others had
    // nothing to give.
    for id in ids {
        let mut order = samples::shopify_order_with(id, "#c", Stage::Cancelled);
        order["discount_codes"][0]["code"] = json!(ANN_CODE);
        order["discount_codes"][0]["amount"] = json!("10.00");
        order["customer"] = Value::Null;
        order["email"] = json!("stranger@example.com");
        order["contact_email"] = json!("stranger@example.com");
        shopify(&world, "orders/cancelled", order.to_string()).await;
    }
    let after = ann(&world).await;
    assert_eq!(after.available, usd("10.00"));
    assert_eq!(after.debt, usd("0.00"));
}

/// The sample order with one line of `price` and nothing off, as
/// orders/create (`created`, unpaid) or orders/paid delivers it.
fn one_line_order(id: u64, price: &str, created: bool) -> String {
    let mut order = samples::shopify_order_with(id, "#3003", Stage::Paid);
    let mut line = order["line_items"][0].clone();
    line["price"] = json!(price);
    line["price_set"]["shop_money"]["amount"] = json!(price);
    line["price_set"]["presentment_money"]["amount"] = json!(price);
    line["discount_allocations"] = json!([]);
    order["line_items"] = json!([line]);
    order["discount_codes"] = json!([]);
    order["discount_applications"] = json!([]);
    order["note_attributes"] = json!([]);
    order["total_discounts"] = json!("0.00");
    order["total_line_items_price"] = json!(price);
    order["subtotal_price"] = json!(price);
    order["shipping_lines"] = json!([]);
    order["total_shipping_price_set"]["shop_money"]["amount"] = json!("0.00");
    order["total_shipping_price_set"]["presentment_money"]["amount"] = json!("0.00");
    order["total_price"] = json!(price);
    order["total_price_set"]["shop_money"]["amount"] = json!(price);
    order["total_price_set"]["presentment_money"]["amount"] = json!(price);
    if created {
        order["financial_status"] = json!("pending");
    }
    order.to_string()
}

async fn the_paid_event_s_lines_replace_the_lines_of_the_order_as_placed(backend: Backend) {
    let world = backend.world().await;
    let id = samples::SHOPIFY_ORDER_ID;
    // Placed for 200.00 by bank transfer; the shop removes items before
    // the payment comes (an unpaid edit produces no refund).
    shopify(&world, "orders/create", one_line_order(id, "200.00", true)).await;
    let placed = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(placed.total, Some(usd("200.00")));
    let answer = shopify(&world, "orders/paid", one_line_order(id, "20.00", false)).await;
    assert_eq!(answer["applied"], 1, "{answer}");
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.total, Some(usd("20.00")));
    // The stored lines are the order as paid too (on DynamoDB they are an
    // item of their own: a refund later reads them).
    assert_eq!(record.eligible(), usd("20.00"), "{:?}", record.lines);
    let earned = record.earned.expect("the paid event earns");
    assert_eq!(earned.total, usd("2.00"), "10% of 20.00, not of 200.00");
    let buyer = account(&world, &shopify_customer()).await.unwrap();
    assert_eq!(buyer.pending, usd("2.00"));
    assert_eq!(buyer.lifetime_eligible_spend, usd("20.00"));
    // A later fulfilment does not relearn the order.
    let mut fulfilled: Value = serde_json::from_str(&one_line_order(id, "50.00", false)).unwrap();
    fulfilled["fulfillment_status"] = json!("fulfilled");
    shopify(&world, "orders/fulfilled", fulfilled.to_string()).await;
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.total, Some(usd("20.00")));
    assert_eq!(record.earned.unwrap().total, usd("2.00"));
}

/// What orders/create costs the store, beside the paid event's own cost:
/// the event's one read, the code owner's account (not the buyer's) read
/// once more, and one write; the paid event after it spends nothing more.
#[tokio::test]
async fn orders_create_costs_two_reads_and_one_write_on_someone_elses_code() {
    let world = Backend::Memory.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    // Warm the shop and program cache as a warm container has it.
    world.ctx.shop_program(&demo_shop(), now()).await.unwrap();
    let id = samples::SHOPIFY_ORDER_ID;
    let before = world.store.request_counts();
    shopify(
        &world,
        "orders/create",
        order_json(id, Stage::Paid, true, "guest@example.com"),
    )
    .await;
    let after = world.store.request_counts();
    let (reads, writes) = (after.reads - before.reads, after.writes - before.writes);
    println!("orders/create: {reads} reads, {writes} writes");
    assert_eq!((reads, writes), (2, 1));
    let before = world.store.request_counts();
    shopify(
        &world,
        "orders/paid",
        order_json(id, Stage::Paid, false, "guest@example.com"),
    )
    .await;
    let after = world.store.request_counts();
    println!(
        "orders/paid after it: {} reads, {} writes",
        after.reads - before.reads,
        after.writes - before.writes
    );
    assert_eq!(after.writes - before.writes, 1);
}

/// The sample order with Ann's code, as paid after the shop added a
/// 141.75 jacket to it before the payment came (an unpaid edit: no refund).
fn paid_after_an_edit(id: u64) -> String {
    let mut order: Value =
        serde_json::from_str(&order_json(id, Stage::Paid, false, "guest@example.com")).unwrap();
    let mut jacket = order["line_items"][1].clone();
    jacket["id"] = json!(7_701_000_000_303u64);
    jacket["admin_graphql_api_id"] = json!("gid://shopify/LineItem/7701000000303");
    jacket["title"] = json!("Shell Jacket");
    jacket["name"] = json!("Shell Jacket - M");
    jacket["sku"] = json!("SJ-M");
    jacket["quantity"] = json!(1);
    jacket["current_quantity"] = json!(1);
    jacket["price"] = json!("141.75");
    jacket["price_set"]["shop_money"]["amount"] = json!("141.75");
    jacket["price_set"]["presentment_money"]["amount"] = json!("141.75");
    jacket["discount_allocations"] = json!([]);
    order["line_items"].as_array_mut().unwrap().push(jacket);
    for (field, amount) in [
        ("total_line_items_price", "299.25"),
        ("subtotal_price", "283.50"),
        ("total_price", "289.50"),
    ] {
        order[field] = json!(amount);
        order[format!("{field}_set")]["shop_money"]["amount"] = json!(amount);
        order[format!("{field}_set")]["presentment_money"]["amount"] = json!(amount);
    }
    order.to_string()
}

/// A refund that arrives between orders/create and orders/paid refers to
/// lines the paid event then replaces. It is measured against the lines
/// as paid, the same lines the order earns and claws back on: the part of
/// Ann's 15.75 given back is the shoe's share of the order as paid
/// (108.00 of 283.50: 6.00), not its share of the order as placed (108.00
/// of 141.75: 12.00, which the paid event could no longer take back).
async fn a_refund_before_payment_is_measured_against_the_lines_as_paid(backend: Backend) {
    let world = backend.world().await;
    seed_customer(
        &world,
        "ann",
        ANN_CODE,
        Some("ann@example.com"),
        "30.00",
        None,
    )
    .await;
    let id = samples::SHOPIFY_ORDER_ID;
    shopify(
        &world,
        "orders/create",
        order_json(id, Stage::Paid, true, "guest@example.com"),
    )
    .await;
    assert_eq!(ann(&world).await.available, usd("14.25"));

    // The shoe (108.00 after its discount) is refunded before payment.
    let refund = samples::shopify_refund(samples::SECOND_REFUND).to_string();
    let answer = shopify(&world, "refunds/create", refund).await;
    assert_eq!(answer["applied"], 1, "{answer}");
    let waiting = ann(&world).await;
    assert_eq!(
        waiting.available,
        usd("14.25"),
        "measured once the lines as paid are known"
    );

    let answer = shopify(&world, "orders/paid", paid_after_an_edit(id)).await;
    assert_eq!(answer["applied"], 1, "{answer}");
    let after = ann(&world).await;
    assert_eq!(
        after.available,
        usd("20.25"),
        "6.00 of the 15.75 given back"
    );
    assert_eq!(after.lifetime_used, usd("9.75"));
    let record = order_record(&world, &shopify_order()).await.unwrap();
    assert_eq!(record.restored, usd("6.00"));
    assert_eq!(record.eligible(), usd("283.50"), "{:?}", record.lines);
    // The guest's cashback is clawed back on the same lines.
    let earned = record.earned.expect("the paid event earns");
    assert_eq!(earned.total, usd("28.35"), "10% of 283.50");
    // A repeat of the refund changes nothing.
    let refund = samples::shopify_refund(samples::SECOND_REFUND).to_string();
    let answer = shopify(&world, "refunds/create", refund).await;
    assert_eq!(answer["duplicates"], 1, "{answer}");
    assert_eq!(ann(&world).await.available, usd("20.25"));
}
