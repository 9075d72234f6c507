#!/usr/bin/env bash
# Where the two cores go under the hot-item load (ADR 0065): one `flashsale serve`
# (hot_server.sh: SKUs `hot` and `gone`), a 2 s warm-up, then `wrk -t2 -cCONNS -dSECS`
# on SKU (hot or gone) with gateway/examples/wrk/hot_item.lua. Prints the rate, the CPU of each
# server thread that used at least 0.5 % of a core (name and thread id kept, so the shard that
# owns the SKU shows apart from the other), wrk's own CPU, and each CPU's busy share
# (from /proc/stat; irq + softirq shown apart). All in cores (1.00 = one core busy).
# Usage: bash scripts/perf/core_balance.sh BINARY SKU CONNS SECS
set -euo pipefail
BIN=$1; SKU=$2; C=$3; D=$4
[ "$D" -ge 4 ] && [ "$D" -le 60 ] || { echo "SECS must be 4..60" >&2; exit 2; }
[ "$C" -ge 1 ] && [ "$C" -le 20000 ] || { echo "CONNS must be 1..20000" >&2; exit 2; }
set --
source "$(dirname "$0")/hot_server.sh"
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TCK=$(getconf CLK_TCK)
threads() { # "tid name ticks" per server thread
  for t in /proc/"$SERVER_PID"/task/*; do
    echo "$(basename "$t") $(tr ' ' _ < "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
  done | sort
}
TOKEN=s SKU=$SKU wrk -t2 -c"$C" -d2s -s "$LUA" http://127.0.0.1:8099 > /dev/null 2>&1
TOKEN=s SKU=$SKU wrk -t2 -c"$C" -d"${D}s" -s "$LUA" http://127.0.0.1:8099 > "$TMP/wrk.out" 2>&1 &
WRK=$!
sleep 1
WPID=$WRK
threads > "$TMP/t1"; grep -E '^cpu[0-9]' /proc/stat > "$TMP/s1"; w1=$(awk '{print $14 + $15}' /proc/"$WPID"/stat)
sleep $((D - 2))
threads > "$TMP/t2"; grep -E '^cpu[0-9]' /proc/stat > "$TMP/s2"; w2=$(awk '{print $14 + $15}' /proc/"$WPID"/stat)
wait $WRK
W=$((D - 2))
echo "sku=$SKU connections=$C load $(cut -d' ' -f1-3 /proc/loadavg) $(grep -E 'Requests/sec' "$TMP/wrk.out")"
join "$TMP/t1" "$TMP/t2" | awk -v w="$W" -v t="$TCK" '{c = ($5 - $3) / t / w; if (c >= 0.005) printf "  thread %-8s %-18s %.2f cores\n", $1, $2, c}'
awk -v a="$w1" -v b="$w2" -v w="$W" -v t="$TCK" 'BEGIN {printf "  wrk (client)                %.2f cores\n", (b - a) / t / w}'
paste "$TMP/s1" "$TMP/s2" | awk '{n = NF / 2; tot = 0; for (i = 2; i <= n; i++) tot += $(i + n) - $i;
  idle = ($(5 + n) - $5) + ($(6 + n) - $6); irq = ($(7 + n) - $7) + ($(8 + n) - $8);
  printf "  %-5s busy %.2f (irq + softirq %.2f)\n", $1, 1 - idle / tot, irq / tot}'
