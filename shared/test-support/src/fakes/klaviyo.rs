//! A local Klaviyo API for the two calls the engine makes, following the
//! OpenAPI spec of revision [`REVISION`] (`klaviyo/openapi`,
//! `openapi/stable/apis/create_or_update_profile.json`, `create_event.json`):
//!
//! - `POST /api/profile-import`: a `ProfileUpsertQuery`
//!   (`{"data": {"type": "profile", "attributes": {...}}}`) with at least
//!   one identifier; 201 when the profile is new, 200 when updated; the
//!   given properties are set, the ones named in
//!   `meta.patch_properties.unset` (or given as `null`) removed, others
//!   kept.
//! - `POST /api/events`: an `EventCreateQueryV2` (`properties`, `metric`
//!   and `profile` required, `time`, `value`, `value_currency`,
//!   `unique_id` optional); 202. An event whose unique id (or, without one,
//!   time to the second) was already recorded for the same profile and
//!   metric is accepted and not recorded again, as Klaviyo does.
//!
//! Every request must carry `Authorization: Klaviyo-API-Key <key>` (else
//! 401 `not_authenticated`), the `revision` header (else 400) and
//! `Content-Type: application/vnd.api+json` (else 415). Each endpoint's
//! burst and steady limits are enforced over the requests' arrival times:
//! over either, 429 `throttled` with `Retry-After` in whole seconds; a
//! request that arrives before a Retry-After it was given has passed is
//! counted in [`KlaviyoStats::early_retries`]. Errors are JSON:API
//! `{"errors": [{"id", "status", "code", "title", "detail", "source"}]}`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::faults::{Fault, FaultRates, Faults};

/// The revision the fake expects (the current stable one).
pub const REVISION: &str = "2026-07-15";
pub const PRIVATE_KEY: &str = "pk_fake0123456789";
pub const JSON_API: &str = "application/vnd.api+json";

const PROFILE_ATTRIBUTES: &[&str] = &[
    "email",
    "phone_number",
    "external_id",
    "_kx",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
    "properties",
];
const EVENT_ATTRIBUTES: &[&str] = &[
    "properties",
    "time",
    "value",
    "value_currency",
    "unique_id",
    "backfill",
    "metric",
    "profile",
];
const IDENTIFIERS: &[&str] = &[
    "email",
    "phone_number",
    "external_id",
    "_kx",
    "anonymous_id",
];

/// One endpoint's limits: `burst` requests per `burst_window`, `steady`
/// per `steady_window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub burst: usize,
    pub burst_window: Duration,
    pub steady: usize,
    pub steady_window: Duration,
}

impl Limit {
    /// Create or Update Profile: 75/s, 750/m.
    pub const PROFILE_IMPORT: Limit = Limit::per_second_and_minute(75, 750);
    /// Create Event: 350/s, 3500/m.
    pub const CREATE_EVENT: Limit = Limit::per_second_and_minute(350, 3500);

    pub const fn per_second_and_minute(burst: usize, steady: usize) -> Limit {
        Limit {
            burst,
            burst_window: Duration::from_secs(1),
            steady,
            steady_window: Duration::from_secs(60),
        }
    }
}

/// The fake's two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    ProfileImport,
    Events,
}

/// A profile as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub properties: Map<String, Value>,
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub metric: String,
    /// The profile's identifier as sent (its email when given).
    pub profile: String,
    pub unique_id: Option<String>,
    pub time: Option<String>,
    pub value: Option<Value>,
    pub value_currency: Option<String>,
    pub properties: Map<String, Value>,
}

#[derive(Debug, Default, Clone)]
pub struct KlaviyoStats {
    /// Requests that passed authentication and the limits, by endpoint.
    pub accepted: BTreeMap<String, u64>,
    /// 429s sent.
    pub rate_limited: u64,
    /// Requests that came before the Retry-After they were given.
    pub early_retries: u64,
    pub unauthorized: u64,
    /// Events accepted but not recorded: their unique id was known.
    pub duplicates: u64,
    /// The reasons of 4xx answers other than 401 and 429.
    pub rejected: Vec<String>,
}

