#!/usr/bin/env bash
# Builds the snapshot reader's fuzz target (fuzz_snapshot.cpp: a tiny random model, one session,
# restore_bytes on each input as is and with a recomputed checksum) under ASan + UBSan and runs N
# executions (default 1,000,000) from a seed corpus of real snapshots it writes itself.
#   - clang++ with libFuzzer available: a libFuzzer binary (-fsanitize=fuzzer,address,undefined).
#   - otherwise: the standalone coverage-guided driver (standalone_driver.h) built with $CXX (g++);
#     coverage from -fsanitize-coverage=trace-pc on session.cpp and kv_cache.cpp.
#     ENDLESS_FUZZ_ENGINE=standalone picks it even where libFuzzer exists.
# The engine's objects are cached in $WORK/obj and rebuilt only when a source or header changed,
# so short runs (the smoke test) cost seconds after the first build. The build and run logic is
# shared with run.sh in common.sh.
# Usage: native/fuzz/run_snapshot.sh [N] [RNG_SEED]   work dir: $ENDLESS_FUZZ_WORK (/tmp/endless-fuzz-snapshot)
# Exit status 0 means N executions with no finding; a finding leaves its input in the work dir
# (crash-* files) and exits non-zero. Reproduce with: $WORK/fuzz_snapshot <crash file>.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FUZZ_NAME=snapshot
FUZZ_TARGET="$FUZZ_DIR/fuzz_snapshot.cpp"
mapfile -t FUZZ_SOURCES < <(ls "$ROOT"/native/src/*.cpp "$ROOT"/native/src/cpu/*.cpp | sort)
if [ "$(uname -m)" != "x86_64" ]; then
    mapfile -t FUZZ_SOURCES < <(printf '%s\n' "${FUZZ_SOURCES[@]}" | grep -v -E '_avx(2|512)\.cpp$')
fi
FUZZ_COVERED="session.cpp kv_cache.cpp"  # the reader under test
FUZZ_MAX_LEN=16384
FUZZ_WORK_DEFAULT=/tmp/endless-fuzz-snapshot
fuzz_main "$@"
