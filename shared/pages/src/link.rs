//! Signed links to a customer's cashback page, for shops whose account page
//! is not proxied by the platform (WooCommerce's My Account).
//!
//! The shop's server asks for a link with its API key and hands it to the
//! logged-in customer; the link names the shop, the customer and an expiry,
//! signed with the engine's link key (HMAC-SHA256, hex, compared in constant
//! time). The message is prefixed with `portal-link:` so no other signature
//! made with the same key (unsubscribe links) is ever a valid page link.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use cashback_core::ids::{CustomerId, ShopId};

type HmacSha256 = Hmac<Sha256>;

fn mac(
    secret: &[u8],
    purpose: &str,
    shop: &ShopId,
    customer: &CustomerId,
    tail: &str,
) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{purpose}:{shop}:{customer}:{tail}").as_bytes());
    mac
}

/// The signature of a page link valid until `expires` (Unix seconds).
pub fn sign(secret: &[u8], shop: &ShopId, customer: &CustomerId, expires: i64) -> String {
    hex::encode(
        mac(secret, "portal-link", shop, customer, &expires.to_string())
            .finalize()
            .into_bytes(),
    )
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    Missing,
    Forged,
    Expired,
}

/// Checks a link's signature, then its expiry.
pub fn verify(
    secret: &[u8],
    shop: &ShopId,
    customer: &CustomerId,
    expires: Option<&str>,
    signature: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), LinkError> {
    let (Some(expires), Some(signature)) = (expires, signature) else {
        return Err(LinkError::Missing);
    };
    let Ok(given) = hex::decode(signature.trim()) else {
        return Err(LinkError::Forged);
    };
    mac(secret, "portal-link", shop, customer, expires.trim())
        .verify_slice(&given)
        .map_err(|_| LinkError::Forged)?;
    let at = expires
        .trim()
        .parse::<i64>()
        .map_err(|_| LinkError::Forged)?;
    if now.timestamp() > at {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// The token a customer's preference form carries: only a page that could
/// be read by that customer knows it, so another site cannot post the form
/// in their name.
pub fn form_token(secret: &[u8], shop: &ShopId, customer: &CustomerId) -> String {
    hex::encode(
        mac(secret, "portal-form", shop, customer, "")
            .finalize()
            .into_bytes(),
    )
}

pub fn form_token_is_valid(
    secret: &[u8],
    shop: &ShopId,
    customer: &CustomerId,
    given: &str,
) -> bool {
    let Ok(given) = hex::decode(given.trim()) else {
        return false;
    };
    mac(secret, "portal-form", shop, customer, "")
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ids() -> (ShopId, CustomerId) {
        (
            ShopId::parse("demo.myshopify.com").unwrap(),
            CustomerId::parse("ann").unwrap(),
        )
    }

    #[test]
    fn a_link_holds_until_it_expires_and_not_for_anyone_else() {
        let (shop, ann) = ids();
        let bob = CustomerId::parse("bob").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let expires = now.timestamp() + 60;
        let sig = sign(b"k", &shop, &ann, expires);
        let e = expires.to_string();
        assert_eq!(verify(b"k", &shop, &ann, Some(&e), Some(&sig), now), Ok(()));
        assert_eq!(
            verify(b"k", &shop, &bob, Some(&e), Some(&sig), now),
            Err(LinkError::Forged)
        );
        assert_eq!(
            verify(b"other", &shop, &ann, Some(&e), Some(&sig), now),
            Err(LinkError::Forged)
        );
        let later = (expires + 3600).to_string();
        assert_eq!(
            verify(b"k", &shop, &ann, Some(&later), Some(&sig), now),
            Err(LinkError::Forged)
        );
        let after = now + chrono::Duration::seconds(61);
        assert_eq!(
            verify(b"k", &shop, &ann, Some(&e), Some(&sig), after),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify(b"k", &shop, &ann, None, Some(&sig), now),
            Err(LinkError::Missing)
        );
    }

    #[test]
    fn a_form_token_is_one_customers() {
        let (shop, ann) = ids();
        let bob = CustomerId::parse("bob").unwrap();
        let token = form_token(b"k", &shop, &ann);
        assert!(form_token_is_valid(b"k", &shop, &ann, &token));
        assert!(!form_token_is_valid(b"k", &shop, &bob, &token));
        assert!(!form_token_is_valid(b"k", &shop, &ann, "zz"));
    }
}
