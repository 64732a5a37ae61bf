//! A local Shopify Admin API for the discount-code calls the engine makes,
//! following Shopify's documented shapes (GraphQL Admin API, version
//! [`API_VERSION`]):
//! - `discountCodeBasicCreate` / `discountCodeBasicUpdate` /
//!   `discountCodeDeactivate` with `userErrors` (`TAKEN` "Code must be
//!   unique", `BLANK`, an unknown id), `codeDiscountNodeByCode`;
//! - variables checked against the input type's fields, as Shopify refuses
//!   an unknown input field for the whole request;
//! - the cost-based leaky bucket: each call's requested cost is taken only
//!   when the bucket holds it, else `THROTTLED` with
//!   `extensions.cost.throttleStatus`; it refills at the restore rate and
//!   never goes below zero;
//! - access: a fixed Admin API token, or tokens from the client credentials
//!   grant (`POST /admin/oauth/access_token`) that expire (24 h by
//!   default); a missing or expired token is answered 401;
//! - store credit (`storeCreditAccountCredit` / `storeCreditAccountDebit`
//!   with their user errors `NEGATIVE_OR_ZERO_AMOUNT`,
//!   `INSUFFICIENT_FUNDS`, `ACCOUNT_NOT_FOUND`, `OWNER_NOT_FOUND`,
//!   `MISMATCHING_CURRENCY`; `customer.storeCreditAccounts` with the
//!   `currency_code` filter, `balance` and `transactions` paginated as a
//!   connection: `first`/`after` or `last`/`before` (one of `first` or
//!   `last` required, at most 250), `edges { cursor node }`, `nodes` and
//!   `pageInfo`, oldest first): a credit to a
//!   customer id opens their account in that currency; the checkout's side
//!   (a payment with store credit, the payment given back, money refunded
//!   to store credit) is played by [`FakeShopify::pay_with_store_credit`],
//!   [`FakeShopify::revert_store_credit_payment`] and
//!   [`FakeShopify::refund_to_store_credit`], and a transaction in the
//!   balance before it is listed by
//!   [`FakeShopify::hide_newest_transaction`];
//! - injected faults ([`super::faults`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::faults::{Fault, FaultRates, Faults};

pub const API_VERSION: &str = "2026-10";
pub const ADMIN_TOKEN: &str = "shpat_fake_admin_token";
pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// Requested and actual cost of a mutation (Shopify: 10 points).
pub const MUTATION_COST: f64 = 10.0;
/// Requested and actual cost of the lookup query.
pub const LOOKUP_REQUESTED: f64 = 4.0;
pub const LOOKUP_ACTUAL: f64 = 2.0;
/// Requested and actual cost of the store credit account query.
pub const ACCOUNT_REQUESTED: f64 = 30.0;
pub const ACCOUNT_ACTUAL: f64 = 12.0;

/// A store credit account as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditAccount {
    pub id: String,
    /// The owner's customer GID.
    pub customer: String,
    pub currency: String,
    pub balance: Decimal,
    /// Oldest first.
    pub transactions: Vec<CreditTransaction>,
}

/// One store credit transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditTransaction {
    pub id: String,
    /// `StoreCreditAccountCreditTransaction`, `...DebitTransaction`.
    pub typename: &'static str,
    pub amount: Decimal,
    pub balance_after: Decimal,
    pub created_at: DateTime<Utc>,
    /// `ADJUSTMENT`, `ORDER_PAYMENT`, `ORDER_REFUND`, ...
    pub event: &'static str,
    /// The order's GID and name, for transactions an order made.
    pub order: Option<(String, String)>,
}

const INPUT_FIELDS: &[&str] = &[
    "appliesOncePerCustomer",
    "code",
    "combinesWith",
    "context",
    "customerGets",
    "customerSelection",
    "endsAt",
    "minimumRequirement",
    "recurringCycleLimit",
    "startsAt",
    "tags",
    "title",
    "usageLimit",
];

/// A basic code discount as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Discount {
    pub id: String,
    pub code: String,
    pub title: String,
    pub amount: Decimal,
    pub applies_on_each_item: bool,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Customer GIDs of `context.customers`; empty with `all`.
    pub customers: Vec<String>,
    pub min_subtotal: Option<Decimal>,
    pub combines: (bool, bool, bool),
    pub usage_limit: Option<i64>,
    /// Set by the fake's own helper: a discount the merchant made by hand.
    pub foreign: bool,
}

impl Discount {
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.starts_at > now {
            "SCHEDULED"
        } else if self.ends_at.is_some_and(|end| end <= now) {
            "EXPIRED"
        } else {
            "ACTIVE"
        }
    }

    pub fn is_active(&self) -> bool {
        self.status(Utc::now()) == "ACTIVE"
    }
}

#[derive(Debug, Default, Clone)]
pub struct ShopifyStats {
    /// Calls answered, by operation (create, update, deactivate, lookup).
    pub calls: HashMap<String, u64>,
    /// THROTTLED answers because the bucket was short (not injected).
    pub throttled: u64,
    /// The least the bucket ever held after taking a call's cost.
    pub lowest_bucket: f64,
    pub unauthorized: u64,
    pub tokens_issued: u64,
}

