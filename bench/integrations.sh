#!/usr/bin/env bash
# The agent's integrations beside the exporters they replace, measured in one run on this
# machine (issue #32's figure):
#   lookout-agent (the deployed build, [profile.agent]) with host metrics and the postgresql,
#   redis, nginx (stub_status and its access log) and, where podman runs, containers
#   integrations, each every 10 s, shipping to a local collector;
#   beside Debian's prometheus-node-exporter, prometheus-postgres-exporter,
#   prometheus-redis-exporter and prometheus-nginx-exporter reading the same peers, scraped
#   every 10 s (Debian packages no container exporter that reads podman: the containers part has
#   no anchor).
# The peers get a steady light load (a request to nginx and a Redis command every 100 ms, a
# PostgreSQL transaction every second) so the figures move.
# Prints RSS (median and max of samples every 5 s) and CPU (share of one core over the run) of
# the agent and of the exporters together, and `@@ key value` lines for bench/run.
# Usage: bench/integrations.sh [seconds, default 120]. Needs root to install packages.
# SKIP_BUILD=1 uses the binaries already built; NO_CONTAINERS=1 leaves the containers part out,
# NO_ACCESS_LOG=1 the access log (tailed, shipped and counted).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-120}
root=$PWD
need=()
for p in prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter \
  prometheus-nginx-exporter redis-server; do
  command -v "$p" >/dev/null || need+=("$p")
done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The packages start services where systemd runs; use our own instances.
systemctl stop prometheus-node-exporter prometheus-postgres-exporter prometheus-redis-exporter \
  prometheus-nginx-exporter redis-server nginx 2>/dev/null || true
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -q -p lookout-collector
  cargo build --profile agent -q -p lookout-agent --bin lookout-agent
fi
. scripts/lib/postgres.sh
work=$(mktemp -d)
chmod 755 "$work"
podman_service=
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  if [ -n "$podman_service" ]; then
    podman rm -f -t 0 lookout-bench-app >/dev/null 2>&1 || true
    kill "$podman_service" 2>/dev/null || true
  fi
  stop_postgres
  rm -rf "$work"
}
start_postgres
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port); rport=$(free_port); nport=$(free_port)
pg=$LOOKOUT_TEST_PG_URL
psql() { "$LOOKOUT_PG_BIN/psql" -q -X "$pg" "$@"; }
psql -c "CREATE ROLE lookout_monitor LOGIN PASSWORD 'bench-monitor' IN ROLE pg_monitor" \
  -c "CREATE TABLE bench (id serial PRIMARY KEY, at timestamptz DEFAULT now())"
monitor_url=${pg/postgres@/lookout_monitor:bench-monitor@}

redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$work/redis.log" 2>&1 &
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat > "$work/nginx/nginx.conf" <<NGINX
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
  client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp; uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  access_log $work/nginx/logs/access.log combined;
  server {
    listen 127.0.0.1:$nport;
    location = /status { stub_status; access_log off; }
    location / { return 200 "ok\n"; }
  }
}
NGINX
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.err" &

containers=
if [ -z "${NO_CONTAINERS:-}" ] && command -v podman >/dev/null; then
  export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/test/containers.conf}
  image=${LOOKOUT_BASE_IMAGE:-docker.io/library/debian:bookworm-slim}
  if podman image exists "$image"; then
    podman system service --time=0 "unix://$work/podman.sock" >"$work/podman.log" 2>&1 &
    podman_service=$!
    for _ in $(seq 1 50); do [ -S "$work/podman.sock" ] && break; sleep 0.1; done
    podman run -d --name lookout-bench-app --runtime runc \
      --network host --label com.docker.compose.project=bench \
      --label com.docker.compose.service=app "$image" \
      sh -c 'while true; do echo "tick $(date +%s)"; sleep 1; done' >/dev/null
    containers=1
  else
    echo "no base image $image (scripts/lib/deploy.sh makes it): containers left out" >&2
  fi
fi

cat > "$work/collector.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$work/collector"
read_tokens = ["bench-read-token-0123456789abcdef"]
[[agents]]
name = "bench"
token = "bench-token-0123456789abcdef"
TOML
cat > "$work/agent.toml" <<TOML
name = "bench"
collector = "http://127.0.0.1:$port"
token = "bench-token-0123456789abcdef"
data_dir = "$work/agent"
[host_metrics]
interval = "10s"
[[integrations]]
type = "postgresql"
url = "$monitor_url"
interval = "10s"
[[integrations]]
type = "redis"
url = "redis://127.0.0.1:$rport"
interval = "10s"
[[integrations]]
type = "nginx"
url = "http://127.0.0.1:$nport/status"
interval = "10s"
TOML
# The access log: tailed (and its lines shipped as logs) and counted by the nginx integration.
# NO_ACCESS_LOG=1 leaves it out, for the figure of what the exporters do too.
if [ -z "${NO_ACCESS_LOG:-}" ]; then
  sed -i "s|^url = \"http://127.0.0.1:$nport/status\"|&\naccess_log = \"$work/nginx/logs/access.log\"|" "$work/agent.toml"
  printf '[[logs]]\npaths = ["%s/nginx/logs/access.log"]\n' "$work" >> "$work/agent.toml"
fi
if [ -n "$containers" ]; then
  printf '[[integrations]]\ntype = "containers"\nurl = "unix://%s/podman.sock"\ninterval = "10s"\nlogs = true\n' \
    "$work" >> "$work/agent.toml"
