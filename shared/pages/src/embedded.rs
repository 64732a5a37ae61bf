//! The dashboard embedded in Shopify admin: App Bridge hands the app a
//! session token (`id_token`), a JWT signed HS256 with the app's secret.
//! Checked here, not trusted from the browser: the signature (constant
//! time), `alg` exactly HS256, `aud` the app's API key, `exp` and `nbf`
//! with a few seconds of clock skew, and `dest` a shop whose `iss` is that
//! shop's admin. The shop the token names is the only shop it opens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use cashback_core::ids::ShopId;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew allowed on `exp` and `nbf`, as Shopify's libraries allow.
pub const LEEWAY_SECONDS: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the session token is malformed")]
    Malformed,
    #[error("the session token is not HS256")]
    Algorithm,
    #[error("the session token's signature is not valid")]
    Signature,
    #[error("the session token is for another app")]
    Audience,
    #[error("the session token has expired or is not valid yet")]
    Time,
    #[error("the session token names no shop")]
    Shop,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    dest: String,
    aud: String,
    #[serde(default)]
    sub: String,
    exp: i64,
    nbf: i64,
}

/// Who a verified token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    pub shop: ShopId,
    /// The Shopify staff member's id (`sub`).
    pub user: String,
}

fn decode<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Verifies an App Bridge session token.
pub fn verify(
    secret: &[u8],
    api_key: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Embedded, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let head: Header = decode(header)?;
    if head.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = decode(payload)?;
    if api_key.is_empty() || claims.aud != api_key {
        return Err(TokenError::Audience);
    }
    let at = now.timestamp();
    if claims.exp + LEEWAY_SECONDS <= at || claims.nbf - LEEWAY_SECONDS > at {
        return Err(TokenError::Time);
    }
    let host = claims
        .dest
        .strip_prefix("https://")
        .ok_or(TokenError::Shop)?;
    let shop = ShopId::parse(host).map_err(|_| TokenError::Shop)?;
    if claims.iss != format!("https://{host}/admin") {
        return Err(TokenError::Shop);
    }
    Ok(Embedded {
        shop,
        user: claims.sub,
    })
}

/// A token as App Bridge makes one (tests and local tools).
pub fn sign(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    fn claims(shop: &str) -> serde_json::Value {
        let t = now().timestamp();
        json!({
            "iss": format!("https://{shop}/admin"), "dest": format!("https://{shop}"),
            "aud": "app-key", "sub": "42", "exp": t + 60, "nbf": t - 1, "iat": t - 1,
            "jti": "x", "sid": "y"
        })
    }

    #[test]
    fn a_genuine_token_opens_its_shop() {
        let token = sign(b"secret", &claims("demo.myshopify.com"));
        let embedded = verify(b"secret", "app-key", &token, now()).unwrap();
        assert_eq!(embedded.shop.as_str(), "demo.myshopify.com");
        assert_eq!(embedded.user, "42");
    }

    #[test]
    fn forged_expired_foreign_or_alg_none_tokens_are_refused() {
        let good = claims("demo.myshopify.com");
        let token = sign(b"other", &good);
        assert_eq!(
            verify(b"secret", "app-key", &token, now()),
            Err(TokenError::Signature)
        );
        let token = sign(b"secret", &good);
        assert_eq!(
            verify(b"secret", "another-app", &token, now()),
            Err(TokenError::Audience)
        );
        let later = now() + chrono::Duration::seconds(120);
        assert_eq!(
            verify(b"secret", "app-key", &token, later),
            Err(TokenError::Time)
        );
        let mut early = good.clone();
        early["nbf"] = json!(now().timestamp() + 60);
        let token = sign(b"secret", &early);
        assert_eq!(
            verify(b"secret", "app-key", &token, now()),
            Err(TokenError::Time)
        );
        let mut mixed = good.clone();
        mixed["iss"] = json!("https://other.myshopify.com/admin");
        let token = sign(b"secret", &mixed);
        assert_eq!(
            verify(b"secret", "app-key", &token, now()),
            Err(TokenError::Shop)
        );
        // The payload changed after signing: another shop.
        let token = sign(b"secret", &good);
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = URL_SAFE_NO_PAD.encode(claims("other.myshopify.com").to_string());
        let tampered = format!("{}.{swapped}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(b"secret", "app-key", &tampered, now()),
            Err(TokenError::Signature)
        );
        // alg none, no signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(good.to_string())
        );
        assert_eq!(
            verify(b"secret", "app-key", &none, now()),
            Err(TokenError::Algorithm)
        );
        assert_eq!(
            verify(b"secret", "app-key", "a.b", now()),
            Err(TokenError::Malformed)
        );
    }
}