struct Bucket {
    maximum: f64,
    available: f64,
    restore_rate: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.at = now;
    }

    fn status(&self) -> Value {
        json!({
            "maximumAvailable": self.maximum,
            "currentlyAvailable": self.available.floor(),
            "restoreRate": self.restore_rate,
        })
    }
}

struct Inner {
    credit_accounts: Vec<CreditAccount>,
    /// The next store credit mutation is applied only after the faults'
    /// delay (a request that lands after its caller gave up on it).
    land_late: bool,
    /// Transactions in their account's balance but not listed yet, by id
    /// (listed late behind newer ones).
    hidden: Vec<String>,
    /// Added to the time of every store credit transaction made from now
    /// on (a test moves the platform's clock).
    clock_offset: chrono::Duration,
    discounts: HashMap<String, Discount>,
    by_code: HashMap<String, String>,
    next_id: u64,
    bucket: Bucket,
    tokens: HashMap<String, Instant>,
    token_ttl: Duration,
    /// How long the client credentials grant takes to answer.
    token_delay: Duration,
    stats: ShopifyStats,
    faults: Faults,
}

/// A running fake; dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeShopify {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeShopify {
    /// Starts a fake shop with the standard plan's bucket (100 points per
    /// second restored, 2,000 at most).
    pub async fn start() -> FakeShopify {
        FakeShopify::with_bucket(2000.0, 100.0).await
    }

    pub async fn with_bucket(maximum: f64, restore_rate: f64) -> FakeShopify {
        let inner = Arc::new(Mutex::new(Inner {
            credit_accounts: Vec::new(),
            land_late: false,
            hidden: Vec::new(),
            clock_offset: chrono::Duration::zero(),
            discounts: HashMap::new(),
            by_code: HashMap::new(),
            next_id: 1,
            bucket: Bucket {
                maximum,
                available: maximum,
                restore_rate,
                at: Instant::now(),
            },
            tokens: HashMap::new(),
            token_ttl: Duration::from_secs(24 * 3600),
            token_delay: Duration::ZERO,
            stats: ShopifyStats {
                lowest_bucket: maximum,
                ..ShopifyStats::default()
            },
            faults: Faults::default(),
        }));
        let app = Router::new()
            .route("/admin/api/{version}/graphql.json", post(graphql))
            .route("/admin/oauth/access_token", post(access_token))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake shopify cannot bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake shopify has no address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeShopify { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The discount holding `code` (case-insensitive).
    pub fn discount(&self, code: &str) -> Option<Discount> {
        let inner = self.lock();
        let id = inner.by_code.get(&code.to_lowercase())?;
        inner.discounts.get(id).cloned()
    }

    pub fn discounts(&self) -> Vec<Discount> {
        self.lock().discounts.values().cloned().collect()
    }

    /// A discount the merchant made by hand with this code.
    pub fn add_foreign_code(&self, code: &str) {
        let mut inner = self.lock();
        let id = format!("gid://shopify/DiscountCodeNode/{}", inner.next_id);
        inner.next_id += 1;
        inner.by_code.insert(code.to_lowercase(), id.clone());
        inner.discounts.insert(
            id.clone(),
            Discount {
                id,
                code: code.to_string(),
                title: "Summer sale".into(),
                amount: Decimal::TEN,
                applies_on_each_item: false,
                starts_at: Utc::now(),
                ends_at: None,
                customers: Vec::new(),
                min_subtotal: None,
                combines: (false, false, false),
                usage_limit: None,
                foreign: true,
            },
        );
    }

    /// Removes a discount as a merchant deleting it in the admin would.
    pub fn delete(&self, code: &str) {
        let mut inner = self.lock();
        if let Some(id) = inner.by_code.remove(&code.to_lowercase()) {
            inner.discounts.remove(&id);
        }
    }

    /// The customer's store credit balance in `currency` (None: no account).
    pub fn store_credit_balance(&self, customer_id: &str, currency: &str) -> Option<Decimal> {
        let gid = format!("gid://shopify/Customer/{customer_id}");
        self.lock()
            .credit_accounts
            .iter()
            .find(|a| a.customer == gid && a.currency == currency)
            .map(|a| a.balance)
    }

    /// The next store credit credit or debit reaches the shop only after the
    /// faults' delay (2 s by default): its caller times out first and the
    /// mutation is applied afterwards.
    pub fn land_next_store_credit_call_late(&self) {
        self.lock().land_late = true;
    }

    /// Every store credit account.
    pub fn credit_accounts(&self) -> Vec<CreditAccount> {
        self.lock().credit_accounts.clone()
    }

    /// A checkout paying `amount` of order `order` (its numeric id; its
    /// name is `#id`) with the customer's store credit (an `ORDER_PAYMENT`
    /// debit); false without the funds.
    pub fn pay_with_store_credit(
        &self,
        customer_id: &str,
        currency: &str,
        amount: Decimal,
        order: &str,
    ) -> bool {
        self.order_transaction(
            customer_id,
            currency,
            -amount,
            "ORDER_PAYMENT",
            order,
            false,
        )
    }

    /// The newest transaction of any account stays in its balance but is
    /// not listed until [`FakeShopify::list_hidden`], even behind newer
    /// ones (Shopify lists late, not always in order).
    pub fn hide_newest_transaction(&self) {
        let mut inner = self.lock();
        let newest = inner
            .credit_accounts
            .iter()
            .flat_map(|a| a.transactions.iter())
            .max_by_key(|t| t.id.rsplit('/').next().and_then(|n| n.parse::<u64>().ok()))
            .map(|t| t.id.clone());
        inner.hidden.extend(newest);
    }

    /// Store credit transactions made from now on are dated `by` later.
    pub fn advance_transaction_clock(&self, by: chrono::Duration) {
        self.lock().clock_offset += by;
    }

    /// Lists every hidden transaction.
    pub fn list_hidden(&self) {
        self.lock().hidden.clear();
    }

    /// Money of order `order` refunded to store credit that was not spent
    /// from it (a card payment refunded as store credit: an `ORDER_REFUND`
    /// credit transaction).
    pub fn refund_to_store_credit(
        &self,
        customer_id: &str,
        currency: &str,
        amount: Decimal,
        order: &str,
    ) -> bool {
        self.order_transaction(customer_id, currency, amount, "ORDER_REFUND", order, false)
    }

    /// Store credit the merchant gave with an end date running out: a
    /// `StoreCreditAccountExpirationTransaction` of `amount` (Shopify names
    /// no event for it; `ADJUSTMENT` here); false without the funds.
    pub fn expire_store_credit(&self, customer_id: &str, currency: &str, amount: Decimal) -> bool {
        self.push_transaction(
            customer_id,
            currency,
            -amount,
            "StoreCreditAccountExpirationTransaction",
            "ADJUSTMENT",
            None,
        )
    }

    /// A store credit payment of order `order` given back (the order
    /// cancelled or refunded: Shopify reverts the debit, a
    /// `StoreCreditAccountDebitRevertTransaction` with `event`).
    pub fn revert_store_credit_payment(
        &self,
        customer_id: &str,
        currency: &str,
        amount: Decimal,
        order: &str,
        event: &'static str,
    ) -> bool {
        self.order_transaction(customer_id, currency, amount, event, order, true)
    }

    fn order_transaction(
        &self,
        customer_id: &str,
        currency: &str,
        signed: Decimal,
        event: &'static str,
        order: &str,
        reverts: bool,
    ) -> bool {
        let typename = if signed < Decimal::ZERO {
            "StoreCreditAccountDebitTransaction"
        } else if reverts {
            "StoreCreditAccountDebitRevertTransaction"
        } else {
            "StoreCreditAccountCreditTransaction"
        };
        let order = Some((format!("gid://shopify/Order/{order}"), format!("#{order}")));
        self.push_transaction(customer_id, currency, signed, typename, event, order)
    }

    /// A transaction the shop made (not through the API), moving the
    /// customer's balance by `signed`; false without the funds or the account.
    fn push_transaction(
        &self,
        customer_id: &str,
        currency: &str,
        signed: Decimal,
        typename: &'static str,
        event: &'static str,
        order: Option<(String, String)>,
    ) -> bool {
        let gid = format!("gid://shopify/Customer/{customer_id}");
        let mut inner = self.lock();
        let next = inner.next_id;
        inner.next_id += 1;
        let offset = inner.clock_offset;
        let Some(account) = inner
            .credit_accounts
            .iter_mut()
            .find(|a| a.customer == gid && a.currency == currency)
        else {
            return false;
        };
        if account.balance + signed < Decimal::ZERO {
            return false;
        }
        account.balance += signed;
        let short = typename.trim_start_matches("StoreCreditAccount");
        account.transactions.push(CreditTransaction {
            id: format!("gid://shopify/StoreCreditAccount{short}/{next}"),
            typename,
            amount: signed.abs(),
            balance_after: account.balance,
            created_at: Utc::now() + offset,
            event,
            order,
        });
        true
    }

    pub fn stats(&self) -> ShopifyStats {
        self.lock().stats.clone()
    }

    pub fn injected(&self) -> Vec<Fault> {
        self.lock().faults.injected.clone()
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

    /// How long tokens from the client credentials grant last.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().token_ttl = ttl;
    }

    /// The client credentials grant answers only after `delay`.
    pub fn set_token_delay(&self, delay: Duration) {
        self.lock().token_delay = delay;
    }

    /// The bucket holds `points` now (calls of other apps drained it).
    pub fn set_bucket_available(&self, points: f64) {
        let mut inner = self.lock();
        inner.bucket.refill();
        inner.bucket.available = points.min(inner.bucket.maximum);
    }

    /// Every issued token expires now (the next call is answered 401).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in self.lock().tokens.values_mut() {
            *expiry = now;
        }
    }
}

