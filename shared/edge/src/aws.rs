//! The AWS SDK's plumbing every function shares: one HTTPS client with a
//! compiled-in trust store, the loaded configuration, and an SES notifier
//! whose client is built on its first email.
//!
//! Why (BENCHMARKS.md, section 4): the SDK's default HTTPS client trusts the
//! system's certificate store, and every SDK client builds its connector
//! when it is constructed, so a function's start read and decoded every
//! certificate of the system (on this machine ~150 files, most of a cold
//! start). AWS endpoints all chain to Amazon Trust Services' roots, so
//! those five roots, compiled in, are the whole trust store: nothing is
//! read from disk and five certificates are decoded.
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `CASHBACK_TLS_ROOTS` | `amazon`: the compiled-in roots; `system`: the system's store (an endpoint behind a proxy that re-signs TLS, or a local stand-in with its own certificate) | `amazon` |

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::OnceCell;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_mail::{SesConfig, SesNotifier};

/// Amazon Root CA 1-4 and Starfield Services Root CA G2 (the cross-signing
/// root of older AWS certificates), in PEM; see the file's header.
pub const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("../certs/amazon-roots.pem");

/// The trust store the SDK's HTTPS connections use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The compiled-in Amazon roots only ([`AMAZON_ROOTS_PEM`]).
    Amazon,
    /// The system's certificate store (read at the first client's construction).
    System,
}

impl TrustRoots {
    /// `CASHBACK_TLS_ROOTS`; an unknown value is an error naming the choices.
    pub fn from_env() -> Result<TrustRoots, String> {
        match std::env::var("CASHBACK_TLS_ROOTS") {
            Err(_) => Ok(TrustRoots::Amazon),
            Ok(value) => TrustRoots::parse(&value),
        }
    }

    pub fn parse(value: &str) -> Result<TrustRoots, String> {
        match value.trim() {
            "" | "amazon" => Ok(TrustRoots::Amazon),
            "system" => Ok(TrustRoots::System),
            other => Err(format!(
                "CASHBACK_TLS_ROOTS: {other:?} is not a trust store (amazon or system)"
            )),
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            TrustRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
            TrustRoots::System => TrustStore::default(),
        }
    }
}

