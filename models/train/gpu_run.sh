#!/usr/bin/env bash
# The default model's whole pipeline on the GPU machine (issue 4), resumable across `run` calls.
#
#   bash models/train/gpu_run.sh smoke [wait_s]              data, tokenizer, 100 steps, export, checks
#   bash models/train/gpu_run.sh full  [wait_s] [budget_s]   the real run (training budget_s seconds)
#
# Every stage leaves a marker in $W (default /tmp/endless-train), so calling the same command
# again on a machine that is still warm goes on where the last call stopped: training runs
# detached (setsid nohup) and each call follows it for at most wait_s seconds; once training
# has finished, the call exports (HF folder), converts with tools/convert_hf.py (Q8_0, and F16
# in full mode), verifies (models/train/verify.py) and puts everything into $OUT as
# result-<mode>.tar.part-NN (15 MiB pieces: cat them and untar). On a fresh machine it starts
# over from the data. Needs .carry-data/js.tar.xz (models/train/pack_js.sh) in the tree.
# The exact commands of the shipped model are in models/README.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: gpu_run.sh smoke|full [wait_s] [budget_s]}
wait_s=${2:-560}
budget=${3:-840}
case "$mode" in smoke|full) ;; *) echo "gpu_run: mode must be smoke or full, not '$mode'"; exit 2;; esac
t0=$(date +%s)
W=${ENDLESS_TRAIN_DIR:-/tmp/endless-train}
TR=models/train
D=$W/data; TOK=$W/tok; R=$W/run-$mode; HF=$W/hf-$mode; G=$W/gguf-$mode
OUTD=${OUT:-$W/out}
mkdir -p "$D" "$TOK" "$R" "$G" "$OUTD"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
python3 -c 'import torch, transformers, tokenizers, safetensors; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'

stage() {
  local name=$1; shift
  if [ -f "$W/.done-$name" ]; then echo "== $name: done earlier on this machine"; return 0; fi
  echo "== $name ($(date -u +%T))"
  local s; s=$(date +%s)
  "$@" || { echo "!! $name failed"; return 1; }
  touch "$W/.done-$name"
  echo "== $name took $(( $(date +%s) - s )) s"
}

[ -f .carry-data/js.tar.xz ] || { echo "!! .carry-data/js.tar.xz is missing: run models/train/pack_js.sh here and carry .carry-data"; exit 1; }
stage prep python3 $TR/prep_data.py --work "$D" --js .carry-data/js.tar.xz || exit 1
stage tokenizer python3 $TR/train_tokenizer.py --work "$D" --out "$TOK" || exit 1
stage samples python3 $TR/build_samples.py --work "$D" --tok "$TOK" || exit 1

if [ "$mode" = smoke ]; then
  train_args=(--steps 100 --warmup 20 --eval-every 50 --log-every 10)
  verify_args=(--fim-lines 4 --fim-multi 2)
else
  train_args=(--time-budget "$budget" --log-every 200 --eval-every 1000)
  verify_args=()
fi
# TRAIN_EXTRA: more train.py options for this call, e.g. TRAIN_EXTRA="--micro 128"
read -r -a extra <<< "${TRAIN_EXTRA:-}"
train_args+=("${extra[@]}")

alive() { [ -f "$R/train.pid" ] && kill -0 "$(cat "$R/train.pid")" 2>/dev/null; }
if [ ! -f "$W/.done-train-$mode" ]; then
  if alive; then
    echo "== training is running (pid $(cat "$R/train.pid"))"
  else
    echo "== training starts ($(date -u +%T))"
    setsid nohup python3 $TR/train.py --work "$D" --run "$R" --logs "$R/logs" "${train_args[@]}" --resume \
      >> "$R/train.out" 2>&1 < /dev/null &
    echo $! > "$R/train.pid"
  fi
  shown=$(wc -l < "$R/train.out")
  [ "$shown" -gt 40 ] && shown=$((shown - 3)) || shown=0
  while true; do
    sleep 5
    n=$(wc -l < "$R/train.out")
    if [ "$n" -gt "$shown" ]; then sed -n "$((shown + 1)),${n}p" "$R/train.out"; shown=$n; fi
    if ! alive; then
      if [ -f "$R/final.pt" ] && grep -q "^\[.*\] done:" "$R/train.out"; then touch "$W/.done-train-$mode"; break; fi
      echo "!! training exited without finishing"; tail -40 "$R/train.out"; exit 1
    fi
    if [ $(( $(date +%s) - t0 )) -ge "$wait_s" ]; then
      echo "== still training after $(( $(date +%s) - t0 )) s: call again within 30 s"; exit 0
    fi
  done
fi

stage "export-$mode" python3 $TR/export_hf.py --ckpt "$R/final.pt" --tok "$TOK" --out "$HF" || exit 1
ggufs=()
types=(q8_0); [ "$mode" = full ] && types=(q8_0 f16)
for t in "${types[@]}"; do
  f="$G/endless-code-$t.gguf"
  [ -f "$f" ] || python3 tools/convert_hf.py "$HF" --outtype "$t" -o "$f" --name "endless-code" || { echo "!! convert_hf.py --outtype $t failed"; continue; }
  ggufs+=("$f")
done
ls -l "$G"
python3 $TR/verify.py --work "$D" --run "$R" --hf "$HF" --out "$R" --gguf "${ggufs[@]}" "${verify_args[@]}" \
  || echo "!! verify.py failed"

P=$W/pack-$mode
rm -rf "$P"; mkdir -p "$P"
cp "$R"/logs/* "$R/train.out" "$D/sources.json" "$D/samples.json" "$D/heldout.tar.xz" \
   "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$HF/config.json" "$P/" 2>/dev/null
cp "$R/verify.json" "$P/" 2>/dev/null
for f in "${ggufs[@]}"; do cp "$f" "$P/"; done
(cd "$P" && sha256sum -- * > SHA256SUMS && cat SHA256SUMS)
tar -cf - -C "$P" . | split -b 15m -d - "$OUTD/result-$mode.tar.part-"
ls -l "$OUTD"
echo "== $mode finished in $(( $(date +%s) - t0 )) s"
