//! Shopify: the balance code as one basic code discount per customer,
//! through the GraphQL Admin API ([`API_VERSION`]).
//!
//! - create `discountCodeBasicCreate`, update `discountCodeBasicUpdate`:
//!   a fixed amount (the spendable balance) off the order, not per item,
//!   on all items; `context.customers` limits it to its owner in
//!   owner_only programs (`customerSelection` is deprecated); the minimum
//!   subtotal and `combinesWith` from the program; no usage limit. An
//!   inactive code ends now (`endsAt`); an active one has no end.
//! - "code must be unique" (`TAKEN`) is resolved by looking the code up
//!   (`codeDiscountNodeByCode`): a discount the engine made (its title
//!   carries [`TITLE_MARK`]) is updated, anything else is
//!   [`PlatformError::CodeTaken`].
//! - a replaced code is ended with `discountCodeDeactivate`.
//! - pacing: the cost bucket ([`crate::pacing`]); THROTTLED answers become
//!   [`PlatformError::Throttled`] with the wait the bucket's figures give.
//! - store-credit mode: the same client keeps the balance as the
//!   customer's native store credit instead ([`crate::store_credit`]).
//! - credentials: the shop's Admin API access token, or the client
//!   credentials grant (a token for about 24 h, cached until shortly before
//!   it expires and fetched again after a 401).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use hyper::header::{HeaderName, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use cashback_app::platform_codes::{
    CodeState, DesiredCode, PlatformCodes, PlatformError, PutOutcome,
};
use cashback_core::ids::Code;
use cashback_core::money::{Currency, Money};

use crate::http::{BaseUrl, ConfigError, HttpClient};
use crate::pacing::{CostBucket, ThrottleStatus};

/// The Admin API version every document is written and checked against
/// (tests/shopify_schema.rs validates them against its schema).
pub const API_VERSION: &str = "2026-10";

/// Marks a discount as the engine's own in its title.
pub const TITLE_MARK: &str = "[cashback-engine]";

/// Cost taken from the bucket before a mutation is sent (Shopify prices a
/// mutation at 10 points).
pub const MUTATION_COST: f64 = 10.0;
/// Cost taken before the lookup query (refunded by the platform down to
/// its actual cost; the bucket reads the real figure back).
pub const LOOKUP_COST: f64 = 4.0;

/// Refresh a client-credentials token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

const NODE_FIELDS: &str = "id
    codeDiscount {
      __typename
      ... on DiscountCodeBasic {
        title
        status
        customerGets {
          value {
            ... on DiscountAmount {
              amount { amount currencyCode }
              appliesOnEachItem
            }
          }
        }
      }
    }";

/// Every document the adapter sends, by name (checked against the schema).
pub fn documents() -> Vec<(&'static str, String)> {
    let mut documents = vec![
        ("create", create_document()),
        ("update", update_document()),
        ("lookup", lookup_document()),
        ("deactivate", DEACTIVATE_DOCUMENT.to_string()),
    ];
    documents.extend(crate::store_credit::documents());
    documents
}

fn create_document() -> String {
    format!(
        "mutation CashbackCodeCreate($input: DiscountCodeBasicInput!) {{
  discountCodeBasicCreate(basicCodeDiscount: $input) {{
    codeDiscountNode {{ {NODE_FIELDS} }}
    userErrors {{ field message code extraInfo }}
  }}
}}"
    )
}

fn update_document() -> String {
    format!(
        "mutation CashbackCodeUpdate($id: ID!, $input: DiscountCodeBasicInput!) {{
  discountCodeBasicUpdate(id: $id, basicCodeDiscount: $input) {{
    codeDiscountNode {{ {NODE_FIELDS} }}
    userErrors {{ field message code extraInfo }}
  }}
}}"
    )
}

fn lookup_document() -> String {
    format!(
        "query CashbackCodeLookup($code: String!) {{
  codeDiscountNodeByCode(code: $code) {{ {NODE_FIELDS} }}
}}"
    )
}

