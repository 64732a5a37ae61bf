//! Logs: one JSON line per decision through tracing, as CloudWatch reads
//! them. Emails, codes and secrets are never logged: the domain types redact
//! themselves in `Debug`, and handlers log ids and amounts only.

use tracing_subscriber::EnvFilter;

/// Starts JSON logging once; `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) sets the level.
pub fn init() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::new(level))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}