fn graphql_error(status: StatusCode, message: &str, code: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]})),
    )
        .into_response()
}

async fn access_token(State(inner): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let form = form_decode(&body);
    let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
        )
            .into_response();
    }
    let delay = inner.lock().unwrap_or_else(|p| p.into_inner()).token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    inner.stats.tokens_issued += 1;
    let token = format!("shpca_fake_{}", inner.stats.tokens_issued);
    let ttl = inner.token_ttl;
    inner.tokens.insert(token.clone(), Instant::now() + ttl);
    Json(json!({
        "access_token": token,
        "scope": "read_orders,write_discounts,read_customers",
        "expires_in": ttl.as_secs(),
    }))
    .into_response()
}

async fn graphql(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if version != API_VERSION {
        return (StatusCode::NOT_FOUND, Json(json!({"errors": "Not Found"}))).into_response();
    }
    let token = headers
        .get("x-shopify-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (fault, jitter, delay) = {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let valid = token == ADMIN_TOKEN || inner.tokens.get(&token).is_some_and(|e| *e > now);
        if !valid {
            inner.stats.unauthorized += 1;
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})),
            )
                .into_response();
        }
        let (fault, jitter) = inner.faults.draw();
        (fault, jitter, inner.faults.delay())
    };
    if !jitter.is_zero() {
        tokio::time::sleep(jitter).await;
    }
    if fault == Some(Fault::ServerError) {
        return graphql_error(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            "INTERNAL_SERVER_ERROR",
        );
    }
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let variables = body.get("variables").cloned().unwrap_or(json!({}));
    let mutation = query.trim_start().starts_with("mutation");
    let (operation, requested, actual) = if mutation && query.contains("storeCreditAccountCredit") {
        ("store_credit_credit", MUTATION_COST, MUTATION_COST)
    } else if mutation && query.contains("storeCreditAccountDebit") {
        ("store_credit_debit", MUTATION_COST, MUTATION_COST)
    } else if query.contains("storeCreditAccounts") {
        ("store_credit_account", ACCOUNT_REQUESTED, ACCOUNT_ACTUAL)
    } else if query.contains("discountCodeBasicCreate") {
        ("create", MUTATION_COST, MUTATION_COST)
    } else if query.contains("discountCodeBasicUpdate") {
        ("update", MUTATION_COST, MUTATION_COST)
    } else if query.contains("discountCodeDeactivate") {
        ("deactivate", MUTATION_COST, MUTATION_COST)
    } else if query.contains("codeDiscountNodeByCode") {
        ("lookup", LOOKUP_REQUESTED, LOOKUP_ACTUAL)
    } else {
        return graphql_error(
            StatusCode::OK,
            "This fake answers only the discount code calls",
            "undefinedField",
        );
    };
    let late = operation.starts_with("store_credit_") && operation != "store_credit_account" && {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut inner.land_late)
    };
    if late {
        // The request reaches the platform only after the caller's deadline
        // (applied by a task of its own: the caller's dropped connection
        // does not stop it).
        let shared = inner.clone();
        let variables = variables.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut inner = shared.lock().unwrap_or_else(|p| p.into_inner());
            let _ = if operation == "store_credit_credit" {
                store_credit_credit(&mut inner, &variables)
            } else {
                store_credit_debit(&mut inner, &variables)
            };
        });
        tokio::time::sleep(delay * 2).await;
        return graphql_error(
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway Timeout",
            "INTERNAL_SERVER_ERROR",
        );
    }
    let answer = {
        let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.bucket.refill();
        let throttled = fault == Some(Fault::Throttle) || inner.bucket.available < requested;
        if throttled {
            if fault != Some(Fault::Throttle) {
                inner.stats.throttled += 1;
            }
            return Json(json!({
                "errors": [{"message": "Throttled", "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": null,
                    "throttleStatus": inner.bucket.status()}}
            }))
            .into_response();
        }
        inner.bucket.available -= requested;
        let lowest = inner.stats.lowest_bucket.min(inner.bucket.available);
        inner.stats.lowest_bucket = lowest;
        *inner.stats.calls.entry(operation.to_string()).or_default() += 1;
        let data = match operation {
            "create" => create(&mut inner, &variables),
            "update" => update(&mut inner, &variables),
            "deactivate" => deactivate(&mut inner, &variables),
            "store_credit_credit" => store_credit_credit(&mut inner, &variables),
            "store_credit_debit" => store_credit_debit(&mut inner, &variables),
            "store_credit_account" => store_credit_account(&inner, &query, &variables),
            _ => lookup(&inner, &variables),
        };
        inner.bucket.available += requested - actual;
        match data {
            Ok(data) => json!({
                "data": data,
                "extensions": {"cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": actual,
                    "throttleStatus": inner.bucket.status()}}
            }),
            Err(message) => json!({
                "errors": [{"message": message, "extensions": {"code": "INVALID_VARIABLE"}}]
            }),
        }
    };
    match fault {
        Some(Fault::Timeout) => {
            tokio::time::sleep(delay).await;
            Json(answer).into_response()
        }
        Some(Fault::Duplicate) => graphql_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "INTERNAL_SERVER_ERROR",
        ),
        _ => Json(answer).into_response(),
    }
}

