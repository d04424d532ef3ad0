// Tests of the GGUF reader: round trips of every metadata and tensor type through gguf_builder,
// the typed getters, open() on real files, and one test per class of malformation, each
// asserting the status and the words of the error. ENDLESS_TEST_VERBOSE=1 prints every error text.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "error.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "test_util.h"

using namespace endless;
using gguf_test::gguf_builder;
namespace gt = gguf_test;

namespace {

const char *k_name = "test.gguf";

bool verbose() { return std::getenv("ENDLESS_TEST_VERBOSE") != nullptr; }

std::unique_ptr<gguf_file> parse_bytes(const std::vector<uint8_t> &b) {
    return gguf_file::parse(b.data(), b.size(), k_name);
}

// Runs fn, which must throw endless::error with the given status, a text starting with prefix
// and containing every word. Returns the text.
template <class fn_t>
std::string expect_error(const fn_t &fn, endless_status status, std::vector<std::string> words,
                         const std::string &prefix = std::string(k_name) + ": ", int line = 0) {
    try {
        fn();
    } catch (const error &e) {
        const std::string msg = e.what();
        if (verbose()) std::printf("    [%d] %s\n", (int)e.status(), msg.c_str());
        CHECK_MSG(e.status() == status, "line %d: status %d, expected %d: %s", line, (int)e.status(), (int)status, msg.c_str());
        CHECK_MSG(msg.compare(0, prefix.size(), prefix) == 0, "line %d: '%s' does not start with '%s'", line, msg.c_str(), prefix.c_str());
        for (const auto &w : words) CHECK_MSG(msg.find(w) != std::string::npos, "line %d: '%s' lacks '%s'", line, msg.c_str(), w.c_str());
        return msg;
    } catch (const std::exception &e) {
        CHECK_MSG(false, "line %d: threw a non-endless exception: %s", line, e.what());
        return "";
    }
    CHECK_MSG(false, "line %d: did not throw (expected words starting with '%s')", line, words.empty() ? "" : words[0].c_str());
    return "";
}
#define EXPECT_PARSE_ERROR(bytes, status, ...) \
    expect_error([&] { parse_bytes(bytes); }, status, __VA_ARGS__, std::string(k_name) + ": ", __LINE__)
#define EXPECT_ERROR(expr, status, ...) \
    expect_error([&] { (void)(expr); }, status, __VA_ARGS__, std::string(k_name) + ": ", __LINE__)

// A small valid model-like file: a few keys and two tensors.
gguf_builder base_file() {
    gguf_builder b;
    b.str("general.architecture", "llama").u32("llama.block_count", 2).f32("llama.rope.freq_base", 10000.0f);
    b.arr_str("tokenizer.ggml.tokens", {"<s>", "a", "b"});
    b.tensor("token_embd.weight", GGML_TYPE_F32, {8, 3});
    b.tensor("blk.0.attn_q.weight", GGML_TYPE_Q8_0, {32, 2});
    return b;
}

std::vector<uint8_t> u64_bytes(uint64_t v) {
    std::vector<uint8_t> b;
    gt::put(b, v);
    return b;
}

}  // namespace

// ---- type tables ----

TEST(type_info_table) {
    struct row { uint32_t id; const char *name; int block; size_t bytes; bool supported; };
    const row rows[] = {
        {0, "f32", 1, 4, true}, {1, "f16", 1, 2, true}, {30, "bf16", 1, 2, true}, {8, "q8_0", 32, 34, true},
        {2, "q4_0", 32, 18, true}, {12, "q4_K", 256, 144, true}, {14, "q6_K", 256, 210, true},
        {3, "q4_1", 32, 20, false}, {6, "q5_0", 32, 22, false}, {7, "q5_1", 32, 24, false}, {9, "q8_1", 32, 36, false},
        {10, "q2_K", 256, 84, false}, {11, "q3_K", 256, 110, false}, {13, "q5_K", 256, 176, false},
        {15, "q8_K", 256, 292, false},
        {4, "unknown", 0, 0, false}, {5, "unknown", 0, 0, false}, {16, "unknown", 0, 0, false},
        {77, "unknown", 0, 0, false}, {0xffffffffu, "unknown", 0, 0, false},
    };
    for (const row &r : rows) {
        const ggml_type_traits &t = ggml_type_info(r.id);
        CHECK_MSG(std::string(t.name) == r.name && t.block_size == r.block && t.type_size == r.bytes &&
                      t.supported == r.supported && ggml_type_supported(r.id) == r.supported,
                  "type %u: got {%s, %d, %zu, %d}", r.id, t.name, t.block_size, t.type_size, (int)t.supported);
    }
    CHECK(ggml_row_size(GGML_TYPE_Q4_K, 512) == 288);
    CHECK(ggml_row_size(GGML_TYPE_F16, 7) == 14);
    CHECK(ggml_row_size(77, 32) == 0);
}

TEST(gguf_type_names) {
    const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    for (uint32_t t = 0; t <= 12; t++) CHECK(std::string(gguf_type_name(t)) == names[t]);
    CHECK(std::string(gguf_type_name(13)) == "unknown");
}

