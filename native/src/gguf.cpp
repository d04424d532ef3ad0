// GGUF v2/v3 reader (see gguf.h). The file is mapped read-only and parsed in one pass through a
// bounds-checked cursor: every read first checks that its bytes exist, and every count read from
// the file is checked against the bytes left before anything is allocated for it, so a hostile
// file can neither read past the mapping nor make us allocate gigabytes. Each error names the
// file, the problem, the key or tensor concerned and the offset where it was found.
#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <system_error>

#include "error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader hands out little-endian file bytes as host values: it needs a little-endian host"
#endif

namespace endless {

const char *gguf_type_name(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: return "u8";
    case GGUF_TYPE_INT8: return "i8";
    case GGUF_TYPE_UINT16: return "u16";
    case GGUF_TYPE_INT16: return "i16";
    case GGUF_TYPE_UINT32: return "u32";
    case GGUF_TYPE_INT32: return "i32";
    case GGUF_TYPE_FLOAT32: return "f32";
    case GGUF_TYPE_BOOL: return "bool";
    case GGUF_TYPE_STRING: return "string";
    case GGUF_TYPE_ARRAY: return "array";
    case GGUF_TYPE_UINT64: return "u64";
    case GGUF_TYPE_INT64: return "i64";
    case GGUF_TYPE_FLOAT64: return "f64";
    default: return "unknown";
    }
}

namespace {

constexpr uint32_t gguf_max_dims = 4;
// Smallest possible encodings, used to reject counts that cannot fit in the bytes left.
constexpr size_t gguf_min_kv_bytes = 8 + 4 + 1;              // key length, type, 1-byte value
constexpr size_t gguf_min_tensor_info_bytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, ne[0], type, offset

// Bytes of one element of a fixed-size type; 0 for strings, arrays and invalid ids.
size_t gguf_type_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

bool gguf_type_valid(uint32_t type) { return type <= GGUF_TYPE_FLOAT64; }

bool gguf_type_is_integer(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16:
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64:
        return true;
    default: return false;
    }
}