fn user_error(field: &[&str], message: &str, code: &str) -> Value {
    json!({"field": field, "message": message, "code": code, "extraInfo": null})
}

fn node(discount: &Discount) -> Value {
    json!({
        "id": discount.id,
        "codeDiscount": {
            "__typename": "DiscountCodeBasic",
            "title": discount.title,
            "status": discount.status(Utc::now()),
            "customerGets": {"value": {
                "__typename": "DiscountAmount",
                "amount": {"amount": discount.amount.normalize().to_string(), "currencyCode": "USD"},
                "appliesOnEachItem": discount.applies_on_each_item,
            }},
        }
    })
}

/// Checks the input's fields as Shopify checks a variable's value.
fn check_input(input: &Value) -> Result<(), String> {
    let Some(fields) = input.as_object() else {
        return Err(
            "Variable $input of type DiscountCodeBasicInput! was provided invalid value".into(),
        );
    };
    for name in fields.keys() {
        if !INPUT_FIELDS.contains(&name.as_str()) {
            return Err(format!(
                "Variable $input of type DiscountCodeBasicInput! was provided invalid value for {name} (Field is not defined on DiscountCodeBasicInput)"
            ));
        }
    }
    if fields.contains_key("context") && fields.contains_key("customerSelection") {
        return Err("Only one of context or customerSelection can be provided".into());
    }
    Ok(())
}

