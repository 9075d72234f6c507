#!/usr/bin/env bash
# A profile of the sold-out answer (ADR 0061): one `flashsale serve` (hot_server.sh) with a
# SKU `gone` of stock 0, `wrk -t2 -c256` on it for 10 s, and `perf record -F 999
# --call-graph dwarf` of the server for 6 s of it; then `perf script` into OUT.txt and the
# samples counted by frame (scripts/perf/frames.py: self and inclusive shares of the named
# frames).
#   bash scripts/perf/sold_out_profile.sh bin/flashsale-main /tmp/main
set -euo pipefail
BIN=$1; OUT=$2; shift 2
source "$(dirname "$0")/hot_server.sh"
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TOKEN=s SKU=gone wrk -t2 -c256 -d10s -s "$LUA" http://127.0.0.1:8099 > "$TMP/wrk.out" 2>&1 &
WRK_PID=$!
sleep 2
perf record -F 999 --call-graph dwarf,16384 -o "$OUT.data" -p "$SERVER_PID" -- sleep 6 2>/dev/null
wait $WRK_PID
echo "load $(cut -d' ' -f1-3 /proc/loadavg) $(grep -E 'Requests/sec' "$TMP/wrk.out")"
perf script -i "$OUT.data" > "$OUT.txt" 2>/dev/null
python3 "$ROOT/scripts/perf/frames.py" "$OUT.txt"
