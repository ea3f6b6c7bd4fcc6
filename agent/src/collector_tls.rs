//! How the agent trusts its collector and proves who it is over TLS, and what it says when a
//! handshake fails.
//!
//! - `https://` collectors are always verified: by the system's roots (the platform verifier),
//!   or, with `ca = "path"`, by that PEM bundle *instead of* the system's roots. A private CA
//!   is the usual reason to set `ca`, and then a certificate from any public CA for the
//!   collector's name is not what the operator meant to trust. There is no setting that turns
//!   verification off.
//! - `cert` and `key` (PEM) are the agent's client certificate, for a collector with
//!   `[server.tls] client_ca`.
//! - The collector's built-in agent gets a rustls configuration from the collector itself
//!   ([`CollectorTls::Preconfigured`]), which trusts exactly the certificate it serves.
//!
//! A failed handshake's reason is named in the words an operator looks for
//! ([`handshake_reason`]): `certificate expired`, `name mismatch`, `unknown issuer`, then
//! rustls's own text.

use std::error::Error;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The largest CA bundle, certificate or key file read.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// How the agent's client does TLS with its collectors.
#[derive(Debug, Clone, Default)]
pub enum CollectorTls {
    /// The system's roots, no client certificate.
    #[default]
    System,
    /// From the agent's configuration: a CA bundle trusted instead of the system's roots,
    /// and a client certificate with its key.
    Files {
        /// `ca`: the PEM bundle of CAs to trust; none: the system's roots.
        ca: Option<PathBuf>,
        /// `cert` and `key`: the client certificate chain and its key.
        identity: Option<(PathBuf, PathBuf)>,
    },
    /// A configuration made by the collector for its built-in agent.
    Preconfigured(Box<rustls::ClientConfig>),
}

/// Why the agent's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what its key needs.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let read = |source| TlsFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(invalid(
            path,
            format!("larger than {MAX_PEM_BYTES} bytes: not a PEM file"),
        ));
    }
    Ok(bytes)
}

fn invalid(path: &Path, reason: impl Into<String>) -> TlsFileError {
    TlsFileError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            path,
            "holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----`)",
        ));
    }
    Ok(certs)
}

impl CollectorTls {
    /// `builder` set up to do TLS this way; the files are read now.
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsFileError> {
        match self {
            CollectorTls::System => Ok(builder),
            CollectorTls::Preconfigured(config) => {
                Ok(builder.tls_backend_preconfigured(config.as_ref().clone()))
            }
            CollectorTls::Files { ca, identity } => {
                let mut builder = builder;
                if let Some(path) = ca {
                    let bytes = read_bounded(path)?;
                    let roots = certificates(path, &bytes)?
                        .iter()
                        .map(|der| {
                            reqwest::Certificate::from_der(der)
                                .map_err(|e| invalid(path, e.to_string()))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    builder = builder.tls_certs_only(roots);
                }
                if let Some((cert, key)) = identity {
                    builder = builder.identity(client_identity(cert, key)?);
                }
                Ok(builder)
            }
        }
    }
}

/// The client certificate of `cert` with the key of `key`, checked to belong together.
fn client_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, TlsFileError> {
    let cert_pem = read_bounded(cert)?;
    let chain = certificates(cert, &cert_pem)?;
    let key_pem = read_bounded(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            key,
            format!(
                "no usable private key (expected PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE \
                 KEY` or `BEGIN EC PRIVATE KEY`): {e}"
            ),
        )
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, private, &provider).map_err(|e| {
        invalid(
            key,
            format!("does not fit the certificate in {}: {e}", cert.display()),
        )
    })?;
    let mut both = cert_pem;
    both.push(b'\n');
    both.extend_from_slice(&key_pem);
    reqwest::Identity::from_pem(&both).map_err(|e| invalid(cert, e.to_string()))
}

/// The rustls error somewhere in `e`'s chain: itself, a source, or inside an `io::Error`
/// (whose `source()` skips the error it wraps; reqwest nests one in another).
fn rustls_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// What went wrong in a TLS handshake, in the words an operator searches the log for; `None`
/// when `e` is not a TLS failure.
pub fn handshake_reason(e: &(dyn Error + 'static)) -> Option<&'static str> {
    use rustls::{AlertDescription as A, CertificateError as C};
    Some(match rustls_error(e)? {
        rustls::Error::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet",
            C::NotValidForName | C::NotValidForNameContext { .. } => "name mismatch",
            C::UnknownIssuer => "unknown issuer",
            C::Revoked => "certificate revoked",
            _ => "invalid certificate",
        },
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::AccessDenied,
        ) => "the collector refused the client certificate",
        _ => "TLS handshake failed",
    })
}

/// Whether `url` would carry the agent's token in clear to another machine: `http://` to a
/// host that is not loopback (`localhost`, 127.0.0.0/8, ::1).
pub fn plaintext_off_host(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    if u.scheme() != "http" {
        return false;
    }
    match u.host() {
        Some(url::Host::Domain(d)) => !d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_flagged_only_off_the_host() {
        for url in [
            "http://collector.example:7700",
            "http://10.0.0.5:7700",
            "http://[2001:db8::1]:7700",
            "http://0.0.0.0:7700",
        ] {
            assert!(plaintext_off_host(url), "{url}");
        }
        for url in [
            "https://collector.example",
            "http://127.0.0.1:7700",
            "http://127.8.9.1:7700",
            "http://localhost:7700",
            "http://LOCALHOST",
            "http://[::1]:7700",
        ] {
            assert!(!plaintext_off_host(url), "{url}");
        }
    }

    #[test]
    fn handshake_reasons_are_named_through_io_errors() {
        use rustls::CertificateError as C;
        // As reqwest has them: an io::Error in an io::Error.
        let wrapped = |c: C| {
            let inner = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(c),
            );
            handshake_reason(&std::io::Error::other(inner))
        };
        assert_eq!(wrapped(C::Expired), Some("certificate expired"));
        assert_eq!(wrapped(C::NotValidForName), Some("name mismatch"));
        assert_eq!(wrapped(C::UnknownIssuer), Some("unknown issuer"));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(handshake_reason(&plain), None);
    }

    #[test]
    fn bad_files_are_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let tls = CollectorTls::Files {
            ca: Some(empty.clone()),
            identity: None,
        };
        let err = tls
            .apply(reqwest::Client::builder())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ca.pem: holds no certificate"), "{err}");
        let missing = CollectorTls::Files {
            ca: Some(dir.path().join("nope.pem")),
            identity: None,
        };
        let err = missing
            .apply(reqwest::Client::builder())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read ") && err.contains("nope.pem"),
            "{err}"
        );
        // A wrong path to something huge: refused after the bound, not read to the end.
        let big = dir.path().join("big.pem");
        std::fs::write(&big, "x".repeat(MAX_PEM_BYTES as usize + 1)).unwrap();
        let too_large = CollectorTls::Files {
            ca: None,
            identity: Some((big.clone(), big)),
        };
        let err = too_large
            .apply(reqwest::Client::builder())
            .unwrap_err()
            .to_string();
        assert!(err.contains("big.pem: larger than 1048576 bytes"), "{err}");
    }
}