fn decimal(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

fn time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value?.as_str()?.parse().ok()
}

/// Applies the input's fields to a discount; user errors when invalid.
fn apply(discount: &mut Discount, input: &Value, errors: &mut Vec<Value>) {
    if let Some(title) = input.get("title").and_then(Value::as_str) {
        if title.trim().is_empty() {
            errors.push(user_error(
                &["basicCodeDiscount", "title"],
                "Title can't be blank",
                "BLANK",
            ));
        }
        discount.title = title.to_string();
    }
    if let Some(starts) = time(input.get("startsAt")) {
        discount.starts_at = starts;
    }
    if let Some(ends) = input.get("endsAt") {
        discount.ends_at = time(Some(ends));
    }
    if let Some(ends) = discount.ends_at {
        if ends < discount.starts_at {
            errors.push(user_error(
                &["basicCodeDiscount", "endsAt"],
                "End date must be after start date",
                "END_DATE_BEFORE_START_DATE",
            ));
        }
    }
    if let Some(value) = input.pointer("/customerGets/value") {
        match value.get("discountAmount") {
            Some(amount) => match decimal(amount.get("amount")) {
                Some(a) if a > Decimal::ZERO => {
                    discount.amount = a;
                    discount.applies_on_each_item = amount
                        .get("appliesOnEachItem")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                }
                _ => errors.push(user_error(
                    &[
                        "basicCodeDiscount",
                        "customerGets",
                        "value",
                        "discountAmount",
                        "amount",
                    ],
                    "Value must be greater than 0",
                    "GREATER_THAN",
                )),
            },
            None => errors.push(user_error(
                &["basicCodeDiscount", "customerGets", "value"],
                "This fake holds fixed amounts only",
                "INVALID",
            )),
        }
    }
    if let Some(context) = input.get("context") {
        if let Some(add) = context.pointer("/customers/add").and_then(Value::as_array) {
            for customer in add.iter().filter_map(Value::as_str) {
                if !customer.starts_with("gid://shopify/Customer/") {
                    errors.push(user_error(
                        &["basicCodeDiscount", "context", "customers", "add"],
                        "Customer does not exist",
                        "INVALID",
                    ));
                } else if !discount.customers.iter().any(|c| c == customer) {
                    discount.customers.push(customer.to_string());
                }
            }
        } else if context.get("all").and_then(Value::as_str) == Some("ALL") {
            discount.customers.clear();
        }
    }
    if let Some(minimum) = input.get("minimumRequirement") {
        discount.min_subtotal = decimal(minimum.pointer("/subtotal/greaterThanOrEqualToSubtotal"));
    }
    if let Some(combines) = input.get("combinesWith") {
        let flag = |k: &str| combines.get(k).and_then(Value::as_bool).unwrap_or(false);
        discount.combines = (
            flag("orderDiscounts"),
            flag("productDiscounts"),
            flag("shippingDiscounts"),
        );
    }
    if let Some(limit) = input.get("usageLimit") {
        discount.usage_limit = limit.as_i64();
    }
}

