//! Side-by-side timings the criterion benches cannot give: ratios measured
//! in alternating rounds in one process (so a neighbour's compile slows both
//! sides alike), percentiles from every sample, and fixed workloads for
//! callgrind's instruction counts.
//!
//! ```text
//! cargo run --release -p cashback-benches --example measure -- webhook [rounds] [per_round]
//! cargo run --release -p cashback-benches --example measure -- validate [rounds] [samples]
//! # one workload for callgrind, counted inside `measured_section` only:
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_section*' \
//!   target/release/examples/measure count floor|new|duplicate|validate1|validate10|validate100 [n]
//! ```
//!
//! Nothing here asserts a timing; figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;

use cashback_app::checkout::validate;
use cashback_app::Context;
use cashback_benches::stats::{quantile, spread};
use cashback_benches::webhook::{
    self, customer_id, floor, order_id, paid_body, request, send, summary, warm_customers,
    WebhookWorld,
};
use cashback_benches::{checkout, stats};
use cashback_test_support::samples::DEMO_SECRET;

type Runtime = tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// What a workload runs, prepared before it is timed or counted.
enum Work {
    Floor(Vec<String>),
    Requests(Vec<Request<Body>>),
    Validate(Vec<cashback_app::checkout::ValidateRequest>),
}

struct Bench {
    rt: Runtime,
    hook: WebhookWorld,
    validation: Context,
    next_order: u64,
    duplicate: String,
}

impl Bench {
    fn new() -> Bench {
        let rt = runtime();
        let (hook, validation) = rt.block_on(async {
            let hook = webhook::world().await;
            warm_customers(&hook).await;
            (hook, checkout::world().await)
        });
        let duplicate = paid_body(order_id(0), customer_id(0));
        let (_, answer) = rt.block_on(send(&hook.router, request("orders/paid", &duplicate)));
        assert_eq!(summary(&answer)["applied"], 1);
        Bench {
            rt,
            hook,
            validation,
            next_order: 1,
            duplicate,
        }
    }

    fn prepare(&mut self, what: &str, n: usize) -> Work {
        match what {
            "floor" => Work::Floor((0..n).map(|_| self.duplicate.clone()).collect()),
            "new" => Work::Requests(
                (0..n)
                    .map(|_| {
                        self.next_order += 1;
                        let k = self.next_order;
                        request("orders/paid", &paid_body(order_id(k), customer_id(k)))
                    })
                    .collect(),
            ),
            "duplicate" => Work::Requests(
                (0..n)
                    .map(|_| request("orders/paid", &self.duplicate))
                    .collect(),
            ),
            other => {
                let lines: usize = other
                    .strip_prefix("validate")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or_else(|| panic!("unknown workload {other}"));
                Work::Validate(
                    (0..n)
                        .map(|_| checkout::request(checkout::CODE, Some(checkout::CUSTOMER), lines))
                        .collect(),
                )
            }
        }
    }

    /// Runs one prepared item; returns nothing the optimiser may drop.
    fn run_one(&self, work: &mut Work) {
        match work {
            Work::Floor(bodies) => {
                let body = bodies.pop().expect("prepared");
                black_box(floor(body.as_bytes(), DEMO_SECRET.as_bytes()));
            }
            Work::Requests(requests) => {
                let request = requests.pop().expect("prepared");
                black_box(self.rt.block_on(send(&self.hook.router, request)));
            }
            Work::Validate(requests) => {
                let request = requests.pop().expect("prepared");
                let shop = checkout::shop();
                black_box(
                    self.rt
                        .block_on(validate(
                            &self.validation,
                            &shop,
                            &request,
                            "bench",
                            checkout::now(),
                        ))
                        .expect("validates"),
                );
            }
        }
    }

    /// Nanoseconds of each of `n` items of `what`.
    fn samples(&mut self, what: &str, n: usize) -> Vec<f64> {
        let mut work = self.prepare(what, n);
        (0..n)
            .map(|_| {
                let started = Instant::now();
                self.run_one(&mut work);
                started.elapsed().as_nanos() as f64
            })
            .collect()
    }

