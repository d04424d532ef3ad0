#!/usr/bin/env bash
# Builds the GGUF reader's fuzz target under ASan + UBSan and runs N executions (default 1,000,000)
# from a seed corpus it writes itself (valid files made by native/tests/gguf_builder.h).
#   - clang++ with libFuzzer available: a libFuzzer binary (-fsanitize=fuzzer,address,undefined).
#   - otherwise: the standalone coverage-guided driver (standalone_driver.h) built with $CXX (g++),
#     coverage from -fsanitize-coverage=trace-pc on the reader's own objects.
#     ENDLESS_FUZZ_ENGINE=standalone picks it even where libFuzzer exists.
# The build and run logic is shared with run_snapshot.sh in common.sh.
# Usage: native/fuzz/run.sh [N] [RNG_SEED]      work dir: $ENDLESS_FUZZ_WORK (/tmp/endless-fuzz-gguf)
# Exit status 0 means N executions with no finding; a finding leaves its input in the work dir
# (crash-* files) and exits non-zero. Reproduce with: $WORK/fuzz_gguf <crash file>.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FUZZ_NAME=gguf
FUZZ_TARGET="$FUZZ_DIR/fuzz_gguf.cpp"
FUZZ_SOURCES=("$ROOT/native/src/gguf.cpp" "$ROOT/native/src/ggml_types.cpp")
FUZZ_COVERED="gguf.cpp ggml_types.cpp"
FUZZ_MAX_LEN=65536
FUZZ_WORK_DEFAULT=/tmp/endless-fuzz-gguf
fuzz_main "$@"
