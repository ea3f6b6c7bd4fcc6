//! A real SMTP server: aiosmtpd, run by `smtp_sink.py` as a child process that is killed when
//! the test ends; and certificates for its STARTTLS, made with rcgen.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py")
}

/// Fails the test, saying what to install, when python3 or aiosmtpd is missing.
fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the email tests need a real SMTP server: python3 with aiosmtpd \
         (scripts/test installs it; or `python3 -m pip install aiosmtpd`)"
    );
}

/// Options of the server.
#[derive(Default)]
pub struct SinkOptions<'a> {
    /// `user:password` it accepts with AUTH.
    pub auth: Option<&'a str>,
    /// Certificate chain and key (PEM files) for STARTTLS.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// The port; default a free one.
    pub port: Option<u16>,
    /// With `tls`: TLS from the first byte (SMTPS) instead of STARTTLS.
    pub implicit_tls: bool,
}

/// The running server: it listens on `127.0.0.1:port` and writes what it gets to `dir`.
pub struct SmtpSink {
    pub port: u16,
    /// The port's reservation when the sink chose the port (held while it runs).
    _reserved: Option<lookout_tests::Port>,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    pub fn start(opts: SinkOptions<'_>) -> SmtpSink {
        require_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        let (port, reserved) = match opts.port {
            Some(port) => (port, None),
            None => {
                let reserved = super::free_port();
                (reserved.get(), Some(reserved))
            }
        };
        let mut cmd = Command::new("python3");
        cmd.arg(script())
            .args(["serve", "--port", &port.to_string(), "--dir"])
            .arg(dir.path());
        if let Some(auth) = opts.auth {
            cmd.args(["--auth", auth]);
        }
        if let Some((cert, key)) = opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            if opts.implicit_tls {
                cmd.arg("--implicit-tls");
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start python3");
        // Its first line is "ready" once it listens; read on a thread, to bound the wait.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        if line.trim() != "ready" {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("smtp_sink.py did not start: {err}");
        }
        SmtpSink {
            port,
            _reserved: reserved,
            dir,
            child,
        }
    }

    /// The `n`th message received (from 1): its envelope and login, waiting up to 5 s for it.
    pub fn envelope(&self, n: usize) -> Value {
        let path = self.dir.path().join(format!("{n}.json"));
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("message {n} did not arrive within 5 s");
    }

    /// The `n`th message, read by Python's email package: subject, from, to, content_type,
    /// parts (content_type, text).
    pub fn parsed(&self, n: usize) -> Value {
        self.envelope(n);
        let out = Command::new("python3")
            .arg(script())
            .arg("parse")
            .arg(self.dir.path().join(format!("{n}.eml")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// How many messages it holds.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
    }
}

/// A test CA and a server certificate it signed, as PEM files in a temporary folder.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl Pki {
    /// A CA, and a certificate for `name` signed by it (`leaf.pem`, `leaf.key`).
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Lookout test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        leaf.use_authority_key_identifier_extension = true;
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.key"), key.serialize_pem()).unwrap();
        Pki { dir, ca_pem }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("leaf.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("leaf.key")
    }
}
