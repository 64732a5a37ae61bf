//! A merchant's endpoint for outgoing events: it checks every request's
//! `X-Cashback-Signature` as a merchant would, with the inbound generic
//! webhooks' verifier (`cashback_platforms::signature::verify_generic`, so
//! the two schemes cannot drift apart), against the secrets it is told it
//! holds; keeps what it received; and can fail or stall on demand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::Value;

use cashback_platforms::signature::verify_generic;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-Cashback-Event-Id`.
    pub event_id: String,
    /// `X-Cashback-Event-Kind`.
    pub kind: String,
    /// `X-Cashback-Shop`.
    pub shop: String,
    /// `X-Cashback-Signature`.
    pub signature: String,
    /// Whether the signature matched one of the secrets held then.
    pub verified: bool,
    /// The body, parsed.
    pub body: Value,
    /// The answer given.
    pub status: u16,
    /// When the request arrived (before any stall).
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    secrets: Vec<String>,
    received: Vec<Received>,
    /// Answers to give before answering 200: popped one per request.
    failures: Vec<u16>,
    /// Answer this to every request (after `failures`), when set.
    always: Option<u16>,
    delay: Option<Duration>,
}

/// The merchant's endpoint on 127.0.0.1.
#[derive(Clone)]
pub struct FakeMerchant {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeMerchant {
    /// Starts one holding no secret yet.
    pub async fn start() -> FakeMerchant {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/hooks/cashback", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake merchant cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake merchant has no address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMerchant { addr, inner }
    }

    /// The endpoint's URL.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/cashback", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The secrets the merchant verifies with from now on (replacing those held).
    pub fn hold_secrets(&self, secrets: &[&str]) {
        self.lock().secrets = secrets.iter().map(|s| s.to_string()).collect();
    }

    /// Answer `statuses` to the next requests, one each, then 200.
    pub fn fail_next(&self, statuses: &[u16]) {
        let mut inner = self.lock();
        inner.failures = statuses.iter().rev().copied().collect();
    }

    /// Answer `status` to every request from now on (None: 200 again).
    pub fn always_answer(&self, status: Option<u16>) {
        self.lock().always = status;
    }

    /// Wait this long before answering.
    pub fn stall(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = std::time::Instant::now();
    let delay = inner.lock().unwrap_or_else(|p| p.into_inner()).delay;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let signature = header("x-cashback-signature");
    let verified = verify_generic(
        Some(signature.as_str()),
        &body,
        &inner.secrets,
        Utc::now().timestamp(),
    )
    .is_ok();
    let status = match inner.failures.pop() {
        Some(status) => status,
        None if !verified => 401,
        None => inner.always.unwrap_or(200),
    };
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.received.push(Received {
        event_id: header("x-cashback-event-id"),
        kind: header("x-cashback-event-kind"),
        shop: header("x-cashback-shop"),
        signature,
        verified,
        body: parsed,
        status,
        at,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