// Names from the file may hold any bytes: quote them printable and bounded for error texts.
std::string gguf_quote(std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    std::string out = "'";
    const size_t limit = 120;
    for (size_t i = 0; i < s.size() && i < limit; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            out += (char)c;
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (s.size() > limit) out += "...";
    out += "'";
    return out;
}

std::string gguf_describe_type(const gguf_kv &kv) {
    if (kv.is_array()) return std::string("array of ") + gguf_type_name(kv.elem_type);
    return gguf_type_name(kv.type);
}

std::string gguf_shape_text(const uint64_t *ne, uint32_t n) {
    std::string s = "[";
    for (uint32_t d = 0; d < n; d++) s += (d ? ", " : "") + std::to_string(ne[d]);
    return s + "]";
}

std::string gguf_errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// A cursor over the file bytes. Nothing is read without a bounds check first; the `what`
// callbacks build the description of the field only when an error needs it.
class gguf_cursor {
public:
    gguf_cursor(const uint8_t *data, size_t size, const std::string &name) : data_(data), size_(size), name_(name) {}

    size_t pos() const { return pos_; }
    size_t left() const { return size_ - pos_; }

    [[noreturn]] void error(const std::string &msg, endless_status status = ENDLESS_ERR_FORMAT) const {
        fail(status, name_ + ": " + msg);
    }

    template <class what_fn>
    const uint8_t *take(size_t n, const what_fn &what) {
        if (n > left()) {
            error("truncated file: " + what() + " at offset " + std::to_string(pos_) + " needs " +
                  std::to_string(n) + " bytes, but the file ends at offset " + std::to_string(size_));
        }
        const uint8_t *p = data_ + pos_;
        pos_ += n;
        return p;
    }
    template <class what_fn>
    uint32_t u32(const what_fn &what) {
        uint32_t v;
        std::memcpy(&v, take(4, what), 4);
        return v;
    }
    template <class what_fn>
    uint64_t u64(const what_fn &what) {
        uint64_t v;
        std::memcpy(&v, take(8, what), 8);
        return v;
    }
    // A GGUF string: u64 byte length, then the bytes (no terminator).
    template <class what_fn>
    std::string_view str(const what_fn &what) {
        const size_t at = pos_;
        const uint64_t len = u64([&] { return "the length of " + what(); });
        if (len > left()) {
            error("truncated or corrupt file: " + what() + " at offset " + std::to_string(at) + " has length " +
                  std::to_string(len) + ", more than the " + std::to_string(left()) + " bytes left in the file");
        }
        const uint8_t *p = take((size_t)len, what);
        return std::string_view((const char *)p, (size_t)len);
    }

private:
    const uint8_t *data_;
    size_t size_;
    size_t pos_ = 0;
    const std::string &name_;
};

// Reads one value (scalar or array) of the given type into kv; kv.key is already set.
void gguf_read_value(gguf_cursor &cur, gguf_kv &kv, uint32_t type, size_t kv_at) {
    const std::string key = gguf_quote(kv.key);
    if (!gguf_type_valid(type)) {
        cur.error("key " + key + " at offset " + std::to_string(kv_at) + " has invalid value type " +
                  std::to_string(type) + " (GGUF value types are 0 to 12)");
    }
    kv.type = (gguf_type)type;
    uint32_t elem = type;
    uint64_t n = 1;
    if (type == GGUF_TYPE_ARRAY) {
        const size_t elem_at = cur.pos();
        elem = cur.u32([&] { return "the element type of array key " + key; });
        if (elem == GGUF_TYPE_ARRAY) {
            cur.error("key " + key + " at offset " + std::to_string(kv_at) +
                      " is an array of arrays, which this reader does not support", ENDLESS_ERR_UNSUPPORTED);
        }
        if (!gguf_type_valid(elem)) {
            cur.error("key " + key + " has invalid array element type " + std::to_string(elem) + " at offset " +
                      std::to_string(elem_at) + " (GGUF value types are 0 to 12)");
        }
        const size_t count_at = cur.pos();
        n = cur.u64([&] { return "the length of array key " + key; });
        // Every element takes at least min_bytes: a count beyond that is absurd, and checking it
        // here keeps a hostile count from driving the allocation below.
        const size_t min_bytes = elem == GGUF_TYPE_STRING ? 8 : gguf_type_size(elem);
        if (n > cur.left() / min_bytes) {
            cur.error("key " + key + " has an absurd array length " + std::to_string(n) + " at offset " +
                      std::to_string(count_at) + ": " + std::to_string(n) + " " + gguf_type_name(elem) +
                      " elements cannot fit in the " + std::to_string(cur.left()) +
                      " bytes left in the file (the file is corrupt or truncated)");
        }
    }
    kv.elem_type = (gguf_type)elem;
    kv.n = n;
    if (elem == GGUF_TYPE_STRING) {
        kv.strings.reserve((size_t)n);
        for (uint64_t j = 0; j < n; j++) {
            kv.strings.push_back(cur.str([&] {
                return kv.is_array() ? "string element " + std::to_string(j) + " of key " + key : "the string value of key " + key;
            }));
        }
        return;
    }
    const size_t esize = gguf_type_size(elem);
    const size_t data_at = cur.pos();
    kv.data = cur.take((size_t)n * esize, [&] { return "the value of key " + key; });
    if (elem == GGUF_TYPE_BOOL) {
        for (uint64_t j = 0; j < n; j++) {
            if (kv.data[j] > 1) {
                cur.error("key " + key + (kv.is_array() ? " element " + std::to_string(j) : std::string()) +
                          " has bool value " + std::to_string(kv.data[j]) + " at offset " +
                          std::to_string(data_at + j) + " (a bool must be 0 or 1)");
            }
        }
    }
}

// Prefixes errors thrown by gguf_kv getters (which do not know the file) with the file name.
template <class fn_t>
auto gguf_with_path(const std::string &path, const fn_t &fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const error &e) {
        fail(e.status(), path + ": " + e.what());
    }
}

[[noreturn]] void gguf_kv_fail(const gguf_kv &kv, const std::string &what) {
    fail(ENDLESS_ERR_FORMAT, "key " + gguf_quote(kv.key) + " " + what);
}

std::string gguf_elem_text(const gguf_kv &kv, uint64_t j) {
    return kv.is_array() ? "element " + std::to_string(j) + " " : std::string();
}