/// A new HTTPS client for the SDK: rustls with aws-lc (the SDK's default
/// provider), the proxy settings of the environment (as the SDK's default
/// client), and `roots` as its trust store. Connectors are built per set of
/// timeouts by the first request that needs one, and reused by every client
/// with the same timeouts.
pub fn https_client(roots: TrustRoots) -> SharedHttpClient {
    // `build` only stores the trust store: it cannot fail today, and the
    // default (the system's store) is a safe answer if it ever does.
    let context = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .unwrap_or_default();
    Builder::new().build_with_connector_fn(move |settings, components| {
        // A request always passes its settings. Without them this is the
        // check the SDK makes when it constructs a client (every
        // `Client::from_conf`): it builds a connector and drops it, which
        // would decode the trust store for nothing, on every client's
        // construction (BENCHMARKS.md, section 4). A plain connector
        // answers that check; no request ever goes through it (and one
        // would fail on an https URL, never go out in clear).
        if settings.is_none() {
            return ConnectorBuilder::default().build_http();
        }
        let mut builder = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context.clone());
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

/// The container's HTTPS client for `roots`, built once and shared by every
/// SDK client (so they share its connectors and connection pools too).
pub fn shared_https_client(roots: TrustRoots) -> SharedHttpClient {
    static AMAZON: OnceLock<SharedHttpClient> = OnceLock::new();
    static SYSTEM: OnceLock<SharedHttpClient> = OnceLock::new();
    let cell = match roots {
        TrustRoots::Amazon => &AMAZON,
        TrustRoots::System => &SYSTEM,
    };
    cell.get_or_init(|| https_client(roots)).clone()
}

/// The HTTPS client every SDK client of this container uses: the one
/// [`shared_https_client`] for the trust store `CASHBACK_TLS_ROOTS` names
/// (an unknown value falls back to the compiled-in roots here; the wiring
/// refuses it at start). [`crate::wiring::aws_config`] puts it into the
/// configuration every client is made from (`Client::new(&sdk)`); a client
/// built from a configuration of its own (another region, another
/// endpoint) takes it with `.http_client(cashback_edge::aws::http_client())`.
pub fn http_client() -> SharedHttpClient {
    shared_https_client(TrustRoots::from_env().unwrap_or(TrustRoots::Amazon))
}

/// SES, with its client built on the first email: most invocations send
/// none (validation, the customer view, duplicates), and a client's
/// construction builds its connector and runs its plugins, which a start
/// would otherwise pay in every function (BENCHMARKS.md, section 4).
pub struct LazySes {
    sdk: SdkConfig,
    config: SesConfig,
    notifier: OnceCell<SesNotifier>,
}

impl LazySes {
    pub fn new(sdk: SdkConfig, config: SesConfig) -> LazySes {
        LazySes {
            sdk,
            config,
            notifier: OnceCell::new(),
        }
    }

    /// Whether the client has been built (by a first email).
    pub fn is_built(&self) -> bool {
        self.notifier.initialized()
    }

    async fn notifier(&self) -> &SesNotifier {
        self.notifier
            .get_or_init(|| async { SesNotifier::from_sdk_config(&self.sdk, self.config.clone()) })
            .await
    }
}

#[async_trait::async_trait]
impl Notifier for LazySes {
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        self.notifier().await.send(notification).await
    }
}

/// A shared handle for [`LazySes`] behind the port.
pub fn lazy_ses(sdk: &SdkConfig, config: SesConfig) -> Arc<dyn Notifier> {
    Arc::new(LazySes::new(sdk.clone(), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_config::{BehaviorVersion, Region};
    use cashback_app::notify::{Branding, NotificationKind};
    use cashback_core::ids::{Code, Email, ShopId};
    use cashback_core::money::{Currency, Money};

    /// A configuration as a function loads it, with fixed credentials and
    /// nothing read from the machine.
    fn sdk(roots: TrustRoots) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .http_client(https_client(roots))
            .build()
    }

    #[test]
    fn the_trust_store_is_amazon_unless_the_system_is_asked_for() {
        assert_eq!(TrustRoots::parse(""), Ok(TrustRoots::Amazon));
        assert_eq!(TrustRoots::parse("amazon"), Ok(TrustRoots::Amazon));
        assert_eq!(TrustRoots::parse(" system "), Ok(TrustRoots::System));
        let error = TrustRoots::parse("webpki").unwrap_err();
        assert!(error.contains("amazon or system"), "{error}");
    }

    #[test]
    fn the_compiled_in_store_is_amazon_trust_services_five_roots() {
        let pem = std::str::from_utf8(AMAZON_ROOTS_PEM).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(pem.matches("-----END CERTIFICATE-----").count(), 5);
        for root in [
            "Amazon_Root_CA_1",
            "Amazon_Root_CA_2",
            "Amazon_Root_CA_3",
            "Amazon_Root_CA_4",
            "Starfield_Services_Root_Certificate_Authority_-_G2",
        ] {
            assert!(pem.contains(&format!("# {root}\n")), "{root} is missing");
        }
    }

    #[tokio::test]
    async fn clients_are_built_on_the_compiled_in_roots() {
        // A client's construction, as a function's first store call or
        // first email makes it (its TLS connector is built by its first
        // request: the next test).
        let sdk = sdk(TrustRoots::Amazon);
        let store = cashback_store::DynamoStore::from_sdk_config(&sdk, "table", None);
        drop(store);
        let ses = SesNotifier::from_sdk_config(
            &sdk,
            SesConfig::new(Email::parse("rewards@demo.example.com").unwrap()),
        );
        drop(ses);
    }

    #[tokio::test]
    async fn a_request_goes_out_over_tls_though_a_construction_builds_no_tls_connector() {
        // The construction's check gets a plain connector (no trust store
        // decoded); a request gets the TLS one, on the compiled-in roots:
        // what reaches the server is a TLS handshake record (0x16).
        use cashback_app::store::Store;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_byte = std::thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let mut byte = [0u8; 1];
            std::io::Read::read_exact(&mut connection, &mut byte).unwrap();
            byte[0]
        });
        let sdk = cashback_test_support::moto::sdk_config()
            .await
            .to_builder()
            .http_client(https_client(TrustRoots::Amazon))
            .build();
        let endpoint = format!("https://127.0.0.1:{port}");
        let store = cashback_store::DynamoStore::from_sdk_config(&sdk, "table", Some(&endpoint));
        // No TLS server answers: the call fails, after its handshake began.
        assert!(store.get_checkpoint("job").await.is_err());
        assert_eq!(first_byte.join().unwrap(), 0x16, "a TLS handshake record");
    }

    #[test]
    fn every_client_shares_one_https_client() {
        let a = shared_https_client(TrustRoots::Amazon);
        let b = shared_https_client(TrustRoots::Amazon);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let sdk = sdk(TrustRoots::Amazon);
        assert!(sdk.http_client().is_some());
    }

    fn notification() -> Notification {
        Notification {
            idempotency_key: "ready:demo:ann:1001".to_string(),
            shop: ShopId::parse("demo.myshopify.com").unwrap(),
            to: Email::parse("ann@example.com").unwrap(),
            branding: Branding {
                display_name: "CashBack".to_string(),
                shop_name: "Demo Shop".to_string(),
                shop_url: None,
                subject: None,
                preview_text: None,
            },
            kind: NotificationKind::Ready {
                amount: Money::parse("12.30", Currency::USD).unwrap(),
                balance: Money::parse("40.00", Currency::USD).unwrap(),
                code: Code::parse("cb-7k2m9q").unwrap(),
            },
            unsubscribe_url: None,
        }
    }

    #[tokio::test]
    async fn the_ses_client_is_built_by_the_first_email_not_at_start() {
        let mut config = SesConfig::new(Email::parse("rewards@demo.example.com").unwrap());
        // Nothing listens on port 9: the send fails fast, after the client
        // was built for it.
        config.endpoint_url = Some("http://127.0.0.1:9".to_string());
        let ses = LazySes::new(sdk(TrustRoots::Amazon), config);
        assert!(!ses.is_built());
        assert!(ses.send(&notification()).await.is_err());
        assert!(ses.is_built());
    }
}