fn create(inner: &mut Inner, variables: &Value) -> Result<Value, String> {
    let input = variables.get("input").cloned().unwrap_or(Value::Null);
    check_input(&input)?;
    let code = input
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut errors = Vec::new();
    if code.trim().is_empty() {
        errors.push(user_error(
            &["basicCodeDiscount", "code"],
            "Code can't be blank",
            "BLANK",
        ));
    } else if inner.by_code.contains_key(&code.to_lowercase()) {
        errors.push(user_error(
            &["basicCodeDiscount", "code"],
            "Code must be unique. Please try a different code.",
            "TAKEN",
        ));
    }
    if input.get("startsAt").is_none() {
        errors.push(user_error(
            &["basicCodeDiscount", "startsAt"],
            "Starts at can't be blank",
            "BLANK",
        ));
    }
    if input.get("customerGets").is_none() {
        errors.push(user_error(
            &["basicCodeDiscount", "customerGets"],
            "Customer gets can't be blank",
            "BLANK",
        ));
    }
    let id = format!("gid://shopify/DiscountCodeNode/{}", inner.next_id);
    let mut discount = Discount {
        id: id.clone(),
        code: code.clone(),
        title: String::new(),
        amount: Decimal::ZERO,
        applies_on_each_item: false,
        starts_at: Utc::now(),
        ends_at: None,
        customers: Vec::new(),
        min_subtotal: None,
        combines: (false, false, false),
        usage_limit: None,
        foreign: false,
    };
    apply(&mut discount, &input, &mut errors);
    if !errors.is_empty() {
        return Ok(
            json!({"discountCodeBasicCreate": {"codeDiscountNode": null, "userErrors": errors}}),
        );
    }
    inner.next_id += 1;
    let answer = node(&discount);
    inner.by_code.insert(code.to_lowercase(), id.clone());
    inner.discounts.insert(id, discount);
    Ok(json!({"discountCodeBasicCreate": {"codeDiscountNode": answer, "userErrors": []}}))
}

fn update(inner: &mut Inner, variables: &Value) -> Result<Value, String> {
    let input = variables.get("input").cloned().unwrap_or(Value::Null);
    check_input(&input)?;
    let id = variables
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(mut discount) = inner.discounts.get(&id).cloned() else {
        return Ok(json!({"discountCodeBasicUpdate": {"codeDiscountNode": null,
            "userErrors": [user_error(&["id"], "Discount does not exist", "INVALID")]}}));
    };
    let mut errors = Vec::new();
    if let Some(code) = input.get("code").and_then(Value::as_str) {
        let taken = inner
            .by_code
            .get(&code.to_lowercase())
            .is_some_and(|other| *other != id);
        if taken {
            errors.push(user_error(
                &["basicCodeDiscount", "code"],
                "Code must be unique. Please try a different code.",
                "TAKEN",
            ));
        }
    }
    apply(&mut discount, &input, &mut errors);
    if !errors.is_empty() {
        return Ok(
            json!({"discountCodeBasicUpdate": {"codeDiscountNode": null, "userErrors": errors}}),
        );
    }
    let answer = node(&discount);
    inner.discounts.insert(id, discount);
    Ok(json!({"discountCodeBasicUpdate": {"codeDiscountNode": answer, "userErrors": []}}))
}

fn deactivate(inner: &mut Inner, variables: &Value) -> Result<Value, String> {
    let id = variables
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(discount) = inner.discounts.get_mut(id) else {
        return Ok(json!({"discountCodeDeactivate": {"codeDiscountNode": null,
            "userErrors": [user_error(&["id"], "Discount does not exist", "INVALID")]}}));
    };
    discount.ends_at = Some(Utc::now());
    Ok(json!({"discountCodeDeactivate": {"codeDiscountNode": {"id": id}, "userErrors": []}}))
}

fn lookup(inner: &Inner, variables: &Value) -> Result<Value, String> {
    let code = variables
        .get("code")
        .and_then(Value::as_str)
        .ok_or("Variable $code of type String! was provided invalid value")?;
    let found = inner
        .by_code
        .get(&code.to_lowercase())
        .and_then(|id| inner.discounts.get(id));
    Ok(json!({"codeDiscountNodeByCode": found.map(node)}))
}

fn money_v2(amount: Decimal, currency: &str) -> Value {
    json!({"amount": amount.normalize().to_string(), "currencyCode": currency})
}

fn check_fields(input: &Value, name: &str, type_name: &str, fields: &[&str]) -> Result<(), String> {
    let Some(object) = input.as_object() else {
        return Err(format!(
            "Variable ${name} of type {type_name}! was provided invalid value"
        ));
    };
    for field in object.keys() {
        if !fields.contains(&field.as_str()) {
            return Err(format!(
                "Variable ${name} of type {type_name}! was provided invalid value for {field} (Field is not defined on {type_name})"
            ));
        }
    }
    Ok(())
}

fn transaction_node(transaction: &CreditTransaction, currency: &str) -> Value {
    let mut node = json!({
        "__typename": transaction.typename,
        "amount": money_v2(transaction.amount, currency),
        "balanceAfterTransaction": money_v2(transaction.balance_after, currency),
        "createdAt": transaction.created_at.to_rfc3339(),
        "event": transaction.event,
        "origin": transaction.order.as_ref().map(|(id, name)| json!({
            "id": format!("gid://shopify/OrderTransaction/{}", id.rsplit('/').next().unwrap_or("1")),
            "order": {"id": id, "name": name},
        })),
    });
    if transaction.typename != "StoreCreditAccountExpirationTransaction" {
        node["id"] = json!(transaction.id);
    }
    node
}

