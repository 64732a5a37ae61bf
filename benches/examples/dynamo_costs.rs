//! DynamoDB cost per operation, on moto (BENCHMARKS.md, part 3): round
//! trips as the SDK made them and capacity units computed from the items
//! each call read or left behind (moto's own ConsumedCapacity is a
//! placeholder; it is printed beside ours for the record). Then a small
//! scheduled run per job, for the items read per due item.
//!
//! ```text
//! source infra/moto.sh && moto_start
//! cargo run --release -p cashback-benches --example dynamo_costs
//! moto_stop
//! ```
//!
//! Every operation runs through the same code as the functions: the
//! webhook's router, `checkout::validate`, `promote_due`, `send_reminders`,
//! on a `DynamoStore` whose client also carries [`WireLog`]. The warm
//! container's cache of the shop and program is filled first, as after a
//! first request, so the figures are a warm function's.

use std::future::Future;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use rust_decimal_macros::dec;

use cashback_app::checkout::{validate, Reserve};
use cashback_app::jobs::promote::{promote_due, PROMOTE_JOB};
use cashback_app::jobs::reminders::{send_reminders, REMINDERS_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::store::*;
use cashback_app::{AppConfig, Context};
use cashback_benches::capacity::{cost, Cost, Snapshot, WireLog};
use cashback_benches::webhook::{
    customer_id, demo_shop, now, order_id, paid_body, paid_order, request, send, summary, world_on,
};
use cashback_benches::{checkout, DiscardNotifier, UniqueCodes};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::orders::OrderRecord;
use cashback_core::program::{Program, ReminderPosition};
use cashback_store::DynamoStore;
use cashback_test_support::moto::{self, table_properties};
use cashback_test_support::samples::{self, Stage};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// 10% cashback, pending 30 days, a reminder as soon as it is available.
fn program() -> Program {
    let mut program = Program::new(Currency::USD);
    program.earning.merchant_percent = dec!(10);
    program.shop_url = Some("https://demo.example.com".into());
    program.reminders = vec![ReminderPosition {
        position: 0,
        enabled: true,
        offset_days: 0,
        subject: "Your CashBack is waiting".into(),
        preview_text: String::new(),
    }];
    program
}

struct Bench {
    admin: Client,
    wire: WireLog,
    table: String,
    store: Arc<DynamoStore>,
}

/// A new table, and a store on it whose client logs the wire.
async fn bench(endpoint: &str, name: &str) -> Result<Bench, Error> {
    let sdk = moto::sdk_config().await;
    let wire = WireLog::default();
    let conf = |with_log: bool| {
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint);
        if with_log {
            builder = builder.interceptor(wire.clone());
        }
        builder.build()
    };
    let admin = Client::from_conf(conf(false));
    let table = moto::unique_table_name(name);
    cashback_store::dynamo::schema::create_table(&admin, &table, &table_properties()).await?;
    let store = Arc::new(DynamoStore::new(
        Client::from_conf(conf(true)),
        table.clone(),
    ));
    Ok(Bench {
        admin,
        wire,
        table,
        store,
    })
}

impl Bench {
    /// The cost of `operation`, and what it answered.
    async fn measure<T>(&self, operation: impl Future<Output = T>) -> Result<(Cost, T), Error> {
        let before = Snapshot::take(&self.admin, &self.table).await?;
        let mark = self.wire.mark();
        let answer = operation.await;
        let after = Snapshot::take(&self.admin, &self.table).await?;
        Ok((cost(&self.wire.since(mark), &before, &after), answer))
    }
}

fn trips(cost: &Cost) -> String {
    let mut parts: Vec<String> = [
        "BatchGetItem",
        "TransactWriteItems",
        "Query",
        "GetItem",
        "PutItem",
        "UpdateItem",
    ]
    .iter()
    .filter(|op| cost.count(op) > 0)
    .map(|op| format!("{} {op}", cost.count(op)))
    .collect();
    if cost.cancelled_transactions > 0 {
        parts.push(format!("({} cancelled)", cost.cancelled_transactions));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" + ")
    }
}

