//! Where webhooks may be sent: `https` to public addresses, unless the operator allow-lists a
//! target (`events.allowed_targets`). The check runs on the addresses a name resolves to, at
//! registration and again at each attempt through the HTTP client's resolver, so a name that
//! later resolves to an internal address (DNS rebinding) is refused too. Redirects are not
//! followed (a redirect could point anywhere).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a valid absolute URL: {0}")]
    Url(String),
    #[error("the scheme must be https (plain http only for targets in events.allowed_targets)")]
    Scheme,
    #[error("credentials in the URL are not allowed; sign with hmac_secret_alias instead")]
    Credentials,
    #[error("{host} resolves to {addr}, a {class} address; refused unless allow-listed in events.allowed_targets")]
    Internal {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("{host} does not resolve: {message}")]
    Resolve { host: String, message: String },
}

/// The allow-list and the rules.
#[derive(Clone, Debug, Default)]
pub struct TargetPolicy {
    allowed: Arc<Vec<String>>,
}

impl TargetPolicy {
    /// `allowed`: `host`, `host:port` or `*.domain` patterns (case-insensitive).
    pub fn new(allowed: Vec<String>) -> TargetPolicy {
        TargetPolicy {
            allowed: Arc::new(
                allowed
                    .into_iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// Whether `host` (at `port`) is allow-listed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.allowed.iter().any(|pattern| {
            let (p_host, p_port) = match pattern.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse().ok()),
                _ => (pattern.as_str(), None),
            };
            let p_host = p_host.trim_start_matches('[').trim_end_matches(']');
            let host_ok = match p_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == p_host,
            };
            host_ok && p_port.is_none_or(|p: u16| p == port)
        })
    }

    /// Checks a URL as given at registration: its form, and every address its host resolves to.
    pub async fn check(&self, raw: &str) -> Result<Url, TargetError> {
        let url = Url::parse(raw.trim()).map_err(|e| TargetError::Url(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| TargetError::Url("the URL has no host".into()))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let allowed = self.allows(&host, port);
        match url.scheme() {
            "https" => {}
            "http" if allowed => {}
            "http" => return Err(TargetError::Scheme),
            _ => return Err(TargetError::Scheme),
        }
        if allowed {
            return Ok(url);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::time::timeout(
                std::time::Duration::from_secs(5),
                tokio::net::lookup_host((bare, port)),
            )
            .await
            .map_err(|_| TargetError::Resolve {
                host: host.clone(),
                message: "timed out".into(),
            })?
            .map_err(|e| TargetError::Resolve {
                host: host.clone(),
                message: e.to_string(),
            })?
            .map(|a| a.ip())
            .collect(),
        };
        for addr in addrs {
            if let Some(class) = internal_class(addr) {
                return Err(TargetError::Internal { host, addr, class });
            }
        }
        Ok(url)
    }

    /// Checks a URL at delivery, before the request: an IP literal does not go through the
    /// resolver, so it is checked here; names are checked by [`GuardedResolver`].
    pub(crate) fn check_literal(&self, url: &Url) -> Result<(), TargetError> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        if self.allows(host, port) {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(TargetError::Scheme);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(addr) = bare.parse::<IpAddr>() {
            if let Some(class) = internal_class(addr) {
                return Err(TargetError::Internal {
                    host: host.to_owned(),
                    addr,
                    class,
                });
            }
        }
        Ok(())
    }
}

/// The HTTP client's resolver for deliveries: resolves with the system resolver and drops
/// internal addresses unless the name is allow-listed; a name left with none fails to resolve.
pub(crate) struct GuardedResolver(pub TargetPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // The port is not known here: an allow-list entry's port was checked against the
            // URL at registration.
            let allowed = policy.allowed_any_port(&host);
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allowed || internal_class(a.ip()).is_none())
                .collect();
            if kept.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match addrs.first() {
                    Some(a) => Box::new(TargetError::Internal {
                        host,
                        addr: a.ip(),
                        class: internal_class(a.ip()).unwrap_or("internal"),
                    }),
                    None => Box::new(TargetError::Resolve {
                        host,
                        message: "no addresses".into(),
                    }),
                };
                return Err(err);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl TargetPolicy {
    /// Whether `host` is allow-listed at some port.
    fn allowed_any_port(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|p| {
            let h = p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h);
            match h.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == h || p == &host,
            }
        })
    }
}

/// What kind of non-public address this is, if it is one.
pub(crate) fn internal_class(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_class(v4);
            }
            v6_class(v6)
        }
    }
}

fn v4_class(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(if a.is_loopback() {
        "loopback"
    } else if a.is_private() {
        "private"
    } else if a.is_link_local() {
        "link-local"
    } else if a.is_unspecified() || o[0] == 0 {
        "unspecified"
    } else if a.is_broadcast() || a.is_multicast() {
        "broadcast or multicast"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (carrier-grade NAT)"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol"
    } else if o[0] >= 240 {
        "reserved"
    } else {
        return None;
    })
}

fn v6_class(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    Some(if a.is_loopback() {
        "loopback"
    } else if a.is_unspecified() {
        "unspecified"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if a.is_multicast() {
        "multicast"
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, internal ones included.
        "NAT64"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for (a, internal) in [
            ("127.0.0.1", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("2606:4700::1111", false),
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(internal_class(ip).is_some(), internal, "{a}");
        }
    }

    #[test]
    fn allow_list() {
        let p = TargetPolicy::new(vec![
            "127.0.0.1:8088".into(),
            "hooks.internal".into(),
            "*.corp.example".into(),
            "[::1]:9000".into(),
        ]);
        assert!(p.allows("127.0.0.1", 8088));
        assert!(!p.allows("127.0.0.1", 8089));
        assert!(p.allows("HOOKS.internal", 1));
        assert!(p.allows("a.b.corp.example", 443));
        assert!(!p.allows("corp.example", 443));
        assert!(p.allows("[::1]", 9000));
        assert!(!p.allows("::1", 9001));
    }

    #[tokio::test]
    async fn registration_checks() {
        let p = TargetPolicy::new(vec!["127.0.0.1:8088".into()]);
        assert_eq!(
            p.check("http://example.com/h").await.unwrap_err(),
            TargetError::Scheme
        );
        assert!(matches!(
            p.check("https://127.0.0.1/h").await.unwrap_err(),
            TargetError::Internal {
                class: "loopback",
                ..
            }
        ));
        assert!(matches!(
            p.check("https://169.254.169.254/latest/meta-data")
                .await
                .unwrap_err(),
            TargetError::Internal {
                class: "link-local",
                ..
            }
        ));
        assert!(matches!(
            p.check("https://localhost:8443/h").await.unwrap_err(),
            TargetError::Internal { .. }
        ));
        assert!(matches!(
            p.check("https://[::ffff:10.0.0.1]/h").await.unwrap_err(),
            TargetError::Internal { .. }
        ));
        assert_eq!(
            p.check("https://u:p@example.com/").await.unwrap_err(),
            TargetError::Credentials
        );
        assert!(p.check("http://127.0.0.1:8088/h").await.is_ok());
        assert!(matches!(
            p.check("not a url").await.unwrap_err(),
            TargetError::Url(_)
        ));
    }

    #[tokio::test]
    async fn the_delivery_resolver_drops_internal_addresses() {
        use reqwest::dns::Resolve;
        let strict = GuardedResolver(TargetPolicy::default());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = strict.resolve(name).await.err().expect("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
        let allowed = GuardedResolver(TargetPolicy::new(vec!["localhost:8088".into()]));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = allowed.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