const DEACTIVATE_DOCUMENT: &str = "mutation CashbackCodeDeactivate($id: ID!) {
  discountCodeDeactivate(id: $id) {
    codeDiscountNode { id }
    userErrors { field message code extraInfo }
  }
}";

/// How the adapter authenticates to one shop.
#[derive(Clone)]
pub enum ShopifyCredentials {
    /// The shop's Admin API access token (`shpat_...`).
    AdminToken(String),
    /// An app of the merchant's own organization: its client id and secret
    /// are exchanged for a token (client credentials grant).
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
}

impl std::fmt::Debug for ShopifyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShopifyCredentials::AdminToken(_) => f.write_str("AdminToken(<redacted>)"),
            ShopifyCredentials::ClientCredentials { client_id, .. } => {
                write!(f, "ClientCredentials({client_id}, <redacted>)")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShopifyConfig {
    /// `https://{shop}.myshopify.com`.
    pub shop_url: BaseUrl,
    pub credentials: ShopifyCredentials,
    /// The shop's currency (the ledger's): amounts read back are in it.
    pub currency: Currency,
    /// Deadline of each HTTP call.
    pub timeout: Duration,
    /// The bucket assumed until the first answer gives the shop's figures
    /// (the standard plan: 100 points per second).
    pub assumed_bucket: (f64, f64),
    /// Store credit transactions read per page (Shopify allows 250).
    pub store_credit_page: u32,
}

impl ShopifyConfig {
    pub fn new(
        shop_url: &str,
        credentials: ShopifyCredentials,
        currency: Currency,
    ) -> Result<ShopifyConfig, ConfigError> {
        Ok(ShopifyConfig {
            shop_url: BaseUrl::parse(shop_url)?,
            credentials,
            currency,
            timeout: Duration::from_secs(10),
            assumed_bucket: (1000.0, 100.0),
            store_credit_page: crate::store_credit::TRANSACTIONS_PER_PAGE,
        })
    }
}

struct Token {
    value: String,
    refresh_at: Option<Instant>,
}

/// The Shopify adapter of [`PlatformCodes`], for one shop.
pub struct ShopifyCodes {
    config: ShopifyConfig,
    http: HttpClient,
    bucket: CostBucket,
    token: tokio::sync::Mutex<Option<Token>>,
    /// Discount node ids by code, so an update costs one call.
    ids: Mutex<HashMap<Code, String>>,
    clock: fn() -> DateTime<Utc>,
}

/// A discount user error as Shopify returns it.
#[derive(Debug, Clone)]
struct UserError {
    field: Vec<String>,
    message: String,
    code: Option<String>,
}

impl ShopifyCodes {
    pub fn new(config: ShopifyConfig) -> Result<ShopifyCodes, ConfigError> {
        let http = HttpClient::new(config.timeout)?;
        let (maximum, restore) = config.assumed_bucket;
        Ok(ShopifyCodes {
            bucket: CostBucket::new(maximum, restore),
            config,
            http,
            token: tokio::sync::Mutex::new(None),
            ids: Mutex::new(HashMap::new()),
            clock: Utc::now,
        })
    }

    /// The points this adapter believes the shop's bucket holds now.
    pub fn bucket_available(&self) -> f64 {
        self.bucket.available()
    }

    fn graphql_url(&self) -> String {
        self.config
            .shop_url
            .join(&format!("/admin/api/{API_VERSION}/graphql.json"))
    }

    /// The access token, fetching one through the client credentials grant
    /// when there is none or it is about to expire.
    async fn access_token(&self, refresh: bool) -> Result<String, PlatformError> {
        let (client_id, client_secret) = match &self.config.credentials {
            ShopifyCredentials::AdminToken(token) => return Ok(token.clone()),
            ShopifyCredentials::ClientCredentials {
                client_id,
                client_secret,
            } => (client_id, client_secret),
        };
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            let fresh = token.refresh_at.is_none_or(|at| Instant::now() < at);
            if fresh && !refresh {
                return Ok(token.value.clone());
            }
        }
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            form_encode(client_id),
            form_encode(client_secret)
        );
        let response = self
            .http
            .send(
                Method::POST,
                &self.config.shop_url.join("/admin/oauth/access_token"),
                &[(
                    CONTENT_TYPE,
                    "application/x-www-form-urlencoded".to_string(),
                )],
                Some(body.into_bytes()),
            )
            .await?;
        match response.status {
            s if s.is_success() => {}
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(PlatformError::Unauthorized)
            }
            s => return Err(status_error(s, response.retry_after)),
        }
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|_| PlatformError::transient("token answer is not JSON"))?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PlatformError::transient("token answer has no access_token"))?
            .to_string();
        let refresh_at = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(|s| Instant::now() + Duration::from_secs(s).saturating_sub(TOKEN_MARGIN));
        *cached = Some(Token {
            value: value.clone(),
            refresh_at,
        });
        tracing::info!(
            shop = self.config.shop_url.as_str(),
            "shopify access token fetched"
        );
        Ok(value)
    }

    /// The shop's currency (the ledger's).
    pub(crate) fn currency(&self) -> Currency {
        self.config.currency
    }

    /// Store credit transactions read per page.
    pub(crate) fn store_credit_page(&self) -> u32 {
        self.config.store_credit_page.clamp(1, 250)
    }

    /// One GraphQL call, paced by the bucket; `data` of the answer.
    pub(crate) async fn graphql(
        &self,
        document: &str,
        variables: Value,
        cost: f64,
    ) -> Result<Value, PlatformError> {
        self.graphql_by(document, variables, cost, None).await
    }

    /// [`Self::graphql`], never sent after `send_by` (the token fetch and
    /// the bucket's wait included, a send again after a 401 too):
    /// [`PlatformError::NotSent`] then, and nothing was applied.
    pub(crate) async fn graphql_by(
        &self,
        document: &str,
        variables: Value,
        cost: f64,
        send_by: Option<tokio::time::Instant>,
    ) -> Result<Value, PlatformError> {
        let body = serde_json::to_vec(&json!({"query": document, "variables": variables}))
            .map_err(|e| PlatformError::transient(format!("request not serialisable: {e}")))?;
        let not_sent = |what: &str| PlatformError::NotSent {
            reason: format!("{what} outlasted the call's deadline"),
        };
        let mut refreshed = false;
        loop {
            let token = match send_by {
                None => self.access_token(refreshed).await?,
                Some(deadline) => tokio::time::timeout_at(deadline, self.access_token(refreshed))
                    .await
                    .map_err(|_| not_sent("the token fetch"))??,
            };
            match send_by {
                None => self.bucket.acquire(cost).await,
                Some(deadline) => {
                    if !self.bucket.acquire_by(cost, deadline).await {
                        return Err(not_sent("the rate limit's wait"));
                    }
                }
            }
            let response = self
                .http
                .send(
                    Method::POST,
                    &self.graphql_url(),
                    &[
                        (CONTENT_TYPE, "application/json".to_string()),
                        (HeaderName::from_static("x-shopify-access-token"), token),
                    ],
                    Some(body.clone()),
                )
                .await?;
            if response.status == StatusCode::UNAUTHORIZED {
                let can_refresh = matches!(
                    self.config.credentials,
                    ShopifyCredentials::ClientCredentials { .. }
                );
                if can_refresh && !refreshed {
                    refreshed = true;
                    continue;
                }
                return Err(PlatformError::Unauthorized);
            }
            if response.status == StatusCode::FORBIDDEN {
                return Err(PlatformError::Unauthorized);
            }
            let answer: Option<Value> = serde_json::from_slice(&response.body).ok();
            let status = answer.as_ref().and_then(ThrottleStatus::from_answer);
            if let Some((status, _)) = status {
                self.bucket.observe(status);
            }
            if !response.status.is_success() {
                if response.status == StatusCode::TOO_MANY_REQUESTS {
                    let wait = status
                        .map(|(s, requested)| s.wait_for(requested.unwrap_or(cost)))
                        .or(response.retry_after)
                        .unwrap_or(Duration::from_secs(1));
                    return Err(PlatformError::Throttled { retry_after: wait });
                }
                return Err(status_error(response.status, response.retry_after));
            }
            let answer = answer.ok_or_else(|| PlatformError::transient("answer is not JSON"))?;
            if let Some(errors) = answer.get("errors").and_then(Value::as_array) {
                let code_of = |e: &Value| {
                    e.pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let codes: Vec<String> = errors.iter().map(code_of).collect();
                if codes.iter().any(|c| c == "THROTTLED") {
                    let wait = status
                        .map(|(s, requested)| s.wait_for(requested.unwrap_or(cost)))
                        .unwrap_or(Duration::from_secs(1));
                    return Err(PlatformError::Throttled { retry_after: wait });
                }
                if codes.iter().any(|c| c == "ACCESS_DENIED") {
                    return Err(PlatformError::Unauthorized);
                }
                let messages: Vec<&str> = errors
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .collect();
                if codes.iter().any(|c| c == "INTERNAL_SERVER_ERROR") {
                    return Err(PlatformError::transient(messages.join("; ")));
                }
                if !errors.is_empty() {
                    return Err(PlatformError::Rejected {
                        reason: messages.join("; "),
                    });
                }
            }
            return answer
                .get("data")
                .cloned()
                .filter(|d| !d.is_null())
                .ok_or_else(|| PlatformError::transient("answer has no data"));
        }
    }

    fn input(&self, desired: &DesiredCode, create: bool) -> Result<Value, PlatformError> {
        discount_input(desired, create, (self.clock)())
    }

    fn state_of(&self, node: &Value, code: &Code) -> Result<CodeState, PlatformError> {
        let id = node
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::transient("discount node without id"))?
            .to_string();
        let discount = node.get("codeDiscount").cloned().unwrap_or(Value::Null);
        let title = discount
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let managed = discount.get("__typename").and_then(Value::as_str)
            == Some("DiscountCodeBasic")
            && title.ends_with(TITLE_MARK);
        let amount = discount
            .pointer("/customerGets/value/amount/amount")
            .and_then(|v| match v {
                Value::String(s) => s.parse::<Decimal>().ok(),
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                _ => None,
            })
            .map(|a| Money::round_toward_zero(a, self.config.currency))
            .unwrap_or(Money::zero(self.config.currency));
        let active = discount.get("status").and_then(Value::as_str) == Some("ACTIVE");
        // Only the engine's own discounts are remembered for updates.
        if managed {
            if let Ok(mut ids) = self.ids.lock() {
                ids.insert(code.clone(), id.clone());
            }
        }
        Ok(CodeState {
            code: code.clone(),
            platform_id: id,
            amount,
            active,
            managed,
        })
    }

    async fn create(
        &self,
        desired: &DesiredCode,
    ) -> Result<Result<CodeState, Vec<UserError>>, PlatformError> {
        let data = self
            .graphql(
                &create_document(),
                json!({"input": self.input(desired, true)?}),
                MUTATION_COST,
            )
            .await?;
        self.payload(&data["discountCodeBasicCreate"], &desired.code)
    }

    async fn update(
        &self,
        id: &str,
        desired: &DesiredCode,
    ) -> Result<Result<CodeState, Vec<UserError>>, PlatformError> {
        let data = self
            .graphql(
                &update_document(),
                json!({"id": id, "input": self.input(desired, false)?}),
                MUTATION_COST,
            )
            .await?;
        self.payload(&data["discountCodeBasicUpdate"], &desired.code)
    }

    fn payload(
        &self,
        payload: &Value,
        code: &Code,
    ) -> Result<Result<CodeState, Vec<UserError>>, PlatformError> {
        let errors = user_errors(payload);
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let node = payload
            .get("codeDiscountNode")
            .filter(|n| !n.is_null())
            .ok_or_else(|| PlatformError::transient("mutation returned no discount"))?;
        Ok(Ok(self.state_of(node, code)?))
    }

    fn cached_id(&self, code: &Code) -> Option<String> {
        self.ids.lock().ok().and_then(|ids| ids.get(code).cloned())
    }

    fn forget(&self, code: &Code) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(code);
        }
    }

    /// Updates a code found on the platform, if the engine made it.
    async fn update_found(
        &self,
        found: CodeState,
        desired: &DesiredCode,
    ) -> Result<PutOutcome, PlatformError> {
        if !found.managed {
            self.forget(&desired.code);
            return Err(PlatformError::CodeTaken);
        }
        match self.update(&found.platform_id, desired).await? {
            Ok(state) => Ok(PutOutcome::Updated(state)),
            Err(errors) => Err(rejected(&errors)),
        }
    }
}

