#!/usr/bin/env bash
# Log benchmarks (tests/examples/logs_bench.rs), release builds:
#  1. agent: one file tailed and shipped to a receiver that decompresses and counts: MiB/s;
#  2. e2e: the same file through the real collector until every line is stored and indexed;
#  3. ingest: the collector alone, 4 senders of pre-encoded 10,000-line batches: lines/s, then
#     search latency over everything stored.
# Usage: bench/logs.sh [agent lines, default 2000000] [ingest lines, default 10000000]
set -euo pipefail
cd "$(dirname "$0")/.."
agent_lines=${1:-2000000}
ingest_lines=${2:-10000000}
cargo build --release -q -p lookout-collector -p lookout-agent --bins
cargo build --release -q -p lookout-tests --example logs_bench
./target/release/examples/logs_bench agent --lines "$agent_lines"
./target/release/examples/logs_bench e2e --lines "$agent_lines"
./target/release/examples/logs_bench ingest --lines "$ingest_lines"
