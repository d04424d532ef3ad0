// Fuzz target for the GGUF reader. LLVMFuzzerTestOneInput parses the input with
// gguf_file::parse and, when it parses, touches every value the reader hands out (every getter on
// every metadata entry, every byte of every tensor), so a sanitizer sees any read the reader's
// validation lets through. Only endless::error may leave the reader; anything else is a finding.
//
// Built with clang's -fsanitize=fuzzer this is a libFuzzer target. Built with
// -DENDLESS_FUZZ_STANDALONE (any compiler) it has its own main(): a coverage-guided mutation
// loop (coverage from GCC/clang -fsanitize-coverage=trace-pc on the reader's objects), a
// reproducer for given files, and a writer of the seed corpus. See README.md and run.sh.
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
// Standalone driver: for machines without clang/libFuzzer.
//   fuzz_gguf --write-seeds DIR               write the seed corpus (built with gguf_builder)
//   fuzz_gguf -n N [-seed S] [-max-len L] DIR...  N coverage-guided mutations of the files in DIR
//   fuzz_gguf FILE...                         run each file once (reproduce a finding)
// A finding (sanitizer report, trap, uncaught exception) aborts the process after the input is
// written to ./crash-gguf-<pid>.bin.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "../tests/gguf_builder.h"

// ---- coverage: the reader's objects are compiled with -fsanitize-coverage=trace-pc, which
// calls this at every basic block. The driver itself is compiled without it. ----
namespace {
constexpr size_t fuzz_map_size = 1 << 16;
uint8_t fuzz_map[fuzz_map_size];     // hits of this execution, per (previous block, block) pair
uint8_t fuzz_virgin[fuzz_map_size];  // hit-count buckets seen so far
uintptr_t fuzz_prev_pc = 0;
bool fuzz_have_coverage = false;
}  // namespace

extern "C" void __sanitizer_cov_trace_pc() {
    const uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    const size_t idx = (size_t)((pc ^ fuzz_prev_pc) * 0x9E3779B97F4A7C15ull >> 48) & (fuzz_map_size - 1);
    if (fuzz_map[idx] != 255) fuzz_map[idx]++;
    fuzz_prev_pc = pc >> 1;
    fuzz_have_coverage = true;
}

namespace {

const std::vector<uint8_t> *fuzz_current = nullptr;
char fuzz_crash_name[64] = "crash-gguf.bin";  // crash-gguf-<pid>.bin, set at start

// Writes the input that was running to a file; called from signal handlers and sanitizer death
// callbacks, so only async-signal-safe calls.
void fuzz_dump_current() {
    if (!fuzz_current) return;
    const int fd = ::open(fuzz_crash_name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    const uint8_t *p = fuzz_current->data();
    size_t left = fuzz_current->size();
    while (left > 0) {
        const ssize_t w = ::write(fd, p, left);
        if (w <= 0) break;
        p += w;
        left -= (size_t)w;
    }
    ::close(fd);
    const char msg[] = "fuzz_gguf: finding; the input is in crash-gguf-<pid>.bin\n";
    (void)!::write(2, msg, sizeof msg - 1);
}

void fuzz_on_signal(int sig) {
    fuzz_dump_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

}  // namespace

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

void fuzz_install_handlers() {
    std::snprintf(fuzz_crash_name, sizeof fuzz_crash_name, "crash-gguf-%d.bin", (int)getpid());
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}) signal(sig, fuzz_on_signal);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(fuzz_dump_current);
}

// Runs one input from an exactly sized heap copy, so ASan flags a read one past the end.
bool fuzz_run_one(const std::vector<uint8_t> &input) {
    fuzz_current = &input;
    std::memset(fuzz_map, 0, sizeof fuzz_map);
    fuzz_prev_pc = 0;
    uint8_t *copy = input.empty() ? nullptr : (uint8_t *)std::malloc(input.size());
    if (copy) std::memcpy(copy, input.data(), input.size());
    LLVMFuzzerTestOneInput(copy, input.size());
    std::free(copy);
    fuzz_current = nullptr;
    // AFL-style: new coverage is a (edge, hit-count bucket) pair not seen before
    bool fresh = false;
    for (size_t i = 0; i < fuzz_map_size; i++) {
        const uint8_t c = fuzz_map[i];
        if (!c) continue;
        const uint8_t bucket = c == 1 ? 1 : c == 2 ? 2 : c == 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;
        if (!(fuzz_virgin[i] & bucket)) {
            fuzz_virgin[i] |= bucket;
            fresh = true;
        }
    }
    return fresh;
}

