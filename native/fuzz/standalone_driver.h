// The standalone coverage-guided fuzz driver shared by the fuzz targets in this folder, for machines
// without clang/libFuzzer (g++ has -fsanitize-coverage=trace-pc but no libFuzzer). A target
// includes this header once, at its end, under #ifdef ENDLESS_FUZZ_STANDALONE, after defining
// LLVMFuzzerTestOneInput, and its main() calls fuzz_standalone_main() with a fuzz_target that
// says what differs per target: its name (crash files, messages), the seed corpus, how to mutate
// its format, and optional hooks (set-up before the first input, clean-up when a finding ends the
// process, a word for the start line). The libFuzzer build never sees this header.
//
// What the driver does:
//   fuzz_<name> --write-seeds DIR                                  write the target's seed corpus
//   fuzz_<name> -n N [-seed S] [-max-len L] [-corpus-out DIR] DIR|FILE...   N mutations, guided
//   fuzz_<name> FILE...                                           run each once (reproduce)
// Coverage: the code under test is compiled with -fsanitize-coverage=trace-pc, which calls
// __sanitizer_cov_trace_pc (defined here) at every basic block; edges (previous block, block) are
// hashed into a 64K map and counted in AFL-style hit-count buckets; a mutant that reaches a new
// (edge, bucket) pair joins the corpus. A finding (sanitizer report, trap, uncaught exception)
// aborts the process after the input is written to ./crash-<name>-<pid>.bin.
#ifndef ENDLESS_FUZZ_STANDALONE_DRIVER_H
#define ENDLESS_FUZZ_STANDALONE_DRIVER_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

using fuzz_seed_list = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

// How a target's inputs are mutated. The operations are the same for every target (bit flips,
// random bytes, interesting 32/64-bit integers, small increments of integer fields, truncation,
// chunk deletion/insertion/copy, splicing two inputs); these fields tune them to the format.
// The targets initialize this and fuzz_target positionally (one line each): keep the field order.
struct fuzz_mutation_profile {
    const uint64_t *ints;     // interesting integers written as 32/64-bit fields
    size_t n_ints;
    bool size_ints;           // a quarter of the integers are the input size minus 0..63 (offsets)
    const float *floats;      // with n_floats > 0, an extra operation writes one of these as f32
    size_t n_floats;
    int max_ops_log2;         // 1 << below(max_ops_log2) operations per mutant
    int nudge;                // increments of integer fields in -nudge .. +nudge
    bool word_deletes;        // deletions are mostly 4 << 0..5 bytes (whole i32 tokens, K/V rows)
    size_t insert_max;        // longest inserted chunk
    size_t overwrite_max;     // longest chunk copied over another part of the input
    bool aligned_splices;     // half the splices keep the offset (another state's tail in place)
};

struct fuzz_target {
    const char *name;           // "gguf": binary fuzz_gguf, crash files crash-gguf-<pid>.bin
    const char *covered;        // what gets trace-pc, for the no-coverage warning
    size_t max_len;             // default -max-len
    fuzz_mutation_profile profile;
    fuzz_seed_list (*seeds)();  // the seed corpus (also the corpus when no input is given)
    void (*setup)();            // optional: runs before the signal handlers and the first input
    // optional: runs when a finding ends the process (from a signal handler or a sanitizer's death
    // callback, so async-signal-safe calls only); atexit handlers do not run then
    void (*on_finding)();
    std::string (*describe)();  // optional: extra words for the start line, e.g. "21 base states, "
};

