#!/usr/bin/env python3
"""Markdown tables of the default model's evaluation, from models/eval/results/:
streaming-repro.json (models/eval/streaming_repro.ts), ppl-<lang>-<mode>.jsonl (endless
eval-stream) and fim.json (models/eval/fim_eval.ts).

    python3 models/eval/tables.py models/eval/results
"""
import json
import math
import os
import sys

LANG = {"python": "Python", "js": "JS/TS", "cpp": "C/C++"}


def f(x, d=2):
    return "–" if x is None else f"{x:,.{d}f}"


def main(res):
    out = []
    rp = os.path.join(res, "streaming-repro.json")
    r = json.load(open(rp)) if os.path.exists(rp) else None
    # 1. per-language perplexity
    rows = []
    for lang in LANG:
        for mode in ("streaming", "dense"):
            p = os.path.join(res, f"ppl-{lang}-{mode}.jsonl")
            if not os.path.exists(p):
                continue
            tot = [json.loads(l) for l in open(p) if l.startswith("{") and '"total"' in l]
            if tot:
                t = tot[-1]
                rows.append(f"| {LANG[lang]} | eval-stream {mode}" + (f" S={t['sinks']} W={t['window']}" if mode == "streaming" else " (first 1024 tokens)")
                            + f" | {t['scored']:,} | {f(t['ppl'], 3)} | {t['ms_per_token']} |")
    if r:
        for m in r["modes"]:
            if m["mode"] in ("S=1", "dense1024"):
                for lang in LANG:
                    pl = m["per_language"][lang]
                    if pl["tokens"]:
                        label = "streaming_repro S=1 W=1020" if m["mode"] == "S=1" else "streaming_repro dense, 1024-token blocks"
                        rows.append(f"| {LANG[lang]} | {label} | {pl['tokens']:,} | {f(pl['ppl'], 3)} | |")
    if rows:
        out += ["### Held-out perplexity per language", "",
                "| language | how | tokens scored | perplexity | ms/token |", "|---|---|---:|---:|---:|"] + rows + [""]
    # 2. StreamingLLM reproduction
    if r:
        # the longest prefix every mode has scored, in whole chunks (modes may have run to different lengths)
        ends = [set(c["end"] for c in m["chunks"]) for m in r["modes"]]
        common = max(set.intersection(*ends)) if set.intersection(*ends) else 1
        longest = max(m["scored"] for m in r["modes"])
        out += [f"### StreamingLLM reproduction ({longest:,} tokens scored of a {r['stream']['tokens']:,}-token stream of held-out code"
                + (", held-out set repeated" if r["stream"]["repeated"] else "") + f"; chunks of {r['every']:,} tokens)", "",
                f"| mode | S | W | tokens scored | perplexity, all scored | perplexity, first {common - 1:,} scored tokens | first chunk | last chunk | tokens/s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        names = {"S=0": "window attention", "S=1": "sink + window", "S=4": "sinks + window", "dense1024": "dense (1024-token blocks)"}
        for m in r["modes"]:
            cs = [c for c in m["chunks"] if c["end"] <= common]
            pc = math.exp(sum(c["nll"] * c["tokens"] for c in cs) / sum(c["tokens"] for c in cs)) if cs else None
            out.append(f"| {names.get(m['mode'], m['mode'])} | {m['sinks']} | {m['window']} | {m['scored']:,} | {f(m['ppl'], 3)} | {f(pc, 3)} | "
                       f"{f(m['first_chunk_ppl'], 3)} | {f(m['last_chunk_ppl'], 3)} | {f(m['tokens_per_s'], 0)} |")
        rs = r["recompute_sampled"]
        pr = rs.get("paired", {})
        if pr:
            ref = pr["reference"]
            out += ["", f"Paired on {rs['count']} sampled positions in tokens {rs['positions_range'][0]:,}–{rs['positions_range'][1]:,} "
                    f"(all past the first eviction); reference `{ref}`:", "",
                    "| mode | perplexity at the sampled positions | ratio to reference (95% CI) | seconds |", "|---|---:|---:|---:|"]
            for k, v in pr.items():
                if k == "reference":
                    continue
                ci = v["ppl_ratio_95ci"]
                out.append(f"| {k} | {f(v['ppl'], 3)} | {v['ppl_ratio_vs_ref']:.3f} ({ci[0]:.3f}–{ci[1]:.3f}) | {f(v.get('seconds'), 1)} |")
        out.append("")
    # 3. FIM
    fp = os.path.join(res, "fim.json")
    if os.path.exists(fp):
        fim = json.load(open(fp))
        out += ["### Fill-in-the-middle (greedy)", "", "| task | order | language | n | exact | exact (whitespace-normalized) | char similarity | ended with EOS |",
                "|---|---|---|---:|---:|---:|---:|---:|"]
        for k, v in fim["summary"].items():
            kind, order, lang = k.split("/")
            out.append(f"| {'single line' if kind == 'line' else '2–8 lines in a function'} | {order.upper()} | {LANG.get(lang, 'all')} | {v['n']} | "
                       f"{100 * v['exact']:.1f}% | {100 * v['exact_ws']:.1f}% | {v['similarity']:.3f} | {100 * v['stopped_by_eos']:.0f}% |")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/eval/results")
