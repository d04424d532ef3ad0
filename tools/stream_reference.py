"""A float64 numpy reference of the StreamingLLM cache (Xiao et al., ICLR 2024), over a GGUF file.

Tokens are fed one at a time. Each layer caches K (before RoPE) and V of every token when it is
processed, and never recomputes them. A query at stream index t attends to the first S tokens
(the sinks), the pinned memory if any, and the last W tokens of the stream up to and including
itself; positions are assigned within the cache: sinks 0..S-1, then the kept window tokens in
age order. This is what the paper's code computes (cached K/V, positions re-assigned in the
cache) and what the engine's cache must match after eviction.

It differs from running the model on exactly the kept tokens (sliding-window recompute) as soon
as the model has more than one layer: the cached K/V of a window token were computed while
tokens that are evicted now were still visible. tools/make_fixtures.py records that recompute
reference from transformers; this file records the cached one. The dense part (before the first
eviction) is checked against transformers' logits in the same fixture.

    python3 tools/stream_reference.py test/fixtures/models/llama_gqa-f32.gguf \
        test/fixtures/models/llama_gqa.json test/fixtures/models/llama_gqa.stream.json
"""
import base64
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_forward import GGUFModel  # noqa: E402

PAIRS = [(4, 16), (1, 24), (0, 16), (2, 8)]
STEPS_PAST_EVICTION = 12


class StreamingReference:
    def __init__(self, model: GGUFModel, n_sinks: int, n_window: int):
        self.m = model
        self.S = n_sinks
        self.W = n_window
        self.k = [[] for _ in range(model.n_layer)]  # per layer: list of [n_kv, hd] before RoPE
        self.v = [[] for _ in range(model.n_layer)]

    def step(self, token: int) -> np.ndarray:
        m, t = self.m, self.m.t
        hd, nh, nkv = m.head_dim, m.n_head, m.n_head_kv
        idx = len(self.k[0])  # stream index of this token
        if idx < self.S:
            kept = list(range(idx + 1))  # a sink sees the sinks before it
        else:
            first = max(self.S, idx - self.W + 1)
            kept = list(range(self.S)) + list(range(first, idx + 1))
        pos = np.arange(len(kept))
        x = t["token_embd.weight"][[token]]
        for layer in range(m.n_layer):
            p = f"blk.{layer}."
            h = m._norm(x, t[p + "attn_norm.weight"])
            q = h @ t[p + "attn_q.weight"].T + t.get(p + "attn_q.bias", 0)
            k = h @ t[p + "attn_k.weight"].T + t.get(p + "attn_k.bias", 0)
            v = h @ t[p + "attn_v.weight"].T + t.get(p + "attn_v.bias", 0)
            self.k[layer].append(k.reshape(nkv, hd))
            self.v[layer].append(v.reshape(nkv, hd))
            K = np.stack([self.k[layer][i] for i in kept])  # [n, nkv, hd]
            V = np.stack([self.v[layer][i] for i in kept])
            qr = m._rope(q.reshape(1, nh, hd), [pos[-1]])[0]  # [nh, hd]
            Kr = m._rope(K, pos)
            rep = nh // nkv
            Kr = np.repeat(Kr, rep, axis=1)
            Vr = np.repeat(V, rep, axis=1)
            att = np.einsum("hd,khd->hk", qr, Kr) / np.sqrt(hd)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hk,khd->hd", att, Vr).reshape(1, nh * hd)
            x = x + o @ t[p + "attn_output.weight"].T
            h = m._norm(x, t[p + "ffn_norm.weight"])
            g = h @ t[p + "ffn_gate.weight"].T
            u = h @ t[p + "ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ t[p + "ffn_down.weight"].T
        x = m._norm(x, t["output_norm.weight"])
        return (x @ m.out.T)[0]


def encode(rows) -> dict:
    a = np.asarray(rows, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32-le", "base64": base64.b64encode(a.tobytes()).decode()}


def decode(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["base64"]), dtype="<f4").reshape(d["shape"]).astype(np.float64)


def main(argv):
    if len(argv) != 4:
        print(__doc__)
        return 2
    gguf_path, fixture_json, out_path = argv[1:]
    with open(fixture_json) as f:
        fixture = json.load(f)
    ids = fixture["ids"]
    dense_tf = decode(fixture["logits"])  # transformers, float32, every position
    model = GGUFModel(gguf_path)
    out = {"model": os.path.basename(gguf_path), "ids": ids, "made_by": "tools/stream_reference.py (float64 numpy)",
           "semantics": "cached K/V (computed once, before RoPE); query t sees sinks ids[0:S] and ids[max(S,t-W+1):t+1], "
                        "positions assigned in cache order 0..", "streaming": []}
    worst_dense = 0.0
    for S, W in PAIRS:
        ref = StreamingReference(model, S, W)
        last = min(len(ids) - 1, S + W + STEPS_PAST_EVICTION - 1)
        steps, rows = [], []
        for t in range(last + 1):
            logits = ref.step(ids[t])
            if t < S + W:  # before the first eviction the cache is dense: check against transformers
                e = np.linalg.norm(logits - dense_tf[t]) / np.linalg.norm(dense_tf[t])
                worst_dense = max(worst_dense, e)
            else:
                steps.append(t)
                rows.append(logits)
        out["streaming"].append({"sinks": S, "window": W, "steps": steps, "logits": encode(rows)})
    out["dense_check_vs_transformers_max_rel_error"] = worst_dense
    if worst_dense > 1e-4:
        print(f"reference disagrees with transformers before eviction: {worst_dense:.3g}", file=sys.stderr)
        return 1
    with open(out_path, "w") as f:
        json.dump(out, f)
    print(f"wrote {out_path}: {len(PAIRS)} (S, W) pairs; dense part vs transformers max rel error {worst_dense:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
