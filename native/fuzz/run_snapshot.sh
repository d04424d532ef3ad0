#!/usr/bin/env bash
# Builds the snapshot reader's fuzz target (fuzz_snapshot.cpp: a tiny random model, one session,
# restore_bytes on each input as is and with a recomputed checksum) under ASan + UBSan and runs N
# executions (default 1,000,000) from a seed corpus of real snapshots it writes itself.
#   - clang++ with libFuzzer available: a libFuzzer binary (-fsanitize=fuzzer,address,undefined).
#   - otherwise: the standalone coverage-guided driver in fuzz_snapshot.cpp, built with $CXX (g++);
#     coverage from -fsanitize-coverage=trace-pc on session.cpp and kv_cache.cpp.
# The engine's objects are cached in $WORK/obj and rebuilt only when a source or header changed,
# so short runs (the smoke test) cost seconds after the first build.
# Usage: native/fuzz/run_snapshot.sh [N] [RNG_SEED]   work dir: $ENDLESS_FUZZ_WORK (/tmp/endless-fuzz-snapshot)
# Exit status 0 means N executions with no finding; a finding leaves its input in the work dir
# (crash-* files) and exits non-zero. Reproduce with: $WORK/fuzz_snapshot <crash file>.
set -euo pipefail
shopt -s inherit_errexit

N=${1:-1000000}
RNG_SEED=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${ENDLESS_FUZZ_WORK:-/tmp/endless-fuzz-snapshot}
mkdir -p "$WORK/obj"
rm -rf "$WORK/seeds"

TARGET="$ROOT/native/fuzz/fuzz_snapshot.cpp"
mapfile -t ENGINE < <(ls "$ROOT"/native/src/*.cpp "$ROOT"/native/src/cpu/*.cpp | sort)
COVERED="session.cpp kv_cache.cpp"  # the reader under test: these get coverage instrumentation
INC=(-std=c++17 -I"$ROOT/native/include" -I"$ROOT/native/src")
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Per-file flags: SIMD kernels are compiled for their instruction set (chosen at run time).
isa_flags() {
    case "$1" in
        *_amx_*.cpp) echo "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c -mamx-tile -mamx-int8" ;;
        *_avx512.cpp) echo "-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c" ;;
        *_avx2.cpp) echo "-mavx2 -mfma -mf16c" ;;
        *) echo "" ;;
    esac
}
if [ "$(uname -m)" != "x86_64" ]; then
    mapfile -t ENGINE < <(printf '%s\n' "${ENGINE[@]}" | grep -v -E '_avx(2|512)\.cpp$')
fi

# compile_one COMPILER TAG SRC EXTRA_FLAGS...: $WORK/obj/<TAG>-<dir>-<name>.o, rebuilt when it is
# missing or older than the source or any header the compiler listed for it last time (-MMD);
# after changing the flags in this script, remove $WORK/obj.
is_stale() {
    local obj=$1 src=$2 dep
    [ -f "$obj" ] && [ -f "$obj.d" ] && ! [ "$src" -nt "$obj" ] || return 0
    # the .d file: "obj: dep dep \" lines; a dependency that is gone or newer makes it stale
    for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$obj.d"); do
        if [ ! -e "$dep" ] || [ "$dep" -nt "$obj" ]; then return 0; fi
    done
    return 1
}
compile_one() {
    local cxx=$1 tag=$2 src=$3
    shift 3
    local obj="$WORK/obj/$tag-$(basename "$(dirname "$src")")-$(basename "$src" .cpp).o"
    if is_stale "$obj" "$src"; then
        # shellcheck disable=SC2046
        "$cxx" "${INC[@]}" "$@" $(isa_flags "$src") -MMD -MF "$obj.d.tmp" -c "$src" -o "$obj.tmp"
        mv "$obj.d.tmp" "$obj.d"
        mv "$obj.tmp" "$obj"
    fi
    echo "$obj"
}

have_libfuzzer() {
    command -v clang++ >/dev/null 2>&1 || return 1
    local probe="$WORK/probe.cpp"
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' > "$probe"
    clang++ -fsanitize=fuzzer "$probe" -o "$WORK/probe" >/dev/null 2>&1
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if have_libfuzzer; then
    echo "fuzz: clang++ with libFuzzer ($(clang++ --version | head -1))"
    objs=()
    for src in "${ENGINE[@]}"; do objs+=("$(compile_one clang++ lf "$src" "${SAN[@]}" -fsanitize=fuzzer-no-link)"); done
    # the seeds come from the target itself (real snapshots of its model), via a standalone build
    # without instrumentation (libFuzzer's coverage callbacks exist only in the fuzzer binary)
    plain=()
    for src in "${ENGINE[@]}"; do plain+=("$(compile_one clang++ plain "$src" -O1)"); done
    clang++ "${INC[@]}" -O1 -DENDLESS_FUZZ_STANDALONE "$TARGET" "${plain[@]}" -lpthread -ldl -o "$WORK/fuzz_snapshot_seeds"
    "$WORK/fuzz_snapshot_seeds" --write-seeds "$WORK/seeds"
    clang++ "${INC[@]}" "${SAN[@]}" -fsanitize=fuzzer "$TARGET" "${objs[@]}" -lpthread -ldl -o "$WORK/fuzz_snapshot_libfuzzer"
    mkdir -p "$WORK/corpus"
    set +e
    (cd "$WORK" && ./fuzz_snapshot_libfuzzer -runs="$N" -seed="$RNG_SEED" -max_len=16384 -rss_limit_mb=4096 \
        -print_final_stats=1 corpus seeds) 2>&1 | tee "$WORK/fuzz.log" | grep -E "^#[0-9]+[[:space:]]+(INITED|pulse)|^Done|ERROR|SUMMARY|FINDING|stat::"
    status=${PIPESTATUS[0]}
    set -e
    engine="libFuzzer"
else
    CXX=${CXX:-g++}
    echo "fuzz: no libFuzzer; standalone coverage-guided driver with $($CXX --version | head -1)"
    objs=()
    for src in "${ENGINE[@]}"; do
        if [[ " $COVERED " == *" $(basename "$src") "* ]]; then
            objs+=("$(compile_one "$CXX" cov "$src" "${SAN[@]}" -fsanitize-coverage=trace-pc)")
        else
            objs+=("$(compile_one "$CXX" san "$src" "${SAN[@]}")")
        fi
    done
    driver=$(compile_one "$CXX" drv "$TARGET" "${SAN[@]}" -DENDLESS_FUZZ_STANDALONE)
    "$CXX" "${SAN[@]}" "${objs[@]}" "$driver" -lpthread -ldl -o "$WORK/fuzz_snapshot"
    "$WORK/fuzz_snapshot" --write-seeds "$WORK/seeds"
    set +e
    (cd "$WORK" && ./fuzz_snapshot -n "$N" -seed "$RNG_SEED" seeds) 2>&1 | tee "$WORK/fuzz.log"
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
summary="snapshot fuzz: $N executions, engine $engine, ASan+UBSan, rng seed $RNG_SEED, $started .. $finished, $(uname -m) $(nproc) cores: $result"
echo "$summary"
echo "$summary" >> "$WORK/results.txt"
exit "$status"
