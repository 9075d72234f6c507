#!/usr/bin/env bash
# A server whose heap grows: one `flashsale serve` (hot_server.sh), three 8 s hot-item rounds
# of `wrk -t2 -c256` (every request a new buyer), the p99 and resident set after each, and a
# `perf record --call-graph dwarf` of the server during the third (ADR 0059: the tail that
# grows with the heap, and what the allocator does on growth).
#   bash scripts/perf/heap_growth.sh target/alloc/flashsale-mimalloc /tmp/mi3.data
#   perf script -i /tmp/mi3.data > /tmp/mi3.txt   # then count samples by frame
set -euo pipefail
BIN=$1; OUT=$2; shift 2
source "$(dirname "$0")/hot_server.sh"
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
for r in 1 2; do
  TOKEN=s wrk -t2 -c256 -d8s --latency -s "$LUA" http://127.0.0.1:8099 > "$TMP/wrk$r.out" 2>&1
  echo "round $r $(grep -E 'Requests/sec' "$TMP/wrk$r.out") p99 $(grep -E '^ +99%' "$TMP/wrk$r.out") $(grep VmRSS /proc/$SERVER_PID/status)"
done
TOKEN=s wrk -t2 -c256 -d8s --latency -s "$LUA" http://127.0.0.1:8099 > "$TMP/wrk3.out" 2>&1 &
WRK_PID=$!
perf record -F 499 --call-graph dwarf,16384 -o "$OUT" -p "$SERVER_PID" -- sleep 7 2>/dev/null
wait $WRK_PID
echo "round 3 $(grep -E 'Requests/sec' "$TMP/wrk3.out") p99 $(grep -E '^ +99%' "$TMP/wrk3.out") $(grep VmRSS /proc/$SERVER_PID/status)"
