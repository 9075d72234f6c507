#!/usr/bin/env bash
# The waiting-room bench of docs/benchmarks.md ("Waiting room"), one fresh server per call:
#   scripts/perf/queue_bench.sh SPREAD POLLER [CONNECTIONS]
# SPREAD: the server's --queue-poll-spread (even | by-position); POLLER: the load generator's
# --bench-poller (raw | hyper). Prints the load average and the bench's summary lines.
# SERVE_ARGS: extra serve flags (e.g. SERVE_ARGS='--queue-journal-detached-ms 0', ADR 0040).
# Build first: cargo build --release -p flashsale-gateway -p flashsale-loadgen
set -euo pipefail
bin=${BIN:-target/release}
loadgen=${LOADGEN:-$bin/flashsale-loadgen} # the load generator binary, if built elsewhere
spread=${1:?even or by-position}
poller=${2:?raw or hyper}
conns=${3:-10000}
# Below the kernel's ephemeral range (32768+): the 10,000 pollers' client ports of the last run
# may still hold a port there.
port=$((20000 + RANDOM % 12000))
dir=$(mktemp -d)
"$bin/flashsale" serve --http "127.0.0.1:$port" --quic "127.0.0.1:$((port + 1))" \
    --data-dir "$dir" --admin-token adm --storefront-token shop --rate-limit-buyer-rps 0 \
    --shards 2 --queue-poll-spread "$spread" ${SERVE_ARGS:-} >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); spread=$spread poller=$poller waiting=$conns serve_args=${SERVE_ARGS:-}"
timeout 300 "$loadgen" --target "http://127.0.0.1:$port" --token shop \
    --admin-token adm --scenario queue --connections "$conns" --hot-buyers 64 \
    --bench-rounds 6 --bench-round-s 5 --sku qb --stock 1000000 --bench-poller "$poller" \
    --quiet >"$dir/loadgen.log" 2>&1 || true
# The summary, or (no summary: the run failed) what the load generator and the server said.
grep -A10 "queue bench:" "$dir/loadgen.log" ||
    { echo "no bench summary; load generator:"; tail -5 "$dir/loadgen.log"; tail -5 "$dir/server.log"; exit 1; }
