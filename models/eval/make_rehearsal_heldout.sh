#!/usr/bin/env bash
# Builds a stand-in held-out set in the layout of models/train/prep_data.py (heldout/MANIFEST.json,
# heldout/<lang>/<file>) from this repository's own sources, which no training run ever saw:
# tools/*.py (python), server/**/*.ts (js), native/**/*.cpp|*.h (cpp). Used to rehearse the
# evaluation, and as the fallback evaluation set if no held-out archive comes back.
#   bash models/eval/make_rehearsal_heldout.sh /tmp/endless-eval/rehearsal
set -euo pipefail
out=${1:?usage: make_rehearsal_heldout.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
python3 - "$root" "$out" <<'PY'
import glob, hashlib, json, os, re, sys
root, out = sys.argv[1], sys.argv[2]
groups = {"python": ["tools/*.py", "models/train/*.py"], "js": ["server/**/*.ts"], "cpp": ["native/**/*.cpp", "native/**/*.h"]}
man = []
for lang, pats in groups.items():
    os.makedirs(os.path.join(out, "heldout", lang), exist_ok=True)
    files = sorted({f for p in pats for f in glob.glob(os.path.join(root, p), recursive=True)})
    for f in files:
        text = open(f, encoding="utf-8").read()
        if "<|" in text:  # the vocabulary's special tokens as text would become control tokens
            continue
        rel = os.path.relpath(f, root)
        name = f"heldout/{lang}/{len(man):05d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", rel)[-80:]
        open(os.path.join(out, name), "w", encoding="utf-8").write(text)
        man.append({"file": name, "lang": lang, "source": "endless-repo", "path": rel, "license": "project",
                    "bytes": len(text.encode()), "sha1": hashlib.sha1(text.encode()).hexdigest()})
json.dump(man, open(os.path.join(out, "heldout", "MANIFEST.json"), "w"), indent=1)
for lang in groups:
    print(lang, sum(1 for m in man if m["lang"] == lang), "files", sum(m["bytes"] for m in man if m["lang"] == lang), "bytes")
PY
