//! WooCommerce: the balance code as one coupon per customer, through the
//! REST API (`/wp-json/wc/v3/coupons`, the consumer key and secret as HTTP
//! basic auth, over HTTPS only).
//!
//! The coupon is `fixed_cart` with `amount` = the spendable balance,
//! `email_restrictions` = the owner's email in owner_only programs,
//! `minimum_amount` from the program, and `individual_use` when the program
//! lets the code combine with no other discount. Below the minimum balance
//! the amount is 0 and the coupon has expired (`date_expires` yesterday).
//! A code already taken (`woocommerce_rest_coupon_code_already_exists`)
//! is looked up (`?code=`): a coupon the engine made (its description
//! carries [`DESCRIPTION_MARK`]) is updated, anything else is refused.
//! 429 and 5xx answers are retryable; other 4xx carry WooCommerce's
//! `{"code", "message", "data": {"status"}}` as the reason.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use cashback_app::platform_codes::{
    CodeState, DesiredCode, PlatformCodes, PlatformError, PutOutcome,
};
use cashback_core::ids::Code;
use cashback_core::money::{Currency, Money};

use crate::http::{BaseUrl, ConfigError, HttpClient, HttpResponse};

/// Marks a coupon as the engine's own in its description.
pub const DESCRIPTION_MARK: &str = "[cashback-engine]";

/// WooCommerce's error code for a coupon code in use.
pub const CODE_EXISTS: &str = "woocommerce_rest_coupon_code_already_exists";

const COUPONS: &str = "/wp-json/wc/v3/coupons";

#[derive(Clone)]
pub struct WooConfig {
    /// The site, `https://shop.example`.
    pub site_url: BaseUrl,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub currency: Currency,
    pub timeout: Duration,
}

impl std::fmt::Debug for WooConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WooConfig")
            .field("site_url", &self.site_url)
            .field("consumer_key", &"<redacted>")
            .field("consumer_secret", &"<redacted>")
            .field("currency", &self.currency)
            .finish()
    }
}

impl WooConfig {
    pub fn new(
        site_url: &str,
        consumer_key: &str,
        consumer_secret: &str,
        currency: Currency,
    ) -> Result<WooConfig, ConfigError> {
        if consumer_key.trim().is_empty() || consumer_secret.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "the consumer key and secret are required".into(),
            ));
        }
        Ok(WooConfig {
            site_url: BaseUrl::parse(site_url)?,
            consumer_key: consumer_key.trim().to_string(),
            consumer_secret: consumer_secret.trim().to_string(),
            currency,
            timeout: Duration::from_secs(10),
        })
    }
}

/// The WooCommerce adapter of [`PlatformCodes`], for one site.
pub struct WooCodes {
    config: WooConfig,
    http: HttpClient,
    /// Coupon ids by code, so an update costs one call.
    ids: Mutex<HashMap<Code, u64>>,
    clock: fn() -> DateTime<Utc>,
}

impl WooCodes {
    pub fn new(config: WooConfig) -> Result<WooCodes, ConfigError> {
        Ok(WooCodes {
            http: HttpClient::new(config.timeout)?,
            config,
            ids: Mutex::new(HashMap::new()),
            clock: Utc::now,
        })
    }

