"""GGUF v3 writer for Endless's converter, fixtures and benchmark models.

Metadata needs only the standard library; tensors need numpy (imported on first use so that
vocab-only files can be written where numpy is missing). Tensors are given in PyTorch's
[out, in] order and stored with ne reversed (ne[0] = in, the contiguous dimension), the way
ggml lays them out. Quantizers follow ggml's reference block semantics bit for bit:
  Q8_0: d = amax / 127, q = roundf(x / d) (round half away from zero), d stored as f16;
  Q4_0: the value with the largest |x| (first one on ties) maps to -8: d = max / -8,
        q = min(15, trunc(x / d + 8.5)), low nibbles hold values 0..15, high nibbles 16..31.

    w = GGUFWriter(path, arch)
    w.add_u32(f"{arch}.block_count", 2); w.add_array("tokenizer.ggml.tokens", toks, GGUF_STRING)
    w.add_tensor("token_embd.weight", emb)           # float32 numpy [rows, cols]
    w.add_tensor_lazy(name, shape, "Q8_0", chunks)   # chunks() yields float32 row blocks
    w.write()
"""
import struct

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# metadata value types
GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL = range(8)
GGUF_STRING, GGUF_ARRAY, GGUF_U64, GGUF_I64, GGUF_F64 = 8, 9, 10, 11, 12

_SCALAR_FMT = {
    GGUF_U8: "<B", GGUF_I8: "<b", GGUF_U16: "<H", GGUF_I16: "<h", GGUF_U32: "<I",
    GGUF_I32: "<i", GGUF_F32: "<f", GGUF_BOOL: "<?", GGUF_U64: "<Q", GGUF_I64: "<q",
    GGUF_F64: "<d",
}

# ggml tensor types this writer can produce: id, values per block, bytes per block
GGML_TYPES = {
    "F32": (0, 1, 4),
    "F16": (1, 1, 2),
    "Q4_0": (2, 32, 18),
    "Q8_0": (8, 32, 34),
    "BF16": (30, 1, 2),
}

# general.file_type values (llama.cpp's LLAMA_FTYPE_*)
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "BF16": 32}


class GGUFError(Exception):
    pass


def _np():
    import numpy
    return numpy


# ---- scalar conversions and quantizers (numpy, float32 in) -------------------------------

def to_f16(x):
    np = _np()
    return np.ascontiguousarray(x, dtype=np.float32).astype(np.float16)  # round to nearest even


def to_bf16(x):
    """float32 -> bf16 bits (uint16), round to nearest even, NaN kept quiet (as ggml does)."""
    np = _np()
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint16)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_to_f32(bits):
    np = _np()
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def _roundf(v):
    """C roundf: half away from zero. floor(|v| + 0.5) would round 0.49999997 up in float32,
    so the fraction is doubled instead (exact in binary floating point)."""
    np = _np()
    a = np.abs(v)
    f = np.floor(a)
    return np.sign(v) * (f + np.floor(np.float32(2) * (a - f)))