fn items(cost: &Cost) -> String {
    cost.written
        .iter()
        .map(|item| {
            let index = if item.index_wcu > 0.0 {
                format!("+{} GSI", item.index_wcu)
            } else {
                String::new()
            };
            format!("{} {}B={}{index}", item.entity, item.bytes, item.table_wcu)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(label: &str, cost: &Cost, note: &str) {
    println!(
        "| {label} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {note} |",
        cost.round_trips(),
        trips(cost),
        cost.rcu,
        cost.wcu,
        cost.reported,
        items(cost),
    );
}

async fn deliver(router: &axum::Router, topic: &str, body: &str) -> serde_json::Value {
    let (_, answer) = send(router, request(topic, body)).await;
    summary(&answer)
}

/// Per-operation figures.
async fn operations(endpoint: &str) -> Result<(), Error> {
    let b = bench(endpoint, "bench-operations").await?;
    let world = world_on(b.store.clone(), &program()).await;
    let shop = demo_shop();
    // A warm container: shop and program cached.
    world.ctx.shop_program(&shop, now()).await?;
    let router = &world.router;

    println!("| operation | round trips | calls | RCU | WCU | moto's figure | items written: entity bytes=table WCU (+GSI WCU) | answer |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");

    let first = paid_body(order_id(1), customer_id(1));
    let (c, a) = b.measure(deliver(router, "orders/paid", &first)).await?;
    row("paid, new customer (10 lines)", &c, &a.to_string());

    let second = paid_body(order_id(2), customer_id(1));
    let (c, a) = b.measure(deliver(router, "orders/paid", &second)).await?;
    row(
        "paid, existing account (10 lines): the plain credited order",
        &c,
        &a.to_string(),
    );

    let (c, a) = b.measure(deliver(router, "orders/paid", &second)).await?;
    row("duplicate (the same delivery again)", &c, &a.to_string());

    let cancel = paid_order(order_id(2), customer_id(1), Stage::Cancelled).to_string();
    let (c, a) = b
        .measure(deliver(router, "orders/cancelled", &cancel))
        .await?;
    row("cancel (of the order above)", &c, &a.to_string());

    // The samples' order history: paid (not measured), then a refund.
    let sample = samples::shopify_order(Stage::Paid).to_string();
    deliver(router, "orders/paid", &sample).await;
    let refund = samples::shopify_refund(samples::FIRST_REFUND).to_string();
    let (c, a) = b
        .measure(deliver(router, "refunds/create", &refund))
        .await?;
    row("refund (partial, samples' order)", &c, &a.to_string());

    checkout::seed_balance(b.store.as_ref(), "ann", checkout::CODE, "50.00").await;
    let with_id = checkout::request(checkout::CODE, Some("ann"), 10);
    let (c, a) = b
        .measure(validate(&world.ctx, &shop, &with_id, "bench", now()))
        .await?;
    row(
        "validate, customer id given",
        &c,
        &format!("valid {}", a?.valid),
    );

    let without_id = checkout::request(checkout::CODE, None, 10);
    let (c, a) = b
        .measure(validate(&world.ctx, &shop, &without_id, "bench", now()))
        .await?;
    row(
        "validate, no customer id",
        &c,
        &format!("valid {}", a?.valid),
    );

    let mut reserving = with_id.clone();
    reserving.reserve = Some(Reserve {
        checkout_id: CheckoutId::parse("checkout-1")?,
        ttl_seconds: None,
    });
    let (c, a) = b
        .measure(validate(&world.ctx, &shop, &reserving, "bench", now()))
        .await?;
    row(
        "reserve (validate placing a hold)",
        &c,
        &format!("hold {}", a?.hold.is_some()),
    );

    // The jobs: the orders (placed 2026-03-02) fall due 30 days on; the
    // run comes a day later with the checkpoint a daily run leaves (26
    // hours of buckets to read). Releasing starts each account's reminder
    // series, whose first position is due at once: the reminders run an
    // hour later.
    let run_at = now() + Duration::days(27);
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    b.store
        .put_checkpoint(PROMOTE_JOB, &due_bucket(run_at - Duration::hours(26)))
        .await?;
    b.store
        .put_checkpoint(REMINDERS_JOB, &due_bucket(run_at - Duration::hours(2)))
        .await?;
    let (c, a) = b
        .measure(promote_due(
            &world.ctx,
            &TokioClock,
            &JobConfig::default(),
            run_at,
            far,
        ))
        .await?;
    let released = a?.released;
    row(
        &format!("release: one promote run, {released} due"),
        &c,
        &format!("released {released}"),
    );
    let (c, a) = b
        .measure(send_reminders(
            &world.ctx,
            &TokioClock,
            &JobConfig::default(),
            run_at + Duration::hours(1),
            far,
        ))
        .await?;
    let sent = a?.sent;
    row(
        &format!("reminder: one reminders run, {sent} due"),
        &c,
        &format!("sent {sent}"),
    );
    Ok(())
}

/// `accounts` accounts of which `due` have a reward falling due (and a
/// reminder after it), written straight to the store.
async fn seed(b: &Bench, accounts: u64, due: u64, due_at: DateTime<Utc>) -> Result<(), Error> {
    let shop = demo_shop();
    let ten = Money::parse("10.00", Currency::USD)?;
    for i in 0..accounts {
        let customer = CustomerId::parse(&format!("c{i}"))?;
        let mut account = Account::open(shop.clone(), customer.clone(), Currency::USD);
        let mut order = None;
        let mut reminder_due_at = None;
        account.email = Some(Email::parse(&format!("c{i}@example.com"))?);
        account.code = Some(Code::parse(&format!("cb-{i}"))?);
        if i < due {
            account.pending = ten;
            let mut record = OrderRecord::new(OrderId::parse(&format!("o{i}"))?, Currency::USD);
            record.customer = Some(customer);
            record.pending = ten;
            record.release_at = Some(due_at + Duration::minutes(i as i64));
            order = Some(OrderWrite {
                record,
                expected_version: 0,
                lines_stored: false,
                refunds_stored: 0,
            });
        } else if i < 2 * due {
            // Available since `at`: the reminder series started then.
            let at = due_at + Duration::minutes(i as i64);
            account.available = ten;
            account.lifetime_issued = ten;
            account.reminders.series_started_at = Some(at);
            reminder_due_at = Some(at);
        }
        b.store
            .write(
                &shop,
                WriteSet {
                    accounts: vec![AccountWrite {
                        account,
                        expected_version: 0,
                        entries: Vec::new(),
                        reminder_due_at,
                        code_change: None,
                    }],
                    order,
                    ..WriteSet::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// Items read per due item, for a run in a table of `accounts`.
async fn scheduled(endpoint: &str, accounts: u64, due: u64) -> Result<(), Error> {
    let b = bench(endpoint, "bench-scheduled").await?;
    let shop = demo_shop();
    let t0 = now();
    b.store
        .create_shop(&Shop {
            shop: shop.clone(),
            platform: Platform::Shopify,
            currency: Currency::USD,
            name: "Demo Store".into(),
            webhook_secret_ref: "env:DEMO".into(),
            api_key_hash: String::new(),
            created_at: t0,
            guest_id_key: None,
        })
        .await?;
    b.store.put_program(&shop, &program(), 0, t0).await?;
    let due_at = t0 + Duration::days(30);
    seed(&b, accounts, due, due_at).await?;
    let run_at = due_at + Duration::days(1);
    for job in [PROMOTE_JOB, REMINDERS_JOB] {
        b.store
            .put_checkpoint(job, &due_bucket(due_at - Duration::hours(1)))
            .await?;
    }
    let ctx = Context::new(
        b.store.clone(),
        Arc::new(DiscardNotifier::default()),
        Arc::new(UniqueCodes::default()),
        AppConfig::default(),
    );
    let far = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let (c, a) = b
        .measure(promote_due(
            &ctx,
            &TokioClock,
            &JobConfig::default(),
            run_at,
            far,
        ))
        .await?;
    let released = a?.released;
    print_scheduled("promote-pending", accounts, released, &c);
    // Releasing made `due` more reminders due (at once): 2 x due in all.
    let (c, a) = b
        .measure(send_reminders(
            &ctx,
            &TokioClock,
            &JobConfig::default(),
            run_at,
            far,
        ))
        .await?;
    let sent = a?.sent;
    print_scheduled("send-reminders", accounts, sent, &c);
    Ok(())
}

fn print_scheduled(job: &str, accounts: u64, handled: u64, cost: &Cost) {
    let per = |n: u64| n as f64 / handled.max(1) as f64;
    println!(
        "| {job} | {accounts} | {handled} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
        per(cost.items_read),
        per(cost.items_queried),
        cost.count("Query"),
        per(cost.count("BatchGetItem")),
        per(cost.count("TransactWriteItems")),
        cost.rcu / handled.max(1) as f64,
        cost.wcu / handled.max(1) as f64,
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let Some(endpoint) = moto::endpoint("dynamo_costs") else {
        eprintln!("MOTO_ENDPOINT is not set: source infra/moto.sh && moto_start");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    let small: u64 = args.next().map_or(Ok(100), |a| a.parse())?;
    let large: u64 = args.next().map_or(Ok(400), |a| a.parse())?;
    let due: u64 = args.next().map_or(Ok(20), |a| a.parse())?;
    operations(&endpoint).await?;
    println!();
    println!("| job | accounts in table | handled | items read per handled item | index items read per handled item | queries | BatchGetItem per item | TransactWriteItems per item | RCU per item | WCU per item |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for accounts in [small, large] {
        scheduled(&endpoint, accounts, due).await?;
    }
    Ok(())
}
