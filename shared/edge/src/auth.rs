//! API keys: a key is shown once when made and stored only as its SHA-256;
//! a request's Bearer key is hashed and compared in constant time. A shop's
//! keys carry scopes ([`require_key`]; `cashback_app::api_keys`).

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

use cashback_app::api_keys::{self, AuthError, Authenticated, KeyRefusal};
use cashback_app::store::{KeyScope, Shop};
use cashback_app::Context;

use crate::error::ApiError;

/// The hex SHA-256 of an API key, as stored.
pub fn hash_api_key(key: &str) -> String {
    api_keys::hash_key(key)
}

/// The request's Bearer key, checked against the shop's live keys for
/// `scope`: 401 without one, with an unknown or a revoked key; 403 for a
/// key that may not do this.
pub async fn require_key(
    ctx: &Context,
    shop: &Shop,
    headers: &HeaderMap,
    scope: KeyScope,
    now: DateTime<Utc>,
) -> Result<Authenticated, ApiError> {
    match api_keys::authenticate(ctx, shop, bearer(headers), scope, now).await {
        Ok(key) => Ok(key),
        Err(AuthError::Refused(refusal @ KeyRefusal::NotAllowed(_))) => {
            Err(ApiError::forbidden(refusal.to_string()))
        }
        Err(AuthError::Refused(refusal)) => Err(ApiError::unauthorized(refusal.to_string())),
        Err(AuthError::Failed(error)) => Err(error.into()),
    }
}

/// A new API key: 32 random bytes from the OS, hex, with a readable prefix.
pub fn new_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("cbk_{}", hex::encode(bytes))
}

/// The Bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Checks a request's Bearer key against a stored hash.
pub fn check_api_key(headers: &HeaderMap, stored_hash: &str) -> Result<(), ApiError> {
    let key = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("an API key is required (Authorization: Bearer ...)")
    })?;
    let given = hash_api_key(key);
    if stored_hash.is_empty() || !bool::from(given.as_bytes().ct_eq(stored_hash.as_bytes())) {
        return Err(ApiError::unauthorized(
            "the API key is not valid for this shop",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_key_matches_only_its_own_hash() {
        let key = new_api_key();
        let stored = hash_api_key(&key);
        assert!(check_api_key(&with_auth(&format!("Bearer {key}")), &stored).is_ok());
        assert!(check_api_key(&with_auth(&format!("bearer {key}")), &stored).is_ok());
        assert!(check_api_key(&with_auth("Bearer cbk_wrong"), &stored).is_err());
        assert!(check_api_key(&HeaderMap::new(), &stored).is_err());
        assert!(check_api_key(&with_auth(&format!("Basic {key}")), &stored).is_err());
        assert!(check_api_key(&with_auth(&format!("Bearer {key}")), "").is_err());
    }

    #[test]
    fn keys_are_random_and_long() {
        let (a, b) = (new_api_key(), new_api_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
    }
}
