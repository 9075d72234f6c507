#!/bin/sh
# Server CPU per delivered stock-stream update, as ADR 0013 measures it, for two builds of
# `flashsale` alternated ROUNDS times (A B A B …) in one run, a fresh server per block (issue 17).
#
#   sh scripts/perf/stream_cpu.sh /tmp/flashsale.before target/release/flashsale \
#       target/release/flashsale-loadgen ROUNDS SUBSCRIBERS [hot-item]
#
# Each block: `flashsale serve` on a fresh data dir (stream thread at nice -10), then the load
# generator's `stream` scenario (16 buyers, 200 reservations/s, each cancelled) with SUBSCRIBERS
# QUIC subscribers for 15 s (see WINDOW_S) — or, with `hot-item`, 2 000 closed-loop buyers on one SKU plus the
# subscribers watching it. 4 s into the run and 9 s later it reads utime+stime (fields 14/15 of
# /proc/<pid>/stat, clock ticks) of the whole server process and of its `flashsale-strea*`
# threads, and `flashsale_stream_updates_sent_total` from /metrics; CPU per update is the CPU
# difference divided by the updates sent in between. Prints one line per block plus the
# loadgen's delivery percentiles, and the load average before each block. Loopback only;
# every run is bounded (WINDOW_S + 6 s of load, 15 s by default).
#
# Also per update, for the stream threads: CPU time from schedstat (ns), context switches,
# syscalls (perf tracepoint; PERF_SYSCALLS=0 skips it), and UDP datagrams sent on the machine
# (server packets + subscriber ACKs); SYSCALL_DETAIL=1 adds a line splitting the syscalls by kind.
# With the loop driver the server logs its connections' transport totals when it stops; the
# script prints them per update sent (whole run, not just the window): datagrams, packets, ACKs,
# ACK_FREQUENCY / IMMEDIATE_ACK / PING frames, lost packets, MTU probes.
# A_ENV / B_ENV (e.g. "RUST_LOG=warn") set environment
# variables for the A / B server.
# PERF_RECORD=DIR also samples the stream threads over the window (`perf record -e cpu-clock -g`,
# cpu-clock because this VM has no hardware counters) into DIR/<block tag>.data, for
# `perf report -i …` (PERF_RECORD_OPTS replaces `-g`, e.g. "--call-graph dwarf,16384"); the
# sampling costs CPU, so take the µs/update of such a run with salt.
#
# WINDOW_S (default 9, at most 120) lengthens the measured window (the load then runs
# WINDOW_S + 6 s): at 1 000 subscribers the update count moves in steps of one publication
# (1 000 updates, ≈ 2.5 per second) and CPU in 10 ms ticks, so a 9 s window cannot resolve ≈ 1 µs.
set -eu
a=$1
b=$2
lg=$3
rounds=$4
subs=$5
mode=${6:-stream}
window=${WINDOW_S:-9}
case $window in
'' | *[!0-9]*) echo "WINDOW_S must be a whole number of seconds" >&2; exit 2 ;;
esac
if [ "$window" -lt 1 ] || [ "$window" -gt 120 ]; then
    echo "WINDOW_S must be 1..=120" >&2
    exit 2
fi
duration=$((window + 6))
dir=$(mktemp -d /tmp/stream_cpu.XXXXXX)
tck=$(getconf CLK_TCK)
http=127.0.0.1:28180
quic=127.0.0.1:28543

ticks_proc() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_stream() {
    t=0
    for f in /proc/"$1"/task/*; do
        case $(cat "$f/comm" 2>/dev/null) in
        flashsale-strea*) t=$((t + $(awk '{print $14 + $15}' "$f/stat"))) ;;
        esac
    done
    echo "$t"
}
# ns on CPU (field 1 of /proc/<pid>/task/<tid>/schedstat) and context switches (voluntary +
# involuntary) of the `flashsale-strea*` threads: finer than the 10 ms ticks of `stat`.
sched_stream() {
    ns=0
    cs=0
    for f in /proc/"$1"/task/*; do
        case $(cat "$f/comm" 2>/dev/null) in
        flashsale-strea*)
            ns=$((ns + $(cut -d' ' -f1 "$f/schedstat")))
            cs=$((cs + $(awk '/ctxt_switches/ {s += $2} END {print s}' "$f/status")))
            ;;
        esac
    done
    echo "$ns $cs"
}
stream_tids() {
    for f in /proc/"$1"/task/*; do
        case $(cat "$f/comm" 2>/dev/null) in
        flashsale-strea*) printf '%s,' "${f##*/}" ;;
        esac
    done
}
# UDP datagrams sent by every socket of the machine (both ends of the loopback: the server's
# packets and the subscribers' ACKs; HTTP is TCP).
udp_out() { awk '/^Udp:/ {n++} /^Udp:/ && n == 2 {print $5}' /proc/net/snmp; }
sent() {
    curl -s -H 'Authorization: Bearer adm' "http://$http/metrics" |
        awk '$1 == "flashsale_stream_updates_sent_total" {print $2}'
}