// ---- round trips ----

TEST(roundtrip_scalars) {
    gguf_builder b;
    b.u8("a.u8", 250).i8("a.i8", -120).u16("a.u16", 65000).i16("a.i16", -32000);
    b.u32("a.u32", 4000000000u).i32("a.i32", -2000000000).u64("a.u64", 18000000000000000000ull);
    b.i64("a.i64", std::numeric_limits<int64_t>::min()).f32("a.f32", 1.5f).f64("a.f64", -2.25e300);
    b.boolean("a.true", true).boolean("a.false", false).str("a.str", "héllo\nworld").str("a.empty", "");
    b.u64("a.u64small", 42);
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);
    CHECK(f->version() == 3);
    CHECK(f->kvs().size() == 15);
    CHECK(f->tensors().empty());
    CHECK(f->alignment() == 32);
    // file order is kept
    CHECK(f->kvs()[0].key == "a.u8" && f->kvs()[14].key == "a.u64small");

    const gguf_kv *kv = f->find("a.u8");
    CHECK(kv && kv->type == GGUF_TYPE_UINT8 && kv->elem_type == GGUF_TYPE_UINT8 && kv->n == 1 && !kv->is_array());
    CHECK(kv && kv->get_int() == 250 && kv->get_uint() == 250 && kv->get_float() == 250.0);
    CHECK(f->get_int_req("a.i8") == -120);
    CHECK(f->get_int_req("a.u16") == 65000);
    CHECK(f->get_int_req("a.i16") == -32000);
    CHECK(f->get_int_req("a.u32") == 4000000000ll);
    CHECK(f->get_int_req("a.i32") == -2000000000);
    CHECK(f->find("a.u64")->get_uint() == 18000000000000000000ull);
    CHECK(f->get_int_req("a.u64small") == 42);
    CHECK(f->get_int_req("a.i64") == std::numeric_limits<int64_t>::min());
    CHECK(f->get_float_req("a.f32") == 1.5);
    CHECK(f->get_float_req("a.f64") == -2.25e300);
    CHECK(f->get_float_req("a.i32") == -2000000000.0);
    CHECK(f->get_float_req("a.u64") == 18000000000000000000.0);
    CHECK(f->get_bool("a.true", false) == true);
    CHECK(f->get_bool("a.false", true) == false);
    CHECK(f->find("a.true")->get_int() == 1);
    CHECK(f->get_string_req("a.str") == "héllo\nworld");
    CHECK(f->get_string_req("a.empty").empty());
    CHECK(f->find("a.str")->type == GGUF_TYPE_STRING && f->find("a.str")->strings.size() == 1);
    // every type name reaches the kv
    const uint32_t types[] = {0, 1, 2, 3, 4, 5, 10, 11, 6, 12, 7, 7, 8, 8};
    for (size_t i = 0; i < 14; i++) CHECK(f->kvs()[i].type == types[i]);
}

TEST(roundtrip_arrays) {
    gguf_builder b;
    b.arr<uint8_t>("x.u8", gt::T_U8, {0, 7, 255});
    b.arr<int8_t>("x.i8", gt::T_I8, {-128, 0, 127});
    b.arr<uint16_t>("x.u16", gt::T_U16, {1, 65535});
    b.arr<int16_t>("x.i16", gt::T_I16, {-32768, 5});
    b.arr<uint32_t>("x.u32", gt::T_U32, {1, 2, 3, 4000000000u});
    b.arr<int32_t>("x.i32", gt::T_I32, {-1, 2, -3});
    b.arr<float>("x.f32", gt::T_F32, {0.5f, -1.0f, 3.25f});
    b.arr<uint8_t>("x.bool", gt::T_BOOL, {1, 0, 1, 1});
    b.arr<uint64_t>("x.u64", gt::T_U64, {0, 1ull << 63});
    b.arr<int64_t>("x.i64", gt::T_I64, {-5, 1ll << 62});
    b.arr<double>("x.f64", gt::T_F64, {1e-300, 2.5});
    b.arr_str("x.str", {"a", "", "▁hello", std::string("nul\0inside", 10)});
    b.arr<uint32_t>("x.empty", gt::T_U32, {});
    b.arr_str("x.empty_str", {});
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);

    auto arr = [&](const char *k, gguf_type elem, uint64_t n) {
        const gguf_kv *kv = f->find(k);
        CHECK_MSG(kv && kv->is_array() && kv->type == GGUF_TYPE_ARRAY && kv->elem_type == elem && kv->n == n, "%s", k);
        return kv;
    };
    const gguf_kv *kv = arr("x.u8", GGUF_TYPE_UINT8, 3);
    CHECK(kv->get_int(0) == 0 && kv->get_int(1) == 7 && kv->get_int(2) == 255);
    kv = arr("x.i8", GGUF_TYPE_INT8, 3);
    CHECK(kv->get_int(0) == -128 && kv->get_int(2) == 127);
    kv = arr("x.u16", GGUF_TYPE_UINT16, 2);
    CHECK(kv->get_int(1) == 65535);
    kv = arr("x.i16", GGUF_TYPE_INT16, 2);
    CHECK(kv->get_int(0) == -32768 && kv->get_int(1) == 5);
    kv = arr("x.u32", GGUF_TYPE_UINT32, 4);
    CHECK(kv->get_uint(3) == 4000000000u && kv->get_int(2) == 3);
    kv = arr("x.i32", GGUF_TYPE_INT32, 3);
    CHECK(kv->get_int(0) == -1 && kv->get_int(2) == -3);
    kv = arr("x.f32", GGUF_TYPE_FLOAT32, 3);
    CHECK(kv->get_float(0) == 0.5 && kv->get_float(1) == -1.0 && kv->get_float(2) == 3.25);
    kv = arr("x.bool", GGUF_TYPE_BOOL, 4);
    CHECK(kv->get_int(0) == 1 && kv->get_int(1) == 0 && kv->get_int(3) == 1);
    kv = arr("x.u64", GGUF_TYPE_UINT64, 2);
    CHECK(kv->get_uint(1) == 1ull << 63 && kv->get_int(0) == 0);
    kv = arr("x.i64", GGUF_TYPE_INT64, 2);
    CHECK(kv->get_int(0) == -5 && kv->get_int(1) == 1ll << 62);
    kv = arr("x.f64", GGUF_TYPE_FLOAT64, 2);
    CHECK(kv->get_float(0) == 1e-300 && kv->get_float(1) == 2.5);
    kv = arr("x.str", GGUF_TYPE_STRING, 4);
    CHECK(kv->strings.size() == 4 && kv->get_string(0) == "a" && kv->get_string(1).empty() &&
          kv->get_string(2) == "▁hello" && kv->get_string(3) == std::string_view("nul\0inside", 10));
    kv = arr("x.empty", GGUF_TYPE_UINT32, 0);
    kv = arr("x.empty_str", GGUF_TYPE_STRING, 0);
    CHECK(kv->strings.empty());
}

