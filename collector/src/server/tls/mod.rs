//! HTTPS on `[server] listen` (`[server.tls]`), with certificates that renew without a restart.
//!
//! - The served key pair sits behind a [`ResolvesServerCert`] ([`Served`]) that each new
//!   handshake asks; a reload swaps it, so open connections keep the session they have and new
//!   handshakes get the new certificate. Nothing is dropped.
//! - A reload ([`Tls::reload`]) reads `cert` and `key` again ([`files`]); one that fails (a half
//!   written file, a key that is not the certificate's) keeps the old pair, logs why at warn
//!   and counts `lookout_tls_certificate_reload_failures_total`. Reloads come from SIGHUP and
//!   from the files' folders changing on disk ([`watch`]).
//! - With `client_ca`, every handshake asks for a client certificate and verifies one that is
//!   sent against those CAs, but one that is not sent is let through
//!   (`allow_unauthenticated`): the status page and the admin pages stay reachable from a
//!   browser. Agent requests are where a certificate is required: the accept loop hands the
//!   names of the verified certificate ([`AgentCertificate`]) to every request of the
//!   connection, and [`crate::auth::AgentAuth`] refuses an agent whose certificate is missing or names
//!   another agent.
//! - The built-in local agent reaches its own collector over loopback HTTPS, trusting exactly
//!   the certificate being served ([`Tls::loopback_client`]): the served certificate is
//!   usually for a public name, not for 127.0.0.1.

pub mod files;
pub mod watch;

use std::sync::{Arc, RwLock};

use lookout_config::ServerTlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore};
use tokio_rustls::TlsAcceptor;

pub use files::{KeyPair, TlsError};

use crate::auth::certificate::AgentCertificate;

use crate::telemetry::Metrics;

/// The key pair being served; handshakes read it, reloads replace it.
#[derive(Debug)]
pub struct Served {
    // std's RwLock: held for a pointer copy, never across an await.
    current: RwLock<Arc<KeyPair>>,
}

impl Served {
    fn new(pair: KeyPair) -> Self {
        Self {
            current: RwLock::new(Arc::new(pair)),
        }
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<KeyPair> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, pair: KeyPair) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

/// The collector's TLS: the files, the pair being served, and the acceptor over it.
#[derive(Debug)]
pub struct Tls {
    files: ServerTlsConfig,
    provider: Arc<CryptoProvider>,
    served: Arc<Served>,
    config: Arc<rustls::ServerConfig>,
    client_ca: bool,
    /// Set once the collector's metrics exist ([`Tls::count_in`]).
    metrics: std::sync::OnceLock<Arc<Metrics>>,
}

/// The one crypto provider: aws-lc-rs, as everywhere in Lookout.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads `[server.tls]`'s files as they are at start: an error here stops the start.
pub fn load(files: &ServerTlsConfig) -> Result<(KeyPair, Option<RootCertStore>), TlsError> {
    let pair = files::load_key_pair(&files.cert, &files.key, &provider())?;
    let roots = match &files.client_ca {
        None => None,
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in files::read_certificates(path)? {
                roots.add(ca).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            Some(roots)
        }
    };
    Ok((pair, roots))
}

impl Tls {
    /// Serves `pair` (from [`load`]), asking for client certificates from `client_roots` if
    /// given.
    pub fn new(
        files: ServerTlsConfig,
        pair: KeyPair,
        client_roots: Option<RootCertStore>,
    ) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let served = Arc::new(Served::new(pair));
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::ClientCa {
                path: files.cert.clone(),
                reason: e.to_string(),
            })?;
        let client_ca = client_roots.is_some();
        let builder = match (client_roots, &files.client_ca) {
            (Some(roots), Some(path)) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::ClientCa {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(served.clone());
        // The server speaks HTTP/1.1 only (server/mod.rs): a browser that offers h2 as well
        // is answered in HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Self {
            files,
            provider,
            served,
            config: Arc::new(config),
            client_ca,
            metrics: std::sync::OnceLock::new(),
        }))
    }

    /// Counts reloads and handshakes in `metrics` from now on, and shows the served
    /// certificate's expiry there.
    pub fn count_in(&self, metrics: Arc<Metrics>) {
        metrics.tls_serving(self.current().not_after);
        let _ = self.metrics.set(metrics);
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.metrics.get().map(Arc::as_ref)
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<KeyPair> {
        self.served.current()
    }

    /// The client certificate's names of an accepted connection, when `client_ca` is set.
    pub fn agent_certificate(&self, conn: &rustls::ServerConnection) -> Option<AgentCertificate> {
        if !self.client_ca {
            return None;
        }
        let names = conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| Arc::from(files::client_names(leaf)));
        Some(AgentCertificate(names))
    }

    /// Counts a handshake that failed.
    pub fn handshake_failed(&self) {
        if let Some(m) = self.metrics() {
            m.tls_handshake_failed();
        }
    }

    /// Reads the files again and serves them if they are good and new; otherwise the current
    /// pair stays. `why`: what asked (`SIGHUP`, `file change`), for the log.
    pub fn reload(&self, why: &str) {
        let cert = self.files.cert.display();
        match files::load_key_pair(&self.files.cert, &self.files.key, &self.provider) {
            Ok(pair) if pair.same_chain(&self.current()) => {
                tracing::debug!(%cert, why, "TLS certificate unchanged");
            }
            Ok(pair) => {
                tracing::info!(
                    %cert,
                    why,
                    serial = %pair.serial,
                    not_after = pair.not_after,
                    "TLS certificate reloaded; new connections get it"
                );
                if let Some(m) = self.metrics() {
                    m.tls_serving(pair.not_after);
                }
                self.served.replace(pair);
            }
            Err(e) => {
                if let Some(m) = self.metrics() {
                    m.tls_reload_failed();
                }
                tracing::warn!(
                    %cert,
                    why,
                    error = %e,
                    serial = %self.current().serial,
                    "TLS certificate not reloaded; the current one is still served"
                );
            }
        }
    }

    /// A client configuration that trusts exactly the certificate being served, at any name:
    /// for the built-in local agent, which reaches this collector over loopback.
    pub fn loopback_client(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        let verifier = Arc::new(ServedOnly {
            served: self.served.clone(),
            provider: self.provider.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Trusts the certificate this collector serves, and nothing else: the local agent's
/// verifier. The handshake's signatures are checked as any verifier checks them, so only the
/// holder of the served key passes.
#[derive(Debug)]
struct ServedOnly {
    served: Arc<Served>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServedOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let current = self.served.current();
        match current.certified.end_entity_cert() {
            Ok(served) if served.as_ref() == end_entity.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
