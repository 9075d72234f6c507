#!/usr/bin/env bash
# A call-graph profile of `flashsale serve` by thread (ADR 0065): one server (hot_server.sh,
# plus a SKU `gone` of stock 0), `wrk -t2 -c256 -d12s` on SKU (hot or gone), `perf record -F 999
# --call-graph dwarf` of the server for 4 s from second 4; then `perf script -F tid,ip,sym`
# into OUT.txt and the samples sorted into categories for the busiest thread
# (scripts/perf/categories.py; run it again with another thread id or `all`).
# Usage: bash scripts/perf/thread_profile.sh BINARY SKU OUT
set -euo pipefail
BIN=$1; SKU=$2; OUT=$3
set --
source "$(dirname "$0")/hot_server.sh"
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TOKEN=s SKU=$SKU wrk -t2 -c256 -d12s -s "$LUA" http://127.0.0.1:8099 > "$TMP/wrk.out" 2>&1 &
WRK=$!
sleep 4
perf record -F 999 --call-graph dwarf,16384 -o "$OUT.data" -p "$SERVER_PID" -- sleep 4 > "$TMP/perf.log" 2>&1
wait $WRK
echo "sku=$SKU load $(cut -d' ' -f1-3 /proc/loadavg) $(grep -E 'Requests/sec' "$TMP/wrk.out")"
perf script -i "$OUT.data" -F tid,ip,sym --no-inline > "$OUT.txt" 2>/dev/null
top=$(awk 'NF && $0 !~ /^[ \t]/ {print $1}' "$OUT.txt" | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
python3 "$ROOT/scripts/perf/categories.py" "$OUT.txt" "$top"
