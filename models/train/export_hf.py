"""Exports a trained checkpoint (final.pt or ckpt.pt) as a Hugging Face LlamaForCausalLM folder:
config.json, model.safetensors (float32, tied lm_head omitted), generation_config.json,
tokenizer.json, tokenizer_config.json, special_tokens_map.json.
Usage: python3 export_hf.py --ckpt FILE --tok DIR --out DIR
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import LlamaLM, ModelConfig, hf_config  # noqa: E402
from special_tokens import EOT, FIM_PAD, SINK, SPECIAL_TOKENS  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tok", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    cfg = ModelConfig(**ck["config"])
    model = LlamaLM(cfg)
    model.load_state_dict(ck["model"])
    os.makedirs(args.out, exist_ok=True)
    sd = model.hf_state_dict()
    from safetensors.torch import save_file
    save_file(sd, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(hf_config(cfg, SINK, EOT, FIM_PAD), f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": SINK, "eos_token_id": EOT, "pad_token_id": FIM_PAD, "do_sample": False}, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tok, fn), os.path.join(args.out, fn))
    with open(os.path.join(args.out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|sink|>", "eos_token": "<|endoftext|>", "pad_token": "<|fim_pad|>",
                   "additional_special_tokens": SPECIAL_TOKENS[2:]}, f, indent=2)
    n = sum(v.numel() for v in sd.values())
    print(f"export: {args.out}: {len(sd)} tensors, {n / 1e6:.2f}M parameters, step {ck.get('step')}")


if __name__ == "__main__":
    main()
