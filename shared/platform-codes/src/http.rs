//! The one HTTPS client the adapters share: hyper-util's pooled client over
//! rustls (aws-lc, the system's trust store, as a shop's certificate chains
//! to any public root), with a deadline on every call, connection and body
//! included. Plain HTTP is accepted only for a loopback host (the local
//! fakes in tests); anything else must be HTTPS.
//!
//! A [`HttpClient::public_only`] client connects only to public addresses
//! (outgoing events to merchants' endpoints): a host name is resolved by
//! the connector itself, and the addresses outside the public internet are
//! dropped before it connects, so a name re-pointed at a private address
//! after it was checked (DNS rebinding) is never reached. IP literals are
//! not resolved; the caller's URL check refuses private ones.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use cashback_app::outgoing::url::is_public;
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

/// Resolves a host name for the connector with the system's resolver
/// (getaddrinfo, on tokio's blocking threads). When `public_only`, only
/// the public addresses (the one rule, [`is_public`]) are kept, and a name
/// left with none fails the connection before any is opened.
#[derive(Clone)]
pub struct NameResolver {
    system: GaiResolver,
    public_only: bool,
}

impl NameResolver {
    /// Every address the name resolves to.
    pub fn any() -> NameResolver {
        NameResolver {
            system: GaiResolver::new(),
            public_only: false,
        }
    }

    /// Only the public addresses the name resolves to.
    pub fn public_only() -> NameResolver {
        NameResolver {
            system: GaiResolver::new(),
            public_only: true,
        }
    }
}

type Addresses = std::vec::IntoIter<SocketAddr>;

impl Service<Name> for NameResolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addresses, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.system.call(name.clone());
        let public_only = self.public_only;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = lookup.await?.collect();
            if public_only {
                keep_public(name.as_str(), addresses)
            } else {
                Ok(addresses.into_iter())
            }
        })
    }
}

/// The public addresses among those `host` resolved to; an error naming
/// the others when none is left.
fn keep_public(host: &str, addresses: Vec<SocketAddr>) -> Result<Addresses, std::io::Error> {
    let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addresses.into_iter().partition(|a| is_public(a.ip()));
    if public.is_empty() {
        let private: Vec<String> = private.iter().map(|a| a.ip().to_string()).collect();
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{host} resolves to no public address (resolved: [{}])",
                private.join(", ")
            ),
        ));
    }
    Ok(public.into_iter())
}

#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector<NameResolver>>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client whose every call (connect, send, read the body) ends within
    /// `timeout`.
    pub fn new(timeout: Duration) -> Result<HttpClient, ConfigError> {
        HttpClient::with_resolver(timeout, NameResolver::any())
    }

    /// A client like [`HttpClient::new`] that connects to a host name only
    /// through its public addresses (a name resolving to none fails the
    /// call, nothing sent). IP literals are connected to as they are.
    pub fn public_only(timeout: Duration) -> Result<HttpClient, ConfigError> {
        HttpClient::with_resolver(timeout, NameResolver::public_only())
    }

    fn with_resolver(timeout: Duration, resolver: NameResolver) -> Result<HttpClient, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_native_roots()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(resolver);
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

    use cashback_app::error::error_chain as chain;

    /// A listener on 127.0.0.1 counting the connections it accepts and
    /// answering each request 204.
    async fn counting_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn a_public_only_client_never_connects_to_a_name_resolving_to_loopback() {
        use std::sync::atomic::Ordering;

        let (port, accepted) = counting_server().await;
        let by_name = format!("http://localhost:{port}/hooks/cashback");
        let public = HttpClient::public_only(Duration::from_secs(2)).unwrap();
        let refused = public
            .send(Method::POST, &by_name, &[], None)
            .await
            .expect_err("localhost resolves to loopback only");
        let message = chain(&refused);
        assert!(message.contains("no public address"), "{message}");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "a connection was opened"
        );

        // The plain client (the platform adapters') reaches the same name.
        let plain = HttpClient::new(Duration::from_secs(2)).unwrap();
        let answer = plain.send(Method::POST, &by_name, &[], None).await.unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // An IP literal is not resolved: the callers' URL checks refuse
        // private ones (the local fakes use 127.0.0.1).
        let literal = format!("http://127.0.0.1:{port}/hooks/cashback");
        let answer = public
            .send(Method::POST, &literal, &[], None)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn only_public_addresses_are_kept_and_none_left_is_an_error() {
        let addresses: Vec<SocketAddr> = ["10.0.0.8:443", "93.184.215.14:443", "[::1]:443"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let kept: Vec<SocketAddr> = keep_public("mixed.example.com", addresses)
            .unwrap()
            .collect();
        assert_eq!(kept, vec!["93.184.215.14:443".parse().unwrap()]);
        let error = keep_public(
            "rebind.example.com",
            vec!["169.254.169.254:443".parse().unwrap()],
        )
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("169.254.169.254"), "{error}");
        assert!(keep_public("nothing.example.com", Vec::new()).is_err());
    }
}
