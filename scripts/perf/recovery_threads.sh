#!/bin/sh
# Recovery's CPU per thread, load-robust (ADR 0036, sixth round): runs each `recovery_time`
# BINARY in turn (alternated, ROUNDS times) under `perf sched record`, then prints the
# recovery's wall clock, and per recovery thread (the shard executor, the replay reader) its
# CPU time, its wait for a CPU (preempted or runnable) and its sleep (I/O, channel, locks),
# threads with more than 50 ms of CPU. Log generation runs in other threads (not counted).
# Usage: [EXTRA="--shards 2"] sh scripts/perf/recovery_threads.sh EVENTS ROUNDS MODE DIR BINARY...
set -eu
events=$1
rounds=$2
mode=$3
dir=$4
shift 4
r=1
while [ "$r" -le "$rounds" ]; do
  for b in "$@"; do
    rm -rf "$dir" "$dir.sched"
    echo "== round $r $b $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    perf sched record -o "$dir.sched" -- "$b" "$events" "$dir" --replay "$mode" ${EXTRA:-} 2>&1 \
      | grep -E "recovered|Error" || true
    # `perf sched record` sees the whole machine: only this binary's threads count.
    comm=$(basename "$b" | cut -c1-15)
    perf sched timehist -i "$dir.sched" --state 2>/dev/null | awk -v comm="$comm" '
      index($3, comm "[") == 1 && pid == "" { pid = substr($3, length(comm) + 2); sub(/\].*/, "", pid) }
      pid != "" && $3 ~ ("^flashsale-(shard|repla).*/" pid "\\]") {
        t = $3; if (t in prev) { if (prev[t] == "R") pre[t] += $4; else slp[t] += $4; }
        run[t] += $6; dly[t] += $5; prev[t] = $7;
      }
      END { for (t in run) if (run[t] > 50) printf "  %-30s cpu %6.0f ms  waiting-for-cpu %6.0f ms  sleeping %6.0f ms\n", t, run[t], pre[t] + dly[t], slp[t] }'
    rm -rf "$dir" "$dir.sched"
  done
  r=$((r + 1))
done
