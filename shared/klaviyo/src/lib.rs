//! The Marketing port's Klaviyo adapter: a customer's cashback figures as
//! profile properties and the engine's notices as events, over Klaviyo's
//! JSON:API (docs/klaviyo.md).
//!
//! # Calls
//! - `POST /api/profile-import` (Create or Update Profile): the profile
//!   named by its email, its properties set to the values given, the ones
//!   with no value unset (`meta.patch_properties.unset`), others untouched.
//!   200 or 201.
//! - `POST /api/events` (Create Event): the metric by name, the profile by
//!   email, the event's properties, `time`, `value`, `value_currency` and
//!   `unique_id` (Klaviyo records one event per profile, metric and unique
//!   id). 202.
//!
//! Every call carries `Authorization: Klaviyo-API-Key <private key>`, the
//! `revision` header ([`REVISION`]) and `application/vnd.api+json`.
//!
//! # Limits and failures
//! Each endpoint's documented burst and steady limits are kept by a local
//! [`limits::Limiter`]; a 429 pauses the endpoint for its Retry-After and
//! the call is sent again (up to [`RetryPolicy::max_wait`]; a longer wait
//! is returned as [`MarketingError::RateLimited`] for the caller to park).
//! Timeouts, broken connections and 5xx are retried with doubling backoff;
//! both calls are safe to repeat (absolute properties, unique ids). 401 and
//! 403 are [`MarketingError::Unauthorized`]; other 4xx are
//! [`MarketingError::Rejected`] with Klaviyo's error code and detail.
//!
//! Amounts cross the wire as JSON numbers so that segments can compare
//! them ("balance is greater than 10"); an amount of up to 15 significant
//! digits, any balance, is written exactly as the ledger holds it.

pub mod accounts;
pub mod limits;

use std::fmt;
use std::time::Duration;

use hyper::header::{HeaderName, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use rust_decimal::prelude::ToPrimitive;
use serde_json::{json, Map, Value};

use cashback_app::marketing::{
    Marketing, MarketingError, MarketingEvent, ProfileRef, ProfileUpdate, Properties, PropertyValue,
};
use cashback_platform_codes::http::{HttpClient, HttpResponse};
pub use cashback_platform_codes::{BaseUrl, ConfigError};

pub use accounts::KlaviyoAccounts;
pub use limits::{Limiter, RateLimit};

/// The API revision every call is made against: the current stable one of
/// Klaviyo's OpenAPI spec (`klaviyo/openapi`, `openapi/stable/apis/
/// create_or_update_profile.json` and `create_event.json`, `info.version`).
pub const REVISION: &str = "2026-07-15";

/// Klaviyo's API host.
pub const DEFAULT_BASE_URL: &str = "https://a.klaviyo.com";

/// JSON:API's media type, which Klaviyo requires.
pub const JSON_API: &str = "application/vnd.api+json";

pub const PROFILE_IMPORT_PATH: &str = "/api/profile-import";
pub const EVENTS_PATH: &str = "/api/events";

/// A Klaviyo private API key (`pk_...`), read from SSM by the caller.
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(String);

impl PrivateKey {
    pub fn parse(key: &str) -> Result<PrivateKey, ConfigError> {
        let key = key.trim();
        let valid = key.starts_with("pk_")
            && key.len() > 3
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(PrivateKey(key.to_string()))
        } else {
            Err(ConfigError::Invalid(
                "the Klaviyo private key must be pk_ followed by letters and digits".into(),
            ))
        }
    }

    fn header(&self) -> String {
        format!("Klaviyo-API-Key {}", self.0)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// How a call is repeated.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Calls at most, the first included.
    pub max_attempts: u32,
    /// Wait after the first transient failure; doubled after each further
    /// one, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest Retry-After waited out in place; longer: returned as
    /// [`MarketingError::RateLimited`].
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KlaviyoConfig {
    pub base_url: BaseUrl,
    pub private_key: PrivateKey,
    /// Each call's deadline (connect, send, read).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub profile_limit: RateLimit,
    pub event_limit: RateLimit,
    /// Added to the limits' windows locally (see [`Limiter`]).
    pub limit_margin: Duration,
}

impl KlaviyoConfig {
    /// Klaviyo itself, its documented limits, a 10 s deadline.
    pub fn new(private_key: &str) -> Result<KlaviyoConfig, ConfigError> {
        Ok(KlaviyoConfig {
            base_url: BaseUrl::parse(DEFAULT_BASE_URL)?,
            private_key: PrivateKey::parse(private_key)?,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            profile_limit: RateLimit::PROFILE_IMPORT,
            event_limit: RateLimit::CREATE_EVENT,
            limit_margin: Duration::from_millis(50),
        })
    }

    /// Another base URL (a local fake in tests).
    pub fn with_base_url(self, url: &str) -> Result<KlaviyoConfig, ConfigError> {
        Ok(KlaviyoConfig {
            base_url: BaseUrl::parse(url)?,
            ..self
        })
    }
}

/// One shop's Klaviyo account.
pub struct KlaviyoMarketing {
    http: HttpClient,
    config: KlaviyoConfig,
    profiles: Limiter,
    events: Limiter,
}

impl KlaviyoMarketing {
    pub fn new(config: KlaviyoConfig) -> Result<KlaviyoMarketing, ConfigError> {
        Ok(KlaviyoMarketing {
            http: HttpClient::new(config.timeout)?,
            profiles: Limiter::new(config.profile_limit, config.limit_margin),
            events: Limiter::new(config.event_limit, config.limit_margin),
            config,
        })
    }

    /// Sends one call within the endpoint's limits, repeating it per the
    /// policy.
    async fn post(&self, limiter: &Limiter, path: &str, body: Value) -> Result<(), MarketingError> {
        let body = serde_json::to_vec(&body).map_err(|e| MarketingError::Transient {
            message: "the request could not be written".into(),
            source: Some(Box::new(e)),
        })?;
        let url = self.config.base_url.join(path);
        let headers: [(HeaderName, String); 4] = [
            (AUTHORIZATION, self.config.private_key.header()),
            (HeaderName::from_static("revision"), REVISION.to_string()),
            (CONTENT_TYPE, JSON_API.to_string()),
            (ACCEPT, JSON_API.to_string()),
        ];
        let policy = &self.config.retry;
        let mut backoff = policy.base_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            limiter.acquire().await;
            let error = match self
                .http
                .send(Method::POST, &url, &headers, Some(body.clone()))
                .await
            {
                Ok(response) if response.status.is_success() => return Ok(()),
                Ok(response) => classify(&response, backoff),
                Err(error) => MarketingError::Transient {
                    message: format!("{path}: no answer"),
                    source: Some(Box::new(error)),
                },
            };
            if !error.is_retryable() || attempt >= policy.max_attempts.max(1) {
                return Err(error);
            }
            let wait = match &error {
                MarketingError::RateLimited { retry_after } => {
                    limiter.pause_for(*retry_after);
                    if *retry_after > policy.max_wait {
                        return Err(error);
                    }
                    *retry_after
                }
                _ => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    wait
                }
            };
            tracing::debug!(path, attempt, ?wait, %error, "klaviyo call repeated");
            tokio::time::sleep(wait).await;
        }
    }
}

