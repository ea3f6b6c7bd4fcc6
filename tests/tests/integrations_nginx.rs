//! The `nginx` integration end to end, against a real nginx (Debian's `/usr/sbin/nginx`) started
//! here with its own prefix and configuration on a reserved loopback port, the real agent
//! reading its `stub_status` page and shipping to the real collector. What the collector stores
//! is compared with the `stub_status` page the test fetches itself before and after, never with
//! the agent's own figures; the access log's figures are compared with the log file as the test
//! reads it itself, and the 5xx starter rule of docs/integrations.md fires.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_tests::{eventually, free_port, get_json};

const AGENT_TOKEN: &str = "integ-nginx-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);
/// docs/integrations.md's JSON `log_format`.
const LOG_FORMAT: &str = r#"log_format lookout escape=json '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,"http_referer":"$http_referer","http_user_agent":"$http_user_agent"}';"#;

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
        // The status page is not logged: the agent's reads would count as requests there. The
        // log format is docs/integrations.md's, word for word.
        let conf = r#"daemon off;
pid D/nginx.pid;
error_log D/error.log;
events { worker_connections 64; }
http {
  client_body_temp_path D/tmp; proxy_temp_path D/tmp; fastcgi_temp_path D/tmp;
  uwsgi_temp_path D/tmp; scgi_temp_path D/tmp;
  LOG_FORMAT
  access_log D/logs/access.log lookout;
  server {
    listen 127.0.0.1:PORT;
    location = /status { stub_status; access_log off; }
    location = /ok { return 200 "ok\n"; }
    location = /fail { return 500 "failed, sorry\n"; }
  }
}
"#
        .replace("LOG_FORMAT", LOG_FORMAT)
        .replace("D/", &format!("{d}/"))
        .replace("PORT", &port.get().to_string());
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
        // SIGTERM, not SIGKILL: the master stops its workers only when it is let to, and a
        // killed master leaves them holding the port.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
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

    let (collector, base, agent) = lookout_tests::start_collector_and_agent(
        dir.path(),
        "web-1",
        AGENT_TOKEN,
        "",
        &format!(
            "[[integrations]]\ntype = \"nginx\"\nname = \"web\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            nginx.url("/status")
        ),
    )
    .unwrap();
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

/// The access log's lines as the test reads them: (status, body bytes, request time).
fn logged(path: &std::path::Path) -> Vec<(u64, f64, f64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect(l);
            (
                v["status"].as_u64().unwrap(),
                v["body_bytes_sent"].as_f64().unwrap(),
                v["request_time"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The `q` quantile of `v` by nearest rank.
fn nearest_rank(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_s_classes_bytes_and_latencies_are_stored_and_5xx_fires_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let ndir = dir.path().join("nginx");
    let nginx = Nginx::start(&ndir);
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
    let log = ndir.join("logs/access.log");
    let lines = eventually("50 lines in the access log", WAIT, || async {
        let l = logged(&log);
        Ok((l.len() == 50).then_some(l))
    })
    .await
    .unwrap();
    let count = |class: u64| lines.iter().filter(|l| l.0 / 100 == class).count() as f64;
    assert_eq!((count(2), count(5)), (40.0, 10.0));
    let bytes: f64 = lines.iter().map(|l| l.1).sum();
    assert!(bytes > 0.0);
    let times: Vec<f64> = lines.iter().map(|l| l.2).collect();

    // read_from = "beginning": the 50 lines already there are read in one round, so they fall
    // in one interval and its percentiles are those of all 50.
    let (collector, base, agent) = lookout_tests::start_collector_and_agent(
        dir.path(),
        "web-1",
        AGENT_TOKEN,
        "[[rules]]\nname = \"nginx-5xx\"\nmetric = \"nginx.requests.server_error_ratio\"\n\
         aggregate = \"avg\"\nwindow = \"5m\"\nabove = 0.01\n",
        &format!(
            "[[logs]]\npaths = [\"{}\"]\nread_from = \"beginning\"\n\
             [[integrations]]\ntype = \"nginx\"\nname = \"web\"\nurl = \"{}\"\ninterval = \"1s\"\n\
             access_log = \"{}\"\nlog_format = \"json\"\n",
            log.display(),
            nginx.url("/status"),
            log.display()
        ),
    )
    .unwrap();
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };
    for (class, want) in [("2xx", count(2)), ("5xx", count(5))] {
        let labels = format!("integration=web,status_class={class}");
        eventually(&format!("{class} as the log says"), WAIT, || async {
            let got = last(&base, "nginx.requests", &labels).await?;
            Ok((got.map(|g| g.1) == Some(want)).then_some(()))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: the log has {want}\n{}", diagnose()));
    }
    let stored = |name: &'static str, labels: &'static str| {
        let base = base.clone();
        async move { last(&base, name, labels).await.unwrap().map(|g| g.1) }
    };
    assert_eq!(
        stored("nginx.response.body.size", "integration=web").await,
        Some(bytes)
    );
    assert_eq!(
        stored("nginx.requests", "integration=web,status_class=4xx").await,
        Some(0.0)
    );
    for (q, label) in [
        (0.5, "integration=web,quantile=0.5"),
        (0.9, "integration=web,quantile=0.9"),
        (0.99, "integration=web,quantile=0.99"),
    ] {
        assert_eq!(
            stored("nginx.request.duration", label).await,
            Some(nearest_rank(&times, q)),
            "p{q} of {times:?}"
        );
    }
    assert_eq!(
        stored("nginx.requests.server_error_ratio", "integration=web").await,
        Some(count(5) / 50.0)
    );
    assert_eq!(
        stored(
            "nginx.access_log.skipped",
            "integration=web,reason=unparseable"
        )
        .await,
        Some(0.0)
    );
    eventually("the nginx-5xx rule fires", WAIT, || async {
        let alerts = get_json(&format!("{base}/api/v1/alerts?state=firing")).await?;
        let fired = alerts["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|a| {
                a["fingerprint"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("nginx-5xx/") && f.contains("integration=web"))
            })
        });
        Ok(fired.then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
}
