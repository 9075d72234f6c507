#!/usr/bin/env bash
# Chaos run: `flashsale serve` under SIGKILL/restart, SIGSTOP/SIGCONT, Postgres outages (a cluster
# of its own) and a full disk, driven by `flashsale-chaos run`, with its history checked.
# What is injected and what is checked: docs/reliability.md.
#
#   scripts/chaos.sh --ci        short run for CI: both backends, 65 s of load each (~2.5 min)
#   scripts/chaos.sh --soak      100 kill cycles per backend, plus pauses, outages, full disk
#   scripts/chaos.sh [FLAGS…]    any `flashsale-chaos run` flags (see --help)
#
# Flags after --ci / --soak are passed on, e.g. `scripts/chaos.sh --ci --seed 42` to replay.
# The CI seed is derived from the commit (same commit, same fault schedule); CHAOS_SEED overrides
# it. CHAOS_RELEASE=1 builds and runs release binaries. Exit status: 0 valid, 2 violation found,
# 3 outcomes left unresolved, 1 the run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
build=(cargo build -q -p flashsale-gateway --bin flashsale -p flashsale-loadgen --bin flashsale-chaos)
if [[ "${CHAOS_RELEASE:-0}" == 1 ]]; then
    profile=release
    build+=(--release)
fi
target="$(realpath "${CARGO_TARGET_DIR:-target}")"
"${build[@]}"

has_seed=0
for a in "$@"; do
    [[ "$a" == --seed || "$a" == --seed=* ]] && has_seed=1
done

mode=()
case "${1:-}" in
    --ci)
        shift
        mode=(--backend both --duration 65)
        if [[ $has_seed == 0 ]]; then
            seed="${CHAOS_SEED:-}"
            if [[ -z "$seed" ]]; then
                if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
                    seed=$((16#$commit))
                else
                    seed=$(date +%s)
                fi
            fi
            mode+=(--seed "$seed")
        fi
        ;;
    --soak)
        shift
        mode=(--backend both --kill-cycles 100 --max-duration 7200)
        if [[ $has_seed == 0 && -n "${CHAOS_SEED:-}" ]]; then
            mode+=(--seed "$CHAOS_SEED")
        fi
        ;;
esac

exec "$target/$profile/flashsale-chaos" run --server-bin "$target/$profile/flashsale" \
    ${mode[@]+"${mode[@]}"} "$@"
