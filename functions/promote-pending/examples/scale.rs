//! Measures one promote run over many due rewards in a large table, on the
//! in-memory store: how many items it reads, how many round trips it
//! makes, how long it takes and how much memory the run adds.
//!
//! ```text
//! cargo run -p promote-pending --example scale -- [accounts] [due]
//! cargo run -p promote-pending --example scale -- 1000000 100000
//! ```
//!
//! The table gets `accounts` accounts; `due` of them have one order whose
//! pending cashback (10.00) falls due over one day, hour by hour; the rest
//! hold nothing due. The run happens the day after, with a checkpoint just
//! before that day, so it reads 2 x 24+ buckets x 4 shards. Nothing here
//! asserts a timing: figures go to docs/scheduled-jobs.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};

use cashback_app::jobs::promote::{promote_due, PROMOTE_JOB};
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_app::store::*;
use cashback_app::{AppConfig, CodeSource, Context};
use cashback_core::ids::*;
use cashback_core::ledger::Account;
use cashback_core::money::{Currency, Money};
use cashback_core::orders::OrderRecord;
use cashback_core::program::Program;
use cashback_store::MemoryStore;

/// Counts sends; delivers nothing.
#[derive(Default)]
struct CountingNotifier(AtomicU64);

#[async_trait::async_trait]
impl Notifier for CountingNotifier {
    async fn send(&self, _: &Notification) -> Result<Sent, NotifyError> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Sent {
            message_id: n.to_string(),
        })
    }
}

struct NoCodes;

impl CodeSource for NoCodes {
    fn random_code_bytes(&self) -> [u8; GENERATED_CODE_LENGTH] {
        [0; GENERATED_CODE_LENGTH]
    }
}

/// Resident memory now and at its peak, in MiB (Linux /proc).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak so the run's own peak can be read (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let accounts: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let due: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let due = due.min(accounts);

    let shop = ShopId::parse("demo.myshopify.com")?;
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    let due_day = t0 + Duration::days(30);
    let store = Arc::new(MemoryStore::new());
    let notifier = Arc::new(CountingNotifier::default());
    store
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
    let program = Program::new(Currency::USD);
    store.put_program(&shop, &program, 0, t0).await?;

    let built = Instant::now();
    let ten = Money::parse("10.00", Currency::USD)?;
    for i in 0..accounts {
        let customer = CustomerId::parse(&format!("c{i}"))?;
        let mut account = Account::open(shop.clone(), customer.clone(), Currency::USD);
        let mut order = None;
        if i < due {
            account.email = Some(Email::parse(&format!("c{i}@example.com"))?);
            account.code = Some(Code::parse(&format!("cb-{i}"))?);
            account.pending = ten;
            let mut record = OrderRecord::new(OrderId::parse(&format!("o{i}"))?, Currency::USD);
            record.customer = Some(customer);
            record.pending = ten;
            record.release_at = Some(due_day + Duration::minutes((i % (24 * 60)) as i64));
            order = Some(OrderWrite {
                record,
                expected_version: 0,
                lines_stored: false,
                refunds_stored: 0,
            });
        }
        store
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
                    order,
                    ..WriteSet::default()
                },
            )
            .await?;
    }
    // A checkpoint just before the due day: the run reads that day and the next.
    store
        .put_checkpoint(PROMOTE_JOB, &due_bucket(due_day - Duration::hours(1)))
        .await?;
    let build_seconds = built.elapsed().as_secs_f64();
    println!(
        "table: {} accounts ({} with a due reward) built in {build_seconds:.1} s",
        store.account_count(),
        due
    );

    let ctx = Context::new(
        store.clone(),
        notifier.clone(),
        Arc::new(NoCodes),
        AppConfig::default(),
    );
    let now = due_day + Duration::days(1);
    let (rss_before, _) = memory_mib();
    reset_peak();
    let before = store.request_counts();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(24 * 3600);
    let outcome = promote_due(&ctx, &TokioClock, &JobConfig::default(), now, deadline).await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = store.request_counts();
    let (rss_after, peak) = memory_mib();

    println!(
        "run: released {} ({} USD) in {seconds:.1} s = {:.0} releases/s; emails {}",
        outcome.released,
        outcome
            .released_amount
            .0
            .get("USD")
            .copied()
            .unwrap_or_default(),
        outcome.released as f64 / seconds,
        notifier.0.load(Ordering::Relaxed)
    );
    println!(
        "round trips: reads {} (items read {}), transactions {}, queries {} ({} buckets), other {}",
        after.reads - before.reads,
        after.reads - before.reads,
        after.writes - before.writes,
        after.queries - before.queries,
        outcome.scan.buckets_read,
        after.other - before.other
    );
    println!(
        "memory: resident {rss_before:.0} MiB before the run, {rss_after:.0} MiB after, peak during the run {peak:.0} MiB (+{:.1} MiB)",
        peak - rss_before
    );
    Ok(())
}
