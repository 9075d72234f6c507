#!/bin/sh
# Same-run A/B of two builds of a benchmark example, alternated ROUNDS times (A B A B …), so both
# see the same machine noise (ADR 0029). Copy the "before" binary aside before rebuilding, e.g.:
#   cp target/release/examples/engine_hot_path /tmp/hot.before   # on the old commit
#   sh scripts/perf/ab.sh /tmp/hot.before target/release/examples/engine_hot_path 3 200000 both 7
#   sh scripts/perf/ab.sh /tmp/rec.before target/release/examples/recovery_time 2 10000000
# Everything after ROUNDS is passed to both binaries.
set -eu
a=$1
b=$2
rounds=$3
shift 3
i=1
while [ "$i" -le "$rounds" ]; do
    for bin in "$a" "$b"; do
        echo "== $bin (round $i)"
        "$bin" "$@"
    done
    i=$((i + 1))
done