def quantize_q8_0(x):
    """float32 array whose last dim is a multiple of 32 -> bytes of Q8_0 blocks, row-major."""
    np = _np()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % 32:
        raise GGUFError(f"Q8_0 needs the row length to be a multiple of 32, got {x.shape[-1]}")
    b = x.reshape(-1, 32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = _roundf((b * inv).astype(np.float32)).astype(np.int8)
    out = np.empty((b.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def dequantize_q8_0(raw, n):
    np = _np()
    blk = np.frombuffer(raw, dtype=np.uint8, count=(n // 32) * 34).reshape(-1, 34)
    d = blk[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = blk[:, 2:].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


def quantize_q4_0(x):
    np = _np()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % 32:
        raise GGUFError(f"Q4_0 needs the row length to be a multiple of 32, got {x.shape[-1]}")
    b = x.reshape(-1, 32)
    idx = np.argmax(np.abs(b), axis=1)  # first maximum, as ggml's strict '<' scan
    mx = b[np.arange(b.shape[0]), idx][:, None]
    d = (mx / np.float32(-8)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    v = (b * inv).astype(np.float32) + np.float32(8.5)
    q = np.minimum(np.trunc(v), 15).astype(np.uint8)  # v >= 0.5 here, so trunc == (int8_t) cast
    out = np.empty((b.shape[0], 18), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def dequantize_q4_0(raw, n):
    np = _np()
    blk = np.frombuffer(raw, dtype=np.uint8, count=(n // 32) * 18).reshape(-1, 18)
    d = blk[:, 0:2].copy().view(np.float16).astype(np.float32)
    qs = blk[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8
    return (q * d).reshape(-1)


def encode_tensor(x, ttype):
    """float32 numpy array -> raw bytes in ggml type ttype."""
    np = _np()
    if ttype == "F32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if ttype == "F16":
        return to_f16(x).astype("<f2").tobytes()
    if ttype == "BF16":
        return to_bf16(x).astype("<u2").tobytes()
    if ttype == "Q8_0":
        return quantize_q8_0(x)
    if ttype == "Q4_0":
        return quantize_q4_0(x)
    raise GGUFError(f"unsupported tensor type {ttype!r} (known: {', '.join(GGML_TYPES)})")


def tensor_nbytes(shape, ttype):
    _, blk, size = GGML_TYPES[ttype]
    n = 1
    for s in shape:
        n *= int(s)
    if shape and int(shape[-1]) % blk:
        raise GGUFError(f"{ttype} needs the innermost dimension to be a multiple of {blk}, got {shape[-1]}")
    return n // blk * size


# ---- the writer ---------------------------------------------------------------------------

class _Tensor:
    __slots__ = ("name", "shape", "ttype", "array", "chunks", "nbytes", "offset")


class GGUFWriter:
    def __init__(self, path, arch, alignment=DEFAULT_ALIGNMENT):
        self.path = path
        self.arch = arch
        self.alignment = int(alignment)
        self.kv = []  # (key, type, value, elem_type)
        self.keys = set()
        self.tensors = []
        self.tensor_names = set()
        self.add_string("general.architecture", arch)
        if self.alignment <= 0 or self.alignment % 8:
            raise GGUFError(f"alignment must be a positive multiple of 8, got {alignment}")
        self.add_u32("general.alignment", self.alignment)  # always written: readers need not guess

    # metadata ---------------------------------------------------------------------------
    def _add(self, key, vtype, value, elem_type=None):
        if not isinstance(key, str) or not key:
            raise GGUFError(f"metadata key must be a non-empty string, got {key!r}")
        if key in self.keys:
            raise GGUFError(f"duplicate metadata key {key!r}")
        self.keys.add(key)
        self.kv.append((key, vtype, value, elem_type))

    def add_string(self, key, value):
        if not isinstance(value, (str, bytes)):
            raise GGUFError(f"{key}: expected a string, got {type(value).__name__}")
        self._add(key, GGUF_STRING, value)

    def add_u8(self, key, v): self._add(key, GGUF_U8, int(v))
    def add_i8(self, key, v): self._add(key, GGUF_I8, int(v))
    def add_u16(self, key, v): self._add(key, GGUF_U16, int(v))
    def add_i16(self, key, v): self._add(key, GGUF_I16, int(v))
    def add_u32(self, key, v): self._add(key, GGUF_U32, int(v))
    def add_i32(self, key, v): self._add(key, GGUF_I32, int(v))
    def add_u64(self, key, v): self._add(key, GGUF_U64, int(v))
    def add_i64(self, key, v): self._add(key, GGUF_I64, int(v))
    def add_f32(self, key, v): self._add(key, GGUF_F32, float(v))
    def add_f64(self, key, v): self._add(key, GGUF_F64, float(v))
    def add_bool(self, key, v): self._add(key, GGUF_BOOL, bool(v))

    def add_array(self, key, values, elem_type):
        if elem_type == GGUF_ARRAY:
            raise GGUFError(f"{key}: nested arrays are not supported")
        if elem_type != GGUF_STRING and elem_type not in _SCALAR_FMT:
            raise GGUFError(f"{key}: unknown element type {elem_type}")
        self._add(key, GGUF_ARRAY, list(values), elem_type)

    # tensors ----------------------------------------------------------------------------
    def _new_tensor(self, name, shape, ttype):
        if ttype not in GGML_TYPES:
            raise GGUFError(f"{name}: unsupported tensor type {ttype!r} (known: {', '.join(GGML_TYPES)})")
        if name in self.tensor_names:
            raise GGUFError(f"duplicate tensor name {name!r}")
        if len(name.encode()) >= 64:
            raise GGUFError(f"tensor name {name!r} is longer than ggml's 63 bytes")
        shape = tuple(int(s) for s in shape)
        if not 1 <= len(shape) <= 4 or any(s <= 0 for s in shape):
            raise GGUFError(f"{name}: bad shape {shape}")
        t = _Tensor()
        t.name, t.shape, t.ttype = name, shape, ttype
        t.nbytes = tensor_nbytes(shape, ttype)
        t.array = t.chunks = None
        self.tensor_names.add(name)
        self.tensors.append(t)
        return t

    def add_tensor(self, name, array, type="F32"):
        """array: float32-convertible numpy array in PyTorch order ([out, in] for matrices)."""
        np = _np()
        a = np.asarray(array)
        t = self._new_tensor(name, a.shape, type)
        t.array = a

    def add_tensor_lazy(self, name, shape, type, chunks):
        """chunks: a callable returning an iterator of float32 arrays that, concatenated along
        axis 0, form the tensor (each chunk a whole number of rows). Lets huge tensors be made
        and written piece by piece."""
        t = self._new_tensor(name, shape, type)
        t.chunks = chunks

    # output -----------------------------------------------------------------------------
    @staticmethod
    def _pack_str(s):
        b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        return struct.pack("<Q", len(b)) + b

    def _pack_value(self, vtype, value, elem_type):
        if vtype == GGUF_STRING:
            return self._pack_str(value)
        if vtype == GGUF_ARRAY:
            parts = [struct.pack("<IQ", elem_type, len(value))]
            if elem_type == GGUF_STRING:
                parts.extend(self._pack_str(v) for v in value)
            else:
                fmt = _SCALAR_FMT[elem_type]
                try:
                    parts.append(struct.pack("<%d%s" % (len(value), fmt[1]), *value))
                except struct.error as e:
                    raise GGUFError(f"array value out of range for its type: {e}")
            return b"".join(parts)
        try:
            return struct.pack(_SCALAR_FMT[vtype], value)
        except struct.error as e:
            raise GGUFError(f"value {value!r} does not fit type {vtype}: {e}")

    def _pad(self, n):
        return (-n) % self.alignment

    def write(self):
        head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, vtype, value, elem_type in self.kv:
            try:
                head.append(self._pack_str(key) + struct.pack("<I", vtype) + self._pack_value(vtype, value, elem_type))
            except GGUFError as e:
                raise GGUFError(f"{key}: {e}")
        offset = 0
        for t in self.tensors:
            t.offset = offset
            offset += t.nbytes + self._pad(t.nbytes)
            ne = list(reversed(t.shape))
            head.append(self._pack_str(t.name) + struct.pack("<I", len(ne)) +
                        struct.pack("<%dQ" % len(ne), *ne) +
                        struct.pack("<IQ", GGML_TYPES[t.ttype][0], t.offset))
        header = b"".join(head)
        import os
        tmp = self.path + ".tmp"
        try:
            self._write_to(tmp, header)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        os.replace(tmp, self.path)
        return self.path

    def _write_to(self, tmp, header):
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(b"\0" * self._pad(len(header)))
            for t in self.tensors:
                written = 0
                if t.array is not None:
                    raw = encode_tensor(t.array, t.ttype)
                    f.write(raw)
                    written = len(raw)
                    t.array = None  # let the caller's memory go once written
                else:
                    for c in t.chunks():
                        raw = encode_tensor(c, t.ttype)
                        f.write(raw)
                        written += len(raw)
                if written != t.nbytes:
                    raise GGUFError(f"{t.name}: wrote {written} bytes, expected {t.nbytes}")
                f.write(b"\0" * self._pad(t.nbytes))
