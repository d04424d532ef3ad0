"""Prints the model card's data tables (markdown) from the run's logs:
sources.json (prep_data.py), samples.json (build_samples.py), train_summary.json,
val_log.csv and verify.json. Usage: python3 card_tables.py models/train/logs
"""
import csv
import json
import os
import sys
from collections import defaultdict


def mb(n):
    return f"{n / 1e6:.1f}"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "logs")
    src = json.load(open(os.path.join(d, "sources.json")))
    print("### Corpus by language\n")
    print("| language | training files | training MB | held-out files | held-out MB |")
    print("|---|---:|---:|---:|---:|")
    for lang, v in src["languages"].items():
        h = src["heldout"].get(lang, {"files": 0, "bytes": 0})
        print(f"| {lang} | {v['train_files']} | {mb(v['train_bytes'])} | {h['files']} | {mb(h['bytes'])} |")
    kinds = defaultdict(lambda: defaultdict(int))
    lic = defaultdict(lambda: [0, 0, set()])
    drops = defaultdict(int)
    excluded = defaultdict(lambda: [0, set()])
    for name, s in src["sources"].items():
        for k, v in s.items():
            if k.startswith("drop_"):
                drops[k[5:]] += v
        kinds[s["kind"]]["bytes"] += s.get("train_bytes", 0) + s.get("heldout_bytes", 0)
        kinds[s["kind"]]["files"] += s.get("train_files", 0) + s.get("heldout_files", 0)
        kinds[s["kind"]]["sources"] += 1 if s.get("train_files", 0) + s.get("heldout_files", 0) else 0
        for l, n in s.get("file_licenses", {}).items():
            if l.startswith("excluded: "):
                excluded[l[10:]][0] += n
                excluded[l[10:]][1].add(name)
            else:
                lic[l][0] += n
                lic[l][2].add(name)
    print("\n### Sources\n")
    print("| source kind | sources used | files (train + held-out) | MB |")
    print("|---|---:|---:|---:|")
    for k, v in sorted(kinds.items()):
        print(f"| {k} | {v['sources']} | {v['files']} | {mb(v['bytes'])} |")
    print("\n### Licenses of the files used (after dedup, before caps)\n")
    print("| license | files | sources (examples) |")
    print("|---|---:|---|")
    for l, (n, _, names) in sorted(lic.items(), key=lambda kv: -kv[1][0])[:30]:
        ex = ", ".join(sorted(names)[:4]) + (" ..." if len(names) > 4 else "")
        print(f"| {l} | {n} | {ex} |")
    print("\n### Top sources by training bytes\n")
    print("| source | version | license | train files | train MB |")
    print("|---|---|---|---:|---:|")
    top = sorted(src["sources"].items(), key=lambda kv: -kv[1].get("train_bytes", 0))[:30]
    for name, s in top:
        print(f"| {name} | {s.get('version', '')} | {s['license'][:60]} | {s.get('train_files', 0)} | {mb(s.get('train_bytes', 0))} |")
    print("\n### Excluded by license (files)\n")
    print("| license | files | sources (examples) |")
    print("|---|---:|---|")
    ex_src = defaultdict(lambda: [0, set()])
    for name, s in src["sources"].items():
        if s.get("drop_license") and not s.get("file_licenses"):
            ex_src[s["license"] or "(none found)"][0] += s["drop_license"]
            ex_src[s["license"] or "(none found)"][1].add(name)
    for l, (n, names) in excluded.items():
        ex_src[l][0] += n
        ex_src[l][1] |= names
    for l, (n, names) in sorted(ex_src.items(), key=lambda kv: -kv[1][0])[:25]:
        print(f"| {l[:70]} | {n} | {', '.join(sorted(names)[:4])}{' ...' if len(names) > 4 else ''} |")
    print("\n### Files dropped by filter\n")
    print("| reason | files |")
    print("|---|---:|")
    for k, v in sorted(drops.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v} |")
    p = os.path.join(d, "samples.json")
    if os.path.exists(p):
        s = json.load(open(p))
        print(f"\nTraining stream: {s['train_tokens'] / 1e6:.1f}M tokens, {s['chars_per_token']:.2f} characters/token.\n")
        modes = defaultdict(int)
        for k, v in s["by_mode"].items():
            if k.endswith("/docs"):
                modes[k.split("/")[1]] += v
        tot = sum(modes.values())
        print("| rendering | files | share |\n|---|---:|---:|")
        for m, v in sorted(modes.items()):
            print(f"| {m} | {v} | {v / max(1, tot):.1%} |")


if __name__ == "__main__":
    main()
