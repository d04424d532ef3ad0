#!/usr/bin/env python3
"""Writes a copy of an F32 GGUF with its matrices in another type (F16, BF16, Q8_0), the way
tools/convert_hf.py would have written them from the same weights: the same metadata in the same
order (general.file_type changed), 1-D tensors kept in F32, 2-D tensors re-encoded. The test
fixtures keep only the F32 files in git and derive the others with this (test/engine-fixtures.ts);
tools/test_tools.py checks the result is byte-identical to what the converter writes.

    python3 tools/requantize_gguf.py in-f32.gguf out.gguf --outtype f16|bf16|q8_0
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_reader import GGUFReader  # noqa: E402
from gguf_writer import FILE_TYPES, GGUFError, GGUFWriter  # noqa: E402

OUTTYPES = {"f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}


def requantize(src, out, outtype):
    if outtype not in OUTTYPES:
        raise GGUFError(f"unknown --outtype {outtype!r} (known: {', '.join(OUTTYPES)})")
    mtype = OUTTYPES[outtype]
    r = GGUFReader(src)
    if r.metadata.get("general.file_type") != FILE_TYPES["F32"]:
        raise GGUFError(f"{src}: not an F32 GGUF (general.file_type {r.metadata.get('general.file_type')})")
    w = GGUFWriter(out, r.metadata["general.architecture"], r.alignment)
    for key, (vtype, elem_type) in r.metadata_types.items():
        if key in ("general.architecture", "general.alignment"):
            continue  # the writer puts these first, as it did for the source
        value = FILE_TYPES[mtype] if key == "general.file_type" else r.metadata[key]
        w._add(key, vtype, value, elem_type)
    for name, t in r.tensors.items():
        if t.type != "F32":
            raise GGUFError(f"{src}: tensor {name} is {t.type}, expected F32")
        w.add_tensor(name, r.tensor(name), mtype if len(t.ne) == 2 else "F32")
    w.write()


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Re-encode the matrices of an F32 GGUF.")
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--outtype", required=True, choices=list(OUTTYPES))
    a = ap.parse_args(argv)
    try:
        requantize(a.src, a.out, a.outtype)
    except (GGUFError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