TEST(kv_getter_errors) {
    gguf_builder b;
    b.f32("x.float", 2.5f).str("x.str", "s").u64("x.huge", ~0ull).i32("x.neg", -3).u8("x.byte", 1);
    b.arr<int32_t>("x.arr", gt::T_I32, {1, 2});
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);
    EXPECT_ERROR(f->get_int_req("x.float"), ENDLESS_ERR_FORMAT, {"key 'x.float' has type f32, expected an integer"});
    EXPECT_ERROR(f->get_int_req("x.missing"), ENDLESS_ERR_FORMAT, {"missing required key 'x.missing'"});
    EXPECT_ERROR(f->get_string_req("x.missing"), ENDLESS_ERR_FORMAT, {"missing required key 'x.missing'"});
    EXPECT_ERROR(f->get_float_req("x.missing"), ENDLESS_ERR_FORMAT, {"missing required key 'x.missing'"});
    EXPECT_ERROR(f->get_int_req("x.huge"), ENDLESS_ERR_FORMAT, {"x.huge", "does not fit"});
    EXPECT_ERROR(f->get_int_req("x.str"), ENDLESS_ERR_FORMAT, {"key 'x.str' has type string, expected an integer"});
    EXPECT_ERROR(f->get_int_req("x.arr"), ENDLESS_ERR_FORMAT, {"key 'x.arr' has type array of i32, expected an integer"});
    EXPECT_ERROR(f->get_string_req("x.float"), ENDLESS_ERR_FORMAT, {"key 'x.float' has type f32, expected a string"});
    EXPECT_ERROR(f->get_float_req("x.str"), ENDLESS_ERR_FORMAT, {"key 'x.str' has type string, expected a number"});
    EXPECT_ERROR(f->get_bool("x.byte", false), ENDLESS_ERR_FORMAT, {"key 'x.byte' has type u8, expected bool"});
    EXPECT_ERROR(f->get_int("x.str", 5), ENDLESS_ERR_FORMAT, {"expected an integer"});
    EXPECT_ERROR(f->get_string("x.float", "fb"), ENDLESS_ERR_FORMAT, {"expected a string"});
    CHECK(f->get_int("x.missing", 7) == 7);
    CHECK(f->get_float("x.missing", 0.25) == 0.25);
    CHECK(f->get_float("x.float", 0.25) == 2.5);
    CHECK(f->get_string("x.missing", "fb") == "fb");
    CHECK(f->get_bool("x.missing", true) == true);
    CHECK(f->get_float_req("x.huge") == 18446744073709551615.0);
    // element-level getters (they do not know the file name)
    const gguf_kv *neg = f->find("x.neg");
    expect_error([&] { neg->get_uint(); }, ENDLESS_ERR_FORMAT, {"key 'x.neg'", "negative"}, "key", __LINE__);
    const gguf_kv *arr = f->find("x.arr");
    expect_error([&] { arr->get_int(2); }, ENDLESS_ERR_FORMAT, {"key 'x.arr' has 2 element(s); element 2"}, "key", __LINE__);
    expect_error([&] { arr->get_string(0); }, ENDLESS_ERR_FORMAT, {"expected a string"}, "key", __LINE__);
    const gguf_kv *s = f->find("x.str");
    expect_error([&] { s->get_int(); }, ENDLESS_ERR_FORMAT, {"key 'x.str' has type string, expected a number"}, "key", __LINE__);
    expect_error([&] { s->get_float(); }, ENDLESS_ERR_FORMAT, {"expected a number"}, "key", __LINE__);
    expect_error([&] { s->get_string(1); }, ENDLESS_ERR_FORMAT, {"key 'x.str' has 1 element(s); element 1"}, "key", __LINE__);
    gguf_kv blank;  // a default-constructed entry has no data to read
    blank.key = "blank";
    expect_error([&] { blank.get_int(); }, ENDLESS_ERR_FORMAT, {"key 'blank' has no numeric data"}, "key", __LINE__);
    expect_error([&] { f->find("x.float")->get_int(); }, ENDLESS_ERR_FORMAT, {"has type f32, expected an integer"}, "key", __LINE__);
    CHECK(f->find("x.neg")->get_float() == -3.0);
}