    fn authorization(&self) -> String {
        let pair = format!(
            "{}:{}",
            self.config.consumer_key, self.config.consumer_secret
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse, PlatformError> {
        let mut headers = vec![(AUTHORIZATION, self.authorization())];
        let body = match body {
            Some(value) => {
                headers.push((CONTENT_TYPE, "application/json".to_string()));
                Some(serde_json::to_vec(value).map_err(|e| {
                    PlatformError::transient(format!("request not serialisable: {e}"))
                })?)
            }
            None => None,
        };
        let response = self
            .http
            .send(method, &self.config.site_url.join(path), &headers, body)
            .await?;
        match response.status {
            s if s.is_success() => Ok(response),
            StatusCode::TOO_MANY_REQUESTS => Err(PlatformError::Throttled {
                retry_after: response.retry_after.unwrap_or(Duration::from_secs(2)),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PlatformError::Unauthorized),
            s if s.is_server_error() => Err(PlatformError::transient(format!("HTTP {s}"))),
            _ => Err(woo_error(&response)),
        }
    }

    fn body(&self, desired: &DesiredCode, create: bool) -> Value {
        let yesterday = ((self.clock)() - chrono::Duration::days(1))
            .format("%Y-%m-%dT00:00:00")
            .to_string();
        let amount = if desired.active {
            desired.amount.amount()
        } else {
            Decimal::ZERO
        };
        let emails: Vec<&str> = desired
            .restricted_to
            .iter()
            .filter_map(|owner| owner.email.as_ref())
            .map(|email| email.as_str())
            .collect();
        let combines = desired.combines;
        let minimum = if desired.min_subtotal.is_positive() {
            desired.min_subtotal.amount().to_string()
        } else {
            String::new()
        };
        let mut body = json!({
            "discount_type": "fixed_cart",
            "amount": amount.to_string(),
            "description": format!("Balance of customer {} {DESCRIPTION_MARK}", desired.account),
            "individual_use": !(combines.order || combines.product || combines.shipping),
            "email_restrictions": emails,
            "minimum_amount": minimum,
            "usage_limit": Value::Null,
            "usage_limit_per_user": Value::Null,
            "date_expires": if desired.active { Value::Null } else { json!(yesterday) },
        });
        if create {
            body["code"] = json!(desired.code.as_str());
        }
        body
    }

    fn state_of(&self, coupon: &Value, code: &Code) -> Result<CodeState, PlatformError> {
        let id = coupon
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| PlatformError::transient("coupon without id"))?;
        let amount = coupon
            .get("amount")
            .and_then(Value::as_str)
            .and_then(|a| a.parse::<Decimal>().ok())
            .map(|a| Money::round_toward_zero(a, self.config.currency))
            .unwrap_or(Money::zero(self.config.currency));
        let expired = coupon
            .get("date_expires_gmt")
            .or_else(|| coupon.get("date_expires"))
            .and_then(Value::as_str)
            .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%dT%H:%M:%S").ok())
            .is_some_and(|d| d.and_utc() <= (self.clock)());
        let managed = coupon
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| d.ends_with(DESCRIPTION_MARK));
        // Only the engine's own coupons are remembered for updates.
        if managed {
            if let Ok(mut ids) = self.ids.lock() {
                ids.insert(code.clone(), id);
            }
        }
        Ok(CodeState {
            code: code.clone(),
            platform_id: id.to_string(),
            active: amount.is_positive() && !expired,
            amount,
            managed,
        })
    }

    fn parse(&self, response: &HttpResponse) -> Result<Value, PlatformError> {
        serde_json::from_slice(&response.body)
            .map_err(|_| PlatformError::transient("answer is not JSON"))
    }

    fn cached_id(&self, code: &Code) -> Option<u64> {
        self.ids.lock().ok().and_then(|ids| ids.get(code).copied())
    }

    fn forget(&self, code: &Code) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.remove(code);
        }
    }

    async fn update(&self, id: u64, desired: &DesiredCode) -> Result<CodeState, PlatformError> {
        let response = self
            .call(
                Method::PUT,
                &format!("{COUPONS}/{id}"),
                Some(&self.body(desired, false)),
            )
            .await?;
        self.state_of(&self.parse(&response)?, &desired.code)
    }

    async fn update_found(
        &self,
        found: CodeState,
        desired: &DesiredCode,
    ) -> Result<PutOutcome, PlatformError> {
        if !found.managed {
            self.forget(&desired.code);
            return Err(PlatformError::CodeTaken);
        }
        let id = found
            .platform_id
            .parse()
            .map_err(|_| PlatformError::transient("coupon id is not a number"))?;
        Ok(PutOutcome::Updated(self.update(id, desired).await?))
    }
}