// Pointer to numeric element j after the index and the presence of data are checked.
const uint8_t *gguf_kv_elem(const gguf_kv &kv, uint64_t j) {
    if (j >= kv.n) {
        gguf_kv_fail(kv, "has " + std::to_string(kv.n) + " element(s); element " + std::to_string(j) + " was asked for");
    }
    if (kv.elem_type == GGUF_TYPE_STRING) gguf_kv_fail(kv, "has type " + gguf_describe_type(kv) + ", expected a number");
    const size_t esize = gguf_type_size(kv.elem_type);
    if (!kv.data || esize == 0) gguf_kv_fail(kv, "has no numeric data");
    return kv.data + (size_t)j * esize;
}

template <class T>
T gguf_load(const uint8_t *p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

}  // namespace

// ---- gguf_kv getters ----

int64_t gguf_kv::get_int(uint64_t j) const {
    const uint8_t *p = gguf_kv_elem(*this, j);
    switch (elem_type) {
    case GGUF_TYPE_UINT8: return gguf_load<uint8_t>(p);
    case GGUF_TYPE_INT8: return gguf_load<int8_t>(p);
    case GGUF_TYPE_UINT16: return gguf_load<uint16_t>(p);
    case GGUF_TYPE_INT16: return gguf_load<int16_t>(p);
    case GGUF_TYPE_UINT32: return gguf_load<uint32_t>(p);
    case GGUF_TYPE_INT32: return gguf_load<int32_t>(p);
    case GGUF_TYPE_INT64: return gguf_load<int64_t>(p);
    case GGUF_TYPE_BOOL: return gguf_load<uint8_t>(p) ? 1 : 0;
    case GGUF_TYPE_UINT64: {
        const uint64_t v = gguf_load<uint64_t>(p);
        if (v > (uint64_t)std::numeric_limits<int64_t>::max()) {
            gguf_kv_fail(*this, gguf_elem_text(*this, j) + "value " + std::to_string(v) + " does not fit in a signed 64-bit integer");
        }
        return (int64_t)v;
    }
    default: gguf_kv_fail(*this, "has type " + gguf_describe_type(*this) + ", expected an integer");
    }
}

uint64_t gguf_kv::get_uint(uint64_t j) const {
    const uint8_t *p = gguf_kv_elem(*this, j);
    if (elem_type == GGUF_TYPE_UINT64) return gguf_load<uint64_t>(p);
    const int64_t v = get_int(j);
    if (v < 0) gguf_kv_fail(*this, gguf_elem_text(*this, j) + "value " + std::to_string(v) + " is negative, expected an unsigned integer");
    return (uint64_t)v;
}

double gguf_kv::get_float(uint64_t j) const {
    const uint8_t *p = gguf_kv_elem(*this, j);
    switch (elem_type) {
    case GGUF_TYPE_FLOAT32: return gguf_load<float>(p);
    case GGUF_TYPE_FLOAT64: return gguf_load<double>(p);
    case GGUF_TYPE_UINT64: return (double)gguf_load<uint64_t>(p);
    default: return (double)get_int(j);
    }
}

std::string_view gguf_kv::get_string(uint64_t j) const {
    if (elem_type != GGUF_TYPE_STRING) gguf_kv_fail(*this, "has type " + gguf_describe_type(*this) + ", expected a string");
    if (j >= strings.size()) {
        gguf_kv_fail(*this, "has " + std::to_string(strings.size()) + " element(s); element " + std::to_string(j) + " was asked for");
    }
    return strings[(size_t)j];
}

// ---- gguf_file ----

gguf_file::~gguf_file() {
    if (mapping_) munmap(mapping_, mapping_size_);
}

