//! The one HTTPS client the adapters share: hyper-util's pooled client over
//! rustls (aws-lc, the system's trust store, as a shop's certificate chains
//! to any public root), with a deadline on every call, connection and body
//! included. Plain HTTP is accepted only for a loopback host (the local
//! fakes in tests); anything else must be HTTPS.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use cashback_app::platform_codes::PlatformError;

/// The longest body read from a platform (a coupon list or a GraphQL
/// answer is a few KB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A base URL the adapters may call: `https://...`, or `http://` on a
/// loopback host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: must be https:// (http:// only for 127.0.0.1 or localhost)")]
    NotHttps(String),
    #[error("{0}: not a URL")]
    BadUrl(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{0}")]
    Invalid(String),
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, ConfigError> {
        let trimmed = url.trim().trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| ConfigError::BadUrl(trimmed.to_string()))?;
        let host = uri
            .host()
            .ok_or_else(|| ConfigError::BadUrl(trimmed.to_string()))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if host == "127.0.0.1" || host == "localhost" || host == "[::1]" => {}
            _ => return Err(ConfigError::NotHttps(trimmed.to_string())),
        }
        Ok(BaseUrl(trimmed.to_string()))
    }

    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A platform's answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client whose every call (connect, send, read the body) ends within
    /// `timeout`.
    pub fn new(timeout: Duration) -> Result<HttpClient, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_native_roots()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(HttpClient { client, timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and reads the whole answer. A timeout, a broken
    /// connection or an oversized body is [`PlatformError::Transient`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, PlatformError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| PlatformError::transient(format!("header {name} is not valid")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| PlatformError::Transient {
                message: "request could not be built".into(),
                source: Some(Box::new(e)),
            })?;
        let call = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| PlatformError::Transient {
                        message: "request failed".into(),
                        source: Some(Box::new(e)),
                    })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)));
            let limited = http_body_util::Limited::new(response.into_body(), MAX_BODY_BYTES);
            let body = limited
                .collect()
                .await
                .map_err(|e| PlatformError::Transient {
                    message: format!("reading the answer failed: {e}"),
                    source: None,
                })?
                .to_bytes();
            Ok(HttpResponse {
                status,
                retry_after,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| PlatformError::transient(format!("no answer within {:?}", self.timeout)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_a_loopback_host_is_accepted() {
        assert!(BaseUrl::parse("https://shop.myshopify.com/").is_ok());
        assert!(BaseUrl::parse("http://127.0.0.1:8080").is_ok());
        assert!(matches!(
            BaseUrl::parse("http://shop.example.com"),
            Err(ConfigError::NotHttps(_))
        ));
        assert!(BaseUrl::parse("not a url").is_err());
        assert_eq!(
            BaseUrl::parse("https://a.example/").unwrap().join("/x"),
            "https://a.example/x"
        );
    }
}