TEST(tensors_of_every_supported_type) {
    struct spec { const char *name; ggml_type type; std::vector<uint64_t> ne; size_t nbytes; };
    const std::vector<spec> specs = {
        {"t.f32", GGML_TYPE_F32, {7, 3}, 7 * 3 * 4},
        {"t.f16", GGML_TYPE_F16, {5}, 10},
        {"t.bf16", GGML_TYPE_BF16, {3, 2, 2}, 24},
        {"t.q8_0", GGML_TYPE_Q8_0, {64, 2}, 4 * 34},
        {"t.q4_0", GGML_TYPE_Q4_0, {32, 3}, 3 * 18},
        {"t.q4_k", GGML_TYPE_Q4_K, {256, 2}, 2 * 144},
        {"t.q6_k", GGML_TYPE_Q6_K, {512, 1, 1, 2}, 4 * 210},
    };
    for (uint32_t version : {2u, 3u}) {
        for (uint32_t align : {0u, 1u, 8u, 64u}) {  // 0: no general.alignment key (default 32)
            gguf_builder b;
            b.version = version;
            if (align) b.set_alignment(align);
            b.str("general.name", "t");
            uint32_t seed = 1;
            for (const auto &s : specs) b.tensor(s.name, s.type, s.ne, seed++);
            size_t data_start = 0;
            const auto bytes = b.build(&data_start);
            auto f = parse_bytes(bytes);
            CHECK(f->version() == version);
            CHECK(f->alignment() == (align ? align : 32));
            CHECK(f->tensors().size() == specs.size());
            CHECK(data_start % f->alignment() == 0);
            for (size_t i = 0; i < specs.size(); i++) {
                const gguf_tensor *t = f->find_tensor(specs[i].name);
                CHECK_MSG(t == &f->tensors()[i], "%s", specs[i].name);
                if (!t) continue;
                CHECK(t->type == specs[i].type);
                CHECK(t->n_dims == specs[i].ne.size());
                int64_t n = 1;
                for (size_t d = 0; d < 4; d++) {
                    const int64_t want = d < specs[i].ne.size() ? (int64_t)specs[i].ne[d] : 1;
                    CHECK(t->ne[d] == want);
                    n *= want;
                }
                CHECK(t->n_elements() == n);
                CHECK_MSG(t->nbytes == specs[i].nbytes, "%s: %zu", specs[i].name, t->nbytes);
                CHECK(t->offset % f->alignment() == 0);
                CHECK(t->data == f->file_data() + data_start + t->offset);
                CHECK(std::memcmp(t->data, b.tensors[i].data.data(), t->nbytes) == 0);
            }
            CHECK(f->find_tensor("t.missing") == nullptr);
            CHECK(f->find_tensor("") == nullptr);
            CHECK(f->find_tensor("t.f32x") == nullptr);
        }
    }
}

TEST(tensors_with_explicit_gaps_and_order) {
    // offsets need not follow the info order, and gaps between tensors are allowed
    gguf_builder b;
    b.tensor("b", GGML_TYPE_F32, {8});
    b.last_tensor().offset = 64;
    b.tensor("a", GGML_TYPE_F32, {8});
    b.last_tensor().offset = 0;
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);
    CHECK(f->tensors()[0].name == "b" && f->tensors()[0].offset == 64);
    CHECK(f->find_tensor("a")->offset == 0);
}

TEST(find_among_many_keys) {
    gguf_builder b;
    for (int i = 0; i < 3000; i++) b.i32("k." + std::to_string((i * 7919) % 3000), i);
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);
    int bad = 0;
    for (int i = 0; i < 3000; i++) {
        const gguf_kv *kv = f->find("k." + std::to_string((i * 7919) % 3000));
        if (!kv || kv->get_int() != i) bad++;
    }
    CHECK(bad == 0);
    CHECK(f->find("k.3000") == nullptr && f->find("k.") == nullptr && f->find("") == nullptr);
}