std::unique_ptr<gguf_file> gguf_file::open(const std::string &path) {
    // O_NONBLOCK keeps a FIFO passed as the model path from blocking the open; it is then
    // rejected as not a regular file.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(ENDLESS_ERR_IO, path + ": cannot open the file: " + gguf_errno_text(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        fail(ENDLESS_ERR_IO, path + ": cannot read the file's size: " + gguf_errno_text(err));
    }
    if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        fail(ENDLESS_ERR_IO, path + ": is a directory, not a GGUF file (" + gguf_errno_text(EISDIR) + ")");
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(ENDLESS_ERR_IO, path + ": is not a regular file");
    }
    if (st.st_size <= 0) {
        ::close(fd);
        fail(ENDLESS_ERR_IO, path + ": the file is empty (0 bytes), not a GGUF file");
    }
    if ((uint64_t)st.st_size > (uint64_t)std::numeric_limits<size_t>::max()) {
        ::close(fd);
        fail(ENDLESS_ERR_IO, path + ": the file is too large to map");
    }
    const size_t size = (size_t)st.st_size;
    void *map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_err = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED) fail(ENDLESS_ERR_IO, path + ": cannot map the file: " + gguf_errno_text(map_err));

    std::unique_ptr<gguf_file> f(new gguf_file());
    f->mapping_ = map;  // owned from here: the destructor unmaps it even if parsing throws
    f->mapping_size_ = size;
    f->path_ = path;
    f->base_ = (const uint8_t *)map;
    f->size_ = size;
    f->parse_all();
    return f;
}

void gguf_file::release_mapping() {
    if (!base_ && !mapping_) return;
    // One block holds every numeric value and string: the kv views are re-pointed into it.
    size_t total = 0;
    for (const auto &kv : kvs_) {
        if (kv.data) total += (size_t)kv.n * gguf_type_size(kv.elem_type);
        for (const auto &s : kv.strings) total += s.size();
    }
    std::unique_ptr<uint8_t[]> store(new uint8_t[std::max<size_t>(total, 1)]);
    size_t at = 0;
    for (auto &kv : kvs_) {
        if (kv.data) {
            const size_t n = (size_t)kv.n * gguf_type_size(kv.elem_type);
            if (n) std::memcpy(store.get() + at, kv.data, n);
            kv.data = store.get() + at;
            at += n;
        }
        for (auto &s : kv.strings) {
            if (!s.empty()) std::memcpy(store.get() + at, s.data(), s.size());
            s = std::string_view((const char *)store.get() + at, s.size());
            at += s.size();
        }
    }
    meta_store_ = std::move(store);
    for (auto &t : tensors_) t.data = nullptr;
    base_ = nullptr;
    if (mapping_) munmap(mapping_, mapping_size_);
    mapping_ = nullptr;
    mapping_size_ = 0;
}

std::unique_ptr<gguf_file> gguf_file::parse(const uint8_t *data, size_t size, const std::string &name) {
    std::unique_ptr<gguf_file> f(new gguf_file());
    f->path_ = name;
    f->base_ = data;
    f->size_ = data ? size : 0;
    f->parse_all();
    return f;
}

