#!/usr/bin/env python3
"""A random-weight GGUF with the default model's shape and special tokens (never committed).

Used only to rehearse the evaluation scripts before models/endless-code-q8_0.gguf exists and to
measure this machine's throughput on that shape: llama, 8 layers, hidden 384, 6/2 heads, FFN 1024,
vocab 12288 (ids 0-12 the special tokens of docs/stream-format.md), tied embeddings (output = the
embedding), context 1024, Q8_0 matrices. The vocabulary is byte-level (the 256 GPT-2 byte
characters) plus filler tokens, with no merges: it tokenizes any text, one token per byte.

    python3 models/eval/make_shaped.py /tmp/endless-eval/shaped-q8_0.gguf
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import numpy as np  # noqa: E402

from gguf_writer import FILE_TYPES, GGUF_I32, GGUF_STRING, GGUFWriter  # noqa: E402

SPECIALS = ["<|sink|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
            "<|file_sep|>", "<|file|>", "<|edit|>", "<|save|>", "<|im_start|>", "<|im_end|>", "<|summary|>"]
E, L, H, HKV, FF, V, CTX = 384, 8, 6, 2, 1024, 12288, 1024


def byte_chars():
    # GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100...
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def main(out):
    rng = np.random.default_rng(7)
    tokens = SPECIALS + byte_chars()
    types = [3] * len(SPECIALS) + [1] * 256
    tokens += [f"zz{i}" for i in range(V - len(tokens))]
    types += [1] * (V - len(types))
    w = GGUFWriter(out, "llama")
    w.add_string("general.name", "endless-code-shaped (random weights)")
    w.add_u32("general.file_type", FILE_TYPES["Q8_0"])
    w.add_u32("general.quantization_version", 2)
    for k, v in (("context_length", CTX), ("embedding_length", E), ("block_count", L), ("feed_forward_length", FF),
                 ("attention.head_count", H), ("attention.head_count_kv", HKV), ("rope.dimension_count", E // H)):
        w.add_u32("llama." + k, v)
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_f32("llama.rope.freq_base", 10000.0)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", tokens, GGUF_STRING)
    w.add_array("tokenizer.ggml.token_type", types, GGUF_I32)
    w.add_array("tokenizer.ggml.merges", [], GGUF_STRING)
    for k, v in (("bos_token_id", 0), ("eos_token_id", 1), ("padding_token_id", 5), ("fim_pre_token_id", 2),
                 ("fim_suf_token_id", 3), ("fim_mid_token_id", 4), ("eot_token_id", 11)):
        w.add_u32("tokenizer.ggml." + k, v)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)

    def mat(r, c):
        return (rng.standard_normal((r, c), dtype=np.float32) * 0.05)

    w.add_tensor("token_embd.weight", mat(V, E), "Q8_0")
    hd = E // H
    for l in range(L):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(E, np.float32))
        w.add_tensor(p + "attn_q.weight", mat(H * hd, E), "Q8_0")
        w.add_tensor(p + "attn_k.weight", mat(HKV * hd, E), "Q8_0")
        w.add_tensor(p + "attn_v.weight", mat(HKV * hd, E), "Q8_0")
        w.add_tensor(p + "attn_output.weight", mat(E, H * hd), "Q8_0")
        w.add_tensor(p + "ffn_norm.weight", np.ones(E, np.float32))
        w.add_tensor(p + "ffn_gate.weight", mat(FF, E), "Q8_0")
        w.add_tensor(p + "ffn_up.weight", mat(FF, E), "Q8_0")
        w.add_tensor(p + "ffn_down.weight", mat(E, FF), "Q8_0")
    w.add_tensor("output_norm.weight", np.ones(E, np.float32))
    w.write()
    print(f"{out}: {os.path.getsize(out) / 1e6:.1f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: make_shaped.py OUT.gguf", file=sys.stderr)
        sys.exit(2)
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
    main(sys.argv[1])
