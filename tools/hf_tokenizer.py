"""Hugging Face tokenizer.json (+ tokenizer_config.json, config.json) -> GGUF tokenizer metadata,
the way llama.cpp's converter lays it out. Standard library only.

Two vocabulary kinds:
  gpt2  byte-level BPE (Qwen2/3, Llama 3, GPT-2): tokens in byte-level spelling ("Ġthe"),
        merges "a b" in rank order, tokenizer.ggml.pre names the pre-tokenizer regex.
  llama SentencePiece-style BPE with byte fallback (Llama 2): tokens with "▁" for space, byte
        tokens <0x00>..<0xFF>, and scores. A tokenizer.json BPE model has merges, not scores:
        the score of a token is minus the rank of the first merge that produces it (so a
        score-driven SentencePiece merge loop picks merges in the same order as the ranks);
        tokens no merge produces (single characters, bytes, specials) score 0. Scores in the
        vocabulary (a Unigram-style [token, score] list) are used as they are.

Token types: 1 normal, 2 unknown (the model's unk token), 3 control (special added tokens, or
added tokens that look special like <|...|>), 4 user-defined (other added tokens), 5 unused
(the [PAD{i}] tokens that fill the vocabulary up to the embedding rows, as llama.cpp does),
6 byte (<0xXX> in llama vocabularies).

add_bos_token / add_eos_token follow what `tokenizers` itself does when asked to add special
tokens: the post-processor's template decides when there is one (a TemplateProcessing that
starts with a special token adds BOS); tokenizer_config.json's flags are used only when the
tokenizer.json has no post-processor. This keeps GGUF-driven tokenization equal to the
reference ids. Notably the Llama 3 tokenizer.json shipped by @lenml has a ByteLevel-only
post-processor, so add_bos_token is false there.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_writer import GGUF_F32, GGUF_I32, GGUF_STRING, GGUFError

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizer regexes of the vocabularies we support, as their tokenizer.json spell them.
PRE_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
KNOWN_PRE = {PRE_QWEN2: "qwen2", PRE_LLAMA3: "llama-bpe", PRE_GPT2: "gpt-2"}

FIM_KEYS = {  # token text -> llama.cpp's metadata key
    "<|fim_prefix|>": "tokenizer.ggml.fim_pre_token_id",
    "<|fim_suffix|>": "tokenizer.ggml.fim_suf_token_id",
    "<|fim_middle|>": "tokenizer.ggml.fim_mid_token_id",
    "<|fim_pad|>": "tokenizer.ggml.fim_pad_token_id",
    "<|repo_name|>": "tokenizer.ggml.fim_rep_token_id",
    "<|file_sep|>": "tokenizer.ggml.fim_sep_token_id",
}
EOT_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|end_of_turn|>", "<|endoftext|>")

_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>\Z")


def _load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise GGUFError(f"{what} not found: {path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GGUFError(f"{what} {path} is not valid JSON: {e}")


def _walk(node, typ):
    """Every dict of type `typ` inside a (possibly Sequence-nested) pipeline component."""
    if isinstance(node, dict):
        if node.get("type") == typ:
            yield node
        for v in node.values():
            yield from _walk(v, typ)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, typ)


def _looks_special(text):
    # the same idea as llama.cpp's converter: control-like spellings become control tokens
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<\uff5c") and text.endswith("\uff5c>")))


def _token_text(v):
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


def detect_pre(tok):
    """tokenizer.ggml.pre from the pre-tokenizer of a byte-level tokenizer.json."""
    pre = tok.get("pre_tokenizer")
    splits = list(_walk(pre, "Split"))
    regexes = []
    for s in splits:
        pat = s.get("pattern", {})
        regexes.append(pat.get("Regex") if isinstance(pat, dict) else None)
    if regexes:
        if len(regexes) == 1 and regexes[0] in KNOWN_PRE:
            return KNOWN_PRE[regexes[0]]
        raise GGUFError("unknown pre-tokenizer regex(es) %r; pass --pre NAME to force one "
                        "(known: qwen2, llama-bpe, gpt-2, default)" % (regexes,))
    bl = list(_walk(pre, "ByteLevel"))
    if bl and bl[0].get("use_regex", True):
        return "gpt-2"
    return "default"


def _template_adds(post):
    """(adds_bos, adds_eos, bos_text, eos_text) from a TemplateProcessing post-processor."""
    for t in _walk(post, "TemplateProcessing"):
        single = t.get("single") or []
        first = single[0] if single else {}
        last = single[-1] if single else {}
        bos = first.get("SpecialToken", {}).get("id") if "SpecialToken" in first else None
        eos = last.get("SpecialToken", {}).get("id") if "SpecialToken" in last and len(single) > 1 else None
        return bos is not None, eos is not None, bos, eos
    return False, False, None, None


class Vocab:
    """The parsed vocabulary: tokens, types, scores/merges, specials."""

    def __init__(self, tok_json, tok_config=None, model_config=None, pre=None):
        self.tok = tok_json
        cfg = tok_config or {}
        mcfg = model_config or {}
        model = tok_json.get("model")
        if not isinstance(model, dict):
            raise GGUFError("tokenizer.json has no model section")
        if model.get("type", "BPE") != "BPE":
            raise GGUFError(f"tokenizer model type {model.get('type')!r} is not supported (only BPE)")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise GGUFError("tokenizer.json model.vocab is missing or empty")

        byte_level = bool(list(_walk(tok_json.get("pre_tokenizer"), "ByteLevel")) or
                          list(_walk(tok_json.get("decoder"), "ByteLevel")))
        spm = bool(model.get("byte_fallback")) or bool(list(_walk(tok_json.get("pre_tokenizer"), "Metaspace"))) \
            or any(r.get("content") == " " and r.get("pattern", {}).get("String") == "\u2581"
                   for r in _walk(tok_json.get("decoder"), "Replace"))
        if byte_level == spm:
            raise GGUFError("cannot tell whether tokenizer.json is byte-level BPE or SentencePiece-style "
                            f"(byte-level: {byte_level}, sentencepiece: {spm})")
        self.model = "gpt2" if byte_level else "llama"
        self.pre = pre or (detect_pre(tok_json) if byte_level else "default")

        id_to_tok = {}
        for t, i in vocab.items():
            if not isinstance(i, int) or i < 0:
                raise GGUFError(f"tokenizer.json vocab entry {t!r} has a bad id {i!r}")
            if i in id_to_tok:
                raise GGUFError(f"tokenizer.json vocab id {i} is used twice ({id_to_tok[i]!r}, {t!r})")
            id_to_tok[i] = t
        added = {}
        for a in tok_json.get("added_tokens") or []:
            i, c = a.get("id"), a.get("content")
            if not isinstance(i, int) or not isinstance(c, str):
                raise GGUFError(f"bad added token {a!r}")
            if i in id_to_tok and id_to_tok[i] != c:
                raise GGUFError(f"added token {c!r} reuses id {i} of {id_to_tok[i]!r}")
            id_to_tok[i] = c
            added[i] = a
        self.n_tokens = max(id_to_tok) + 1
        self.text_to_id = {t: i for i, t in id_to_tok.items()}

        merges = model.get("merges") or []
        self.merges = []
        for m in merges:
            if isinstance(m, str):
                parts = m.split(" ")
            else:
                parts = list(m)
            if len(parts) != 2:
                raise GGUFError(f"bad merge {m!r} (expected two parts)")
            if " " in parts[0] or " " in parts[1]:
                # llama.cpp stores merges as "a b": a part holding a space cannot be stored
                raise GGUFError(f"merge {m!r} has a space inside a part; GGUF merges cannot hold it")
            self.merges.append(parts[0] + " " + parts[1])

        unk_text = model.get("unk_token")
        unk_id = self.text_to_id.get(unk_text) if unk_text else None

        self.tokens, self.types, self.scores = [], [], []
        merge_rank = {}
        if self.model == "llama":
            for r, m in enumerate(self.merges):
                a, b = m.split(" ")
                merge_rank.setdefault(a + b, r)
        for i in range(self.n_tokens):
            t = id_to_tok.get(i)
            if t is None:
                self.tokens.append(f"[PAD{i}]")
                self.types.append(TOKEN_UNUSED)
                self.scores.append(0.0)
                continue
            self.tokens.append(t)
            if self.model == "llama" and _BYTE_TOKEN.match(t):
                typ = TOKEN_BYTE
            elif i == unk_id:
                typ = TOKEN_UNKNOWN
            elif i in added:
                typ = TOKEN_CONTROL if (added[i].get("special") or _looks_special(t)) else TOKEN_USER_DEFINED
            else:
                typ = TOKEN_NORMAL
            self.types.append(typ)
            self.scores.append(-float(merge_rank[t]) if t in merge_rank and typ == TOKEN_NORMAL else 0.0)

        # special token ids: tokenizer_config.json first, config.json's ids for what is missing
        def find(key):
            text = _token_text(cfg.get(key))
            if text is not None:
                if text not in self.text_to_id:
                    raise GGUFError(f"tokenizer_config.json {key} {text!r} is not in the vocabulary")
                return self.text_to_id[text]
            return None

        self.bos_id = find("bos_token")
        self.eos_id = find("eos_token")
        self.pad_id = find("pad_token")
        self.unk_id = find("unk_token") if cfg.get("unk_token") else unk_id
        for attr, key in (("bos_id", "bos_token_id"), ("eos_id", "eos_token_id"), ("pad_id", "pad_token_id")):
            v = mcfg.get(key)
            if isinstance(v, list):
                v = v[0] if v else None
            if getattr(self, attr) is None and isinstance(v, int) and 0 <= v < self.n_tokens:
                setattr(self, attr, v)

        post = tok_json.get("post_processor")
        if post:
            self.add_bos, self.add_eos, bos_text, eos_text = _template_adds(post)
            if self.add_bos and self.bos_id is None and bos_text in self.text_to_id:
                self.bos_id = self.text_to_id[bos_text]
            if self.add_eos and self.eos_id is None and eos_text in self.text_to_id:
                self.eos_id = self.text_to_id[eos_text]
            if self.add_bos and bos_text in self.text_to_id and self.text_to_id[bos_text] != self.bos_id:
                raise GGUFError(f"the post-processor adds {bos_text!r} but bos_token is id {self.bos_id}")
        else:
            self.add_bos = bool(cfg.get("add_bos_token", False))
            self.add_eos = bool(cfg.get("add_eos_token", False))

        # SentencePiece's dummy prefix: a Prepend("▁") normalizer or a Metaspace prepend scheme
        self.add_space_prefix = None
        if self.model == "llama":
            pre_norm = any(n.get("prepend") == "\u2581" for n in _walk(tok_json.get("normalizer"), "Prepend"))
            ms = list(_walk(tok_json.get("pre_tokenizer"), "Metaspace"))
            ms_prefix = bool(ms) and (ms[0].get("prepend_scheme", "always") != "never"
                                      and ms[0].get("add_prefix_space", True))
            self.add_space_prefix = pre_norm or ms_prefix

        tmpl = cfg.get("chat_template")
        if isinstance(tmpl, list):  # named templates: keep the default one
            named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
            tmpl = named.get("default")
        self.chat_template = tmpl if isinstance(tmpl, str) else None

    def pad_to(self, n):
        if n < self.n_tokens:
            raise GGUFError(f"the model has {n} embedding rows but the tokenizer has {self.n_tokens} tokens")
        for i in range(self.n_tokens, n):
            self.tokens.append(f"[PAD{i}]")
            self.types.append(TOKEN_UNUSED)
            self.scores.append(0.0)
        self.n_tokens = n

    def write_to(self, w):
        w.add_string("tokenizer.ggml.model", self.model)
        w.add_string("tokenizer.ggml.pre", self.pre)
        w.add_array("tokenizer.ggml.tokens", self.tokens, GGUF_STRING)
        if self.model == "llama":
            w.add_array("tokenizer.ggml.scores", self.scores, GGUF_F32)
        w.add_array("tokenizer.ggml.token_type", self.types, GGUF_I32)
        if self.model == "gpt2":
            w.add_array("tokenizer.ggml.merges", self.merges, GGUF_STRING)
        for key, v in (("bos_token_id", self.bos_id), ("eos_token_id", self.eos_id),
                       ("unknown_token_id", self.unk_id), ("padding_token_id", self.pad_id)):
            if v is not None:
                w.add_u32("tokenizer.ggml." + key, v)
        for text, key in FIM_KEYS.items():
            if text in self.text_to_id:
                w.add_u32(key, self.text_to_id[text])
        for text in EOT_TEXTS:
            if text in self.text_to_id and self.text_to_id[text] != self.bos_id:
                w.add_u32("tokenizer.ggml.eot_token_id", self.text_to_id[text])
                break
        w.add_bool("tokenizer.ggml.add_bos_token", self.add_bos)
        w.add_bool("tokenizer.ggml.add_eos_token", self.add_eos)
        if self.add_space_prefix is not None:
            w.add_bool("tokenizer.ggml.add_space_prefix", self.add_space_prefix)
        if self.chat_template:
            w.add_string("tokenizer.chat_template", self.chat_template)


def load_vocab(tokenizer_json, tokenizer_config=None, model_config=None, pre=None):
    """Paths (tokenizer_config/model_config may be None or missing files) -> Vocab."""
    tok = _load_json(tokenizer_json, "tokenizer.json")
    cfg = _load_json(tokenizer_config, "tokenizer_config.json") if tokenizer_config and os.path.exists(tokenizer_config) else None
    mcfg = _load_json(model_config, "config.json") if model_config and os.path.exists(model_config) else None
    return Vocab(tok, cfg, mcfg, pre=pre)
