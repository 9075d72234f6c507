# Sourced by the scripts in scripts/perf that load one server: starts `$BIN serve` on
# 127.0.0.1:8099 with the benchmark's tokens and limits plus "$@", waits for it, and creates
# the `hot` SKU (100,000,000 units) and the sold-out SKU `gone` (stock 0). Sets TMP (removed on exit) and ROOT; the server is stopped on exit.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d); ulimit -n "$(ulimit -Hn)"
"$BIN" serve --http 127.0.0.1:8099 --quic 127.0.0.1:0 --data-dir "$TMP/d" --admin-token a --storefront-token s \
  --rate-limit-buyer-rps 0 --header-timeout-ms 120000 --max-connections 20000 "$@" > "$TMP/out" 2> "$TMP/err" &
SERVER_PID=$!; trap 'kill $SERVER_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do grep -q "http listening" "$TMP/out" 2>/dev/null && break; sleep 0.2; done
grep -q "http listening" "$TMP/out" || { echo "server did not start:"; cat "$TMP/err"; exit 1; }
curl -sf -X PUT http://127.0.0.1:8099/v1/skus/hot -H "authorization: Bearer a" \
  -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
curl -sf -X PUT http://127.0.0.1:8099/v1/skus/gone -H "authorization: Bearer a" \
  -d '{"name":"Gone","price_cents":100,"stock":0}' > /dev/null
