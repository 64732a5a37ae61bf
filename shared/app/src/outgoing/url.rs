//! Where a merchant's endpoint may point: a public HTTPS address, never
//! the engine's own network (server-side request forgery).
//!
//! Refused: any scheme but `https`; user names or passwords in the URL; a
//! port other than 443; a host that is an IP address outside the public
//! internet (loopback, private, link-local such as the instance metadata
//! address 169.254.169.254, carrier-grade NAT, multicast, documentation,
//! reserved, IPv4 inside IPv6, unique-local IPv6); a name that is not a
//! public DNS name (`localhost`, one label, `.local`, `.internal`,
//! `.localhost`); a name that resolves to any such address. WHATWG URL
//! parsing turns `http://2130706433/` and `0x7f.1` into the addresses they
//! stand for, so spellings cannot hide one.
//!
//! Resolution is checked when the endpoint is created and again before
//! every delivery (a name may be pointed elsewhere later). A name that does
//! not resolve when it is created is accepted (its DNS may come later);
//! deliveries to it fail until it resolves to a public address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a URL may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPolicy {
    /// Production: public HTTPS on 443 only.
    PublicOnly,
    /// Local runs and tests: also `http://` on a loopback address, any port.
    AllowLoopback,
}

impl UrlPolicy {
    /// Loopback is allowed only when `CASHBACK_EVENTS_ALLOW_LOOPBACK=1`
    /// (the local server and tests; never set in template.yaml).
    pub fn from_env() -> UrlPolicy {
        match std::env::var(ALLOW_LOOPBACK_ENV).as_deref() {
            Ok("1") => UrlPolicy::AllowLoopback,
            _ => UrlPolicy::PublicOnly,
        }
    }
}

/// The variable that lets endpoints on loopback through (local runs only).
pub const ALLOW_LOOPBACK_ENV: &str = "CASHBACK_EVENTS_ALLOW_LOOPBACK";

/// The longest URL kept.
pub const MAX_URL_CHARS: usize = 2048;

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all, or too long.
    #[error("not a valid URL: {0}")]
    Malformed(String),
    /// Not https.
    #[error("must be https://")]
    NotHttps,
    /// User or password in the URL.
    #[error("must not carry a user name or password")]
    Credentials,
    /// A port other than 443.
    #[error("must use the default port 443")]
    Port,
    /// An address or name inside a private network.
    #[error("must be a public address; {0} is not")]
    NotPublic(String),
}

/// Resolves a host name to addresses (the system's resolver in production;
/// a table in tests).
#[async_trait::async_trait]
pub trait Resolve: Send + Sync {
    /// The addresses `host` resolves to; empty when it does not resolve.
    async fn resolve(&self, host: &str) -> Vec<IpAddr>;
}

/// What an endpoint URL is checked with: the policy and the resolver.
#[derive(Clone, Copy)]
pub struct UrlChecks<'a> {
    /// What a URL may point at.
    pub policy: UrlPolicy,
    /// Resolves its host.
    pub resolver: &'a dyn Resolve,
}

/// The system's resolver (getaddrinfo, on tokio's blocking threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> Vec<IpAddr> {
        use std::net::ToSocketAddrs;
        let host = host.to_string();
        // getaddrinfo blocks: off the async threads.
        let resolved =
            tokio::task::spawn_blocking(move || (host.as_str(), 443).to_socket_addrs()).await;
        match resolved {
            Ok(Ok(addresses)) => addresses.map(|a| a.ip()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT 100.64/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments 192.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking 198.18/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved 240/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7.
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10 (and the deprecated site-local fec0::/10).
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // NAT64 64:ff9b::/96 and IPv4-compatible ::/96: an IPv4 address inside.
        || (segments[0] == 0x0064 && segments[1] == 0xff9b)
        || segments[..6].iter().all(|s| *s == 0))
}

/// A URL that passed the checks, with its host as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUrl {
    /// The URL, normalised.
    pub url: String,
    /// The host to resolve before each delivery; None for an IP address.
    pub domain: Option<String>,
}

/// Checks a URL without resolving it.
pub fn check_syntax(raw: &str, policy: UrlPolicy) -> Result<CheckedUrl, UrlError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().count() > MAX_URL_CHARS {
        return Err(UrlError::Malformed(format!(
            "must be 1 to {MAX_URL_CHARS} characters"
        )));
    }
    let parsed = url::Url::parse(raw).map_err(|e| UrlError::Malformed(e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let host = parsed
        .host()
        .ok_or_else(|| UrlError::Malformed("no host".into()))?;
    let loopback = match &host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    };
    if policy == UrlPolicy::AllowLoopback && loopback {
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(UrlError::NotHttps);
        }
        return Ok(CheckedUrl {
            url: parsed.to_string(),
            domain: None,
        });
    }
    if parsed.scheme() != "https" {
        return Err(UrlError::NotHttps);
    }
    if parsed.port().is_some_and(|p| p != 443) {
        return Err(UrlError::Port);
    }
    let domain = match host {
        url::Host::Ipv4(ip) if !is_public_v4(ip) => {
            return Err(UrlError::NotPublic(ip.to_string()))
        }
        url::Host::Ipv6(ip) if !is_public_v6(ip) => {
            return Err(UrlError::NotPublic(ip.to_string()))
        }
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => None,
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let private_suffix = [
                ".localhost",
                ".local",
                ".internal",
                ".localdomain",
                ".home.arpa",
            ]
            .iter()
            .any(|suffix| name.ends_with(suffix));
            if name == "localhost" || !name.contains('.') || private_suffix {
                return Err(UrlError::NotPublic(name));
            }
            Some(name)
        }
    };
    Ok(CheckedUrl {
        url: parsed.to_string(),
        domain,
    })
}

