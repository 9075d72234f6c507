#!/usr/bin/env bash
# Builds and runs the cargo-fuzz targets, each for a bounded time; fails on any crash.
#
#   fuzz/run.sh [TARGET...]            # every target, 30 s each (the CI run)
#   FUZZ_SECONDS=600 fuzz/run.sh       # longer
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=3600 fuzz/run.sh segment_recovery
#                                      # stop at 10^7 executions (or the time bound)
#
# Environment:
#   FUZZ_SECONDS    time bound per target, in seconds (default 30)
#   FUZZ_RUNS       execution bound per target (default: none, only the time bound)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_CORPUS     where new corpus entries go (default fuzz/target/corpus; the committed seeds
#                   in fuzz/corpus/<target>/ are read, never written)
#
# Needs: cargo-fuzz (installed here if missing: `cargo install cargo-fuzz --locked`) and a C++
# compiler (libfuzzer-sys builds libFuzzer). Runs on the stable toolchain: RUSTC_BOOTSTRAP=1
# lets it take the nightly-only flags cargo-fuzz passes (-Zsanitizer, sanitizer coverage).
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(log_record stream_frame segment_recovery http_body)
seconds="${FUZZ_SECONDS:-30}"
runs="${FUZZ_RUNS:-}"
sanitizer="${FUZZ_SANITIZER:-address}"
corpus_root="${FUZZ_CORPUS:-fuzz/target/corpus}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

for t in "${targets[@]}"; do
    case " ${ALL_TARGETS[*]} " in
        *" $t "*) ;;
        *) echo "unknown fuzz target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
    esac
done
case "$seconds" in '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number" >&2; exit 2 ;; esac
case "$runs" in *[!0-9]*) echo "FUZZ_RUNS must be a whole number" >&2; exit 2 ;; esac

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

now() { date +%s; }

echo "== fuzz: cargo-fuzz"
start=$(now)
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version
echo "cargo-fuzz ready in $(($(now) - start)) s"

echo "== fuzz: build (sanitizer: $sanitizer)"
start=$(now)
cargo fuzz build --sanitizer "$sanitizer"
echo "built in $(($(now) - start)) s"

summary=()
failed=()
for t in "${targets[@]}"; do
    echo "== fuzz: $t (${seconds} s${runs:+, at most $runs runs})"
    mkdir -p "$corpus_root/$t" "fuzz/artifacts/$t"
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
    [ -z "$runs" ] || args+=(-runs="$runs")
    [ ! -f "fuzz/dict/$t.dict" ] || args+=(-dict="fuzz/dict/$t.dict")
    log="fuzz/target/$t.log"
    start=$(now)
    status=0
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$corpus_root/$t" "fuzz/corpus/$t" \
        -- "${args[@]}" >"$log" 2>&1 || status=$?
    elapsed=$(($(now) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || true
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        result="FAILED (exit $status)"
        tail -n 60 "$log"
        grep -h 'Test unit written to' "$log" || true
    else
        result="ok"
    fi
    summary+=("$(printf '%-18s %12s executions %8s exec/s %5s s  %s' \
        "$t" "${execs:-?}" "${rate:-?}" "$elapsed" "$result")")
done

echo "== fuzz: summary (full logs in fuzz/target/<target>.log)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; inputs in fuzz/artifacts/" >&2
    exit 1
fi
