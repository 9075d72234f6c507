#!/usr/bin/env bash
# What a shard executor submits to io_uring per reservation (ADR 0038, "timer churn"): starts
# `flashsale serve` (BINARY, default target/release/flashsale) on a scratch data dir, runs the
# hot-item wrk load (CONNECTIONS, SECONDS) and meanwhile records the tracepoint
# io_uring:io_uring_submit_req of the server for SECONDS-1 s; prints the reservations held, a
# histogram of the submitted opcodes and `perf stat` counts (task-clock, context switches,
# io_uring_enter calls) per reservation. Load-robust: counts per reservation, not rates.
# Usage: bash scripts/perf/uring_ops.sh [BINARY] [CONNECTIONS] [SECONDS] [EXTRA SERVE FLAGS...]
# Needs: perf (root or perf_event_paranoid <= 1 for tracepoints), wrk.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EXE=${1:-$ROOT/target/release/flashsale}; C=${2:-64}; D=${3:-4}; shift 3 2>/dev/null || shift $#
PORT=${PORT:-8189}
TMP=$(mktemp -d)
trap 'kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
"$EXE" serve --http 127.0.0.1:$PORT --quic 127.0.0.1:0 --data-dir "$TMP/data" --admin-token a \
  --storefront-token b --rate-limit-buyer-rps 0 "$@" > "$TMP/out" 2> "$TMP/err" &
SPID=$!
for _ in $(seq 150); do grep -q "http listening" "$TMP/out" 2>/dev/null && break; sleep 0.2; done
curl -sf -X PUT "http://127.0.0.1:$PORT/v1/skus/hot" -H "authorization: Bearer a" \
  -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
held() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -F' ' '/^flashsale_reservations_total\{outcome="held"/ {print $2}'; }
TOKEN=b SKU=hot wrk -t1 -c"$C" -d"$((D + 2))s" -s "$ROOT/gateway/examples/wrk/hot_item.lua" \
  "http://127.0.0.1:$PORT" > "$TMP/wrk" 2>&1 &
WPID=$!
sleep 1
h0=$(held)
perf stat -x, -o "$TMP/stat" -e task-clock,context-switches,syscalls:sys_enter_io_uring_enter \
  -p "$SPID" -- perf record -q -e io_uring:io_uring_submit_req -o "$TMP/rec" -p "$SPID" -- sleep "$((D - 1))" \
  > /dev/null 2>&1
h1=$(held)
wait "$WPID"
n=$((h1 - h0)); [ "$n" -gt 0 ] || n=1
echo "binary=$EXE connections=$C held_in_window=$n load=$(cut -d' ' -f1-3 /proc/loadavg)"
perf script -i "$TMP/rec" 2>/dev/null | grep -o "opcode [A-Z_]*" | sort | uniq -c | sort -rn |
  awk -v n="$n" '{printf "  %-14s %8d  %.2f per reservation\n", $3, $1, $1 / n}'
awk -F, -v n="$n" '!/^#/ && NF > 2 {printf "  %-28s %.3f per reservation\n", $3, ($3 == "task-clock" ? $1 * 1000 : $1) / n}' "$TMP/stat" |
  sed 's/task-clock  */task-clock (us)/'