TEST(no_tensors_and_no_padding) {
    gguf_builder b;
    b.str("general.architecture", "llama");
    const auto bytes = b.build();
    auto f = parse_bytes(bytes);
    CHECK(f->tensors().empty() && f->kvs().size() == 1);
    gguf_builder empty;
    const auto e = empty.build();
    CHECK(e.size() == 24);
    CHECK(parse_bytes(e)->kvs().empty());
}

// ---- malformations, one test per class ----

TEST(truncated_at_every_byte) {
    gguf_builder b = base_file();
    b.boolean("x.flag", true).arr<float>("x.f", gt::T_F32, {1, 2}).i64("x.i", 5);
    const auto full = b.build();
    CHECK(parse_bytes(full)->tensors().size() == 2);
    int wrong = 0;
    for (size_t n = 0; n < full.size(); n++) {
        // a copy of exactly n bytes, so ASan catches any read past the end
        std::vector<uint8_t> cut(full.begin(), full.begin() + n);
        try {
            gguf_file::parse(n ? cut.data() : nullptr, n, k_name);
            std::printf("  prefix of %zu bytes parsed\n", n);
            wrong++;
        } catch (const error &e) {
            const std::string msg = e.what();
            if (e.status() != ENDLESS_ERR_FORMAT || msg.rfind("test.gguf: ", 0) != 0) {
                std::printf("  prefix %zu: %s\n", n, msg.c_str());
                wrong++;
            }
            if (verbose() && n % 16 == 0) std::printf("    prefix %zu: %s\n", n, msg.c_str());
        }
    }
    CHECK(wrong == 0);
    std::vector<uint8_t> cut(full.begin(), full.begin() + 30);
    EXPECT_PARSE_ERROR(cut, ENDLESS_ERR_FORMAT, {"absurd metadata count 7", "truncated"});
    const std::string name = "blk.0.attn_q.weight";
    const size_t name_at = std::search(full.begin(), full.end(), name.begin(), name.end()) - full.begin();
    std::vector<uint8_t> in_name(full.begin(), full.begin() + name_at + 5);
    EXPECT_PARSE_ERROR(in_name, ENDLESS_ERR_FORMAT,
                       {"truncated or corrupt file: the name of tensor 1 at offset " + std::to_string(name_at - 8),
                        "has length 19, more than the 5 bytes left"});
    std::vector<uint8_t> in_ne(full.begin(), full.begin() + name_at + name.size() + 4 + 3);
    EXPECT_PARSE_ERROR(in_ne, ENDLESS_ERR_FORMAT,
                       {"truncated file: ne[0] of tensor 'blk.0.attn_q.weight' at offset " + std::to_string(name_at + name.size() + 4),
                        "needs 8 bytes, but the file ends at offset " + std::to_string(in_ne.size())});
    std::vector<uint8_t> tiny(full.begin(), full.begin() + 3);
    EXPECT_PARSE_ERROR(tiny, ENDLESS_ERR_FORMAT, {"truncated", "3 bytes"});
    EXPECT_PARSE_ERROR(std::vector<uint8_t>(), ENDLESS_ERR_FORMAT, {"empty"});
    std::vector<uint8_t> mid_data(full.begin(), full.end() - 1);
    EXPECT_PARSE_ERROR(mid_data, ENDLESS_ERR_FORMAT, {"blk.0.attn_q.weight", "extends past the end"});
}

TEST(garbled_magic) {
    gguf_builder b = base_file();
    b.magic = "GGUG";
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"not a GGUF file", "'GGUG'"});
    b.magic = std::string("\x00\xff\x01Z", 4);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"not a GGUF file", "\\x00\\xff\\x01Z"});
    const std::string text = "just some text, not a model at all";
    EXPECT_PARSE_ERROR(std::vector<uint8_t>(text.begin(), text.end()), ENDLESS_ERR_FORMAT, {"not a GGUF file"});
}

TEST(bad_version) {
    for (uint32_t v : {0u, 4u, 99u, 0xffffffffu}) {
        gguf_builder b = base_file();
        b.version = v;
        EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"unknown GGUF version " + std::to_string(v)});
    }
    gguf_builder v1 = base_file();
    v1.version = 1;
    EXPECT_PARSE_ERROR(v1.build(), ENDLESS_ERR_UNSUPPORTED, {"version 1 is not supported"});
    for (uint32_t v : {2u, 3u}) {
        gguf_builder be = base_file();
        be.version = __builtin_bswap32(v);  // what a big-endian writer puts on disk
        EXPECT_PARSE_ERROR(be.build(), ENDLESS_ERR_UNSUPPORTED, {"big-endian"});
    }
}

