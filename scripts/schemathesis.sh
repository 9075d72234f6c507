#!/usr/bin/env bash
# OpenAPI conformance: schemathesis runs every check it has against docs/openapi.yaml, with the
# document's links as stateful scenarios (a SKU → reserve → read / confirm / cancel → the order),
# once with a storefront token and once with an admin token, against a real `flashsale serve`
# that this script builds, starts on 127.0.0.1 (embedded log in a temporary data dir, rate
# limits off) and stops. Nothing else is ever targeted.
#
#   scripts/schemathesis.sh                        the CI run, bounded (scripts/schemathesis.toml)
#   SCHEMATHESIS_SEED=N scripts/schemathesis.sh    replay the run of seed N
#   SCHEMATHESIS_EXAMPLES=N scripts/schemathesis.sh  N cases per operation (a longer run)
#
# schemathesis and its dependencies are pinned in scripts/schemathesis-requirements.txt and
# installed into a venv (SCHEMATHESIS_VENV, default target/schemathesis-venv) when it is missing
# or the pins changed; that needs PyPI once. The seed defaults to one derived from the commit,
# so a commit always replays the same cases. Rules JSON Schema cannot state (no SKU on two
# lines, a buyer with storefront/admin tokens, a sale's end after its start) are applied to
# schema-valid cases by scripts/schemathesis_hooks.py.
#
# Exit status: 0 when schemathesis reports no failure and no error for either credential;
# 1 otherwise (its report is printed), or when the venv, build or server cannot be set up.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

# == schemathesis, pinned
requirements="$root/scripts/schemathesis-requirements.txt"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/schemathesis" || "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
    echo "== schemathesis: installing $requirements into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
    echo "$want" >"$stamp"
fi
st="$venv/bin/schemathesis"
echo "== $("$st" --version)"

# == the server
cargo build -q -p flashsale-gateway --bin flashsale
flashsale="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/flashsale"

work="$(mktemp -d "${TMPDIR:-/tmp}/flashsale-schemathesis.XXXXXX")"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_server
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
    --shards 2 --no-pin-cores --rate-limit-ip-rps 0 --rate-limit-buyer-rps 0 \
    --webhook-allow-private --webhook-retry-period-s 5 \
    --log-level warn >"$work/serve.out" 2>"$work/serve.err" &
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
if [[ -z "$port" ]]; then
    echo "flashsale serve did not listen within 30 s:" >&2
    cat "$work/serve.out" "$work/serve.err" >&2
    exit 1
fi
url="http://127.0.0.1:$port"
[[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || { echo "refusing target $url" >&2; exit 1; }
echo "== flashsale serve on $url (data in $work/data)"

# SKUs on sale, spread over the id order so that a page after most cursors lists one: the
# storefront's scenarios reserve them (a storefront cannot create SKUs). The last one is the
# largest id there is.
for sku in -open-1 5-open M-open _open z-open "$(printf 'z%.0s' $(seq 1 64))"; do
    status="$(curl -sS -o "$work/seed.json" -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
        --data '{"name":"On sale","price_cents":1999,"stock":1000000000}' \
        "$url/v1/skus/$sku")"
    if [[ "$status" != 201 ]]; then
        echo "seeding SKU $sku: HTTP $status $(cat "$work/seed.json")" >&2
        exit 1
    fi
done

# == schemathesis, once per credential
seed="${SCHEMATHESIS_SEED:-}"
if [[ -z "$seed" ]]; then
    if commit="$(git rev-parse --short=12 HEAD 2>/dev/null)"; then
        seed=$((16#$commit))
    else
        seed="$(date +%s)"
    fi
fi
examples=()
if [[ -n "${SCHEMATHESIS_EXAMPLES:-}" ]]; then
    examples=(--max-examples "$SCHEMATHESIS_EXAMPLES")
fi

failed=()
for who in storefront admin; do
    if [[ "$who" == admin ]]; then tok="$admin_token"; else tok="$storefront_token"; fi
    echo "== schemathesis as $who (seed $seed)"
    # From the work dir, so that nothing schemathesis writes lands in the repository.
    if ! (cd "$work" && SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py" "$st" \
        --config-file "$root/scripts/schemathesis.toml" --no-color \
        run "$root/docs/openapi.yaml" --url "$url" \
        --header "Authorization: Bearer $tok" --checks all --seed "$seed" \
        --workers 1 --request-timeout 10 ${examples[@]+"${examples[@]}"}); then
        failed+=("$who")
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "flashsale serve died during the run:" >&2
        cat "$work/serve.err" >&2
        failed+=("server")
        break
    fi
done

# The links must have led somewhere: successful answers per route, as the server counted them.
# A run whose scenarios never held, read, confirmed or cancelled a reservation or read an
# order checked those operations on 404s only, so it fails.
if kill -0 "$server_pid" 2>/dev/null &&
    curl -sS -o "$work/metrics.txt" "$url/metrics"; then
    echo "== successful answers by route (both credentials)"
    awk -F'[{}",= ]+' '/^flashsale_http_requests_total\{route="[a-z_]+",status="2[0-9][0-9]"\}/ {
        n[$3] += $NF } END { for (r in n) printf "   %-16s %d\n", r, n[r] }' \
        "$work/metrics.txt" | sort
    for route in reserve get_reservation confirm cancel get_order; do
        if ! grep -Eq "^flashsale_http_requests_total\{route=\"$route\",status=\"2[0-9][0-9]\"\} [1-9]" \
            "$work/metrics.txt"; then
            echo "no successful $route: the stateful scenarios did not reach it" >&2
            failed+=("coverage:$route")
        fi
    done
fi

stop_server
if [[ -s "$work/serve.err" ]]; then
    echo "== flashsale serve logged:"
    cat "$work/serve.err"
fi
if ((${#failed[@]})); then
    echo "schemathesis: FAILED (${failed[*]}); replay with SCHEMATHESIS_SEED=$seed" >&2
    exit 1
fi
echo "schemathesis: 0 failures (storefront and admin, seed $seed)"
