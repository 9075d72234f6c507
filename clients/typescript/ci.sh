#!/usr/bin/env bash
# CI of the TypeScript client: install the locked dev dependencies, check the generated types
# against docs/openapi.yaml, build (type-check), then run the tests (node --test) against the
# real server: $FLASHSALE_BIN, default <repo>/target/debug/flashsale as `cargo test` builds it.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)
target=${CARGO_TARGET_DIR:-target}
[[ $target = /* ]] || target="$repo/$target"
export FLASHSALE_BIN=${FLASHSALE_BIN:-$target/debug/flashsale}
if [[ ! -x $FLASHSALE_BIN ]]; then
    echo "no server binary at $FLASHSALE_BIN (cargo build -p flashsale-gateway --bin flashsale)" >&2
    exit 1
fi
node -e 'if (+process.versions.node.split(".")[0] < 18) { console.error("Node.js >= 18 needed, not " + process.version); process.exit(1) }'

echo "-- npm ci"
npm ci --no-audit --no-fund
echo "-- generated types vs docs/openapi.yaml"
npm run --silent check-generated
echo "-- build"
npm run --silent build
echo "-- tests (against $FLASHSALE_BIN)"
npm test
