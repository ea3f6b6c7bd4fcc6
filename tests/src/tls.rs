//! TLS for the end-to-end tests (`tests/tls.rs`, `tests/tls_server.rs`): certificates made
//! in the test (rcgen, aws-lc-rs) for each case, a collector serving `[server.tls]` that knows
//! agents `a1` and `a2`, agents with `ca`/`cert`/`key`, and clients that trust one CA and
//! report the certificate they were served.
//!
//! The oracle of "which certificate is served" is the DER of the leaf a new handshake sees,
//! compared with the leaf the test wrote (each renewal has its own serial number).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber, date_time_ymd,
};

use crate::{Daemon, READ_TOKEN, eventually, start_collector};

/// How long a TLS test waits for what it expects.
pub const WAIT: Duration = Duration::from_secs(20);
/// Agent `a1`'s token in [`tls_collector`].
pub const A1_TOKEN: &str = "tls-agent-a1-token-0123456789abcdef";
/// Agent `a2`'s token in [`tls_collector`].
pub const A2_TOKEN: &str = "tls-agent-a2-token-0123456789abcdef";
/// A fleet enrolment token for tests that set `[enrollment]`.
pub const ENROLL_TOKEN: &str = "tls-fleet-enrol-token-0123456789abcdef";

/// A certificate authority that signs leaves.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    pub pem: String,
}

impl Ca {
    /// A self-signed CA named `name`, with a fresh key.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` with serial `serial`, valid until `until` (a year).
    pub fn leaf(&self, names: &[&str], serial: u64, until: i32) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key: key.serialize_pem(),
        }
    }
}

/// A certificate and its key, PEM, and the certificate's DER.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub pem: String,
    /// The certificate, DER: what a handshake shows.
    pub der: Vec<u8>,
    /// Its private key, PEM (PKCS#8).
    pub key: String,
}

impl Leaf {
    /// Writes `<name>.pem` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.pem).unwrap();
        std::fs::write(&key, &self.key).unwrap();
        (cert, key)
    }
}

/// A collector serving `cert`/`key` over TLS on a free loopback port, knowing agents `a1` and
/// `a2`; `server_extra` goes into `[server.tls]`, `extra` at the end. Returns the daemon and
/// its `https://127.0.0.1:port` base.
pub fn tls_collector(
    dir: &Path,
    cert: &Path,
    key: &Path,
    server_extra: &str,
    extra: &str,
) -> (Daemon, String) {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
         header_timeout = \"2s\"\n\
         [server.tls]\ncert = \"{}\"\nkey = \"{}\"\n{server_extra}\n\
         [[agents]]\nname = \"a1\"\ntoken = \"{A1_TOKEN}\"\n\
         [[agents]]\nname = \"a2\"\ntoken = \"{A2_TOKEN}\"\n{extra}",
        dir.display(),
        cert.display(),
        key.display()
    );
    let (daemon, base) = start_collector(dir, &config).unwrap();
    (daemon, base.replace("http://", "https://"))
}

/// An agent named `name` with the credential line `credential` (`token = ...` or
/// `enroll_token = ...`), shipping to `collector` with these extra top-level keys (`ca`,
/// `cert`, `key`), one local TCP check `reach-<name>` against `target`, host metrics off.
pub fn agent(
    dir: &Path,
    name: &str,
    credential: &str,
    collector: &str,
    keys: &str,
    target: &str,
) -> Daemon {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\ncollector = \"{collector}\"\n{credential}\n\
             data_dir = \"{}\"\n{keys}\n[host_metrics]\nenabled = false\n\
             [shipping]\nmax_backoff = \"1s\"\nassignments_interval = \"1s\"\n\
             [[checks]]\nname = \"reach-{name}\"\ntype = \"tcp\"\naddress = \"{target}\"\n\
             interval = \"1s\"\ntimeout = \"1s\"\n",
            dir.display()
        ),
    )
    .unwrap();
    crate::start_agent(&path).unwrap()
}

/// The agent's credential line for a configured token.
pub fn token(t: &str) -> String {
    format!("token = \"{t}\"")
}

/// A client that trusts `ca` only, reports the peer's certificate, and keeps connections
/// alive (or not, with `fresh`).
pub fn client(ca: &Ca, fresh: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

/// The leaf certificate (DER) a new connection to `base` is served.
pub async fn served_leaf(ca: &Ca, base: &str) -> anyhow::Result<Vec<u8>> {
    let resp = client(ca, true)
        .get(format!("{base}/healthz"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "healthz: {}", resp.status());
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow::anyhow!("no peer certificate"))
}

/// The reader API's JSON over TLS.
pub async fn read_json(ca: &Ca, url: &str) -> anyhow::Result<serde_json::Value> {
    let resp = client(ca, false)
        .get(url)
        .bearer_auth(READ_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
    Ok(resp.json().await?)
}

/// Waits until check `check` (run by `agent`) is up at the collector.
pub async fn check_reported(ca: &Ca, base: &str, check: &str, agent: &Daemon) {
    eventually(&format!("{check} reported over TLS"), WAIT, || async {
        let j = read_json(ca, &format!("{base}/api/v1/checks")).await?;
        Ok(j["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == check))
            .filter(|c| c["status"] == "up")
            .map(|_| ()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nagent:\n{}", agent.log_text()));
}

/// A metric's value in the collector's `/metrics`, read over TLS.
pub async fn metric(ca: &Ca, base: &str, name: &str) -> anyhow::Result<Option<f64>> {
    let text = client(ca, false)
        .get(format!("{base}/metrics"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()))
}
