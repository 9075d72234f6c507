#!/usr/bin/env bash
# Gateway benchmark: `hot-item` reservations through `flashsale serve` vs the do-nothing hyper
# baseline (gateway/examples/baseline.rs), same run, same wrk settings, loopback only.
# Usage: bash gateway/examples/wrk/bench.sh [CONNECTIONS] [SECONDS] [REPS]
# Needs: wrk (apt-get install -y wrk), python3, a release build:
#   cargo build --release -p flashsale-gateway --bin flashsale --example baseline
set -euo pipefail
C=${1:-10000}; D=${2:-10}; R=${3:-3}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=$ROOT/target/release
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
TMP=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
TOKEN=bench-storefront; ADMIN=bench-admin
"$BIN/examples/baseline" 127.0.0.1:9090 > "$TMP/baseline.out" &
BASE_PID=$!
"$BIN/flashsale" serve --http 127.0.0.1:8080 --quic 127.0.0.1:0 --data-dir "$TMP/data" \
  --admin-token $ADMIN --storefront-token $TOKEN --rate-limit-buyer-rps 0 \
  --header-timeout-ms 120000 --max-connections 20000 > "$TMP/flashsale.out" 2> "$TMP/flashsale.err" &
FS_PID=$!
trap 'kill $BASE_PID $FS_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do grep -q "http listening" "$TMP/flashsale.out" 2>/dev/null && break; sleep 0.2; done
curl -sf -X PUT http://127.0.0.1:8080/v1/skus/hot -H "authorization: Bearer $ADMIN" \
  -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
curl -sf -X PUT http://127.0.0.1:8080/v1/skus/gone -H "authorization: Bearer $ADMIN" \
  -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null

# Resident memory with C idle keep-alive connections (each has sent one request).
idle() { # pid port
  python3 - "$1" "$2" "$C" <<'PY'
import socket, sys, time
pid, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
before = rss(); socks = []
req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); socks.append(s)
ok = 0
for s in socks:
    s.settimeout(10)
    if s.recv(4096).startswith(b"HTTP/1.1 2"): ok += 1
time.sleep(2)
print(f"port={port} idle_connections={n} answered_2xx={ok} rss_before_mb={before} rss_idle_mb={rss()}")
for s in socks: s.close()
PY
}
idle $BASE_PID 9090
idle $FS_PID 8080

run() { # name url sku
  local out; out=$(TOKEN=$TOKEN SKU=$3 wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$LUA" "$2" 2>&1)
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
  local p50; p50=$(echo "$out" | sed -n 's/.*p50_us=\([0-9]*\).*/\1/p')
  local errs; errs=$(echo "$out" | grep -E "Socket errors" || echo "Socket errors: none")
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$1 sku=$3 rps=$rps p50_us=$p50 p99_us=$p99 non2xx=${non2xx:-0} | $errs"
}
for phase in hot gone; do
  for i in $(seq "$R"); do
    run baseline http://127.0.0.1:9090 $phase
    run flashsale http://127.0.0.1:8080 $phase
  done
done
curl -s http://127.0.0.1:8080/v1/skus/hot -H "authorization: Bearer $TOKEN"; echo
curl -s http://127.0.0.1:8080/metrics | grep -E '^flashsale_(http_connections|reservations_total|sold_out|log_batches|http_requests_total\{route="reserve")'