struct Inner {
    key: String,
    limits: BTreeMap<Endpoint, Limit>,
    arrivals: BTreeMap<Endpoint, VecDeque<Instant>>,
    retry_not_before: BTreeMap<Endpoint, Instant>,
    profiles: BTreeMap<String, Profile>,
    next_id: u64,
    events: Vec<RecordedEvent>,
    seen: BTreeSet<(String, String, String)>,
    stats: KlaviyoStats,
    faults: Faults,
}

type Shared = Arc<Mutex<Inner>>;

#[derive(Clone)]
pub struct FakeKlaviyo {
    pub addr: SocketAddr,
    inner: Shared,
}

impl FakeKlaviyo {
    /// A fake with Klaviyo's documented limits.
    pub async fn start() -> FakeKlaviyo {
        FakeKlaviyo::with_limits(Limit::PROFILE_IMPORT, Limit::CREATE_EVENT).await
    }

    pub async fn with_limits(profile_import: Limit, events: Limit) -> FakeKlaviyo {
        let inner = Arc::new(Mutex::new(Inner {
            key: PRIVATE_KEY.to_string(),
            limits: BTreeMap::from([
                (Endpoint::ProfileImport, profile_import),
                (Endpoint::Events, events),
            ]),
            arrivals: BTreeMap::new(),
            retry_not_before: BTreeMap::new(),
            profiles: BTreeMap::new(),
            next_id: 1,
            events: Vec::new(),
            seen: BTreeSet::new(),
            stats: KlaviyoStats::default(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .route("/api/profile-import", post(profile_import_route))
            .route("/api/events", post(events_route))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake klaviyo cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake klaviyo has no address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKlaviyo { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn profile(&self, email: &str) -> Option<Profile> {
        self.lock().profiles.get(&email.to_lowercase()).cloned()
    }

    pub fn events(&self) -> Vec<RecordedEvent> {
        self.lock().events.clone()
    }

    pub fn stats(&self) -> KlaviyoStats {
        self.lock().stats.clone()
    }

    /// Takes `key` instead of [`PRIVATE_KEY`] from now on: another
    /// Klaviyo account (requests with any other key get 401).
    pub fn set_key(&self, key: &str) {
        self.lock().key = key.to_string();
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn set_fault_rates(&self, rates: FaultRates, seed: u64) {
        self.lock().faults.set_rates(rates, seed);
    }
}

fn error(status: StatusCode, code: &str, title: &str, detail: &str, pointer: &str) -> Response {
    (
        status,
        [("content-type", JSON_API)],
        Json(json!({"errors": [{
            "id": "00000000-0000-0000-0000-000000000000",
            "status": status.as_u16(),
            "code": code,
            "title": title,
            "detail": detail,
            "source": {"pointer": pointer},
        }]})),
    )
        .into_response()
}

fn invalid(inner: &Shared, detail: &str, pointer: &str) -> Response {
    let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
    guard.stats.rejected.push(format!("{detail} ({pointer})"));
    error(
        StatusCode::BAD_REQUEST,
        "invalid",
        "Invalid input.",
        detail,
        pointer,
    )
}

/// Checks the headers and the limits, and draws the request's fault.
async fn admit(
    inner: &Shared,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> Result<Option<Fault>, Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (fault, jitter) = {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        if header("authorization") != format!("Klaviyo-API-Key {}", inner.key) {
            inner.stats.unauthorized += 1;
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid private key.",
                "/data/",
            ));
        }
        let revision = header("revision");
        if revision.is_empty() {
            inner.stats.rejected.push("missing revision".into());
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                "The revision header is required.",
                "/data/",
            ));
        }
        if revision != REVISION {
            inner
                .stats
                .rejected
                .push(format!("revision {revision} is not {REVISION}"));
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid",
                "Invalid input.",
                &format!("The revision {revision} is not the current one."),
                "/data/",
            ));
        }
        if !header("content-type").starts_with(JSON_API) {
            inner.stats.rejected.push("content type".into());
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type.",
                "Content-Type must be application/vnd.api+json.",
                "/data/",
            ));
        }
        let now = Instant::now();
        if let Some(not_before) = inner.retry_not_before.get(&endpoint) {
            if now < *not_before {
                inner.stats.early_retries += 1;
            }
        }
        let limit = inner.limits[&endpoint];
        let arrivals = inner.arrivals.entry(endpoint).or_default();
        while arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limit.steady_window)
        {
            arrivals.pop_front();
        }
        let in_burst = arrivals
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < limit.burst_window)
            .count();
        let len = arrivals.len();
        let free_at = if in_burst >= limit.burst {
            Some(arrivals[len - limit.burst] + limit.burst_window)
        } else if len >= limit.steady {
            Some(arrivals[len - limit.steady] + limit.steady_window)
        } else {
            None
        };
        let (fault, jitter) = inner.faults.draw();
        let throttled = match (free_at, fault) {
            (Some(free_at), _) => Some(free_at.saturating_duration_since(now)),
            (None, Some(Fault::Throttle)) => Some(Duration::from_secs(1)),
            _ => None,
        };
        if let Some(wait) = throttled {
            // Whole seconds, rounded up, as Klaviyo sends them.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let seconds = seconds.max(1);
            inner.stats.rate_limited += 1;
            inner
                .retry_not_before
                .insert(endpoint, now + Duration::from_secs(seconds));
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Request was throttled.",
                &format!("Request was throttled. Expected available in {seconds} second."),
                "/data/",
            );
            if let Ok(value) = seconds.to_string().parse() {
                response.headers_mut().insert("retry-after", value);
            }
            return Err(response);
        }
        inner.arrivals.entry(endpoint).or_default().push_back(now);
        *inner
            .stats
            .accepted
            .entry(format!("{endpoint:?}"))
            .or_default() += 1;
        (fault, jitter)
    };
    if !jitter.is_zero() {
        tokio::time::sleep(jitter).await;
    }
    match fault {
        Some(Fault::ServerError) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service unavailable.",
            "Try again later.",
            "/data/",
        )),
        other => Ok(other),
    }
}

