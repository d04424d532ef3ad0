"""Trains the default model's byte-level BPE tokenizer with Hugging Face `tokenizers`.

Vocabulary 12288 with the special tokens of docs/stream-format.md at ids 0..12; NFC
normalizer; pre-tokenizer = Split(Qwen2 regex, isolated) + ByteLevel(use_regex=False), so the
GGUF stores it as tokenizer.ggml.model=gpt2, tokenizer.ggml.pre=qwen2. Trained on a
language-balanced sample of the training documents (never the held-out files).
Writes <out>/tokenizer.json and <out>/tokenizer_config.json (ChatML chat template).
Usage: python3 train_tokenizer.py --work DIR --out DIR [--per-lang-bytes N]
"""
import argparse
import json
import os
import pickle
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from special_tokens import CHAT_TEMPLATE, QWEN2_PATTERN, SPECIAL_TOKENS, VOCAB_SIZE  # noqa: E402


def build_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.post_processor = post_processor()
    tok.decoder = decoders.ByteLevel()
    return tok


def post_processor():
    """ByteLevel (as Qwen's) then <|sink|> in front: encode(text) with special tokens gives
    what the model was trained on, and the GGUF converter reads add_bos_token=true from it."""
    from tokenizers import processors
    return processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|sink|> $A", pair="<|sink|> $A $B:1",
                                      special_tokens=[("<|sink|>", 0)]),
    ])


def tokenizer_config():
    added = {str(i): {"content": t, "lstrip": False, "rstrip": False, "normalized": False,
                      "single_word": False, "special": True} for i, t in enumerate(SPECIAL_TOKENS)}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|sink|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|fim_pad|>",
        "unk_token": None,
        # The model was trained with <|sink|> first in every sample: whoever starts a stream
        # puts it there.
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 1024,
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": SPECIAL_TOKENS[2:],
        "chat_template": CHAT_TEMPLATE,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-lang-bytes", type=int, default=40_000_000)
    args = ap.parse_args()
    from tokenizers import pre_tokenizers, trainers
    t0 = time.time()
    with open(os.path.join(args.work, "train_docs.pkl"), "rb") as f:
        docs = pickle.load(f)
    budget = {}
    sample = []
    for lang, path, text in docs:  # docs are in hash order: a uniform sample per language
        if budget.get(lang, 0) < args.per_lang_bytes:
            budget[lang] = budget.get(lang, 0) + len(text)
            sample.append(text)
    print(f"tokenizer: training on {len(sample)} files, {budget}", flush=True)
    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample, trainer=trainer, length=len(sample))
    n = tok.get_vocab_size()
    if n != VOCAB_SIZE:
        sys.exit(f"tokenizer: vocabulary has {n} tokens, expected {VOCAB_SIZE} (too little training text?)")
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            sys.exit(f"tokenizer: special token {t} has id {tok.token_to_id(t)}, expected {i}")
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(), f, indent=2)
    # Bytes per token on a slice of the sample: the compression the model sees.
    probe = sample[:2000]
    nt = sum(len(e.ids) for e in tok.encode_batch(probe, add_special_tokens=False))
    nb = sum(len(s.encode()) for s in probe)
    probe_text = "def f(x):\n    return x  # \u00e9\n"
    ids = tok.encode(probe_text).ids
    ok = tok.decode(ids) == probe_text and ids[0] == 0 and tok.encode(probe_text, add_special_tokens=False).ids == ids[1:]
    print(f"tokenizer: vocab {n}, {nb / nt:.2f} bytes/token on the probe, roundtrip ok={ok} ({time.time() - t0:.0f}s)")
    if not ok:
        sys.exit("tokenizer: decode(encode(text)) != text")


if __name__ == "__main__":
    main()
