"""Renders training documents into the text the model is trained on (issue 4).

Each file becomes one of:
  - FIM (about half): split into windows of 1-4 KB at line boundaries; each window becomes
    <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>M<|endoftext|> (PSM) or
    <|fim_suffix|>S<|fim_prefix|>P<|fim_middle|>M<|endoftext|> (SPM), the middle being the
    rest of one line, a span of whole lines, or a random character range.
  - session stream (about 15%): <|file|>path\\n + the file before some simulated edits, then
    <|edit|>path @@ -a,b +c,d @@\\n + unified-diff lines for each edit (lines typed in, lines
    finished, stray lines deleted), <|save|>path\\n, <|endoftext|> (docs/stream-format.md).
  - plain (the rest): [<|file_sep|>path\\n] + text + <|endoftext|>.
Pure functions of (document, random.Random), so a seed reproduces the corpus.
"""
import random
import re

P_STREAM = 0.15
P_FIM = 0.50
P_SPM = 0.5

_ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def split_windows(text, rng, lo=1000, hi=4000):
    """Line-aligned windows of lo..hi characters covering the whole text."""
    lines = text.splitlines(keepends=True)
    out, cur, size, target = [], [], 0, rng.randint(lo, hi)
    for ln in lines:
        cur.append(ln)
        size += len(ln)
        if size >= target:
            out.append("".join(cur))
            cur, size, target = [], 0, rng.randint(lo, hi)
    if cur:
        if out and size < lo // 2:
            out[-1] += "".join(cur)
        else:
            out.append("".join(cur))
    return out


def fim_split(text, rng):
    """Returns (prefix, middle, suffix) with prefix + middle + suffix == text."""
    n = len(text)
    kind = rng.random()
    line_starts = [0] + [m.end() for m in re.finditer("\n", text) if m.end() < n]
    content = [s for s in line_starts if text[s:text.find("\n", s) if text.find("\n", s) >= 0 else n].strip()]
    if kind < 0.35 and content:
        # the rest of one line, from its indentation or from a random character in it
        s = rng.choice(content)
        e = text.find("\n", s)
        e = n if e < 0 else e
        indent = len(text[s:e]) - len(text[s:e].lstrip())
        a = s + indent if rng.random() < 0.5 else rng.randint(s + indent, e)
        return text[:a], text[a:e], text[e:]
    if kind < 0.70 and len(content) > 1:
        # a span of 2..15 whole lines (the last without its newline)
        i = rng.randrange(len(content))
        s = content[i]
        j = min(len(content) - 1, i + rng.randint(1, 14))
        e = text.find("\n", content[j])
        e = n if e < 0 else e
        indent = len(text[s:]) - len(text[s:].lstrip(" \t"))
        a = s + indent if rng.random() < 0.7 else s
        return text[:a], text[a:e], text[e:]
    a, b = sorted((rng.randint(0, n), rng.randint(0, n)))
    return text[:a], text[a:b], text[b:]


def render_fim(text, rng):
    pre, mid, suf = fim_split(text, rng)
    if rng.random() < P_SPM:
        return f"<|fim_suffix|>{suf}<|fim_prefix|>{pre}<|fim_middle|>{mid}<|endoftext|>"
    return f"<|fim_prefix|>{pre}<|fim_suffix|>{suf}<|fim_middle|>{mid}<|endoftext|>"


def _alter(lines, rng, all_lines):
    """An earlier state of `lines` for a 'modify' edit: a line still being typed, a
    different identifier, or an old value."""
    out = list(lines)
    k = rng.randrange(len(out))
    ln = out[k]
    r = rng.random()
    if r < 0.5 and len(ln.strip()) > 2:
        indent = len(ln) - len(ln.lstrip())
        out[k] = ln[:rng.randint(indent + 1, len(ln) - 1)]
        out = out[:k + 1]  # typing stopped there
    elif r < 0.8 and _ident.search(ln):
        ids = _ident.findall(ln)
        others = _ident.findall(rng.choice(all_lines)) or ["value", "tmp", "result"]
        out[k] = ln.replace(rng.choice(ids), rng.choice(others), 1)
    else:
        out[k] = re.sub(r"\d+", lambda m: str(rng.randint(0, 99)), ln, count=1) if re.search(r"\d", ln) \
            else ln + rng.choice([" // TODO", "  # TODO", " ", ";"])
    return out if out != list(lines) else out[:-1]


