#!/usr/bin/env bash
# Same-run comparison of `flashsale serve` configurations against the do-nothing hyper
# baseline: every variant gets its own server (all started up front, idle while another is
# measured), and each round runs wrk against the baseline and then every variant in turn, so
# each variant is compared with the baseline measured minutes apart at most (ADR 0038).
# Usage: bash gateway/examples/wrk/variants.sh CONNECTIONS SECONDS ROUNDS 'NAME|ENV|FLAGS[|BINARY]'...
#   e.g. 'default||' 'spin50||--shard-spin-us 50' 'tokio1|TOKIO_WORKER_THREADS=1|'
#   'glibc|||target/alloc/flashsale-glibc' (BINARY: another build of `flashsale`, e.g. --no-default-features; relative
#   to the repository root; default target/release/flashsale; ADR 0042). A fifth field DATAROOT
#   puts that variant's --data-dir under another directory, e.g. 'shm|||target/release/flashsale|/dev/shm'
#   (a RAM file system, where fdatasync costs nothing: the durability latency taken out, ADR 0044).
#   Every run also prints the server's CPU per request (user and kernel, from /proc/PID/stat) and
#   its context switches per request (all threads, /proc/PID/task/*/status).
#   PHASES="hot gone" (default "hot") picks the phases; PERF=NAME records `perf record -g`
#   of that variant's first run of phase PERF_PHASE (default hot) into ./perf-NAME.data. PERFSTAT=1 also counts, with
#   `perf stat -p PID` over each run, the server's task-clock, context switches, io_uring
#   submissions (tracepoint io_uring:io_uring_submit_req: every SQE, timers included) and
#   io_uring_enter calls, printed per request (ADR 0038, "timer churn"). FSYNC_PROBE=1 times 200
#   4 KiB write + fdatasync pairs in the data directory's file system before every round and
#   prints their p50/p99: the disk's own flush latency, the floor under a durable reply (ADR 0049).
# Needs: wrk, a release build (cargo build --release -p flashsale-gateway --bin flashsale
#   --example baseline). Prints one line per run and the median ratios at the end.
set -euo pipefail
C=${1:-256}; D=${2:-10}; R=${3:-3}; shift 3 || true
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=$ROOT/target/release
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TMP=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
TOKEN=bench-storefront; ADMIN=bench-admin
PIDS=(); DATADIRS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP" "${DATADIRS[@]}"' EXIT
"$BIN/examples/baseline" 127.0.0.1:9090 > "$TMP/baseline.out" &
PIDS+=($!)
NAMES=(); PORTS=(); VPIDS=()
port=8081
for spec in "$@"; do
  IFS='|' read -r name envs flags exe dataroot <<< "$spec"
  exe=${exe:-target/release/flashsale}; [[ $exe == /* ]] || exe=$ROOT/$exe
  datadir="$TMP/data-$name"
  if [[ -n $dataroot ]]; then datadir=$(mktemp -d "$dataroot/flashsale-variant-XXXXXX"); DATADIRS+=("$datadir"); fi
  # shellcheck disable=SC2086
  env $envs "$exe" serve --http 127.0.0.1:$port --quic 127.0.0.1:0 \
    --data-dir "$datadir" --admin-token $ADMIN --storefront-token $TOKEN \
    --rate-limit-buyer-rps 0 --header-timeout-ms 120000 --max-connections 20000 $flags \
    > "$TMP/$name.out" 2> "$TMP/$name.err" &
  PIDS+=($!); VPIDS+=($!); NAMES+=("$name"); PORTS+=($port)
  port=$((port + 1))
done
for i in "${!NAMES[@]}"; do
  for _ in $(seq 150); do grep -q "http listening" "$TMP/${NAMES[$i]}.out" 2>/dev/null && break; sleep 0.2; done
  grep -q "http listening" "$TMP/${NAMES[$i]}.out" || { echo "${NAMES[$i]} did not start:"; cat "$TMP/${NAMES[$i]}.err"; exit 1; }
  curl -sf -X PUT "http://127.0.0.1:${PORTS[$i]}/v1/skus/hot" -H "authorization: Bearer $ADMIN" \
    -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
  curl -sf -X PUT "http://127.0.0.1:${PORTS[$i]}/v1/skus/gone" -H "authorization: Bearer $ADMIN" \
    -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null
done

# cpu_ctx PID: "user_ticks sys_ticks context_switches" of a process (all its threads).
cpu_ctx() {
  local ut st; read -r ut st < <(awk '{print $14, $15}' "/proc/$1/stat")
  local cs; cs=$(cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}')
  echo "$ut $st $cs"
}
# fsync_probe FILE: the disk's fdatasync latency (200 × a 4 KiB write then fdatasync), one line.
fsync_probe() {
  python3 - "$1" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
t = []
for i in range(200):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    s = time.perf_counter(); os.fdatasync(fd); t.append((time.perf_counter() - s) * 1e6)
os.close(fd); os.unlink(sys.argv[1]); t.sort()
print(f"# fdatasync_p50_us={t[100]:.0f} fdatasync_p99_us={t[198]:.0f}")
PY
}
run() { # name url sku pid
  local before; before=$(cpu_ctx "$4")
  local stat_pid=
  if [[ -n ${PERFSTAT:-} ]]; then
    perf stat -x, -o "$TMP/stat-$1" -e task-clock,context-switches,io_uring:io_uring_submit_req,syscalls:sys_enter_io_uring_enter \
      -p "$4" -- sleep "$D" > /dev/null 2>&1 &
    stat_pid=$!
  fi
  local out; out=$(TOKEN=$TOKEN SKU=$3 wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$LUA" "$2" 2>&1)
  local after; after=$(cpu_ctx "$4")
  local stat=
  if [[ -n $stat_pid ]]; then
    wait "$stat_pid" || true
    stat=$(python3 -c 'import sys; n = max(int(sys.argv[2] or 0), 1); v = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if len(f) > 2 and not line.startswith("#"):
        try: v[f[2].split(":")[-1]] = float(f[0])
        except ValueError: pass
t, c, q, e = (v.get(k, 0) for k in ("task-clock", "context-switches", "io_uring_submit_req", "sys_enter_io_uring_enter"))
print(f"perf_task_clock_us_per_req={t * 1e3 / n:.1f} perf_ctxsw_per_req={c / n:.3f} uring_sqe_per_req={q / n:.2f} uring_enter_per_req={e / n:.2f}")' \
      "$TMP/stat-$1" "$(echo "$out" | awk '/requests in/ {print $1}')")
  fi
  local reqs; reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local per; per=$(python3 -c 'import sys; b, a, n = sys.argv[1].split(), sys.argv[2].split(), max(int(sys.argv[3] or 0), 1)
import os; tick = 1e6 / os.sysconf("SC_CLK_TCK"); u, s, c = (int(a[i]) - int(b[i]) for i in range(3))
print(f"cpu_us_per_req={(u + s) * tick / n:.1f} sys_share={s / max(u + s, 1):.2f} ctxsw_per_req={c / n:.3f}")' "$before" "$after" "$reqs")
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
  local p50; p50=$(echo "$out" | sed -n 's/.*p50_us=\([0-9]*\).*/\1/p')
  local errs; errs=$(echo "$out" | grep -E "Socket errors" || echo "Socket errors: none")
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 sku=$3 rps=$rps p50_us=$p50 p99_us=$p99 non2xx=${non2xx:-0} $per | $errs${stat:+ | $stat}" | tee -a "$TMP/runs"
}
for phase in ${PHASES:-hot}; do
  for r in $(seq "$R"); do
    echo "# round $r phase $phase load $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ -n ${FSYNC_PROBE:-} ]]; then fsync_probe "$TMP/fsync-probe"; fi
    run baseline http://127.0.0.1:9090 "$phase" "${PIDS[0]}"
    for i in "${!NAMES[@]}"; do
      PERF_PID=
      if [[ "${PERF:-}" == "${NAMES[$i]}" && $r == 1 && $phase == ${PERF_PHASE:-hot} ]]; then
        perf record -g -o "perf-${NAMES[$i]}.data" -p "${VPIDS[$i]}" -- sleep "$((D - 2))" \
          > /dev/null 2>&1 &
        PERF_PID=$!
      fi
      run "${NAMES[$i]}" "http://127.0.0.1:${PORTS[$i]}" "$phase" "${VPIDS[$i]}"
      if [[ -n $PERF_PID ]]; then wait "$PERF_PID" || true; fi
    done
  done
done
python3 - "$TMP/runs" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
extra = collections.defaultdict(list)
stats = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = dict(kv.split("=", 1) for kv in line.split("|")[0].split()[1:])
    name = line.split()[0]
    if "perf_task_clock" in line.split("|")[-1]:
        stats[(f["sku"], name)].append(dict(kv.split("=", 1) for kv in line.split("|")[-1].split()))
    rows[(f["sku"], name)].append((float(f["rps"] or 0), int(f["p99_us"] or 0)))
    extra[(f["sku"], name)].append((float(f["cpu_us_per_req"]), float(f["sys_share"]), float(f["ctxsw_per_req"])))
for (sku, name), runs in sorted(rows.items()):
    base = rows[(sku, "baseline")]
    ratios = [a[0] / b[0] for a, b in zip(runs, base) if b[0]]
    p99r = [a[1] / b[1] for a, b in zip(runs, base) if b[1]]
    print(f"summary sku={sku} {name:>12} rps_median={statistics.median(r for r, _ in runs):9.0f} "
          f"p99_median_us={statistics.median(p for _, p in runs):8.0f} "
          f"ratio_median={statistics.median(ratios):.2f} p99_ratio_median={statistics.median(p99r):.2f} "
          f"ratios={' '.join(f'{x:.2f}' for x in ratios)}")
    cpu, sys_, cs = zip(*extra[(sku, name)])
    print(f"summary sku={sku} {name:>12} cpu_us_per_req_median={statistics.median(cpu):.1f} "
          f"sys_share_median={statistics.median(sys_):.2f} ctxsw_per_req_median={statistics.median(cs):.3f}")
    if stats[(sku, name)]:
        keys = stats[(sku, name)][0].keys()
        print(f"summary sku={sku} {name:>12} " + " ".join(
            f"{k}_median={statistics.median(float(d[k]) for d in stats[(sku, name)]):.3f}" for k in keys))
PY
for i in "${!NAMES[@]}"; do
  echo "${NAMES[$i]}: $(curl -s "http://127.0.0.1:${PORTS[$i]}/metrics" | grep -E '^flashsale_(reservations_total\{outcome="held"|log_batches_total)' | tr '\n' ' ')"
done