/// Answers after an applied change, as the fault says.
async fn answer(inner: &Shared, fault: Option<Fault>, response: Response) -> Response {
    match fault {
        Some(Fault::Timeout) => {
            let delay = inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .faults
                .delay();
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::Duplicate) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service unavailable.",
            "Try again later.",
            "/data/",
        ),
        _ => response,
    }
}

/// `body.data` of the given type with an `attributes` object holding only
/// the known keys.
fn resource<'a>(
    body: &'a Value,
    kind: &str,
    known: &[&str],
    pointer: &str,
) -> Result<&'a Map<String, Value>, (String, String)> {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ("data is required".to_string(), pointer.to_string()))?;
    if data.get("type").and_then(Value::as_str) != Some(kind) {
        return Err((format!("type must be `{kind}`"), format!("{pointer}/type")));
    }
    let attributes = data
        .get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            (
                "attributes is required".to_string(),
                format!("{pointer}/attributes"),
            )
        })?;
    if let Some(unknown) = attributes.keys().find(|k| !known.contains(&k.as_str())) {
        return Err((
            format!("'{unknown}' is not a valid field for the resource '{kind}'."),
            format!("{pointer}/attributes/{unknown}"),
        ));
    }
    Ok(attributes)
}

/// The profile's identifier: its email, else another identifier.
fn identifier(attributes: &Map<String, Value>, pointer: &str) -> Result<String, (String, String)> {
    if let Some(email) = attributes.get("email").filter(|v| !v.is_null()) {
        let email = email.as_str().unwrap_or_default().trim().to_lowercase();
        let valid = email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !valid {
            return Err((
                "Invalid email address".into(),
                format!("{pointer}/attributes/email"),
            ));
        }
        return Ok(email);
    }
    IDENTIFIERS
        .iter()
        .find_map(|k| attributes.get(*k).and_then(Value::as_str))
        .map(|v| v.to_string())
        .ok_or_else(|| {
            (
                "One of email, phone_number, external_id or anonymous_id is required".into(),
                format!("{pointer}/attributes"),
            )
        })
}

