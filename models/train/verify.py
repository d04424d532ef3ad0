"""Checks the exported default model on the GPU machine (issue 4, step 5).

  1. transformers' LlamaForCausalLM loads the export and gives the training module's logits.
  2. The GGUF files (numpy forward pass of tools/gguf_forward.py, llama.cpp conventions) give
     transformers' logits on a short held-out prefix: the converter's layout is right.
  3. Held-out perplexity per language through transformers: windows of <|sink|> + 1023 tokens,
     non-overlapping, over all held-out tokens; also without the sink, to show it matters.
  4. Greedy FIM completions through transformers' generate() on held-out code: single lines
     and multi-line spans, exact-match rate, a few printed.
Writes <out>/verify.json. Usage: python3 verify.py --work DATA --run DIR --hf DIR --out DIR [--gguf F ...]
"""
import argparse
import json
import math
import os
import pickle
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from model import LlamaLM, ModelConfig  # noqa: E402
from special_tokens import EOT, FIM_MID, FIM_PRE, FIM_SUF, SINK  # noqa: E402

SEQ = 1024


@torch.no_grad()
def perplexity(model, ids, device, with_sink=True, batch=32):
    """Token-level perplexity over non-overlapping windows of the held-out token stream."""
    step = SEQ - 1 if with_sink else SEQ
    n = (ids.numel() - 1) // step
    total, count = 0.0, 0
    for i in range(0, n, batch):
        st = torch.arange(i, min(n, i + batch), device=device) * step
        win = ids[st[:, None] + torch.arange(step + 1, device=device)[None, :]]
        if with_sink:
            x = torch.cat([torch.full((win.size(0), 1), SINK, device=device, dtype=torch.long), win[:, :-2]], 1)
            y = win[:, :-1]
        else:
            x, y = win[:, :-1], win[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        total += float(nll)
        count += y.numel()
    return math.exp(total / max(1, count)), count


def fim_cases(files, rng, n_line, n_multi):
    """(kind, prefix, middle, suffix) from held-out files: the rest of a line after its
    indentation, and spans of 2-6 whole lines."""
    cases = []
    tries = 0
    while (len([c for c in cases if c[0] == "line"]) < n_line or len([c for c in cases if c[0] == "multi"]) < n_multi) \
            and tries < 10000:
        tries += 1
        _, text = rng.choice(files)
        lines = text.split("\n")
        if len(lines) < 12:
            continue
        i = rng.randrange(4, len(lines) - 4)
        multi = len([c for c in cases if c[0] == "line"]) >= n_line
        j = i + (rng.randint(1, 5) if multi else 0)
        block = lines[i:j + 1]
        if any(len(l.strip()) < 4 for l in block[:1]) or j >= len(lines) - 1:
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        pre = "\n".join(lines[:i]) + "\n" + lines[i][:indent]
        mid = "\n".join(block)[indent:]
        suf = "\n" + "\n".join(lines[j + 1:])
        cases.append(("multi" if multi else "line", pre[-2500:], mid, suf[:800]))
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--run", required=True, help="folder with final.pt")
    ap.add_argument("--hf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gguf", nargs="*", default=[])
    ap.add_argument("--fim-lines", type=int, default=20, help="per language")
    ap.add_argument("--fim-multi", type=int, default=8, help="per language")
    args = ap.parse_args()
    from tokenizers import Tokenizer
    from transformers import LlamaForCausalLM
    device = torch.device("cuda")
    res = {}
    t0 = time.time()
    tok = Tokenizer.from_file(os.path.join(args.hf, "tokenizer.json"))
    hf = LlamaForCausalLM.from_pretrained(args.hf, dtype=torch.float32).to(device).eval()
    ck = torch.load(os.path.join(args.run, "final.pt"), map_location=device, weights_only=False)
    own = LlamaLM(ModelConfig(**ck["config"])).to(device).eval()
    own.load_state_dict(ck["model"])

    vals = {}
    for lang in ("python", "cpp", "js"):
        p = os.path.join(args.work, f"val_{lang}.bin")
        if os.path.exists(p):
            vals[lang] = torch.from_numpy(np.fromfile(p, dtype=np.uint16).astype(np.int64)).to(device)

    # 1. own module == transformers
    lang0 = next(iter(vals))
    x = torch.cat([torch.tensor([SINK], device=device), vals[lang0][:SEQ - 1]])[None]
    with torch.no_grad():
        a = hf(input_ids=x).logits.float()
        b = own(x).float()
    res["hf_vs_training_module_max_abs_logit_diff"] = float((a - b).abs().max())
    print(f"verify: transformers vs training module, max |logit diff| {res['hf_vs_training_module_max_abs_logit_diff']:.2e}")

    # 2. GGUF (numpy float64 forward) == transformers on 24 tokens
    for g in args.gguf:
        try:
            from gguf_forward import GGUFModel
            ids = [SINK] + vals[lang0][:23].tolist()
            gl = GGUFModel(g).forward(ids)
            with torch.no_grad():
                hl = hf(input_ids=torch.tensor([ids], device=device)).logits[0].double().cpu().numpy()
            d = float(np.abs(gl - hl).max())
            agree = float((gl.argmax(-1) == hl.argmax(-1)).mean())
            res[f"gguf:{os.path.basename(g)}"] = {"max_abs_logit_diff": d, "argmax_agreement": agree}
            print(f"verify: {os.path.basename(g)} vs transformers: max |logit diff| {d:.3e}, argmax agreement {agree:.3f}")
        except Exception as e:  # noqa: BLE001 - report and go on
            res[f"gguf:{os.path.basename(g)}"] = {"error": repr(e)}
            print(f"verify: GGUF check of {g} failed: {e!r}")

    # 3. perplexity per language
    res["perplexity"] = {}
    for lang, v in vals.items():
        ppl, n = perplexity(hf, v, device, True)
        ppl_ns, _ = perplexity(hf, v, device, False)
        with open(os.path.join(args.work, f"heldout_{lang}.pkl"), "rb") as f:
            nbytes = sum(len(t.encode()) for _, t in pickle.load(f))
        bpb = math.log2(ppl) * v.numel() / nbytes
        res["perplexity"][lang] = {"ppl_with_sink": ppl, "ppl_without_sink": ppl_ns, "tokens_scored": n,
                                   "heldout_tokens": v.numel(), "heldout_bytes": nbytes, "bits_per_byte": bpb}
        print(f"verify: {lang}: held-out perplexity {ppl:.3f} with <|sink|> first, {ppl_ns:.3f} without "
              f"({n} tokens, {bpb:.3f} bits/byte)")

    # 4. greedy FIM
    rng = random.Random(7)
    res["fim"] = {}
    for lang in vals:
        with open(os.path.join(args.work, f"heldout_{lang}.pkl"), "rb") as f:
            files = pickle.load(f)
        cases = fim_cases(files, rng, args.fim_lines, args.fim_multi)
        stats = {"line": [0, 0], "multi": [0, 0]}
        shown = 0
        for kind, pre, mid, suf in cases:
            p = tok.encode(pre, add_special_tokens=False).ids[-600:]
            s = tok.encode(suf, add_special_tokens=False).ids[:250]
            ids = [SINK, FIM_PRE] + p + [FIM_SUF] + s + [FIM_MID]
            inp = torch.tensor([ids], device=device)
            with torch.no_grad():
                out = hf.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=96 if kind == "multi" else 48,
                                  do_sample=False, eos_token_id=EOT, pad_token_id=EOT)
            gen = [t for t in out[0, len(ids):].tolist() if t != EOT]
            got = tok.decode(gen)
            ok = got.rstrip() == mid.rstrip()
            stats[kind][0] += ok
            stats[kind][1] += 1
            if shown < 6:
                shown += 1
                print(f"--- FIM {lang} {kind} {'EXACT' if ok else 'diff'}\n  prefix ...{pre[-120:]!r}\n  expected {mid!r}\n  got      {got!r}")
        res["fim"][lang] = {k: {"exact": v[0], "total": v[1], "rate": v[0] / max(1, v[1])} for k, v in stats.items()}
        print(f"verify: FIM exact match {lang}: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in stats.items()))
    res["seconds"] = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "verify.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