/// The error of a non-2xx answer; a 429 without Retry-After waits
/// `backoff`.
fn classify(response: &HttpResponse, backoff: Duration) -> MarketingError {
    let status = response.status;
    match status {
        StatusCode::TOO_MANY_REQUESTS => MarketingError::RateLimited {
            retry_after: response.retry_after.unwrap_or(backoff),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => MarketingError::Unauthorized,
        StatusCode::REQUEST_TIMEOUT => MarketingError::transient("408 from Klaviyo"),
        s if s.is_server_error() => {
            MarketingError::transient(format!("{} from Klaviyo: {}", s, reason(&response.body)))
        }
        s => MarketingError::Rejected {
            reason: format!("{}: {}", s.as_u16(), reason(&response.body)),
        },
    }
}

/// Klaviyo's first error as `code: detail (pointer)`, or the start of the
/// body when it is not JSON:API.
fn reason(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let first = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.get(0));
    match first {
        Some(error) => {
            let field = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or("");
            let pointer = error
                .get("source")
                .and_then(|s| s.get("pointer"))
                .and_then(Value::as_str);
            match pointer {
                Some(pointer) => format!("{}: {} ({pointer})", field("code"), field("detail")),
                None => format!("{}: {}", field("code"), field("detail")),
            }
        }
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn value_json(value: &PropertyValue) -> Value {
    match value {
        PropertyValue::Amount(amount) => amount
            .normalize()
            .to_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(amount.to_string()), Value::Number),
        PropertyValue::Integer(n) => Value::from(*n),
        PropertyValue::Text(text) => Value::String(text.clone()),
        PropertyValue::Time(at) => Value::String(PropertyValue::format_time(at)),
        PropertyValue::Null => Value::Null,
    }
}

fn properties_json(properties: &Properties) -> Value {
    Value::Object(
        properties
            .iter()
            .map(|(name, value)| (name.clone(), value_json(value)))
            .collect::<Map<String, Value>>(),
    )
}

fn profile_identity(profile: &ProfileRef) -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("email".into(), Value::String(profile.email.as_str().into()));
    attributes
}

