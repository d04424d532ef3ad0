"""A plain numpy forward pass over a GGUF file, with llama.cpp's conventions (float64 math).

Checks the converter against transformers without the engine: `llama` rotates adjacent pairs
(2i, 2i+1) with the optional rope_freqs divisors, `qwen2` rotates (i, i + d/2) and adds q/k/v
biases; GQA; tied output when output.weight is absent. Positions default to 0..n-1.

    from gguf_forward import GGUFModel
    logits = GGUFModel("m.gguf").forward([1, 2, 3])   # [n, n_vocab] float64
"""
import numpy as np

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_reader import GGUFReader  # noqa: E402


class GGUFModel:
    def __init__(self, path):
        r = GGUFReader(path)
        m = r.metadata
        a = m["general.architecture"]
        if a not in ("llama", "qwen2"):
            raise ValueError(f"unsupported architecture {a}")
        self.arch = a
        self.n_layer = m[f"{a}.block_count"]
        self.n_head = m[f"{a}.attention.head_count"]
        self.n_head_kv = m[f"{a}.attention.head_count_kv"]
        self.n_embd = m[f"{a}.embedding_length"]
        self.head_dim = m.get(f"{a}.attention.key_length", self.n_embd // self.n_head)
        self.n_rot = m[f"{a}.rope.dimension_count"]
        self.eps = m[f"{a}.attention.layer_norm_rms_epsilon"]
        self.theta = m[f"{a}.rope.freq_base"]
        self.t = {n: r.tensor(n).astype(np.float64) for n in r.tensors}
        self.out = self.t.get("output.weight", self.t["token_embd.weight"])

    def _norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def _rope(self, x, pos):
        # x: [n, heads, hd]
        hd = self.n_rot
        inv = self.theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        if "rope_freqs.weight" in self.t:
            inv = inv / self.t["rope_freqs.weight"]
        ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]  # [n, hd/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        if self.arch == "llama":
            x0, x1 = x[..., 0:hd:2], x[..., 1:hd:2]
            y[..., 0:hd:2] = x0 * c - x1 * s
            y[..., 1:hd:2] = x0 * s + x1 * c
        else:
            h = hd // 2
            x0, x1 = x[..., :h], x[..., h:hd]
            y[..., :h] = x0 * c - x1 * s
            y[..., h:hd] = x0 * s + x1 * c
        return y

    def forward(self, ids, positions=None):
        t = self.t
        n = len(ids)
        pos = np.arange(n) if positions is None else np.asarray(positions)
        hd, nh, nkv = self.head_dim, self.n_head, self.n_head_kv
        x = t["token_embd.weight"][np.asarray(ids)]
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self._norm(x, t[p + "attn_norm.weight"])
            q = h @ t[p + "attn_q.weight"].T + t.get(p + "attn_q.bias", 0)
            k = h @ t[p + "attn_k.weight"].T + t.get(p + "attn_k.bias", 0)
            v = h @ t[p + "attn_v.weight"].T + t.get(p + "attn_v.bias", 0)
            q = self._rope(q.reshape(n, nh, hd), pos)
            k = self._rope(k.reshape(n, nkv, hd), pos)
            v = v.reshape(n, nkv, hd)
            rep = nh // nkv
            k = np.repeat(k, rep, axis=1)
            v = np.repeat(v, rep, axis=1)
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hqk,khd->qhd", att, v).reshape(n, nh * hd)
            x = x + o @ t[p + "attn_output.weight"].T
            h = self._norm(x, t[p + "ffn_norm.weight"])
            g = h @ t[p + "ffn_gate.weight"].T
            u = h @ t[p + "ffn_up.weight"].T
            x = x + ((g / (1 + np.exp(-g))) * u) @ t[p + "ffn_down.weight"].T
        x = self._norm(x, t["output_norm.weight"])
        return x @ self.out.T
