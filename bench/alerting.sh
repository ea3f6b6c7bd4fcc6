#!/usr/bin/env bash
# Alerting latency, two figures:
#  1. rules: from the arrival of the deciding check result to the alert handed to notification
#     (transition and outbox committed), through the real ingest handler on SQLite
#     (collector/examples/rules_latency.rs);
#  2. end to end: from a target stopping to the firing message at a Slack-style receiver, a
#     PagerDuty Events API v2 receiver and a real SMTP server, with real collector and agent
#     binaries, a 1 s check interval, failure_threshold = 1 and group_wait = "0s"
#     (tests/examples/notify_latency.rs).
# Usage: bench/alerting.sh [trials, default 20] [transitions, default 2000]. Release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-20}
transitions=${2:-2000}
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore aiosmtpd
fi
cargo build --release -q -p lookout-collector -p lookout-agent --bins
cargo build --release -q -p lookout-collector --example rules_latency
cargo build --release -q -p lookout-tests --example notify_latency
echo "## Rules: deciding result to alert handed to notification ($transitions checks fire, then resolve)"
./target/release/examples/rules_latency "$transitions"
echo
echo "## End to end: target stops to notification received ($trials trials, 1 s interval)"
./target/release/examples/notify_latency "$trials"