size_t fuzz_coverage_count() {
    size_t n = 0;
    for (uint8_t v : fuzz_virgin) n += v != 0;
    return n;
}

bool fuzz_read_file(const std::string &path, std::vector<uint8_t> &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

void fuzz_read_inputs(const std::string &path, std::vector<std::vector<uint8_t>> &out) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        std::fprintf(stderr, "fuzz_gguf: cannot read %s\n", path.c_str());
        std::exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        std::vector<uint8_t> b;
        if (fuzz_read_file(path, b)) out.push_back(std::move(b));
        return;
    }
    DIR *d = opendir(path.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent *e = readdir(d)) {
        if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto &n : names) {
        std::vector<uint8_t> b;
        if (fuzz_read_file(n, b)) out.push_back(std::move(b));
    }
}

// ---- seeds: small valid files that reach every part of the reader ----
std::vector<std::pair<std::string, std::vector<uint8_t>>> fuzz_seeds() {
    using gguf_test::gguf_builder;
    namespace gt = gguf_test;
    std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;

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

// ---- mutations ----
struct fuzz_mutator {
    std::mt19937_64 rng;
    explicit fuzz_mutator(uint64_t seed) : rng(seed) {}
    size_t below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

    void put_int(std::vector<uint8_t> &m, size_t width) {
        if (m.size() < width) return;
        static const uint64_t vals[] = {0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 14, 15, 16, 30, 31, 32, 33, 64, 77, 255, 256,
                                        0x7fff, 0xffff, 0x7fffffffu, 0x80000000u, 0xffffffffu, 1ull << 32,
                                        0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull};
        uint64_t v = below(4) == 0 ? (uint64_t)m.size() - below(64) : vals[below(sizeof vals / sizeof vals[0])];
        if (below(4) == 0) v += below(9) - 4;
        const size_t p = below(m.size() - width + 1);
        std::memcpy(m.data() + p, &v, width);
    }

    void mutate(std::vector<uint8_t> &m, const std::vector<std::vector<uint8_t>> &corpus, size_t max_len) {
        const int n_ops = 1 << below(4);
        for (int op = 0; op < n_ops; op++) {
            if (m.empty()) m.push_back(0);
            switch (below(10)) {
            case 0: m[below(m.size())] ^= (uint8_t)(1u << below(8)); break;
            case 1: m[below(m.size())] = (uint8_t)rng(); break;
            case 2: put_int(m, 4); break;
            case 3: put_int(m, 8); break;
            case 4: {  // add or subtract a little from a u32/u64 field
                const size_t w = below(2) ? 4 : 8;
                if (m.size() < w) break;
                const size_t p = below(m.size() - w + 1);
                uint64_t v = 0;
                std::memcpy(&v, m.data() + p, w);
                v += below(33) - 16;
                std::memcpy(m.data() + p, &v, w);
                break;
            }
            case 5: m.resize(below(m.size()) + (below(8) == 0 ? 0 : 1)); break;  // truncate
            case 6: {  // delete a chunk
                const size_t p = below(m.size()), n = 1 + below(std::min<size_t>(64, m.size() - p));
                m.erase(m.begin() + p, m.begin() + p + n);
                break;
            }
            case 7: {  // insert a copy of a chunk, or random bytes
                const size_t p = below(m.size() + 1), src = below(m.size()), n = 1 + below(std::min<size_t>(64, m.size() - src));
                std::vector<uint8_t> chunk(m.begin() + src, m.begin() + src + n);
                if (below(3) == 0) for (auto &c : chunk) c = (uint8_t)rng();
                m.insert(m.begin() + p, chunk.begin(), chunk.end());
                break;
            }
            case 8: {  // overwrite with a chunk from elsewhere in the input
                const size_t src = below(m.size()), dst = below(m.size());
                const size_t n = 1 + below(std::min<size_t>(32, std::min(m.size() - src, m.size() - dst)));
                std::memmove(m.data() + dst, m.data() + src, n);
                break;
            }
            default: {  // splice: our prefix, another input's suffix
                const auto &o = corpus[below(corpus.size())];
                if (o.empty()) break;
                const size_t cut = below(m.size()), from = below(o.size());
                m.resize(cut);
                m.insert(m.end(), o.begin() + from, o.end());
                break;
            }
            }
        }
        if (m.size() > max_len) m.resize(max_len);
    }
};

int fuzz_usage() {
    std::fprintf(stderr,
                 "usage: fuzz_gguf --write-seeds DIR\n"
                 "       fuzz_gguf -n N [-seed S] [-max-len L] [-corpus-out DIR] DIR|FILE...\n"
                 "       fuzz_gguf FILE...   (run each once)\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv) {
    long long n_iter = -1;
    uint64_t seed = std::random_device{}();
    size_t max_len = 1 << 16;
    std::string corpus_out;
    std::vector<std::string> paths;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) std::exit(fuzz_usage());
            return argv[++i];
        };
        if (a == "--write-seeds") {
            const std::string dir = next();
            mkdir(dir.c_str(), 0755);
            for (const auto &s : fuzz_seeds()) {
                std::ofstream out(dir + "/" + s.first, std::ios::binary);
                out.write((const char *)s.second.data(), (std::streamsize)s.second.size());
                if (!out) { std::fprintf(stderr, "fuzz_gguf: cannot write %s/%s\n", dir.c_str(), s.first.c_str()); return 1; }
            }
            return 0;
        } else if (a == "-n") {
            n_iter = std::atoll(next().c_str());
        } else if (a == "-seed") {
            seed = std::strtoull(next().c_str(), nullptr, 10);
        } else if (a == "-max-len") {
            max_len = std::strtoull(next().c_str(), nullptr, 10);
        } else if (a == "-corpus-out") {
            corpus_out = next();
        } else if (!a.empty() && a[0] == '-') {
            return fuzz_usage();
        } else {
            paths.push_back(a);
        }
    }
    fuzz_install_handlers();
    std::vector<std::vector<uint8_t>> corpus;
    for (const auto &p : paths) fuzz_read_inputs(p, corpus);

    if (n_iter < 0) {  // reproduce mode
        if (corpus.empty()) return fuzz_usage();
        for (const auto &in : corpus) fuzz_run_one(in);
        std::printf("fuzz_gguf: ran %zu input(s), no finding\n", corpus.size());
        return 0;
    }

    if (corpus.empty()) for (auto &s : fuzz_seeds()) corpus.push_back(std::move(s.second));
    for (const auto &in : corpus) fuzz_run_one(in);
    if (!fuzz_have_coverage) {
        std::fprintf(stderr, "fuzz_gguf: no coverage feedback (reader not built with -fsanitize-coverage=trace-pc): "
                             "mutating the seeds blindly\n");
    }
    std::printf("fuzz_gguf: seed %llu, %zu seed input(s), %zu coverage points, %lld executions\n",
                (unsigned long long)seed, corpus.size(), fuzz_coverage_count(), n_iter);
    std::fflush(stdout);

    fuzz_mutator mut(seed);
    const auto t0 = std::chrono::steady_clock::now();
    const long long report_every = std::max<long long>(1, n_iter / 20);
    const size_t corpus_cap = 20000;
    size_t added = 0;
    std::vector<uint8_t> input;
    for (long long it = 1; it <= n_iter; it++) {
        input = corpus[mut.below(corpus.size())];
        mut.mutate(input, corpus, max_len);
        if (fuzz_run_one(input) && corpus.size() < corpus_cap) {
            corpus.push_back(input);
            added++;
            if (!corpus_out.empty()) {
                char name[64];
                std::snprintf(name, sizeof name, "/cov-%06zu.bin", added);
                std::ofstream out(corpus_out + name, std::ios::binary);
                out.write((const char *)input.data(), (std::streamsize)input.size());
            }
        }
        if (it % report_every == 0 || it == n_iter) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("#%lld cov %zu corpus %zu exec/s %.0f\n", it, fuzz_coverage_count(), corpus.size(), it / std::max(s, 1e-9));
            std::fflush(stdout);
        }
    }
    std::printf("fuzz_gguf: %lld executions, no finding (coverage points %zu, corpus %zu)\n", n_iter,
                fuzz_coverage_count(), corpus.size());
    return 0;
}
#endif  // ENDLESS_FUZZ_STANDALONE
