#!/usr/bin/env python3
"""Detection latency of the Prometheus stack, the anchor of Lookout's: from the moment a
checked endpoint starts answering 503 to the moment Alertmanager's webhook delivers the firing
alert. Debian's prometheus, prometheus-blackbox-exporter and prometheus-alertmanager, set up as
tightly as they go for a fair comparison with Lookout's 1 s check and failure_threshold = 1:
1 s scrape and evaluation intervals, `for: 0s`, group_wait 0s.

Usage: prom_detection.py TRIALS WORKDIR. Prints one line per trial on stderr and, on stdout,
`@@ prom_detection_ms_p50 <ms>`, `... _p99`, `... _max`, `... _trials`. Exits non-zero when a
trial does not complete (no figure is printed then).
"""

import http.server
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Target(http.server.BaseHTTPRequestHandler):
    """The checked endpoint: 200 or 503, as the driver says."""

    status = 200

    def do_GET(self):
        self.send_response(Target.status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


class Hook(http.server.BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: when each firing or resolved message arrived."""

    arrivals = []  # (time.monotonic(), status)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        at = time.monotonic()
        status = json.loads(body).get("status", "")
        with Hook.lock:
            Hook.arrivals.append((at, status))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler):
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.002)
    raise SystemExit(f"prometheus stack: {what} did not happen within {timeout} s")


def main():
    trials, work = int(sys.argv[1]), sys.argv[2]
    target_port = serve(Target)
    hook_port = serve(Hook)
    bb_port, prom_port, am_port = free_port(), free_port(), free_port()
    with open(f"{work}/blackbox.yml", "w") as f:
        f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 1s\n"
                "    http:\n      preferred_ip_protocol: ip4\n")
    with open(f"{work}/rules.yml", "w") as f:
        f.write("groups:\n- name: up\n  interval: 1s\n  rules:\n"
                "  - alert: TargetDown\n    expr: probe_success == 0\n    for: 0s\n")
    with open(f"{work}/prometheus.yml", "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{work}/rules.yml]
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['127.0.0.1:{am_port}']
scrape_configs:
- job_name: blackbox
  metrics_path: /probe
  params:
    module: [http_2xx]
  static_configs:
  - targets: ['http://127.0.0.1:{target_port}/']
  relabel_configs:
  - source_labels: [__address__]
    target_label: __param_target
  - source_labels: [__param_target]
    target_label: instance
  - target_label: __address__
    replacement: '127.0.0.1:{bb_port}'
""")
    with open(f"{work}/alertmanager.yml", "w") as f:
        f.write(f"""route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: 'http://127.0.0.1:{hook_port}/'
    send_resolved: true
""")
    log = open(f"{work}/prom-stack.log", "w")
    procs = [
        subprocess.Popen(["prometheus-blackbox-exporter", f"--config.file={work}/blackbox.yml",
                          f"--web.listen-address=127.0.0.1:{bb_port}"], stdout=log, stderr=log),
        subprocess.Popen(["prometheus-alertmanager", f"--config.file={work}/alertmanager.yml",
                          f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{am_port}",
                          "--cluster.listen-address="], stdout=log, stderr=log),
        subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                          f"--storage.tsdb.path={work}/prom",
                          f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=log),
    ]
    try:
        def probe_ok():
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=probe_success"
            try:
                data = json.load(urllib.request.urlopen(url, timeout=1))
                return any(r["value"][1] == "1" for r in data["data"]["result"])
            except OSError:
                return False

        wait_for("the first successful probe", probe_ok, 30)
        latencies = []
        for trial in range(trials):
            # The stop falls anywhere in the scrape and evaluation schedule.
            time.sleep(1.0 + random.random())
            with Hook.lock:
                seen = len(Hook.arrivals)
            stopped = time.monotonic()
            Target.status = 503

            def fired():
                with Hook.lock:
                    return next((at for at, s in Hook.arrivals[seen:] if s == "firing"), None)

            at = wait_for(f"trial {trial + 1}: the firing webhook", fired, 30)
            latencies.append((at - stopped) * 1000)
            print(f"trial {trial + 1:>2}: {latencies[-1]:.0f} ms", file=sys.stderr)
            Target.status = 200
            with Hook.lock:
                seen = len(Hook.arrivals)

            def resolved():
                with Hook.lock:
                    return any(s == "resolved" for _, s in Hook.arrivals[seen:])

            wait_for(f"trial {trial + 1}: the resolved webhook", resolved, 30)
        latencies.sort()
        p99 = latencies[max(0, -(-len(latencies) * 99 // 100) - 1)]
        print(f"@@ prom_detection_trials {len(latencies)}")
        print(f"@@ prom_detection_ms_p50 {latencies[len(latencies) // 2]:.0f}")
        print(f"@@ prom_detection_ms_p99 {p99:.0f}")
        print(f"@@ prom_detection_ms_max {latencies[-1]:.0f}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
