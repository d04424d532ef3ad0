"""Packs permissively licensed JS/TS sources from an npm node_modules tree into a tar.xz.

Called by pack_js.sh. Output layout: js/<package>/<path inside package>, plus js/MANIFEST.json
listing every package seen with its version, license (from its package.json), the decision
(included/excluded) and file/byte counts, and the counts of files dropped by each filter.
"""
import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_filters import classify_spdx, exact_key, near_key, reject_reason  # noqa: E402

EXTS = (".d.ts", ".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx")
PER_PACKAGE_CAP = 6_000_000      # raw bytes: keeps one huge package from crowding out the rest
TOTAL_CAP = 170_000_000          # raw bytes: ~20-25 MB after xz


def license_of(meta):
    lic = meta.get("license")
    if isinstance(lic, dict):
        lic = lic.get("type")
    if not lic and isinstance(meta.get("licenses"), list):
        names = [l.get("type") if isinstance(l, dict) else str(l) for l in meta["licenses"]]
        lic = " OR ".join(n for n in names if n)
    return lic or ""


def find_packages(nm):
    """Yields (package dir, package.json dict) for every package under node_modules,
    nested node_modules included."""
    for dirpath, dirnames, filenames in os.walk(nm):
        if "package.json" in filenames and os.path.basename(os.path.dirname(dirpath)) in ("node_modules",) \
                or ("package.json" in filenames and os.path.basename(os.path.dirname(os.path.dirname(dirpath))) == "node_modules"
                    and os.path.basename(os.path.dirname(dirpath)).startswith("@")):
            try:
                with open(os.path.join(dirpath, "package.json"), encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("name"):
                yield dirpath, meta


def file_rank(rel):
    """Sort key: hand-written sources first (src/, .ts), then library builds."""
    r = rel.lower()
    score = 0
    if r.startswith("src/") or "/src/" in r:
        score -= 4
    if r.endswith((".ts", ".tsx", ".mts", ".cts")):
        score -= 2
    if "/test" in r or r.startswith("test"):
        score += 1
    if "/umd/" in r or "/cjs/" in r or "/dist/" in r or r.startswith("dist/"):
        score += 2
    return (score, r)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: pack_js.py <node_modules> <out.tar.xz>")
    nm, out = sys.argv[1], sys.argv[2]
    if not os.path.isdir(nm):
        sys.exit(f"pack_js: no such node_modules folder: {nm}")
    seen_exact, seen_near = set(), set()
    manifest = {"packages": [], "dropped": {}}
    total = 0
    members = []
    pkgs = sorted(find_packages(nm), key=lambda p: p[1]["name"])
    seen_names = set()
    for pdir, meta in pkgs:
        name, version = meta["name"], str(meta.get("version", ""))
        if (name, version) in seen_names:
            continue
        seen_names.add((name, version))
        lic = license_of(meta)
        decision = classify_spdx(lic)
        entry = {"name": name, "version": version, "license": lic, "class": decision, "files": 0, "bytes": 0}
        manifest["packages"].append(entry)
        if decision != "permissive":
            continue
        files = []
        for dirpath, dirnames, filenames in os.walk(pdir):
            dirnames[:] = [d for d in dirnames if d != "node_modules" and not d.startswith(".")]
            for fn in filenames:
                if fn.endswith(EXTS):
                    files.append(os.path.relpath(os.path.join(dirpath, fn), pdir))
        pbytes = 0
        for rel in sorted(files, key=file_rank):
            try:
                with open(os.path.join(pdir, rel), "rb") as f:
                    raw = f.read()
                text = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                manifest["dropped"]["not_utf8"] = manifest["dropped"].get("not_utf8", 0) + 1
                continue
            why = reject_reason(text, rel)
            if why is None:
                ek, nk = exact_key(text), near_key(text)
                why = "exact_dup" if ek in seen_exact else "near_dup" if nk in seen_near else None
                seen_exact.add(ek)
                seen_near.add(nk)
            if why is None and (pbytes + len(raw) > PER_PACKAGE_CAP or total + len(raw) > TOTAL_CAP):
                why = "size_cap"
            if why:
                manifest["dropped"][why] = manifest["dropped"].get(why, 0) + 1
                continue
            members.append((f"js/{name}/{rel}", raw))
            pbytes += len(raw)
            total += len(raw)
            entry["files"] += 1
            entry["bytes"] += len(raw)
    manifest["total_files"] = len(members)
    manifest["total_bytes"] = total
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w:xz", preset=9) as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo("js/MANIFEST.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path, raw in members:
            info = tarfile.TarInfo(path)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    os.replace(tmp, out)
    inc = [p for p in manifest["packages"] if p["files"]]
    print(f"pack_js: {len(members)} files, {total/1e6:.1f} MB raw from {len(inc)} packages; dropped {manifest['dropped']}")
    excl = sorted({(p['name'], p['license']) for p in manifest["packages"] if p["class"] != "permissive"})
    print(f"pack_js: excluded packages (license): {excl}")


if __name__ == "__main__":
    main()
