#!/usr/bin/env bash
# Short libFuzzer run of every fuzz target (fuzz/): N seconds each (default 20), after one build
# of all targets (about 9 min cold on 2 cores, seconds when warm).
#
#   scripts/fuzz-smoke.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). libFuzzer instrumentation needs unstable rustc
# flags: on the stable toolchain this script sets RUSTC_BOOTSTRAP=1 for the fuzz build only (the
# fuzz crate is its own workspace and shares nothing with the main build). Without cargo-fuzz it
# says so and exits 0, so that it can sit in a test script on machines that lack it.
# Exit status: non-zero if any target finds a crash (the input is left in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz is not installed (cargo install cargo-fuzz); skipping" >&2
    exit 0
fi

export RUSTC_BOOTSTRAP=1
start=$SECONDS
# Build every target first, so that the per-target clocks measure fuzzing only.
echo "== building fuzz targets" >&2
cargo fuzz build >/dev/null 2>&1 || cargo fuzz build
built=$SECONDS
status=0
summary=()
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    args=(-max_total_time="$secs" -rss_limit_mb=2048)
    [[ -f "dict/$target.dict" ]] && args+=(-dict="dict/$target.dict")
    dirs=("corpus/$target")
    [[ -d "seeds/$target" ]] && dirs+=("seeds/$target")
    echo "== fuzz $target for ${secs}s" >&2
    if ! cargo fuzz run "$target" "${dirs[@]}" -- "${args[@]}" 2>"corpus/$target.log"; then
        echo "fuzz-smoke: $target FAILED, see fuzz/corpus/$target.log and fuzz/artifacts/$target/" >&2
        tail -n 30 "corpus/$target.log" >&2
        status=1
        summary+=("$target: CRASH")
    else
        runs=$(grep -oE "^Done [0-9]+ runs" "corpus/$target.log" | grep -oE "[0-9]+" || true)
        summary+=("$target: ${runs:-?} runs, no crash")
    fi
done
printf '%s\n' "${summary[@]}" >&2
echo "fuzz-smoke: build $((built - start))s, fuzzing $((SECONDS - built))s, total $((SECONDS - start))s" >&2
exit "$status"
