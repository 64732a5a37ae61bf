//! One shop at its Black Friday peak with one popular referrer or one
//! popular cashback coupon on every order: the `peak` example's load
//! (through the real webhook router, on the in-memory store behind
//! [`DynamoModel`]), where every order's cart names the same referral code
//! (its owner gets the program's reward for each new customer), or the
//! same cashback coupon with no total limit, or with one (`limited`: a
//! limit of three quarters of the orders sent, so its last orders find it
//! used up; run twice per rate, first with its count on the coupon's own
//! item, the layout main writes and a coupon limited before sub-counters
//! keeps until its next edit, then with its count split over capped
//! sub-counters, `cashback_app::coupon_shards`).
//!
//! ```text
//! cargo run -p cashback-benches --example peak_popular -- referrer|coupon|limited [rates] [seconds]
//! ```
//!
//! Printed per rate as `peak` prints it, plus what the referrer's account
//! or the coupon's count holds once the change feed caught up (the
//! in-memory store's log, summed as the table's stream is on AWS): one
//! reward, or one use, per order answered 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rust_decimal_macros::dec;

use cashback_app::store::{AccountWrite, CodeChange, CouponRecord, ReadRequest, Store, WriteSet};
use cashback_benches::contention::{DynamoModel, Latency};
use cashback_benches::stats::quantile;
use cashback_benches::webhook::{order_id, paid_body, program, request, send, world_on};
use cashback_core::coupon::{CashbackCoupon, CouponReward, CouponStatus, Stacking};
use cashback_core::ids::{Code, CustomerId, ShopId};
use cashback_core::ledger::Account;
use cashback_core::money::Currency;
use cashback_core::program::{Program, ReferralReward};
use cashback_store::intercept::Intercepted;
use cashback_store::MemoryStore;
use cashback_test_support::samples::{DEMO_SHOP, SHOPIFY_REFERRAL_CODE};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Popular {
    Referrer,
    Coupon,
    /// A coupon limited to `limit` uses; `split`: its count over capped
    /// sub-counters (else on the coupon's own item).
    Limited {
        split: bool,
    },
}

fn main() {
    let mut args = std::env::args().skip(1);
    let popular = match args.next().as_deref() {
        Some("coupon") => vec![Popular::Coupon],
        Some("limited") => vec![
            Popular::Limited { split: false },
            Popular::Limited { split: true },
        ],
        _ => vec![Popular::Referrer],
    };
    let rates: Vec<u64> = args
        .next()
        .unwrap_or_else(|| "50,200".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "| count | orders/s | orders | conflicts per order | first attempts cancelled | 503 | unanswered at 30 s | other non-200 | p50 | p99 | most contended item (times found held) | after the feed |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for rate in rates {
        for popular in &popular {
            runtime.block_on(run(*popular, rate, seconds));
        }
    }
}

fn shop() -> ShopId {
    ShopId::parse(DEMO_SHOP).expect("the demo shop id")
}

fn referring_program() -> Program {
    let mut program = program();
    program.referral = Some(ReferralReward::Fixed { amount: dec!(5) });
    program.referral_daily_cap = u32::MAX;
    program
}

/// Ana, whose referral code every order's cart names.
async fn seed_referrer(store: &dyn Store) {
    let mut ana = Account::open(
        shop(),
        CustomerId::parse("ana").expect("an id"),
        Currency::USD,
    );
    let code = Code::parse("CB-ANA-BALANCE").expect("a code");
    let referral = Code::parse(SHOPIFY_REFERRAL_CODE).expect("a code");
    ana.code = Some(code.clone());
    ana.referral_code = Some(referral.clone());
    store
        .write(
            &shop(),
            WriteSet::account(AccountWrite {
                account: ana,
                expected_version: 0,
                entries: Vec::new(),
                reminder_due_at: None,
                code_change: Some(CodeChange {
                    new_code: code,
                    old_code: None,
                    referral_code: Some(referral),
                }),
            }),
        )
        .await
        .expect("the referrer is seeded");
}

/// TRAIL10 (the code every order's cart carries) as a cashback coupon with
/// this total limit (None: none).
async fn seed_coupon(store: &dyn Store, limit: Option<u32>) {
    let record = CouponRecord {
        coupon: CashbackCoupon {
            code: Code::parse("TRAIL10").expect("a code"),
            display_name: "Trail 10".into(),
            description: String::new(),
            offer_text: String::new(),
            reward: CouponReward::Percentage {
                percent: dec!(5),
                max_cashback: dec!(0),
            },
            min_cart_value: dec!(0),
            usage_limit_total: limit,
            usage_limit_per_customer: None,
            payment_methods: vec![],
            starts_at: None,
            ends_at: None,
            status: CouponStatus::Approved,
            stacking: Stacking::Stackable,
        },
        uses: 0,
        created_at: cashback_benches::webhook::now(),
        updated_at: cashback_benches::webhook::now(),
    };
    store
        .put_coupon(&shop(), &record, 0)
        .await
        .expect("the coupon is stored");
}

