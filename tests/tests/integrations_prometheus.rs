//! The `prometheus` integration end to end, against a real exporter (Debian's
//! `prometheus-node-exporter`) started here on a reserved loopback port, with a textfile
//! collector directory holding a histogram, the real agent scraping it with `keep` and `drop`,
//! shipping to the real collector. What the collector stores is compared with a scrape the test
//! makes itself (curl), never with the agent's own figures: exact for values that do not move
//! (the build info, `node_memory_MemTotal_bytes`, the textfile histogram). A second test scrapes
//! an app instrumented with the official Python client (`prometheus_client` from PyPI), which
//! answers the agent's `Accept` in OpenMetrics: the format's real producer, not a fixture.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout_tests::{Daemon, eventually, free_port, get_json};

const AGENT_TOKEN: &str = "integ-prom-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(40);

/// A histogram the exporter re-exposes from its textfile directory.
const HISTOGRAM: &str = "# HELP lookout_test_latency_seconds A fixed histogram.\n\
# TYPE lookout_test_latency_seconds histogram\n\
lookout_test_latency_seconds_bucket{le=\"0.1\"} 3\n\
lookout_test_latency_seconds_bucket{le=\"0.5\"} 7\n\
lookout_test_latency_seconds_bucket{le=\"+Inf\"} 9\n\
lookout_test_latency_seconds_sum 2.25\n\
lookout_test_latency_seconds_count 9\n";

/// A node_exporter in the foreground, killed when dropped.
struct Exporter {
    child: Child,
    port: u16,
}

