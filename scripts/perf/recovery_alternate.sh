#!/bin/sh
# Recovery wall clock, two builds of the `recovery_time` example alternated in one run
# (ADR 0036, fourth round): each round runs BASE then NEW, each writing its own log of EVENTS
# events and recovering it once (MODE: sequential by default; `pipelined`, the default of a
# lone shard on a 2-core machine, validates on the reader thread since ADR 0036's fifth round),
# with the load average before each run. EXTRA (environment) is passed to both binaries after
# the mode, e.g. `EXTRA="--shards 2"` (ADR 0036, seventh round).
# Usage: [EXTRA=...] sh scripts/perf/recovery_alternate.sh BASE_BINARY NEW_BINARY [EVENTS] [ROUNDS] [DIR] [MODE]
set -eu
base=$1
new=$2
events=${3:-10000000}
rounds=${4:-3}
dir=${5:-./target/recovery-alternate}
mode=${6:-sequential}
extra=${EXTRA:-}
[ "$rounds" -ge 1 ] && [ "$rounds" -le 10 ] || { echo "ROUNDS must be 1..10" >&2; exit 2; }
r=1
while [ "$r" -le "$rounds" ]; do
  for b in "$base" "$new"; do
    rm -rf "$dir"
    echo "== round $r $b $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2086 # EXTRA is split into arguments on purpose.
    timeout 900 "$b" "$events" "$dir" --replay "$mode" $extra 2>&1 | grep -E "round|wrote|matches|Error" || true
    rm -rf "$dir"
  done
  r=$((r + 1))
done
echo "== end $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