/// A credit or debit of the API: (account index, amount) or the payload's
/// user errors.
fn credit_or_debit(
    inner: &mut Inner,
    variables: &Value,
    input_name: &str,
    input_type: &str,
    amount_field: &str,
    credit: bool,
) -> Result<Result<(usize, Decimal), Vec<Value>>, String> {
    let input = variables.get(input_name).cloned().unwrap_or(Value::Null);
    let fields: &[&str] = if credit {
        &["creditAmount", "expiresAt", "notify"]
    } else {
        &["debitAmount"]
    };
    check_fields(&input, input_name, input_type, fields)?;
    let id = variables
        .get("id")
        .and_then(Value::as_str)
        .ok_or("Variable $id of type ID! was provided invalid value")?
        .to_string();
    let money = input
        .get(amount_field)
        .ok_or(format!("Variable ${input_name} of type {input_type}! was provided invalid value for {amount_field} (Expected value to not be null)"))?;
    let amount = decimal(money.get("amount")).ok_or(format!(
        "Variable ${input_name} was provided invalid value for {amount_field}.amount"
    ))?;
    let currency = money
        .get("currencyCode")
        .and_then(Value::as_str)
        .ok_or(format!(
            "Variable ${input_name} was provided invalid value for {amount_field}.currencyCode"
        ))?
        .to_string();
    let field = [input_name, amount_field];
    if amount <= Decimal::ZERO {
        let message = if credit {
            "A positive amount must be used to credit a store credit account."
        } else {
            "A positive amount must be used to debit a store credit account."
        };
        return Ok(Err(vec![user_error(
            &field,
            message,
            "NEGATIVE_OR_ZERO_AMOUNT",
        )]));
    }
    let found = if let Some(customer) = id.strip_prefix("gid://shopify/Customer/") {
        if !credit || customer.is_empty() || !customer.bytes().all(|b| b.is_ascii_digit()) {
            let (code, message) = if credit {
                ("OWNER_NOT_FOUND", "Owner does not exist.")
            } else {
                (
                    "ACCOUNT_NOT_FOUND",
                    "The store credit account could not be found.",
                )
            };
            return Ok(Err(vec![user_error(&["id"], message, code)]));
        }
        match inner
            .credit_accounts
            .iter()
            .position(|a| a.customer == id && a.currency == currency)
        {
            Some(index) => index,
            None => {
                let account_id = format!("gid://shopify/StoreCreditAccount/{}", inner.next_id);
                inner.next_id += 1;
                inner.credit_accounts.push(CreditAccount {
                    id: account_id,
                    customer: id.clone(),
                    currency: currency.clone(),
                    balance: Decimal::ZERO,
                    transactions: Vec::new(),
                });
                inner.credit_accounts.len() - 1
            }
        }
    } else {
        match inner.credit_accounts.iter().position(|a| a.id == id) {
            Some(index) => index,
            None => {
                return Ok(Err(vec![user_error(
                    &["id"],
                    "The store credit account could not be found.",
                    "ACCOUNT_NOT_FOUND",
                )]))
            }
        }
    };
    if inner.credit_accounts[found].currency != currency {
        return Ok(Err(vec![user_error(
            &field,
            "The currency provided does not match the currency of the store credit account.",
            "MISMATCHING_CURRENCY",
        )]));
    }
    if !credit && inner.credit_accounts[found].balance < amount {
        return Ok(Err(vec![user_error(
            &field,
            "The store credit account does not have sufficient funds to satisfy the request.",
            "INSUFFICIENT_FUNDS",
        )]));
    }
    Ok(Ok((found, amount)))
}

fn apply_credit_transaction(inner: &mut Inner, index: usize, signed: Decimal) -> Value {
    let offset = inner.clock_offset;
    let next = inner.next_id;
    inner.next_id += 1;
    let account = &mut inner.credit_accounts[index];
    account.balance += signed;
    let typename = if signed < Decimal::ZERO {
        "StoreCreditAccountDebitTransaction"
    } else {
        "StoreCreditAccountCreditTransaction"
    };
    let short = typename.trim_start_matches("StoreCreditAccount");
    let transaction = CreditTransaction {
        id: format!("gid://shopify/StoreCreditAccount{short}/{next}"),
        typename,
        amount: signed.abs(),
        balance_after: account.balance,
        created_at: Utc::now() + offset,
        event: "ADJUSTMENT",
        order: None,
    };
    let node = transaction_node(&transaction, &account.currency);
    account.transactions.push(transaction);
    node
}

fn store_credit_credit(inner: &mut Inner, variables: &Value) -> Result<Value, String> {
    let answer = match credit_or_debit(
        inner,
        variables,
        "creditInput",
        "StoreCreditAccountCreditInput",
        "creditAmount",
        true,
    )? {
        Ok((index, amount)) => {
            json!({"storeCreditAccountTransaction": apply_credit_transaction(inner, index, amount), "userErrors": []})
        }
        Err(errors) => json!({"storeCreditAccountTransaction": null, "userErrors": errors}),
    };
    Ok(json!({"storeCreditAccountCredit": answer}))
}