void gguf_file::parse_all() {
    gguf_cursor cur(base_, size_, path_);

    // ---- header ----
    if (size_ == 0) cur.error("the file is empty (0 bytes), not a GGUF file");
    if (size_ < 4) cur.error("truncated file: " + std::to_string(size_) + " bytes, too short for the GGUF magic");
    const uint8_t *magic = cur.take(4, [] { return std::string("the magic"); });
    if (std::memcmp(magic, "GGUF", 4) != 0) {
        cur.error("not a GGUF file: the magic at offset 0 is " +
                  gguf_quote(std::string_view((const char *)magic, 4)) + ", expected 'GGUF'");
    }
    const uint32_t version = cur.u32([] { return std::string("the version"); });
    const uint32_t swapped = __builtin_bswap32(version);
    if (version != swapped && swapped >= 1 && swapped <= 3) {
        cur.error("big-endian GGUF file (the version reads " + std::to_string(swapped) +
                  " byte-swapped); only little-endian files are supported", ENDLESS_ERR_UNSUPPORTED);
    }
    if (version == 1) {
        cur.error("GGUF version 1 is not supported (it predates 64-bit counts); convert the model again "
                  "to GGUF version 2 or 3", ENDLESS_ERR_UNSUPPORTED);
    }
    if (version != 2 && version != 3) {
        cur.error("unknown GGUF version " + std::to_string(version) + " at offset 4 (this reader handles versions 2 and 3)");
    }
    version_ = version;
    const uint64_t n_tensors = cur.u64([] { return std::string("the tensor count"); });
    const uint64_t n_kv = cur.u64([] { return std::string("the metadata count"); });
    // Both counts are bounded by the bytes left before anything is reserved for them.
    if (n_kv > cur.left() / gguf_min_kv_bytes) {
        cur.error("absurd metadata count " + std::to_string(n_kv) + " at offset 16: that many key/value pairs cannot fit in the " +
                  std::to_string(cur.left()) + " bytes left in the file (the file is corrupt or truncated)");
    }
    if (n_tensors > cur.left() / gguf_min_tensor_info_bytes ||
        n_kv * gguf_min_kv_bytes + n_tensors * gguf_min_tensor_info_bytes > cur.left()) {
        cur.error("absurd tensor count " + std::to_string(n_tensors) + " at offset 8: " + std::to_string(n_kv) +
                  " key/value pairs and that many tensor infos cannot fit in the " + std::to_string(cur.left()) +
                  " bytes left in the file (the file is corrupt or truncated)");
    }

    // ---- metadata ----
    std::vector<size_t> kv_at((size_t)n_kv);
    kvs_.reserve((size_t)n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        kv_at[i] = cur.pos();
        gguf_kv kv;
        const std::string_view key = cur.str([&] { return "the key of metadata entry " + std::to_string(i); });
        if (key.empty()) cur.error("metadata entry " + std::to_string(i) + " at offset " + std::to_string(kv_at[i]) + " has an empty key");
        kv.key = std::string(key);
        const uint32_t type = cur.u32([&] { return "the value type of key " + gguf_quote(kv.key); });
        gguf_read_value(cur, kv, type, kv_at[i]);
        kvs_.push_back(std::move(kv));
    }
    kv_index_.resize(kvs_.size());
    for (size_t i = 0; i < kvs_.size(); i++) kv_index_[i] = i;
    std::stable_sort(kv_index_.begin(), kv_index_.end(), [&](size_t a, size_t b) { return kvs_[a].key < kvs_[b].key; });
    for (size_t i = 1; i < kv_index_.size(); i++) {
        const size_t a = kv_index_[i - 1], b = kv_index_[i];
        if (kvs_[a].key == kvs_[b].key) {
            cur.error("duplicate key " + gguf_quote(kvs_[b].key) + " at offsets " + std::to_string(kv_at[a]) +
                      " and " + std::to_string(kv_at[b]));
        }
    }

    if (const gguf_kv *a = find("general.alignment")) {
        if (a->type != GGUF_TYPE_UINT32) {
            cur.error("key 'general.alignment' has type " + gguf_describe_type(*a) + ", expected u32");
        }
        const uint32_t v = gguf_load<uint32_t>(a->data);
        if (v == 0 || (v & (v - 1)) != 0) {
            cur.error("key 'general.alignment' is " + std::to_string(v) + ", which is not a power of two");
        }
        alignment_ = v;
    }

    // ---- tensor infos ----
    const int64_t max_i64 = std::numeric_limits<int64_t>::max();
    std::vector<size_t> tensor_at((size_t)n_tensors);
    tensors_.reserve((size_t)n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        const size_t at = tensor_at[i] = cur.pos();
        gguf_tensor t;
        const std::string_view name = cur.str([&] { return "the name of tensor " + std::to_string(i); });
        if (name.empty()) cur.error("tensor " + std::to_string(i) + " at offset " + std::to_string(at) + " has an empty name");
        t.name = std::string(name);
        const std::string tname = "tensor " + gguf_quote(t.name);
        const std::string where = " (tensor info at offset " + std::to_string(at) + ")";
        t.n_dims = cur.u32([&] { return "the dimension count of " + tname; });
        if (t.n_dims == 0 || t.n_dims > gguf_max_dims) {
            cur.error(tname + " has " + std::to_string(t.n_dims) + " dimensions (n_dims must be 1 to 4)" + where);
        }
        uint64_t ne[gguf_max_dims] = {1, 1, 1, 1};
        for (uint32_t d = 0; d < t.n_dims; d++) {
            ne[d] = cur.u64([&] { return "ne[" + std::to_string(d) + "] of " + tname; });
        }
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < t.n_dims; d++) {
            if (ne[d] == 0 || ne[d] > (uint64_t)max_i64) {
                cur.error(tname + " has an invalid shape " + gguf_shape_text(ne, t.n_dims) + ": ne[" + std::to_string(d) +
                          "] = " + std::to_string(ne[d]) + " (every dimension must be at least 1 and fit in int64)" + where);
            }
            t.ne[d] = (int64_t)ne[d];
            if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements)) {
                cur.error(tname + " has an invalid shape " + gguf_shape_text(ne, t.n_dims) +
                          ": the element count overflows a 64-bit integer" + where);
            }
        }
        const uint32_t type = cur.u32([&] { return "the type of " + tname; });
        t.offset = cur.u64([&] { return "the data offset of " + tname; });

        const ggml_type_traits &info = ggml_type_info(type);
        if (info.block_size == 0) cur.error(tname + " has unknown type " + std::to_string(type) + where);
        t.type = (ggml_type)type;
        if (!info.supported) {
            cur.error(tname + " has type " + info.name + ", which is not supported (supported tensor types: "
                      "f32, f16, bf16, q8_0, q4_0, q4_K, q6_K)" + where, ENDLESS_ERR_UNSUPPORTED);
        }
        if (t.ne[0] % info.block_size != 0) {
            cur.error(tname + " has ne[0] = " + std::to_string(t.ne[0]) + ", which is not a multiple of the " + info.name +
                      " block size " + std::to_string(info.block_size) + where);
        }
        uint64_t nbytes = 0;
        if (__builtin_mul_overflow((uint64_t)(n_elements / info.block_size), (uint64_t)info.type_size, &nbytes) ||
            nbytes > std::numeric_limits<size_t>::max()) {
            cur.error(tname + " of shape " + gguf_shape_text(ne, t.n_dims) + " has a byte size that overflows" + where);
        }
        t.nbytes = (size_t)nbytes;
        if (t.offset % alignment_ != 0) {
            cur.error(tname + " has data offset " + std::to_string(t.offset) + ", which is not a multiple of the alignment " +
                      std::to_string(alignment_) + where);
        }
        tensors_.push_back(std::move(t));
    }
    tensor_index_.resize(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); i++) tensor_index_[i] = i;
    std::stable_sort(tensor_index_.begin(), tensor_index_.end(),
                     [&](size_t a, size_t b) { return tensors_[a].name < tensors_[b].name; });
    for (size_t i = 1; i < tensor_index_.size(); i++) {
        const size_t a = tensor_index_[i - 1], b = tensor_index_[i];
        if (tensors_[a].name == tensors_[b].name) {
            cur.error("duplicate tensor name " + gguf_quote(tensors_[b].name) + " (tensor infos at offsets " +
                      std::to_string(tensor_at[a]) + " and " + std::to_string(tensor_at[b]) + ")");
        }
    }

    // ---- data section ----
    // It starts at the first multiple of the alignment after the tensor infos; pos <= size and
    // alignment < 2^32, so this cannot overflow.
    const size_t infos_end = cur.pos();
    const size_t data_start = infos_end + (alignment_ - infos_end % alignment_) % alignment_;
    if (tensors_.empty()) return;
    if (data_start > size_) {
        cur.error("truncated file: the tensor data section should start at offset " + std::to_string(data_start) +
                  " (the end of the tensor infos aligned to " + std::to_string(alignment_) +
                  "), past the end of the file at offset " + std::to_string(size_));
    }
    const size_t data_size = size_ - data_start;
    for (auto &t : tensors_) {
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            cur.error("tensor " + gguf_quote(t.name) + " data (" + std::to_string(t.nbytes) + " bytes at data offset " +
                      std::to_string(t.offset) + ") extends past the end of the file: the data section at offset " +
                      std::to_string(data_start) + " holds only " + std::to_string(data_size) + " bytes");
        }
        t.data = base_ + data_start + t.offset;
    }
    std::vector<size_t> by_offset(tensors_.size());
    for (size_t i = 0; i < by_offset.size(); i++) by_offset[i] = i;
    std::stable_sort(by_offset.begin(), by_offset.end(),
                     [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t i = 1; i < by_offset.size(); i++) {
        const gguf_tensor &a = tensors_[by_offset[i - 1]], &b = tensors_[by_offset[i]];
        if (a.offset + a.nbytes > b.offset) {
            cur.error("tensors " + gguf_quote(a.name) + " (data offset " + std::to_string(a.offset) + ", " +
                      std::to_string(a.nbytes) + " bytes) and " + gguf_quote(b.name) + " (data offset " +
                      std::to_string(b.offset) + ") overlap");
        }
    }
}

