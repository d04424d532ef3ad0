# Build-and-run logic shared by the fuzz scripts (run.sh: the GGUF reader, run_snapshot.sh: the
# snapshot reader); sourced by them, not run. A script sets its target's name, sources, covered
# files and libFuzzer -max_len, then calls fuzz_main. What fuzz_main does:
#   - work dir $WORK (from $ENDLESS_FUZZ_WORK, else the script's default); seeds/ is rewritten by the
#     target itself (--write-seeds); objects are cached in $WORK/obj, each rebuilt only when its
#     source or a header it included changed (-MMD);
#   - clang++ with libFuzzer available: a libFuzzer binary (-fsanitize=fuzzer,address,undefined),
#     run with -runs=N over corpus/ and seeds/;
#   - otherwise: the standalone coverage-guided driver (standalone_driver.h) built with $CXX (g++),
#     coverage from -fsanitize-coverage=trace-pc on the covered files only;
#     ENDLESS_FUZZ_ENGINE=standalone picks this one even where libFuzzer exists (to test it);
#   - appends a one-line summary to $WORK/results.txt and exits with the fuzzer's status (0: no
#     finding; a finding leaves its input in $WORK/crash-*).
# shellcheck shell=bash

set -euo pipefail
shopt -s inherit_errexit  # a failed compile inside $(compile_one ...) stops the script

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$FUZZ_DIR/../.." && pwd)
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

# compile_one COMPILER TAG SRC EXTRA_FLAGS...: $WORK/obj/<TAG>-<dir>-<name>.o, rebuilt when it is
# missing or older than the source or any header the compiler listed for it last time (-MMD);
# after changing the flags in these scripts, remove $WORK/obj.
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
    [ "${ENDLESS_FUZZ_ENGINE:-auto}" != standalone ] || return 1
    command -v clang++ >/dev/null 2>&1 || return 1
    local probe="$WORK/probe.cpp"
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }' > "$probe"
    clang++ -fsanitize=fuzzer "$probe" -o "$WORK/probe" >/dev/null 2>&1
}

# Builds fuzz_<name>_libfuzzer (and fuzz_<name>_seeds, a plain standalone build that only writes
# the seeds: libFuzzer's coverage callbacks exist only in the fuzzer binary) and runs it; sets status.
fuzz_run_libfuzzer() {
    local src objs=() plain=()
    echo "fuzz: clang++ with libFuzzer ($(clang++ --version | head -1))"
    for src in "${FUZZ_SOURCES[@]}"; do objs+=("$(compile_one clang++ lf "$src" "${SAN[@]}" -fsanitize=fuzzer-no-link)"); done
    for src in "${FUZZ_SOURCES[@]}"; do plain+=("$(compile_one clang++ plain "$src" -O1)"); done
    clang++ "${INC[@]}" -O1 -DENDLESS_FUZZ_STANDALONE "$FUZZ_TARGET" "${plain[@]}" -lpthread -ldl -o "$WORK/fuzz_${FUZZ_NAME}_seeds"
    "$WORK/fuzz_${FUZZ_NAME}_seeds" --write-seeds "$WORK/seeds"
    clang++ "${INC[@]}" "${SAN[@]}" -fsanitize=fuzzer "$FUZZ_TARGET" "${objs[@]}" -lpthread -ldl -o "$WORK/fuzz_${FUZZ_NAME}_libfuzzer"
    mkdir -p "$WORK/corpus"
    set +e
    (cd "$WORK" && "./fuzz_${FUZZ_NAME}_libfuzzer" -runs="$N" -seed="$RNG_SEED" -max_len="$FUZZ_MAX_LEN" -rss_limit_mb=4096 \
        -print_final_stats=1 corpus seeds) 2>&1 | tee "$WORK/fuzz.log" | grep -E "^#[0-9]+[[:space:]]+(INITED|pulse)|^Done|ERROR|SUMMARY|FINDING|stat::"
    status=${PIPESTATUS[0]}
    set -e
    engine="libFuzzer"
}

# Builds fuzz_<name> with the standalone driver (trace-pc on the covered files) and runs it; sets status.
fuzz_run_standalone() {
    local src objs=() driver
    CXX=${CXX:-g++}
    echo "fuzz: no libFuzzer; standalone coverage-guided driver with $($CXX --version | head -1)"
    for src in "${FUZZ_SOURCES[@]}"; do
        if [[ " $FUZZ_COVERED " == *" $(basename "$src") "* ]]; then
            objs+=("$(compile_one "$CXX" cov "$src" "${SAN[@]}" -fsanitize-coverage=trace-pc)")
        else
            objs+=("$(compile_one "$CXX" san "$src" "${SAN[@]}")")
        fi
    done
    driver=$(compile_one "$CXX" drv "$FUZZ_TARGET" "${SAN[@]}" -DENDLESS_FUZZ_STANDALONE)
    "$CXX" "${SAN[@]}" "${objs[@]}" "$driver" -lpthread -ldl -o "$WORK/fuzz_$FUZZ_NAME"
    "$WORK/fuzz_$FUZZ_NAME" --write-seeds "$WORK/seeds"
    set +e
    (cd "$WORK" && "./fuzz_$FUZZ_NAME" -n "$N" -seed "$RNG_SEED" seeds) 2>&1 | tee "$WORK/fuzz.log"
    status=${PIPESTATUS[0]}
    set -e
    engine="standalone ($CXX, trace-pc coverage)"
}

# fuzz_main [N] [RNG_SEED], with these set by the calling script:
#   FUZZ_NAME      gguf | snapshot: binaries fuzz_<name>*, summary line "<name> fuzz: ..."
#   FUZZ_TARGET    the target's .cpp (LLVMFuzzerTestOneInput; its main() under ENDLESS_FUZZ_STANDALONE)
#   FUZZ_SOURCES   array: the code under test and what it needs
#   FUZZ_COVERED   space-separated file names that get trace-pc in the standalone build
#   FUZZ_MAX_LEN   libFuzzer's -max_len
#   FUZZ_WORK_DEFAULT   work dir unless $ENDLESS_FUZZ_WORK is set
fuzz_main() {
    N=${1:-1000000}
    RNG_SEED=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
    WORK=${ENDLESS_FUZZ_WORK:-$FUZZ_WORK_DEFAULT}
    mkdir -p "$WORK/obj"
    rm -rf "$WORK/seeds"

    local started finished result summary
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    if have_libfuzzer; then fuzz_run_libfuzzer; else fuzz_run_standalone; fi
    finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    if [ "$status" -eq 0 ]; then
        result="no finding"
    else
        result="FINDING (exit $status; see $WORK/fuzz.log and $WORK/crash-*)"
    fi
    summary="$FUZZ_NAME fuzz: $N executions, engine $engine, ASan+UBSan, rng seed $RNG_SEED, $started .. $finished, $(uname -m) $(nproc) cores: $result"
    echo "$summary"
    echo "$summary" >> "$WORK/results.txt"
    exit "$status"
}
