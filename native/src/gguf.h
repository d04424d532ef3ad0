// GGUF v2/v3 reader: maps the file, parses metadata and tensor infos with strict validation.
// Every malformation throws endless::error(ENDLESS_ERR_FORMAT, "<path>: <what is wrong>") and
// nothing is ever read past the end of the mapping.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ggml_types.h"

namespace endless {

enum gguf_type : uint32_t {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};
const char *gguf_type_name(uint32_t type);

// One metadata entry. Scalars: one element. Arrays: n elements of elem_type (nested arrays are
// rejected as unsupported). Strings and numeric data are views into the mapped file (into the
// reader's own copy after gguf_file::release_mapping()).
struct gguf_kv {
    std::string key;
    gguf_type type = GGUF_TYPE_UINT8;       // GGUF_TYPE_ARRAY for arrays
    gguf_type elem_type = GGUF_TYPE_UINT8;  // the scalar type, or the array's element type
    uint64_t n = 1;                         // element count (1 for scalars)
    const uint8_t *data = nullptr;          // numeric: n packed little-endian elements in the file
    std::vector<std::string_view> strings;  // string scalars and string arrays

    bool is_array() const { return type == GGUF_TYPE_ARRAY; }
    // Element j as a number; throws ENDLESS_ERR_FORMAT for strings. Bools are 0/1.
    int64_t get_int(uint64_t j = 0) const;
    uint64_t get_uint(uint64_t j = 0) const;
    double get_float(uint64_t j = 0) const;
    std::string_view get_string(uint64_t j = 0) const;
};

struct gguf_tensor {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous dimension
    ggml_type type = GGML_TYPE_F32;
    uint64_t offset = 0;           // from the start of the data section
    size_t nbytes = 0;
    const uint8_t *data = nullptr; // in the mapping; nullptr after release_mapping()
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class gguf_file {
public:
    // Maps and parses the file. Throws ENDLESS_ERR_IO (cannot open/map) or ENDLESS_ERR_FORMAT.
    static std::unique_ptr<gguf_file> open(const std::string &path);
    // Parses a buffer the caller keeps alive (tests, fuzzing). name is used in error texts.
    static std::unique_ptr<gguf_file> parse(const uint8_t *data, size_t size, const std::string &name);
    ~gguf_file();
    gguf_file(const gguf_file &) = delete;
    gguf_file &operator=(const gguf_file &) = delete;

    const std::string &path() const { return path_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    const std::vector<gguf_kv> &kvs() const { return kvs_; }
    const std::vector<gguf_tensor> &tensors() const { return tensors_; }
    const uint8_t *file_data() const { return base_; }  // nullptr after release_mapping()
    size_t file_size() const { return size_; }

    // Makes the reader independent of the file: copies every metadata value (numbers and
    // strings) into memory the reader owns, clears every tensor's data pointer and unmaps the
    // file. Afterwards metadata, tensor infos and the getters work as before; tensor bytes are
    // gone (the model copies them out first). A file removed, truncated or rewritten on disk
    // can then no longer fault the process (SIGBUS on a truncated mapping).
    void release_mapping();
    bool mapped() const { return base_ != nullptr; }

    // nullptr when absent.
    const gguf_kv *find(std::string_view key) const;
    const gguf_tensor *find_tensor(std::string_view name) const;

    // Typed getters. The *_req forms throw ENDLESS_ERR_FORMAT "missing required key 'k'" or
    // "key 'k' has type T, expected ...". Integer getters accept any integer type whose value fits.
    std::string get_string_req(std::string_view key) const;
    std::string get_string(std::string_view key, std::string_view fallback) const;
    int64_t get_int_req(std::string_view key) const;
    int64_t get_int(std::string_view key, int64_t fallback) const;
    double get_float_req(std::string_view key) const;   // accepts float and integer types
    double get_float(std::string_view key, double fallback) const;
    bool get_bool(std::string_view key, bool fallback) const;

private:
    gguf_file() = default;
    void parse_all();
    std::string path_;
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    std::vector<gguf_kv> kvs_;
    std::vector<gguf_tensor> tensors_;
    const uint8_t *base_ = nullptr;
    size_t size_ = 0;
    void *mapping_ = nullptr;  // munmap on destruction when set
    size_t mapping_size_ = 0;
    std::unique_ptr<uint8_t[]> meta_store_;  // metadata values after release_mapping()
    std::vector<size_t> kv_index_;      // positions in kvs_ sorted by key, for find()
    std::vector<size_t> tensor_index_;  // positions in tensors_ sorted by name, for find_tensor()
};

}  // namespace endless
