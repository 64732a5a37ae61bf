//! One process on 127.0.0.1 that serves every HTTP function's router, runs
//! the scheduled jobs on a timer, and adds a few local-only routes:
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET /_local/health` | the server's clock and store |
//! | `POST /_local/jobs/{promote,reminders,bonuses}?as_of=RFC3339` | runs a job now, or as of a later time (the clock moves there) |
//! | `POST /_local/clock?advance_days=N` | moves the clock forward |
//! | `GET /_local/outbox` | the emails written so far |
//!
//! After every request the changes the store logged are taken once and go
//! to the report sums and to the outgoing events (`crate::events`), which
//! are POSTed to the shops' endpoints (loopback ones included) off the
//! request; the job timer runs their retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use cashback_app::jobs::bonuses::send_bonuses;
use cashback_app::jobs::promote::promote_due;
use cashback_app::jobs::reminders::send_reminders;
use cashback_app::jobs::{JobConfig, TokioClock};
use cashback_app::Context;
use cashback_store::MemoryStore;
use order_webhook::secrets::{EnvAndSsm, FixedSecrets, SecretCache, SecretSource};
use order_webhook::WebhookState;

use crate::clock::VirtualClock;
use crate::seed::{DEMO_ADMIN_TOKEN, DEMO_WEBHOOK_SECRET, DEMO_WEBHOOK_SECRET_REF};

#[derive(Clone)]
pub struct Local {
    pub ctx: Context,
    pub clock: Arc<VirtualClock>,
    pub outbox: PathBuf,
    pub store_name: String,
    /// The in-memory store, whose change log the report aggregator sums
    /// after every request, as the table's stream feeds it on AWS (None on
    /// DynamoDB: reports there need the deployed aggregator).
    pub reports: Option<Arc<MemoryStore>>,
}

impl Local {
    /// Sums the changes logged since the last call into the report items,
    /// and delivers their outgoing events: the log is taken once and both
    /// consumers get the same batch (a fan-out, as the table's stream feeds
    /// both functions on AWS).
    pub async fn catch_up_reports(&self) {
        if let Some(store) = &self.reports {
            let changes = store.take_changes();
            if changes.is_empty() {
                return;
            }
            match cashback_app::aggregator::aggregate(store.as_ref(), None, &changes).await {
                Ok(outcome) if outcome.changes > 0 => {
                    debug!(changes = outcome.changes, "report sums added");
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "report sums not added"),
            }
            crate::events::deliver_in_background(store.clone(), changes, self.clock.now());
        }
    }
}

/// After every request, the report aggregator reads what it wrote.
async fn reports_after(State(local): State<Local>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    local.catch_up_reports().await;
    response
}

/// Every router of the bundle, plus the local routes.
pub fn app(local: Local) -> Router {
    // The demo shop's development secret is built in; other shops' secrets
    // come from the environment (env:NAME) as on Lambda.
    let secrets: Arc<dyn SecretSource> = Arc::new(LocalSecrets {
        demo: FixedSecrets::new([(DEMO_WEBHOOK_SECRET_REF, DEMO_WEBHOOK_SECRET)]),
        env: EnvAndSsm::new(),
    });
    // One clock for every route: the checkout, customer and admin handlers,
    // the webhooks and the jobs all read the server's virtual clock.
    let clock = local.clock.clone();
    let local = Local {
        ctx: local.ctx.clone().with_clock(Arc::new(move || clock.now())),
        ..local
    };
    let webhook = WebhookState::new(local.ctx.clone(), Arc::new(SecretCache::new(secrets, 60)));
    let local_routes = Router::new()
        .route("/_local/health", get(health))
        .route("/_local/jobs/{job}", post(run_job_route))
        .route("/_local/clock", post(advance_clock))
        .route("/_local/outbox", get(outbox))
        .with_state(local.clone());
    Router::new()
        .merge(order_webhook::router(webhook))
        .merge(coupon_validate::router(local.ctx.clone()))
        .merge(customer_api::router(local.ctx.clone()))
        .merge(admin_api::router_with_checks(
            local.ctx.clone(),
            admin_api::AdminAuth::new(
                Some(cashback_edge::auth::hash_api_key(DEMO_ADMIN_TOKEN)),
                admin_api::iam_from_env(),
            ),
            admin_api::EndpointChecks {
                policy: crate::events::LOCAL_POLICY,
                ..admin_api::EndpointChecks::default()
            },
        ))
        .merge(cashback_pages::router_with(
            local.ctx.clone(),
            crate::pages::pages_config(),
        ))
        .merge(local_routes)
        // A path or method no function serves gets the same JSON error as
        // everything else (on AWS, API Gateway answers these itself).
        .fallback(|| async { cashback_edge::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            cashback_edge::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            local.clone(),
            reports_after,
        ))
}

struct LocalSecrets {
    demo: FixedSecrets,
    env: EnvAndSsm,
}

#[async_trait::async_trait]
impl SecretSource for LocalSecrets {
    async fn fetch(
        &self,
        reference: &order_webhook::secrets::SecretRef,
    ) -> Result<String, order_webhook::secrets::SecretError> {
        match self.demo.fetch(reference).await {
            Ok(secret) => Ok(secret),
            Err(_) => self.env.fetch(reference).await,
        }
    }
}

async fn health(State(local): State<Local>) -> Json<serde_json::Value> {
    Json(
        json!({"status": "ok", "now": local.clock.now(), "store": local.store_name, "outbox": local.outbox}),
    )
}

#[derive(Deserialize)]
struct AsOf {
    as_of: Option<DateTime<Utc>>,
}

/// The scheduled jobs, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Promote,
    Reminders,
    /// Bonuses (on AWS they run in the send-reminders function, after the
    /// reminders).
    Bonuses,
}

impl Job {
    pub fn parse(name: &str) -> Option<Job> {
        match name {
            "promote" | "promote-pending" => Some(Job::Promote),
            "reminders" | "send-reminders" => Some(Job::Reminders),
            "bonuses" => Some(Job::Bonuses),
            _ => None,
        }
    }
}

/// Runs one job at `now` with a minute to finish; returns its summary.
pub async fn run_job(
    ctx: &Context,
    job: Job,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, String> {
    let config = JobConfig {
        finish_reserve: StdDuration::from_millis(200),
        ..JobConfig::default()
    };
    let deadline = Instant::now() + StdDuration::from_secs(60);
    let summary = match job {
        Job::Promote => promote_due(ctx, &TokioClock, &config, now, deadline)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        Job::Reminders => send_reminders(ctx, &TokioClock, &config, now, deadline)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        Job::Bonuses => send_bonuses(ctx, &TokioClock, &config, now, deadline)
            .await
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
    };
    summary.map_err(|e| e.to_string())
}

async fn run_job_route(
    State(local): State<Local>,
    Path(name): Path<String>,
    Query(as_of): Query<AsOf>,
) -> Response {
    let Some(job) = Job::parse(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "unknown_job", "message": "jobs: promote, reminders, bonuses"}})),
        )
            .into_response();
    };
    let now = match as_of.as_of {
        Some(at) => local.clock.advance_to(at),
        None => local.clock.now(),
    };
    match run_job(&local.ctx, job, now).await {
        Ok(summary) => Json(json!({"job": name, "as_of": now, "summary": summary})).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"code": "job_failed", "message": error}})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct Advance {
    advance_days: Option<i64>,
    advance_hours: Option<i64>,
}

async fn advance_clock(
    State(local): State<Local>,
    Query(advance): Query<Advance>,
) -> Json<serde_json::Value> {
    let by = Duration::days(advance.advance_days.unwrap_or(0))
        + Duration::hours(advance.advance_hours.unwrap_or(0));
    Json(json!({"now": local.clock.advance_by(by)}))
}

async fn outbox(State(local): State<Local>) -> Json<serde_json::Value> {
    let mut files = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(&local.outbox).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".eml") {
                files.push(name);
            }
        }
    }
    files.sort();
    Json(json!({"dir": local.outbox, "emails": files}))
}

/// Runs both jobs every `every`, at the server's clock, until the process ends.
pub fn spawn_job_timer(local: Local, every: StdDuration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            for job in [Job::Promote, Job::Reminders] {
                match run_job(&local.ctx, job, local.clock.now()).await {
                    Ok(summary) => info!(?job, %summary, "scheduled job ran"),
                    Err(error) => warn!(?job, %error, "scheduled job failed"),
                }
            }
            local.catch_up_reports().await;
            if let Some(store) = &local.reports {
                crate::events::retry_due(store, local.clock.now()).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use serde_json::Value;

    use super::*;
    use crate::seed::{DEMO_API_KEY, DEMO_SHOP};

    async fn call(
        app: &Router,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn after_the_clock_moves_the_admin_and_checkout_routes_read_the_moved_clock() {
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn cashback_app::store::Store> = memory.clone();
        let clock = VirtualClock::new();
        let start = clock.now();
        crate::seed::seed(store.as_ref(), start).await.unwrap();
        let outbox =
            std::env::temp_dir().join(format!("cashback-local-clock-{}", std::process::id()));
        let ctx = crate::context(store, &outbox, "http://127.0.0.1:3000".into()).unwrap();
        let local = Local {
            ctx,
            clock: clock.clone(),
            outbox: outbox.clone(),
            store_name: "memory".into(),
            reports: Some(memory),
        };
        let app = app(local);
        let moved = clock.advance_by(Duration::days(40));

        // A coupon that runs only around the moved time.
        let coupons = format!("/v1/shops/{DEMO_SHOP}/coupons");
        let coupon = json!({
            "code": "LATE10", "display_name": "10 back",
            "reward": {"type": "percentage", "percent": "10"},
            "starts_at": start + Duration::days(39), "ends_at": start + Duration::days(41),
        });
        let (status, created) = call(&app, "POST", &coupons, DEMO_ADMIN_TOKEN, coupon).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let created_at: DateTime<Utc> =
            serde_json::from_value(created["created_at"].clone()).unwrap();
        assert!(
            created_at >= moved,
            "the admin route stamped {created_at}, the clock says {moved}"
        );
        let approve = format!("{coupons}/late10/approve");
        let (status, approved) = call(&app, "POST", &approve, DEMO_ADMIN_TOKEN, Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{approved}");

        // Checkout judges the coupon at the same moved time.
        let validate = json!({
            "code": "LATE10", "currency": "USD",
            "cart": {"lines": [{"product_id": "1", "quantity": 1, "unit_price": "50.00"}], "subtotal": "50.00"},
        });
        let (status, answer) = call(
            &app,
            "POST",
            &format!("{coupons}/validate"),
            DEMO_API_KEY,
            validate,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["valid"], true, "{answer}");
        let _ = std::fs::remove_dir_all(&outbox);
    }
}
