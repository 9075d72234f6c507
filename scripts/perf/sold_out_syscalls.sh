#!/usr/bin/env bash
# The sold-out answer against the do-nothing hyper server, per request (ADR 0043): starts the
# baseline example and one `flashsale serve` per BINARY, puts SKU `gone` (stock 0) on each,
# then, ROUNDS times, alternating servers, runs wrk (hot_item.lua, SKU=gone) for SECONDS while
# `perf stat -p PID` counts the server's task-clock, context switches and every syscall
# tracepoint (syscalls:sys_enter_*); prints, per server, the median per request of each
# count above 0.01, and the bytes of one answer (head and body). Load-robust: per request.
# Usage: bash scripts/perf/sold_out_syscalls.sh CONNECTIONS SECONDS ROUNDS NAME=BINARY...
#   e.g. bash scripts/perf/sold_out_syscalls.sh 256 5 3 main=/tmp/sold-base-flashsale \
#        new=target/release/flashsale
# Needs: perf (perf_event_paranoid <= 1 or root, for tracepoints), wrk, a release build of the
#   baseline example (target/release/examples/baseline).
set -euo pipefail
C=${1:-256}; D=${2:-5}; R=${3:-3}; shift 3 || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TMP=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$ROOT/target/release/examples/baseline" 127.0.0.1:9190 > "$TMP/baseline.out" &
PIDS+=($!)
NAMES=(baseline); PORTS=(9190); SPIDS=($!)
port=8191
for spec in "$@"; do
  name=${spec%%=*}; exe=${spec#*=}; [[ $exe == /* ]] || exe=$ROOT/$exe
  "$exe" serve --http 127.0.0.1:$port --quic 127.0.0.1:0 --data-dir "$TMP/data-$name" \
    --admin-token a --storefront-token b --rate-limit-buyer-rps 0 --header-timeout-ms 120000 \
    --max-connections 20000 > "$TMP/$name.out" 2> "$TMP/$name.err" &
  PIDS+=($!); SPIDS+=($!); NAMES+=("$name"); PORTS+=($port)
  for _ in $(seq 150); do grep -q "http listening" "$TMP/$name.out" 2>/dev/null && break; sleep 0.2; done
  curl -sf -X PUT "http://127.0.0.1:$port/v1/skus/gone" -H "authorization: Bearer a" \
    -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null
  port=$((port + 1))
done
sleep 1
for i in "${!NAMES[@]}"; do
  bytes=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' -X POST \
    "http://127.0.0.1:${PORTS[$i]}/v1/reservations" -H "authorization: Bearer b" \
    -H 'content-type: application/json' -d '{"buyer":"b1","lines":[{"sku":"gone","qty":1}]}')
  echo "${NAMES[$i]}: answer head+body bytes: $bytes"
done
for r in $(seq "$R"); do
  echo "# round $r load $(cut -d' ' -f1-3 /proc/loadavg)"
  for i in "${!NAMES[@]}"; do
    perf stat -x, -o "$TMP/stat-${NAMES[$i]}-$r" -e task-clock,context-switches \
      -e 'syscalls:sys_enter_*' -p "${SPIDS[$i]}" -- sleep "$D" > /dev/null 2>&1 &
    sp=$!
    out=$(TOKEN=b SKU=gone wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$LUA" \
      "http://127.0.0.1:${PORTS[$i]}" 2>&1)
    wait "$sp" || true
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$n" > "$TMP/n-${NAMES[$i]}-$r"
    echo "${NAMES[$i]} round $r: requests=$n $(echo "$out" | awk '/Requests\/sec/ {print "rps=" $2}')"
  done
done
python3 - "$TMP" "$R" "${NAMES[@]}" <<'PY'
import statistics, sys, collections
tmp, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for name in names:
    per = collections.defaultdict(list)
    for r in range(1, rounds + 1):
        n = max(int(open(f"{tmp}/n-{name}-{r}").read().strip() or 0), 1)
        for line in open(f"{tmp}/stat-{name}-{r}"):
            f = line.strip().split(",")
            if len(f) < 3 or line.startswith("#"):
                continue
            try:
                v = float(f[0])
            except ValueError:
                continue
            key = f[2].split(":")[-1].replace("sys_enter_", "")
            per[key].append(v * (1e3 if key == "task-clock" else 1) / n)
    shown = {k: statistics.median(v) for k, v in per.items() if statistics.median(v) >= 0.01}
    total = sum(v for k, v in shown.items() if k not in ("task-clock", "context-switches"))
    print(f"{name}: task_clock_us_per_req={shown.pop('task-clock', 0):.2f} "
          f"ctxsw_per_req={shown.pop('context-switches', 0):.3f} syscalls_per_req={total:.2f}")
    for k, v in sorted(shown.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<20} {v:.3f}")
PY
