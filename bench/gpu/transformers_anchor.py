#!/usr/bin/env python3
"""The side-by-side anchor of the CUDA benchmark (issue 5): the same Qwen2.5-Coder-1.5B-shaped model
(random weights, BF16, tied embeddings) in PyTorch/transformers on the same card, measured the way
scripts/gpu-check.sh measures Endless:
  - decode tokens/s at a 4096-token cache with a static cache and torch.compile
    (mode "reduce-overhead": CUDA graphs), one token per step, batch 1;
  - prefill tokens/s for 4k..32k-token inputs (one forward, SDPA attention, no cache kept);
  - sliding-window recompute per token at W = 4096 (one forward over the last 4096 tokens).
Writes JSON to the path given as the first argument (default: stdout only).

    python3 bench/gpu/transformers_anchor.py $OUT/transformers.json
"""
import json
import sys
import time

import torch
import transformers
from transformers import Qwen2Config, Qwen2ForCausalLM


def sync_time(fn, reps):
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps


def make_static_cache(cfg, length):
    from transformers import StaticCache
    # the constructor's keywords changed across transformers versions: try the newer one first
    for kw in ({"config": cfg, "max_cache_len": length},
               {"config": cfg, "max_batch_size": 1, "max_cache_len": length, "device": "cuda", "dtype": torch.bfloat16}):
        try:
            return StaticCache(**kw)
        except TypeError:
            continue
    raise RuntimeError("cannot build a StaticCache with this transformers version")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                      num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    card = torch.cuda.get_device_name(0)
    res = {"card": card, "torch": torch.__version__, "transformers": transformers.__version__,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": "python3 bench/gpu/transformers_anchor.py OUT.json",
           "model": "Qwen2.5-Coder-1.5B shape, random weights, bf16, tied embeddings, sdpa"}
    vocab = cfg.vocab_size
    g = torch.Generator(device="cuda").manual_seed(1)

    with torch.inference_mode():
        # ---- prefill, and the recompute (a 4096-token forward per generated token) ----
        pre = {}
        for n in (4096, 8192, 16384, 32768):
            ids = torch.randint(1, vocab, (1, n), device="cuda", generator=g)
            # only the last position's logits are needed, as in Endless's prefill
            fn = lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1)
            fn()
            dt = sync_time(fn, 3)
            pre[str(n)] = {"seconds": dt, "tokens_per_s": n / dt}
            print(f"prefill {n}: {n / dt:,.0f} tok/s", flush=True)
        res["prefill"] = pre
        res["recompute_w4096_ms_per_token"] = pre["4096"]["seconds"] * 1000

        # ---- decode at a 4096-token cache: static cache + torch.compile ----
        ctx = 4096
        cache = make_static_cache(cfg, ctx + 256)
        prompt = torch.randint(1, vocab, (1, ctx), device="cuda", generator=g)
        for c0 in range(0, ctx, 1024):  # fill the cache (eager)
            pos = torch.arange(c0, c0 + 1024, device="cuda")
            model(input_ids=prompt[:, c0:c0 + 1024], cache_position=pos, past_key_values=cache, use_cache=True, logits_to_keep=1)

        def step(tok, pos):
            return model(input_ids=tok, cache_position=pos, past_key_values=cache, use_cache=True).logits

        compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
        tok = torch.randint(1, vocab, (1, 1), device="cuda", generator=g)
        t0 = time.perf_counter()
        for i in range(4):  # compile + graph capture; positions past ctx are overwritten below
            compiled(tok, torch.tensor([ctx + i], device="cuda"))
        torch.cuda.synchronize()
        res["decode_compile_seconds"] = time.perf_counter() - t0
        n_steps = 200
        positions = [torch.tensor([ctx + (i % 240)], device="cuda") for i in range(n_steps)]
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(n_steps):
            logits = compiled(tok, positions[i])
            tok = logits[:, -1:].argmax(-1)  # greedy: the next input depends on this step (one sync per token)
            tok.item()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / n_steps
        res["decode_4096"] = {"ms_per_token": dt * 1000, "tokens_per_s": 1 / dt, "steps": n_steps,
                              "mode": "static cache, torch.compile reduce-overhead, greedy argmax + .item() per token"}
        print(f"decode @4096 (static cache + compile): {1 / dt:,.1f} tok/s ({dt * 1000:.2f} ms/token)", flush=True)

    s = json.dumps(res, indent=1)
    if out:
        with open(out, "w") as f:
            f.write(s + "\n")
    print(s)


if __name__ == "__main__":
    main()
