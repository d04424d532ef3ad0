#!/usr/bin/env python3
"""Hugging Face model directory -> GGUF for the Endless engine.

Supports LlamaForCausalLM (-> `llama`) and Qwen2ForCausalLM (-> `qwen2`), weights from
*.safetensors (read by our own reader below: numpy only, no torch, no safetensors package) or
pytorch_model*.bin (needs torch). The layout follows llama.cpp's converter:
  - `llama`: q/k projection rows are permuted from Hugging Face's rotate-half layout to
    interleaved pairs (2i, 2i+1), which llama.cpp's RoPE rotates;
  - llama3 rope scaling -> a `rope_freqs.weight` F32 tensor, one divisor per rotary pair;
  - `qwen2`: q/k/v biases, no permutation (NEOX RoPE rotates pairs (i, i + d/2));
  - tied embeddings -> no `output.weight`;
  - norms, biases and every 1-D tensor in F32; matrices in --outtype (Q8_0 needs the row
    length to be a multiple of 32, else that tensor falls back to F16, reported on stderr).

    python3 tools/convert_hf.py MODEL_DIR -o model.gguf --outtype f32|f16|bf16|q8_0
"""
import argparse
import glob
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from gguf_writer import FILE_TYPES, GGUFError, GGUFWriter  # noqa: E402
from hf_tokenizer import load_vocab  # noqa: E402

ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
OUTTYPES = {"f32": "F32", "f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}


# ---- weights ------------------------------------------------------------------------------

_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


class LazyTensor:
    """A memory-mapped tensor, converted to float32 only when asked (keeps big models small)."""

    def __init__(self, raw, dtype):
        self.raw, self.dtype, self.shape = raw, dtype, tuple(raw.shape)

    def numpy(self):
        if self.dtype == "BF16":
            return (self.raw.astype(np.uint32) << 16).view(np.float32)
        return self.raw.astype(np.float32)


def read_safetensors(path):
    """name -> LazyTensor (memory-mapped). The format: u64 header
    length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}}, then raw data."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise GGUFError(f"{path}: truncated safetensors header")
        n = struct.unpack("<Q", head)[0]
        if n > size - 8 or n > (100 << 20):
            raise GGUFError(f"{path}: safetensors header length {n} is impossible for a {size}-byte file")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GGUFError(f"{path}: safetensors header is not valid JSON: {e}")
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info.get("dtype")
        if dt not in _ST_DTYPES:
            raise GGUFError(f"{path}: tensor {name} has unsupported dtype {dt}")
        shape = [int(s) for s in info.get("shape", [])]
        b, e = info.get("data_offsets", [0, 0])
        count = int(np.prod(shape)) if shape else 1
        itemsize = np.dtype(_ST_DTYPES[dt]).itemsize
        if not 0 <= b <= e <= data.size or e - b != count * itemsize:
            raise GGUFError(f"{path}: tensor {name} has bad data offsets {b}..{e} for shape {shape} {dt}")
        out[name] = LazyTensor(data[b:e].view(_ST_DTYPES[dt]).reshape(shape), dt)
    return out


def read_pytorch_bin(path):
    try:
        import torch
    except ImportError:
        raise GGUFError(f"{path}: reading pytorch_model.bin needs torch; convert the model to safetensors or install torch")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {k: LazyTensor(v.float().numpy(), "F32") for k, v in sd.items()}


def load_weights(model_dir):
    files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
    reader = read_safetensors
    if not files:
        files = sorted(glob.glob(os.path.join(model_dir, "pytorch_model*.bin")))
        reader = read_pytorch_bin
    if not files:
        raise GGUFError(f"{model_dir}: no *.safetensors or pytorch_model*.bin files")
    weights = {}
    for p in files:
        for k, v in reader(p).items():
            if k in weights:
                raise GGUFError(f"tensor {k} appears in more than one weight file")
            weights[k] = v
    return weights


# ---- hyper-parameters -----------------------------------------------------------------------

class Hparams:
    def __init__(self, cfg, arch):
        def need(key):
            if key not in cfg or cfg[key] is None:
                raise GGUFError(f"config.json lacks {key}")
            return cfg[key]
        self.arch = arch
        self.n_embd = int(need("hidden_size"))
        self.n_layer = int(need("num_hidden_layers"))
        self.n_head = int(need("num_attention_heads"))
        self.n_head_kv = int(cfg.get("num_key_value_heads") or self.n_head)
        self.n_ff = int(need("intermediate_size"))
        self.n_ctx = int(cfg.get("max_position_embeddings") or 4096)
        self.eps = float(cfg.get("rms_norm_eps") or 1e-6)
        self.head_dim = int(cfg.get("head_dim") or self.n_embd // self.n_head)
        self.vocab_size = cfg.get("vocab_size")
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        if self.n_head % self.n_head_kv:
            raise GGUFError(f"num_attention_heads {self.n_head} is not a multiple of num_key_value_heads {self.n_head_kv}")
        if self.head_dim % 2:
            raise GGUFError(f"head_dim {self.head_dim} is odd; RoPE needs pairs")
        if cfg.get("hidden_act", "silu") not in ("silu", "swish"):
            raise GGUFError(f"hidden_act {cfg.get('hidden_act')!r} is not supported (silu only)")
        # transformers 4.x: rope_theta + rope_scaling; 5.x: rope_parameters {rope_theta, rope_type, ...}
        rp = cfg.get("rope_parameters") or {}
        if not isinstance(rp, dict) or any(isinstance(v, dict) for v in rp.values()):
            raise GGUFError(f"per-layer-type rope_parameters are not supported: {rp!r}")
        self.rope_theta = float(cfg.get("rope_theta") or rp.get("rope_theta") or 10000.0)
        scaling = cfg.get("rope_scaling") or rp
        kind = (scaling.get("rope_type") or scaling.get("type") or "default") if scaling else "default"
        self.rope_scaling = None
        if kind == "llama3":
            if arch != "llama":
                raise GGUFError(f"llama3 rope scaling on a {arch} model is not supported")
            self.rope_scaling = scaling
        elif kind != "default":
            raise GGUFError(f"rope scaling type {kind!r} is not supported (default or llama3)")
        if cfg.get("use_sliding_window") and arch == "qwen2":
            raise GGUFError("qwen2 with use_sliding_window is not supported")

    def rope_freqs(self):
        """llama3 rope scaling -> one divisor per rotary pair (angle = p * base^(-2i/d) / f[i]),
        the same numbers llama.cpp's converter writes and transformers' inv_freq implies."""
        s = self.rope_scaling
        dim = self.head_dim
        factor = float(s.get("factor", 8.0))
        low = float(s.get("low_freq_factor", 1.0))
        high = float(s.get("high_freq_factor", 4.0))
        old_ctx = float(s.get("original_max_position_embeddings", 8192))
        low_wavelen = old_ctx / low
        high_wavelen = old_ctx / high
        freqs = 1.0 / (np.float32(self.rope_theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
        out = []
        for freq in freqs.astype(np.float32):
            wavelen = 2 * math.pi / float(freq)
            if wavelen < high_wavelen:
                out.append(1.0)
            elif wavelen > low_wavelen:
                out.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                out.append(1.0 / ((1 - smooth) / factor + smooth))
        return np.array(out, dtype=np.float32)


def permute_rows(w, n_head):
    """Rotate-half layout -> interleaved pairs: within each head, row j*hd/2 + i moves to 2i + j.
    Works on weights [n_head*hd, in] and biases [n_head*hd]."""
    rows = w.shape[0]
    hd = rows // n_head
    return w.reshape(n_head, 2, hd // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ---- tensor mapping ---------------------------------------------------------------------------

_LAYER_MAP = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def map_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    if len(parts) >= 5 and parts[0] == "model" and parts[1] == "layers" and parts[2].isdigit():
        mod = ".".join(parts[3:-1])
        if mod in _LAYER_MAP and parts[-1] in ("weight", "bias"):
            return f"blk.{int(parts[2])}.{_LAYER_MAP[mod]}.{parts[-1]}"
    return None


def convert(model_dir, out, outtype="f16", name=None, log=sys.stderr):
    if outtype not in OUTTYPES:
        raise GGUFError(f"unknown --outtype {outtype!r} (known: {', '.join(OUTTYPES)})")
    mtype = OUTTYPES[outtype]
    cfg_path = os.path.join(model_dir, "config.json")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise GGUFError(f"{cfg_path} not found")
    except json.JSONDecodeError as e:
        raise GGUFError(f"{cfg_path} is not valid JSON: {e}")
    archs = cfg.get("architectures") or []
    arch = next((ARCHS[a] for a in archs if a in ARCHS), None)
    if arch is None:
        raise GGUFError(f"unsupported architectures {archs!r} (supported: {', '.join(ARCHS)})")
    hp = Hparams(cfg, arch)

    weights = load_weights(model_dir)
    weights = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")}
    emb = weights.get("model.embed_tokens.weight")
    if emb is None:
        raise GGUFError("the weights lack model.embed_tokens.weight")
    n_vocab = emb.shape[0]
    if len(emb.shape) != 2 or emb.shape[1] != hp.n_embd:
        raise GGUFError(f"embedding width {emb.shape[1]} != hidden_size {hp.n_embd}")
    if "lm_head.weight" in weights and hp.tied:
        del weights["lm_head.weight"]  # transformers may save the tied copy; llama.cpp omits it
    if "lm_head.weight" not in weights and not hp.tied:
        log.write("note: no lm_head.weight: the output is tied to the embeddings\n")

    # tokenizer first: a bad vocabulary should fail before minutes of tensor work
    tok_json = os.path.join(model_dir, "tokenizer.json")
    vocab = load_vocab(tok_json, os.path.join(model_dir, "tokenizer_config.json"), cfg_path)
    vocab.pad_to(n_vocab)

    w = GGUFWriter(out, arch)
    w.add_string("general.name", name or cfg.get("_name_or_path") or os.path.basename(os.path.abspath(model_dir)))
    w.add_u32("general.file_type", FILE_TYPES[mtype])
    w.add_u32("general.quantization_version", 2)
    a = arch
    w.add_u32(f"{a}.context_length", hp.n_ctx)
    w.add_u32(f"{a}.embedding_length", hp.n_embd)
    w.add_u32(f"{a}.block_count", hp.n_layer)
    w.add_u32(f"{a}.feed_forward_length", hp.n_ff)
    w.add_u32(f"{a}.attention.head_count", hp.n_head)
    w.add_u32(f"{a}.attention.head_count_kv", hp.n_head_kv)
    w.add_f32(f"{a}.attention.layer_norm_rms_epsilon", hp.eps)
    w.add_f32(f"{a}.rope.freq_base", hp.rope_theta)
    w.add_u32(f"{a}.rope.dimension_count", hp.head_dim)
    if hp.head_dim != hp.n_embd // hp.n_head:
        w.add_u32(f"{a}.attention.key_length", hp.head_dim)
        w.add_u32(f"{a}.attention.value_length", hp.head_dim)
    if a == "llama":
        w.add_u32("llama.vocab_size", n_vocab)
    vocab.write_to(w)

    if hp.rope_scaling is not None:
        w.add_tensor("rope_freqs.weight", hp.rope_freqs(), "F32")

    expect = _expected_shapes(hp, n_vocab)
    seen = set()
    fallbacks = []
    for hf in sorted(weights, key=_order_key):
        gname = map_name(hf)
        if gname is None:
            raise GGUFError(f"unexpected tensor {hf} in the weights")
        lt = weights[hf]
        key = gname.split(".", 2)[-1] if gname.startswith("blk.") else gname
        if key in expect and tuple(lt.shape) != expect[key]:
            raise GGUFError(f"{hf} has shape {list(lt.shape)}, expected {list(expect[key])} from config.json")
        # q/k biases (llama with attention_bias) are permuted like their weights
        perm = None
        if arch == "llama" and (".attn_q." in gname or ".attn_k." in gname):
            perm = hp.n_head if ".attn_q." in gname else hp.n_head_kv

        def chunks(lt=lt, perm=perm):
            x = np.ascontiguousarray(lt.numpy(), dtype=np.float32)
            yield permute_rows(x, perm) if perm else x
        t = "F32"
        if len(lt.shape) == 2:
            t = mtype
            if t == "Q8_0" and lt.shape[1] % 32:
                t = "F16"
                fallbacks.append(gname)
        w.add_tensor_lazy(gname, lt.shape, t, chunks)
        seen.add(gname)
    for l in range(hp.n_layer):
        for part in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"):
            if f"blk.{l}.{part}.weight" not in seen:
                raise GGUFError(f"the weights lack layer {l}'s {part}")
        if arch == "qwen2":
            for part in ("attn_q", "attn_k", "attn_v"):
                if f"blk.{l}.{part}.bias" not in seen:
                    raise GGUFError(f"qwen2 weights lack layer {l}'s {part} bias")
    if "output_norm.weight" not in seen:
        raise GGUFError("the weights lack model.norm.weight")
    for gname in fallbacks:
        log.write(f"note: {gname}: row length is not a multiple of 32, written as F16 instead of Q8_0\n")
    w.write()
    return w


def _expected_shapes(hp, n_vocab):
    e, q, kv, f = hp.n_embd, hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim, hp.n_ff
    return {
        "token_embd.weight": (n_vocab, e), "output.weight": (n_vocab, e), "output_norm.weight": (e,),
        "attn_norm.weight": (e,), "ffn_norm.weight": (e,),
        "attn_q.weight": (q, e), "attn_k.weight": (kv, e), "attn_v.weight": (kv, e),
        "attn_q.bias": (q,), "attn_k.bias": (kv,), "attn_v.bias": (kv,),
        "attn_output.weight": (e, q), "ffn_gate.weight": (f, e), "ffn_up.weight": (f, e),
        "ffn_down.weight": (e, f),
    }


def _order_key(hf):
    # token_embd first, then layers in order, then the head: the order llama.cpp writes
    parts = hf.split(".")
    if hf == "model.embed_tokens.weight":
        return (0, 0, hf)
    if len(parts) > 2 and parts[1] == "layers" and parts[2].isdigit():
        return (1, int(parts[2]), hf)
    return (2, 0, hf)


def main(argv):
    ap = argparse.ArgumentParser(description="Convert a Hugging Face Llama/Qwen2 model directory to GGUF.")
    ap.add_argument("model_dir")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--outtype", default="f16", choices=list(OUTTYPES))
    ap.add_argument("--name", help="general.name")
    a = ap.parse_args(argv)
    try:
        w = convert(a.model_dir, a.out, a.outtype, a.name)
    except (GGUFError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{a.out}: {w.arch}, {len(w.tensors)} tensors, {a.outtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
