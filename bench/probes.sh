#!/usr/bin/env bash
# HTTP probes per CPU-second, Lookout beside blackbox_exporter, in one run against the same local
# nginx (a new connection per probe for both). Lookout: agent/examples/probe_bench.rs on one
# thread, as the agent runs. blackbox_exporter (Debian's prometheus-blackbox-exporter, module
# http_2xx) driven by wrk on its /probe endpoint; its CPU is read from /proc over the run.
# Usage: bench/probes.sh [probes, default 20000] [concurrency, default 16]. Needs root to install.
# SKIP_BUILD=1 uses the probe_bench already built.
set -euo pipefail
cd "$(dirname "$0")/.."
probes=${1:-20000}
conc=${2:-16}
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${need[@]}" >/dev/null
fi
systemctl stop prometheus-blackbox-exporter nginx 2>/dev/null || true
# The agent as deployed: its own profile (Cargo.toml, [profile.agent]).
[ -n "${SKIP_BUILD:-}" ] || cargo build --profile agent -q -p lookout-agent --example probe_bench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nport=$(free_port); bport=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nport;
    location / { return 200 "ok\n"; }
  }
}
NGINX
/usr/sbin/nginx -c "$work/nginx.conf"
cat > "$work/blackbox.yml" <<YML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
YML
prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$bport" 2>"$work/bb.log" &
bb=$!
sleep 1
target="http://127.0.0.1:$nport/"

echo "== Lookout ($probes probes, $conc at once)"
lk=$(target/agent/examples/probe_bench --url "$target" --probes "$probes" --concurrency "$conc")
echo "$lk"

echo "== blackbox_exporter (wrk on /probe, $conc connections, 20 s)"
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
curl -sf "http://127.0.0.1:$bport/probe?module=http_2xx&target=$target" | grep -q '^probe_success 1' || { echo "blackbox probe failed"; exit 1; }
b0=$(ticks $bb)
wrk -t1 -c"$conc" -d20s "http://127.0.0.1:$bport/probe?module=http_2xx&target=$target" > "$work/wrk.txt"
b1=$(ticks $bb)
bprobes=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
python3 - "$lk" "$bprobes" "$b0" "$b1" "$hz" <<'PY'
import sys
lk = dict(kv.split("=") for kv in sys.argv[1].split()[1:])
bprobes, b0, b1, hz = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bcpu = (b1 - b0) / hz
lrate = float(lk["probes_per_cpu_s"]); brate = bprobes / max(bcpu, 1e-9)
print(f"{'':22}{'probes':>10}{'CPU s':>9}{'probes/CPU-s':>15}")
print(f"{'lookout':22}{lk['probes']:>10}{float(lk['cpu_s']):>9.2f}{lrate:>15.0f}")
print(f"{'blackbox_exporter':22}{bprobes:>10}{bcpu:>9.2f}{brate:>15.0f}")
print(f"ratio lookout / blackbox_exporter: {lrate / brate:.1f}x")
print(f"@@ lookout_probes_per_cpu_s {lrate:.0f}")
print(f"@@ blackbox_probes_per_cpu_s {brate:.0f}")
PY