const gguf_kv *gguf_file::find(std::string_view key) const {
    auto it = std::lower_bound(kv_index_.begin(), kv_index_.end(), key,
                               [&](size_t i, std::string_view k) { return std::string_view(kvs_[i].key) < k; });
    if (it == kv_index_.end() || kvs_[*it].key != key) return nullptr;
    return &kvs_[*it];
}

const gguf_tensor *gguf_file::find_tensor(std::string_view name) const {
    auto it = std::lower_bound(tensor_index_.begin(), tensor_index_.end(), name,
                               [&](size_t i, std::string_view n) { return std::string_view(tensors_[i].name) < n; });
    if (it == tensor_index_.end() || tensors_[*it].name != name) return nullptr;
    return &tensors_[*it];
}

// ---- typed getters ----
// A present key of the wrong type is an error even where a fallback exists: silently using the
// fallback would hide a broken file.

namespace {

const gguf_kv &gguf_require(const gguf_file &f, std::string_view key) {
    const gguf_kv *kv = f.find(key);
    if (!kv) fail(ENDLESS_ERR_FORMAT, f.path() + ": missing required key " + gguf_quote(key));
    return *kv;
}

void gguf_expect(const gguf_file &f, const gguf_kv &kv, bool ok, const char *expected) {
    if (!ok || kv.is_array()) {
        fail(ENDLESS_ERR_FORMAT, f.path() + ": key " + gguf_quote(kv.key) + " has type " + gguf_describe_type(kv) +
                                     ", expected " + expected);
    }
}

std::string gguf_string_of(const gguf_file &f, const gguf_kv &kv) {
    gguf_expect(f, kv, kv.type == GGUF_TYPE_STRING, "a string");
    return std::string(gguf_with_path(f.path(), [&] { return kv.get_string(0); }));
}

int64_t gguf_int_of(const gguf_file &f, const gguf_kv &kv) {
    gguf_expect(f, kv, gguf_type_is_integer(kv.type), "an integer");
    return gguf_with_path(f.path(), [&] { return kv.get_int(0); });
}

double gguf_float_of(const gguf_file &f, const gguf_kv &kv) {
    gguf_expect(f, kv, kv.type == GGUF_TYPE_FLOAT32 || kv.type == GGUF_TYPE_FLOAT64 || gguf_type_is_integer(kv.type),
                "a number");
    return gguf_with_path(f.path(), [&] { return kv.get_float(0); });
}

}  // namespace

