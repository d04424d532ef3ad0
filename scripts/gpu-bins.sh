#!/usr/bin/env bash
# CUDA test and benchmark binaries built here, run on the GPU machine without building there (the
# device tool's machine starts bare, and a cmake build there costs ~4 min of device time).
#   here:  bash scripts/gpu-bins.sh pack [build-dir] [name=path/to/another/test_cuda_bench ...]
#          (cmake -S native -B build/gpu90 -DCMAKE_BUILD_TYPE=Release -DENDLESS_CUDA=ON
#           -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build/gpu90 --target test_cuda_ops test_cuda_bench
#           first; CUDA 13 here and there, cudart static): test_cuda_ops and test_cuda_bench stripped
#          into .carry-bin/bins.tar.xz (~18 MB: the two share most of their bytes; the tree plus
#          carry must stay under 64 MiB; binaries of other trees added as name=path go in as
#          test_cuda_bench.name or test_cuda_ops.name, ~0.1-0.5 MB each, for an A/B of builds), then
#          the device tool with carry [".carry-bin"] and
#   there: OUT=$OUT bash scripts/gpu-bins.sh run
#          every test_cuda_ops in full, then for each variant of BINS_VARIANTS (";"-separated environment
#          settings, "-" for none; default: the defaults against the mma.sync prefill attention)
#          the prefill attention alone (ENDLESS_BENCH_ONLY=attn_prefill) and a 16k prefill, in two
#          alternating rounds, with each benchmark binary in the archive (BINS_FULL=1: the whole
#          benchmark instead, its decode position sweep and prefill figures; JSON to $OUT;
#          BINS_SKIP_OPS=1: no test_cuda_ops); BINS_NCU=1 adds ncu's
#          figures for one windowed launch of the wgmma attention kernel (first variant, first binary).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "${1:-}" in
pack)
  build=${2:-build/gpu90}
  grep -qx '/.carry-bin/' .git/info/exclude 2>/dev/null || echo '/.carry-bin/' >> .git/info/exclude
  mkdir -p .carry-bin
  tmp=$(mktemp -d)
  for b in test_cuda_ops test_cuda_bench; do
    [ -x "$build/$b" ] || { echo "no $build/$b (build it first)"; exit 1; }
    cp "$build/$b" "$tmp/$b" && strip "$tmp/$b"
  done
  shift 2 2>/dev/null || shift
  for extra in "$@"; do
    name=${extra%%=*}; path=${extra#*=}
    [ -x "$path" ] || { echo "no $path"; exit 1; }
    kind=test_cuda_bench; case "$(basename "$path")" in test_cuda_ops*) kind=test_cuda_ops ;; esac
    cp "$path" "$tmp/$kind.$name" && strip "$tmp/$kind.$name"
  done
  (cd "$tmp" && tar cf - test_cuda_*) | xz -9e -T1 > .carry-bin/bins.tar.xz
  rm -rf "$tmp"
  ls -la .carry-bin/bins.tar.xz
  ;;
run)
  OUT=${OUT:-$root/gpu-bins-out}
  mkdir -p "$OUT"
  D=/tmp/gpu-bins; mkdir -p $D
  xz -dc .carry-bin/bins.tar.xz | tar xf - -C $D || { echo "no .carry-bin/bins.tar.xz"; exit 1; }
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1; date -u +%FT%TZ
  for t in $D/test_cuda_ops $(ls $D/test_cuda_ops.* 2>/dev/null); do
    [ "${BINS_SKIP_OPS:-0}" = 1 ] && break
    log="$OUT/$(basename "$t").log"
    timeout 300 "$t" > "$log" 2>&1
    echo "$(basename "$t"): rc $? ($(grep -cE '^ok' "$log") ok)"; grep -E "^FAIL|FAILED" "$log" | head -5
  done
  IFS=';' read -r -a variants <<< "${BINS_VARIANTS:--;ENDLESS_CUDA_ATTN_WGMMA=0}"
  benches=($D/test_cuda_bench $(ls $D/test_cuda_bench.* 2>/dev/null))
  for round in 1 2; do
    for b in "${benches[@]}"; do
      for v in "${variants[@]}"; do
        e=(); [ "$v" != "-" ] && read -r -a e <<< "$v"
        tag="$(basename "$b") $v"
        if [ "${BINS_FULL:-0}" = 1 ]; then
          # the whole benchmark (decode at four stream positions, prefill 4k..32k, recompute): its model
          # lines and the position sweep from its JSON
          j="$OUT/full-r$round-$(basename "$b")-$(echo "$v" | tr -dc 'A-Za-z0-9=_' | cut -c1-60).json"
          env "${e[@]}" ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_OUT="$j" timeout 200 "$b" > /dev/null 2>&1
          python3 - "$j" "$tag" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"[{sys.argv[2]}] no result ({e})"); sys.exit(0)
for m in d.get("model_1p5b", []):
    pf = m.get("prefill_chunk4096_tok_s", {})
    pr = m.get("prefill_chunk4096_after_rest_tok_s", {})
    print(f"[{sys.argv[2]}] {m.get('type')}: decode 4k/64k/1M/4M {m.get('decode_ms'):.3f} / {m.get('decode_ms_pos64k'):.3f} / "
          f"{m.get('decode_ms_pos1m'):.3f} / {m.get('decode_ms_pos4m'):.3f} ms; prefill " + " / ".join(f"{k} {v:.0f}" for k, v in pf.items())
          + ("; after a pause " + " / ".join(f"{k} {v:.0f}" for k, v in pr.items()) if pr else ""))
PY
        else
          env "${e[@]}" ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=attn_prefill timeout 120 "$b" | grep "attention prefill" | sed "s|^|[$tag] |"
          env "${e[@]}" ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=prefill timeout 120 "$b" | tail -1 | sed "s|^|[$tag] |"
        fi
      done
    done
  done
  if [ "${BINS_NCU:-0}" = 1 ]; then
    NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    v=${variants[0]}; e=(); [ "$v" != "-" ] && read -r -a e <<< "$v"
    env "${e[@]}" ENDLESS_CUDA_BENCH=1 ENDLESS_BENCH_ONLY=attn_prefill timeout 200 "$NCU" -k regex:attention_wgmma -s 200 -c 1 \
      --set full -f -o /tmp/gpu-bins-aw $D/test_cuda_bench > "$OUT/ncu-run.log" 2>&1
    "$NCU" -i /tmp/gpu-bins-aw.ncu-rep --page details > "$OUT/ncu-details.txt" 2>&1
    grep -E "Duration|Issue Slots Busy|Tensor is|Registers Per|L2 Cache Throughput" "$OUT/ncu-details.txt" | head
  fi
  ;;
*)
  sed -n '2,19p' "$0"; exit 1 ;;
esac