def render_stream(path, text, rng):
    final = text.rstrip("\n").split("\n")
    if len(final) > 400:
        s = rng.randrange(len(final) - 300)
        final = final[s:s + rng.randint(200, 300)]
    n = len(final)
    if n < 4:
        return f"<|file|>{path}\n{text}<|save|>{path}\n<|endoftext|>"
    # Choose non-overlapping spans of the final text and what stood there before.
    k = rng.randint(1, min(6, max(1, n // 8)))
    starts = sorted(rng.sample(range(n), k))
    blocks = []  # ("fixed", lines) or ("span", old, new)
    pos = 0
    for st in starts:
        if st < pos:
            continue
        if st > pos:
            blocks.append(["fixed", final[pos:st]])
        ln = min(rng.randint(1, 8), n - st)
        new = final[st:st + ln]
        r = rng.random()
        if r < 0.45:
            old = []  # lines typed in
        elif r < 0.85:
            old = _alter(new, rng, final)  # lines finished or changed
        else:
            old = new + [rng.choice(final)]  # a stray line deleted
        blocks.append(["span", old, new, False])
        pos = st + ln
    if pos < n:
        blocks.append(["fixed", final[pos:]])

    def current():
        out = []
        for b in blocks:
            out.extend(b[1] if b[0] == "fixed" else (b[2] if b[3] else b[1]))
        return out

    spans = [i for i, b in enumerate(blocks) if b[0] == "span" and b[1] != b[2]]
    init = current()
    parts = []
    first = blocks[spans[0]] if spans else None
    if len(init) > 150:
        at = sum(len(b[1]) if b[0] == "fixed" else len(b[1]) for b in blocks[:spans[0]]) if spans else 0
        lo = max(0, min(at - rng.randint(20, 100), len(init) - 150))
        view = init[lo:lo + 150]
    else:
        view = init
    parts.append(f"<|file|>{path}\n" + "".join(l + "\n" for l in view))
    order = spans[:]
    if rng.random() < 0.6:
        rng.shuffle(order)
    ctx = rng.choice([0, 1, 1, 1, 2, 3])  # the server writes 1 line of context by default
    for bi in order:
        cur = current()
        p = 0
        for b in blocks[:bi]:
            p += len(b[1]) if b[0] == "fixed" else len(b[2] if b[3] else b[1])
        _, old, new, _ = blocks[bi]
        # Minimal hunk, as a diff tool would write it: common leading/trailing lines are context.
        lead = 0
        while lead < min(len(old), len(new)) and old[lead] == new[lead]:
            lead += 1
        trail = 0
        while trail < min(len(old), len(new)) - lead and old[-1 - trail] == new[-1 - trail]:
            trail += 1
        p += lead
        old, new = old[lead:len(old) - trail], new[lead:len(new) - trail]
        cb = min(ctx, p)
        after = cur[p + len(old):p + len(old) + ctx]
        before = cur[p - cb:p]
        oc, nc = cb + len(old) + len(after), cb + len(new) + len(after)
        os_ = p - cb + 1 if oc else p - cb
        ns = p - cb + 1 if nc else p - cb

        # counts always written, as the server's hunkHeader (server/session/diff.ts) does
        hunk = [f"<|edit|>{path} @@ -{os_},{oc} +{ns},{nc} @@\n"]
        hunk += [f" {l}\n" for l in before] + [f"-{l}\n" for l in old] + [f"+{l}\n" for l in new] + [f" {l}\n" for l in after]
        parts.append("".join(hunk))
        blocks[bi][3] = True
        if rng.random() < 0.15:
            parts.append(f"<|save|>{path}\n")
    parts.append(f"<|save|>{path}\n<|endoftext|>")
    return "".join(parts)


def render_plain(path, text, rng):
    if rng.random() < 0.5:
        return f"<|file_sep|>{path}\n{text}<|endoftext|>"
    return f"{text}<|endoftext|>"


def render_document(path, text, rng):
    """Returns (mode, [rendered strings])."""
    r = rng.random()
    if r < P_STREAM:
        return "stream", [render_stream(path, text, rng)]
    if r < P_STREAM + P_FIM:
        return "fim", [render_fim(w, rng) for w in split_windows(text, rng)]
    return "plain", [render_plain(path, text, rng)]
