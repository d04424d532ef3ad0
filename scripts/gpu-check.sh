#!/usr/bin/env bash
# The one script for the GPU machine: builds the native engine with the CUDA backend (sm_90),
# runs the C++ op tests (CUDA against double-precision references and, in test_backend_ops,
# beside the CPU backend), the whole-model CUDA tests of the engine when their bundle was carried,
# then the CUDA benchmark; full logs and JSON go to $OUT, a short table is printed last.
#
# Here, before the call: `bash scripts/gpu-carry.sh` fills .carry-gpu/ (Node, its API headers,
# node-addon-api, the engine-cuda test bundle); call with carry [".carry-gpu"] and
#   source .carry-gpu/env.sh; GPU_CHECK_ALL=1 bash scripts/gpu-check.sh
# (The older recipe, without Node: Node headers and node-addon-api headers in an ignored folder:)
#   echo /.carry-cuda/ >> .git/info/exclude; mkdir -p .carry-cuda
#   tar czf .carry-cuda/node-include.tgz -C "$(dirname "$(command -v node)")/../include" node
#   cp -r node_modules/node-addon-api .carry-cuda/
#   printf '%s\n' 'mkdir -p /tmp/nodeinc && tar xzf .carry-cuda/node-include.tgz -C /tmp/nodeinc && export NODE_INCLUDE=/tmp/nodeinc/node' > .carry-cuda/env.sh
# Call (device tool, carry [".carry-cuda"]):  source .carry-cuda/env.sh; bash scripts/gpu-check.sh
# (../shared/gpu/prepare-carry.sh's .carry/ also works when the tree leaves room for its 32 MB: it
#  adds the node binary, needed for the engine-cuda TypeScript test bundled into .carry/.)
# Options (environment): GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_SKIP_BENCH=1, CUDA_ARCH (default 90),
# GPU_CHECK_STANDALONE=1 (build only the CUDA library and its two test programs, without CMake).
# GPU_CHECK_ENGINE_ENV (";"-separated environment settings: engine-cuda once more under each).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-check-out}
mkdir -p "$OUT"
BUILD=${GPU_CHECK_BUILD:-/tmp/build-gpu}
ARCH=${CUDA_ARCH:-90}
JOBS=$(nproc 2>/dev/null || echo 8)
STANDALONE=0
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

note "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | tee -a "$summary"
else
  note "nvidia-smi not found"
fi
nvcc --version | tail -1 | tee -a "$summary"

# ---- build ----
node_args=()
if [ -n "${NODE_INCLUDE:-}" ]; then
  napi=""
  for d in .carry/node-addon-api .carry-gpu/node-addon-api .carry-cuda/node-addon-api node_modules/node-addon-api; do [ -f "$d/napi.h" ] && napi="$root/$d" && break; done
  if [ -n "$napi" ]; then node_args=(-DNODE_INCLUDE_DIR="$NODE_INCLUDE" -DNAPI_INCLUDE_DIR="$napi"); else note "node-addon-api headers not carried: addon not built"; fi
else
  note "NODE_INCLUDE unset (source .carry/node-env.sh): addon not built"
fi
t0=$(date +%s)
mkdir -p "$BUILD"
if [ "${GPU_CHECK_STANDALONE:-0}" != 1 ] && cmake -S native -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DENDLESS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${node_args[@]}" \
     > "$OUT/build.log" 2>&1 && cmake --build "$BUILD" -j"$JOBS" >> "$OUT/build.log" 2>&1; then
  note "build: ok ($(( $(date +%s) - t0 )) s, sm_$ARCH)"
  # ptxas's performance notes (e.g. C7520: every wgmma of a kernel serialized), which a build passes
  # as "ptxas info" lines (NOTES.md, eleventh session)
  perf=$(grep -oE "\(C75[0-9]+\)[^']*'[^']*'" "$OUT/build.log" | sed -E "s/ in the function '/ in /; s/'$//" | sort | uniq -c)
  [ -n "$perf" ] && note "ptxas performance notes in build.log:" && echo "$perf" | cut -c1-220 | tee -a "$summary"
