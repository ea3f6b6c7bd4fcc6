#!/usr/bin/env bash
# Agent cost beside node_exporter, measured in one run on this machine:
#   lookout-agent with host metrics every 10 s and 20 HTTP checks every 10 s (shipping to a local
#   collector), and Debian's prometheus-node-exporter (default collectors) scraped every 10 s.
#   With BLACKBOX=1 the anchor also has Debian's prometheus-blackbox-exporter probing the same 20
#   URLs every 10 s (what replaces the agent's checks in a Prometheus setup).
# Prints RSS (median and max of samples every 5 s, in MiB to two decimals: the agent's is near
# its 10 MB goal) and CPU (share of one core over the run), and
# the same as `@@ key value` lines for bench/run.
# Usage: bench/agent-vs-node-exporter.sh [seconds, default 120]. Needs root to install packages.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
need=()
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
[ -z "${BLACKBOX:-}" ] || command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian packages start services where systemd runs; use our own instances.
systemctl stop prometheus-node-exporter prometheus-blackbox-exporter 2>/dev/null || true
# The agent as it is deployed: its own profile (Cargo.toml, [profile.agent]). SKIP_BUILD=1 uses
# the binaries already built.
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q -p lookout-collector
  cargo build --profile agent -q -p lookout-agent --bin lookout-agent
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/collector.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$work/collector"
[[agents]]
name = "bench"
token = "bench-token-0123456789abcdef"
TOML
{
  printf 'name = "bench"\ncollector = "http://127.0.0.1:%s"\ntoken = "bench-token-0123456789abcdef"\ndata_dir = "%s/agent"\n' "$port" "$work"
  printf '[host_metrics]\ninterval = "10s"\n'
  for i in $(seq 1 20); do
    printf '[[checks]]\nname = "c%s"\ntype = "http"\nurl = "http://127.0.0.1:%s/healthz"\ninterval = "10s"\ntimeout = "5s"\n' "$i" "$port"
  done
} > "$work/agent.toml"
LOOKOUT_LOG=warn target/release/lookout-collector --config "$work/collector.toml" 2>"$work/collector.log" &
sleep 1
LOOKOUT_LOG=warn target/agent/lookout-agent --config "$work/agent.toml" 2>"$work/agent.log" &
agent=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$nport" 2>"$work/ne.log" &
ne=$!
bb=
if [ -n "${BLACKBOX:-}" ]; then
  bport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n' > "$work/blackbox.yml"
  prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$bport" 2>"$work/bb.log" &
  bb=$!
fi
# Prometheus' part, by curl: node_exporter scraped, and with BLACKBOX the 20 probes, every 10 s.
( while sleep 10; do
    curl -s "http://127.0.0.1:$nport/metrics" >/dev/null || true
    if [ -n "$bb" ]; then
      for i in $(seq 1 20); do
        curl -s "http://127.0.0.1:$bport/probe?module=http_2xx&target=http://127.0.0.1:$port/healthz" >/dev/null || true
      done
    fi
  done ) &
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
bbticks() { if [ -n "$bb" ]; then ticks "$bb"; else echo 0; fi; }
bbrss() { if [ -n "$bb" ]; then rss "$bb"; else echo 0; fi; }
a0=$(ticks $agent); n0=$(ticks $ne); b0=$(bbticks); t0=$(date +%s.%N)
: > "$work/rss"
for _ in $(seq 1 $((secs / 5))); do
  sleep 5
  echo "$(rss $agent) $(rss $ne) $(bbrss)" >> "$work/rss"
done
a1=$(ticks $agent); n1=$(ticks $ne); b1=$(bbticks); t1=$(date +%s.%N)
python3 - "$work/rss" "$a0" "$a1" "$n0" "$n1" "$b0" "$b1" "$t0" "$t1" "$hz" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
a0, a1, n0, n1, b0, b1 = map(int, sys.argv[2:8]); t0, t1 = map(float, sys.argv[8:10]); hz = int(sys.argv[10])
el = t1 - t0
def cpu(d): return 100.0 * d / hz / el
ra = [r[0] / 1024 for r in rows]; rn = [r[1] / 1024 for r in rows]; rb = [r[2] / 1024 for r in rows]
print(f"run: {el:.0f} s, {len(rows)} RSS samples")
print(f"{'':28}{'RSS median':>12}{'RSS max':>10}{'CPU % of a core':>18}")
print(f"{'lookout-agent':28}{statistics.median(ra):>9.2f} MiB{max(ra):>7.2f} MiB{cpu(a1 - a0):>17.3f}")
print(f"{'node_exporter':28}{statistics.median(rn):>9.2f} MiB{max(rn):>7.2f} MiB{cpu(n1 - n0):>17.3f}")
print(f"ratio (agent / node_exporter): RSS {statistics.median(ra) / statistics.median(rn):.2f}, CPU {cpu(a1 - a0) / max(cpu(n1 - n0), 1e-9):.2f}")
print(f"@@ agent_rss_mb {statistics.median(ra):.2f}")
print(f"@@ agent_cpu_pct {cpu(a1 - a0):.3f}")
print(f"@@ node_exporter_rss_mb {statistics.median(rn):.2f}")
print(f"@@ node_exporter_cpu_pct {cpu(n1 - n0):.3f}")
if max(rb) > 0:
    both = [n + b for n, b in zip(rn, rb)]
    print(f"{'blackbox_exporter':28}{statistics.median(rb):>9.2f} MiB{max(rb):>7.2f} MiB{cpu(b1 - b0):>17.3f}")
    print(f"{'node_ + blackbox_exporter':28}{statistics.median(both):>9.2f} MiB{max(both):>7.2f} MiB{cpu(n1 - n0 + b1 - b0):>17.3f}")
    print(f"@@ exporters_rss_mb {statistics.median(both):.2f}")
    print(f"@@ exporters_cpu_pct {cpu(n1 - n0 + b1 - b0):.3f}")
PY