block() {
    bin=$1
    tag=$2
    rm -rf "$dir/data"
    # shellcheck disable=SC2086
    env $env "$bin" serve --http "$http" --quic "$quic" --data-dir "$dir/data" --admin-token adm \
        --storefront-token sf --rate-limit-buyer-rps 0 --max-connections 20000 \
        --stream-thread-nice -10 >"$dir/server.log" 2>&1 &
    pid=$!
    fp=""
    n=0
    while [ -z "$fp" ] && [ $n -lt 100 ]; do
        sleep 0.1
        fp=$(sed -n 's/.*certificate sha256 \([0-9a-f]*\).*/\1/p' "$dir/server.log" | head -1)
        n=$((n + 1))
    done
    if [ "$mode" = hot-item ]; then
        load="--scenario hot-item --connections 2000 --stock 100000000"
    else
        load="--scenario stream"
    fi
    # shellcheck disable=SC2086
    timeout $((duration + 25)) "$lg" --target "http://$http" --token sf --admin-token adm $load \
        --subscribers "$subs" --quic "$quic" --fingerprint "$fp" --stream-nice -10 \
        --duration "$duration" --sku "r$tag" --quiet --report "$dir/$tag.json" >"$dir/$tag.lg" 2>&1 &
    lgpid=$!
    sleep 4
    tids=$(stream_tids "$pid")
    sc=""
    if [ "${PERF_SYSCALLS:-1}" = 1 ] && [ -n "$tids" ] && command -v perf >/dev/null 2>&1; then
        # Syscalls of the stream threads over the window (a tracepoint: works without hardware
        # counters, which this VM lacks).
        events=raw_syscalls:sys_enter
        if [ "${SYSCALL_DETAIL:-0}" = 1 ]; then
            for c in sendmsg sendmmsg recvmsg recvmmsg epoll_wait futex write read; do
                events="$events,syscalls:sys_enter_$c"
            done
        fi
        perf stat -x, -e "$events" -t "${tids%,}" -o "$dir/perf.txt" -- sleep "$window" &
        sc=$!
    fi
    rec=""
    if [ -n "${PERF_RECORD:-}" ] && [ -n "$tids" ]; then
        mkdir -p "$PERF_RECORD"
        # shellcheck disable=SC2086
        perf record -q -e cpu-clock ${PERF_RECORD_OPTS:--g} -t "${tids%,}" -o "$PERF_RECORD/$tag.data" -- sleep "$window" \
            >/dev/null 2>&1 &
        rec=$!
    fi
    p0=$(ticks_proc "$pid")
    s0=$(ticks_stream "$pid")
    set -- $(sched_stream "$pid")
    ns0=$1
    cs0=$2
    o0=$(udp_out)
    u0=$(sent)
    sleep "$window"
    p1=$(ticks_proc "$pid")
    s1=$(ticks_stream "$pid")
    set -- $(sched_stream "$pid")
    ns1=$1
    cs1=$2
    o1=$(udp_out)
    u1=$(sent)
    sys=0
    if [ -n "$sc" ]; then
        wait "$sc" || true
        sys=$(awk -F, '/raw_syscalls/ {print $1}' "$dir/perf.txt" 2>/dev/null || echo 0)
        if [ "${SYSCALL_DETAIL:-0}" = 1 ]; then
            awk -F, -v u="$((u1 - u0))" '/syscalls:sys_enter_/ && u > 0 {
                sub("syscalls:sys_enter_", "", $3); printf "  %s %.3f/update", $3, $1 / u } END {print ""}' "$dir/perf.txt" 2>/dev/null || true
        fi
    fi
    if [ -n "$rec" ]; then
        wait "$rec" || true
    fi
    wait "$lgpid" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # The loop's transport totals over the server's life (logged at its end, ADR 0058): which
    # frames the datagrams per update are made of.
    sed -n 's/.*stream transport totals.*updates=\([0-9]*\) \(.*\)/\1 \2/p' "$dir/server.log" | tail -1 |
        awk '$1 > 0 { printf "  transport per update (whole run):"; for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "connections") printf " %s %d", kv[1], kv[2]; else printf " %s %.3f", kv[1], kv[2] / $1 } print "" }'
    lat=$(python3 -c "
import json,sys
r=json.load(open('$dir/$tag.json'))
s=r.get('stream') or {}
k=((r.get('per_kind') or {}).get('stream_update') or {}).get('latency_us') or {}
ms=lambda v: round(v/1000, 2) if v is not None else None
print('delivered', s.get('updates'), 'p50_ms', ms(k.get('p50')), 'p99_ms', ms(k.get('p99')), 'max_ms', ms(k.get('max')), 'rps', round(r.get('throughput_rps') or 0))
" 2>/dev/null || echo "no report")
    awk -v tag="$tag" -v p="$((p1 - p0))" -v s="$((s1 - s0))" -v u="$((u1 - u0))" -v tck="$tck" \
        -v lat="$lat" -v ns="$((ns1 - ns0))" -v cs="$((cs1 - cs0))" -v udp="$((o1 - o0))" \
        -v sys="${sys:-0}" 'BEGIN {
        us = 1e6 / tck
        if (u == 0) u = -1
        printf "%s: updates %d  server process %.1f us/update  stream threads %.1f us/update (schedstat %.2f)  per update: ctxsw %.3f syscalls %.3f udp-out %.3f  | %s\n",
            tag, u, p * us / u, s * us / u, ns / 1000 / u, cs / u, sys / u, udp / u, lat }'
}

i=1
while [ "$i" -le "$rounds" ]; do
    for side in A B; do
        if [ "$side" = A ]; then
            bin=$a
            env=${A_ENV:-}
        else
            bin=$b
            env=${B_ENV:-}
        fi
        echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
        block "$bin" "$side$i-$subs-$mode-$$"
    done
    i=$((i + 1))
done
rm -rf "$dir"
