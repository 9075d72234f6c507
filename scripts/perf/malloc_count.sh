#!/usr/bin/env bash
# glibc allocator calls (malloc + realloc + calloc) per request of `flashsale serve` under the
# hot-item load, by thread name, for builds alternated in one run (ADR 0055): each round starts
# every BINARY in turn (hot_server.sh), runs `wrk -t2 -cCONNS -dSECS` with
# gateway/examples/wrk/hot_item.lua while `perf stat` counts the uprobes on the server's
# threads for the same SECS, and prints calls per request by thread (digits dropped).
# A count, not a timing: the load on the host changes how many batches and executor turns a
# request shares, not what one costs. Needs root (uprobes); adds the three probes if missing.
# Usage: bash scripts/perf/malloc_count.sh CONNS SECS ROUNDS BINARY...
set -euo pipefail
C=$1; D=$2; R=$3; shift 3
[ "$R" -ge 1 ] && [ "$R" -le 10 ] || { echo "ROUNDS must be 1..10" >&2; exit 2; }
[ "$D" -ge 1 ] && [ "$D" -le 60 ] || { echo "SECS must be 1..60" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIBC=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
for f in malloc realloc calloc; do
  perf probe -l 2>/dev/null | grep -q "probe_libc:$f " || perf probe -q -x "$LIBC" --add "$f"
done
for r in $(seq "$R"); do
  for bin in "$@"; do
    (
      BIN=$bin; set --
      # shellcheck source=scripts/perf/hot_server.sh
      source "$ROOT/scripts/perf/hot_server.sh"
      perf stat -e probe_libc:malloc,probe_libc:realloc,probe_libc:calloc -p "$SERVER_PID" \
        --per-thread -x, -o "$TMP/stat" -- sleep "$D" &
      PERF=$!
      out=$(TOKEN=s timeout $((D + 30)) wrk -t2 -c"$C" -d"${D}s" -s "$ROOT/gateway/examples/wrk/hot_item.lua" http://127.0.0.1:8099)
      wait $PERF
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      echo "# round $r $(basename "$bin") load $(cut -d' ' -f1 /proc/loadavg) requests=$reqs"
      # Lines: "comm-tid,count,,event,...": sum the three events by thread name.
      awk -F, -v reqs="$reqs" '
        $1 ~ /-[0-9]+$/ && $2 ~ /^[0-9]+$/ { name = $1; sub(/-[0-9]+$/, "", name); gsub(/[0-9]/, "", name); n[name] += $2; tot += $2 }
        END { for (k in n) if (n[k] > 0) printf "  %-18s %7.2f calls/req\n", k, n[k] / reqs
              printf "  %-18s %7.2f calls/req\n", "TOTAL", tot / reqs }' "$TMP/stat" | sort
    )
  done
done
