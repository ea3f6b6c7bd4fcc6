//! The values of the `grpc`, `websocket` and `domain` checks: their targets' forms, checked at
//! load with the key named and the expected form said, and parsed the same way by the agent.

use crate::check::CheckConfig;

/// Where the `domain` check reads the RDAP bootstrap registry by default: IANA's (RFC 9224).
pub const DEFAULT_RDAP_BOOTSTRAP: &str = "https://data.iana.org/rdap/dns.json";

/// Longest `service` name of a `grpc` check, in bytes.
const MAX_SERVICE: usize = 1024;

/// A `grpc` check's target: host, port and whether to speak TLS (`grpcs://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcTarget {
    /// The host, as written (an IPv6 address without its brackets).
    pub host: String,
    /// The port; `grpcs://` defaults to 443, `grpc://` has no default.
    pub port: u16,
    /// True for `grpcs://`.
    pub tls: bool,
}

/// Parses `grpc://host:port` or `grpcs://host[:port]`; the error says what was expected and
/// never repeats the URL (it may hold a password).
pub fn grpc_target(url: &str) -> Result<GrpcTarget, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a valid URL: {e}"))?;
    let tls = match parsed.scheme() {
        "grpc" => false,
        "grpcs" => true,
        other => {
            return Err(format!(
                "scheme {other:?} is not supported: expected grpc (plain) or grpcs (TLS)"
            ));
        }
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err("has no host: expected grpc://host:port".to_string()),
    };
    let port = match (parsed.port(), tls) {
        (Some(p), _) if p != 0 => p,
        (None, true) => 443,
        _ => {
            return Err("has no port: expected grpc://host:port (grpcs:// defaults to 443)".into());
        }
    };
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(
            "has a path or a query: expected grpc://host:port; the service goes in `service`"
                .into(),
        );
    }
    Ok(GrpcTarget { host, port, tls })
}

/// A domain name in the form RDAP servers are asked with: lower case, IDNs in their ASCII
/// (punycode) form, no final dot; at least two labels, each 1 to 63 letters, digits or
/// hyphens, not starting or ending with a hyphen, 253 characters at most.
pub fn domain_ascii(name: &str) -> Result<String, String> {
    let expected = "expected a registered domain name such as \"example.com\"";
    let trimmed = name.trim().trim_end_matches('.');
    let ascii = match url::Host::parse(trimmed) {
        Ok(url::Host::Domain(d)) => d.to_ascii_lowercase(),
        Ok(_) => return Err(format!("{name:?} is an IP address: {expected}")),
        Err(_) => return Err(format!("{name:?}: {expected}")),
    };
    let labels: Vec<&str> = ascii.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(format!("{name:?}: {expected}"));
    }
    Ok(ascii)
}