// ---- coverage: the code under test calls this at every basic block; the driver itself is
// compiled without -fsanitize-coverage, so only the target's own blocks count ----
namespace {
constexpr size_t fuzz_map_size = 1 << 16;
alignas(8) uint8_t fuzz_map[fuzz_map_size];  // hits of this execution, per (previous block, block)
uint8_t fuzz_virgin[fuzz_map_size];          // hit-count buckets seen so far
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

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

const fuzz_target *fuzz_the_target = nullptr;
const std::vector<uint8_t> *fuzz_current = nullptr;
char fuzz_crash_name[96] = "crash.bin";  // crash-<name>-<pid>.bin, set at start
char fuzz_crash_msg[160] = "fuzz: finding\n";

// Writes the input that was running to the crash file; called from signal handlers and sanitizer
// death callbacks, so only async-signal-safe calls (the names were formatted at start).
void fuzz_dump_current() {
    // A sanitizer's death callback and then its abort() both land here: dump once.
    static volatile sig_atomic_t dumped = 0;
    if (dumped) return;
    dumped = 1;
    // The target's clean-up first, even without an input (a finding while the seeds are built);
    // both old copies of this driver differed here, the snapshot target's (clean up always) is kept.
    if (fuzz_the_target && fuzz_the_target->on_finding) fuzz_the_target->on_finding();
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
    (void)!::write(2, fuzz_crash_msg, std::strlen(fuzz_crash_msg));
}

void fuzz_on_signal(int sig) {
    fuzz_dump_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

void fuzz_install_handlers() {
    std::snprintf(fuzz_crash_name, sizeof fuzz_crash_name, "crash-%s-%d.bin", fuzz_the_target->name, (int)getpid());
    std::snprintf(fuzz_crash_msg, sizeof fuzz_crash_msg, "fuzz_%s: finding; the input is in crash-%s-<pid>.bin\n",
                  fuzz_the_target->name, fuzz_the_target->name);
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP}) signal(sig, fuzz_on_signal);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(fuzz_dump_current);
}

uint8_t fuzz_bucket(uint8_t c) {
    return c == 1 ? 1 : c == 2 ? 2 : c == 3 ? 4 : c < 8 ? 8 : c < 16 ? 16 : c < 32 ? 32 : c < 128 ? 64 : 128;
}

