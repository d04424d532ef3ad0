#!/usr/bin/env bash
# A/B of environment switches on the GPU machine: builds like gpu-check.sh (reusing its build
# folder), runs test_cuda_ops once per variant, then the benchmark's decode products alone
# (ENDLESS_BENCH_ONLY=matvec) and the decode step (ENDLESS_BENCH_ONLY=decode) for each variant,
# twice in alternation, so the numbers compare on one card in one run. Call (device tool, carry
# [".carry-gpu"]):
#   source .carry-gpu/env.sh; AB_VARIANTS="X=0;X=1" bash scripts/gpu-ab.sh
# AB_VARIANTS: ';'-separated variants, each a space-separated list of VAR=value ("-" for none).
# AB_PARTS (default "matvec decode"), AB_SKIP_TESTS=1.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-ab-out}
mkdir -p "$OUT"
BUILD=${GPU_CHECK_BUILD:-/tmp/build-gpu}
if [ ! -x "$BUILD/test_cuda_bench" ]; then
  GPU_CHECK_SKIP_TESTS=1 GPU_CHECK_SKIP_BENCH=1 GPU_CHECK_SKIP_ANCHOR=1 bash scripts/gpu-check.sh > "$OUT/build-summary.txt" 2>&1
  tail -3 "$OUT/build-summary.txt"
fi
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
date -u +%Y-%m-%dT%H:%M:%SZ
IFS=';' read -ra variants <<< "${AB_VARIANTS:--}"
if [ "${AB_SKIP_TESTS:-0}" != 1 ]; then
  for v in "${variants[@]}"; do
    [ "$v" = "-" ] && v=""
    if env $v "$BUILD/test_cuda_ops" > "$OUT/ops.log" 2>&1; then echo "test_cuda_ops [$v]: ok"; else echo "test_cuda_ops [$v]: FAILED"; grep -iE "fail|error" "$OUT/ops.log" | head -20; fi
  done
fi
for round in 1 2; do
  for part in ${AB_PARTS:-matvec decode}; do
    for v in "${variants[@]}"; do
      [ "$v" = "-" ] && v=""
      echo "== round $round, $part [$v]"
      env $v ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=$part timeout 200 "$BUILD/test_cuda_bench" 2>&1 | grep -E "matvec |decode only|prefill only|FAIL|rror"
    done
  done
done