fn store_credit_debit(inner: &mut Inner, variables: &Value) -> Result<Value, String> {
    let answer = match credit_or_debit(
        inner,
        variables,
        "debitInput",
        "StoreCreditAccountDebitInput",
        "debitAmount",
        false,
    )? {
        Ok((index, amount)) => {
            json!({"storeCreditAccountTransaction": apply_credit_transaction(inner, index, -amount), "userErrors": []})
        }
        Err(errors) => json!({"storeCreditAccountTransaction": null, "userErrors": errors}),
    };
    Ok(json!({"storeCreditAccountDebit": answer}))
}

/// The arguments of the `transactions` connection as the query writes
/// them, each a literal or a variable's value.
fn transactions_arguments(query: &str, variables: &Value) -> HashMap<String, Value> {
    let mut found = HashMap::new();
    let Some(start) = query.find("transactions(") else {
        return found;
    };
    let rest = &query[start + "transactions(".len()..];
    let Some(end) = rest.find(')') else {
        return found;
    };
    for argument in rest[..end].split(',') {
        let Some((name, value)) = argument.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = match value.strip_prefix('$') {
            Some(variable) => variables.get(variable).cloned().unwrap_or(Value::Null),
            None => serde_json::from_str(value).unwrap_or(Value::Null),
        };
        found.insert(name.trim().to_string(), value);
    }
    found
}

/// A transaction's cursor: opaque to the caller, stable as transactions
/// are added.
fn cursor_of(transaction: &CreditTransaction) -> String {
    let hex: String = transaction.id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("sc{hex}")
}

fn store_credit_account(inner: &Inner, query: &str, variables: &Value) -> Result<Value, String> {
    let id = variables
        .get("id")
        .and_then(Value::as_str)
        .ok_or("Variable $id of type ID! was provided invalid value")?;
    if !id.starts_with("gid://shopify/Customer/") {
        return Ok(json!({"customer": null}));
    }
    let currency = variables
        .get("query")
        .and_then(Value::as_str)
        .and_then(|q| q.strip_prefix("currency_code:"))
        .map(str::to_string);
    let arguments = transactions_arguments(query, variables);
    let count = |name: &str| arguments.get(name).and_then(Value::as_u64);
    let cursor = |name: &str| {
        arguments
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (first, last) = (count("first"), count("last"));
    if first.is_none() && last.is_none() {
        return Err("you must provide one of first or last".into());
    }
    if first.is_some() && last.is_some() {
        return Err("Passing both `first` and `last` to paginate the `transactions` connection is not supported.".into());
    }
    if first.or(last).is_some_and(|n| n > 250) {
        return Err("The page size is limited to 250.".into());
    }
    let mut nodes = Vec::new();
    for account in inner
        .credit_accounts
        .iter()
        .filter(|a| a.customer == id && currency.as_ref().is_none_or(|c| *c == a.currency))
        .take(1)
    {
        let list: Vec<&CreditTransaction> = account
            .transactions
            .iter()
            .filter(|t| !inner.hidden.contains(&t.id))
            .collect();
        let position = |cursor: &str| {
            list.iter()
                .position(|t| cursor_of(t) == cursor)
                .ok_or_else(|| format!("Invalid cursor for current pagination: {cursor}"))
        };
        let mut from = match cursor("after") {
            Some(after) => position(&after)? + 1,
            None => 0,
        };
        let mut to = match cursor("before") {
            Some(before) => position(&before)?,
            None => list.len(),
        };
        to = to.max(from);
        if let Some(first) = first {
            to = to.min(from + first as usize);
        }
        if let Some(last) = last {
            from = from.max(to.saturating_sub(last as usize));
        }
        let page = &list[from..to];
        let edges: Vec<Value> = page
            .iter()
            .map(
                |t| json!({"cursor": cursor_of(t), "node": transaction_node(t, &account.currency)}),
            )
            .collect();
        nodes.push(json!({
            "id": account.id,
            "balance": money_v2(account.balance, &account.currency),
            "transactions": {
                "edges": edges,
                "nodes": page.iter().map(|t| transaction_node(t, &account.currency)).collect::<Vec<_>>(),
                "pageInfo": {
                    "hasNextPage": to < list.len(),
                    "hasPreviousPage": from > 0,
                    "startCursor": page.first().map(|t| cursor_of(t)),
                    "endCursor": page.last().map(|t| cursor_of(t)),
                },
            },
        }));
    }
    Ok(json!({"customer": {"storeCreditAccounts": {"nodes": nodes}}}))
}

/// `application/x-www-form-urlencoded` pairs.
fn form_decode(body: &str) -> HashMap<String, String> {
    fn decode(value: &str) -> String {
        let bytes = value.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => out.push(b),
                        Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                    }
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
