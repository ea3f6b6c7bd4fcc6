//! What several probes share: resolving a host in the system's order, connecting to the first
//! address that answers, and a TLS handshake that reads the chain whether or not it verifies,
//! each phase timed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lookout_config::IpVersion;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Resolves `host` (an IP address is taken as it is) to the addresses of the wanted family, in
/// the system resolver's order. Returns the addresses and the time the lookup took (`None` for an
/// IP address, which needs none).
pub async fn resolve(
    host: &str,
    port: u16,
    family: IpVersion,
) -> Result<(Vec<SocketAddr>, Option<f64>), String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let wanted = match family {
            IpVersion::Any => true,
            IpVersion::V4 => ip.is_ipv4(),
            IpVersion::V6 => ip.is_ipv6(),
        };
        if !wanted {
            return Err(format!(
                "{ip} is not an IPv{} address",
                family_digit(family)
            ));
        }
        return Ok((vec![SocketAddr::new(ip, port)], None));
    }
    let started = Instant::now();
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("resolving {bare}: {e}"))?
        .filter(|a| match family {
            IpVersion::Any => true,
            IpVersion::V4 => a.is_ipv4(),
            IpVersion::V6 => a.is_ipv6(),
        })
        .collect();
    let took = ms_since(started);
    if found.is_empty() {
        return Err(format!(
            "resolving {bare}: no IPv{} address",
            family_digit(family)
        ));
    }
    Ok((found, Some(took)))
}

fn family_digit(f: IpVersion) -> &'static str {
    match f {
        IpVersion::Any => "4 or IPv6",
        IpVersion::V4 => "4",
        IpVersion::V6 => "6",
    }
}

/// Connects to the first address that accepts, in order. Returns the stream, the address and
/// the time of the successful attempt.
pub async fn connect(addrs: &[SocketAddr]) -> Result<(TcpStream, SocketAddr, f64), String> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        let started = Instant::now();
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let took = ms_since(started);
                // Probes write a request and wait: no reason to hold small writes back.
                let _ = s.set_nodelay(true);
                return Ok((s, *addr, took));
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

/// One probe's connection, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Resolves `host` and connects to `port` in the check's `ip_version`, then, with `tls`, does
/// a handshake for `name` offering that protocol and verifies it with the check's `ca` and
/// `tls_verify`. Fills `out` on the way: the phases' timings, `[CONNECTED]`, `[IP]`, the chain's
/// expiry.
pub async fn open(
    tls: Option<(&Tls, Alpn)>,
    check: &lookout_config::CheckConfig,
    (host, port): (&str, u16),
    name: &str,
    out: &mut super::Outcome,
) -> Result<Box<dyn Io>, String> {
    let (addrs, dns_ms) = resolve(host, port, check.ip_version).await?;
    out.timings.dns_ms = dns_ms;
    let (stream, addr, connect_ms) = connect(&addrs).await?;
    out.timings.connect_ms = Some(connect_ms);
    out.seen.connected = true;
    out.seen.ip = Some(addr.ip().to_string());
    let Some((tls, alpn)) = tls else {
        return Ok(Box::new(stream));
    };
    let (stream, facts) = tls
        .handshake_for(alpn, stream, name, check.ca.as_deref(), check.tls_verify)
        .await?;
    out.timings.tls_ms = Some(facts.handshake_ms);
    out.seen.certificate_expiration = facts.time_left();
    out.cert_expiry = facts.earliest_expiry;
    match facts.verify_error {
        Some(e) => Err(e),
        None => Ok(Box::new(stream)),
    }
}

/// An answer's headers as conditions read them: (lower-case name, value).
pub fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// What a TLS handshake found about the server's certificates.
#[derive(Debug, Clone)]
pub struct TlsFacts {
    /// When the earliest certificate of the chain expires.
    pub earliest_expiry: Option<SystemTime>,
    /// Why the chain or the name did not verify; `None` when it did.
    pub verify_error: Option<String>,
    /// The handshake's time, in milliseconds.
    pub handshake_ms: f64,
}

impl TlsFacts {
    /// Time left until the earliest expiry (zero once it has passed).
    pub fn time_left(&self) -> Option<Duration> {
        self.earliest_expiry
            .map(|e| e.duration_since(SystemTime::now()).unwrap_or_default())
    }
}

/// The application protocol a TLS handshake offers (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1`: HTTP probes, WebSockets.
    Http1,
    /// `h2`: gRPC, which needs HTTP/2.
    H2,
}

