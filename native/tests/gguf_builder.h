// A small in-memory GGUF writer for tests and the fuzzer's seed corpus. It produces valid GGUF
// v2/v3 bytes (header, metadata of every type, arrays, tensor infos, aligned tensor data) and has
// knobs to produce each malformation the reader must reject: raw magic/version/counts, raw value
// type ids and value bytes, raw tensor shapes, types and offsets. It does not use the reader's
// own tables, so a test cannot agree with a reader bug by construction.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace gguf_test {

// GGUF value type ids, spelled out here rather than taken from gguf.h (see above).
enum : uint32_t {
    T_U8 = 0, T_I8 = 1, T_U16 = 2, T_I16 = 3, T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7,
    T_STRING = 8, T_ARRAY = 9, T_U64 = 10, T_I64 = 11, T_F64 = 12,
};

// Values per block and bytes per block of the ggml types, from ggml's block definitions.
inline bool builder_type_size(uint32_t type, uint64_t *block, uint64_t *bytes) {
    struct row { uint32_t id; uint64_t block, bytes; };
    static const row rows[] = {
        {0, 1, 4}, {1, 1, 2}, {30, 1, 2}, {2, 32, 18}, {3, 32, 20}, {6, 32, 22}, {7, 32, 24},
        {8, 32, 34}, {9, 32, 36}, {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176},
        {14, 256, 210}, {15, 256, 292},
    };
    for (const row &r : rows) {
        if (r.id == type) { *block = r.block; *bytes = r.bytes; return true; }
    }
    return false;
}
inline size_t builder_nbytes(uint32_t type, const std::vector<uint64_t> &ne) {
    uint64_t block = 0, bytes = 0;
    if (!builder_type_size(type, &block, &bytes)) return 0;
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    return (size_t)(n / block * bytes);
}

inline void put_bytes(std::vector<uint8_t> &out, const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    out.insert(out.end(), b, b + n);
}
template <class T>
inline void put(std::vector<uint8_t> &out, T v) { put_bytes(out, &v, sizeof v); }
inline void put_str(std::vector<uint8_t> &out, const std::string &s) {
    put<uint64_t>(out, s.size());
    put_bytes(out, s.data(), s.size());
}

class gguf_builder {
public:
    struct tensor_spec {
        std::string name;
        uint32_t type = 0;
        std::vector<uint64_t> ne;
        std::vector<uint8_t> data;
        std::optional<uint64_t> offset;  // default: next aligned offset after the previous tensor
        std::optional<uint32_t> n_dims;  // default: ne.size()
    };
    struct kv_spec {
        std::string key;
        uint32_t type;
        std::vector<uint8_t> value;  // the bytes after the type id
    };

    std::string magic = "GGUF";
    uint32_t version = 3;
    size_t alignment = 32;  // layout; set_alignment() also writes general.alignment
    std::optional<uint64_t> n_tensors_override, n_kv_override;
    std::vector<kv_spec> kvs;
    std::vector<tensor_spec> tensors;

    // ---- metadata ----
    gguf_builder &raw_kv(const std::string &key, uint32_t type, std::vector<uint8_t> value) {
        kvs.push_back({key, type, std::move(value)});
        return *this;
    }
    template <class T>
    gguf_builder &scalar(const std::string &key, uint32_t type, T v) {
        std::vector<uint8_t> b;
        put(b, v);
        return raw_kv(key, type, b);
    }
    gguf_builder &u8(const std::string &k, uint8_t v) { return scalar(k, T_U8, v); }
    gguf_builder &i8(const std::string &k, int8_t v) { return scalar(k, T_I8, v); }
    gguf_builder &u16(const std::string &k, uint16_t v) { return scalar(k, T_U16, v); }
    gguf_builder &i16(const std::string &k, int16_t v) { return scalar(k, T_I16, v); }
    gguf_builder &u32(const std::string &k, uint32_t v) { return scalar(k, T_U32, v); }
    gguf_builder &i32(const std::string &k, int32_t v) { return scalar(k, T_I32, v); }
    gguf_builder &u64(const std::string &k, uint64_t v) { return scalar(k, T_U64, v); }
    gguf_builder &i64(const std::string &k, int64_t v) { return scalar(k, T_I64, v); }
    gguf_builder &f32(const std::string &k, float v) { return scalar(k, T_F32, v); }
    gguf_builder &f64(const std::string &k, double v) { return scalar(k, T_F64, v); }
    gguf_builder &boolean(const std::string &k, bool v) { return scalar(k, T_BOOL, (uint8_t)(v ? 1 : 0)); }
    gguf_builder &str(const std::string &k, const std::string &v) {
        std::vector<uint8_t> b;
        put_str(b, v);
        return raw_kv(k, T_STRING, b);
    }
    // A numeric array; T must match elem_type's width (uint8_t for bool).
    template <class T>
    gguf_builder &arr(const std::string &k, uint32_t elem_type, const std::vector<T> &v) {
        std::vector<uint8_t> b;
        put<uint32_t>(b, elem_type);
        put<uint64_t>(b, v.size());
        for (const T &x : v) put(b, x);
        return raw_kv(k, T_ARRAY, b);
    }
    gguf_builder &arr_str(const std::string &k, const std::vector<std::string> &v) {
        std::vector<uint8_t> b;
        put<uint32_t>(b, T_STRING);
        put<uint64_t>(b, v.size());
        for (const auto &s : v) put_str(b, s);
        return raw_kv(k, T_ARRAY, b);
    }
    gguf_builder &set_alignment(uint32_t a) {
        alignment = a;
        return u32("general.alignment", a);
    }

