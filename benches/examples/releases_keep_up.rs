//! How long 100,000 due releases take to be released, and their "cashback
//! ready" emails sent, at modelled service latency: every store call takes
//! 5 ms (a Store decorator on the in-memory store), every send 50 ms, and
//! emails are paced to 14 a second. Runs follow the schedule: one every 15
//! minutes, each with the Lambda's 900 s less the 15 s margin.
//!
//! Time is tokio's paused clock: the runtime jumps to the next timer when
//! every task waits, so the figures are the modelled latencies and pacing
//! (the machine's own CPU time is not in them; it is printed apart).
//!
//! ```text
//! cargo run -p cashback-benches --features virtual-time --example releases_keep_up -- \
//!     [due=100000] [concurrency=32] [sends_per_second=14] [store_ms=5] [send_ms=50]
//! ```
//!
//! Nothing asserts a timing: the figures go to BENCHMARKS.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, TimeZone, Utc};
use tokio::time::Instant;

use cashback_app::jobs::promote::{promote_due, PROMOTE_JOB, READY_EMAILS_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::*;
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;
use cashback_store::intercept::{Call, Intercepted, Interceptor, Pending};
use cashback_store::MemoryStore;

/// Every store call waits `latency` first (DynamoDB's round trip).
struct Latency {
    latency: StdDuration,
    calls: AtomicU64,
}

impl Interceptor for Latency {
    fn around<'a, T: Send + 'a>(&'a self, _call: Call, run: Pending<'a, T>) -> Pending<'a, T> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.latency).await;
            run.await
        })
    }
}

/// SES at `latency` per send: counts the ready emails and when they went.
struct SlowMailer {
    latency: StdDuration,
    start: Instant,
    ready: AtomicU64,
    first_ready: Mutex<Option<StdDuration>>,
    last_ready: Mutex<Option<StdDuration>>,
}

#[async_trait::async_trait]
impl Notifier for SlowMailer {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        tokio::time::sleep(self.latency).await;
        if notification.idempotency_key.starts_with("ready:") {
            let at = self.start.elapsed();
            let n = self.ready.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first_ready.lock() {
                first.get_or_insert(at);
            }
            if let Ok(mut last) = self.last_ready.lock() {
                *last = Some(at);
            }
            return Ok(Sent {
                message_id: n.to_string(),
            });
        }
        Ok(Sent {
            message_id: String::new(),
        })
    }
}

struct NoCodes;

impl CodeSource for NoCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        [0; GENERATED_CODE_LENGTH]
    }
}