impl Exporter {
    fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let text = dir.join("textfile");
        std::fs::create_dir_all(&text).unwrap();
        std::fs::write(text.join("test.prom"), HISTOGRAM).unwrap();
        let child = Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{}", port.get()))
            .arg(format!("--collector.textfile.directory={}", text.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter is installed (Debian's package of that name)");
        Self {
            child,
            port: port.get(),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }

    /// The exporter's page now, read with curl.
    fn scrape(&self) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", &self.url()])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the line starting with `series ` (name and labels as exposed) in `page`.
fn exposed(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in the exporter's page"))
        .trim()
        .parse()
        .unwrap()
}

/// How many series of `name` the collector has.
async fn series(base: &str, name: &str) -> usize {
    get_json(&format!(
        "{base}/api/v1/metrics?agent=node-1&name={name}&step=1s"
    ))
    .await
    .ok()
    .and_then(|j| j["series"].as_array().map(Vec::len))
    .unwrap_or(0)
}

/// The collector (knowing `node-1`, with `rules`) and an agent `node-1` with one `prometheus`
/// integration (`integration`: its keys after `type`), both in `dir`.
fn start(dir: &std::path::Path, rules: &str, integration: &str) -> (Daemon, String, Daemon) {
    lookout_tests::start_collector_and_agent(
        dir,
        "node-1",
        AGENT_TOKEN,
        rules,
        &format!("[[integrations]]\ntype = \"prometheus\"\n{integration}"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_is_scraped_as_it_exposes_with_keep_drop_a_histogram_and_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&dir.path().join("exporter"));
    let page = eventually("node_exporter answers", WAIT, || async {
        Ok(exporter.scrape())
    })
    .await
    .unwrap();
    // The series the test compares are in the exporter's page, and the dropped ones too (so
    // their absence below is the agent's doing).
    for s in [
        "node_memory_MemTotal_bytes ",
        "node_memory_SwapTotal_bytes ",
        "node_cpu_seconds_total{",
        "lookout_test_latency_seconds_bucket{le=\"0.5\"} ",
    ] {
        assert!(page.contains(s), "{s} not exposed");
    }

    let (collector, base, agent) = start(
        dir.path(),
        "[[rules]]\nname = \"memtotal-seen\"\nmetric = \"node_memory_MemTotal_bytes\"\n\
         aggregate = \"max\"\nwindow = \"3s\"\nabove = 0\n\
         [[rules]]\nname = \"memtotal-absurd\"\nmetric = \"node_memory_MemTotal_bytes\"\n\
         aggregate = \"max\"\nwindow = \"3s\"\nbelow = 1\n",
        &format!(
            "name = \"node\"\nurl = \"{}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\n\
             labels = {{ env = \"test\" }}\n\
             keep = \"node_memory_.*|node_exporter_build_info|lookout_test_.*\"\n\
             drop = \"node_memory_Swap.*\"\n",
            exporter.url()
        ),
    );
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };

    let stored = eventually("MemTotal stored", WAIT, || {
        let base = base.clone();
        async move {
            lookout_tests::last_value(
                &base,
                "node-1",
                "node_memory_MemTotal_bytes",
                "integration=node,env=test",
            )
            .await
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    // The test's own scrape, at about the same time: these do not move.
    let page = exporter.scrape().unwrap();
    assert_eq!(stored, exposed(&page, "node_memory_MemTotal_bytes"));
    let build = page
        .lines()
        .find(|l| l.starts_with("node_exporter_build_info{"))
        .unwrap();
    // The build info: its value, and its labels exactly as exposed plus the integration's.
    let (inside, value) = build
        .strip_prefix("node_exporter_build_info{")
        .and_then(|r| r.rsplit_once("} "))
        .unwrap();
    let mut labels: serde_json::Map<String, serde_json::Value> = inside
        .split("\",")
        .map(|kv| {
            let (k, v) = kv.split_once("=\"").unwrap();
            (k.to_string(), v.trim_end_matches('"').into())
        })
        .collect();
    labels.insert("integration".into(), "node".into());
    labels.insert("env".into(), "test".into());
    let j = get_json(&format!(
        "{base}/api/v1/metrics?agent=node-1&name=node_exporter_build_info&step=1s"
    ))
    .await
    .unwrap();
    let s = &j["series"][0];
    assert_eq!(s["labels"].as_object(), Some(&labels), "{j}");
    assert_eq!(
        s["points"]
            .as_array()
            .and_then(|p| p.last())
            .map(|p| &p["last"]),
        Some(&serde_json::json!(value.parse::<f64>().unwrap())),
        "{j}"
    );
    // The histogram, each series as exposed.
    for (name, labels, exposed_as) in [
        (
            "lookout_test_latency_seconds_bucket",
            "integration=node,le=0.1",
            "lookout_test_latency_seconds_bucket{le=\"0.1\"}",
        ),
        (
            "lookout_test_latency_seconds_bucket",
            "integration=node,le=0.5",
            "lookout_test_latency_seconds_bucket{le=\"0.5\"}",
        ),
        (
            "lookout_test_latency_seconds_sum",
            "integration=node",
            "lookout_test_latency_seconds_sum",
        ),
        (
            "lookout_test_latency_seconds_count",
            "integration=node",
            "lookout_test_latency_seconds_count",
        ),
    ] {
        assert_eq!(
            lookout_tests::last_value(&base, "node-1", name, labels)
                .await
                .unwrap(),
            Some(exposed(&page, exposed_as)),
            "{name} {labels}"
        );
    }
    assert_eq!(
        series(&base, "lookout_test_latency_seconds_bucket").await,
        3
    );
    // Not kept (keep) and dropped (drop): absent, though exposed in the same scrapes.
    assert_eq!(series(&base, "node_cpu_seconds_total").await, 0);
    assert_eq!(series(&base, "node_memory_SwapTotal_bytes").await, 0);
    assert_eq!(
        lookout_tests::last_value(
            &base,
            "node-1",
            "lookout.integration.up",
            "integration=node,type=prometheus"
        )
        .await
        .unwrap(),
        Some(1.0)
    );

    // A metric rule on a scraped gauge fires; one that cannot hold does not.
    eventually("the memtotal-seen rule firing", WAIT, || async {
        let f = lookout_tests::firing_alerts(&base).await;
        Ok(f.iter()
            .any(|a| a.starts_with("memtotal-seen/") && a.contains("integration=node"))
            .then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
    let f = lookout_tests::firing_alerts(&base).await;
    assert!(
        f.iter().all(|a| !a.starts_with("memtotal-absurd/")),
        "{f:?}"
    );

    // The exporter gone: the scheduler's failure path, up 0 for this integration.
    drop(exporter);
    eventually("up 0 once the exporter is stopped", WAIT, || async {
        let up = lookout_tests::last_value(
            &base,
            "node-1",
            "lookout.integration.up",
            "integration=node,type=prometheus",
        )
        .await?;
        Ok((up == Some(0.0)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
}

/// The `Accept` header of a Prometheus server's scrapes.
const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// An app instrumented with `prometheus_client` (PyPI; `scripts/test` installs it): a counter
/// with a label, a gauge and a histogram, set once, served on `port`.
const APP: &str = r#"
import sys, time
from prometheus_client import Counter, Gauge, Histogram, start_http_server
orders = Counter("lookout_app_orders", "Orders taken.", ["shop"])
orders.labels("north").inc(42)
orders.labels("south").inc(5)
Gauge("lookout_app_queue_depth", "Jobs waiting.").set(7)
h = Histogram("lookout_app_request_seconds", "Request time.", buckets=[0.1, 0.5])
for v in (0.05, 0.2, 0.3, 0.7):
    h.observe(v)
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_openmetrics_page_is_stored_as_the_official_client_exposes_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().get();
    let mut app = Command::new("python3")
        .args(["-c", APP, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is installed");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let app = Kill(&mut app);
    let url = format!("http://127.0.0.1:{port}/metrics");
    // The test's own scrape, with the Accept Prometheus (and the agent) sends: the page in
    // OpenMetrics, by its own Content-Type and `# EOF`.
    let curl = || {
        Command::new("curl")
            .args(["-sf", "--max-time", "10", "-D", "-", "-H"])
            .arg(format!("Accept: {ACCEPT}"))
            .arg(&url)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let answer = eventually("the app answers", WAIT, || async { Ok(curl()) })
        .await
        .unwrap_or_else(|e| panic!("{e} (prometheus_client from PyPI: scripts/test installs it)"));
    let (head, page) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(page.trim_end().ends_with("# EOF"), "{page}");

    let (collector, base, agent) = start(
        dir.path(),
        "",
        &format!(
            "name = \"app\"\nurl = \"{url}\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\n\
             keep = \"lookout_app_.*\"\n"
        ),
    );
    let diagnose = || {
        format!(
            "agent:\n{}\ncollector:\n{}",
            agent.log_text(),
            collector.log_text()
        )
    };
    // OpenMetrics names a counter's sample `_total` and adds `_created`; the histogram's
    // buckets, sum and count as exposed.
    let expected = [
        (
            "lookout_app_orders_total",
            "shop=north",
            "lookout_app_orders_total{shop=\"north\"}",
        ),
        (
            "lookout_app_orders_total",
            "shop=south",
            "lookout_app_orders_total{shop=\"south\"}",
        ),
        (
            "lookout_app_orders_created",
            "shop=north",
            "lookout_app_orders_created{shop=\"north\"}",
        ),
        ("lookout_app_queue_depth", "", "lookout_app_queue_depth"),
        (
            "lookout_app_request_seconds_bucket",
            "le=0.1",
            "lookout_app_request_seconds_bucket{le=\"0.1\"}",
        ),
        (
            "lookout_app_request_seconds_bucket",
            "le=0.5",
            "lookout_app_request_seconds_bucket{le=\"0.5\"}",
        ),
        (
            "lookout_app_request_seconds_bucket",
            "le=+Inf",
            "lookout_app_request_seconds_bucket{le=\"+Inf\"}",
        ),
        (
            "lookout_app_request_seconds_sum",
            "",
            "lookout_app_request_seconds_sum",
        ),
        (
            "lookout_app_request_seconds_count",
            "",
            "lookout_app_request_seconds_count",
        ),
    ];
    for (name, labels, exposed_as) in expected {
        let labels = match labels {
            "" => "integration=app".to_string(),
            l => format!("integration=app,{l}"),
        };
        let stored = eventually(&format!("{name} {labels} stored"), WAIT, || {
            let (base, labels) = (base.clone(), labels.clone());
            async move { lookout_tests::last_value(&base, "node-1", name, &labels).await }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnose()));
        assert_eq!(stored, exposed(page, exposed_as), "{name} {labels}\n{page}");
    }
    // One series per label set of the counter, no more.
    let j = get_json(&format!(
        "{base}/api/v1/metrics?agent=node-1&name=lookout_app_orders_total&step=1s"
    ))
    .await
    .unwrap();
    assert_eq!(j["series"].as_array().map(Vec::len), Some(2), "{j}");
    drop(app);
}