/// The Create or Update Profile body (`ProfileUpsertQuery`): the values
/// in `attributes.properties`, and the properties with nothing to say
/// removed through `meta.patch_properties.unset` (the documented way to
/// take a key off a profile).
pub fn profile_body(update: &ProfileUpdate) -> Value {
    let (cleared, set): (Properties, Properties) = update
        .properties
        .clone()
        .into_iter()
        .partition(|(_, value)| *value == PropertyValue::Null);
    let mut attributes = profile_identity(&update.profile);
    attributes.insert("properties".into(), properties_json(&set));
    let mut data = json!({"type": "profile", "attributes": attributes});
    if !cleared.is_empty() {
        let names: Vec<&String> = cleared.keys().collect();
        data["meta"] = json!({"patch_properties": {"unset": names}});
    }
    json!({ "data": data })
}

/// The Create Event body (`EventCreateQueryV2`).
pub fn event_body(event: &MarketingEvent) -> Value {
    let mut attributes = Map::new();
    attributes.insert("properties".into(), properties_json(&event.properties));
    attributes.insert(
        "time".into(),
        Value::String(PropertyValue::format_time(&event.time)),
    );
    if let Some(value) = event.value {
        attributes.insert(
            "value".into(),
            value_json(&PropertyValue::Amount(value.amount())),
        );
        attributes.insert(
            "value_currency".into(),
            Value::String(value.currency().code().into()),
        );
    }
    attributes.insert("unique_id".into(), Value::String(event.unique_id.clone()));
    attributes.insert(
        "metric".into(),
        json!({"data": {"type": "metric", "attributes": {"name": event.metric.name()}}}),
    );
    attributes.insert(
        "profile".into(),
        json!({"data": {"type": "profile", "attributes": profile_identity(&event.profile)}}),
    );
    json!({"data": {"type": "event", "attributes": attributes}})
}

#[async_trait::async_trait]
impl Marketing for KlaviyoMarketing {
    async fn push_profile(&self, update: &ProfileUpdate) -> Result<(), MarketingError> {
        self.post(&self.profiles, PROFILE_IMPORT_PATH, profile_body(update))
            .await
    }

    async fn track(&self, event: &MarketingEvent) -> Result<(), MarketingError> {
        self.post(&self.events, EVENTS_PATH, event_body(event))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amounts_are_numbers_written_as_held() {
        assert_eq!(
            value_json(&PropertyValue::Amount(dec!(12.50))).to_string(),
            "12.5"
        );
        assert_eq!(
            value_json(&PropertyValue::Amount(dec!(1234567.89))).to_string(),
            "1234567.89"
        );
        assert_eq!(
            value_json(&PropertyValue::Amount(dec!(0.00))).to_string(),
            "0.0"
        );
        assert_eq!(value_json(&PropertyValue::Null), Value::Null);
    }

    #[test]
    fn a_cleared_property_is_unset() {
        use cashback_app::marketing::ProfileRef;
        use cashback_core::ids::{CustomerId, Email};
        let mut properties = Properties::new();
        properties.insert("cashback_balance".into(), PropertyValue::Amount(dec!(3)));
        properties.insert("cashback_tier".into(), PropertyValue::Null);
        let body = profile_body(&ProfileUpdate {
            profile: ProfileRef {
                email: Email::parse("ann@example.com").unwrap(),
                customer: CustomerId::parse("c-1").unwrap(),
            },
            properties,
        });
        assert_eq!(
            body,
            json!({"data": {
                "type": "profile",
                "attributes": {"email": "ann@example.com", "properties": {"cashback_balance": 3.0}},
                "meta": {"patch_properties": {"unset": ["cashback_tier"]}},
            }})
        );
    }

    #[test]
    fn the_key_is_checked_and_never_printed() {
        let key = PrivateKey::parse(" pk_abc123 ").unwrap();
        assert_eq!(key.header(), "Klaviyo-API-Key pk_abc123");
        assert!(!format!("{key:?}").contains("abc123"));
        assert!(PrivateKey::parse("").is_err());
        assert!(PrivateKey::parse("pk_").is_err());
        assert!(PrivateKey::parse("sk_abc").is_err());
        assert!(PrivateKey::parse("pk_abc\r\nX-Evil: 1").is_err());
    }

    #[test]
    fn error_reasons_name_klaviyos_code_and_field() {
        let body = br#"{"errors":[{"id":"1","status":400,"code":"invalid","title":"Invalid input.","detail":"Name is too long","source":{"pointer":"/data/attributes/metric/data/attributes/name"}}]}"#;
        assert_eq!(
            reason(body),
            "invalid: Name is too long (/data/attributes/metric/data/attributes/name)"
        );
        assert_eq!(reason(b"oops"), "oops");
    }
}