fn properties<'a>(
    attributes: &'a Map<String, Value>,
    required: bool,
    pointer: &str,
) -> Result<Option<&'a Map<String, Value>>, (String, String)> {
    match attributes.get("properties") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::Object(map)) if map.len() <= 400 => Ok(Some(map)),
        Some(Value::Object(_)) => Err((
            "Events must not exceed 400 properties".into(),
            format!("{pointer}/attributes/properties"),
        )),
        _ => Err((
            "properties must be an object".into(),
            format!("{pointer}/attributes/properties"),
        )),
    }
}

/// The names in `data.meta.patch_properties.unset` (a string or an array
/// of strings), checking the meta's documented shape.
fn unset_properties(body: &Value) -> Result<Vec<String>, (String, String)> {
    let pointer = "/data/meta".to_string();
    let Some(meta) = body.get("data").and_then(|d| d.get("meta")) else {
        return Ok(Vec::new());
    };
    let Some(meta) = meta.as_object() else {
        return Err(("meta must be an object".into(), pointer));
    };
    if let Some(unknown) = meta
        .keys()
        .find(|k| !["patch_properties", "patch_identifiers"].contains(&k.as_str()))
    {
        return Err((format!("'{unknown}' is not a valid meta field"), pointer));
    }
    let Some(patch) = meta.get("patch_properties").filter(|p| !p.is_null()) else {
        return Ok(Vec::new());
    };
    let pointer = "/data/meta/patch_properties".to_string();
    let Some(patch) = patch.as_object() else {
        return Err(("patch_properties must be an object".into(), pointer));
    };
    if let Some(unknown) = patch
        .keys()
        .find(|k| !["append", "unappend", "unset"].contains(&k.as_str()))
    {
        return Err((
            format!("'{unknown}' is not a valid patch operation"),
            pointer,
        ));
    }
    match patch.get("unset") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(name)) => Ok(vec![name.clone()]),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ("unset names must be strings".to_string(), pointer.clone()))
            })
            .collect(),
        Some(_) => Err((
            "unset must be a string or an array of strings".into(),
            pointer,
        )),
    }
}

fn parse_json(body: &Bytes) -> Result<Value, (String, String)> {
    serde_json::from_slice(body).map_err(|e| (format!("Malformed JSON: {e}"), "/data/".into()))
}

async fn profile_import_route(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = match admit(&inner, &headers, Endpoint::ProfileImport).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let body = match parse_json(&body) {
        Ok(body) => body,
        Err((detail, pointer)) => return invalid(&inner, &detail, &pointer),
    };
    let checked = resource(&body, "profile", PROFILE_ATTRIBUTES, "/data").and_then(|a| {
        let id = identifier(a, "/data")?;
        let props = properties(a, false, "/data")?;
        let unset = unset_properties(&body)?;
        Ok((a, id, props, unset))
    });
    let (attributes, id, props, unset) = match checked {
        Ok(found) => found,
        Err((detail, pointer)) => return invalid(&inner, &detail, &pointer),
    };
    let (status, profile) = {
        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
        let next_id = guard.next_id;
        let created = !guard.profiles.contains_key(&id);
        let profile = guard.profiles.entry(id.clone()).or_insert_with(|| Profile {
            id: format!("01FAKEPROFILE{next_id:08}"),
            email: None,
            external_id: None,
            properties: Map::new(),
        });
        if let Some(email) = attributes.get("email").and_then(Value::as_str) {
            profile.email = Some(email.to_lowercase());
        }
        if let Some(external) = attributes.get("external_id").and_then(Value::as_str) {
            profile.external_id = Some(external.to_string());
        }
        for name in &unset {
            profile.properties.remove(name);
        }
        for (name, value) in props.into_iter().flatten() {
            if value.is_null() {
                profile.properties.remove(name);
            } else {
                profile.properties.insert(name.clone(), value.clone());
            }
        }
        let profile = profile.clone();
        if created {
            guard.next_id += 1;
        }
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        (status, profile)
    };
    let response = (
        status,
        [("content-type", JSON_API)],
        Json(json!({"data": {
            "type": "profile",
            "id": profile.id,
            "attributes": {
                "email": profile.email,
                "external_id": profile.external_id,
                "properties": profile.properties,
            },
            "links": {"self": format!("https://a.klaviyo.com/api/profiles/{}/", profile.id)},
        }})),
    )
        .into_response();
    answer(&inner, fault, response).await
}

