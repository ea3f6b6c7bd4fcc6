//! The `nginx` integration end to end, against a real nginx (Debian's `/usr/sbin/nginx`) started
//! here with its own prefix and configuration on a reserved loopback port, the real agent
//! reading its `stub_status` page and shipping to the real collector. What the collector stores
//! is compared with the `stub_status` page the test fetches itself before and after, never with
//! the agent's own figures.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_tests::{Daemon, READ_TOKEN, eventually, free_port, get_json, start_collector};

const AGENT_TOKEN: &str = "integ-nginx-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

/// An nginx in the foreground, killed when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let d = dir.display();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        // The status page is not logged: the agent's reads would count as requests there.
        let conf = format!(
            "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location = /status {{ stub_status; }}\n\
                 location = /ok {{ return 200 \"ok\\n\"; }}\n\
                 location = /fail {{ return 500 \"fail\\n\"; }}\n  }}\n}}\n",
            port = port.get()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .args(["-p", &d.to_string(), "-c", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (Debian's nginx package)");
        Self {
            child,
            port: port.get(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `stub_status` as nginx says it now, read with curl: (accepts, handled, requests).
    fn stub_status(&self) -> Option<(f64, f64, f64)> {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", &self.url("/status")])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let figures: Vec<f64> = text
            .lines()
            .nth(2)?
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match figures[..] {
            [a, h, r] => Some((a, h, r)),
            _ => None,
        }
    }

    fn request(&self, path: &str) -> u16 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .arg(self.url(path))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The newest stored sample of `name` with `labels`: (time, value), or none yet.
async fn last(base: &str, name: &str, labels: &str) -> anyhow::Result<Option<(String, f64)>> {
    let j = get_json(&format!(
        "{base}/api/v1/metrics?agent=web-1&name={name}&labels={labels}&step=1s"
    ))
    .await?;
    Ok(j["series"]
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["points"].as_array())
        .and_then(|p| p.last())
        .and_then(|p| Some((p["time"].as_str()?.to_string(), p["last"].as_f64()?))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_status_is_stored_as_nginx_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(&dir.path().join("nginx"));
    eventually("nginx answers", WAIT, || async {
        Ok(nginx.stub_status().map(|_| ()))
    })
    .await
    .unwrap();
    for _ in 0..40 {
        assert_eq!(nginx.request("/ok"), 200);
    }
    for _ in 0..10 {
        assert_eq!(nginx.request("/fail"), 500);
    }

    let (collector, base) = start_collector(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nread_tokens = [\"{READ_TOKEN}\"]\n\
             [[agents]]\nname = \"web-1\"\ntoken = \"{AGENT_TOKEN}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_toml = agent_dir.join("agent.toml");
    std::fs::write(
        &agent_toml,
        format!(
            "name = \"web-1\"\ncollector = \"{base}\"\ntoken = \"{AGENT_TOKEN}\"\n\
             data_dir = \"{}\"\n[host_metrics]\nenabled = false\n\
             [[integrations]]\ntype = \"nginx\"\nname = \"web\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            agent_dir.display(),
            nginx.url("/status")
        ),
    )
    .unwrap();
    let agent: Daemon = lookout_tests::start_agent(&agent_toml).unwrap();
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    // Bracketed by the test's own reads: a sample the agent took after `before` was fetched
    // holds figures at least `before`'s and at most `after`'s. Only the agent's and the test's
    // reads of /status reach nginx meanwhile, so requests is strictly between the two.
    let before = nginx.stub_status().unwrap();
    let first = last(&base, "nginx.requests", "integration=web")
        .await
        .unwrap()
        .map(|(t, _)| t);
    let (time, requests) = eventually("a sample taken after the test's first read", WAIT, || {
        let first = first.clone();
        let base = base.clone();
        async move {
            let got = last(&base, "nginx.requests", "integration=web").await?;
            // Two newer samples: the first may have been taken before `before`.
            Ok(got.filter(|(t, _)| first.as_ref().is_none_or(|f| t > f)))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    let (_, requests2) = eventually("one more sample", WAIT, || {
        let (base, time) = (base.clone(), time.clone());
        async move {
            let got = last(&base, "nginx.requests", "integration=web").await?;
            Ok(got.filter(|(t, _)| *t > time))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    let after = nginx.stub_status().unwrap();
    assert!(
        before.2 <= requests && requests < requests2 && requests2 < after.2,
        "stub_status said {} then {}; stored {requests} then {requests2}",
        before.2,
        after.2
    );
    // The 50 requests and the reads are all there: at least 50 (+ the test's first read).
    assert!(before.2 >= 51.0, "{before:?}");
    for (name, i) in [
        ("nginx.connections_accepted", 0),
        ("nginx.connections_handled", 1),
    ] {
        let (_, v) = last(&base, name, "integration=web").await.unwrap().unwrap();
        let (b, a) = match i {
            0 => (before.0, after.0),
            _ => (before.1, after.1),
        };
        assert!(
            b <= v && v <= a,
            "{name}: stub_status {b} then {a}, stored {v}"
        );
    }
    // While the agent reads, its own request is being written: writing is 1 at least, and
    // active at least 1.
    let (_, writing) = last(
        &base,
        "nginx.connections_current",
        "integration=web,state=writing",
    )
    .await
    .unwrap()
    .unwrap();
    assert!(writing >= 1.0, "writing {writing}");
    let (_, up) = last(
        &base,
        "lookout.integration.up",
        "integration=web,type=nginx",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(up, 1.0);
}
