#!/usr/bin/env bash
# The default model's evaluation, stage by stage (each stage's results land in models/eval/results/):
#   bash models/eval/run_eval.sh prep     # held-out archive -> $WORK/heldout, per-language texts
#   bash models/eval/run_eval.sh check    # batched streaming == endless eval-stream, on this model
#   bash models/eval/run_eval.sh ppl      # per-language perplexity through endless eval-stream
#   bash models/eval/run_eval.sh repro    # the StreamingLLM reproduction (long; stoppable)
#   bash models/eval/run_eval.sh fim      # FIM exact match
#   bash models/eval/run_eval.sh chart    # docs/streaming-repro.svg + markdown tables
# Environment: MODEL (models/endless-code-q8_0.gguf), HELDOUT (models/train/heldout.tar.xz, or a
# folder holding heldout/MANIFEST.json), WORK (/tmp/endless-eval), THREADS (2), PPL_TOKENS (20000),
# REPRO_TOKENS (1048576), DENSE_TOKENS (131072), FIM_LINES (200), FIM_SPANS (100).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-models/endless-code-q8_0.gguf}
HELDOUT=${HELDOUT:-models/train/heldout.tar.xz}
WORK=${WORK:-/tmp/endless-eval}
THREADS=${THREADS:-2}
RES=${RES:-models/eval/results}
mkdir -p "$RES" "$WORK"
held="$WORK/heldout"
case "${1:?stage: prep|check|ppl|repro|fim|chart}" in
  prep)
    rm -rf "$held"; mkdir -p "$held"
    if [ -d "$HELDOUT" ]; then cp -r "$HELDOUT/heldout" "$held/"; else tar -xJf "$HELDOUT" -C "$held"; fi
    python3 models/eval/lang_text.py "$held" "$WORK/lang"
    ;;
  check)
    bash models/eval/check_batched.sh "$MODEL" "$held" "${CHECK_TOKENS:-2000}" | tee "$RES/check-batched.txt"
    ;;
  ppl)
    for lang in python js cpp; do
      for mode in streaming dense; do
        args=(--model "$MODEL" --device cpu --threads "$THREADS" --text-file "$WORK/lang/$lang.txt" --mode "$mode" --every 4096)
        if [ "$mode" = streaming ]; then args+=(--sinks 1 --window 1020 --max-tokens "${PPL_TOKENS:-20000}"); fi
        out="$RES/ppl-$lang-$mode.jsonl"
        echo "# endless eval-stream ${args[*]}" | sed "s#$WORK#\$WORK#g" > "$out"
        node --import tsx server/cli.ts eval-stream "${args[@]}" 2>>"$out.stderr" >> "$out"
        tail -1 "$out"
      done
    done
    ;;
  repro)
    node --import tsx models/eval/streaming_repro.ts --model "$MODEL" --heldout "$held" --threads "$THREADS" \
      --tokens "${REPRO_TOKENS:-1048576}" --window 1020 --sinks 0,1,4 --every 8192 --dense-tokens "${DENSE_TOKENS:-131072}" \
      --recompute "${RECOMPUTE:-128}" --recompute-from 2048 --recompute-to 8192 --seed 1 \
      --out "$RES/streaming-repro.json" 2>&1 | tee "$WORK/repro.log"
    ;;
  fim)
    node --import tsx models/eval/fim_eval.ts --model "$MODEL" --heldout "$held" --threads "$THREADS" \
      --lines "${FIM_LINES:-200}" --spans "${FIM_SPANS:-100}" --orders psm,spm --seed 1 --out "$RES/fim.json" | tee "$RES/fim-summary.txt"
    ;;
  chart)
    python3 models/eval/chart.py "$RES/streaming-repro.json" docs/streaming-repro.svg
    python3 models/eval/tables.py "$RES" | tee "$RES/tables.md"
    ;;
  *) echo "unknown stage $1" >&2; exit 2 ;;
esac