/// The event's time: ISO 8601, after 1990, at most a year ahead.
fn event_time(attributes: &Map<String, Value>) -> Result<Option<DateTime<Utc>>, (String, String)> {
    let pointer = "/data/attributes/time".to_string();
    match attributes.get("time") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let at = DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    (
                        "time must be an ISO 8601 date-time".to_string(),
                        pointer.clone(),
                    )
                })?
                .with_timezone(&Utc);
            let earliest = DateTime::parse_from_rfc3339("1990-01-01T00:00:00Z")
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(at);
            if at < earliest || at > Utc::now() + chrono::Duration::days(365) {
                return Err((
                    "time must be after 1990 and at most a year ahead".into(),
                    pointer,
                ));
            }
            Ok(Some(at))
        }
        Some(_) => Err(("time must be a string".into(), pointer)),
    }
}

async fn events_route(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = match admit(&inner, &headers, Endpoint::Events).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let body = match parse_json(&body) {
        Ok(body) => body,
        Err((detail, pointer)) => return invalid(&inner, &detail, &pointer),
    };
    let checked = (|| {
        let attributes = resource(&body, "event", EVENT_ATTRIBUTES, "/data")?;
        let props = properties(attributes, true, "/data")?
            .cloned()
            .unwrap_or_default();
        let metric = attributes.get("metric").ok_or_else(|| {
            (
                "metric is required".to_string(),
                "/data/attributes/metric".to_string(),
            )
        })?;
        let metric_attributes = resource(
            metric,
            "metric",
            &["name", "service"],
            "/data/attributes/metric/data",
        )?;
        let name = metric_attributes
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty() && n.chars().count() < 128)
            .ok_or_else(|| {
                (
                    "Name must be a string of fewer than 128 characters".to_string(),
                    "/data/attributes/metric/data/attributes/name".to_string(),
                )
            })?;
        let profile = attributes.get("profile").ok_or_else(|| {
            (
                "profile is required".to_string(),
                "/data/attributes/profile".to_string(),
            )
        })?;
        let mut profile_keys = PROFILE_ATTRIBUTES.to_vec();
        profile_keys.extend(["anonymous_id", "meta"]);
        let profile_attributes = resource(
            profile,
            "profile",
            &profile_keys,
            "/data/attributes/profile/data",
        )?;
        let who = identifier(profile_attributes, "/data/attributes/profile/data")?;
        let time = event_time(attributes)?;
        let value = attributes.get("value").filter(|v| !v.is_null());
        if value.is_some_and(|v| !v.is_number()) {
            return Err((
                "value must be a number".into(),
                "/data/attributes/value".into(),
            ));
        }
        let currency = attributes.get("value_currency").and_then(Value::as_str);
        if currency.is_some_and(|c| c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase())) {
            return Err((
                "value_currency must be an ISO 4217 code".into(),
                "/data/attributes/value_currency".into(),
            ));
        }
        let unique_id = match attributes.get("unique_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err((
                    "unique_id must be a string".into(),
                    "/data/attributes/unique_id".into(),
                ))
            }
        };
        Ok(RecordedEvent {
            metric: name.to_string(),
            profile: who,
            unique_id,
            time: time.map(|t| t.to_rfc3339()),
            value: value.cloned(),
            value_currency: currency.map(str::to_string),
            properties: props,
        })
    })();
    let event = match checked {
        Ok(event) => event,
        Err((detail, pointer)) => return invalid(&inner, &detail, &pointer),
    };
    {
        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
        // Without a unique id Klaviyo uses the time to the second.
        let once = event.unique_id.clone().unwrap_or_else(|| {
            event
                .time
                .clone()
                .unwrap_or_else(|| Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string())
        });
        let key = (event.profile.clone(), event.metric.clone(), once);
        if guard.seen.insert(key) {
            guard.events.push(event);
        } else {
            guard.stats.duplicates += 1;
        }
    }
    answer(&inner, fault, StatusCode::ACCEPTED.into_response()).await
}
