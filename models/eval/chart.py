#!/usr/bin/env python3
"""Draws the StreamingLLM reproduction (models/eval/results/streaming-repro.json) as an SVG,
by hand (no plotting library): left, perplexity per chunk over the whole stream; right, the
first 8k tokens in 128-token bins, where the first eviction happens. Log-scale perplexity.

    python3 models/eval/chart.py models/eval/results/streaming-repro.json docs/streaming-repro.svg
"""
import json
import math
import sys

COLORS = {"S=0": "#d62728", "S=1": "#1f77b4", "S=4": "#2ca02c", "dense1024": "#7f7f7f"}
LABELS = {"S=0": "window attention (S=0)", "S=1": "sink + window (S=1)", "S=4": "sinks + window (S=4)",
          "dense1024": "dense, 1024-token blocks"}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_ticks(lo, hi):
    """Log-scale ticks 1-2-5 between lo and hi."""
    out = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 10:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
        e += 1
    return out


def fmt_tokens(v):
    if v >= 1e6:
        return f"{v / 1e6:.2g}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:g}"


def panel(x0, y0, w, h, series, xmax, title, ylo, yhi, vlines=(), hlines=(), log=True, ylabel="perplexity (log scale)"):
    """series: [(name, [(x, ppl)], dashed)] -> SVG elements."""
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-size="14" font-weight="bold">{esc(title)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#333"/>']
    tf = math.log if log else (lambda v: v)
    lylo, lyhi = tf(ylo), tf(yhi)
    X = lambda x: x0 + w * x / xmax
    Y = lambda p: y0 + h - h * (tf(min(max(p, ylo), yhi)) - lylo) / (lyhi - lylo)
    ticks = nice_ticks(ylo, yhi) if log else [round(0.05 * k, 2) for k in range(math.ceil(ylo / 0.05), math.floor(yhi / 0.05) + 1)]
    for v in ticks:
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 5}" y="{Y(v) + 4:.1f}" text-anchor="end" font-size="11">{v:g}</text>')
    step = 10 ** math.floor(math.log10(xmax))
    while xmax / step < 4:
        step /= 2
    t = 0
    while t <= xmax * 1.0001:
        out.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{y0 + h}" y2="{y0 + h + 4}" stroke="#333"/>')
        out.append(f'<text x="{X(t):.1f}" y="{y0 + h + 16}" text-anchor="middle" font-size="11">{fmt_tokens(t)}</text>')
        t += step
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle" font-size="12">tokens streamed</text>')
    out.append(f'<text x="{x0 - 45}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {x0 - 45} {y0 + h / 2})">{esc(ylabel)}</text>')
    for xv, label in vlines:
        out.append(f'<line x1="{X(xv):.1f}" x2="{X(xv):.1f}" y1="{y0}" y2="{y0 + h}" stroke="#999" stroke-dasharray="3,3"/>')
        out.append(f'<text x="{X(xv) + 4:.1f}" y="{y0 + 14}" font-size="11" fill="#555">{esc(label)}</text>')
    for k, (xa, xb, p, label, color) in enumerate(hlines):
        out.append(f'<line x1="{X(xa):.1f}" x2="{X(xb):.1f}" y1="{Y(p):.1f}" y2="{Y(p):.1f}" stroke="{color}" stroke-width="3"/>')
        dy = 15 if k == 0 else -6
        out.append(f'<text x="{X(xb) - 2:.1f}" y="{Y(p) + dy:.1f}" text-anchor="end" font-size="11" fill="{color}" '
                   f'stroke="white" stroke-width="3" paint-order="stroke">{esc(label)}</text>')
    for name, pts, dashed in series:
        if not pts:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{X(x):.1f},{Y(p):.1f}" for i, (x, p) in enumerate(pts))
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        out.append(f'<path d="{d}" fill="none" stroke="{COLORS.get(name, "#000")}" stroke-width="2"{dash}/>')
    return out


