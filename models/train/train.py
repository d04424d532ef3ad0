"""Trains the default model (issue 4) on the token stream from build_samples.py.

Every sample is <|sink|> followed by 1023 tokens cut at a random offset of the stream, so the
model learns one dedicated attention sink at position 0 (StreamingLLM, sec. 3.3); labels are
the next tokens (1024 per sample). bf16 autocast, fused AdamW, linear warmup + cosine decay,
torch.compile when it works. The number of steps is --steps, or fixed after a short timing
run so the whole run fits --time-budget seconds; it is stored in the checkpoint, so --resume
continues the same schedule. Logs: <logs>/train_log.csv, <logs>/val_log.csv.
Usage: python3 train.py --work DATA --run DIR --logs DIR [--time-budget S | --steps N] [--resume]
"""
import argparse
import contextlib
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import LlamaLM, ModelConfig  # noqa: E402
from special_tokens import SINK  # noqa: E402

SEQ = 1024


def amp(device):
    """bf16 autocast on the GPU; nothing on the CPU (CPU runs are only tests)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def lr_at(step, total, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
    return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def get_batch(tokens, step, batch, seed, device):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, tokens.numel() - SEQ, (batch,), generator=g).to(device)
    idx = starts[:, None] + torch.arange(SEQ, device=device)[None, :]
    win = tokens[idx].long()                        # [B, 1024]
    sink = torch.full((batch, 1), SINK, dtype=torch.long, device=device)
    x = torch.cat([sink, win[:, :-1]], dim=1)       # <|sink|> t0 .. t1022
    return x, win                                   # labels t0 .. t1023


@torch.no_grad()
def evaluate(model, vals, device, windows=32):
    """Mean next-token loss on held-out windows: <|sink|> + 1023 tokens, non-overlapping."""
    model.eval()
    out = {}
    for lang, v in vals.items():
        n = min(windows, (v.numel() - 1) // (SEQ - 1))
        if n <= 0:
            continue
        st = torch.arange(n, device=device) * (SEQ - 1)
        win = v[st[:, None] + torch.arange(SEQ, device=device)[None, :]].long()
        x = torch.cat([torch.full((n, 1), SINK, device=device, dtype=torch.long), win[:, :-1]], 1)
        losses = []
        for i in range(0, n, 16):
            with amp(device):
                logits = model(x[i:i + 16])
            losses.append(F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), win[i:i + 16].reshape(-1)))
        out[lang] = float(torch.stack(losses).mean())
    model.train()
    return out


def save_ckpt(path, model, opt, state):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), **state}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--run", default="", help="folder for ckpt.pt and final.pt (default: --work)")
    ap.add_argument("--logs", required=True)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=900.0, help="seconds of training when --steps is 0")
    ap.add_argument("--batch", type=int, default=128, help="sequences per optimizer step")
    ap.add_argument("--micro", type=int, default=64, help="sequences per forward/backward")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ckpt-every", type=float, default=180.0, help="seconds")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=2)
    args = ap.parse_args()
    if args.batch % args.micro:
        sys.exit(f"train: --batch {args.batch} is not a multiple of --micro {args.micro}")
    run_dir = args.run or args.work
    os.makedirs(args.logs, exist_ok=True)
    os.makedirs(run_dir, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)

    bin_path = os.path.join(args.work, "train_tokens.bin")
    if not os.path.exists(bin_path):
        sys.exit(f"train: {bin_path} is missing: run build_samples.py first")
    tokens = torch.from_numpy(np.fromfile(bin_path, dtype=np.uint16).astype(np.int32)).to(device)
    vals = {}
    for lang in ("python", "cpp", "js"):
        p = os.path.join(args.work, f"val_{lang}.bin")
        if os.path.exists(p):
            vals[lang] = torch.from_numpy(np.fromfile(p, dtype=np.uint16).astype(np.int32)).to(device)
    log(f"train tokens {tokens.numel() / 1e6:.1f}M, val tokens { {k: v.numel() for k, v in vals.items()} }")

    cfg = ModelConfig(hidden_size=args.hidden, intermediate_size=args.ffn, num_hidden_layers=args.layers,
                      num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                      head_dim=args.hidden // args.heads)
    model = LlamaLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_tokens" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed_tokens" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if device.type == "cuda" else {}))
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    state = {"step": 0, "total_steps": args.steps, "tokens": 0, "elapsed": 0.0, "config": cfg.to_dict(),
             "args": vars(args)}
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        for k in ("step", "total_steps", "tokens", "elapsed"):
            state[k] = ck[k]
        log(f"resumed at step {state['step']} / {state['total_steps']}")
    elif args.resume:
        log("no checkpoint to resume from: starting fresh")
    log(f"model {n_params / 1e6:.2f}M parameters, config {cfg.to_dict()}")

    fwd = model
    if not args.no_compile and device.type == "cuda":
        try:
            fwd = torch.compile(model)
        except Exception as e:  # noqa: BLE001 - any failure: train uncompiled
            log(f"torch.compile unavailable ({e}); training eagerly")
    accum = args.batch // args.micro
    if fwd is not model:
        # Compile now, on one micro-batch, so a compiler failure falls back to eager mode
        # instead of ending the run.
        try:
            t = time.time()
            x, y = get_batch(tokens, 0, args.micro, args.seed, device)
            with amp(device):
                lg = fwd(x)
            F.cross_entropy(lg.float().reshape(-1, lg.size(-1)), y.reshape(-1)).backward()
            opt.zero_grad(set_to_none=True)
            log(f"torch.compile: compiled in {time.time() - t:.0f} s")
        except Exception as e:  # noqa: BLE001
            log(f"torch.compile failed ({type(e).__name__}: {str(e)[:300]}); training eagerly")
            opt.zero_grad(set_to_none=True)
            fwd = model
    tl_path = os.path.join(args.logs, "train_log.csv")
    vl_path = os.path.join(args.logs, "val_log.csv")
    new_logs = state["step"] == 0
    tl = open(tl_path, "w" if new_logs else "a", newline="")
    vl = open(vl_path, "w" if new_logs else "a", newline="")
    tw, vw = csv.writer(tl), csv.writer(vl)
    if new_logs:
        tw.writerow(["step", "tokens", "lr", "loss", "grad_norm", "step_ms", "tokens_per_s", "elapsed_s"])
        vw.writerow(["step", "tokens", "lang", "loss", "ppl"])

    def step_once(step, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(tokens, step, args.batch, args.seed, device)
        total = 0.0
        for m in range(accum):
            xs, ys = x[m * args.micro:(m + 1) * args.micro], y[m * args.micro:(m + 1) * args.micro]
            with amp(device):
                logits = fwd(xs)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), ys.reshape(-1)) / accum
            loss.backward()
            total += loss.detach()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total, gn

    tok_per_step = args.batch * SEQ
    step = state["step"]
    t_start = time.time() - state["elapsed"]
    last_ckpt = time.time()
    t_log, tok_log = time.time(), 0
    timing = []
    while True:
        total_steps = state["total_steps"]
        if total_steps and step >= total_steps:
            break
        lr = lr_at(step, total_steps or 10**9, args)
        ts = time.time()
        loss, gn = step_once(step, lr)
        step += 1
        state["tokens"] += tok_per_step
        tok_log += tok_per_step
        if not total_steps:
            # Fix the schedule's length from the measured step time (after compile warm-up).
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step > 10:
                timing.append(time.time() - ts)
            if len(timing) >= 20:
                per = sorted(timing)[len(timing) // 2]
                left = args.time_budget - (time.time() - t_start)
                state["total_steps"] = step + max(1, int(left / per))
                log(f"step time {per * 1000:.1f} ms ({tok_per_step / per / 1e6:.2f}M tok/s): "
                    f"total_steps set to {state['total_steps']} for a {args.time_budget:.0f} s budget")
        if step % args.log_every == 0 or step == 1:
            lv, gv = float(loss), float(gn)
            now = time.time()
            tps = tok_log / max(1e-9, now - t_log)
            tw.writerow([step, state["tokens"], f"{lr:.3e}", f"{lv:.4f}", f"{gv:.3f}",
                         f"{(now - t_log) * 1000 / max(1, tok_log // tok_per_step):.1f}", f"{tps:.0f}",
                         f"{now - t_start:.1f}"])
            tl.flush()
            if not math.isfinite(lv):
                sys.exit(f"train: loss is {lv} at step {step}")
            log(f"step {step}/{state['total_steps']} loss {lv:.4f} lr {lr:.2e} gnorm {gv:.2f} {tps / 1e6:.2f}M tok/s"
                + (f" mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else ""))
            t_log, tok_log = now, 0
        if step % args.eval_every == 0 or step == state["total_steps"]:
            ev = evaluate(model, vals, device)
            for lang, lv in ev.items():
                vw.writerow([step, state["tokens"], lang, f"{lv:.4f}", f"{math.exp(lv):.3f}"])
            vl.flush()
            log("val " + " ".join(f"{k} {v:.4f} (ppl {math.exp(v):.2f})" for k, v in ev.items()))
            t_log, tok_log = time.time(), 0
        if time.time() - last_ckpt > args.ckpt_every:
            state["step"], state["elapsed"] = step, time.time() - t_start
            save_ckpt(ckpt_path, model, opt, state)
            last_ckpt = time.time()
            log(f"checkpoint at step {step}")
            t_log, tok_log = time.time(), 0
    state["step"], state["elapsed"] = step, time.time() - t_start
    save_ckpt(ckpt_path, model, opt, state)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "step": step, "tokens": state["tokens"],
                "elapsed": state["elapsed"], "args": vars(args)}, os.path.join(run_dir, "final.pt"))
    with open(os.path.join(args.logs, "train_summary.json"), "w") as f:
        json.dump({"steps": step, "tokens": state["tokens"], "elapsed_s": round(state["elapsed"], 1),
                   "params": n_params, "config": cfg.to_dict(), "args": vars(args),
                   "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                   "torch": torch.__version__}, f, indent=1)
    log(f"done: {step} steps, {state['tokens'] / 1e6:.0f}M tokens, {state['elapsed']:.0f} s")


if __name__ == "__main__":
    main()
