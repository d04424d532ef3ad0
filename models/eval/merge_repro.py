#!/usr/bin/env python3
"""Merges streaming_repro.ts result files that ran different modes on the same stream (same
--tokens, --seed, --window and recompute positions; e.g. S=1 alone in one process and S=0, S=4,
dense and the recompute in another, to use two cores) into one file of the same shape, with the
paired comparison at the sampled positions recomputed over all modes.

    python3 models/eval/merge_repro.py OUT.json IN1.json IN2.json[:MODE,MODE] ...

IN.json:MODE,MODE keeps only those modes of that file (e.g. the dense blocks of a run whose S=0 and
S=4 were later re-run over the whole stream); its scores at the sampled positions are kept for the
modes a later file does not bring.
"""
import json
import math
import sys


def load(spec):
    path, _, keep = spec.partition(":")
    r = json.load(open(path))
    if keep:
        wanted = set(keep.split(","))
        missing = wanted - {m["mode"] for m in r["modes"]}
        if missing:
            raise SystemExit(f"merge_repro: {path} has no mode {sorted(missing)}")
        r["modes"] = [m for m in r["modes"] if m["mode"] in wanted]
    return r


def main(out, ins):
    rs = [load(p) for p in ins]
    base = dict(rs[0])
    for r in rs[1:]:
        for k in ("window", "every"):
            if r[k] != base[k]:
                raise SystemExit(f"merge_repro: {k} differs: {r[k]} vs {base[k]}")
        if r["recompute_sampled"]["positions"] != base["recompute_sampled"]["positions"]:
            raise SystemExit("merge_repro: the sampled recompute positions differ (different --tokens/--seed/range?)")
        if r["fingerprint"] != base["fingerprint"]:
            raise SystemExit("merge_repro: different models")
    order = {"S=0": 0, "S=1": 1, "S=4": 2, "dense1024": 3}
    base["modes"] = sorted((m for r in rs for m in r["modes"]), key=lambda m: (order.get(m["mode"], 9), m["mode"]))
    base["command"] = [r["command"] for r in rs]
    base["final"] = all(r["final"] for r in rs)
    base["stream"] = dict(rs[0]["stream"], tokens=max(r["stream"]["tokens"] for r in rs))
    vec = {}
    recompute_seconds = {}
    for r in rs:
        for k, v in r["recompute_sampled"].get("nll_at_positions", {}).items():
            if any(x is not None for x in v):
                vec[k] = v
        for k, v in r["recompute_sampled"].get("paired", {}).items():
            if isinstance(v, dict) and v.get("seconds") is not None:
                recompute_seconds[k] = v["seconds"]
    n = len(base["recompute_sampled"]["positions"])
    idx = [i for i in range(n) if all(v[i] is not None for v in vec.values())]
    paired = {}
    if idx:
        ref = "recompute+sink" if "recompute+sink" in vec else next(iter(vec))
        for k, v in vec.items():
            d = [v[i] - vec[ref][i] for i in idx]
            mean = sum(d) / len(d)
            sd = math.sqrt(sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1))
            nll = sum(v[i] for i in idx) / len(idx)
            h = 1.96 * sd / math.sqrt(len(d))
            paired[k] = {"positions": len(idx), "nll": nll, "ppl": math.exp(nll), "ppl_ratio_vs_ref": math.exp(mean),
                         "ppl_ratio_95ci": [math.exp(mean - h), math.exp(mean + h)], "seconds": recompute_seconds.get(k)}
        paired["reference"] = ref
    base["recompute_sampled"] = dict(base["recompute_sampled"], paired=paired, nll_at_positions=vec)
    json.dump(base, open(out, "w"), indent=1)
    print(f"{out}: modes {[m['mode'] for m in base['modes']]}, paired over {len(idx)} positions")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print("usage: merge_repro.py OUT.json IN1.json IN2.json ...", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2:])