fn trail10() -> Code {
    Code::parse("TRAIL10").expect("a code")
}

/// The limited coupon's limit: three quarters of the orders sent.
fn limit_of(rate: u64, seconds: u64) -> u32 {
    u32::try_from(rate * seconds * 3 / 4).unwrap_or(u32::MAX)
}

async fn run(popular: Popular, rate: u64, seconds: u64) {
    let model = DynamoModel::new(Latency::REVIEW);
    let counts = model.counts();
    let memory = Arc::new(MemoryStore::new());
    let store = Arc::new(Intercepted::new(memory.clone(), model));
    let world = match popular {
        Popular::Referrer => {
            let world = world_on(store, &referring_program()).await;
            seed_referrer(world.store.as_ref()).await;
            world
        }
        Popular::Coupon => {
            let world = world_on(store, &program()).await;
            seed_coupon(world.store.as_ref(), None).await;
            world
        }
        Popular::Limited { split } => {
            let world = world_on(store, &program()).await;
            let limit = limit_of(rate, seconds);
            seed_coupon(world.store.as_ref(), Some(limit)).await;
            if split {
                // As the admin API's save does; without it the count stays
                // on the coupon's item (main's layout).
                world
                    .store
                    .set_coupon_caps(&shop(), &trail10(), Some(limit))
                    .await
                    .expect("the caps are set");
            }
            world
        }
    };
    let total = rate * seconds;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let router = world.router.clone();
        tasks.push(tokio::spawn(async move {
            // A new customer each time: every order is a first order.
            let body = paid_body(order_id(n), 8_000_000_000_000_000_000 + n);
            let sent = Instant::now();
            let answer = tokio::time::timeout(
                Duration::from_secs(30),
                send(&router, request("orders/paid", &body)),
            )
            .await;
            let status = answer
                .map(|(status, _)| status)
                .unwrap_or(StatusCode::GATEWAY_TIMEOUT);
            (status, sent.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let (mut ok, mut unavailable, mut other, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    for task in tasks {
        let Ok((status, elapsed)) = task.await else {
            other += 1;
            continue;
        };
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            StatusCode::GATEWAY_TIMEOUT => dropped += 1,
            _ => other += 1,
        }
        latencies.push(elapsed.as_secs_f64() * 1000.0);
    }
    let conflicts = counts.conflicts.load(std::sync::atomic::Ordering::Relaxed);
    let hot = counts
        .hottest(1)
        .first()
        .map(|(key, n)| format!("`{key}` ({n})"))
        .unwrap_or_else(|| "none".into());
    // The change feed catches up (nothing to do where the order's own
    // write already did it all).
    memory
        .aggregate_reports()
        .await
        .expect("the feed is summed");
    let after = match popular {
        Popular::Referrer => {
            let ana = CustomerId::parse("ana").expect("an id");
            let read = memory
                .read(&shop(), &ReadRequest::account(&ana))
                .await
                .expect("a read");
            let pending = read.accounts.get(&ana).map(|a| a.value.pending.amount());
            format!(
                "referrer pending {} for {ok} orders",
                pending.unwrap_or_default()
            )
        }
        Popular::Coupon => {
            let code = trail10();
            let read = memory
                .read(&shop(), &ReadRequest::coupon(&code))
                .await
                .expect("a read");
            let uses = read.coupons.get(&code).map(|c| c.value.uses);
            format!("coupon uses {} for {ok} orders", uses.unwrap_or_default())
        }
        Popular::Limited { .. } => {
            let code = trail10();
            let read = memory
                .read(&shop(), &ReadRequest::coupon(&code))
                .await
                .expect("a read");
            let own = read.coupons.get(&code).map_or(0, |c| c.value.uses);
            let shards = memory
                .coupon_shards(&shop(), &code)
                .await
                .expect("the shards");
            let uses = own + cashback_app::coupon_shards::held(&shards);
            format!(
                "coupon uses {uses} of its limit {} for {ok} orders",
                limit_of(rate, seconds)
            )
        }
    };
    let count = match popular {
        Popular::Limited { split: true } => "sub-counters",
        Popular::Limited { split: false } => "coupon's item",
        Popular::Coupon => "unlimited",
        Popular::Referrer => "-",
    };
    println!(
        "| {count} | {rate} | {total} | {:.2} | {:.0}% | {unavailable} | {dropped} | {other} | {:.0} ms | {:.0} ms | {hot} | {after} |",
        conflicts as f64 / total as f64,
        100.0 * counts.first_attempts_cancelled() as f64 / total as f64,
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.99),
    );
}
