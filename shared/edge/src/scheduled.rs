//! What the scheduled functions (promote-pending, send-reminders) share:
//! their dependencies built once per container, the job settings from the
//! environment, "now" from the EventBridge event's `time`, the deadline from
//! the invocation less a margin, and errors as the runtime's `Diagnostic`
//! whose `error_type` says whether retrying can help (`Retryable.*`) or not
//! (`NonRetryable.*`).
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | see [`crate::wiring`] | store, mail, links | |
//! | `CASHBACK_SEND_RATE` | emails per second this job may send (its share of SES's `MaxSendRate`) | unpaced |
//! | `CASHBACK_JOB_PAGE_SIZE` | due items per query | 100 |
//! | `CASHBACK_JOB_LOOKBACK_HOURS` | how far back a run with no checkpoint looks | 168 |
//! | `CASHBACK_JOB_SETTLE_MINUTES` | how old a bucket must be to be checkpointed | 120 |
//! | `CASHBACK_JOB_MARGIN_SECONDS` | stop this long before the Lambda's deadline | 15 |
//! | `CASHBACK_JOB_MAX_ITEM_FAILURES` | runs an item may fail before it is parked | 5 |
//! | `CASHBACK_JOB_CONCURRENCY` | releases and expiries handled at once (never two of one account) | 32 |
//! | `CASHBACK_JOB_EMAIL_CONCURRENCY` | emails handled at once (each may be lost if the run dies) | 1 |

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use tracing::error;

use cashback_app::jobs::{Clock, JobConfig, JobError, TokioClock};
use cashback_app::Context;

/// Built once per container, outside the handler.
pub struct Deps {
    pub ctx: Context,
    pub config: JobConfig,
    pub clock: Arc<dyn Clock>,
    /// Time kept back from the invocation's deadline for the summary log
    /// and the response (a send in flight is bounded by its own timeout).
    pub margin: Duration,
}

pub const DEFAULT_MARGIN: Duration = Duration::from_secs(15);

/// A setting in the environment is not usable.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ConfigError {
    pub name: &'static str,
    pub message: String,
}

impl Deps {
    pub fn new(ctx: Context, config: JobConfig) -> Deps {
        Deps {
            ctx,
            config,
            clock: Arc::new(TokioClock),
            margin: DEFAULT_MARGIN,
        }
    }

    /// The job's settings from the environment (see the module doc).
    pub fn from_env(ctx: Context) -> Result<Deps, ConfigError> {
        let mut deps = Deps::new(ctx, job_config_from_env()?);
        if let Some(seconds) = env_number::<u64>("CASHBACK_JOB_MARGIN_SECONDS")? {
            deps.margin = Duration::from_secs(seconds);
        }
        Ok(deps)
    }
}

fn env_number<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
    match std::env::var(name).ok().map(|v| v.trim().to_string()) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value.parse::<T>().map(Some).map_err(|_| ConfigError {
            name,
            message: format!("{value:?} is not a number"),
        }),
    }
}

/// `JobConfig` with the environment's overrides.
pub fn job_config_from_env() -> Result<JobConfig, ConfigError> {
    let mut config = JobConfig::default();
    if let Some(rate) = env_number::<f64>("CASHBACK_SEND_RATE")? {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError {
                name: "CASHBACK_SEND_RATE",
                message: "must be a positive number of emails per second".into(),
            });
        }
        config.send_rate = Some(rate);
    }
    if let Some(size) = env_number::<u32>("CASHBACK_JOB_PAGE_SIZE")? {
        config.page_size = size.clamp(1, 1000);
    }
    if let Some(hours) = env_number::<i64>("CASHBACK_JOB_LOOKBACK_HOURS")? {
        config.lookback = chrono::Duration::hours(hours.clamp(1, 24 * 366));
    }
    if let Some(minutes) = env_number::<i64>("CASHBACK_JOB_SETTLE_MINUTES")? {
        config.settle = chrono::Duration::minutes(minutes.clamp(0, 24 * 60));
    }
    if let Some(runs) = env_number::<u32>("CASHBACK_JOB_MAX_ITEM_FAILURES")? {
        config.max_item_failures = runs.clamp(1, 1000);
    }
    if let Some(items) = env_number::<u32>("CASHBACK_JOB_CONCURRENCY")? {
        config.concurrency = items.clamp(1, 256);
    }
    if let Some(items) = env_number::<u32>("CASHBACK_JOB_EMAIL_CONCURRENCY")? {
        config.email_concurrency = items.clamp(1, 64);
    }
    Ok(config)
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A schedule's event always has a time; without one there is no "now".
    #[error("the scheduled event has no time")]
    MissingTime,
    #[error(transparent)]
    Job(#[from] JobError),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::MissingTime => false,
            HandlerError::Job(error) => error.is_retryable(),
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        let kind = match &error {
            HandlerError::MissingTime => "MissingTime",
            HandlerError::Job(_) => "Store",
        };
        let class = if error.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        Diagnostic {
            error_type: format!("{class}.{kind}"),
            error_message: error.to_string(),
        }
    }
}

/// When the job must stop: the invocation's deadline (epoch milliseconds)
/// less the margin, on the job's clock.
pub fn job_deadline(deps: &Deps, deadline_epoch_ms: u64) -> tokio::time::Instant {
    // The one wall-clock read: turning the runtime's deadline into time left.
    let left = crate::deadline::time_left(deadline_epoch_ms, SystemTime::now(), deps.margin);
    deps.clock.now() + left
}

/// When a scheduled run happens and when it must stop.
pub struct Run {
    pub now: DateTime<Utc>,
    pub deadline: tokio::time::Instant,
}

impl Deps {
    /// "Now" from the event's `time` (so replaying an event replays that
    /// moment) and the deadline from the invocation.
    pub fn run_of(&self, event: &LambdaEvent<EventBridgeEvent>) -> Result<Run, HandlerError> {
        let now = event.payload.time.ok_or(HandlerError::MissingTime)?;
        Ok(Run {
            now,
            deadline: job_deadline(self, event.context.deadline),
        })
    }
}

/// Logs a failed run and wraps its error.
pub fn failed(job: &'static str, error: JobError) -> HandlerError {
    error!(job, %error, retryable = error.is_retryable(), "scheduled run failed");
    HandlerError::Job(error)
}
