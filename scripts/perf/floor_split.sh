#!/usr/bin/env bash
# The serving floor against the handler (ADR 0052): the bare hyper server (`baseline` example)
# and one or more `flashsale serve` builds, each answering the cheapest route (`GET /health`,
# plain wrk, no script: the runtime's cost with next to no handler) and the sold-out
# reservation (`POST /v1/reservations` on a SKU with no stock, `hot_item.lua`), alternated in
# ROUNDS rounds of SECONDS each. Prints per run the rate and the server's CPU per request (user +
# kernel, all threads, /proc/PID/stat), then the medians.
# Usage: bash scripts/perf/floor_split.sh CONNECTIONS SECONDS ROUNDS NAME=BINARY...
#   e.g. bash scripts/perf/floor_split.sh 256 6 3 main=target/alloc/flashsale-main floor=target/release/flashsale
# Needs: wrk, target/release/examples/baseline (cargo build --release -p flashsale-gateway --example baseline).
set -euo pipefail
C=${1:-256}; D=${2:-6}; R=${3:-3}; shift 3 || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TMP=$(mktemp -d); ulimit -n "$(ulimit -Hn)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$ROOT/target/release/examples/baseline" 127.0.0.1:9190 > "$TMP/baseline.out" &
PIDS+=($!); NAMES=(bare); PORTS=(9190); SPIDS=($!)
port=8191
for spec in "$@"; do
  name=${spec%%=*}; exe=${spec#*=}; [[ $exe == /* ]] || exe=$ROOT/$exe
  "$exe" serve --http 127.0.0.1:$port --quic 127.0.0.1:0 --data-dir "$TMP/data-$name" \
    --admin-token a --storefront-token s --rate-limit-buyer-rps 0 --header-timeout-ms 120000 \
    --max-connections 20000 > "$TMP/$name.out" 2> "$TMP/$name.err" &
  PIDS+=($!); SPIDS+=($!); NAMES+=("$name"); PORTS+=($port); port=$((port + 1))
done
for i in "${!NAMES[@]}"; do
  [[ ${NAMES[$i]} == bare ]] && continue
  for _ in $(seq 150); do grep -q "http listening" "$TMP/${NAMES[$i]}.out" 2>/dev/null && break; sleep 0.2; done
  curl -sf -X PUT "http://127.0.0.1:${PORTS[$i]}/v1/skus/gone" -H "authorization: Bearer a" \
    -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null
done
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # name port pid route
  local b; b=$(ticks "$3")
  local out
  if [[ $4 == health ]]; then
    out=$(wrk -t2 -c"$C" -d"${D}s" "http://127.0.0.1:$2/health" 2>&1)
  else
    out=$(TOKEN=s SKU=gone wrk -t2 -c"$C" -d"${D}s" -s "$LUA" "http://127.0.0.1:$2" 2>&1)
  fi
  local a; a=$(ticks "$3")
  local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  python3 -c 'import os, sys; t = 1e6 / os.sysconf("SC_CLK_TCK")
print(f"{sys.argv[1]} route={sys.argv[2]} rps={float(sys.argv[3]):.0f} cpu_us_per_req={(int(sys.argv[5]) - int(sys.argv[4])) * t / max(int(sys.argv[6]), 1):.1f}")' \
    "$1" "$4" "$rps" "$b" "$a" "$n" | tee -a "$TMP/runs"
}
for r in $(seq "$R"); do
  echo "# round $r load $(cut -d' ' -f1-3 /proc/loadavg)"
  for route in health gone; do
    for i in "${!NAMES[@]}"; do run "${NAMES[$i]}" "${PORTS[$i]}" "${SPIDS[$i]}" "$route"; done
  done
done
python3 - "$TMP/runs" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split(); kv = dict(x.split("=") for x in f[1:])
    rows[(kv["route"], f[0])].append((float(kv["rps"]), float(kv["cpu_us_per_req"])))
for (route, name), v in sorted(rows.items()):
    bare = rows[(route, "bare")]
    ratios = [a[0] / b[0] for a, b in zip(v, bare) if b[0]]
    print(f"summary route={route:6} {name:>8} rps_median={statistics.median(x for x, _ in v):8.0f} "
          f"cpu_us_per_req_median={statistics.median(c for _, c in v):5.1f} "
          f"ratio_median={statistics.median(ratios):.2f} ratios={' '.join(f'{x:.2f}' for x in ratios)}")
PY
