// Fuzz target for the GGUF reader. LLVMFuzzerTestOneInput parses the input with
// gguf_file::parse and, when it parses, touches every value the reader hands out (every getter on
// every metadata entry, every byte of every tensor), so a sanitizer sees any read the reader's
// validation lets through. Only endless::error may leave the reader; anything else is a finding.
//
// Built with clang's -fsanitize=fuzzer this is a libFuzzer target. Built with
// -DENDLESS_FUZZ_STANDALONE (any compiler) it has a main() from the shared standalone driver
// (standalone_driver.h): a coverage-guided mutation loop (coverage from GCC/clang
// -fsanitize-coverage=trace-pc on the reader's objects), a reproducer for given files, and a
// writer of the seed corpus. See README.md and run.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "error.h"
#include "gguf.h"

namespace {

volatile uint64_t fuzz_sink;  // keeps the touched values alive

void fuzz_touch_kv(const endless::gguf_file &f, const endless::gguf_kv &kv) {
    uint64_t acc = kv.n + kv.type + kv.elem_type;
    // the fitting getter on every element, the others on the first and last (they may throw)
    for (uint64_t j = 0; j < kv.n; j++) {
        const bool edge = j == 0 || j + 1 == kv.n;
        if (kv.elem_type == endless::GGUF_TYPE_STRING) {
            std::string_view s = kv.get_string(j);
            for (char c : s) acc = acc * 31 + (unsigned char)c;
        } else if (kv.elem_type == endless::GGUF_TYPE_FLOAT32 || kv.elem_type == endless::GGUF_TYPE_FLOAT64) {
            const double v = kv.get_float(j);
            acc += (uint64_t)(v == v);
        } else {
            try { acc += (uint64_t)kv.get_int(j); } catch (const endless::error &) { acc++; }
        }
        if (!edge) continue;
        try { acc += (uint64_t)kv.get_int(j); } catch (const endless::error &) { acc++; }
        try { acc += kv.get_uint(j); } catch (const endless::error &) { acc++; }
        try { acc += (uint64_t)(kv.get_float(j) != 0); } catch (const endless::error &) { acc++; }
        try { acc += kv.get_string(j).size(); } catch (const endless::error &) { acc++; }
    }
    // out of range on purpose
    try { acc += (uint64_t)kv.get_int(kv.n); } catch (const endless::error &) { acc++; }
    try { acc += kv.get_string(kv.n).size(); } catch (const endless::error &) { acc++; }
    // the file-level typed getters by key
    try { acc += f.get_string(kv.key, "").size(); } catch (const endless::error &) { acc++; }
    try { acc += (uint64_t)f.get_int(kv.key, 0); } catch (const endless::error &) { acc++; }
    try { acc += (uint64_t)(f.get_float(kv.key, 0.0) != 0); } catch (const endless::error &) { acc++; }
    try { acc += f.get_bool(kv.key, false); } catch (const endless::error &) { acc++; }
    try { acc += (uint64_t)f.get_int_req(kv.key); } catch (const endless::error &) { acc++; }
    try { acc += f.get_string_req(kv.key).size(); } catch (const endless::error &) { acc++; }
    try { acc += (uint64_t)(f.get_float_req(kv.key) != 0); } catch (const endless::error &) { acc++; }
    if (f.find(kv.key) != &kv) __builtin_trap();  // keys are unique, so find() must return this one
    fuzz_sink = fuzz_sink + acc;
}

void fuzz_touch_tensor(const endless::gguf_file &f, const endless::gguf_tensor &t) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();
    // the reader promises: data inside the file, nbytes consistent with type and shape
    const uintptr_t lo = (uintptr_t)f.file_data(), hi = lo + f.file_size(), p = (uintptr_t)t.data;
    if (p < lo || p > hi || t.nbytes > hi - p) __builtin_trap();
    if (t.n_elements() <= 0 || endless::ggml_row_size(t.type, t.n_elements()) != t.nbytes) __builtin_trap();
    uint64_t sum = 0;
    for (size_t i = 0; i < t.nbytes; i++) sum = sum * 131 + t.data[i];
    fuzz_sink = fuzz_sink + sum + (uint64_t)t.ne[0] + t.offset;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        auto f = endless::gguf_file::parse(data, size, "fuzz.gguf");
        for (const auto &kv : f->kvs()) fuzz_touch_kv(*f, kv);
        for (const auto &t : f->tensors()) fuzz_touch_tensor(*f, t);
        (void)f->find("general.architecture");
        (void)f->find_tensor("token_embd.weight");
    } catch (const endless::error &e) {
        // every error text starts with the name given to parse()
        if (std::string(e.what()).rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
    }
    return 0;
}

