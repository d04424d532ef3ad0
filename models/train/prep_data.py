"""Builds the default model's training corpus on the GPU machine (issue 4, step 1).

Sources, each with its license recorded:
  - Python: the installed distributions' files (site-packages; license from each dist-info's
    METADATA) and the Python standard library (PSF-2.0).
  - C/C++: /usr/include (license from the owning Debian package's copyright file, or an SPDX
    line / license text in the file itself), the CUDA toolkit's include folder (only files whose
    own text carries a permissive license: CCCL's Thrust/CUB/libcu++; NVIDIA-proprietary
    headers are excluded), and C/C++ sources shipped inside permissively licensed Python
    distributions (e.g. torch/include).
  - JS/TS: .carry-data/js.tar.xz made by pack_js.sh (npm packages, permissive only).
Then: quality filters (corpus_filters.py), exact and near-exact dedup, per-package and
per-language caps, and a deterministic hash-based held-out split of whole files.

Writes into --work: train_docs.pkl (list of (lang, path, text)), heldout/<lang>/... and
heldout.tar.xz with heldout/MANIFEST.json, sources.json (per-source license/files/bytes and
drop counts). Usage: python3 prep_data.py --work DIR --js .carry-data/js.tar.xz
"""
import argparse
import hashlib
import io
import json
import os
import pickle
import re
import site
import sys
import sysconfig
import tarfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from corpus_filters import classify_spdx, exact_key, near_key, reject_reason  # noqa: E402

