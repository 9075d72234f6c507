#!/usr/bin/env bash
# Events overhead (issue 16, docs/benchmarks.md "Events"): hot-item reservations per second with
# one webhook endpoint (every type) + the AMQP sink attached ("on") vs none ("off"), in the same
# run, alternating which goes first each round, a fresh server and data dir per measurement.
# Delivery lag "on": the receiver's lag (arrival − event timestamp) over every event of the run,
# once delivery caught up, and the highest flashsale_events_lag_seconds sampled each second.
# Usage: bash scripts/events_bench.sh [CONNECTIONS] [SECONDS] [ROUNDS]
#   EVENTS='"*"' (default) or e.g. EVENTS='"reservation.confirmed","sku.sold_out"': the
#   webhook's subscription (the AMQP sink always takes every type).
#   BIN=path/to/flashsale (default target/release/flashsale): another build to measure.
#   SERVE_ARGS='--events-delivery-nice 10': extra `serve` flags for both modes.
#   RECEIVER=python (default: scripts/events_bench_receiver.py) or RECEIVER=rust
#   (gateway/examples/events_bench_receiver.rs, verifies a sample of the signatures; build it
#   with `cargo build --release -p flashsale-gateway --example events_bench_receiver`, which
#   rebuilds the dependencies once with the gateway's dev-dependency features).
# Needs: wrk, curl, python3, RabbitMQ on 127.0.0.1:5672 (guest/guest), a release build:
#   cargo build --release -p flashsale-gateway
set -euo pipefail
C=${1:-256}; D=${2:-15}; R=${3:-3}
EVENTS=${EVENTS:-'"*"'}; RECEIVER=${RECEIVER:-python}; SERVE_ARGS=${SERVE_ARGS:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/flashsale}
LUA=$ROOT/gateway/examples/wrk/hot_item.lua
RX_BIN=$ROOT/target/release/examples/events_bench_receiver
TMP=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
TOKEN=bench-storefront; ADMIN=bench-admin
HTTP=127.0.0.1:18080; HOOK_PORT=19100
FS_PID=; RX_PID=
cleanup() { [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null; [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

metric() { # name kind → the value of metric name{kind=...}
  curl -s "http://$HTTP/metrics" | awk -v n="$1" -v k="kind=\"$2\"" 'index($0, n"{") == 1 && index($0, k) {print $2}' | head -1
}

measure() { # mode round
  local mode=$1 round=$2 extra=()
  if [ "$mode" = on ]; then
    extra=(--webhook-allow-private --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --amqp-exchange flashsale.bench)
  fi
  "$BIN" serve --http $HTTP --quic 127.0.0.1:0 --data-dir "$TMP/data-$mode-$round" \
    --admin-token $ADMIN --storefront-token $TOKEN --rate-limit-buyer-rps 0 \
    --header-timeout-ms 120000 --max-connections 20000 "${extra[@]}" $SERVE_ARGS \
    > "$TMP/fs.out" 2> "$TMP/fs-$mode-$round.err" &
  FS_PID=$!
  for _ in $(seq 150); do grep -q "http listening" "$TMP/fs.out" 2>/dev/null && break; sleep 0.2; done
  curl -sf -X PUT "http://$HTTP/v1/skus/hot" -H "authorization: Bearer $ADMIN" \
    -d '{"name":"Hot","price_cents":100,"stock":100000000}' > /dev/null
  if [ "$mode" = on ]; then
    local created secret
    created=$(curl -sf -X POST "http://$HTTP/v1/webhooks" -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
      -d "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hook\",\"events\":[$EVENTS]}")
    secret=$(echo "$created" | sed -n 's/.*"secret":"\(whsec_[^"]*\)".*/\1/p')
    # The receiver starts after the endpoint (it needs the secret); delivery retries meanwhile.
    if [ "$RECEIVER" = python ]; then
      python3 "$ROOT/scripts/events_bench_receiver.py" $HOOK_PORT > "$TMP/rx-$round.json" 2> "$TMP/rx-$round.err" &
    else
      "$RX_BIN" $HOOK_PORT "$secret" > "$TMP/rx-$round.json" 2> "$TMP/rx-$round.err" &
    fi
    RX_PID=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$HOOK_PORT) 2>/dev/null && break; sleep 0.1; done
  fi
  local lag_max_s=0 sampler=
  if [ "$mode" = on ]; then
    ( while sleep 1; do
        for k in webhook amqp; do echo "$k $(metric flashsale_events_lag_seconds $k)"; done
      done > "$TMP/lag-$round.txt" ) &
    sampler=$!
  fi
  local out; out=$(TOKEN=$TOKEN SKU=hot wrk -t2 -c"$C" -d"${D}s" --timeout 10s -s "$LUA" "http://$HTTP" 2>&1)
  local rps; rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  local p99; p99=$(echo "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
  local non2xx; non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  local extra_out=""
  if [ "$mode" = on ]; then
    # Let delivery catch up (bounded), then read the receiver's lag over every event.
    local caught=no
    for _ in $(seq 120); do
      local lw la; lw=$(metric flashsale_events_lag_events webhook); la=$(metric flashsale_events_lag_events amqp)
      if [ "${lw:-1}" = 0 ] && [ "${la:-1}" = 0 ]; then caught=yes; break; fi
      sleep 1
    done
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    local wh_max am_max
    wh_max=$(awk '$1=="webhook" && $2!="" {if ($2>m) m=$2} END {print m+0}' "$TMP/lag-$round.txt")
    am_max=$(awk '$1=="amqp" && $2!="" {if ($2>m) m=$2} END {print m+0}' "$TMP/lag-$round.txt")
    local delivered; delivered=$(metric flashsale_events_delivered_total amqp)
    kill "$RX_PID"; wait "$RX_PID" 2>/dev/null || true; RX_PID=
    extra_out="caught_up=$caught amqp_delivered=$delivered webhook_lag_s_max=$wh_max amqp_lag_s_max=$am_max receiver=$(cat "$TMP/rx-$round.json")"
  fi
  echo "round=$round events=$mode rps=$rps p99_us=$p99 non2xx=${non2xx:-0} rss_mb=$(( $(awk '/VmRSS/ {print $2}' /proc/$FS_PID/status) / 1024 )) $extra_out"
  kill "$FS_PID"; wait "$FS_PID" 2>/dev/null || true; FS_PID=
}

echo "# $(date -u +%FT%TZ) C=$C D=${D}s rounds=$R events=[$EVENTS] receiver=$RECEIVER bin=$BIN serve_args=[$SERVE_ARGS] nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$R"); do
  if [ $((round % 2)) = 1 ]; then measure off "$round"; measure on "$round"; else measure on "$round"; measure off "$round"; fi
done
