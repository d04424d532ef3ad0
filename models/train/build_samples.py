"""Renders and tokenizes the training documents into one token stream (issue 4).

Documents (train_docs.pkl from prep_data.py) are rendered by render.py (FIM / session stream /
plain, seeded per document) and tokenized with the trained tokenizer in parallel; the result is
train_tokens.bin (uint16, documents back to back). Training cuts 1023-token windows from it
and puts <|sink|> in front of each. Held-out files are rendered plain into val_<lang>.bin for
validation. Usage: python3 build_samples.py --work DIR --tok DIR [--seed N]
"""
import argparse
import json
import os
import pickle
import random
import sys
import time
from multiprocessing import get_context

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import render  # noqa: E402

_tok = None
_docs = None  # set before the worker pool forks, so documents are not pickled to workers


def _init(tok_path):
    global _tok
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer
    _tok = Tokenizer.from_file(tok_path)


def _work(job):
    seed, start, end = job
    docs = _docs[start:end]
    texts, stats = [], {}
    for j, (lang, path, text) in enumerate(docs):
        rng = random.Random(seed * 1_000_003 + start + j)
        mode, parts = render.render_document(path, text, rng)
        texts.extend(parts)
        key = f"{lang}/{mode}"
        stats[key + "/chars"] = stats.get(key + "/chars", 0) + sum(len(p) for p in parts)
        stats[key + "/docs"] = stats.get(key + "/docs", 0) + 1
    encs = _tok.encode_batch(texts, add_special_tokens=False)
    arr = np.fromiter((i for e in encs for i in e.ids), dtype=np.uint16)
    stats["tokens"] = int(arr.size)
    return arr, stats


def _plain(job):
    texts = [t + "<|endoftext|>" for t in job]
    encs = _tok.encode_batch(texts, add_special_tokens=False)
    return np.fromiter((i for e in encs for i in e.ids), dtype=np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 4)
    args = ap.parse_args()
    t0 = time.time()
    global _docs
    with open(os.path.join(args.work, "train_docs.pkl"), "rb") as f:
        _docs = pickle.load(f)
    tok_path = os.path.join(args.tok, "tokenizer.json")
    jobs = [(args.seed, i, min(len(_docs), i + 400)) for i in range(0, len(_docs), 400)]
    stats = {}
    out_path = os.path.join(args.work, "train_tokens.bin")
    n = 0
    with get_context("fork").Pool(args.workers, initializer=_init, initargs=(tok_path,)) as pool, \
            open(out_path + ".tmp", "wb") as out:
        for arr, st in pool.imap(_work, jobs, chunksize=1):
            out.write(arr.tobytes())
            n += arr.size
            for k, v in st.items():
                stats[k] = stats.get(k, 0) + v
        val = {}
        for lang in ("python", "cpp", "js"):
            p = os.path.join(args.work, f"heldout_{lang}.pkl")
            if not os.path.exists(p):
                continue
            with open(p, "rb") as f:
                files = pickle.load(f)
            parts = pool.map(_plain, [[t for _, t in files[i:i + 50]] for i in range(0, len(files), 50)])
            arr = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
            arr.tofile(os.path.join(args.work, f"val_{lang}.bin"))
            val[lang] = {"tokens": int(arr.size), "bytes": sum(len(t.encode()) for _, t in files)}
    os.replace(out_path + ".tmp", out_path)
    chars = sum(v for k, v in stats.items() if k.endswith("/chars"))
    summary = {"train_tokens": n, "train_chars": chars, "chars_per_token": chars / max(1, n), "by_mode": stats, "val": val,
               "seed": args.seed}
    with open(os.path.join(args.work, "samples.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    modes = {}
    for k, v in stats.items():
        if k.endswith("/chars"):
            m = k.split("/")[1]
            modes[m] = modes.get(m, 0) + v
    share = {m: round(v / max(1, chars), 3) for m, v in modes.items()}
    print(f"samples: {n / 1e6:.1f}M train tokens ({chars / max(1, n):.2f} chars/token), share of chars by mode {share}, "
          f"val {val} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
