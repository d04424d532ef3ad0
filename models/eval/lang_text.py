#!/usr/bin/env python3
"""Writes one text file per language from a held-out folder (heldout/MANIFEST.json): every file
of that language in manifest order, each as <|file_sep|>path\\n text <|endoftext|> (the training's
plain format), for `endless eval-stream`, which prepends <|sink|> itself.

    python3 models/eval/lang_text.py HELDOUT_DIR OUT_DIR   -> OUT_DIR/{python,js,cpp}.txt
"""
import json
import os
import sys


def main(held, out):
    man = json.load(open(os.path.join(held, "heldout", "MANIFEST.json")))
    os.makedirs(out, exist_ok=True)
    for lang in ("python", "js", "cpp"):
        parts = []
        for m in man:
            if m["lang"] == lang:
                text = open(os.path.join(held, m["file"]), encoding="utf-8").read()
                parts.append(f"<|file_sep|>{m['path']}\n{text}<|endoftext|>")
        data = "".join(parts)
        open(os.path.join(out, f"{lang}.txt"), "w", encoding="utf-8").write(data)
        print(f"{lang}: {len(parts)} files, {len(data.encode())} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: lang_text.py HELDOUT_DIR OUT_DIR", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