TEST(absurd_counts) {
    gguf_builder b = base_file();
    b.n_kv_override = 1ull << 60;
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"absurd metadata count 1152921504606846976"});
    b = base_file();
    b.n_tensors_override = ~0ull;
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"absurd tensor count 18446744073709551615"});
    b = base_file();
    b.n_tensors_override = 1000;  // small but still more than the file holds
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"absurd tensor count 1000"});
    // array lengths, numeric and string
    for (uint32_t elem : {gt::T_U8, gt::T_F64, gt::T_STRING}) {
        std::vector<uint8_t> v;
        gt::put<uint32_t>(v, elem);
        gt::put<uint64_t>(v, 1ull << 61);
        v.resize(v.size() + 64, 0);
        gguf_builder a = base_file();
        a.raw_kv("tokenizer.ggml.scores", gt::T_ARRAY, v);
        EXPECT_PARSE_ERROR(a.build(), ENDLESS_ERR_FORMAT, {"key 'tokenizer.ggml.scores'", "absurd array length 2305843009213693952"});
    }
    // string value length
    gguf_builder s = base_file();
    s.raw_kv("general.name", gt::T_STRING, u64_bytes(1ull << 40));
    EXPECT_PARSE_ERROR(s.build(), ENDLESS_ERR_FORMAT, {"string value of key 'general.name'", "length 1099511627776", "bytes left"});
    // key length: the key is replaced by a huge length field
    std::vector<uint8_t> k = gguf_builder().build();
    k[16] = 1;  // one kv
    gt::put<uint64_t>(k, ~0ull);
    k.resize(k.size() + 20, 'x');
    EXPECT_PARSE_ERROR(k, ENDLESS_ERR_FORMAT, {"key of metadata entry 0", "length 18446744073709551615"});
    // tensor name length
    gguf_builder t = base_file();
    t.tensors[1].name = std::string(40, 'n');
    auto tb = t.build();
    const std::string needle(40, 'n');
    auto it = std::search(tb.begin(), tb.end(), needle.begin(), needle.end());
    CHECK(it != tb.end());
    const uint64_t huge = 1ull << 50;
    std::memcpy(&*(it - 8), &huge, 8);
    EXPECT_PARSE_ERROR(tb, ENDLESS_ERR_FORMAT, {"name of tensor 1", "length 1125899906842624"});
}

TEST(bad_value_type_ids) {
    gguf_builder b = base_file();
    b.raw_kv("x.bad", 13, {0, 0, 0, 0});
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'x.bad'", "invalid value type 13"});
    b = base_file();
    b.raw_kv("x.bad", 0x80000000u, {0, 0, 0, 0});
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"invalid value type 2147483648"});
    std::vector<uint8_t> v;
    gt::put<uint32_t>(v, 99);
    gt::put<uint64_t>(v, 1);
    v.push_back(0);
    b = base_file();
    b.raw_kv("x.arr", gt::T_ARRAY, v);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'x.arr'", "invalid array element type 99"});
    // arrays of arrays: legal GGUF in theory, refused here as unsupported
    std::vector<uint8_t> nested;
    gt::put<uint32_t>(nested, gt::T_ARRAY);
    gt::put<uint64_t>(nested, 1);
    gt::put<uint32_t>(nested, gt::T_U8);
    gt::put<uint64_t>(nested, 1);
    nested.push_back(5);
    b = base_file();
    b.raw_kv("x.nested", gt::T_ARRAY, nested);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_UNSUPPORTED, {"key 'x.nested'", "array of arrays"});
}

TEST(bad_bool_values) {
    gguf_builder b = base_file();
    b.scalar<uint8_t>("tokenizer.ggml.add_bos_token", gt::T_BOOL, 2);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'tokenizer.ggml.add_bos_token'", "bool value 2", "must be 0 or 1"});
    b = base_file();
    b.arr<uint8_t>("x.flags", gt::T_BOOL, {0, 1, 255});
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'x.flags' element 2", "bool value 255"});
}

TEST(empty_names) {
    gguf_builder b = base_file();
    b.u32("", 1);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"metadata entry 4", "empty key"});
    b = base_file();
    b.tensors[0].name = "";
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"tensor 0", "empty name"});
}

TEST(duplicate_key) {
    gguf_builder b = base_file();
    b.u32("llama.block_count", 3);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"duplicate key 'llama.block_count'", "offsets"});
}

TEST(duplicate_tensor) {
    gguf_builder b = base_file();
    b.tensor("token_embd.weight", GGML_TYPE_F32, {4});
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"duplicate tensor name 'token_embd.weight'"});
}

TEST(unknown_tensor_type) {
    gguf_builder b = base_file();
    b.tensors[1].type = 77;
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"tensor 'blk.0.attn_q.weight' has unknown type 77"});
    b.tensors[1].type = 4;  // a retired ggml id
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"has unknown type 4"});
}

TEST(unsupported_tensor_type) {
    const std::pair<uint32_t, const char *> types[] = {
        {3, "q4_1"}, {6, "q5_0"}, {7, "q5_1"}, {9, "q8_1"}, {10, "q2_K"}, {11, "q3_K"}, {13, "q5_K"}, {15, "q8_K"}};
    for (const auto &t : types) {
        gguf_builder b = base_file();
        b.tensor("blk.0.ffn_down.weight", t.first, {256, 2});
        EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_UNSUPPORTED,
                           {"tensor 'blk.0.ffn_down.weight' has type " + std::string(t.second), "not supported"});
    }
}

