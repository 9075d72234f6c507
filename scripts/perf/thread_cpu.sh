#!/usr/bin/env bash
# CPU per request of each thread group of `flashsale serve` under the hot-item load, for
# builds alternated in one run: each round starts every BINARY in turn (hot_server.sh), runs
# `wrk -t2 -cCONNS -dSECS` with gateway/examples/wrk/hot_item.lua, and prints the server's
# CPU time (user + kernel, from /proc/PID/task/*/stat) per request, summed by thread name
# (digits dropped: iou-wrk-123 -> iou-wrk-). Shows where a change moved CPU between threads,
# e.g. the events ledger keeper's share (ADR 0050).
# Usage: bash scripts/perf/thread_cpu.sh CONNS SECS ROUNDS BINARY...
set -euo pipefail
C=$1; D=$2; R=$3; shift 3
[ "$R" -ge 1 ] && [ "$R" -le 10 ] || { echo "ROUNDS must be 1..10" >&2; exit 2; }
[ "$D" -ge 1 ] && [ "$D" -le 60 ] || { echo "SECS must be 1..60" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TCK=$(getconf CLK_TCK)
snapshot() { # PID -> "name ticks" per thread
  for t in /proc/"$1"/task/*; do
    name=$(tr -d '0-9' < "$t/comm" | tr ' ' '_')
    # Fields after the ")" of comm: utime is 14th, stime 15th of the whole line.
    ticks=$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')
    echo "$name $ticks"
  done
}
for r in $(seq "$R"); do
  for bin in "$@"; do
    (
      BIN=$bin; set --
      # shellcheck source=scripts/perf/hot_server.sh
      source "$ROOT/scripts/perf/hot_server.sh"
      snapshot "$SERVER_PID" > "$TMP/before"
      out=$(TOKEN=s timeout $((D + 30)) wrk -t2 -c"$C" -d"${D}s" -s "$ROOT/gateway/examples/wrk/hot_item.lua" http://127.0.0.1:8099)
      snapshot "$SERVER_PID" > "$TMP/after"
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      echo "# round $r $(basename "$bin") load $(cut -d' ' -f1 /proc/loadavg) requests=$reqs rps=$rps"
      awk -v reqs="$reqs" -v tck="$TCK" '
        NR == FNR { b[$1] += $2; next } { a[$1] += $2 }
        END { tot = 0; for (k in a) { d = a[k] - b[k]; tot += d; if (d > 0) printf "  %-18s %7.2f us/req\n", k, d / tck * 1e6 / reqs }
              printf "  %-18s %7.2f us/req\n", "TOTAL", tot / tck * 1e6 / reqs }' "$TMP/before" "$TMP/after" | sort
    )
  done
done