/// TLS client settings shared by all probes: one handshake configuration that accepts any chain
/// (the chain is verified after the handshake, so that an expired or misnamed certificate is
/// still read and reported), and a verifier per trust store.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Built at the first TLS probe: an agent without one never loads the TLS stack.
    config: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
    /// The same, offering HTTP/2 (ALPN `h2`) instead of HTTP/1.1: gRPC's.
    config_h2: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
    system_roots: Arc<OnceLock<RootCertStore>>,
    system: Arc<OnceLock<Result<Arc<WebPkiServerVerifier>, String>>>,
    by_ca_file: Arc<Mutex<HashMap<String, Arc<WebPkiServerVerifier>>>>,
}

impl Tls {
    /// The shared settings; they and the trust stores are built when first needed.
    pub fn new() -> Self {
        Self {
            config: Arc::new(OnceLock::new()),
            config_h2: Arc::new(OnceLock::new()),
            system_roots: Arc::new(OnceLock::new()),
            system: Arc::new(OnceLock::new()),
            by_ca_file: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn client_config(&self, alpn: Alpn) -> Arc<rustls::ClientConfig> {
        let (cell, protocol) = match alpn {
            Alpn::Http1 => (&self.config, &b"http/1.1"[..]),
            Alpn::H2 => (&self.config_h2, &b"h2"[..]),
        };
        cell.get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let algorithms = provider.signature_verification_algorithms;
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the default provider supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ReadChain { algorithms }))
                .with_no_client_auth();
            config.alpn_protocols = vec![protocol.to_vec()];
            Arc::new(config)
        })
        .clone()
    }

    /// The system's trust store, read once.
    fn roots(&self) -> RootCertStore {
        self.system_roots.get_or_init(system_roots).clone()
    }

    fn verifier(&self, ca_file: Option<&str>) -> Result<Arc<WebPkiServerVerifier>, String> {
        let system = self
            .system
            .get_or_init(|| build_verifier(self.roots()))
            .clone()?;
        let Some(path) = ca_file else {
            return Ok(system);
        };
        let mut cache = self.by_ca_file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(path) {
            return Ok(v.clone());
        }
        let mut roots = self.roots();
        let pem = std::fs::read(path).map_err(|e| format!("ca {path}: {e}"))?;
        let mut added = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: CertificateDer<'static> = cert.map_err(|e| format!("ca {path}: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca {path}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("ca {path}: no certificate in it"));
        }
        let v = build_verifier(roots)?;
        cache.insert(path.to_string(), v.clone());
        Ok(v)
    }

    /// A TLS handshake over `stream` for `name`; then the chain is verified (unless `verify` is
    /// false) and its earliest expiry read. A failed verification is in the facts, not an
    /// error: the caller decides (and still has the expiry to report).
    pub async fn handshake(
        &self,
        stream: TcpStream,
        name: &str,
        ca_file: Option<&str>,
        verify: bool,
    ) -> Result<(TlsStream<TcpStream>, TlsFacts), String> {
        self.handshake_for(Alpn::Http1, stream, name, ca_file, verify)
            .await
    }

    /// [`Tls::handshake`] offering `alpn` as the application protocol.
    pub async fn handshake_for(
        &self,
        alpn: Alpn,
        stream: TcpStream,
        name: &str,
        ca_file: Option<&str>,
        verify: bool,
    ) -> Result<(TlsStream<TcpStream>, TlsFacts), String> {
        let server_name = ServerName::try_from(
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| format!("{name:?} is not a valid TLS server name: {e}"))?;
        let verifier = if verify {
            Some(self.verifier(ca_file)?)
        } else {
            None
        };
        let started = Instant::now();
        let connector = tokio_rustls::TlsConnector::from(self.client_config(alpn));
        let tls = connector
            .connect(server_name.clone(), stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let handshake_ms = ms_since(started);
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let earliest_expiry = chain.iter().filter_map(|c| not_after(c)).min();
        let verify_error = match (&verifier, chain.split_first()) {
            (None, _) => None,
            (Some(_), None) => Some("the server sent no certificate".to_string()),
            (Some(v), Some((leaf, rest))) => v
                .verify_server_cert(leaf, rest, &server_name, &[], UnixTime::now())
                .err()
                .map(|e| format!("certificate: {e}")),
        };
        Ok((
            tls,
            TlsFacts {
                earliest_expiry,
                verify_error,
                handshake_ms,
            },
        ))
    }
}

impl Default for Tls {
    fn default() -> Self {
        Self::new()
    }
}

fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        // No system store (a bare container): Mozilla's roots, built in.
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

fn build_verifier(roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .map_err(|e| format!("building the certificate verifier: {e}"))
}

/// A certificate's end of validity.
fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(UNIX_EPOCH + c.tbs_certificate.validity.not_after.to_unix_duration())
}

/// Accepts any chain during the handshake (it is verified afterwards, with its result kept),
/// while still checking the handshake's signatures properly.
#[derive(Debug)]
struct ReadChain {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ReadChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