// Runs one input and returns whether it reached new coverage (AFL-style: an (edge, hit-count
// bucket) pair not seen before).
bool fuzz_run_one(const std::vector<uint8_t> &input) {
    fuzz_current = &input;
    std::memset(fuzz_map, 0, sizeof fuzz_map);
    fuzz_prev_pc = 0;
    // Always from an exactly sized heap copy, as libFuzzer does, so ASan flags a read one byte past
    // the end whatever the target does (of the two old copies, only the GGUF one did it here; the
    // snapshot target makes its own copies as well, which it needs for its checksummed variant).
    uint8_t *copy = input.empty() ? nullptr : (uint8_t *)std::malloc(input.size());
    if (copy) std::memcpy(copy, input.data(), input.size());
    LLVMFuzzerTestOneInput(copy, input.size());
    std::free(copy);
    fuzz_current = nullptr;
    bool fresh = false;
    for (size_t i = 0; i < fuzz_map_size; i += 8) {
        // The map is sparse: skip empty 8-byte words (the snapshot copy's scan, kept for speed;
        // memcpy instead of its uint64_t* cast, which broke the aliasing rules).
        uint64_t word;
        std::memcpy(&word, fuzz_map + i, sizeof word);
        if (word == 0) continue;
        for (size_t j = i; j < i + 8; j++) {
            if (!fuzz_map[j]) continue;
            const uint8_t bucket = fuzz_bucket(fuzz_map[j]);
            if (!(fuzz_virgin[j] & bucket)) {
                fuzz_virgin[j] |= bucket;
                fresh = true;
            }
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

// A file, or every file of a directory (sorted by name, so runs repeat).
void fuzz_read_inputs(const std::string &path, std::vector<std::vector<uint8_t>> &out) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        std::fprintf(stderr, "fuzz_%s: cannot read %s\n", fuzz_the_target->name, path.c_str());
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
    while (dirent *e = readdir(d))
        if (e->d_name[0] != '.') names.push_back(path + "/" + e->d_name);
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto &n : names) {
        std::vector<uint8_t> b;
        if (fuzz_read_file(n, b)) out.push_back(std::move(b));
    }
}

// The mutations, tuned by the target's profile. The order of the random draws is part of the
// behaviour: for a given profile and RNG seed the mutants are the same as before the two copies
// of the driver were merged.
struct fuzz_mutator {
    std::mt19937_64 rng;
    const fuzz_mutation_profile &prof;
    fuzz_mutator(uint64_t seed, const fuzz_mutation_profile &p) : rng(seed), prof(p) {}
    size_t below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

    void put_int(std::vector<uint8_t> &m, size_t width) {
        if (m.size() < width) return;
        uint64_t v = prof.size_ints && below(4) == 0 ? (uint64_t)m.size() - below(64) : prof.ints[below(prof.n_ints)];
        if (below(4) == 0) v += below(9) - 4;
        const size_t p = below(m.size() - width + 1);
        std::memcpy(m.data() + p, &v, width);
    }

    void put_float(std::vector<uint8_t> &m) {
        if (m.size() < 4) return;
        const float v = prof.floats[below(prof.n_floats)];
        std::memcpy(m.data() + below(m.size() - 3), &v, 4);
    }

    void mutate(std::vector<uint8_t> &m, const std::vector<std::vector<uint8_t>> &corpus, size_t max_len) {
        const bool floats = prof.n_floats > 0;
        const int n_ops = 1 << below((size_t)prof.max_ops_log2);
        for (int op = 0; op < n_ops; op++) {
            if (m.empty()) m.push_back(0);
            size_t kind = below(floats ? 11 : 10);
            if (floats && kind == 5) {
                put_float(m);
                continue;
            }
            if (floats && kind > 5) kind--;
            switch (kind) {
            case 0: m[below(m.size())] ^= (uint8_t)(1u << below(8)); break;
            case 1: m[below(m.size())] = (uint8_t)rng(); break;
            case 2: put_int(m, 4); break;
            case 3: put_int(m, 8); break;
            case 4: {  // add or subtract a little from a u32/u64 field, aligned or not
                const size_t w = below(2) ? 4 : 8;
                if (m.size() < w) break;
                const size_t p = below(m.size() - w + 1);
                uint64_t v = 0;
                std::memcpy(&v, m.data() + p, w);
                v += below((size_t)(2 * prof.nudge + 1)) - (uint64_t)prof.nudge;
                std::memcpy(m.data() + p, &v, w);
                break;
            }
            case 5: m.resize(below(m.size()) + (below(8) == 0 ? 0 : 1)); break;  // truncate
            case 6: {  // delete a chunk
                const size_t p = below(m.size());
                const size_t n = prof.word_deletes ? std::min(m.size() - p, below(3) ? (size_t)4 << below(6) : 1 + below(64))
                                                   : 1 + below(std::min<size_t>(64, m.size() - p));
                m.erase(m.begin() + p, m.begin() + p + n);
                break;
            }
            case 7: {  // insert a copy of a chunk, or random bytes
                const size_t p = below(m.size() + 1), src = below(m.size());
                const size_t n = 1 + below(std::min<size_t>(prof.insert_max, m.size() - src));
                std::vector<uint8_t> chunk(m.begin() + src, m.begin() + src + n);
                if (below(3) == 0)
                    for (auto &c : chunk) c = (uint8_t)rng();
                m.insert(m.begin() + p, chunk.begin(), chunk.end());
                break;
            }
            case 8: {  // overwrite with a chunk from elsewhere in the input
                const size_t src = below(m.size()), dst = below(m.size());
                const size_t n = 1 + below(std::min<size_t>(prof.overwrite_max, std::min(m.size() - src, m.size() - dst)));
                std::memmove(m.data() + dst, m.data() + src, n);
                break;
            }
            default: {  // splice: our prefix, another input's suffix
                const auto &o = corpus[below(corpus.size())];
                if (o.empty()) break;
                const size_t cut = below(m.size());
                const size_t from = prof.aligned_splices && below(2) ? std::min(cut, o.size() - 1) : below(o.size());
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
    const char *n = fuzz_the_target->name;
    std::fprintf(stderr,
                 "usage: fuzz_%s --write-seeds DIR\n"
                 "       fuzz_%s -n N [-seed S] [-max-len L] [-corpus-out DIR] DIR|FILE...\n"
                 "       fuzz_%s FILE...   (run each once)\n",
                 n, n, n);
    return 2;
}

int fuzz_write_seeds(const std::string &dir) {
    mkdir(dir.c_str(), 0755);
    for (const auto &s : fuzz_the_target->seeds()) {
        std::ofstream out(dir + "/" + s.first, std::ios::binary);
        out.write((const char *)s.second.data(), (std::streamsize)s.second.size());
        if (!out) {
            std::fprintf(stderr, "fuzz_%s: cannot write %s/%s\n", fuzz_the_target->name, dir.c_str(), s.first.c_str());
            return 1;
        }
    }
    return 0;
}

// N mutations of the corpus; returns only when no finding ended the process.
void fuzz_loop(std::vector<std::vector<uint8_t>> &corpus, long long n_iter, uint64_t seed, size_t max_len,
               const std::string &corpus_out) {
    const char *name = fuzz_the_target->name;
    fuzz_mutator mut(seed, fuzz_the_target->profile);
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
                char file[64];
                std::snprintf(file, sizeof file, "/cov-%06zu.bin", added);
                std::ofstream out(corpus_out + file, std::ios::binary);
                out.write((const char *)input.data(), (std::streamsize)input.size());
            }
        }
        if (it % report_every == 0 || it == n_iter) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("#%lld cov %zu corpus %zu exec/s %.0f\n", it, fuzz_coverage_count(), corpus.size(), it / std::max(s, 1e-9));
            std::fflush(stdout);
        }
    }
    std::printf("fuzz_%s: %lld executions, no finding (coverage points %zu, corpus %zu)\n", name, n_iter, fuzz_coverage_count(),
                corpus.size());
}

}  // namespace