def main(src, dst):
    r = json.load(open(src))
    modes = r["modes"]
    W = r["window"]
    n = max(m["tokens"] for m in modes)
    # left: per chunk, plotted at the chunk's end
    left = [(m["mode"], [(c["end"], c["ppl"]) for c in m["chunks"]], m["mode"] == "dense1024") for m in modes]
    # right: first 8k tokens in 128-token bins
    B = 128
    right = []
    for m in modes:
        e = m.get("early_nll") or []
        pts = []
        for i in range(0, len(e) - B + 1, B):
            pts.append((i + 1 + B / 2, math.exp(sum(e[i:i + B]) / B)))
        right.append((m["mode"], pts, m["mode"] == "dense1024"))
    allp = [p for _, pts, _ in left + right for _, p in pts]
    rs = r.get("recompute_sampled", {})
    hl = []
    paired = rs.get("paired", {})
    if "recompute+sink" in paired:
        a, b = rs["positions_range"]
        hl.append((a, b, paired["recompute+sink"]["ppl"], f"recompute+sink, {paired['recompute+sink']['positions']} sampled positions", "#000"))
        allp.append(paired["recompute+sink"]["ppl"])
    if "recompute" in paired:
        a, b = rs["positions_range"]
        hl.append((a, b, paired["recompute"]["ppl"], "recompute (no sink)", "#9467bd"))
        allp.append(paired["recompute"]["ppl"])
    ylo = min(allp) / 1.15
    yhi = max(allp) * 1.15
    Wd, Hd = 1100, 880
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{Wd}" height="{Hd}" viewBox="0 0 {Wd} {Hd}" '
           f'font-family="Helvetica, Arial, sans-serif">', f'<rect width="{Wd}" height="{Hd}" fill="white"/>']
    svg += panel(80, 40, 440, 330, left, n, f"whole stream ({fmt_tokens(n)} tokens, {r['every']}-token chunks)", ylo, yhi,
                 hlines=[h for h in hl if early_n < h[0]] if (early_n := min(8192, max((len(m.get('early_nll') or []) for m in modes), default=0))) else hl)
    early_n = min(8192, max((len(m.get("early_nll") or []) for m in modes), default=0))
    if early_n >= B:
        svg += panel(620, 40, 440, 330, right, early_n, "first 8k tokens (128-token bins)", ylo, yhi,
                     vlines=[(W + 1, f"first eviction (W={W})")], hlines=[(a, min(b, early_n), p, lab, c) for (a, b, p, lab, c) in hl if a < early_n])
    # bottom: each mode's chunk perplexity relative to sink + window (S=1) on the same chunk
    ref = {c["end"]: c["ppl"] for m in modes if m["mode"] == "S=1" for c in m["chunks"]}
    ratio = [(m["mode"], [(c["end"], c["ppl"] / ref[c["end"]]) for c in m["chunks"] if c["end"] in ref], m["mode"] == "dense1024")
             for m in modes]
    rv = [p for _, pts, _ in ratio for _, p in pts]
    if ref and rv:
        xr = max((x for _, pts, _ in ratio if pts for x, _ in pts))
        rlo, rhi = min(0.95, min(rv) - 0.02), max(1.05, max(rv) + 0.02)
        svg += panel(80, 460, 980, 300, ratio, xr, "perplexity per chunk relative to sink + window (S=1) on the same chunk", rlo, rhi,
                     log=False, ylabel="ratio to S=1")
    # legend
    ly = 815
    lx = 80
    for m in modes:
        name = m["mode"]
        dash = ' stroke-dasharray="6,4"' if name == "dense1024" else ""
        svg.append(f'<line x1="{lx}" x2="{lx + 25}" y1="{ly}" y2="{ly}" stroke="{COLORS.get(name, "#000")}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{lx + 30}" y="{ly + 4}" font-size="12">{esc(LABELS.get(name, name))}</text>')
        lx += 230
    model = r["model"].split("/")[-1]
    note = (f"{model}; W={W}; stream of held-out code, {r['stream']['files']} files"
            + ("; the held-out set was repeated" if r["stream"].get("repeated") else "")
            + (f"; recompute: mean over {paired['recompute+sink']['positions']} sampled positions in tokens "
               f"{rs['positions_range'][0]}-{rs['positions_range'][1]}, see table" if "recompute+sink" in paired else ""))
    svg.append(f'<text x="80" y="{ly + 30}" font-size="11" fill="#555">{esc(note)}</text>')
    svg.append("</svg>")
    open(dst, "w").write("\n".join(svg) + "\n")
    print(f"{dst}: {len(modes)} modes, {n} tokens")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: chart.py RESULTS.json OUT.svg", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
