#!/usr/bin/env bash
# Instructions and CPU per HTTP request of `flashsale serve` builds, alternated (ADR 0050): the
# serving path cannot run under valgrind (glommio's io_uring), so its low-noise measure is
# `perf stat -e instructions:u,instructions:k,task-clock -p PID` over a fixed wrk run, divided
# by the requests wrk reports. Each binary gets its own server (data directory on /dev/shm,
# where fdatasync costs nothing), started up front; every round runs each binary once per phase.
# Usage: bash scripts/perf/http_instr.sh CONNECTIONS SECONDS ROUNDS BINARY...
#   e.g. bash scripts/perf/http_instr.sh 256 8 3 target/base/flashsale target/release/flashsale
#   PHASES="gone hot" (default) picks the SKUs: `gone` is sold out (stock 0), `hot` is the
#   durable hot item. Prints one line per run and the medians per binary and phase.
set -euo pipefail
C=$1; D=$2; R=$3; shift 3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TMP=$(mktemp -d); ulimit -n "$(ulimit -Hn)"
PIDS=(); DIRS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP" "${DIRS[@]}"' EXIT
port=8181
for bin in "$@"; do
  dir=$(mktemp -d /dev/shm/flashsale-instr-XXXXXX); DIRS+=("$dir")
  "$bin" serve --http 127.0.0.1:$port --quic 127.0.0.1:0 --data-dir "$dir" --admin-token a \
    --storefront-token s --rate-limit-buyer-rps 0 --header-timeout-ms 120000 \
    --max-connections 20000 > "$TMP/$port.out" 2> "$TMP/$port.err" &
  PIDS+=($!)
  for _ in $(seq 150); do grep -q "http listening" "$TMP/$port.out" 2>/dev/null && break; sleep 0.2; done
  grep -q "http listening" "$TMP/$port.out" || { echo "$bin did not start"; cat "$TMP/$port.err"; exit 1; }
  curl -sf -X PUT http://127.0.0.1:$port/v1/skus/hot -H "authorization: Bearer a" \
    -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
  curl -sf -X PUT http://127.0.0.1:$port/v1/skus/gone -H "authorization: Bearer a" \
    -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null
  port=$((port + 1))
done
for r in $(seq "$R"); do
  for phase in ${PHASES:-gone hot}; do
    for i in "${!PIDS[@]}"; do
      pid=${PIDS[$i]}; port=$((8181 + i)); bin=${*:$((i + 1)):1}
      perf stat -x, -o "$TMP/stat" -e instructions:u,instructions:k,task-clock -p "$pid" \
        -- sleep "$D" > /dev/null 2>&1 &
      sp=$!
      out=$(TOKEN=s SKU=$phase wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$LUA" http://127.0.0.1:$port 2>&1)
      wait "$sp" || true
      n=$(echo "$out" | awk '/requests in/ {print $1}')
      python3 - "$TMP/stat" "$n" "$bin" "$phase" "$r" <<'PY' | tee -a "$TMP/runs"
import sys
v = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and not line.startswith("#"):
        try: v[f[2]] = float(f[0])
        except ValueError: pass
n = max(int(sys.argv[2] or 0), 1)
print(f"bin={sys.argv[3]} phase={sys.argv[4]} round={sys.argv[5]} requests={n} "
      f"instr_u_per_req={v.get('instructions:u', 0) / n:.0f} instr_k_per_req={v.get('instructions:k', 0) / n:.0f} "
      f"task_clock_us_per_req={v.get('task-clock', 0) * 1e3 / n:.2f}")
PY
    done
  done
done
python3 - "$TMP/runs" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split())
    rows[(f["phase"], f["bin"])].append(f)
for (phase, bin_), fs in sorted(rows.items()):
    med = lambda k: statistics.median(float(f[k]) for f in fs)
    print(f"median phase={phase} bin={bin_} instr_u_per_req={med('instr_u_per_req'):.0f} "
          f"instr_k_per_req={med('instr_k_per_req'):.0f} task_clock_us_per_req={med('task_clock_us_per_req'):.2f} "
          f"requests={med('requests'):.0f}")
PY
