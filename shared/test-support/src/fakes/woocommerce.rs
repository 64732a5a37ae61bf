//! A local WooCommerce REST API (v3) for the coupon resource, following
//! its documented requests and answers: `GET /wp-json/wc/v3/coupons?code=`,
//! `POST /wp-json/wc/v3/coupons`, `PUT /wp-json/wc/v3/coupons/{id}`, HTTP
//! basic auth with the consumer key and secret, codes stored lower case,
//! errors as `{"code", "message", "data": {"status", "params"}}`
//! (`woocommerce_rest_coupon_code_already_exists`, `rest_invalid_param`,
//! `woocommerce_rest_shop_coupon_invalid_id`), 429 with Retry-After when a
//! fault says so.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use base64::Engine;
use chrono::{NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::faults::{Fault, FaultRates, Faults};

pub const CONSUMER_KEY: &str = "ck_fake";
pub const CONSUMER_SECRET: &str = "cs_fake";

const DISCOUNT_TYPES: &[&str] = &["percent", "fixed_cart", "fixed_product"];

/// A coupon as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Coupon {
    pub id: u64,
    pub code: String,
    pub discount_type: String,
    pub amount: Decimal,
    pub description: String,
    pub date_expires: Option<NaiveDateTime>,
    pub individual_use: bool,
    pub email_restrictions: Vec<String>,
    pub minimum_amount: Decimal,
    pub usage_limit: Option<i64>,
}

impl Coupon {
    /// Whether a checkout would take it now.
    pub fn is_active(&self) -> bool {
        self.amount > Decimal::ZERO && self.date_expires.is_none_or(|d| d.and_utc() > Utc::now())
    }

    fn json(&self) -> Value {
        let date = self
            .date_expires
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S").to_string());
        json!({
            "id": self.id,
            "code": self.code,
            "amount": format!("{:.2}", self.amount),
            "discount_type": self.discount_type,
            "description": self.description,
            "date_expires": date,
            "date_expires_gmt": date,
            "usage_count": 0,
            "individual_use": self.individual_use,
            "usage_limit": self.usage_limit,
            "email_restrictions": self.email_restrictions,
            "minimum_amount": format!("{:.2}", self.minimum_amount),
            "maximum_amount": "0.00",
        })
    }
}

#[derive(Debug, Default, Clone)]
pub struct WooStats {
    pub calls: BTreeMap<String, u64>,
    pub unauthorized: u64,
}

struct Inner {
    coupons: BTreeMap<u64, Coupon>,
    next_id: u64,
    stats: WooStats,
    faults: Faults,
}

#[derive(Clone)]
pub struct FakeWoo {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

impl FakeWoo {
    pub async fn start() -> FakeWoo {
        let inner = Arc::new(Mutex::new(Inner {
            coupons: BTreeMap::new(),
            next_id: 100,
            stats: WooStats::default(),
            faults: Faults::default(),
        }));
        let app = Router::new()
            .route("/wp-json/wc/v3/coupons", get(list).post(create))
            .route("/wp-json/wc/v3/coupons/{id}", put(update))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake woocommerce cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake woocommerce has no address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeWoo { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn coupon(&self, code: &str) -> Option<Coupon> {
        let code = code.to_lowercase();
        self.lock()
            .coupons
            .values()
            .find(|c| c.code == code)
            .cloned()
    }

    /// A coupon the merchant made by hand.
    pub fn add_foreign_coupon(&self, code: &str) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.coupons.insert(
            id,
            Coupon {
                id,
                code: code.to_lowercase(),
                discount_type: "percent".into(),
                amount: Decimal::TEN,
                description: "Spring sale".into(),
                date_expires: None,
                individual_use: false,
                email_restrictions: Vec::new(),
                minimum_amount: Decimal::ZERO,
                usage_limit: None,
            },
        );
    }

    pub fn stats(&self) -> WooStats {
        self.lock().stats.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// The next request goes through untouched (aims a queued fault later).
    pub fn push_pass(&self) {
        self.lock().faults.pass();
    }

    pub fn set_fault_rates(&self, rates: FaultRates, seed: u64) {
        self.lock().faults.set_rates(rates, seed);
    }
}

fn error(status: StatusCode, code: &str, message: &str, params: Option<Value>) -> Response {
    let mut data = json!({"status": status.as_u16()});
    if let Some(params) = params {
        data["params"] = params;
    }
    (
        status,
        Json(json!({"code": code, "message": message, "data": data})),
    )
        .into_response()
}

/// Checks basic auth and draws the request's fault.
async fn admit(
    inner: &Shared,
    headers: &HeaderMap,
    operation: &str,
) -> Result<Option<Fault>, Response> {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{CONSUMER_KEY}:{CONSUMER_SECRET}"))
    );
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (fault, jitter) = {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        if given != expected {
            inner.stats.unauthorized += 1;
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot list resources.",
                None,
            ));
        }
        *inner.stats.calls.entry(operation.to_string()).or_default() += 1;
        inner.faults.draw()
    };
    if !jitter.is_zero() {
        tokio::time::sleep(jitter).await;
    }
    match fault {
        Some(Fault::Throttle) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "0")],
            Json(json!({"code": "woocommerce_rest_too_many_requests", "message": "Too many requests.", "data": {"status": 429}})),
        )
            .into_response()),
        Some(Fault::ServerError) => Err(error(StatusCode::BAD_GATEWAY, "bad_gateway", "Bad Gateway", None)),
        other => Ok(other),
    }
}

