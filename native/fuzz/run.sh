#!/usr/bin/env bash
# Builds the GGUF reader's fuzz target under ASan + UBSan and runs N executions (default 1,000,000)
# from a seed corpus it writes itself (valid files made by native/tests/gguf_builder.h).
#   - clang++ with libFuzzer available: a libFuzzer binary (-fsanitize=fuzzer,address,undefined).
#   - otherwise: the standalone coverage-guided driver in fuzz_gguf.cpp, built with $CXX (g++),
#     coverage from -fsanitize-coverage=trace-pc on the reader's own objects.
# Usage: native/fuzz/run.sh [N] [RNG_SEED]      work dir: $ENDLESS_FUZZ_WORK (/tmp/endless-fuzz-gguf)
# Exit status 0 means N executions with no finding; a finding leaves its input in the work dir
# (crash-* files) and exits non-zero. Reproduce with: $WORK/fuzz_gguf <crash file>.
set -euo pipefail

N=${1:-1000000}
RNG_SEED=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${ENDLESS_FUZZ_WORK:-/tmp/endless-fuzz-gguf}
mkdir -p "$WORK"
rm -rf "$WORK/seeds"

READER=("$ROOT/native/src/gguf.cpp" "$ROOT/native/src/ggml_types.cpp")
TARGET="$ROOT/native/fuzz/fuzz_gguf.cpp"
INC=(-std=c++17 -I"$ROOT/native/include" -I"$ROOT/native/src")
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

have_libfuzzer() {
    command -v clang++ >/dev/null 2>&1 || return 1
    local probe="$WORK/probe.cpp"
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' > "$probe"
    clang++ -fsanitize=fuzzer "$probe" -o "$WORK/probe" >/dev/null 2>&1
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if have_libfuzzer; then
    echo "fuzz: clang++ with libFuzzer ($(clang++ --version | head -1))"
    # the standalone build only writes the seeds
    clang++ "${INC[@]}" -O1 -DENDLESS_FUZZ_STANDALONE "$TARGET" "${READER[@]}" -o "$WORK/fuzz_gguf_seeds"
    "$WORK/fuzz_gguf_seeds" --write-seeds "$WORK/seeds"
    clang++ "${INC[@]}" "${SAN[@]}" -fsanitize=fuzzer "$TARGET" "${READER[@]}" -o "$WORK/fuzz_gguf_libfuzzer"
    mkdir -p "$WORK/corpus"
    set +e
    (cd "$WORK" && ./fuzz_gguf_libfuzzer -runs="$N" -seed="$RNG_SEED" -max_len=65536 -rss_limit_mb=4096 \
        -print_final_stats=1 corpus seeds) 2>&1 | tee "$WORK/fuzz.log" | grep -E "^#[0-9]+[[:space:]]+(INITED|pulse)|^Done|ERROR|SUMMARY|stat::"
    status=${PIPESTATUS[0]}
    set -e
    engine="libFuzzer"
else
    CXX=${CXX:-g++}
    echo "fuzz: no libFuzzer; standalone coverage-guided driver with $($CXX --version | head -1)"
    for src in "${READER[@]}"; do
        "$CXX" "${INC[@]}" "${SAN[@]}" -fsanitize-coverage=trace-pc -c "$src" -o "$WORK/$(basename "$src" .cpp).o"
    done
    "$CXX" "${INC[@]}" "${SAN[@]}" -DENDLESS_FUZZ_STANDALONE -c "$TARGET" -o "$WORK/fuzz_gguf_driver.o"
    "$CXX" "${SAN[@]}" "$WORK/gguf.o" "$WORK/ggml_types.o" "$WORK/fuzz_gguf_driver.o" -o "$WORK/fuzz_gguf"
    "$WORK/fuzz_gguf" --write-seeds "$WORK/seeds"
    set +e
    (cd "$WORK" && ./fuzz_gguf -n "$N" -seed "$RNG_SEED" seeds) 2>&1 | tee "$WORK/fuzz.log"
    status=${PIPESTATUS[0]}
    set -e
    engine="standalone ($CXX, trace-pc coverage)"
fi

finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [ "$status" -eq 0 ]; then
    result="no finding"
else
    result="FINDING (exit $status; see $WORK/fuzz.log and $WORK/crash-*)"
fi
summary="gguf fuzz: $N executions, engine $engine, ASan+UBSan, rng seed $RNG_SEED, $started .. $finished, $(uname -m) $(nproc) cores: $result"
echo "$summary"
echo "$summary" >> "$WORK/results.txt"
exit "$status"
