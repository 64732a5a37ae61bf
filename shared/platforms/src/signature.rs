//! HMAC-SHA256 webhook signatures: Shopify's and WooCommerce's base64 header,
//! and our generic `t=<unix>,v1=<hex>` header.
//!
//! Every check takes a list of secrets so a shop can rotate (the old secret
//! keeps working until the platform signs with the new one), compares in
//! constant time with `subtle`, and never short-circuits across secrets, so
//! timing reveals neither which secret matched nor how much of a guess was
//! right. Nothing here panics on any header or body.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::error::SignatureError;

type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 HMAC in bytes.
const MAC_LEN: usize = 32;

/// How far a generic signature's timestamp may be from `now`, either way.
/// Five minutes, as Stripe does: long enough for clock skew and a retry
/// queue, short enough that a captured request cannot be replayed later.
pub const GENERIC_TOLERANCE_SECS: i64 = 300;

fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length (an empty key included), so this
    // constructor cannot fail; the fallback only keeps the code panic-free.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return [0; MAC_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `base64(HMAC-SHA256(secret, body))`: what Shopify and WooCommerce send.
pub fn sign_base64(secret: &[u8], body: &[u8]) -> String {
    STANDARD.encode(mac(secret, &[body]))
}

/// Checks a base64 HMAC header (`X-Shopify-Hmac-Sha256`,
/// `X-WC-Webhook-Signature`) against every secret.
pub fn verify_base64<S: AsRef<[u8]>>(
    header: &'static str,
    value: Option<&str>,
    body: &[u8],
    secrets: &[S],
) -> Result<(), SignatureError> {
    let value = value.ok_or(SignatureError::MissingHeader { header })?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let given = STANDARD
        .decode(value.trim())
        .map_err(|_| SignatureError::NotBase64 { header })?;
    if given.len() != MAC_LEN {
        return Err(SignatureError::MalformedHeader {
            header,
            reason: "not a 32-byte HMAC-SHA256",
        });
    }
    let matched = secrets.iter().fold(Choice::from(0), |found, secret| {
        found | mac(secret.as_ref(), &[body]).as_slice().ct_eq(&given)
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header carrying our generic signature.
pub const GENERIC_SIGNATURE_HEADER: &str = "X-Cashback-Signature";

/// Signs a generic delivery: returns the whole `X-Cashback-Signature` value,
/// `t=<t>,v1=<hex(HMAC-SHA256(secret, "<t>.<body>"))>`.
pub fn sign_generic(secret: &[u8], t: i64, body: &[u8]) -> String {
    let timestamp = t.to_string();
    let digest = mac(secret, &[timestamp.as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// A parsed `t=...,v1=...` header.
struct GenericHeader {
    timestamp: i64,
    signatures: Vec<[u8; MAC_LEN]>,
}

fn parse_generic_header(value: &str) -> Result<GenericHeader, SignatureError> {
    let malformed = |reason| SignatureError::MalformedHeader {
        header: GENERIC_SIGNATURE_HEADER,
        reason,
    };
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((scheme, content)) = item.split_once('=') else {
            return Err(malformed("every item must be scheme=value"));
        };
        match scheme.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(malformed("more than one t="));
                }
                let parsed = content
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| malformed("t= is not a whole number of seconds"))?;
                timestamp = Some(parsed);
            }
            "v1" => {
                let mut bytes = [0u8; MAC_LEN];
                hex::decode_to_slice(content.trim(), &mut bytes)
                    .map_err(|_| malformed("v1= is not 64 hex digits"))?;
                signatures.push(bytes);
            }
            // Other schemes (a future v2, Stripe's test v0) are ignored so a
            // sender can add one without breaking us.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(malformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(malformed("no v1= signature"));
    }
    Ok(GenericHeader {
        timestamp,
        signatures,
    })
}

/// Checks a generic `X-Cashback-Signature` value: any `v1` may match any
/// secret, then the timestamp must be within [`GENERIC_TOLERANCE_SECS`] of
/// `now` (unix seconds). The signature is checked first so that a stale but
/// authentic request (a replay) is told apart from a forged one in the logs.
pub fn verify_generic<S: AsRef<[u8]>>(
    value: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
) -> Result<(), SignatureError> {
    let value = value.ok_or(SignatureError::MissingHeader {
        header: GENERIC_SIGNATURE_HEADER,
    })?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecrets);
    }
    let header = parse_generic_header(value)?;
    let timestamp = header.timestamp.to_string();
    let mut matched = Choice::from(0);
    for secret in secrets {
        let expected = mac(secret.as_ref(), &[timestamp.as_bytes(), b".", body]);
        for given in &header.signatures {
            matched |= expected.as_slice().ct_eq(given.as_slice());
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    let skew = now.checked_sub(header.timestamp).map(i64::unsigned_abs);
    if skew.is_none_or(|skew| skew > GENERIC_TOLERANCE_SECS.unsigned_abs()) {
        return Err(SignatureError::OutsideTolerance {
            timestamp: header.timestamp,
            now,
            tolerance_secs: GENERIC_TOLERANCE_SECS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOPIFY: &str = "X-Shopify-Hmac-Sha256";

    #[test]
    fn shopifys_published_vector_verifies() {
        let body = br#"{"foo": "bar"}"#;
        assert_eq!(
            sign_base64(b"test_secret_key", body),
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
        );
        assert_eq!(
            verify_base64(
                SHOPIFY,
                Some("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="),
                body,
                &["test_secret_key"]
            ),
            Ok(())
        );
    }

    #[test]
    fn woocommerces_published_vector_verifies_with_the_empty_key() {
        // In WooCommerce's own test the key is empty and "secret" is the message.
        assert_eq!(
            sign_base64(b"", b"secret"),
            "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="
        );
        assert_eq!(
            verify_base64(
                "X-WC-Webhook-Signature",
                Some("GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="),
                b"secret",
                &[""]
            ),
            Ok(())
        );
    }

    #[test]
    fn the_previous_secret_still_verifies_during_rotation() {
        let body = b"{\"id\":1}";
        let header = sign_base64(b"old-secret", body);
        assert_eq!(
            verify_base64(SHOPIFY, Some(&header), body, &["new-secret", "old-secret"]),
            Ok(())
        );
        assert_eq!(
            verify_base64(SHOPIFY, Some(&header), body, &["new-secret"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let header = sign_base64(b"k", b"{\"total\":\"10.00\"}");
        assert_eq!(
            verify_base64(SHOPIFY, Some(&header), b"{\"total\":\"99.00\"}", &["k"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn another_shops_secret_does_not_verify() {
        let body = b"{}";
        let header = sign_base64(b"shop-a-secret", body);
        assert_eq!(
            verify_base64(SHOPIFY, Some(&header), body, &["shop-b-secret"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn truncated_or_garbled_headers_are_typed_errors() {
        let full = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        let body = br#"{"foo": "bar"}"#;
        let secrets = ["test_secret_key"];
        // Valid base64 but too short to be a SHA-256 HMAC.
        assert!(matches!(
            verify_base64(SHOPIFY, Some(&full[..16]), body, &secrets),
            Err(SignatureError::MalformedHeader { .. })
        ));
        // Cut mid-quantum: no longer base64 at all.
        assert_eq!(
            verify_base64(SHOPIFY, Some(&full[..full.len() - 3]), body, &secrets),
            Err(SignatureError::NotBase64 { header: SHOPIFY })
        );
        assert_eq!(
            verify_base64(SHOPIFY, Some("not base64 at all!"), body, &secrets),
            Err(SignatureError::NotBase64 { header: SHOPIFY })
        );
        assert_eq!(
            verify_base64(SHOPIFY, Some(""), body, &secrets),
            Err(SignatureError::MalformedHeader {
                header: SHOPIFY,
                reason: "not a 32-byte HMAC-SHA256"
            })
        );
    }

    #[test]
    fn a_missing_header_is_reported_by_name() {
        assert_eq!(
            verify_base64(SHOPIFY, None, b"{}", &["k"]),
            Err(SignatureError::MissingHeader { header: SHOPIFY })
        );
        assert_eq!(
            verify_generic(None, b"{}", &["k"], 0),
            Err(SignatureError::MissingHeader {
                header: GENERIC_SIGNATURE_HEADER
            })
        );
    }

    #[test]
    fn no_configured_secret_verifies_nothing() {
        let none: [&str; 0] = [];
        let header = sign_base64(b"", b"{}");
        assert_eq!(
            verify_base64(SHOPIFY, Some(&header), b"{}", &none),
            Err(SignatureError::NoSecrets)
        );
    }

    #[test]
    fn a_generic_signature_verifies_within_tolerance() {
        let body = br#"{"type":"order.paid"}"#;
        let header = sign_generic(b"whsec", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        for now in [1_700_000_000, 1_700_000_300, 1_699_999_700] {
            assert_eq!(verify_generic(Some(&header), body, &["whsec"], now), Ok(()));
        }
    }

    #[test]
    fn a_generic_signature_past_tolerance_is_refused_either_way() {
        let body = b"{}";
        let header = sign_generic(b"whsec", 1_700_000_000, body);
        for now in [1_700_000_301, 1_699_999_699, i64::MIN, i64::MAX] {
            assert!(matches!(
                verify_generic(Some(&header), body, &["whsec"], now),
                Err(SignatureError::OutsideTolerance { .. })
            ));
        }
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_unknown_schemes_are_ignored() {
        let body = b"{}";
        let t = 1_700_000_000;
        let old = sign_generic(b"old", t, body);
        let new = sign_generic(b"new", t, body);
        let old_v1 = old.split_once(",v1=").map(|(_, v)| v).unwrap();
        let new_v1 = new.split_once(",v1=").map(|(_, v)| v).unwrap();
        let header = format!("t={t}, v0=abc, v1={new_v1}, v1={old_v1}, v9=zzz");
        assert_eq!(verify_generic(Some(&header), body, &["old"], t), Ok(()));
        assert_eq!(verify_generic(Some(&header), body, &["new"], t), Ok(()));
        assert_eq!(
            verify_generic(Some(&header), body, &["other"], t),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_generic_headers_are_typed_errors() {
        let v1 = "0".repeat(64);
        for bad in [
            String::new(),
            "garbage".to_string(),
            format!("v1={v1}"),
            "t=1700000000".to_string(),
            format!("t=soon,v1={v1}"),
            format!("t=1,t=2,v1={v1}"),
            "t=1,v1=abcd".to_string(),
            format!("t=1,v1={}", "g".repeat(64)),
        ] {
            assert!(
                matches!(
                    verify_generic(Some(&bad), b"{}", &["k"], 1),
                    Err(SignatureError::MalformedHeader { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn a_generic_signature_over_another_timestamp_does_not_verify() {
        let body = b"{}";
        let header = sign_generic(b"k", 1_700_000_000, body);
        let replayed = header.replacen("t=1700000000", "t=1700000100", 1);
        assert_eq!(
            verify_generic(Some(&replayed), body, &["k"], 1_700_000_100),
            Err(SignatureError::Mismatch)
        );
    }
}
