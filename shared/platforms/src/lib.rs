//! Platform webhooks (Shopify, WooCommerce, our generic schema) turned into
//! core [`OrderEvent`]s, with their signature checks.
//!
//! Pure like the core: no I/O, no clock (the generic signature's `now` is an
//! argument), no HTTP or Lambda types. The edge copies the request's headers
//! into a [`Headers`] and hands over the raw body bytes, because signatures
//! are computed over the exact bytes received.
//!
//! The order of operations is part of the API, because the secret to verify
//! with depends on an unauthenticated claim:
//! 1. [`Platform::identify`]: a WooCommerce ping (answer 200, done) or the
//!    shop the request claims to be for, read from a header only;
//! 2. the caller loads that shop's secrets and currency (404 if unknown);
//! 3. [`Platform::verify`]: 401 on any [`SignatureError`];
//! 4. [`Platform::parse`]: only a verified body is parsed, into a
//!    [`Delivery`] of events, or an ignored topic.
//!
//! Each platform module also has a one-call `parse_webhook` for callers that
//! already hold the secrets.
//!
//! # Layout
//! - [`headers`]: the case-insensitive header map.
//! - [`signature`]: HMAC-SHA256 checks (base64 and `t=,v1=`), constant time.
//! - [`shopify`], [`woocommerce`], [`generic`]: one module per platform.
//! - [`delivery`]: what a parsed delivery holds.
//! - [`shop_requests`]: Shopify's compliance topics and `app/uninstalled`.
//! - `claims`: the signed body checked against the unsigned topic and shop
//!   headers.
//! - [`error`]: [`WebhookError`] and the HTTP status of each variant.

mod claims;
pub mod delivery;
pub mod error;
pub mod generic;
pub mod headers;
mod json;
pub mod shop_requests;
pub mod shopify;
pub mod signature;
pub mod woocommerce;

use cashback_core::money::Currency;
use chrono::{DateTime, Utc};

pub use cashback_core::order::OrderEvent;
pub use delivery::{Delivery, Identified, Outcome, Ping, Platform, Received, TransportIds};
pub use error::{SignatureError, WebhookError};
pub use headers::Headers;
pub use shop_requests::{CustomerSubject, ShopRequest};
pub use signature::{sign_base64, sign_generic};

/// The largest body accepted: 1 MiB. Shopify orders with hundreds of lines
/// stay well under it, and API Gateway's own limit is higher (10 MB), so
/// this is what stops a huge body from being hashed and parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        Err(WebhookError::BodyTooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        })
    } else {
        Ok(())
    }
}

impl Platform {
    /// Step 1: a ping, or the (unauthenticated) shop to load secrets for.
    pub fn identify(self, headers: &Headers, body: &[u8]) -> Result<Identified, WebhookError> {
        check_size(body)?;
        match self {
            Platform::Shopify => shopify::shop_of(headers).map(Identified::Shop),
            Platform::WooCommerce => woocommerce::identify(headers, body),
            Platform::Generic => generic::shop_of(headers).map(Identified::Shop),
        }
    }

    /// Step 3: the signature, against every secret the shop has (current
    /// and previous while rotating). `now` is only used by the generic
    /// scheme, whose header carries a timestamp.
    pub fn verify<S: AsRef<[u8]>>(
        self,
        headers: &Headers,
        body: &[u8],
        secrets: &[S],
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        match self {
            Platform::Shopify => shopify::verify(headers, body, secrets),
            Platform::WooCommerce => woocommerce::verify(headers, body, secrets),
            Platform::Generic => generic::verify(headers, body, secrets, now),
        }
    }

    /// Step 4: a verified body, as events in the shop's currency.
    pub fn parse(
        self,
        headers: &Headers,
        body: &[u8],
        shop_currency: Currency,
    ) -> Result<Delivery, WebhookError> {
        match self {
            Platform::Shopify => shopify::parse(headers, body, shop_currency),
            Platform::WooCommerce => woocommerce::parse(headers, body, shop_currency),
            Platform::Generic => generic::parse(headers, body, shop_currency),
        }
    }

    /// Steps 1, 3 and 4 in one call, for a caller that already holds the
    /// shop's secrets and currency.
    pub fn parse_webhook<S: AsRef<[u8]>>(
        self,
        headers: &Headers,
        body: &[u8],
        secrets: &[S],
        shop_currency: Currency,
        now: DateTime<Utc>,
    ) -> Result<Received, WebhookError> {
        if let Identified::Ping(ping) = self.identify(headers, body)? {
            return Ok(Received::Ping(ping));
        }
        self.verify(headers, body, secrets, now)?;
        self.parse(headers, body, shop_currency)
            .map(Received::Delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_named_by_their_path_segment() {
        for platform in [Platform::Shopify, Platform::WooCommerce, Platform::Generic] {
            assert_eq!(Platform::from_name(platform.name()), Some(platform));
        }
        assert_eq!(Platform::from_name("Shopify"), Some(Platform::Shopify));
        assert_eq!(Platform::from_name("stripe"), None);
    }

    #[test]
    fn a_body_over_one_mebibyte_is_refused_before_anything_else() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let headers = Headers::new();
        for platform in [Platform::Shopify, Platform::WooCommerce, Platform::Generic] {
            assert!(matches!(
                platform.identify(&headers, &body),
                Err(WebhookError::BodyTooLarge { .. })
            ));
            assert!(matches!(
                platform.verify(&headers, &body, &["k"], DateTime::UNIX_EPOCH),
                Err(WebhookError::BodyTooLarge { .. })
            ));
            assert!(matches!(
                platform.parse(&headers, &body, Currency::USD),
                Err(WebhookError::BodyTooLarge { .. })
            ));
        }
        assert!(check_size(&body[..MAX_BODY_BYTES]).is_ok());
    }
}