#[async_trait::async_trait]
impl PlatformCodes for ShopifyCodes {
    async fn put(&self, desired: &DesiredCode) -> Result<PutOutcome, PlatformError> {
        if let Some(id) = self.cached_id(&desired.code) {
            match self.update(&id, desired).await? {
                Ok(state) => return Ok(PutOutcome::Updated(state)),
                // The discount was deleted on the platform: find or make it again.
                Err(errors) if errors.iter().any(|e| e.field.iter().any(|f| f == "id")) => {
                    self.forget(&desired.code);
                }
                Err(errors) => return Err(rejected(&errors)),
            }
        }
        if let Some(found) = self.lookup(&desired.code).await? {
            return self.update_found(found, desired).await;
        }
        if !desired.active {
            return Ok(PutOutcome::NotNeeded);
        }
        match self.create(desired).await? {
            Ok(state) => Ok(PutOutcome::Created(state)),
            Err(errors) if errors.iter().any(is_taken) => {
                // Made meanwhile (a retry whose first answer was lost, or
                // another container): the lookup says whose it is.
                match self.lookup(&desired.code).await? {
                    Some(found) => self.update_found(found, desired).await,
                    None => Err(PlatformError::transient("code taken but not found")),
                }
            }
            Err(errors) => Err(rejected(&errors)),
        }
    }

