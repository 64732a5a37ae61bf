//! The merchant dashboard's standalone sign-in: per-shop users with slow
//! salted password hashes, a short-lived signed session cookie, and a CSRF
//! token on every form.
//!
//! - Passwords: PBKDF2-HMAC-SHA256, a random 16-byte salt, the iteration
//!   count stored with the hash (`pbkdf2-sha256$ITER$SALT$HASH`, base64), so
//!   the cost can rise without invalidating existing users.
//! - Session: `shop|email|expires` (base64url) and its HMAC, keyed by the
//!   engine's link key under its own `dashboard-session:` purpose; nothing is
//!   stored server-side. The cookie is `HttpOnly; Secure; SameSite=Strict`,
//!   `Path=/dashboard`, and lives [`SESSION_SECONDS`].
//! - CSRF: an HMAC of the session cookie, in a hidden field of every form;
//!   a POST without the token of its own session is refused.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use cashback_core::ids::ShopId;

type HmacSha256 = Hmac<Sha256>;

/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
pub const PASSWORD_ITERATIONS: u32 = 600_000;
/// A session lasts half an hour; signing in again starts a new one.
pub const SESSION_SECONDS: i64 = 30 * 60;
pub const SESSION_COOKIE: &str = "cb_session";

/// One person who may sign in to one shop's dashboard.
#[derive(Clone, Deserialize)]
pub struct DashboardUser {
    pub shop: ShopId,
    pub email: String,
    /// From [`hash_password`]; never the password.
    pub password_hash: String,
}

impl std::fmt::Debug for DashboardUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardUser")
            .field("shop", &self.shop)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// A password hash with the default cost.
pub fn hash_password(password: &str) -> String {
    hash_password_with(password, rand::random::<[u8; 16]>(), PASSWORD_ITERATIONS)
}

/// A password hash with a given salt and cost (tests use a low cost).
pub fn hash_password_with(password: &str, salt: [u8; 16], iterations: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    format!(
        "pbkdf2-sha256${iterations}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// Whether `password` matches `stored`, compared in constant time. A hash
/// in any other format matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>(),
        STANDARD_NO_PAD.decode(salt),
        STANDARD_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    if iterations == 0 || hash.len() != 32 {
        return false;
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    bool::from(out.ct_eq(&hash[..]))
}

fn mac(key: &[u8], purpose: &str, message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(purpose.as_bytes());
    mac.update(b":");
    mac.update(message.as_bytes());
    mac
}

/// Who a valid session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub shop: ShopId,
    pub email: String,
    pub expires: i64,
    /// The cookie's value, which the CSRF token is derived from.
    pub cookie: String,
}

/// A new session cookie value for a signed-in user.
pub fn new_session(key: &[u8], shop: &ShopId, email: &str, now: DateTime<Utc>) -> String {
    let body = URL_SAFE_NO_PAD.encode(format!(
        "{shop}|{email}|{}",
        now.timestamp() + SESSION_SECONDS
    ));
    let sig = hex::encode(mac(key, "dashboard-session", &body).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// The session a cookie value proves, if genuine and not expired.
pub fn read_session(key: &[u8], cookie: &str, now: DateTime<Utc>) -> Option<Session> {
    let (body, sig) = cookie.trim().split_once('.')?;
    let sig = hex::decode(sig).ok()?;
    mac(key, "dashboard-session", body)
        .verify_slice(&sig)
        .ok()?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    let mut parts = text.rsplitn(2, '|');
    let expires = parts.next()?.parse::<i64>().ok()?;
    let (shop, email) = parts.next()?.split_once('|')?;
    if now.timestamp() >= expires {
        return None;
    }
    Some(Session {
        shop: ShopId::parse(shop).ok()?,
        email: email.to_string(),
        expires,
        cookie: cookie.trim().to_string(),
    })
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(value: &str) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Max-Age={SESSION_SECONDS}; Path=/dashboard; HttpOnly; Secure; SameSite=Strict"
    )
}

/// The session cookie inside Shopify admin's frame: a Strict cookie is
/// never sent to a frame of another site, so this one is `SameSite=None`
/// and `Partitioned` (kept apart per top-level site, so only Shopify
/// admin's frame carries it); forms still need their CSRF token.
pub fn embedded_session_cookie(value: &str) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Max-Age={SESSION_SECONDS}; Path=/dashboard; HttpOnly; Secure; SameSite=None; Partitioned"
    )
}

/// The `Set-Cookie` value that ends it.
pub fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Max-Age=0; Path=/dashboard; HttpOnly; Secure; SameSite=Strict")
}

/// The CSRF token of a session.
pub fn csrf_token(key: &[u8], session: &Session) -> String {
    hex::encode(
        mac(key, "dashboard-csrf", &session.cookie)
            .finalize()
            .into_bytes(),
    )
}

pub fn csrf_is_valid(key: &[u8], session: &Session, given: &str) -> bool {
    let Ok(given) = hex::decode(given.trim()) else {
        return false;
    };
    mac(key, "dashboard-csrf", &session.cookie)
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    #[test]
    fn a_password_matches_only_itself_and_the_hash_is_salted() {
        let one = hash_password_with("correct horse", [1; 16], 1000);
        let two = hash_password_with("correct horse", [2; 16], 1000);
        assert_ne!(one, two);
        assert!(verify_password("correct horse", &one));
        assert!(!verify_password("correct horse ", &one));
        assert!(!verify_password("correct horse", "plain"));
        assert!(!verify_password("", "pbkdf2-sha256$0$AA$AA"));
        assert!(!one.contains("correct"));
    }

    #[test]
    fn a_session_is_one_shops_until_it_expires_and_cannot_be_edited() {
        let shop = ShopId::parse("demo.myshopify.com").unwrap();
        let cookie = new_session(b"k", &shop, "owner@demo.test", now());
        let session = read_session(b"k", &cookie, now()).unwrap();
        assert_eq!(session.shop, shop);
        assert_eq!(session.email, "owner@demo.test");
        assert!(read_session(b"other", &cookie, now()).is_none());
        assert!(read_session(b"k", &cookie, now() + Duration::seconds(SESSION_SECONDS)).is_none());
        let (_, sig) = cookie.split_once('.').unwrap();
        let forged = format!(
            "{}.{sig}",
            URL_SAFE_NO_PAD.encode(format!(
                "other.myshopify.com|owner@demo.test|{}",
                now().timestamp() + 60
            ))
        );
        assert!(read_session(b"k", &forged, now()).is_none());
        let token = csrf_token(b"k", &session);
        assert!(csrf_is_valid(b"k", &session, &token));
        let other =
            read_session(b"k", &new_session(b"k", &shop, "x@demo.test", now()), now()).unwrap();
        assert!(!csrf_is_valid(b"k", &other, &token));
    }
}
