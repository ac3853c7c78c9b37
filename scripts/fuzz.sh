#!/usr/bin/env bash
# Hive fuzzing (Docs/FUZZING.md): builds the libFuzzer targets of Sources/Fuzz with -sanitize=fuzzer,address into
# .build-fuzz and runs each for a bounded time, starting from the committed seeds in Tests/Fuzz/corpus/<target>.
#
#   scripts/fuzz.sh                     every target for $FUZZ_SECONDS seconds each (default 300; `make fuzz`)
#   FUZZ_SECONDS=30 scripts/fuzz.sh     the smoke run of `make test` (`make fuzz-smoke`)
#   scripts/fuzz.sh fuzz-http           one target (names as in Package.swift)
#   FUZZ_CONFIG=debug scripts/fuzz.sh   build configuration (default release with -g: more runs per second)
#
# New inputs go to .build-fuzz/corpus/<target> (kept between runs, never committed). A crash, a trap, an ASan
# report, a failed fuzz check, an input slower than 10 s or a process over 2 GiB is a finding: the input is saved
# as .build-fuzz/findings/<target>-crash-<sha1> (or -timeout-, -oom-), the script says how to reproduce it, runs
# the other targets, and exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SWIFT=${SWIFT:-swift}
SECONDS_EACH=${FUZZ_SECONDS:-300}
CONFIG=${FUZZ_CONFIG:-release}
SCRATCH=.build-fuzz
ALL_TARGETS=(fuzz-frames fuzz-http fuzz-http-parser fuzz-control fuzz-ipc fuzz-resp fuzz-query fuzz-deflate fuzz-user-envelope fuzz-publish fuzz-history fuzz-handover)
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=("${ALL_TARGETS[@]}")

# Longest input per target: a few frames or an upgrade request with frames; IPC records and control requests are
# small (their size limits are checked before parsing).
max_len() {
    case "$1" in
        fuzz-frames | fuzz-http | fuzz-http-parser) echo 4096 ;;
        *) echo 1024 ;;
    esac
}

FLAGS=(-Xswiftc -sanitize=fuzzer,address)
# Release: optimised but with debug info for the reports, and testable so the targets reach internals.
[[ "$CONFIG" == release ]] && FLAGS+=(-Xswiftc -g -Xswiftc -enable-testing)
build_start=$(date +%s)
for target in "${TARGETS[@]}"; do
    mkdir -p "$SCRATCH"
    if ! HIVE_FUZZ=1 "$SWIFT" build --scratch-path "$SCRATCH" -c "$CONFIG" "${FLAGS[@]}" --product "$target" \
        >"$SCRATCH/build.log" 2>&1; then
        grep -v "Cannot export local symbol" "$SCRATCH/build.log" | tail -30 >&2
        echo "fuzz: building $target failed (log: $SCRATCH/build.log)" >&2
        exit 1
    fi
done
echo "fuzz: built ${TARGETS[*]} ($CONFIG) in $(($(date +%s) - build_start)) s"

# Swift's own crash backtracer would run inside ASan's report and trip over it: leave crashes to libFuzzer.
export SWIFT_BACKTRACE=enable=no
mkdir -p "$SCRATCH/findings"
failed=()
for target in "${TARGETS[@]}"; do
    corpus="$SCRATCH/corpus/$target"
    log="$SCRATCH/findings/$target.log"
    mkdir -p "$corpus"
    binary="$SCRATCH/$CONFIG/$target"
    # The first directory receives new inputs; the committed seeds are only read.
    set +e
    "$binary" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
        -artifact_prefix="$SCRATCH/findings/$target-" -print_final_stats=1 \
        "$corpus" "Tests/Fuzz/corpus/$target" >"$log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $target: ${runs:-?} runs in ${SECONDS_EACH} s ($(( ${runs:-0} / SECONDS_EACH ))/s), corpus $(ls "$corpus" | wc -l) inputs, exit $status"
    if [[ $status -ne 0 ]]; then
        failed+=("$target")
        # What went wrong, and where in Hive's code (the first frames that name a source file of this repository).
        grep -E "ERROR: |Swift runtime failure|Fatal error|fuzz check failed" "$log" | head -3 >&2 || true
        grep -E "^ +#[0-9]+ .* $ROOT/Sources/" "$log" | head -3 >&2 || true
        saved=$(sed -n "s/.*Test unit written to //p" "$log" | tail -1)
        echo "fuzz: $target FAILED; input saved in ${saved:-(none, see the log)}; log in $log" >&2
        [[ -n "$saved" ]] && echo "fuzz: reproduce with: SWIFT_BACKTRACE=enable=no $binary $saved" >&2
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: findings in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no findings"