#[async_trait::async_trait]
impl PlatformCodes for WooCodes {
    async fn put(&self, desired: &DesiredCode) -> Result<PutOutcome, PlatformError> {
        if desired
            .restricted_to
            .as_ref()
            .is_some_and(|owner| owner.email.is_none())
        {
            return Err(PlatformError::Rejected {
                reason: "only its owner may use this code, and a WooCommerce coupon can be \
                         limited to an email only: this owner has no email"
                    .into(),
            });
        }
        if let Some(id) = self.cached_id(&desired.code) {
            match self.update(id, desired).await {
                Ok(state) => return Ok(PutOutcome::Updated(state)),
                // Deleted on the site: find or make it again.
                Err(PlatformError::Rejected { reason }) if reason.contains("invalid_id") => {
                    self.forget(&desired.code);
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(found) = self.lookup(&desired.code).await? {
            return self.update_found(found, desired).await;
        }
        if !desired.active {
            return Ok(PutOutcome::NotNeeded);
        }
        match self
            .call(Method::POST, COUPONS, Some(&self.body(desired, true)))
            .await
        {
            Ok(response) => Ok(PutOutcome::Created(
                self.state_of(&self.parse(&response)?, &desired.code)?,
            )),
            Err(PlatformError::Rejected { reason }) if reason.contains(CODE_EXISTS) => {
                match self.lookup(&desired.code).await? {
                    Some(found) => self.update_found(found, desired).await,
                    None => Err(PlatformError::transient("code taken but not found")),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn deactivate(&self, code: &Code) -> Result<(), PlatformError> {
        let Some(found) = self.lookup(code).await? else {
            return Ok(());
        };
        if !found.managed {
            return Ok(());
        }
        let yesterday = ((self.clock)() - chrono::Duration::days(1))
            .format("%Y-%m-%dT00:00:00")
            .to_string();
        self.call(
            Method::PUT,
            &format!("{COUPONS}/{}", found.platform_id),
            Some(&json!({"amount": "0", "date_expires": yesterday})),
        )
        .await?;
        Ok(())
    }

    async fn lookup(&self, code: &Code) -> Result<Option<CodeState>, PlatformError> {
        let response = self
            .call(
                Method::GET,
                &format!("{COUPONS}?code={}", query_encode(code.as_str())),
                None,
            )
            .await?;
        let answer = self.parse(&response)?;
        let found = answer.as_array().and_then(|coupons| {
            coupons.iter().find(|c| {
                c.get("code")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.eq_ignore_ascii_case(code.as_str()))
            })
        });
        match found {
            Some(coupon) => Ok(Some(self.state_of(coupon, code)?)),
            None => {
                self.forget(code);
                Ok(None)
            }
        }
    }
}

/// WooCommerce's error body `{"code", "message", "data": {"status", "params"}}`
/// as the reason of a refusal.
fn woo_error(response: &HttpResponse) -> PlatformError {
    let answer: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let code = answer
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused");
    let params = answer
        .pointer("/data/params")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| format!(" {k}: {}", v.as_str().unwrap_or_default()))
                .collect::<String>()
        })
        .unwrap_or_default();
    PlatformError::Rejected {
        reason: format!(
            "{code}: {message}{params} (HTTP {})",
            response.status.as_u16()
        ),
    }
}

fn query_encode(value: &str) -> String {
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
    fn a_validation_error_keeps_woocommerces_code_message_and_params() {
        let response = HttpResponse {
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
            body: bytes::Bytes::from_static(
                br#"{"code":"rest_invalid_param","message":"Invalid parameter(s): amount","data":{"status":400,"params":{"amount":"amount is not of type string."}}}"#,
            ),
        };
        let PlatformError::Rejected { reason } = woo_error(&response) else {
            panic!("not a refusal");
        };
        assert_eq!(
            reason,
            "rest_invalid_param: Invalid parameter(s): amount amount: amount is not of type string. (HTTP 400)"
        );
    }

    #[test]
    fn the_consumer_secret_never_shows_in_debug_output() {
        let config =
            WooConfig::new("https://shop.example", "ck_1", "cs_secret", Currency::USD).unwrap();
        assert!(!format!("{config:?}").contains("cs_secret"));
        assert!(WooConfig::new("http://shop.example", "ck", "cs", Currency::USD).is_err());
        assert!(WooConfig::new("https://shop.example", "", "cs", Currency::USD).is_err());
    }
}
