//! Shopify app proxy requests: a storefront page asks through the shop's
//! domain (`/apps/...`), and Shopify forwards it with `shop`,
//! `logged_in_customer_id`, `path_prefix`, `timestamp` and `signature`
//! added to the query.
//!
//! The signature, as Shopify documents it ("Authenticate app proxies"):
//! hex HMAC-SHA256, keyed with the app's shared secret, over every other
//! query parameter decoded, each as `key=value` with the values of a
//! repeated key joined by `,`, the pairs sorted and concatenated with no
//! separator. Sorting is of the `key=value` strings, as Shopify's reference
//! code does it.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The parameter that carries the signature (never signed itself).
pub const SIGNATURE: &str = "signature";

/// The string Shopify signs for a query's decoded parameters.
pub fn signed_message(params: &[(String, String)]) -> String {
    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, value) in params {
        if key != SIGNATURE {
            grouped.entry(key).or_default().push(value);
        }
    }
    let mut pairs: Vec<String> = grouped
        .into_iter()
        .map(|(key, values)| format!("{key}={}", values.join(",")))
        .collect();
    pairs.sort();
    pairs.concat()
}

fn mac(secret: &[u8], params: &[(String, String)]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(signed_message(params).as_bytes());
    mac
}

/// The signature Shopify would send for these parameters (for tests and
/// for tools that call the API as the proxy would).
pub fn sign(secret: &[u8], params: &[(String, String)]) -> String {
    hex::encode(mac(secret, params).finalize().into_bytes())
}

/// Whether the query's `signature` is Shopify's, compared in constant time.
/// A missing, repeated or non-hex signature is not valid.
pub fn verify(secret: &[u8], params: &[(String, String)]) -> bool {
    let mut given = params.iter().filter(|(key, _)| key == SIGNATURE);
    let (Some((_, signature)), None) = (given.next(), given.next()) else {
        return false;
    };
    let Ok(bytes) = hex::decode(signature.trim()) else {
        return false;
    };
    mac(secret, params).verify_slice(&bytes).is_ok()
}

/// The first value of a parameter.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Shopify's published example: shared secret "hush".
    fn shopify_example(customer: Option<&str>, signature: &str) -> Vec<(String, String)> {
        let mut pairs = vec![
            ("extra", "1"),
            ("extra", "2"),
            ("shop", "shop-name.myshopify.com"),
        ];
        if let Some(customer) = customer {
            pairs.push(("logged_in_customer_id", customer));
        }
        pairs.extend([
            ("path_prefix", "/apps/awesome_reviews"),
            ("timestamp", "1317327555"),
            ("signature", signature),
        ]);
        params(&pairs)
    }

    #[test]
    fn shopifys_published_examples_verify() {
        let anonymous = shopify_example(
            None,
            "a9718877bea71c2484f91608a7eaea1532bdf71f5c56825065fa4ccabe549ef3",
        );
        assert_eq!(
            signed_message(&anonymous),
            "extra=1,2path_prefix=/apps/awesome_reviewsshop=shop-name.myshopify.comtimestamp=1317327555"
        );
        assert!(verify(b"hush", &anonymous));
        let logged_in = shopify_example(
            Some("1"),
            "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb",
        );
        assert!(verify(b"hush", &logged_in));
    }

    #[test]
    fn a_changed_parameter_or_another_secret_fails() {
        let mut tampered = shopify_example(
            Some("1"),
            "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb",
        );
        assert!(!verify(b"not hush", &tampered));
        tampered[3].1 = "2".into();
        assert!(!verify(b"hush", &tampered));
    }

    #[test]
    fn a_missing_repeated_or_garbled_signature_fails() {
        let unsigned = params(&[("shop", "s.myshopify.com")]);
        assert!(!verify(b"hush", &unsigned));
        let good = sign(b"hush", &unsigned);
        let mut twice = unsigned.clone();
        twice.push(("signature".into(), good.clone()));
        twice.push(("signature".into(), good));
        assert!(!verify(b"hush", &twice));
        let mut garbled = unsigned;
        garbled.push(("signature".into(), "zz".into()));
        assert!(!verify(b"hush", &garbled));
    }

    #[test]
    fn pairs_sort_as_whole_strings_as_shopifys_reference_does() {
        // "a-b=" sorts before "a=" because '-' < '='; sorting by key alone
        // would put "a" first and sign a different message.
        let message = signed_message(&params(&[("a", "1"), ("a-b", "2")]));
        assert_eq!(message, "a-b=2a=1");
    }
}
