#!/usr/bin/env bash
# Where the fused one-token decode kernel (native/src/cuda/decode_fused.cu, ENDLESS_CUDA_FUSED_DECODE=1)
# spends its time, in one device call (NOTES.md, tenth session: it measured 2.59 ms a BF16 step against
# 1.75 ms for the separate launches, issue-latency bound, cause not found):
#   1. the decode-only benchmark with the kernel's per-phase profile (ENDLESS_CUDA_FUSED_PROFILE=1),
#      against the separate launches;
#      then with the two experiment knobs (ENDLESS_CUDA_FUSED_BACKOFF, ENDLESS_CUDA_FUSED_MIN_CHUNK);
#   2. ncu on one fused launch: the warp stall reasons (raw metrics, largest first) and the SASS lines
#      with the most stall samples (source page; the build has -lineinfo).
# Call (device tool; builds like gpu-ab.sh, reusing /tmp/build-gpu on a warm machine):
#   OUT=$OUT bash scripts/gpu-fused-profile.sh
# Or with binaries built here and carried (CUDA 13 on both machines, static cudart; the working tree
# plus carry must stay under 64 MiB, so carry the benchmark alone, xz-compressed):
#   FUSED_BENCH=.carry-bin/test_cuda_bench.xz OUT=$OUT bash scripts/gpu-fused-profile.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-fused-out}
mkdir -p "$OUT"
# everything printed also goes to $OUT/profile.txt (the device tool returns only the last 12,000
# characters of a call's output; the first run of this script lost its first three benchmark runs)
exec > >(tee "$OUT/profile.txt") 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
date -u +%Y-%m-%dT%H:%M:%SZ
if [ -n "${FUSED_BENCH:-}" ]; then
  B=/tmp/fused-bench
  [ -f "$FUSED_BENCH" ] || { echo "FUSED_BENCH=$FUSED_BENCH: no such file"; exit 1; }
  case "$FUSED_BENCH" in *.xz) xz -dc "$FUSED_BENCH" > "$B" ;; *) cp "$FUSED_BENCH" "$B" ;; esac || exit 1
  chmod +x "$B"
else
  BUILD=${GPU_CHECK_BUILD:-/tmp/build-gpu}
  cmake -S native -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DENDLESS_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/build.log" 2>&1 &&
    cmake --build "$BUILD" -j"$(nproc)" --target test_cuda_bench >> "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  B=$BUILD/test_cuda_bench
fi
bench() { env "$@" ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=decode timeout 60 "$B" 2>&1 | grep -E "decode only|FAIL|rror" | sed -E 's/; attention alone.*//'; }
echo "== fused, profiled";   bench ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_CUDA_FUSED_PROFILE=1
echo "== fused";             bench ENDLESS_CUDA_FUSED_DECODE=1
echo "== separate launches"; bench
# the two knobs written for the suspects in NOTES (each run also checks the logits against the separate launches)
echo "== fused, 200 ns between barrier tries"; bench ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_CUDA_FUSED_PROFILE=1 ENDLESS_CUDA_FUSED_BACKOFF=200
echo "== fused, small products in chunks of >= 1 KB"; bench ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_CUDA_FUSED_PROFILE=1 ENDLESS_CUDA_FUSED_MIN_CHUNK=1024
echo "== fused, both"; bench ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_CUDA_FUSED_PROFILE=1 ENDLESS_CUDA_FUSED_BACKOFF=200 ENDLESS_CUDA_FUSED_MIN_CHUNK=1024
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ -z "$NCU" ]; then echo "no ncu"; exit 0; fi
rep="$OUT/fused"
ENDLESS_CUDA_FUSED_DECODE=1 ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=decode timeout 240 \
  "$NCU" -k regex:decode_fused -s 5 -c 1 --set full --import-source yes -f -o "$rep" "$B" > "$OUT/ncu-run.log" 2>&1
echo "ncu rc=$?"
"$NCU" -i "$rep.ncu-rep" --page raw --csv > "$OUT/ncu-raw.csv" 2>&1
python3 - "$OUT/ncu-raw.csv" <<'EOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
if len(rows) < 3: print("raw page: nothing read"); sys.exit(0)
names, vals = rows[0], rows[2]
stalls = []
# smsp__average_warps_issue_stalled_<reason>_per_issue_active.ratio (the Warp State Statistics'
# breakdown; older ncu: smsp__average_warp_latency_issue_stalled_<reason>.ratio)
for n, v in zip(names, vals):
    reason = None
    if n.startswith("smsp__average_warps_issue_stalled_") and n.endswith("_per_issue_active.ratio"):
        reason = n[len("smsp__average_warps_issue_stalled_"):-len("_per_issue_active.ratio")]
    elif n.startswith("smsp__average_warp_latency_issue_stalled_") and n.endswith(".ratio"):
        reason = n[len("smsp__average_warp_latency_issue_stalled_"):-len(".ratio")]
    if reason:
        try: stalls.append((float(v.replace(",", "")), reason))
        except ValueError: pass
print("warp stall reasons (cycles between issues, per reason, largest first):")
for v, n in sorted(stalls, reverse=True)[:12]: print(f"  {n:28s} {v:8.2f}")
for key in ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "smsp__inst_executed.sum", "gpu__time_duration.sum"):
    if key in names: print(f"{key} = {vals[names.index(key)]}")
EOF
"$NCU" -i "$rep.ncu-rep" --page source --csv --print-source sass > "$OUT/ncu-source.csv" 2>&1
python3 - "$OUT/ncu-source.csv" <<'EOF'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
hdr = next((i for i, r in enumerate(rows) if any("Stall Sampling (All" in c for c in r)), None)
if hdr is None: print("source page: no stall-sampling column (see ncu-source.csv)"); sys.exit(0)
h = rows[hdr]
col = next(i for i, c in enumerate(h) if "Stall Sampling (All" in c)
src = next((i for i, c in enumerate(h) if c.strip() in ("Source", "# Source")), 1)
body = []
for r in rows[hdr + 1:]:
    try: body.append((int(float(r[col].replace(",", "") or 0)), r[src]))
    except (ValueError, IndexError): pass
total = sum(v for v, _ in body) or 1
print(f"SASS lines with the most stall samples ({total} samples):")
for v, s in sorted(body, reverse=True)[:40]: print(f"  {100.0 * v / total:5.1f}%  {s[:110]}")
EOF
rm -f "$rep.ncu-rep"  # (large; the text above is what comes back)
date -u +%Y-%m-%dT%H:%M:%SZ