#ifdef ENDLESS_FUZZ_STANDALONE
// ---------------------------------------------------------------------------------------------
// Standalone build: the shared driver in standalone_driver.h (for machines without
// clang/libFuzzer), with this target's seeds and mutation profile.
//   fuzz_gguf --write-seeds DIR                   write the seed corpus (built with gguf_builder)
//   fuzz_gguf -n N [-seed S] [-max-len L] DIR...  N coverage-guided mutations of the files in DIR
//   fuzz_gguf FILE...                             run each file once (reproduce a finding)
// A finding aborts the process after the input is written to ./crash-gguf-<pid>.bin.
#include "../tests/gguf_builder.h"
#include "standalone_driver.h"

namespace {

// ---- seeds: small valid files that reach every part of the reader ----
fuzz_seed_list gguf_make_seeds() {
    using gguf_test::gguf_builder;
    namespace gt = gguf_test;
    fuzz_seed_list seeds;

    gguf_builder model;
    model.str("general.architecture", "llama").str("general.name", "tiny");
    model.u32("llama.block_count", 1).u32("llama.context_length", 64).u32("llama.embedding_length", 32);
    model.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f).boolean("tokenizer.ggml.add_bos_token", true);
    model.str("tokenizer.ggml.model", "gpt2").arr_str("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b", "ab"});
    model.arr<float>("tokenizer.ggml.scores", gt::T_F32, {0, 0, -1, -2, -3});
    model.arr<int32_t>("tokenizer.ggml.token_type", gt::T_I32, {3, 3, 1, 1, 1});
    model.arr_str("tokenizer.ggml.merges", {"a b"});
    model.tensor("token_embd.weight", 0, {32, 5}, 1);
    model.tensor("output_norm.weight", 1, {32}, 2);
    model.tensor("blk.0.attn_q.weight", 8, {32, 2}, 3);
    model.tensor("blk.0.attn_k.weight", 2, {32, 2}, 4);
    model.tensor("blk.0.ffn_up.weight", 30, {4, 2, 2}, 5);
    seeds.push_back({"model_v3.gguf", model.build()});

    gguf_builder v2 = model;
    v2.version = 2;
    v2.set_alignment(64);
    seeds.push_back({"model_v2_align64.gguf", v2.build()});

    gguf_builder kq;
    kq.set_alignment(16);
    kq.tensor("blk.0.ffn_down.weight", 12, {256, 1}, 6);
    kq.tensor("output.weight", 14, {256, 1, 1, 1}, 7);
    seeds.push_back({"kquants_align16.gguf", kq.build()});

    gguf_builder scalars;
    scalars.u8("a", 1).i8("b", -1).u16("c", 2).i16("d", -2).u32("e", 3).i32("f", -3).u64("g", 4).i64("h", -4);
    scalars.f32("i", 0.5f).f64("j", 0.25).boolean("k", false).str("l", "text");
    seeds.push_back({"scalars.gguf", scalars.build()});

    gguf_builder arrays;
    arrays.arr<uint8_t>("a", gt::T_U8, {1, 2}).arr<int8_t>("b", gt::T_I8, {-1}).arr<uint16_t>("c", gt::T_U16, {7});
    arrays.arr<int16_t>("d", gt::T_I16, {-7}).arr<uint32_t>("e", gt::T_U32, {9}).arr<int32_t>("f", gt::T_I32, {-9});
    arrays.arr<uint64_t>("g", gt::T_U64, {~0ull}).arr<int64_t>("h", gt::T_I64, {-1}).arr<float>("i", gt::T_F32, {1.5f});
    arrays.arr<double>("j", gt::T_F64, {2.5}).arr<uint8_t>("k", gt::T_BOOL, {0, 1}).arr_str("l", {"x", ""});
    arrays.arr<uint32_t>("m", gt::T_U32, {});
    arrays.tensor("t", 0, {1}, 8);
    seeds.push_back({"arrays.gguf", arrays.build()});

    gguf_builder empty;
    seeds.push_back({"empty_header.gguf", empty.build()});
    return seeds;
}

// Interesting integers for a GGUF file: counts, lengths, type ids (0..30), alignments, limits.
const uint64_t gguf_fuzz_ints[] = {0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 14, 15, 16, 30, 31, 32, 33, 64, 77, 255, 256,
                                   0x7fff, 0xffff, 0x7fffffffu, 0x80000000u, 0xffffffffu, 1ull << 32,
                                   0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull};

}  // namespace

int main(int argc, char **argv) {
    // fields in fuzz_mutation_profile's order: the integers above (a quarter of them the input's
    // size minus a little: tensor data offsets, lengths), no floats, up to 16 operations a mutant,
    // nudges of +-16, byte-granular deletions, inserts up to 64 bytes, copies up to 32, plain splices
    const fuzz_mutation_profile prof{gguf_fuzz_ints, std::size(gguf_fuzz_ints), true, nullptr, 0, 4, 16, false, 64, 32, false};
    const fuzz_target target{"gguf", "reader", 1 << 16, prof, gguf_make_seeds, nullptr, nullptr, nullptr};
    return fuzz_standalone_main(argc, argv, target);
}
#endif  // ENDLESS_FUZZ_STANDALONE