PY_EXTS = (".py", ".pyi")
C_EXTS = (".h", ".hpp", ".hh", ".hxx", ".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".inl", ".ipp", ".tcc")
JS_EXTS = (".d.ts", ".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx")


def lang_of(path):
    p = path.lower()
    if p.endswith(PY_EXTS):
        return "python"
    if p.endswith(C_EXTS):
        return "cpp"
    if p.endswith(JS_EXTS):
        return "js"
    # libstdc++ headers have no extension (<vector>, <map>, ...).
    if "/include/c++/" in p and "." not in os.path.basename(p):
        return "cpp"
    return None


# ---------------------------------------------------------------- license detection

def dist_license(dist):
    md = dist.metadata
    expr = md.get("License-Expression")
    if expr:
        return expr
    classifiers = [c for c in (md.get_all("Classifier") or []) if c.startswith("License ::")]
    lic = (md.get("License") or "").strip()
    # Short License fields are names; long ones are the license text pasted in.
    if lic and len(lic) < 80 and lic.upper() not in ("UNKNOWN", "NONE"):
        return lic
    for c in classifiers:
        last = c.split("::")[-1].strip()
        if last not in ("OSI Approved",):
            return last
    if lic:
        return license_from_text(lic) or "unrecognized license text"
    return ""


def license_from_text(text):
    """Recognizes a license from the text of a file header or a license file."""
    t = text[:6000]
    m = re.search(r"SPDX-License-Identifier:\s*([^\n*]+)", t)
    if m:
        return m.group(1).strip().rstrip("*/ ").strip()
    low = t.lower()
    if "notice to licensee" in low or "proprietary and confidential" in low or "nvidia software license" in low \
            or "nvidia intellectual property" in low:
        return "NVIDIA-proprietary"
    if "gnu lesser general public license" in low or "gnu library general public license" in low:
        return "LGPL-2.1-or-later"
    if "gnu general public license" in low:
        if "gcc runtime library exception" in low:
            return "GPL-3.0-or-later WITH GCC-exception-3.1"
        if "linux-syscall-note" in low:
            return "GPL-2.0 WITH Linux-syscall-note"
        return "GPL"
    if "licensed under the apache license" in low or "apache license, version 2.0" in low:
        return "Apache-2.0"
    if "permission is hereby granted, free of charge" in low:
        return "MIT"
    if "redistribution and use in source and binary forms" in low:
        return "BSD-3-Clause"
    if "permission to use, copy, modify, and/or distribute this software" in low:
        return "ISC"
    if "permission to use, copy, modify, distribute, and sell this software" in low:
        return "X11"
    if "boost software license" in low:
        return "BSL-1.0"
    return None


# Debian packages whose copyright file is free text, by what ships in /usr/include.
DEB_KNOWN = [
    (re.compile(r"^linux-libc-dev"), "GPL-2.0 WITH Linux-syscall-note"),
    (re.compile(r"^libc6-dev|^libc-dev-bin|^libc6$"), "LGPL-2.1-or-later"),
    (re.compile(r"^libstdc\+\+-\d+-dev|^libgcc-\d+-dev|^gcc-\d+"), "GPL-3.0-or-later WITH GCC-exception-3.1"),
    (re.compile(r"^libpython3[\d.]*-dev"), "PSF-2.0"),
]
DEB_NAMES = {"expat": "MIT", "gpl-2": "GPL", "gpl-2+": "GPL", "gpl-3": "GPL", "gpl-3+": "GPL",
             "lgpl-2.1": "LGPL-2.1", "lgpl-2.1+": "LGPL-2.1+", "lgpl-2+": "LGPL-2.1+", "lgpl-3+": "LGPL-3.0+",
             "bsd-3-clause": "BSD-3-Clause", "bsd-2-clause": "BSD-2-Clause", "zlib": "Zlib", "isc": "ISC",
             "mit": "MIT", "x11": "X11", "apache-2.0": "Apache-2.0", "public-domain": "public domain",
             "boost-1.0": "BSL-1.0", "bsl-1.0": "BSL-1.0", "psf-2": "PSF-2.0", "curl": "curl"}


def deb_owner_map():
    owner = {}
    d = "/var/lib/dpkg/info"
    if not os.path.isdir(d):
        return owner
    for fn in os.listdir(d):
        if not fn.endswith(".list"):
            continue
        pkg = fn[:-5].split(":")[0]
        try:
            with open(os.path.join(d, fn), encoding="utf-8", errors="replace") as f:
                for line in f:
                    p = line.rstrip("\n")
                    if p.startswith("/usr/include/"):
                        owner[p] = pkg
        except OSError:
            pass
    return owner


def deb_license(pkg, cache={}):
    if pkg in cache:
        return cache[pkg]
    lic = ""
    for rx, name in DEB_KNOWN:
        if rx.search(pkg):
            lic = name
            break
    if not lic:
        path = f"/usr/share/doc/{pkg}/copyright"
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(200_000)
        except OSError:
            text = ""
        if text.startswith("Format:"):
            # DEP-5: the License of the "Files: *" stanza covers the package's own files.
            for stanza in re.split(r"\n\s*\n", text):
                if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
                    m = re.search(r"^License:\s*(.+)$", stanza, re.M)
                    if m:
                        raw = m.group(1).strip()
                        alts = [DEB_NAMES.get(a.strip().lower(), a.strip()) for a in re.split(r"\s+or\s+", raw)]
                        lic = " OR ".join(alts)
                    break
        elif text:
            lic = license_from_text(text) or ""
    cache[pkg] = lic
    return lic


# ---------------------------------------------------------------- enumeration

def enumerate_sources(js_tar):
    """Returns a list of (lang, source, license, path_on_disk or tar member, display path)."""
    items = []
    sources = {}

    def add_source(name, lic, kind):
        if name not in sources:
            sources[name] = {"license": lic, "class": classify_spdx(lic) if lic else "excluded", "kind": kind}
        return sources[name]

    # Python distributions.
    import importlib.metadata as md
    seen_files = set()
    sp = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    for dist in md.distributions(path=sp):
        name = dist.metadata.get("Name") or "unknown"
        lic = dist_license(dist)
        src = add_source(f"pypi:{name}", lic, "python-dist")
        src["version"] = dist.version
        for f in dist.files or []:
            rel = str(f)
            lang = lang_of(rel)
            if not lang or rel.startswith("..") or ".dist-info/" in rel:
                continue
            full = os.path.realpath(str(dist.locate_file(f)))
            if full in seen_files or not os.path.isfile(full):
                continue
            seen_files.add(full)
            items.append((lang, f"pypi:{name}", full, rel))
    # Python standard library.
    stdlib = sysconfig.get_paths()["stdlib"]
    add_source("python-stdlib", "PSF-2.0", "python-stdlib")
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__")]
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            if lang_of(fn) == "python" and full not in seen_files:
                seen_files.add(full)
                items.append(("python", "python-stdlib", full, "python/" + os.path.relpath(full, stdlib)))
    # /usr/include, by owning Debian package.
    owner = deb_owner_map()
    for dirpath, dirnames, filenames in os.walk("/usr/include"):
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            lang = lang_of(full)
            if not lang or lang != "cpp" or not os.path.isfile(full):
                continue
            real = os.path.realpath(full)
            if real in seen_files:
                continue
            seen_files.add(real)
            pkg = owner.get(full, "")
            name = f"deb:{pkg}" if pkg else "usr-include:unowned"
            add_source(name, deb_license(pkg) if pkg else "", "debian")
            items.append(("cpp", name, real, full.lstrip("/")))
    # CUDA toolkit headers: per-file license only.
    cuda_inc = None
    for c in ("/usr/local/cuda/include", os.environ.get("CUDA_HOME", "") + "/include"):
        if c and os.path.isdir(c):
            cuda_inc = os.path.realpath(c)
            break
    if cuda_inc:
        add_source("cuda-toolkit-include", "per-file", "cuda")
        for dirpath, dirnames, filenames in os.walk(cuda_inc):
            for fn in filenames:
                full = os.path.join(dirpath, fn)
                real = os.path.realpath(full)
                if lang_of(full) == "cpp" and real not in seen_files and os.path.isfile(real):
                    seen_files.add(real)
                    items.append(("cpp", "cuda-toolkit-include", real, "cuda/include/" + os.path.relpath(full, cuda_inc)))
    # JS/TS from the carried tarball.
    if js_tar and os.path.exists(js_tar):
        with tarfile.open(js_tar, "r:xz") as tar:
            man = json.load(tar.extractfile("js/MANIFEST.json"))
        for p in man["packages"]:
            if p["files"]:
                s = add_source(f"npm:{p['name']}", p["license"], "npm")
                s["version"] = p["version"]
        items.append(("js-tar", js_tar, None, None))
    return items, sources


def read_one(item):
    """Worker: reads and filters one file. Returns (lang, source, path, text, reason, file_license)."""
    lang, source, full, rel = item
    try:
        with open(full, "rb") as f:
            raw = f.read(2_000_000)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return (lang, source, rel, None, "not_utf8", None)
    text = text.replace("\r\n", "\n")
    reason = reject_reason(text, rel)
    file_lic = license_from_text(text[:6000]) if lang == "cpp" or source == "cuda-toolkit-include" else None
    return (lang, source, rel, None if reason else text, reason, file_lic)


def read_chunk(items):
    return [read_one(it) for it in items]


def license_decision(source_info, file_lic, source):
    """Final license and class for one file: a file's own license text overrides its
    package's for C/C++; CUDA toolkit headers are kept only with their own permissive text."""
    if source == "cuda-toolkit-include":
        lic = file_lic or "NVIDIA CUDA EULA (no permissive notice in file)"
        return lic, classify_spdx(file_lic) if file_lic else "excluded"
    if file_lic:
        cls = classify_spdx(file_lic)
        if file_lic in ("GPL", "NVIDIA-proprietary"):
            return file_lic, "excluded"
        if cls != "excluded":
            return file_lic, cls
    return source_info["license"], source_info["class"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--js", default="")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 4)
    ap.add_argument("--heldout-bytes", type=int, default=2_600_000, help="per language")
    ap.add_argument("--cap-python", type=int, default=500_000_000)
    ap.add_argument("--cap-cpp", type=int, default=400_000_000)
    ap.add_argument("--cap-js", type=int, default=400_000_000)
    ap.add_argument("--cap-package", type=int, default=40_000_000)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()
    items, sources = enumerate_sources(args.js)
    file_items = [it for it in items if it[0] != "js-tar"]
    print(f"prep: {len(file_items)} candidate files from {len(sources)} sources ({time.time()-t0:.0f}s)", flush=True)

    results = []
    chunks = [file_items[i:i + 500] for i in range(0, len(file_items), 500)]
    with ProcessPoolExecutor(args.workers) as ex:
        for r in ex.map(read_chunk, chunks):
            results.extend(r)
    for it in items:
        if it[0] == "js-tar":
            with tarfile.open(it[1], "r:xz") as tar:
                man = json.load(tar.extractfile("js/MANIFEST.json"))
                lic_of = {p["name"]: p for p in man["packages"]}
                for m in tar:
                    if not m.isfile() or m.name == "js/MANIFEST.json":
                        continue
                    text = tar.extractfile(m).read().decode("utf-8").replace("\r\n", "\n")
                    rest = m.name[3:]
                    # npm names may be scoped (@scope/name)
                    parts = rest.split("/")
                    pkg = "/".join(parts[:2]) if parts[0].startswith("@") else parts[0]
                    reason = reject_reason(text, rest)
                    results.append(("js", f"npm:{pkg}", rest, None if reason else text, reason, None))
    print(f"prep: read {len(results)} files ({time.time()-t0:.0f}s)", flush=True)

    # Deterministic order, then dedup, licenses and caps.
    results.sort(key=lambda r: (r[0], r[1], r[2]))
    stats = defaultdict(lambda: defaultdict(int))
    seen_e, seen_n = set(), set()
    kept = []
    file_licenses = defaultdict(lambda: defaultdict(int))
    pkg_bytes = defaultdict(int)
    for lang, source, rel, text, reason, file_lic in results:
        s = stats[source]
        if text is None:
            s["drop_" + reason] += 1
            continue
        lic, cls = license_decision(sources[source], file_lic, source)
        if cls == "excluded":
            s["drop_license"] += 1
            file_licenses[source]["excluded: " + lic] += 1
            continue
        ek, nk = exact_key(text), near_key(text)
        if ek in seen_e:
            s["drop_exact_dup"] += 1
            continue
        if nk in seen_n:
            s["drop_near_dup"] += 1
            continue
        seen_e.add(ek)
        seen_n.add(nk)
        file_licenses[source][lic] += 1
        kept.append((lang, source, rel, text, lic, cls, nk))

    # Held-out split: per language, files of 1-100 KB in order of a salted content hash until
    # the target size is reached. Whole files; never seen in training.
    heldout = set()
    by_lang = defaultdict(list)
    for i, k in enumerate(kept):
        by_lang[k[0]].append(i)
    held_stats = {}
    for lang, idx in by_lang.items():
        cand = [i for i in idx if 1000 <= len(kept[i][3]) <= 100_000]
        cand.sort(key=lambda i: hashlib.sha1(("heldout:" + kept[i][6]).encode()).hexdigest())
        total = 0
        for i in cand:
            if total >= args.heldout_bytes:
                break
            heldout.add(i)
            total += len(kept[i][3].encode())
        held_stats[lang] = {"files": sum(1 for i in idx if i in heldout), "bytes": total}

    caps = {"python": args.cap_python, "cpp": args.cap_cpp, "js": args.cap_js}
    lang_bytes = defaultdict(int)
    train = []
    # Caps pick files in hash order, so a capped language is a uniform sample.
    order = sorted((i for i in range(len(kept)) if i not in heldout),
                   key=lambda i: hashlib.sha1(("train:" + kept[i][6]).encode()).hexdigest())
    for i in order:
        lang, source, rel, text, lic, cls, nk = kept[i]
        n = len(text.encode())
        if lang_bytes[lang] + n > caps[lang] or pkg_bytes[source] + n > args.cap_package:
            stats[source]["drop_cap"] += 1
            continue
        lang_bytes[lang] += n
        pkg_bytes[source] += n
        stats[source]["train_files"] += 1
        stats[source]["train_bytes"] += n
        train.append((lang, rel, text, nk))
    for i in heldout:
        stats[kept[i][1]]["heldout_files"] += 1
        stats[kept[i][1]]["heldout_bytes"] += len(kept[i][3].encode())
    train.sort(key=lambda t: hashlib.sha1(("order:" + t[3]).encode()).hexdigest())
    train = [t[:3] for t in train]

    with open(os.path.join(args.work, "train_docs.pkl"), "wb") as f:
        pickle.dump(train, f, protocol=pickle.HIGHEST_PROTOCOL)
    # Held-out files, with provenance, as one tar.xz that comes back for the engine's eval.
    man = []
    with tarfile.open(os.path.join(args.work, "heldout.tar.xz"), "w:xz") as tar:
        for i in sorted(heldout, key=lambda i: (kept[i][0], kept[i][1], kept[i][2])):
            lang, source, rel, text, lic, cls, nk = kept[i]
            name = f"heldout/{lang}/{len(man):05d}_" + re.sub(r"[^A-Za-z0-9._-]+", "_", rel)[-80:]
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            man.append({"file": name, "lang": lang, "source": source, "path": rel, "license": lic,
                        "license_class": cls, "bytes": len(data), "sha1": exact_key(text)})
        data = json.dumps(man, indent=1).encode()
        info = tarfile.TarInfo("heldout/MANIFEST.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    # Plain held-out text per language for validation inside training.
    for lang in by_lang:
        with open(os.path.join(args.work, f"heldout_{lang}.pkl"), "wb") as f:
            pickle.dump([(kept[i][2], kept[i][3]) for i in sorted(heldout) if kept[i][0] == lang], f)

    out = {"sources": {}, "languages": {}, "heldout": held_stats}
    for name, info in sorted(sources.items()):
        st = dict(stats.get(name, {}))
        if not st:
            continue
        out["sources"][name] = dict(info, **st, file_licenses=dict(file_licenses.get(name, {})))
    for lang in ("python", "cpp", "js"):
        out["languages"][lang] = {"train_files": sum(1 for t in train if t[0] == lang), "train_bytes": lang_bytes[lang]}
    with open(os.path.join(args.work, "sources.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    print(f"prep: train {len(train)} files, bytes by language {dict(lang_bytes)}; held-out {held_stats} ({time.time()-t0:.0f}s)")
    ex = defaultdict(int)
    for name, st in out["sources"].items():
        if st.get("drop_license"):
            ex[f"{name} [{st['license']}]"] += st["drop_license"]
    print("prep: excluded by license (files):", dict(sorted(ex.items(), key=lambda kv: -kv[1])[:40]))


if __name__ == "__main__":
    main()