fn arg<T: std::str::FromStr>(args: &[String], n: usize, default: T) -> T {
    args.get(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let due: u64 = arg(&args, 0, 100_000);
    let concurrency: u32 = arg(&args, 1, 32);
    let rate: f64 = arg(&args, 2, 14.0);
    let store_ms: u64 = arg(&args, 3, 5);
    let send_ms: u64 = arg(&args, 4, 50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(measure(due, concurrency, rate, store_ms, send_ms))
}

async fn measure(
    due: u64,
    concurrency: u32,
    rate: f64,
    store_ms: u64,
    send_ms: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let wall = std::time::Instant::now();
    let shop = ShopId::parse("demo.myshopify.com")?;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    let due_at = t0 + Duration::days(30);
    let memory = Arc::new(MemoryStore::new());
    memory
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
    memory
        .put_program(&shop, &Program::new(Currency::USD), 0, t0)
        .await?;
    // `due` customers, each with one order whose 10.00 falls due within
    // the hour before the first run (a Black Friday hour of releases).
    let ten = Money::parse("10.00", Currency::USD)?;
    for i in 0..due {
        let customer = CustomerId::parse(&format!("c{i}"))?;
        let mut account = Account::open(shop.clone(), customer.clone(), Currency::USD);
        account.email = Some(Email::parse(&format!("c{i}@example.com"))?);
        account.code = Some(Code::parse(&format!("cb-{i}"))?);
        account.pending = ten;
        let mut record = OrderRecord::new(OrderId::parse(&format!("o{i}"))?, Currency::USD);
        record.customer = Some(customer);
        record.pending = ten;
        record.release_at = Some(due_at + Duration::seconds((i % 3600) as i64));
        memory
            .write(
                &shop,
                WriteSet {
                    accounts: vec![AccountWrite {
                        account,
                        expected_version: 0,
                        entries: Vec::new(),
                        reminder_due_at: None,
                        code_change: None,
                    }],
                    order: Some(OrderWrite {
                        record,
                        expected_version: 0,
                        lines_stored: false,
                        refunds_stored: 0,
                    }),
                    ..WriteSet::default()
                },
            )
            .await?;
    }
    let first_run = due_at + Duration::hours(1);
    for job in [PROMOTE_JOB, READY_EMAILS_JOB] {
        memory
            .put_checkpoint(job, &due_bucket(due_at - Duration::hours(1)))
            .await?;
    }
    let built = wall.elapsed().as_secs_f64();

    let latency = Arc::new(Intercepted::new(
        memory.clone(),
        Latency {
            latency: StdDuration::from_millis(store_ms),
            calls: AtomicU64::new(0),
        },
    ));
    let start = Instant::now();
    let mailer = Arc::new(SlowMailer {
        latency: StdDuration::from_millis(send_ms),
        start,
        ready: AtomicU64::new(0),
        first_ready: Mutex::new(None),
        last_ready: Mutex::new(None),
    });
    let ctx = Context::new(
        latency.clone(),
        mailer.clone(),
        Arc::new(NoCodes),
        AppConfig::default(),
    );
    let config = JobConfig {
        send_rate: Some(rate),
        concurrency,
        ..JobConfig::default()
    };
    println!(
        "model: {due} due releases, {store_ms} ms per store call, {send_ms} ms per send, \
         {rate} sends/s, {concurrency} accounts in flight, runs every 15 min of 900 s \
         (885 s after the margin); table built in {built:.1} s of CPU"
    );
    let (mut released, mut releases_done_at) = (0u64, None);
    for run in 0u32..48 {
        // The schedule: run k starts k x 15 minutes after the first.
        let run_start = start + StdDuration::from_secs(900 * u64::from(run));
        if Instant::now() < run_start {
            tokio::time::sleep_until(run_start).await;
        }
        let now = first_run + Duration::minutes(15 * i64::from(run));
        let deadline = Instant::now() + StdDuration::from_secs(900 - 15);
        let outcome = promote_due(&ctx, &TokioClock, &config, now, deadline).await?;
        released += outcome.released;
        if released >= due && releases_done_at.is_none() {
            // Releases end where the email pass starts: its first send.
            let first_email = mailer
                .first_ready
                .lock()
                .ok()
                .and_then(|f| *f)
                .unwrap_or_else(|| start.elapsed());
            releases_done_at = Some((run, first_email));
        }
        println!(
            "run {run}: released {} (total {released}), ready emails sent {} (total {}), \
             email pass deadline reached: {}, run took {:.1} s",
            outcome.released,
            outcome.emails_sent,
            mailer.ready.load(Ordering::Relaxed),
            outcome.email_pass.deadline_reached,
            outcome.duration_ms as f64 / 1000.0
        );
        if released >= due && mailer.ready.load(Ordering::Relaxed) >= due {
            break;
        }
    }
    let last = mailer
        .last_ready
        .lock()
        .ok()
        .and_then(|l| *l)
        .unwrap_or_default();
    if let Some((run, at)) = releases_done_at {
        println!(
            "all {due} released in run {run}, {:.1} s after it started (modelled time)",
            at.as_secs_f64()
        );
    }
    println!(
        "all {} ready emails sent {:.0} s ({:.1} min) after the first run started; \
         {} store calls; wall time of the whole program {:.1} s",
        mailer.ready.load(Ordering::Relaxed),
        last.as_secs_f64(),
        last.as_secs_f64() / 60.0,
        latency.interceptor().calls.load(Ordering::Relaxed),
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}
