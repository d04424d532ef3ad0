"""A small GGUF (v2/v3) reader for inspecting files and for the converter's tests.

Metadata parsing is pure standard library; tensor access (numpy, memory-mapped) dequantizes
F32, F16, BF16, Q8_0 and Q4_0 to float32 in PyTorch order ([out, in] for matrices).

    python3 tools/gguf_reader.py FILE [--tensors] [--all-values]
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gguf_writer import (GGUF_ARRAY, GGUF_STRING, _SCALAR_FMT, GGML_TYPES, GGUFError,
                         bf16_to_f32, dequantize_q4_0, dequantize_q8_0)

_TYPE_NAMES = {v[0]: k for k, v in GGML_TYPES.items()}
# block size and bytes for types we can only describe (sizes let us check file bounds)
_OTHER_TYPES = {3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 9: ("Q8_1", 32, 36),
                10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
                13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292)}


def type_info(tid):
    if tid in _TYPE_NAMES:
        name = _TYPE_NAMES[tid]
        return name, GGML_TYPES[name][1], GGML_TYPES[name][2]
    if tid in _OTHER_TYPES:
        return _OTHER_TYPES[tid]
    raise GGUFError(f"unknown ggml tensor type {tid}")


class TensorInfo:
    def __init__(self, name, ne, tid, offset):
        self.name = name
        self.ne = ne                       # ggml order: ne[0] innermost
        self.shape = tuple(reversed(ne))   # PyTorch order
        self.type_id = tid
        self.type, blk, size = type_info(tid)
        n = 1
        for d in ne:
            n *= d
        self.n_elements = n
        if ne and ne[0] % blk:
            raise GGUFError(f"tensor {name}: ne[0]={ne[0]} is not a multiple of {self.type}'s block {blk}")
        self.nbytes = n // blk * size
        self.offset = offset  # from the data start


class GGUFReader:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._buf = f.read() if not _big(path) else None
        if self._buf is None:
            import mmap
            self._file = open(path, "rb")
            self._buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self._pos = 0
        self.metadata = {}        # key -> python value (lists for arrays)
        self.metadata_types = {}  # key -> (type, elem_type or None)
        self.tensors = {}         # name -> TensorInfo, in file order
        self._parse()

    # primitive reads with bounds checks ---------------------------------------------------
    def _take(self, n, what):
        if n < 0 or self._pos + n > len(self._buf):
            raise GGUFError(f"{self.path}: truncated while reading {what} at byte {self._pos}")
        b = self._buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _unpack(self, fmt, what):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt), what))[0]

    def _str(self, what):
        n = self._unpack("<Q", what + " length")
        if n > len(self._buf):
            raise GGUFError(f"{self.path}: {what} length {n} is larger than the file")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw  # token texts may be arbitrary bytes

    def _value(self, vtype, what):
        if vtype == GGUF_STRING:
            return self._str(what)
        if vtype in _SCALAR_FMT:
            return self._unpack(_SCALAR_FMT[vtype], what)
        raise GGUFError(f"{self.path}: {what}: unknown value type {vtype}")

    def _parse(self):
        magic = bytes(self._take(4, "magic"))
        if magic != b"GGUF":
            raise GGUFError(f"{self.path}: not a GGUF file (magic {magic!r})")
        self.version = self._unpack("<I", "version")
        if self.version not in (2, 3):
            raise GGUFError(f"{self.path}: unsupported GGUF version {self.version}")
        n_tensors = self._unpack("<Q", "tensor count")
        n_kv = self._unpack("<Q", "metadata count")
        if n_tensors > len(self._buf) // 8 or n_kv > len(self._buf) // 8:
            raise GGUFError(f"{self.path}: absurd counts ({n_tensors} tensors, {n_kv} keys)")
        for _ in range(n_kv):
            key = self._str("metadata key")
            vtype = self._unpack("<I", f"type of {key}")
            if vtype == GGUF_ARRAY:
                et = self._unpack("<I", f"element type of {key}")
                n = self._unpack("<Q", f"length of {key}")
                if n > len(self._buf):
                    raise GGUFError(f"{self.path}: {key}: array length {n} is larger than the file")
                if et in _SCALAR_FMT:
                    fmt = _SCALAR_FMT[et]
                    raw = self._take(n * struct.calcsize(fmt), key)
                    val = list(struct.unpack("<%d%s" % (n, fmt[1]), raw))
                else:
                    val = [self._value(et, key) for _ in range(n)]
                self.metadata_types[key] = (GGUF_ARRAY, et)
            else:
                val = self._value(vtype, key)
                self.metadata_types[key] = (vtype, None)
            if key in self.metadata:
                raise GGUFError(f"{self.path}: duplicate metadata key {key}")
            self.metadata[key] = val
        for _ in range(n_tensors):
            name = self._str("tensor name")
            nd = self._unpack("<I", f"dims of {name}")
            if not 1 <= nd <= 4:
                raise GGUFError(f"{self.path}: tensor {name} has {nd} dimensions")
            ne = [self._unpack("<Q", f"shape of {name}") for _ in range(nd)]
            tid = self._unpack("<I", f"type of {name}")
            off = self._unpack("<Q", f"offset of {name}")
            if name in self.tensors:
                raise GGUFError(f"{self.path}: duplicate tensor {name}")
            self.tensors[name] = TensorInfo(name, ne, tid, off)
        self.alignment = int(self.metadata.get("general.alignment", 32))
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            raise GGUFError(f"{self.path}: bad general.alignment {self.alignment}")
        self.data_start = self._pos + (-self._pos) % self.alignment
        for t in self.tensors.values():
            if t.offset % self.alignment:
                raise GGUFError(f"{self.path}: tensor {t.name} offset {t.offset} is not aligned")
            if self.data_start + t.offset + t.nbytes > len(self._buf):
                raise GGUFError(f"{self.path}: tensor {t.name} extends past the end of the file")

    # tensors --------------------------------------------------------------------------------
    def raw(self, name):
        t = self.tensors[name]
        s = self.data_start + t.offset
        return self._buf[s:s + t.nbytes]

    def tensor(self, name):
        """float32 numpy array in PyTorch order."""
        import numpy as np
        if name not in self.tensors:
            raise GGUFError(f"{self.path}: no tensor {name}")
        t = self.tensors[name]
        raw = self.raw(name)
        if t.type == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif t.type == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t.type == "BF16":
            a = bf16_to_f32(np.frombuffer(raw, dtype="<u2"))
        elif t.type == "Q8_0":
            a = dequantize_q8_0(raw, t.n_elements)
        elif t.type == "Q4_0":
            a = dequantize_q4_0(raw, t.n_elements)
        else:
            raise GGUFError(f"{t.name}: cannot dequantize {t.type}")
        return a.reshape(t.shape)


def _big(path):
    import os
    return os.path.getsize(path) > (256 << 20)


def _short(v, all_values):
    if isinstance(v, list):
        if all_values or len(v) <= 8:
            return repr(v)
        return f"[{len(v)} items] " + repr(v[:6])[:-1] + ", ...]"
    s = repr(v)
    return s if all_values or len(s) < 200 else s[:200] + "..."


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Print a GGUF file's metadata and tensors.")
    ap.add_argument("file")
    ap.add_argument("--tensors", action="store_true", help="list every tensor")
    ap.add_argument("--all-values", action="store_true", help="print whole arrays and strings")
    a = ap.parse_args(argv)
    try:
        r = GGUFReader(a.file)
    except (GGUFError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"GGUF v{r.version}, {len(r.metadata)} keys, {len(r.tensors)} tensors, data at {r.data_start}")
    for k, v in r.metadata.items():
        print(f"  {k} = {_short(v, a.all_values)}")
    if a.tensors:
        for t in r.tensors.values():
            print(f"  {t.name:32s} {t.type:5s} {list(t.shape)} @{t.offset}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
