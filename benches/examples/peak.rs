//! One shop at its Black Friday peak, through the real webhook router on
//! the in-memory store behind [`DynamoModel`] (DynamoDB's round trips and
//! item-level transaction conflicts; what the model cannot show is listed
//! in `cashback_benches::contention`).
//!
//! ```text
//! cargo run --release -p cashback-benches --example peak -- [rates, e.g. 50,200,500] [seconds] [table WCU/s]
//! ```
//!
//! The model throttles as DynamoDB does (`contention::Capacity`): 1,000
//! WCU / 3,000 RCU a second per partition key, and the table at its
//! on-demand limit, by default a new table's (4,000 WCU, 12,000 RCU a
//! second; the third argument sets the table's write limit, e.g. twice a
//! previous peak or a warm throughput, reads at three times that).
//!
//! Orders arrive at a fixed rate whatever the answers (open loop, as
//! Shopify delivers), each a plain `orders/paid` of ten lines for a new
//! customer, all on one day. Printed per rate: orders, conflicts per order
//! (cancelled transactions the use cases retried), answers other than 200
//! (503 when the retries ran out), answers slower than Shopify's 5 s, and
//! the latency's p50/p99. Nothing here asserts a timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use cashback_benches::contention::{Capacity, DynamoModel, Latency};
use cashback_benches::stats::quantile;
use cashback_benches::webhook::{order_id, paid_body, program, request, send, world_on};
use cashback_store::intercept::Intercepted;
use cashback_store::MemoryStore;

fn main() {
    let mut args = std::env::args().skip(1);
    let rates: Vec<u64> = args
        .next()
        .unwrap_or_else(|| "50,200,500".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(60);
    let capacity = match args.next().and_then(|s| s.parse::<f64>().ok()) {
        Some(wcu) => Capacity::on_demand(0.0, 0.0, wcu, 3.0 * wcu),
        None => Capacity::NEW_TABLE,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "| orders/s | orders | conflicts per order | throttles per order | first attempts cancelled | 503 | unanswered at 30 s | other non-200 | over 5 s | p50 | p99 | items per transaction | most contended item (times found held) | most throttled partition (times) |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for rate in rates {
        runtime.block_on(run(rate, seconds, capacity));
    }
}

async fn run(rate: u64, seconds: u64, capacity: Capacity) {
    let model = DynamoModel::new(Latency::REVIEW).with_capacity(capacity);
    let counts = model.counts();
    let store = Arc::new(Intercepted::new(Arc::new(MemoryStore::new()), model));
    let world = world_on(store, &program()).await;
    let total = rate * seconds;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let router = world.router.clone();
        tasks.push(tokio::spawn(async move {
            let body = paid_body(order_id(n), 8_000_000_000_000_000_000 + n);
            let sent = Instant::now();
            // A delivery still unanswered after 30 s is counted and dropped,
            // so a rate the store cannot carry ends the run instead of
            // running for hours (Shopify gave up on it at 5 s anyway).
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
    let (mut unavailable, mut other, mut slow, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    for task in tasks {
        let Ok((status, elapsed)) = task.await else {
            other += 1;
            continue;
        };
        match status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            StatusCode::GATEWAY_TIMEOUT => dropped += 1,
            _ => other += 1,
        }
        if elapsed > Duration::from_secs(5) {
            slow += 1;
        }
        latencies.push(elapsed.as_secs_f64() * 1000.0);
    }
    let conflicts = counts.conflicts.load(std::sync::atomic::Ordering::Relaxed);
    let committed = counts.committed.load(std::sync::atomic::Ordering::Relaxed);
    let items = counts.items.load(std::sync::atomic::Ordering::Relaxed);
    let hot = counts
        .hottest(1)
        .first()
        .map(|(key, n)| format!("`{key}` ({n})"))
        .unwrap_or_else(|| "none".into());
    let throttles = counts.throttles.load(std::sync::atomic::Ordering::Relaxed);
    let throttled = counts
        .most_throttled(1)
        .first()
        .map(|(key, n)| format!("`{key}` ({n})"))
        .unwrap_or_else(|| "none".into());
    println!(
        "| {rate} | {total} | {:.2} | {:.2} | {:.0}% | {unavailable} | {dropped} | {other} | {slow} | {:.0} ms | {:.0} ms | {:.1} | {hot} | {throttled} |",
        conflicts as f64 / total as f64,
        throttles as f64 / total as f64,
        100.0 * counts.first_attempts_cancelled() as f64 / total as f64,
        quantile(&mut latencies, 0.5),
        quantile(&mut latencies, 0.99),
        items as f64 / committed.max(1) as f64,
    );
}
