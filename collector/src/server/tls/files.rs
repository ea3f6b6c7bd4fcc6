//! Reading `[server.tls]`'s files: a PEM certificate chain and its key into a key pair rustls
//! serves, and a PEM bundle of CAs. Every file is read to at most [`MAX_PEM_BYTES`], and every
//! way it can be wrong (missing, too large, no certificate, no key, a key that is not the
//! certificate's) is a [`TlsError`] that names the file and the reason, for the start-up error
//! and for the warning of a reload that keeps the old pair.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;

/// The largest certificate, key or CA file read: a chain of a few certificates is a few KiB,
/// a bundle of every public CA about 200 KiB.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why a TLS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_PEM_BYTES`].
    #[error("{} is larger than {MAX_PEM_BYTES} bytes: not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A PEM section of the file is malformed.
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no `BEGIN CERTIFICATE` section.
    #[error("{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key.
    #[error(
        "{} holds no private key (expected PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or \
         `BEGIN EC PRIVATE KEY`)", path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The key cannot be used, or is not the certificate's.
    #[error("the key in {} does not fit the certificate in {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// A certificate is not a readable X.509 certificate.
    #[error("{}: the first certificate is not readable X.509: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA bundle cannot verify client certificates.
    #[error("{}: cannot verify client certificates with it: {reason}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The files cannot be watched for changes.
    #[error("cannot watch {} for changes: {source}", path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: notify::Error,
    },
}

/// A key pair read from the files, with what is logged and measured of its certificate.
#[derive(Debug)]
pub struct KeyPair {
    /// The chain and key, as rustls serves them.
    pub certified: Arc<CertifiedKey>,
    /// The certificate's serial number, hex.
    pub serial: String,
    /// The certificate's notAfter, in seconds since the Unix epoch.
    pub not_after: i64,
}

impl KeyPair {
    /// The same certificate chain as `other` (a reload that found nothing new).
    pub fn same_chain(&self, other: &KeyPair) -> bool {
        self.certified.cert == other.certified.cert
    }
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Every certificate of a PEM file, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The chain of `cert` and the key of `key`, checked to belong together.
pub fn load_key_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<KeyPair, TlsError> {
    let chain = read_certificates(cert)?;
    let key_bytes = read_bounded(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_path_buf(),
        },
        source => TlsError::Pem {
            path: key.to_path_buf(),
            source,
        },
    })?;
    let (serial, not_after) = leaf_facts(&chain[0]).map_err(|reason| TlsError::BadCertificate {
        path: cert.to_path_buf(),
        reason,
    })?;
    let certified =
        CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(KeyPair {
        certified: Arc::new(certified),
        serial,
        not_after,
    })
}

/// The serial number (hex) and notAfter (Unix seconds) of a certificate.
fn leaf_facts(der: &CertificateDer<'_>) -> Result<(String, i64), String> {
    let c = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
    let tbs = &c.tbs_certificate;
    let serial = tbs
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let not_after =
        i64::try_from(tbs.validity.not_after.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    Ok((serial, not_after))
}

/// The names a client certificate gives its holder: its DNS subjectAltNames, or, when it has
/// none, its subject's common name (the older convention). Empty when it has neither or is
/// unreadable (rustls has verified it already; an unreadable one names nobody).
pub fn client_names(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(c) = x509_cert::Certificate::from_der(der.as_ref()) else {
        return Vec::new();
    };
    let tbs = &c.tbs_certificate;
    let mut names = Vec::new();
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id == const_oid_san()
            && let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes())
        {
            for n in san.0 {
                if let GeneralName::DnsName(dns) = n {
                    names.push(dns.as_str().to_string());
                }
            }
        }
    }
    if names.is_empty() {
        for rdn in tbs.subject.0.iter() {
            for atv in rdn.0.iter() {
                if atv.oid == x509_cert::der::oid::db::rfc4519::CN
                    && let Some(cn) = directory_string(&atv.value)
                {
                    names.push(cn);
                }
            }
        }
    }
    names
}

fn const_oid_san() -> x509_cert::der::oid::ObjectIdentifier {
    x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME
}

/// A common name's text: UTF8String, PrintableString or IA5String.
fn directory_string(value: &x509_cert::der::Any) -> Option<String> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    value
        .decode_as::<Utf8StringRef<'_>>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| {
            value
                .decode_as::<PrintableStringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|_| {
            value
                .decode_as::<Ia5StringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: &[&str], cn: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn a_client_is_named_by_its_dns_names_and_by_its_common_name_only_without_them() {
        let (c, _) = cert(&["a1", "A1.agents.example"], "someone-else");
        assert_eq!(client_names(c.der()), ["a1", "A1.agents.example"]);
        let (c, _) = cert(&[], "a2");
        assert_eq!(client_names(c.der()), ["a2"]);
        // An IP address is no name of an agent.
        let (c, _) = cert(&["10.0.0.1"], "a3");
        assert_eq!(client_names(c.der()), ["a3"]);
        assert!(client_names(&CertificateDer::from(vec![1, 2, 3])).is_empty());
    }

    #[test]
    fn a_pair_is_read_with_its_facts_and_refused_with_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let (c, k) = cert(&["localhost"], "localhost");
        let (_, other) = cert(&["localhost"], "localhost");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert_path = write("c.pem", &c.pem());
        let key_path = write("k.pem", &k.serialize_pem());
        let pair = load_key_pair(&cert_path, &key_path, &provider).unwrap();
        assert_eq!(pair.not_after, 67_090_118_400); // rcgen's default: 4096-01-01
        assert!(!pair.serial.is_empty());
        // The key and the certificate in one file.
        let both = write("both.pem", &format!("{}{}", c.pem(), k.serialize_pem()));
        assert!(load_key_pair(&both, &both, &provider).is_ok());

        let other_key = write("other.pem", &other.serialize_pem());
        let empty = write("empty.pem", "");
        let big = write("big.pem", &"x".repeat(MAX_PEM_BYTES as usize + 1));
        let cases = [
            (&cert_path, &other_key, "does not fit the certificate"),
            (&empty, &key_path, "empty.pem holds no certificate"),
            (&cert_path, &cert_path, "c.pem holds no private key"),
            (&big, &key_path, "big.pem is larger than 1048576 bytes"),
        ];
        for (c, k, want) in cases {
            let err = load_key_pair(c, k, &provider).unwrap_err().to_string();
            assert!(err.contains(want), "{want} not in {err}");
        }
    }
}