TEST(bad_shapes) {
    auto with = [](std::vector<uint64_t> ne, uint32_t type = GGML_TYPE_F32, std::optional<uint32_t> n_dims = {}) {
        gguf_builder b = base_file();
        b.tensor("blk.1.ffn_up.weight", type, ne, std::vector<uint8_t>(64));
        b.last_tensor().n_dims = n_dims;
        return b.build();
    };
    EXPECT_PARSE_ERROR(with({}, GGML_TYPE_F32), ENDLESS_ERR_FORMAT, {"tensor 'blk.1.ffn_up.weight' has 0 dimensions"});
    EXPECT_PARSE_ERROR(with({1, 1, 1, 1, 1}), ENDLESS_ERR_FORMAT, {"tensor 'blk.1.ffn_up.weight' has 5 dimensions", "1 to 4"});
    // a huge n_dims with only a few ne values present
    EXPECT_PARSE_ERROR(with({4}, GGML_TYPE_F32, 0xffffffffu), ENDLESS_ERR_FORMAT, {"has 4294967295 dimensions"});
    EXPECT_PARSE_ERROR(with({4, 0}), ENDLESS_ERR_FORMAT, {"invalid shape [4, 0]", "ne[1] = 0"});
    EXPECT_PARSE_ERROR(with({1ull << 63}), ENDLESS_ERR_FORMAT, {"ne[0] = 9223372036854775808"});
    EXPECT_PARSE_ERROR(with({1ull << 32, 1ull << 32}), ENDLESS_ERR_FORMAT, {"element count overflows"});
    EXPECT_PARSE_ERROR(with({1ull << 62}), ENDLESS_ERR_FORMAT, {"byte size that overflows"});
    EXPECT_PARSE_ERROR(with({33, 2}, GGML_TYPE_Q8_0), ENDLESS_ERR_FORMAT,
                       {"tensor 'blk.1.ffn_up.weight' has ne[0] = 33", "not a multiple of the q8_0 block size 32"});
    EXPECT_PARSE_ERROR(with({128, 2}, GGML_TYPE_Q4_K), ENDLESS_ERR_FORMAT, {"not a multiple of the q4_K block size 256"});
    // ne[0] must be the multiple, not just the element count
    EXPECT_PARSE_ERROR(with({16, 32}, GGML_TYPE_Q4_0), ENDLESS_ERR_FORMAT, {"ne[0] = 16"});
}

TEST(misaligned_offset) {
    gguf_builder b = base_file();
    b.tensors[1].offset = 17 + 96;
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"tensor 'blk.0.attn_q.weight' has data offset 113", "alignment 32"});
    gguf_builder c = base_file();
    c.set_alignment(64);
    c.tensors[1].offset = 96;  // aligned to 32, not to 64
    EXPECT_PARSE_ERROR(c.build(), ENDLESS_ERR_FORMAT, {"data offset 96", "alignment 64"});
}

TEST(data_past_end) {
    gguf_builder b = base_file();
    b.tensors[1].offset = 1ull << 40;
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"tensor 'blk.0.attn_q.weight'", "extends past the end"});
    b.tensors[1].offset = ~0ull - 31;  // offset + size would wrap around
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"extends past the end"});
    // the file stops right after the tensor infos: the data section itself is missing
    gguf_builder c = base_file();
    size_t data_start = 0;
    auto bytes = c.build(&data_start);
    bytes.resize(data_start - 1);
    EXPECT_PARSE_ERROR(bytes, ENDLESS_ERR_FORMAT, {"data section should start at offset " + std::to_string(data_start)});
}

TEST(overlapping_tensors) {
    gguf_builder b = base_file();
    b.tensors[1].offset = 64;  // token_embd is 96 bytes at 0
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"tensors 'token_embd.weight'", "'blk.0.attn_q.weight'", "overlap"});
    gguf_builder c = base_file();
    c.tensors[0].offset = 0;
    c.tensors[1].offset = 0;
    EXPECT_PARSE_ERROR(c.build(), ENDLESS_ERR_FORMAT, {"overlap"});
}

TEST(bad_alignment_value) {
    for (uint32_t a : {0u, 3u, 48u, 0xffffffffu}) {
        gguf_builder b = base_file();
        b.u32("general.alignment", a);
        EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'general.alignment' is " + std::to_string(a), "not a power of two"});
    }
    gguf_builder b = base_file();
    b.u64("general.alignment", 64);
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"key 'general.alignment' has type u64, expected u32"});
    b = base_file();
    b.arr<uint32_t>("general.alignment", gt::T_U32, {32});
    EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"has type array of u32, expected u32"});
}

TEST(hostile_names_are_quoted) {
    gguf_builder b = base_file();
    b.tensors[1].name = std::string("evil\x01\n'name", 11) + std::string(500, 'z');
    b.tensors[1].type = 77;
    const std::string msg = EXPECT_PARSE_ERROR(b.build(), ENDLESS_ERR_FORMAT, {"'evil\\x01\\x0a\\x27name", "...'", "unknown type 77"});
    CHECK(msg.size() < 400);
}