// The target's main(): parses the command line above and runs it.
inline int fuzz_standalone_main(int argc, char **argv, const fuzz_target &target) {
    fuzz_the_target = &target;
    long long n_iter = -1;
    uint64_t seed = std::random_device{}();
    size_t max_len = target.max_len;
    std::string corpus_out;
    std::vector<std::string> paths;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) std::exit(fuzz_usage());
            return argv[++i];
        };
        if (a == "--write-seeds") {
            return fuzz_write_seeds(next());
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
    if (target.setup) target.setup();
    fuzz_install_handlers();
    std::vector<std::vector<uint8_t>> corpus;
    for (const auto &p : paths) fuzz_read_inputs(p, corpus);

    if (n_iter < 0) {  // reproduce mode
        if (corpus.empty()) return fuzz_usage();
        for (const auto &in : corpus) fuzz_run_one(in);
        std::printf("fuzz_%s: ran %zu input(s), no finding\n", target.name, corpus.size());
        return 0;
    }

    if (corpus.empty())
        for (auto &s : target.seeds()) corpus.push_back(std::move(s.second));
    for (const auto &in : corpus) fuzz_run_one(in);
    if (!fuzz_have_coverage)
        std::fprintf(stderr, "fuzz_%s: no coverage feedback (%s not built with -fsanitize-coverage=trace-pc): "
                             "mutating the seeds blindly\n", target.name, target.covered);
    const std::string extra = target.describe ? target.describe() : std::string();
    std::printf("fuzz_%s: seed %llu, %zu seed input(s), %s%zu coverage points, %lld executions\n", target.name,
                (unsigned long long)seed, corpus.size(), extra.c_str(), fuzz_coverage_count(), n_iter);
    std::fflush(stdout);
    fuzz_loop(corpus, n_iter, seed, max_len, corpus_out);
    return 0;
}

#endif  // ENDLESS_FUZZ_STANDALONE_DRIVER_H
