#!/usr/bin/env bash
# Who waits for a CPU under the hot item (ADR 0045, fifth round): one `flashsale serve`, an
# 8-second wrk hot-item run, `perf sched record` over 3 s of it, then `perf sched latency`
# (per thread: run time, switches, average and maximum delay from wake-up to running).
# Usage: bash scripts/perf/sched_delay.sh BIN CONNECTIONS [serve flags...]
# Needs: wrk, perf, a release build. Port 8099 on 127.0.0.1.
set -euo pipefail
BIN=$1; C=$2; shift 2
# shellcheck source=hot_server.sh
source "$(dirname "$0")/hot_server.sh" "$@"
(TOKEN=s SKU=hot wrk -t2 -c"$C" -d8s --timeout 10s -s "$ROOT/gateway/examples/wrk/hot_item.lua" \
  http://127.0.0.1:8099 | grep -E "Requests/sec") &
W=$!
sleep 3
perf sched record -o "$TMP/sched.data" -- sleep 3 > /dev/null 2>&1
wait $W
perf sched latency -i "$TMP/sched.data" --sort max 2>/dev/null |
  grep -E "Task|iou-wrk|flashsale|tokio|wrk" | head -16
