#!/usr/bin/env bash
# Where the time of a decode step and of a prefill goes, kernel by kernel (GPU machine): builds
# like gpu-check.sh (reusing its build folder when present), then runs the benchmark's decode-only
# and prefill-only parts (BF16, 1.5B shape, ENDLESS_BENCH_ONLY) under Nsight Compute, timing each
# kernel (gpu__time_duration, no cache flush, no clock lock: kernels run one at a time, so the
# sum leaves out the gaps between them), and prints the time per kernel name. Call (device tool,
# carry [".carry-gpu"]):  source .carry-gpu/env.sh; bash scripts/gpu-profile.sh
# PROFILE_PARTS="decode prefill" (default) picks the parts.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-profile-out}
mkdir -p "$OUT"
BUILD=${GPU_CHECK_BUILD:-/tmp/build-gpu}
if [ ! -x "$BUILD/test_cuda_bench" ]; then
  GPU_CHECK_SKIP_TESTS=1 GPU_CHECK_SKIP_BENCH=1 GPU_CHECK_SKIP_ANCHOR=1 bash scripts/gpu-check.sh > "$OUT/build-summary.txt" 2>&1
fi
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -z "$NCU" ]; then echo "ncu not found"; exit 1; fi
for part in ${PROFILE_PARTS:-decode prefill}; do
  # decode: skip the warm-up steps, time two steps (~170 kernels each); prefill: skip the warm-up
  # 4096-token prefill, time about one 4096-token chunk
  if [ "$part" = decode ]; then skip=3000; count=340; else skip=700; count=600; fi
  ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=$part timeout 300 "$NCU" --cache-control none --clock-control none \
    --launch-skip $skip --launch-count $count --metrics gpu__time_duration.sum --csv "$BUILD/test_cuda_bench" > "$OUT/ncu-$part.csv" 2>&1
  echo "== $part: kernel time by name (share, avg ns, count)"
  python3 - "$OUT/ncu-$part.csv" <<'PY'
import csv, sys, collections
lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    print("\n".join(lines[-5:])); sys.exit(0)
agg = collections.defaultdict(lambda: [0.0, 0])
for r in csv.DictReader(lines[start:]):
    if r['Metric Name'] != 'gpu__time_duration.sum': continue
    v = float(r['Metric Value'].replace(',', '')) * {'nsecond': 1, 'usecond': 1e3, 'msecond': 1e6}.get(r['Metric Unit'], 1)
    k = r['Kernel Name'][:100] + ' ' + r.get('Grid Size', '')
    agg[k][0] += v; agg[k][1] += 1
tot = sum(a[0] for a in agg.values())
print(f"total {tot / 1e3:.1f} us over {sum(a[1] for a in agg.values())} kernels")
for k, (t, n) in sorted(agg.items(), key=lambda x: -x[1][0])[:25]:
    print(f"{100 * t / tot:5.1f}% {t / n:10.0f} ns x{n:4d}  {k}")
PY
done