/// Checks what `checked`'s name resolves to: every address must be public.
pub async fn check_resolved(checked: &CheckedUrl, resolver: &dyn Resolve) -> Result<(), UrlError> {
    let Some(domain) = &checked.domain else {
        return Ok(());
    };
    for ip in resolver.resolve(domain).await {
        if !is_public(ip) {
            return Err(UrlError::NotPublic(format!("{domain} (resolves to {ip})")));
        }
    }
    Ok(())
}

/// Before a delivery: the URL checked again, and its name resolved to
/// public addresses only (an unresolvable name fails the attempt).
pub async fn check_before_delivery(
    raw: &str,
    policy: UrlPolicy,
    resolver: &dyn Resolve,
) -> Result<(), UrlError> {
    let checked = check_syntax(raw, policy)?;
    if let Some(domain) = &checked.domain {
        if resolver.resolve(domain).await.is_empty() {
            return Err(UrlError::Malformed(format!("{domain} does not resolve")));
        }
    }
    check_resolved(&checked, resolver).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> UrlError {
        check_syntax(url, UrlPolicy::PublicOnly).expect_err(url)
    }

    #[test]
    fn private_loopback_and_link_local_hosts_are_refused_however_spelt() {
        for url in [
            "https://169.254.169.254/latest/meta-data/",
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://10.0.0.8/hook",
            "https://172.16.3.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://printer.local/",
            "https://metadata.google.internal/",
            "https://intranet/",
        ] {
            assert!(
                matches!(refused(url), UrlError::NotPublic(_)),
                "{url}: {:?}",
                refused(url)
            );
        }
    }

    #[test]
    fn only_https_on_443_without_credentials_is_accepted() {
        assert_eq!(
            refused("http://merchant.example.com/hook"),
            UrlError::NotHttps
        );
        assert_eq!(refused("ftp://merchant.example.com/"), UrlError::NotHttps);
        assert_eq!(
            refused("https://merchant.example.com:8080/"),
            UrlError::Port
        );
        assert_eq!(refused("https://merchant.example.com:22/"), UrlError::Port);
        assert_eq!(
            refused("https://user:pw@merchant.example.com/"),
            UrlError::Credentials
        );
        assert!(matches!(refused("not a url"), UrlError::Malformed(_)));
        let ok = check_syntax(
            "https://Merchant.Example.com:443/hooks/cashback",
            UrlPolicy::PublicOnly,
        )
        .unwrap();
        assert_eq!(ok.url, "https://merchant.example.com/hooks/cashback");
        assert_eq!(ok.domain.as_deref(), Some("merchant.example.com"));
        assert!(check_syntax("https://93.184.215.14/", UrlPolicy::PublicOnly).is_ok());
    }

    #[test]
    fn loopback_is_allowed_only_by_the_local_policy() {
        assert!(check_syntax("http://127.0.0.1:9000/hook", UrlPolicy::AllowLoopback).is_ok());
        assert!(check_syntax("http://127.0.0.1:9000/hook", UrlPolicy::PublicOnly).is_err());
        // The local policy opens loopback only, not private networks.
        assert!(check_syntax("http://10.0.0.1/", UrlPolicy::AllowLoopback).is_err());
    }

    struct Table(Vec<IpAddr>);

    #[async_trait::async_trait]
    impl Resolve for Table {
        async fn resolve(&self, _host: &str) -> Vec<IpAddr> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused() {
        let checked = check_syntax("https://rebind.example.com/", UrlPolicy::PublicOnly).unwrap();
        let private = Table(vec![
            "93.184.215.14".parse().unwrap(),
            "10.1.2.3".parse().unwrap(),
        ]);
        assert!(matches!(
            check_resolved(&checked, &private).await,
            Err(UrlError::NotPublic(_))
        ));
        let public = Table(vec!["93.184.215.14".parse().unwrap()]);
        assert!(check_resolved(&checked, &public).await.is_ok());
        // Unresolvable: accepted at creation, refused before a delivery.
        assert!(check_resolved(&checked, &Table(vec![])).await.is_ok());
        assert!(
            check_before_delivery(&checked.url, UrlPolicy::PublicOnly, &Table(vec![]))
                .await
                .is_err()
        );
    }
}
