#!/usr/bin/env bash
# The agent's resident memory with and without [fallback], measured side by side in one run:
# four agents of the `agent` profile build (two with [fallback] type = "webhook", two without),
# each with host metrics every 10 s and 20 HTTP checks every 10 s, shipping to one collector.
# VmRSS is read from /proc every 5 s from the first minute to the second (steady state) and the
# median of each agent is printed in MiB, with MB beside it.
# Usage: bench/agent-fallback-rss.sh [seconds, default 120]. COLLECTOR=path picks the collector
# binary (default target/release/lookout-collector, else target/debug/lookout-collector: its
# build does not change the agent's memory). SKIP_BUILD=1 uses the agent already built.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --profile agent -q -p lookout-agent --bin lookout-agent
fi
collector=${COLLECTOR:-target/release/lookout-collector}
[ -x "$collector" ] || collector=target/debug/lookout-collector
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
free() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free)
hook=$(free)
names=(plain-1 fallback-1 plain-2 fallback-2)
{
  printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s/collector"\n' "$port" "$work"
  for n in "${names[@]}"; do
    printf '[[agents]]\nname = "%s"\ntoken = "%s-token-0123456789abcdef"\n' "$n" "$n"
  done
} > "$work/collector.toml"
# The webhook the fallback would call: a listener that answers 200 (the collector stays up, so
# nothing is sent; the client and its task are what is measured).
python3 -m http.server "$hook" --bind 127.0.0.1 >/dev/null 2>&1 &
LOOKOUT_LOG=warn "$collector" --config "$work/collector.toml" 2>"$work/collector.log" &
sleep 2
pids=()
for n in "${names[@]}"; do
  {
    printf 'name = "%s"\ncollector = "http://127.0.0.1:%s"\ntoken = "%s-token-0123456789abcdef"\ndata_dir = "%s/%s"\n' "$n" "$port" "$n" "$work" "$n"
    printf '[host_metrics]\ninterval = "10s"\n'
    case $n in fallback-*)
      printf '[fallback]\ntype = "webhook"\nurl = "http://127.0.0.1:%s/hook/secret"\nafter = "5m"\n' "$hook" ;;
    esac
    for i in $(seq 1 20); do
      printf '[[checks]]\nname = "c%s"\ntype = "http"\nurl = "http://127.0.0.1:%s/healthz"\ninterval = "10s"\ntimeout = "5s"\n' "$i" "$port"
    done
  } > "$work/$n.toml"
  LOOKOUT_LOG=warn target/agent/lookout-agent --config "$work/$n.toml" 2>"$work/$n.log" &
  pids+=($!)
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
sleep $((secs / 2))
for _ in $(seq 1 $((secs / 2 / 5))); do
  for i in "${!names[@]}"; do echo "${names[$i]} $(rss "${pids[$i]}")" >> "$work/rss"; done
  sleep 5
done
python3 - "$work/rss" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, kib = line.split()
    by.setdefault(name, []).append(int(kib))
for name, v in sorted(by.items()):
    m = statistics.median(v)
    print(f"{name:12} VmRSS median {m / 1024:.2f} MiB ({m * 1024 / 1e6:.2f} MB), max {max(v) / 1024:.2f} MiB, {len(v)} samples")
PY