fi
LOOKOUT_LOG=warn target/release/lookout-collector --config "$work/collector.toml" 2>"$work/collector.log" &
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
LOOKOUT_LOG=warn target/agent/lookout-agent --config "$work/agent.toml" 2>"$work/agent.log" &
agent=$!

# The exporters, on the same peers.
ne_port=$(free_port); pe_port=$(free_port); re_port=$(free_port); xe_port=$(free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" 2>"$work/ne.log" &
ne=$!
DATA_SOURCE_NAME="$monitor_url?sslmode=disable" prometheus-postgres-exporter \
  --web.listen-address="127.0.0.1:$pe_port" 2>"$work/pe.log" &
pe=$!
prometheus-redis-exporter --redis.addr="redis://127.0.0.1:$rport" \
  --web.listen-address="127.0.0.1:$re_port" 2>"$work/re.log" &
re=$!
prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$nport/status" \
  -web.listen-address="127.0.0.1:$xe_port" 2>"$work/xe.log" &
xe=$!
# Prometheus' part, by curl: each exporter scraped every 10 s.
( while sleep 10; do
    for p in $ne_port $pe_port $re_port $xe_port; do
      curl -s "http://127.0.0.1:$p/metrics" >/dev/null || true
    done
  done ) &
# The light load on the peers, the same for both sides.
python3 - "$nport" "$rport" <<'PY' &
import socket, sys, time
nport, rport = int(sys.argv[1]), int(sys.argv[2])
r = socket.create_connection(("127.0.0.1", rport))
while True:
    with socket.create_connection(("127.0.0.1", nport)) as s:
        s.sendall(b"GET /app HTTP/1.0\r\nHost: bench\r\n\r\n")
        while s.recv(4096):
            pass
    r.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
    r.recv(64)
    time.sleep(0.1)
PY
( while sleep 1; do psql -c "INSERT INTO bench DEFAULT VALUES" >/dev/null 2>&1 || true; done ) &
sleep 15
for p in $agent $ne $pe $re $xe; do
  kill -0 "$p" 2>/dev/null || { echo "a process stopped early: $p" >&2; tail -5 "$work"/*.log >&2; exit 1; }
done
# Each integration must be reading: a figure of an agent whose reads fail would flatter it.
python3 - "$port" "$containers" <<'PY'
import json, sys, time, urllib.request
port, containers = sys.argv[1], sys.argv[2]
want = {"postgresql", "redis", "nginx"} | ({"containers"} if containers == "1" else set())
seen = {}
for _ in range(100):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/metrics?agent=bench&name=lookout.integration.up&step=1s",
        headers={"Authorization": "Bearer bench-read-token-0123456789abcdef"})
    series = json.load(urllib.request.urlopen(req))["series"]
    seen = {s["labels"]["type"]: s["points"][-1]["last"] for s in series if s["points"]}
    if all(seen.get(t) == 1 for t in want):
        break
    time.sleep(0.2)
else:
    sys.exit(f"not every integration reads: {seen}")
print("reading:", ", ".join(sorted(seen)))
PY
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
exporters="$ne $pe $re $xe"
sum_ticks() { local t=0; for p in $exporters; do t=$((t + $(ticks "$p"))); done; echo $t; }
sum_rss() { local t=0; for p in $exporters; do t=$((t + $(rss "$p"))); done; echo $t; }
a0=$(ticks $agent); e0=$(sum_ticks); t0=$(date +%s.%N)
: > "$work/rss"
for _ in $(seq 1 $((secs / 5))); do
  sleep 5
  echo "$(rss $agent) $(sum_rss) $(rss $ne) $(rss $pe) $(rss $re) $(rss $xe)" >> "$work/rss"
done
a1=$(ticks $agent); e1=$(sum_ticks); t1=$(date +%s.%N)
python3 - "$work/rss" "$a0" "$a1" "$e0" "$e1" "$t0" "$t1" "$hz" "$containers" <<'PY'
import statistics, sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
a0, a1, e0, e1 = map(int, sys.argv[2:6]); t0, t1 = map(float, sys.argv[6:8]); hz = int(sys.argv[8])
containers = sys.argv[9] == "1"
el = t1 - t0
def cpu(d): return 100.0 * d / hz / el
col = lambda i: [r[i] / 1024 for r in rows]
print(f"run: {el:.0f} s, {len(rows)} RSS samples; agent integrations: postgresql, redis, nginx"
      + (", containers" if containers else " (containers left out)"))
print(f"{'':36}{'RSS median':>12}{'RSS max':>10}")
for name, i in [("lookout-agent", 0), ("the four exporters", 1), ("node_exporter", 2),
                ("postgres_exporter", 3), ("redis_exporter", 4), ("nginx_exporter", 5)]:
    print(f"{name:36}{statistics.median(col(i)):>9.2f} MiB{max(col(i)):>7.2f} MiB")
print(f"CPU % of a core: lookout-agent {cpu(a1 - a0):.3f}, the four exporters {cpu(e1 - e0):.3f}")
print(f"@@ integrations_agent_rss_mb {statistics.median(col(0)):.2f}")
print(f"@@ integrations_agent_rss_max_mb {max(col(0)):.2f}")
print(f"@@ integrations_agent_cpu_pct {cpu(a1 - a0):.3f}")
print(f"@@ integrations_exporters_rss_mb {statistics.median(col(1)):.2f}")
print(f"@@ integrations_exporters_cpu_pct {cpu(e1 - e0):.3f}")
PY
