#!/usr/bin/env bash
# Installs what models/train/gpu_run.sh returned through $OUT into the repository:
#   models/endless-code-q8_0.gguf (+ .sha256), models/train/logs/ (loss curves, checks, data
#   manifest), models/train/export/ (config and tokenizer files of the HF export) and
#   models/train/heldout.tar.xz (held-out files for the engine's evaluation).
# Usage: bash models/train/install_results.sh <folder with result-full.tar.part-*> [full|smoke]
set -euo pipefail
src=${1:?usage: install_results.sh <folder> [full|smoke]}
mode=${2:-full}
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ls "$src"/result-"$mode".tar.part-* > /dev/null || { echo "install_results: no result-$mode.tar.part-* in $src"; exit 1; }
cat "$src"/result-"$mode".tar.part-* | tar -xf - -C "$tmp"
(cd "$tmp" && sha256sum -c SHA256SUMS)
logs="$root/models/train/logs"; exp="$root/models/train/export"
mkdir -p "$logs" "$exp"
for f in train_log.csv val_log.csv train_summary.json train.out verify.json sources.json samples.json; do
  [ -f "$tmp/$f" ] && cp "$tmp/$f" "$logs/"
done
for f in config.json tokenizer.json tokenizer_config.json; do cp "$tmp/$f" "$exp/"; done
cp "$tmp/heldout.tar.xz" "$root/models/train/heldout.tar.xz"
if [ "$mode" = full ]; then
  cp "$tmp/endless-code-q8_0.gguf" "$root/models/endless-code-q8_0.gguf"
  (cd "$root/models" && sha256sum endless-code-q8_0.gguf > endless-code-q8_0.gguf.sha256 && cat endless-code-q8_0.gguf.sha256)
  # the F16 file is larger than the 25 MB the repository takes: kept outside it
  [ -f "$tmp/endless-code-f16.gguf" ] && cp "$tmp/endless-code-f16.gguf" /tmp/endless-code-f16.gguf && \
    echo "F16 GGUF at /tmp/endless-code-f16.gguf (not committed)"
fi
ls -l "$root/models" "$logs"
