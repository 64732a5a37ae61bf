//! `cashback-local`: the whole engine on one machine.
//!
//! - `cashback-local` (or `serve`): every HTTP function's router on
//!   127.0.0.1:3000, the scheduled jobs on a timer, the embedded default (an
//!   in-memory store seeded with a demo shop and eight weeks of its history,
//!   emails as files in ./outbox), or DynamoDB at a given endpoint.
//! - `cashback-local run-job promote --as-of 2027-01-01T00:00:00Z`: runs a job
//!   on the serving process now or as of a later time.
//! - `cashback-local demo`: a customer's story end to end, as a timeline.

mod clock;
mod demo;
mod events;
mod history;
mod pages;
mod seed;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use cashback_app::store::Store;
use cashback_app::{AppConfig, Context};
use cashback_core::ids::Email;
use cashback_edge::wiring::OsCodes;
use cashback_mail::{OutboxConfig, OutboxNotifier};
use cashback_store::{DynamoStore, MemoryStore};

use crate::clock::VirtualClock;
use crate::seed::{DEMO_ADMIN_TOKEN, DEMO_API_KEY, DEMO_SHOP, DEMO_WEBHOOK_SECRET};
use crate::server::{app, spawn_job_timer, Job, Local};

#[derive(Parser)]
#[command(
    name = "cashback-local",
    version,
    about = "The cashback engine on one machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every HTTP route and run the scheduled jobs (the default).
    Serve(ServeArgs),
    /// Play a customer's story end to end and print it as a timeline.
    Demo {
        /// Where the demo's emails are written.
        #[arg(long, default_value = "outbox/demo")]
        outbox: PathBuf,
    },
    /// Create the table (DynamoDB) and the demo shop, then exit.
    Seed(ServeArgs),
    /// Run a scheduled job on a serving process, now or as of a later time.
    RunJob {
        /// promote, reminders or bonuses
        job: String,
        /// Run as of this time (RFC 3339); the server's clock moves there.
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        /// The serving process.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Memory,
    Dynamodb,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The in-memory store (embedded default) or DynamoDB.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// DynamoDB (and SES) endpoint, e.g. moto's http://127.0.0.1:5000.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The DynamoDB table (created from template.yaml if missing).
    #[arg(long, default_value = "cashback-local")]
    table: String,
    /// Folder the emails are written to.
    #[arg(long, default_value = "outbox")]
    outbox: PathBuf,
    /// Seconds between scheduled job runs (0: only on request).
    #[arg(long, default_value_t = 60)]
    jobs_every: u64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Demo { outbox }) => demo(outbox).await,
        Some(Command::Seed(args)) => seed_only(args).await,
        Some(Command::RunJob { job, as_of, addr }) => run_job_remote(&job, as_of, addr).await,
    };
    if let Err(error) = result {
        eprintln!("cashback-local: {error}");
        std::process::exit(1);
    }
}

fn outbox_notifier(dir: &std::path::Path) -> Result<OutboxNotifier, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("outbox {}: {e}", dir.display()))?;
    let from = Email::parse("cashback@demo.localhost").map_err(|e| e.to_string())?;
    Ok(OutboxNotifier::new(OutboxConfig {
        dir: dir.to_path_buf(),
        from,
    }))
}

fn context(
    store: Arc<dyn Store>,
    outbox: &std::path::Path,
    public_url: String,
) -> Result<Context, String> {
    let config = AppConfig {
        public_base_url: public_url,
        ..AppConfig::default()
    };
    Ok(Context::new(
        store,
        Arc::new(outbox_notifier(outbox)?),
        Arc::new(OsCodes),
        config,
    ))
}

