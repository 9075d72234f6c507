#!/bin/sh
# Instructions per reserve+confirm pair of an `engine_hot_path` build (deterministic; ADR 0029):
# callgrind totals at 150,000 and 50,000 pairs, differenced, so set-up and teardown cancel.
#   cargo build --release -p flashsale-benches --example engine_hot_path
#   sh scripts/perf/ir_per_pair.sh target/release/examples/engine_hot_path plain|encode
set -eu
bin=$1
mode=${2:-plain}
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$mode" 1 2>&1 |
        sed -n 's/.*refs: *//p' | tr -d ,
}
i1=$(count 50000)
i2=$(count 150000)
echo "$bin $mode: $(((i2 - i1) / 100000)) instructions per pair"
