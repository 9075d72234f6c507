#!/usr/bin/env bash
# Group-commit latency under the hot item (ADR 0045, fifth round): one `flashsale serve`, one
# wrk hot-item run, then the log's batch and commit-latency metrics from /metrics (mean commit
# latency = commit_latency_seconds_sum / _count; reservations per fdatasync = batch size mean).
# Usage: bash scripts/perf/commit_latency.sh BIN CONNECTIONS SECONDS [serve flags...]
#   e.g. bash scripts/perf/commit_latency.sh target/release/flashsale 256 8 --http-runtime tokio
# Needs: wrk, a release build. Port 8099 on 127.0.0.1.
set -euo pipefail
BIN=$1; C=$2; D=$3; shift 3
# shellcheck source=hot_server.sh
source "$(dirname "$0")/hot_server.sh" "$@"
out=$(TOKEN=s SKU=hot wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$ROOT/gateway/examples/wrk/hot_item.lua" http://127.0.0.1:8099)
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
p99=$(echo "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
curl -s http://127.0.0.1:8099/metrics | awk -v rps="$rps" -v p99="$p99" '
  /^flashsale_log_batch_size_records_sum / {recs = $2}
  /^flashsale_log_commit_latency_seconds_sum / {lat = $2}
  /^flashsale_log_commit_latency_seconds_count / {n = $2}
  END {printf "rps=%s p99_us=%s batches=%d records_per_fsync=%.1f commit_mean_ms=%.2f\n", rps, p99, n, recs / (n ? n : 1), lat * 1000 / (n ? n : 1)}'