std::string gguf_file::get_string_req(std::string_view key) const { return gguf_string_of(*this, gguf_require(*this, key)); }

std::string gguf_file::get_string(std::string_view key, std::string_view fallback) const {
    const gguf_kv *kv = find(key);
    return kv ? gguf_string_of(*this, *kv) : std::string(fallback);
}

int64_t gguf_file::get_int_req(std::string_view key) const { return gguf_int_of(*this, gguf_require(*this, key)); }

int64_t gguf_file::get_int(std::string_view key, int64_t fallback) const {
    const gguf_kv *kv = find(key);
    return kv ? gguf_int_of(*this, *kv) : fallback;
}

double gguf_file::get_float_req(std::string_view key) const { return gguf_float_of(*this, gguf_require(*this, key)); }

double gguf_file::get_float(std::string_view key, double fallback) const {
    const gguf_kv *kv = find(key);
    return kv ? gguf_float_of(*this, *kv) : fallback;
}

bool gguf_file::get_bool(std::string_view key, bool fallback) const {
    const gguf_kv *kv = find(key);
    if (!kv) return fallback;
    gguf_expect(*this, *kv, kv->type == GGUF_TYPE_BOOL, "bool");
    return gguf_with_path(path_, [&] { return kv->get_int(0) != 0; });
}

}  // namespace endless
