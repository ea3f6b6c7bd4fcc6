//! `[server.tls]`: the collector's certificate and key, and the CA its agents' client
//! certificates must come from. Only the paths live here: the collector reads and checks the
//! files (at start, on SIGHUP and when they change on disk), since reading them is its job
//! and the configuration crate parses no PEM.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::document::{Document, KeyPath};

/// `[server.tls]`: when set, the collector serves HTTPS, and only HTTPS, on `[server] listen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// The certificate chain, PEM: the server's certificate first, then its intermediates
    /// (certbot's `fullchain.pem`). Required. Re-read on SIGHUP and when it changes on disk.
    pub cert: PathBuf,
    /// The private key of `cert`, PEM: PKCS#8 (`BEGIN PRIVATE KEY`), RSA (`BEGIN RSA PRIVATE
    /// KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`); it may be the same file as `cert`. Required.
    /// Re-read with `cert`.
    pub key: PathBuf,
    /// CAs (PEM bundle) that sign agents' client certificates. When set, every agent request
    /// needs a client certificate from one of them that names the agent its token
    /// authenticates (a DNS subjectAltName equal to the agent's name, or the common name when
    /// the certificate has no DNS names). Other routes take connections without one.
    /// Default none: no client certificates are asked for. Read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

/// Paths that are set and not empty.
pub(super) fn validate_tls(doc: &mut Document<'_>, tls: &ServerTlsConfig) {
    let at = KeyPath::key("server").child("tls");
    let paths = [
        ("cert", Some(&tls.cert)),
        ("key", Some(&tls.key)),
        ("client_ca", tls.client_ca.as_ref()),
    ];
    for (key, path) in paths {
        if path.is_some_and(|p| p.as_os_str().is_empty()) {
            doc.error_at(&at.child(key), "must be a file's path, not empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::CollectorConfig;

    fn parse(text: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::parse(Path::new("c.toml"), text, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn tls_is_off_by_default_and_read_from_its_table() {
        assert_eq!(parse("").unwrap().server.tls, None);
        let tls = parse(
            "[server]\nlisten = \"0.0.0.0:7700\"\n[server.tls]\ncert = \"/etc/l/fullchain.pem\"\n\
             key = \"/etc/l/privkey.pem\"\nclient_ca = \"/etc/l/agents-ca.pem\"\n",
        )
        .unwrap()
        .server
        .tls
        .unwrap();
        assert_eq!(tls.cert, Path::new("/etc/l/fullchain.pem"));
        assert_eq!(tls.key, Path::new("/etc/l/privkey.pem"));
        assert_eq!(
            tls.client_ca.as_deref(),
            Some(Path::new("/etc/l/agents-ca.pem"))
        );
        // The inline form is the same table.
        let inline = parse("[server]\ntls = { cert = \"c.pem\", key = \"c.pem\" }\n").unwrap();
        let tls = inline.server.tls.unwrap();
        assert_eq!(
            (tls.cert.as_path(), tls.client_ca),
            (Path::new("c.pem"), None)
        );
    }

    #[test]
    fn tls_needs_both_paths_and_refuses_empty_ones_and_unknown_keys() {
        let errs = parse("[server.tls]\ncert = \"c.pem\"\n").unwrap_err();
        assert!(errs.contains("missing field `key`"), "{errs}");
        let errs =
            parse("[server.tls]\ncert = \"\"\nkey = \"k.pem\"\nclient_ca = \"\"\n").unwrap_err();
        for want in [
            "c.toml:2:8: server.tls.cert: must be a file's path, not empty",
            "server.tls.client_ca: must be a file's path, not empty",
        ] {
            assert!(errs.contains(want), "{want} not in {errs}");
        }
        let errs = parse("[server.tls]\ncert = \"c\"\nkey = \"k\"\nverify = false\n").unwrap_err();
        assert!(errs.contains("unknown field `verify`"), "{errs}");
    }
}
