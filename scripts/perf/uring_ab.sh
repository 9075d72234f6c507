#!/usr/bin/env bash
# Alternating A/B of `uring_ops.sh` (ADR 0038, fourth round): ROUNDS rounds, each running every
# BINARY once in turn under the same hot-item load, then a table of the per-reservation medians
# (io_uring opcodes, io_uring_enter, task-clock, context switches) per binary.
# Usage: bash scripts/perf/uring_ab.sh ROUNDS CONNECTIONS SECONDS NAME=BINARY [NAME=BINARY...]
# Example: bash scripts/perf/uring_ab.sh 3 256 4 base=/tmp/hot-base-flashsale new=target/release/flashsale
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=$1; C=$2; D=$3; shift 3
OUT=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for nb in "$@"; do
    name=${nb%%=*}; bin=${nb#*=}
    bash "$ROOT/scripts/perf/uring_ops.sh" "$bin" "$C" "$D" > "$OUT/$name.$r" 2>&1 || true
    echo "== round $r $name"; cat "$OUT/$name.$r"
  done
done
echo "== medians over $ROUNDS rounds (per reservation)"
for nb in "$@"; do
  name=${nb%%=*}
  cat "$OUT/$name".* | awk -v name="$name" '
    / per reservation/ { k = $1; v = $(NF - 2); gsub(/^[^0-9.]*/, "", v); vals[k] = vals[k] " " v }
    END {
      line = name ":"
      for (k in vals) {
        n = split(substr(vals[k], 2), a, " "); asort(a)
        line = line sprintf(" %s=%s", k, a[int((n + 1) / 2)])
      }
      print line
    }'
done
rm -rf "$OUT"