// A quick mutation run: whatever the bytes, parse either succeeds or throws endless::error
// (ASan/UBSan builds catch anything worse). The long run is native/fuzz/run.sh.
TEST(random_mutations_fail_cleanly) {
    gguf_builder b = base_file();
    b.arr<int32_t>("x.arr", gt::T_I32, {1, 2, 3}).boolean("x.b", true).set_alignment(16);
    b.tensor("t.q4k", GGML_TYPE_Q4_K, {256});
    const auto seed = b.build();
    std::uniform_int_distribution<size_t> pos(0, seed.size() - 1);
    std::uniform_int_distribution<int> byte(0, 255), kind(0, 3);
    int parsed = 0, other = 0;
    for (int it = 0; it < 4000; it++) {
        std::vector<uint8_t> m = seed;
        const int edits = 1 + it % 4;
        for (int e = 0; e < edits; e++) {
            switch (kind(test::rng())) {
            case 0: m[pos(test::rng()) % m.size()] = (uint8_t)byte(test::rng()); break;
            case 1: m[pos(test::rng()) % m.size()] ^= (uint8_t)(1u << (byte(test::rng()) & 7)); break;
            case 2: m.resize(pos(test::rng()) % m.size() + 1); break;
            default: {
                // a small or extreme integer over 8 bytes
                const size_t p = pos(test::rng()) % m.size();
                const uint64_t vals[] = {0, 1, 2, 0x7fffffffffffffffull, ~0ull, 1ull << 32, 31, 33};
                const uint64_t v = vals[byte(test::rng()) % 8];
                std::memcpy(m.data() + p, &v, std::min<size_t>(8, m.size() - p));
            }
            }
        }
        try {
            auto f = parse_bytes(m);
            for (const auto &t : f->tensors()) {
                volatile uint8_t sink = 0;
                for (size_t i = 0; i < t.nbytes; i++) sink ^= t.data[i];
            }
            parsed++;
        } catch (const error &) {
        } catch (...) {
            other++;
        }
    }
    CHECK(other == 0);
    if (verbose()) std::printf("    %d of 4000 mutants parsed\n", parsed);
}

// ---- open() on real files ----

TEST(open_files) {
    char dir_tmpl[] = "/tmp/endless-gguf-test-XXXXXX";
    const char *dir = mkdtemp(dir_tmpl);
    CHECK(dir != nullptr);
    if (!dir) return;
    const std::string d = dir;

    const std::string missing = d + "/missing.gguf";
    expect_error([&] { gguf_file::open(missing); }, ENDLESS_ERR_IO, {"cannot open", "No such file or directory"}, missing + ": ", __LINE__);
    expect_error([&] { gguf_file::open(d); }, ENDLESS_ERR_IO, {"is a directory"}, d + ": ", __LINE__);
    expect_error([&] { gguf_file::open("/dev/null"); }, ENDLESS_ERR_IO, {"not a regular file"}, "/dev/null: ", __LINE__);

    const std::string empty = d + "/empty.gguf";
    FILE *fp = std::fopen(empty.c_str(), "wb");
    CHECK(fp != nullptr);
    if (fp) std::fclose(fp);
    expect_error([&] { gguf_file::open(empty); }, ENDLESS_ERR_IO, {"empty"}, empty + ": ", __LINE__);

    const std::string good = d + "/good.gguf";
    const auto bytes = base_file().build();
    fp = std::fopen(good.c_str(), "wb");
    if (fp) {
        std::fwrite(bytes.data(), 1, bytes.size(), fp);
        std::fclose(fp);
    }
    {
        auto f = gguf_file::open(good);
        CHECK(f->path() == good);
        CHECK(f->file_size() == bytes.size());
        CHECK(f->get_string_req("general.architecture") == "llama");
        CHECK(f->get_int_req("llama.block_count") == 2);
        const gguf_tensor *t = f->find_tensor("blk.0.attn_q.weight");
        CHECK(t && t->nbytes == 68 && t->data >= f->file_data() && t->data + t->nbytes <= f->file_data() + f->file_size());
        expect_error([&] { f->get_int_req("nope"); }, ENDLESS_ERR_FORMAT, {"missing required key 'nope'"}, good + ": ", __LINE__);
    }

    const std::string bad = d + "/bad.gguf";
    auto cut = bytes;
    cut.resize(cut.size() - 5);
    fp = std::fopen(bad.c_str(), "wb");
    if (fp) {
        std::fwrite(cut.data(), 1, cut.size(), fp);
        std::fclose(fp);
    }
    expect_error([&] { gguf_file::open(bad); }, ENDLESS_ERR_FORMAT, {"extends past the end"}, bad + ": ", __LINE__);

    std::remove(good.c_str());
    std::remove(bad.c_str());
    std::remove(empty.c_str());
    rmdir(d.c_str());
}

TEST_MAIN()
