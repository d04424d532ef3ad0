#!/usr/bin/env bash
# Checks that models/eval/streaming_repro.ts (batched decoding, sampled recompute) gives the same
# numbers as `endless eval-stream` (one token at a time) on the same stream:
#   bash models/eval/check_batched.sh MODEL HELDOUT_DIR [TOKENS]
set -euo pipefail
model=${1:?usage: check_batched.sh MODEL HELDOUT_DIR [TOKENS]}; held=${2:?HELDOUT_DIR}; n=${3:-2500}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$(dirname "$0")/../.."
node --import tsx models/eval/streaming_repro.ts --model "$model" --heldout "$held" --tokens "$n" --every 1024 \
  --sinks 0,1,4 --no-dense --recompute 6 --recompute-from 1021 --recompute-to 1100 --threads 2 \
  --out "$tmp/rep.json" --stream-text "$tmp/stream.txt" 2>/dev/null
cli() { node --import tsx server/cli.ts eval-stream --model "$model" --device cpu --threads 2 --text-file "$tmp/stream.txt" --max-tokens "$n" "$@"; }
cli --mode window --window 1020 --every 100000 | tail -1 > "$tmp/w0.json"
cli --mode streaming --sinks 1 --window 1020 --every 100000 | tail -1 > "$tmp/s1.json"
cli --mode streaming --sinks 4 --window 1020 --every 100000 | tail -1 > "$tmp/s4.json"
node --import tsx server/cli.ts eval-stream --model "$model" --device cpu --threads 2 --text-file "$tmp/stream.txt" \
  --max-tokens 1100 --mode recompute --window 1020 --every 1 > "$tmp/rc.jsonl"
python3 - "$tmp" <<'PY'
import json, math, sys
d = sys.argv[1]
rep = json.load(open(f"{d}/rep.json"))
modes = {m["mode"]: m for m in rep["modes"]}
bad = 0
for name, f in (("S=0", "w0"), ("S=1", "s1"), ("S=4", "s4")):
    c = json.loads(open(f"{d}/{f}.json").read())
    diff = abs(c["nll"] - modes[name]["nll"])
    print(f"{name}: eval-stream nll {c['nll']:.6f} ({c['scored']} scored), streaming_repro {modes[name]['nll']:.6f} ({modes[name]['scored']}), |diff| {diff:.2e}")
    bad += diff > 1e-3 or c["scored"] != modes[name]["scored"]
# eval-stream --every 1: chunk k holds the token at position start (scored position = start)
per = {}
for line in open(f"{d}/rc.jsonl"):
    o = json.loads(line)
    if "chunk" in o:
        per[o["start"]] = o["nll"]
rs = rep["recompute_sampled"]
for name in ("recompute",):
    for p, v in zip(rs["positions"], rs["nll_at_positions"][name]):
        diff = abs(per[p] - v)
        print(f"recompute at {p}: eval-stream {per[p]:.6f}, streaming_repro {v:.6f}, |diff| {diff:.2e}")
        bad += diff > 1e-3
print("OK: batched streaming and sampled recompute equal eval-stream" if not bad else "MISMATCH")
sys.exit(1 if bad else 0)
PY