    async fn deactivate(&self, code: &Code) -> Result<(), PlatformError> {
        let id = match self.cached_id(code) {
            Some(id) => id,
            None => match self.lookup(code).await? {
                Some(found) if found.managed => found.platform_id,
                // Unknown, or not ours to end.
                _ => return Ok(()),
            },
        };
        let data = self
            .graphql(DEACTIVATE_DOCUMENT, json!({"id": id}), MUTATION_COST)
            .await?;
        let errors = user_errors(&data["discountCodeDeactivate"]);
        if errors.is_empty() || errors.iter().any(|e| e.field.iter().any(|f| f == "id")) {
            return Ok(());
        }
        Err(rejected(&errors))
    }

    fn store_credit(
        &self,
    ) -> Option<&dyn cashback_app::platform_codes::store_credit::StoreCreditAccounts> {
        Some(self)
    }

    async fn lookup(&self, code: &Code) -> Result<Option<CodeState>, PlatformError> {
        let data = self
            .graphql(
                &lookup_document(),
                json!({"code": code.display()}),
                LOOKUP_COST,
            )
            .await?;
        match data.get("codeDiscountNodeByCode") {
            Some(node) if !node.is_null() => Ok(Some(self.state_of(node, code)?)),
            _ => {
                self.forget(code);
                Ok(None)
            }
        }
    }
}

