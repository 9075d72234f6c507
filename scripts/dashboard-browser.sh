#!/usr/bin/env bash
# The operator dashboard in a real browser: builds `flashsale`, starts `flashsale serve` on
# 127.0.0.1 (free ports, embedded log in a temporary data dir), and runs
# scripts/dashboard-browser/dashboard.mjs in headless Chromium (Debian's `chromium`, driven by
# playwright-core, pinned in scripts/dashboard-browser/package-lock.json): sign in with the
# admin token, a small bounded load (≤ 3000 reservations, ≤ 5 s), the page's numbers change
# and then agree with GET /v1/skus. About 30 s once built.
#
#   scripts/dashboard-browser.sh            the CI run
#   CHROMIUM=/path/to/chrome scripts/dashboard-browser.sh
#
# The screenshot is kept at target/dashboard-browser/dashboard.png (printed at the end).
# Needs /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs it when missing)
# and node + npm (`npm ci` needs the npm registry once).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

chromium="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || { echo "no Chromium at $chromium (apt-get install -y chromium)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }

# == playwright-core, pinned
driver="$root/scripts/dashboard-browser"
if [[ ! -d "$driver/node_modules/playwright-core" ||
      "$driver/package-lock.json" -nt "$driver/node_modules/.package-lock.json" ]]; then
    (cd "$driver" && npm ci --no-audit --no-fund --loglevel=error)
fi

# == the server
cargo build -q -p flashsale-gateway --bin flashsale
flashsale="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/flashsale"
out="$(realpath "${CARGO_TARGET_DIR:-target}")/dashboard-browser"
mkdir -p "$out"

work="$(mktemp -d "${TMPDIR:-/tmp}/flashsale-dashboard.XXXXXX")"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token() { printf '%s_%s' "$1" "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"; }
admin_token="$(token adm)"
storefront_token="$(token shop)"

"$flashsale" serve \
    --http 127.0.0.1:0 --quic 127.0.0.1:0 --data-dir "$work/data" \
    --admin-token "$admin_token" --storefront-token "$storefront_token" \
    --shards 2 --no-pin-cores --log-level warn >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!

port=""
for _ in $(seq 1 300); do
    port="$(sed -n 's/^http listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/serve.out")"
    [[ -n "$port" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "flashsale serve exited before listening:" >&2
        cat "$work/serve.err" >&2
        exit 1
    fi
    sleep 0.1
done
[[ -n "$port" ]] || { echo "flashsale serve did not listen within 30 s" >&2; exit 1; }
url="http://127.0.0.1:$port"
echo "== flashsale serve on $url"

status=0
FLASHSALE_URL="$url" ADMIN_TOKEN="$admin_token" STOREFRONT_TOKEN="$storefront_token" \
    SCREENSHOT="$out/dashboard.png" CHROMIUM="$chromium" \
    timeout 120 node "$driver/dashboard.mjs" || status=$?
if [[ -s "$work/serve.err" ]]; then
    echo "== flashsale serve logged:"
    cat "$work/serve.err"
fi
exit "$status"