impl CheckConfig {
    pub(crate) fn grpc_problems(&self, out: &mut Vec<(&'static str, String)>) {
        match self.url.as_deref() {
            None => out.push((
                "url",
                "is required for type \"grpc\": grpc://host:port, or grpcs://host:port for TLS"
                    .to_string(),
            )),
            Some(u) => {
                if let Err(e) = grpc_target(u) {
                    out.push(("url", e));
                }
            }
        }
        if let Some(s) = &self.service
            && (s.len() > MAX_SERVICE || s.chars().any(char::is_control))
        {
            out.push((
                "service",
                format!(
                    "expected a service name of at most {MAX_SERVICE} bytes, without control characters (\"grpc.health.v1.Health\", \"\" for the whole server)"
                ),
            ));
        }
    }

    pub(crate) fn domain_problems(&self, out: &mut Vec<(&'static str, String)>) {
        match self.domain.as_deref() {
            None => out.push((
                "domain",
                "is required for type \"domain\": the registered name, e.g. \"example.com\""
                    .to_string(),
            )),
            Some(d) => {
                if let Err(e) = domain_ascii(d) {
                    out.push(("domain", e));
                }
            }
        }
        if let Some(b) = &self.rdap_bootstrap {
            let ok = match url::Url::parse(b) {
                Ok(u) => matches!(u.scheme(), "http" | "https") && u.host().is_some(),
                Err(_) => std::path::Path::new(b).is_absolute(),
            };
            if !ok {
                out.push((
                    "rdap_bootstrap",
                    format!(
                        "{b:?}: expected an http(s) URL or an absolute file path of an RDAP bootstrap file (RFC 9224), e.g. \"{DEFAULT_RDAP_BOOTSTRAP}\""
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: serde_json::Value) -> Vec<(&'static str, String)> {
        serde_json::from_value::<CheckConfig>(v).unwrap().problems()
    }

    #[test]
    fn grpc_takes_a_grpc_or_grpcs_url_and_says_what_is_wrong() {
        assert_eq!(
            grpc_target("grpc://127.0.0.1:50051"),
            Ok(GrpcTarget {
                host: "127.0.0.1".into(),
                port: 50051,
                tls: false
            })
        );
        assert_eq!(
            grpc_target("grpcs://api.example.com"),
            Ok(GrpcTarget {
                host: "api.example.com".into(),
                port: 443,
                tls: true
            })
        );
        assert_eq!(grpc_target("grpc://[::1]:9").unwrap().host, "::1");
        for (bad, says) in [
            ("grpc://db.internal", "has no port"),
            ("http://x:1", "scheme \"http\" is not supported"),
            (
                "grpc://x:1/grpc.health.v1.Health",
                "the service goes in `service`",
            ),
            ("grpc://:pw@[bad", "is not a valid URL"),
        ] {
            let e = grpc_target(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
        assert!(
            problems(json!({"name": "g", "type": "grpc", "url": "grpc://x:1", "service": "a.B"}))
                .is_empty()
        );
        let p = problems(json!({"name": "g", "type": "grpc", "service": "a\nb"}));
        let keys: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["url", "service"]);
        assert!(
            p[0].1.contains("is required for type \"grpc\""),
            "{}",
            p[0].1
        );
    }

    #[test]
    fn websocket_takes_a_ws_or_wss_url() {
        assert!(
            problems(json!({"name": "w", "type": "websocket", "url": "wss://x/feed", "send": "ping", "headers": {"Authorization": "t"}}))
                .is_empty()
        );
        let p = problems(json!({"name": "w", "type": "websocket", "url": "http://x/"}));
        assert_eq!(p[0].0, "url");
        assert_eq!(
            p[0].1,
            "scheme \"http\" is not supported: expected ws or wss"
        );
        let p = problems(json!({"name": "w", "type": "websocket"}));
        assert_eq!(
            p[0],
            ("url", "is required for type \"websocket\"".to_string())
        );
    }

    #[test]
    fn domain_takes_a_registered_name_and_a_bootstrap_url_or_path() {
        assert_eq!(domain_ascii("Example.COM."), Ok("example.com".into()));
        assert_eq!(domain_ascii("bücher.de"), Ok("xn--bcher-kva.de".into()));
        for bad in [
            "com",
            "",
            "10.0.0.1",
            "exa mple.com",
            "-x.com",
            "a..com",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(domain_ascii(bad).is_err(), "{bad:?}");
        }
        assert!(
            problems(json!({"name": "d", "type": "domain", "domain": "example.com", "rdap_bootstrap": "/etc/lookout/dns.json"}))
                .is_empty()
        );
        let p = problems(
            json!({"name": "d", "type": "domain", "domain": "localhost", "rdap_bootstrap": "dns.json"}),
        );
        let keys: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["domain", "rdap_bootstrap"]);
        assert!(
            p[1].1.contains("an http(s) URL or an absolute file path"),
            "{}",
            p[1].1
        );
        let p = problems(json!({"name": "d", "type": "domain"}));
        assert!(
            p[0].1.contains("is required for type \"domain\""),
            "{}",
            p[0].1
        );
    }

    #[test]
    fn the_new_keys_belong_to_their_types_only() {
        let p = problems(
            json!({"name": "h", "type": "http", "url": "http://x/", "service": "a", "domain": "x.com", "rdap_bootstrap": "/x"}),
        );
        let keys: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["service", "domain", "rdap_bootstrap"]);
        assert_eq!(p[0].1, "does not apply to type \"http\": it is for grpc");
        let p = problems(
            json!({"name": "d", "type": "domain", "domain": "x.com", "url": "http://x/", "send": "x"}),
        );
        let keys: Vec<_> = p.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["url", "send"]);
    }

    #[test]
    fn a_websocket_message_counts_as_a_secret() {
        let c: CheckConfig =
            serde_json::from_value(json!({"name": "w", "type": "websocket", "url": "ws://x/"}))
                .unwrap();
        assert!(!c.has_secrets());
        let c: CheckConfig = serde_json::from_value(
            json!({"name": "w", "type": "websocket", "url": "ws://x/", "send": "{\"auth\":\"t\"}"}),
        )
        .unwrap();
        assert!(c.has_secrets());
    }

    #[test]
    fn the_example_loads_as_written() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/checks-more.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = crate::CollectorConfig::parse(&path, &text, &|_| None).unwrap();
        let kinds: Vec<_> = c.checks.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["grpc", "websocket", "domain"]);
        assert_eq!(c.checks[0].service.as_deref(), Some("orders.v1.Orders"));
        assert!(
            grpc_target(c.checks[0].url.as_deref().unwrap())
                .unwrap()
                .tls
        );
        assert_eq!(c.checks[1].send.as_deref(), Some(r#"{"op": "ping"}"#));
        assert_eq!(c.checks[2].domain.as_deref(), Some("example.com"));
        assert_eq!(
            c.checks[2].conditions[0].to_string(),
            "[DOMAIN_EXPIRATION] > 30d"
        );
    }
}