else
  [ "${GPU_CHECK_STANDALONE:-0}" != 1 ] && note "build: FAILED (see build.log)" && grep -E "error" "$OUT/build.log" | head -10
  # Fallback while other parts of the tree do not build: the CUDA library, the reference
  # quantizers and the two CUDA test programs alone (no CPU backend, no addon).
  note "standalone build of the CUDA tests (no CPU backend comparison)"
  SB=/tmp/cuda-standalone
  mkdir -p "$SB"
  NV=(nvcc -std=c++17 -O3 --use_fast_math -arch=sm_$ARCH -Inative/include -Inative/src)
  CX=(g++ -std=c++17 -O3 -Inative/include -Inative/src -I/usr/local/cuda/include -DENDLESS_WITH_CUDA=1 -DENDLESS_NO_CPU_BACKEND=1)
  pids=()
  for f in native/src/cuda/*.cu; do "${NV[@]}" -c "$f" -o "$SB/$(basename "$f").o" >> "$OUT/build.log" 2>&1 & pids+=($!); done
  for f in native/src/quant.cpp native/src/ggml_types.cpp native/src/sampler.cpp native/tests/test_cuda_ops.cpp native/tests/test_cuda_bench.cpp; do
    "${CX[@]}" -c "$f" -o "$SB/$(basename "$f").o" >> "$OUT/build.log" 2>&1 & pids+=($!)
  done
  ok=1
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  libs=("$SB"/*.cu.o "$SB"/quant.cpp.o "$SB"/ggml_types.cpp.o "$SB"/sampler.cpp.o -L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt -lpthread)
  if [ $ok = 1 ] && g++ -o "$BUILD/test_cuda_ops" "$SB/test_cuda_ops.cpp.o" "${libs[@]}" >> "$OUT/build.log" 2>&1 &&
     g++ -o "$BUILD/test_cuda_bench" "$SB/test_cuda_bench.cpp.o" "${libs[@]}" >> "$OUT/build.log" 2>&1; then
    note "standalone build: ok ($(( $(date +%s) - t0 )) s)"
    STANDALONE=1
  else
    note "standalone build: FAILED"
    grep -E "error" "$OUT/build.log" | tail -10
    exit 1
  fi
fi

# ---- tests ----
fails=0
run_test() {  # name, timeout seconds, command...
  local name=$1 limit=$2; shift 2
  local t=$(date +%s)
  # line-buffered, so that a run stopped by its time limit still shows the last test it reached
  if timeout "$limit" stdbuf -oL -eL "$@" >> "$OUT/tests.log" 2>&1; then
    note "test $name: ok ($(( $(date +%s) - t )) s)"
  else
    note "test $name: FAILED (rc $?, see tests.log)"
    fails=$((fails + 1))
  fi
}
: > "$OUT/tests.log"
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
  echo "== test_cuda_ops" >> "$OUT/tests.log"
  run_test test_cuda_ops 300 "$BUILD/test_cuda_ops"
fi

# ---- benchmark ----
if [ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  t=$(date +%s)
  cmd="scripts/gpu-check.sh (GPU_CHECK_ALL=${GPU_CHECK_ALL:-0} GPU_CHECK_SKIP_TESTS=${GPU_CHECK_SKIP_TESTS:-0} GPU_CHECK_SKIP_ANCHOR=${GPU_CHECK_SKIP_ANCHOR:-0}) at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
  if ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_OUT="$OUT/cuda_bench.json" ENDLESS_BENCH_COMMAND="$cmd" timeout 170 "$BUILD/test_cuda_bench" > "$OUT/bench.log" 2>&1; then
    note "bench: ok ($(( $(date +%s) - t )) s)"
  else
    note "bench: FAILED (rc $?, see bench.log)"
    fails=$((fails + 1))
  fi
fi
# ---- the remaining tests ----
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]; then
  # the opt-in fused one-token kernel (decode_fused.cu) through the layer-sequence and graph tests
  echo "== test_cuda_ops with the fused decode kernel" >> "$OUT/tests.log"
  ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_TEST_ONLY=cuda_layer_sequence,cuda_graph run_test test_cuda_ops_fused_decode 90 "$BUILD/test_cuda_ops"
fi
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ] && [ $STANDALONE = 1 ]; then
  echo "== test_cuda_ops with graphs off" >> "$OUT/tests.log"
  ENDLESS_CUDA_GRAPHS=0 run_test test_cuda_ops_no_graphs 300 "$BUILD/test_cuda_ops"
fi
if [ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ] && [ $STANDALONE = 0 ]; then
  echo "== test_cuda_ops with graphs off" >> "$OUT/tests.log"
  ENDLESS_CUDA_GRAPHS=0 run_test test_cuda_ops_no_graphs 300 "$BUILD/test_cuda_ops"
  echo "== test_backend_ops (CPU ISAs and CUDA)" >> "$OUT/tests.log"
  run_test test_backend_ops 120 "$BUILD/test_backend_ops"
  # the other C++ tests run on the CPU (CI covers them); GPU_CHECK_ALL=1 runs them here too
  if [ "${GPU_CHECK_ALL:-0}" = 1 ]; then
    echo "== ctest (others)" >> "$OUT/tests.log"
    run_test ctest_others 240 ctest --test-dir "$BUILD" --output-on-failure -E "test_cuda_ops|test_backend_ops|test_cuda_bench"
  fi
  # whole-model tests of the engine on CUDA (bundled here with esbuild, if carried)
  # (here: node_modules/.bin/esbuild test/engine-cuda.test.ts --bundle --platform=node --format=cjs
  #  --target=node20 --outfile=.carry/engine-cuda.test.cjs); it runs from test/ for its __dirname
  bundle=""
  for d in .carry .carry-gpu; do [ -f "$d/engine-cuda.test.cjs" ] && bundle="$d/engine-cuda.test.cjs" && break; done
  if [ -n "$bundle" ] && command -v node >/dev/null && [ -f "$BUILD/endless.node" ]; then
    echo "== engine-cuda.test (node)" >> "$OUT/tests.log"
    cp "$bundle" test/.engine-cuda.bundle.test.cjs
    ENDLESS_ADDON="$BUILD/endless.node" run_test engine_cuda 300 node --test --test-reporter=spec test/.engine-cuda.bundle.test.cjs
    # GPU_CHECK_ENGINE_ENV="A=1;B=2 C=3": the same tests again under each of these settings (e.g.
    # ENDLESS_CUDA_ATTN_WGMMA=all: the shipped model's head dim 64 on the wgmma prefill attention)
    IFS=';' read -r -a engine_envs <<< "${GPU_CHECK_ENGINE_ENV:-}"
    for v in "${engine_envs[@]}"; do
      [ -z "$v" ] && continue
      read -r -a e <<< "$v"
      echo "== engine-cuda.test (node) with $v" >> "$OUT/tests.log"
      ENDLESS_ADDON="$BUILD/endless.node" run_test "engine_cuda ($v)" 300 env "${e[@]}" node --test --test-reporter=spec test/.engine-cuda.bundle.test.cjs
    done
    rm -f test/.engine-cuda.bundle.test.cjs
  else
    note "engine-cuda test: not run (bundle, node or addon missing)"
  fi
  grep -E "FAIL|SKIP|error" "$OUT/tests.log" | head -40
fi

# ---- the side-by-side anchor: the same model shape in PyTorch/transformers on this card ----
if [ "${GPU_CHECK_SKIP_ANCHOR:-0}" != 1 ] && [ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]; then
  t=$(date +%s)
  if timeout 300 python3 bench/gpu/transformers_anchor.py "$OUT/transformers.json" > "$OUT/anchor.log" 2>&1; then
    note "transformers anchor: ok ($(( $(date +%s) - t )) s)"
    grep -E "^(prefill|decode)" "$OUT/anchor.log" | sed 's/^/  transformers /' | tee -a "$summary"
  else
    note "transformers anchor: FAILED (rc $?, see anchor.log)"; tail -5 "$OUT/anchor.log"
  fi
fi

[ -f "$OUT/bench.log" ] && sed -n '/==== summary/,$p' "$OUT/bench.log" >> "$summary"
echo
cat "$summary"
exit $(( fails > 0 ))