    // ---- tensors ----
    gguf_builder &tensor(const std::string &name, uint32_t type, std::vector<uint64_t> ne, std::vector<uint8_t> data) {
        tensor_spec t;
        t.name = name;
        t.type = type;
        t.ne = std::move(ne);
        t.data = std::move(data);
        tensors.push_back(std::move(t));
        return *this;
    }
    // Tensor data filled with a pattern derived from seed, sized from the type and shape.
    gguf_builder &tensor(const std::string &name, uint32_t type, std::vector<uint64_t> ne, uint32_t seed = 1) {
        std::vector<uint8_t> data(builder_nbytes(type, ne));
        uint32_t x = seed * 2654435761u + 12345u;
        for (auto &b : data) { x = x * 1103515245u + 12345u; b = (uint8_t)(x >> 16); }
        return tensor(name, type, std::move(ne), std::move(data));
    }
    tensor_spec &last_tensor() { return tensors.back(); }

    // Where each tensor's data lands, relative to the data section.
    std::vector<uint64_t> tensor_offsets() const {
        std::vector<uint64_t> offs;
        uint64_t cursor = 0;
        for (const auto &t : tensors) {
            uint64_t off = t.offset ? *t.offset : align_up(cursor);
            offs.push_back(off);
            if (!t.offset || off + t.data.size() > cursor) cursor = off + t.data.size();
        }
        return offs;
    }

    // The file bytes; *data_start gets the offset of the data section (the aligned end of the
    // tensor infos) when asked for.
    std::vector<uint8_t> build(size_t *data_start = nullptr) const {
        std::vector<uint8_t> out;
        put_bytes(out, magic.data(), magic.size());
        put<uint32_t>(out, version);
        put<uint64_t>(out, n_tensors_override ? *n_tensors_override : tensors.size());
        put<uint64_t>(out, n_kv_override ? *n_kv_override : kvs.size());
        for (const auto &kv : kvs) {
            put_str(out, kv.key);
            put<uint32_t>(out, kv.type);
            put_bytes(out, kv.value.data(), kv.value.size());
        }
        const std::vector<uint64_t> offs = tensor_offsets();
        for (size_t i = 0; i < tensors.size(); i++) {
            const auto &t = tensors[i];
            put_str(out, t.name);
            put<uint32_t>(out, t.n_dims ? *t.n_dims : (uint32_t)t.ne.size());
            for (uint64_t d : t.ne) put<uint64_t>(out, d);
            put<uint32_t>(out, t.type);
            put<uint64_t>(out, offs[i]);
        }
        if (data_start) *data_start = (size_t)align_up(out.size());
        if (tensors.empty()) return out;
        out.resize(align_up(out.size()), 0);
        const size_t base = out.size();
        for (size_t i = 0; i < tensors.size(); i++) {
            const auto &t = tensors[i];
            if (t.data.empty() || offs[i] > (uint64_t)1 << 30) continue;  // absurd offsets: no data
            if (out.size() < base + offs[i] + t.data.size()) out.resize(base + offs[i] + t.data.size(), 0);
            std::memcpy(out.data() + base + offs[i], t.data.data(), t.data.size());
        }
        return out;
    }

private:
    uint64_t align_up(uint64_t x) const { return alignment > 1 ? (x + alignment - 1) / alignment * alignment : x; }
};

}  // namespace gguf_test