/// Answers after an applied change, as the fault says.
async fn answer(inner: &Shared, fault: Option<Fault>, status: StatusCode, body: Value) -> Response {
    match fault {
        Some(Fault::Timeout) => {
            let delay = inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .faults
                .delay();
            tokio::time::sleep(delay).await;
            (status, Json(body)).into_response()
        }
        Some(Fault::Duplicate) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
            None,
        ),
        _ => (status, Json(body)).into_response(),
    }
}

async fn list(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let fault = match admit(&inner, &headers, "list").await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let code = query.get("code").map(|c| c.to_lowercase());
    let found: Vec<Value> = inner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .coupons
        .values()
        .filter(|c| code.as_ref().is_none_or(|code| &c.code == code))
        .map(Coupon::json)
        .collect();
    answer(&inner, fault, StatusCode::OK, Value::Array(found)).await
}

/// Applies the body's fields; the invalid ones as `rest_invalid_param`.
fn apply(coupon: &mut Coupon, body: &Value) -> Result<(), Box<Response>> {
    let mut invalid = serde_json::Map::new();
    if let Some(kind) = body.get("discount_type") {
        match kind.as_str().filter(|k| DISCOUNT_TYPES.contains(k)) {
            Some(k) => coupon.discount_type = k.to_string(),
            None => {
                invalid.insert(
                    "discount_type".into(),
                    json!("discount_type is not one of percent, fixed_cart, and fixed_product."),
                );
            }
        }
    }
    if let Some(amount) = body.get("amount") {
        match amount.as_str().and_then(|a| a.parse::<Decimal>().ok()) {
            Some(a) if a >= Decimal::ZERO => coupon.amount = a,
            _ => {
                invalid.insert("amount".into(), json!("amount is not of type string."));
            }
        }
    }
    if let Some(minimum) = body.get("minimum_amount") {
        match minimum.as_str() {
            Some("") => coupon.minimum_amount = Decimal::ZERO,
            Some(m) => match m.parse::<Decimal>() {
                Ok(m) => coupon.minimum_amount = m,
                Err(_) => {
                    invalid.insert(
                        "minimum_amount".into(),
                        json!("minimum_amount is not of type string."),
                    );
                }
            },
            None => {
                invalid.insert(
                    "minimum_amount".into(),
                    json!("minimum_amount is not of type string."),
                );
            }
        }
    }
    if let Some(description) = body.get("description").and_then(Value::as_str) {
        coupon.description = description.to_string();
    }
    if let Some(individual) = body.get("individual_use") {
        match individual.as_bool() {
            Some(b) => coupon.individual_use = b,
            None => {
                invalid.insert(
                    "individual_use".into(),
                    json!("individual_use is not of type boolean."),
                );
            }
        }
    }
    if let Some(emails) = body.get("email_restrictions") {
        match emails.as_array() {
            Some(list)
                if list
                    .iter()
                    .all(|e| e.as_str().is_some_and(|e| e.contains('@'))) =>
            {
                coupon.email_restrictions = list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase)
                    .collect();
            }
            _ => {
                invalid.insert(
                    "email_restrictions".into(),
                    json!("email_restrictions[0] is not a valid email address."),
                );
            }
        }
    }
    if let Some(expires) = body.get("date_expires") {
        match expires {
            Value::Null => coupon.date_expires = None,
            Value::String(s) => match NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
                Ok(d) => coupon.date_expires = Some(d),
                Err(_) => {
                    invalid.insert("date_expires".into(), json!("Invalid date."));
                }
            },
            _ => {
                invalid.insert(
                    "date_expires".into(),
                    json!("date_expires is not of type string,null."),
                );
            }
        }
    }
    if let Some(limit) = body.get("usage_limit") {
        coupon.usage_limit = limit.as_i64();
    }
    if invalid.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = invalid.keys().cloned().collect();
    Err(Box::new(error(
        StatusCode::BAD_REQUEST,
        "rest_invalid_param",
        &format!("Invalid parameter(s): {}", names.join(", ")),
        Some(Value::Object(invalid)),
    )))
}

async fn create(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let fault = match admit(&inner, &headers, "create").await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let Some(code) = body
        .get("code")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "rest_missing_callback_param",
            "Missing parameter(s): code",
            Some(json!(["code"])),
        );
    };
    let code = code.trim().to_lowercase();
    let created = {
        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.coupons.values().any(|c| c.code == code) {
            return error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_coupon_code_already_exists",
                "The coupon code already exists",
                None,
            );
        }
        let id = guard.next_id;
        let mut coupon = Coupon {
            id,
            code,
            discount_type: "fixed_cart".into(),
            amount: Decimal::ZERO,
            description: String::new(),
            date_expires: None,
            individual_use: false,
            email_restrictions: Vec::new(),
            minimum_amount: Decimal::ZERO,
            usage_limit: None,
        };
        if let Err(response) = apply(&mut coupon, &body) {
            return *response;
        }
        guard.next_id += 1;
        let json = coupon.json();
        guard.coupons.insert(id, coupon);
        json
    };
    answer(&inner, fault, StatusCode::CREATED, created).await
}

async fn update(
    State(inner): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    let fault = match admit(&inner, &headers, "update").await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let updated = {
        let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut coupon) = guard.coupons.get(&id).cloned() else {
            return error(
                StatusCode::BAD_REQUEST,
                "woocommerce_rest_shop_coupon_invalid_id",
                "Invalid ID.",
                None,
            );
        };
        if let Err(response) = apply(&mut coupon, &body) {
            return *response;
        }
        let json = coupon.json();
        guard.coupons.insert(id, coupon);
        json
    };
    answer(&inner, fault, StatusCode::OK, updated).await
}