/// The `DiscountCodeBasicInput` for a desired code (`create`: with the
/// code and its start). Public so the schema test checks exactly what is
/// sent.
pub fn discount_input(
    desired: &DesiredCode,
    create: bool,
    now: DateTime<Utc>,
) -> Result<Value, PlatformError> {
    // Starts a minute back: usable at once even when the platform's
    // clock is a little behind, and an end set soon after never comes
    // before the start.
    let starts = (now - chrono::Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let now = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let context = match &desired.restricted_to {
        None => json!({"all": "ALL"}),
        Some(owner) => {
            let customer = owner
                .customer
                .as_ref()
                .ok_or_else(|| PlatformError::Rejected {
                    reason:
                        "only its owner may use this code, and a Shopify discount can be limited \
                         to a customer id only: this owner is a guest (an email, no customer id)"
                            .into(),
                })?;
            json!({"customers": {"add": [customer_gid(customer.as_str())]}})
        }
    };
    let minimum = if desired.min_subtotal.is_positive() {
        json!({"subtotal": {"greaterThanOrEqualToSubtotal": desired.min_subtotal.amount().to_string()}})
    } else {
        Value::Null
    };
    let mut input = json!({
        "title": format!("Balance of customer {} {TITLE_MARK}", desired.account),
        "context": context,
        "minimumRequirement": minimum,
        "combinesWith": {
            "orderDiscounts": desired.combines.order,
            "productDiscounts": desired.combines.product,
            "shippingDiscounts": desired.combines.shipping,
        },
        "usageLimit": Value::Null,
        "appliesOncePerCustomer": false,
        "endsAt": if desired.active { Value::Null } else { json!(now) },
    });
    // Shopify refuses a zero amount off: an empty code keeps its last
    // amount and is ended instead (it is inactive whenever empty).
    if desired.amount.is_positive() || create {
        input["customerGets"] = json!({
            "value": {"discountAmount": {
                "amount": desired.amount.amount().to_string(),
                "appliesOnEachItem": false,
            }},
            "items": {"all": true},
        });
    }
    if create {
        input["code"] = json!(desired.code.display());
        input["startsAt"] = json!(starts);
    }
    Ok(input)
}

/// A Shopify customer's global id.
pub fn customer_gid(id: &str) -> String {
    if id.starts_with("gid://") {
        id.to_string()
    } else {
        format!("gid://shopify/Customer/{id}")
    }
}

fn user_errors(payload: &Value) -> Vec<UserError> {
    payload
        .get("userErrors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| UserError {
                    field: e
                        .get("field")
                        .and_then(Value::as_array)
                        .map(|f| {
                            f.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("refused")
                        .to_string(),
                    code: e.get("code").and_then(Value::as_str).map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_taken(error: &UserError) -> bool {
    error.code.as_deref() == Some("TAKEN")
        || (error.field.last().map(String::as_str) == Some("code")
            && error.message.to_lowercase().contains("unique"))
}

fn rejected(errors: &[UserError]) -> PlatformError {
    let reason = errors
        .iter()
        .map(|e| format!("{}: {}", e.field.join("."), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    PlatformError::Rejected { reason }
}

fn status_error(status: StatusCode, retry_after: Option<Duration>) -> PlatformError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return PlatformError::Throttled {
            retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
        };
    }
    if status.is_server_error() {
        return PlatformError::transient(format!("HTTP {status}"));
    }
    PlatformError::Rejected {
        reason: format!("HTTP {status}"),
    }
}

/// `application/x-www-form-urlencoded` of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_become_global_ids_once() {
        assert_eq!(customer_gid("42"), "gid://shopify/Customer/42");
        assert_eq!(
            customer_gid("gid://shopify/Customer/42"),
            "gid://shopify/Customer/42"
        );
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d"), "a%20b%26c%3Dd");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let credentials = ShopifyCredentials::ClientCredentials {
            client_id: "id".into(),
            client_secret: "very-secret".into(),
        };
        assert!(!format!("{credentials:?}").contains("very-secret"));
        assert!(
            !format!("{:?}", ShopifyCredentials::AdminToken("shpat_x".into())).contains("shpat")
        );
    }
}