    /// Mean nanoseconds per item over `n` items of `what`, timed as a block.
    fn block(&mut self, what: &str, n: usize) -> f64 {
        let mut work = self.prepare(what, n);
        let started = Instant::now();
        for _ in 0..n {
            self.run_one(&mut work);
        }
        started.elapsed().as_nanos() as f64 / n as f64
    }
}

/// The section callgrind counts (`--toggle-collect='*measured_section*'`).
#[inline(never)]
fn measured_section(bench: &Bench, work: &mut Work, n: usize) {
    for _ in 0..n {
        bench.run_one(work);
    }
}

fn webhook_rounds(bench: &mut Bench, rounds: usize, per_round: usize) {
    // Warm up both sides (allocator, caches, lazy statics) before timing.
    bench.block("floor", per_round);
    bench.block("new", per_round);
    let (mut floors, mut news, mut dups, mut ratio_new, mut ratio_dup) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Alternate the order so neither side always runs first.
        let (f, n, d) = if round % 2 == 0 {
            let f = bench.block("floor", per_round);
            let n = bench.block("new", per_round);
            let d = bench.block("duplicate", per_round);
            (f, n, d)
        } else {
            let d = bench.block("duplicate", per_round);
            let n = bench.block("new", per_round);
            let f = bench.block("floor", per_round);
            (f, n, d)
        };
        floors.push(f / 1000.0);
        news.push(n / 1000.0);
        dups.push(d / 1000.0);
        ratio_new.push(n / f);
        ratio_dup.push(d / f);
    }
    println!("webhook: {rounds} rounds x {per_round} deliveries, median (min..max) per round");
    println!("  floor (parse + HMAC)       {} us", spread(&mut floors, 1));
    println!("  handler, new order         {} us", spread(&mut news, 1));
    println!("  handler, duplicate         {} us", spread(&mut dups, 1));
    println!("  ratio new / floor          {}", spread(&mut ratio_new, 2));
    println!("  ratio duplicate / floor    {}", spread(&mut ratio_dup, 2));
    println!("  body: {} bytes", bench.duplicate.len());
}

fn validate_rounds(bench: &mut Bench, rounds: usize, samples: usize) {
    let sizes = ["validate1", "validate10", "validate100"];
    for size in sizes {
        bench.samples(size, samples / 10 + 1);
    }
    let mut p50: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut p99: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut all: Vec<Vec<f64>> = vec![vec![]; 3];
    for round in 0..rounds {
        for k in 0..3 {
            let i = (k + round) % 3;
            let mut s = bench.samples(sizes[i], samples);
            p50[i].push(quantile(&mut s, 0.5) / 1000.0);
            p99[i].push(quantile(&mut s, 0.99) / 1000.0);
            all[i].extend(s);
        }
    }
    println!("validate: {rounds} rounds x {samples} calls per cart size; us, median (min..max) over rounds");
    for (i, lines) in [1, 10, 100].iter().enumerate() {
        let pooled_p50 = quantile(&mut all[i], 0.5) / 1000.0;
        let pooled_p99 = quantile(&mut all[i], 0.99) / 1000.0;
        println!(
            "  {lines:>3} lines: p50 {} p99 {}  (pooled: p50 {pooled_p50:.1} p99 {pooled_p99:.1})",
            stats::spread(&mut p50[i], 1),
            stats::spread(&mut p99[i], 1),
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "webhook".into());
    let mut bench = Bench::new();
    match mode.as_str() {
        "webhook" => {
            let rounds = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
            let per_round = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
            webhook_rounds(&mut bench, rounds, per_round);
        }
        "validate" => {
            let rounds = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
            let samples = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
            validate_rounds(&mut bench, rounds, samples);
        }
        "count" => {
            let what = args.next().expect("a workload");
            let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
            // Warm once outside the counted section (lazy statics, first
            // allocations), then count n items.
            let mut warm = bench.prepare(&what, 10);
            warm_up(&bench, &mut warm, 10);
            let mut work = bench.prepare(&what, n);
            measured_section(&bench, &mut work, n);
            println!("counted {n} x {what}");
        }
        other => panic!("unknown mode {other} (webhook, validate, count)"),
    }
}

/// The same loop outside the counted section, for warming up.
#[inline(never)]
fn warm_up(bench: &Bench, work: &mut Work, n: usize) {
    for _ in 0..n {
        bench.run_one(work);
    }
}