async fn dynamo_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if args.endpoint_url.is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        // A local endpoint (moto, DynamoDB Local) takes any credentials.
        loader = loader
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "cashback-local",
            ))
            .region(aws_config::Region::new("us-east-1"));
    }
    let sdk = loader.load().await;
    let store =
        DynamoStore::from_sdk_config(&sdk, args.table.clone(), args.endpoint_url.as_deref());
    let template: serde_norway::Value =
        serde_norway::from_str(include_str!("../../../template.yaml"))
            .map_err(|e| format!("template.yaml: {e}"))?;
    let properties = template
        .get("Resources")
        .and_then(|r| r.get("CashbackTable"))
        .and_then(|t| t.get("Properties"))
        .ok_or("template.yaml has no CashbackTable")?;
    let properties = serde_json::to_value(properties).map_err(|e| e.to_string())?;
    match cashback_store::dynamo::schema::create_table(store.client(), &args.table, &properties)
        .await
    {
        Ok(()) => println!("created table {}", args.table),
        Err(error)
            if error.to_string().contains("ResourceInUse")
                || error.to_string().contains("already exists") => {}
        Err(error) => return Err(format!("creating table {}: {error}", args.table)),
    }
    Ok(Arc::new(store))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    cashback_edge::telemetry::init();
    let memory = (args.store == StoreKind::Memory).then(|| Arc::new(MemoryStore::new()));
    let store: Arc<dyn Store> = match &memory {
        Some(memory) => memory.clone(),
        None => dynamo_store(&args).await?,
    };
    // The demo shop's history is played from eight weeks ago to now.
    let clock = VirtualClock::starting_at(Utc::now() - Duration::days(history::HISTORY_DAYS));
    seed::seed(store.as_ref(), clock.now())
        .await
        .map_err(|e| format!("seeding the demo shop: {e}"))?;
    let ctx = context(store, &args.outbox, format!("http://{}", args.addr))?;
    let local = Local {
        ctx,
        clock,
        outbox: args.outbox.clone(),
        store_name: match args.store {
            StoreKind::Memory => "memory".into(),
            StoreKind::Dynamodb => format!("dynamodb:{}", args.table),
        },
        reports: memory,
    };
    if args.jobs_every > 0 {
        spawn_job_timer(local.clone(), StdDuration::from_secs(args.jobs_every));
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("binding {}: {e}", args.addr))?;
    let router = app(local.clone());
    history::play(&router, &local).await?;
    print_banner(&args);
    let customer_url = pages::demo_customer_url(&local.ctx, local.clock.now()).await?;
    println!(
        "merchant dashboard: http://{}/dashboard/login   shop: {DEMO_SHOP}   email: {}   password: {}\n\
         customer page of the demo customer (a signed link, as WooCommerce's My Account links it):\n  {}",
        args.addr,
        pages::DEMO_DASHBOARD_EMAIL,
        pages::DEMO_DASHBOARD_PASSWORD,
        customer_url
    );
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

fn print_banner(args: &ServeArgs) {
    let addr = args.addr;
    println!(
        "cashback-local listening on http://{addr} ({} store, emails in {})\n\
         demo shop: {DEMO_SHOP}   webhook secret: {DEMO_WEBHOOK_SECRET}   API key: {DEMO_API_KEY}   admin token: {DEMO_ADMIN_TOKEN}\n\
         scheduled jobs: {}; run one as of a later time:  cashback-local run-job promote --as-of 2030-01-01T00:00:00Z\n\
         see README.md for curl examples",
        if args.store == StoreKind::Memory { "in-memory" } else { "DynamoDB" },
        args.outbox.display(),
        if args.jobs_every == 0 { "only on request".to_string() } else { format!("every {} s", args.jobs_every) }
    );
}

async fn seed_only(args: ServeArgs) -> Result<(), String> {
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Memory => {
            return Err(
                "seed is for --store dynamodb (the in-memory store is seeded on serve)".into(),
            )
        }
        StoreKind::Dynamodb => dynamo_store(&args).await?,
    };
    seed::seed(store.as_ref(), Utc::now())
        .await
        .map_err(|e| format!("seeding the demo shop: {e}"))?;
    println!("seeded {DEMO_SHOP} in table {}", args.table);
    Ok(())
}

async fn demo(outbox: PathBuf) -> Result<(), String> {
    // A fresh outbox each time, so the list printed is this story's.
    let _ = std::fs::remove_dir_all(&outbox);
    let memory = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = memory.clone();
    let clock = VirtualClock::new();
    seed::seed(store.as_ref(), clock.now())
        .await
        .map_err(|e| e.to_string())?;
    let ctx = context(store, &outbox, "http://127.0.0.1:3000".into())?;
    let local = Local {
        ctx,
        clock,
        outbox: outbox.clone(),
        store_name: "memory".into(),
        reports: Some(memory),
    };
    let router = app(local.clone());
    demo::play(&router, &local, &outbox).await.map(|_| ())
}

/// POSTs to the serving process's job route over loopback HTTP/1.1.
async fn run_job_remote(
    job: &str,
    as_of: Option<DateTime<Utc>>,
    addr: SocketAddr,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(_) = Job::parse(job) else {
        return Err(format!(
            "unknown job {job:?}: promote, reminders or bonuses"
        ));
    };
    let query = as_of
        .map(|at| {
            format!(
                "?as_of={}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    .replace('+', "%2B")
            )
        })
        .unwrap_or_default();
    eprintln!(
        "running {job}{} on {addr} ...",
        as_of.map(|a| format!(" as of {a}")).unwrap_or_default()
    );
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("is cashback-local serving on {addr}? {e}"))?;
    let request = format!("POST /_local/jobs/{job}{query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    println!("{body}");
    if head.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(head.lines().next().unwrap_or("no answer").to_string())
    }
}
