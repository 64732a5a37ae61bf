//! A small, case-insensitive header map, so the crate needs no HTTP types.
//!
//! The edge (lambda_http, axum, a test) copies the request's headers in;
//! names compare ASCII-case-insensitively because HTTP/2 lower-cases them and
//! Shopify tells integrators to treat them so. When a header is repeated the
//! first value wins: none of the headers we read is legitimately repeated.

/// Request headers as name/value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Adds a header (repeats are kept; [`Headers::get`] returns the first).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Builder form of [`Headers::insert`], handy in tests.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Headers {
        self.insert(name, value);
        self
    }

    /// The first value of `name`, trimmed, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }

    /// The first of several names that is present (Shopify's newer Events
    /// deliveries drop the `X-` prefix).
    pub(crate) fn get_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| self.get(name))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Headers {
        Headers {
            entries: iter
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_whatever_their_case() {
        let headers = Headers::new().with("x-shopify-topic", " orders/paid ");
        assert_eq!(headers.get("X-Shopify-Topic"), Some("orders/paid"));
        assert_eq!(headers.get("X-SHOPIFY-TOPIC"), Some("orders/paid"));
        assert_eq!(headers.get("X-Shopify-Hmac-Sha256"), None);
    }

    #[test]
    fn the_first_of_repeated_headers_wins() {
        let headers: Headers = [("A", "1"), ("a", "2")].into_iter().collect();
        assert_eq!(headers.get("a"), Some("1"));
    }
}
