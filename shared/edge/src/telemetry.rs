//! Logs: one JSON line per decision through tracing, as CloudWatch reads
//! them. Emails, codes and secrets are never logged: the domain types redact
//! themselves in `Debug`, and handlers log ids and amounts only.
//!
//! What we do not write can still leak through the libraries under us: at
//! TRACE the Lambda runtime logs each raw event it receives (a webhook body
//! with the buyer's email), and the AWS SDK and the HTTP stack log whole
//! requests and responses (DynamoDB items, SES messages, SSM values). So
//! whatever `RUST_LOG` asks for, those targets ([`CAPPED_TARGETS`]) log at
//! DEBUG at most: [`filter`] is `RUST_LOG`'s filter *and* that cap, so no
//! directive can lift it.

use tracing::Subscriber;
use tracing_subscriber::filter::combinator::And;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Targets (and their modules) whose TRACE output carries whole events,
/// requests or responses: capped at DEBUG.
pub const CAPPED_TARGETS: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sdk_dynamodb",
    "aws_sdk_sesv2",
    "aws_sdk_ssm",
    "aws_config",
    "aws_sigv4",
    "aws_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tower_http",
];

/// The level asked for: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else info.
pub fn directives_from_env() -> String {
    std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into())
}

/// `directives` (RUST_LOG syntax; unreadable ones fall back to info), with
/// [`CAPPED_TARGETS`] held at DEBUG at most.
pub fn filter<S>(directives: &str) -> And<EnvFilter, Targets, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let asked = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = CAPPED_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |cap, target| cap.with_target(*target, LevelFilter::DEBUG),
    );
    asked.and(cap)
}

/// Starts JSON logging once; `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) sets the
/// level, within the cap above.
pub fn init() {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_filter(filter(&directives_from_env()));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(directives: &str) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(move || writer.clone())
            .with_filter(filter(directives));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "raw-event", "received");
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = "sdk-body", "sending");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "sdk-debug");
            tracing::trace!(target: "cashback_app::events", "own-trace");
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn no_directive_lifts_the_runtime_or_the_sdk_above_debug() {
        for directives in [
            "trace",
            "lambda_runtime=trace,aws_smithy_runtime=trace",
            "debug,aws_smithy_runtime::client=trace",
        ] {
            let logs = logged(directives);
            assert!(!logs.contains("raw-event"), "{directives}: {logs}");
            assert!(!logs.contains("sdk-body"), "{directives}: {logs}");
            assert!(logs.contains("sdk-debug"), "{directives}: {logs}");
        }
        assert!(logged("trace").contains("own-trace"));
        let info = logged("info");
        assert!(
            !info.contains("sdk-debug") && !info.contains("own-trace"),
            "{info}"
        );
    }
}
