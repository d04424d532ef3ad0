// Fuzz target for the snapshot reader (session::restore_bytes and kv_cache::deserialize).
//
// At start-up it builds a tiny random llama model in memory (native/tests/gguf_builder.h), writes
// it to a temporary file once, loads it on the CPU with one thread (so logits are deterministic)
// and creates one session (S=2, W=8, M=4, B=6, batch 4). Each input is restored twice: as is,
// and with its last 32 bytes replaced by the SHA-256 of the rest, so that mutations get past the
// checksum and reach the parser behind it.
//
// Promises checked (anything else is a finding, and so is any sanitizer report):
//   - only endless::error leaves restore_bytes, with status FORMAT or MISMATCH and a text that
//     starts with the `where` prefix given to it;
//   - after a failed restore the session is untouched: tokens(), stats() and the last logits are
//     exactly what they were, and the next decoded token gives bit-identical logits to the same
//     token decoded from the untouched state;
//   - after a successful restore the session is consistent (stats agree with tokens(), the cache
//     did not grow) and still works: decode, a branch (begin, decode, discard), pinned memory.
// Every input starts from one of a few fixed base states (chosen by the input's size, so a
// finding reproduces from its file alone), restored from a snapshot when the session left it.
//
// Built with clang's -fsanitize=fuzzer this is a libFuzzer target. Built with
// -DENDLESS_FUZZ_STANDALONE it has a main() from the coverage-guided driver it shares with
// fuzz_gguf.cpp (standalone_driver.h; coverage from -fsanitize-coverage=trace-pc on session.cpp
// and kv_cache.cpp).
// See README.md and run_snapshot.sh (`native/fuzz/run_snapshot.sh [N] [SEED]`).
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../tests/gguf_builder.h"
#include "endless.h"
#include "error.h"
#include "model.h"
#include "sampler.h"
#include "session.h"
#include "sha256.h"

namespace {

// ---- the model and session under test ----

constexpr int snap_n_vocab = 48, snap_n_embd = 32, snap_n_layer = 2, snap_n_head = 4, snap_n_head_kv = 1, snap_n_ff = 48;
constexpr int snap_n_ctx = 64;

endless::cache_params snap_cache_params() {
    endless::cache_params p;
    p.n_sinks = 2;
    p.n_window = 8;
    p.n_memory_max = 4;
    p.n_branch_max = 6;
    p.n_batch = 4;
    return p;
}

std::vector<uint8_t> snap_f32_bytes(const std::vector<float> &v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

// A deterministic random-weight llama model (the same bytes every run, so seeds stay valid).
std::vector<uint8_t> snap_model_bytes() {
    std::mt19937 rng(20261126);
    auto rnd = [&](size_t n, float s) {
        std::normal_distribution<float> nd(0.0f, s);
        std::vector<float> v(n);
        for (auto &x : v) x = nd(rng);
        return v;
    };
    auto near_one = [&](size_t n) {
        std::vector<float> v = rnd(n, 0.1f);
        for (auto &x : v) x += 1.0f;
        return v;
    };
    const uint64_t e = snap_n_embd, hd = snap_n_embd / snap_n_head, nq = snap_n_head * hd, nkv = snap_n_head_kv * hd;
    const uint64_t ff = snap_n_ff, nv = snap_n_vocab;
    const float s = 1.0f / std::sqrt((float)e);
    gguf_test::gguf_builder b;
    b.str("general.architecture", "llama").str("general.name", "fuzz-snapshot");
    b.u32("llama.context_length", snap_n_ctx).u32("llama.embedding_length", snap_n_embd).u32("llama.block_count", snap_n_layer);
    b.u32("llama.feed_forward_length", snap_n_ff).u32("llama.attention.head_count", snap_n_head);
    b.u32("llama.attention.head_count_kv", snap_n_head_kv).f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    b.f32("llama.rope.freq_base", 10000.0f).u32("llama.rope.dimension_count", (uint32_t)hd);
    b.tensor("token_embd.weight", 0, {e, nv}, snap_f32_bytes(rnd(e * nv, 1.0f)));
    for (int l = 0; l < snap_n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        b.tensor(p + "attn_norm.weight", 0, {e}, snap_f32_bytes(near_one(e)));
        b.tensor(p + "attn_q.weight", 0, {e, nq}, snap_f32_bytes(rnd(e * nq, 3 * s)));
        b.tensor(p + "attn_k.weight", 0, {e, nkv}, snap_f32_bytes(rnd(e * nkv, 3 * s)));
        b.tensor(p + "attn_v.weight", 0, {e, nkv}, snap_f32_bytes(rnd(e * nkv, s)));
        b.tensor(p + "attn_output.weight", 0, {nq, e}, snap_f32_bytes(rnd(nq * e, s)));
        b.tensor(p + "ffn_norm.weight", 0, {e}, snap_f32_bytes(near_one(e)));
        b.tensor(p + "ffn_gate.weight", 0, {e, ff}, snap_f32_bytes(rnd(e * ff, s)));
        b.tensor(p + "ffn_up.weight", 0, {e, ff}, snap_f32_bytes(rnd(e * ff, s)));
        b.tensor(p + "ffn_down.weight", 0, {ff, e}, snap_f32_bytes(rnd(ff * e, 1.0f / std::sqrt((float)ff))));
    }
    b.tensor("output_norm.weight", 0, {e}, snap_f32_bytes(near_one(e)));
    b.tensor("output.weight", 0, {e, nv}, snap_f32_bytes(rnd(e * nv, 0.5f)));
    return b.build();
}

std::string snap_model_path;
void snap_remove_model() {
    if (!snap_model_path.empty()) std::remove(snap_model_path.c_str());
}

endless::model &snap_model() {
    static std::unique_ptr<endless::model> m = [] {
        const std::vector<uint8_t> bytes = snap_model_bytes();
        const char *tmp = std::getenv("TMPDIR");
        snap_model_path = std::string(tmp && *tmp ? tmp : "/tmp") + "/endless-fuzz-snapshot-" + std::to_string(getpid()) + ".gguf";
        std::ofstream out(snap_model_path, std::ios::binary);
        out.write((const char *)bytes.data(), (std::streamsize)bytes.size());
        out.close();
        if (!out) {
            std::fprintf(stderr, "fuzz_snapshot: cannot write the model to %s\n", snap_model_path.c_str());
            std::abort();
        }
        std::atexit(snap_remove_model);
        endless_model_params p = endless_model_default_params();
        p.device = ENDLESS_DEVICE_CPU;
        p.n_threads = 1;
        try {
            return endless::model::load(snap_model_path, p);
        } catch (const endless::error &e) {
            std::fprintf(stderr, "fuzz_snapshot: cannot load the fuzz model: %s\n", e.what());
            std::abort();
        }
    }();
    return *m;
}

std::vector<uint8_t> snap_read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Snapshot bytes of a session, through the real save() (atomic file write), read back.
std::vector<uint8_t> snap_save_bytes(const endless::session &s) {
    const char *tmp = std::getenv("TMPDIR");
    const std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/endless-fuzz-snapshot-" + std::to_string(getpid()) + ".snap";
    s.save(path);
    std::vector<uint8_t> b = snap_read_file(path);
    std::remove(path.c_str());
    return b;
}

void snap_decode(endless::session &s, std::vector<int32_t> t) {
    s.decode(t.data(), (int)t.size(), ENDLESS_LOGITS_NONE, nullptr, nullptr);
}

std::vector<int32_t> snap_tokens(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto &x : t) x = (int32_t)(rng() % snap_n_vocab);
    return t;
}

// The states the seeds are taken in. Each is built by real session calls from a fresh session.
struct snap_state {
    const char *name;
    void (*build)(endless::session &s);
};

const snap_state snap_states[] = {
    {"empty", [](endless::session &) {}},
    {"one_sink", [](endless::session &s) { snap_decode(s, {5}); }},
    {"sinks_only", [](endless::session &s) { snap_decode(s, {5, 6}); }},
    {"window_partial", [](endless::session &s) { snap_decode(s, snap_tokens(7, 1)); }},
    {"window_full", [](endless::session &s) { snap_decode(s, snap_tokens(10, 2)); }},
    {"window_wrapped", [](endless::session &s) { snap_decode(s, snap_tokens(37, 3)); }},
    {"memory", [](endless::session &s) {
         snap_decode(s, snap_tokens(12, 4));
         std::vector<int32_t> m = snap_tokens(3, 5);
         s.set_memory(m.data(), 3, nullptr);
         snap_decode(s, {7, 8});
     }},
    {"memory_full_wrapped", [](endless::session &s) {
         snap_decode(s, snap_tokens(5, 6));
         std::vector<int32_t> m = snap_tokens(4, 7);
         s.set_memory(m.data(), 4, nullptr);
         snap_decode(s, snap_tokens(29, 8));
     }},
    {"branch_open", [](endless::session &s) {
         snap_decode(s, snap_tokens(15, 9));
         s.branch_begin();
         snap_decode(s, {1, 2, 3});
     }},
    {"branch_committed", [](endless::session &s) {
         snap_decode(s, snap_tokens(9, 10));
         s.branch_begin();
         snap_decode(s, {4, 5});
         s.branch_commit();
     }},
    {"branch_discarded", [](endless::session &s) {
         snap_decode(s, snap_tokens(11, 11));
         s.branch_begin();
         snap_decode(s, {4, 5, 6, 7});
         s.branch_discard();
     }},
    {"cleared", [](endless::session &s) {
         snap_decode(s, snap_tokens(20, 12));
         s.clear();
         snap_decode(s, {3});
     }},
};
constexpr size_t snap_n_states = sizeof snap_states / sizeof snap_states[0];

// What "untouched" compares.
struct snap_observed {
    std::vector<int32_t> tokens;
    endless_session_stats stats;
    bool logits_valid;
    std::vector<float> logits;
};

snap_observed snap_observe(const endless::session &s) {
    snap_observed o{s.tokens(), s.stats(), false, {}};
    try {
        o.logits = s.last_logits();
        o.logits_valid = true;
    } catch (const endless::error &) {
    }
    return o;
}

bool snap_same(const snap_observed &a, const snap_observed &b) {
    return a.tokens == b.tokens && std::memcmp(&a.stats, &b.stats, sizeof a.stats) == 0 && a.logits_valid == b.logits_valid &&
           a.logits.size() == b.logits.size() &&
           (a.logits.empty() || std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0);
}

void snap_finding(const char *what) {
    std::fprintf(stderr, "fuzz_snapshot: FINDING: %s\n", what);
    std::fflush(stderr);
    __builtin_trap();
}

// The base states an input may start from: a snapshot of each seed state, plus (for states with
// sinks) the same state with a branch open in the running session, which no snapshot can hold.
// For each, the logits of one probe token decoded from it: a session left untouched by a failed
// restore must reproduce them bit for bit.
struct snap_base {
    std::vector<uint8_t> snapshot;
    bool open_branch;
    snap_observed observed;
    std::vector<float> probe_logits;
};
constexpr int32_t snap_probe_token = 17;
const int32_t snap_branch_tokens[2] = {9, 10};

struct snap_harness {
    endless::session session;
    std::vector<snap_base> bases;
    int current = -1;  // index of the base state the session is in, -1 if none
    std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;

    snap_harness() : session(snap_model(), snap_cache_params()) {
        for (const snap_state &st : snap_states) {
            endless::session fresh(snap_model(), snap_cache_params());
            st.build(fresh);
            std::vector<uint8_t> bytes = snap_save_bytes(fresh);
            seeds.push_back({std::string(st.name) + ".snap", bytes});
            bases.push_back({bytes, false, {}, {}});
            if (fresh.stats().n_sinks == snap_cache_params().n_sinks) bases.push_back({bytes, true, {}, {}});
        }
        for (const auto &sd : seeds)
            if (sd.first == "window_wrapped.snap") {
                add_counter_seeds(sd.second);
                break;
            }
        for (size_t i = 0; i < bases.size(); i++) {
            enter((int)i);
            bases[i].observed = snap_observe(session);
            session.decode(&snap_probe_token, 1, ENDLESS_LOGITS_NONE, nullptr, nullptr);
            bases[i].probe_logits = session.last_logits();
            current = -1;
        }
    }

    // Checksummed snapshots with extreme counters (each once made signed overflow in the
    // increments after a restore): processed/reused in the header, the window count in the body.
    void add_counter_seeds(const std::vector<uint8_t> &good) {
        const size_t at_processed = 80, at_reused = 88, at_window_count = 97 + (size_t)snap_n_vocab * 4 + 16;
        const struct { const char *name; size_t at; int64_t value; } edits[] = {
            {"processed_max", at_processed, INT64_MAX}, {"processed_2p53", at_processed, (int64_t(1) << 53) + 1},
            {"reused_max", at_reused, INT64_MAX}, {"window_count_max", at_window_count, INT64_MAX},
            {"window_count_2p53", at_window_count, (int64_t(1) << 53) + 1},
        };
        for (const auto &e : edits) {
            std::vector<uint8_t> b = good;
            std::memcpy(b.data() + e.at, &e.value, 8);
            endless::sha256 h;
            h.update(b.data(), b.size() - 32);
            h.finish(b.data() + b.size() - 32);
            seeds.push_back({std::string("regress_") + e.name + ".snap", b});
        }
    }

    void enter(int i) {
        if (current == i) return;
        current = -1;
        const snap_base &b = bases[i];
        if (session.stats().branch_open) session.branch_discard();
        session.restore_bytes(b.snapshot.data(), b.snapshot.size(), "base: ");
        if (b.open_branch) {
            session.branch_begin();
            session.decode(snap_branch_tokens, 2, ENDLESS_LOGITS_NONE, nullptr, nullptr);
        }
        current = i;
    }

    // One restore attempt from an exactly sized heap copy (ASan flags a read one past the end).
    // Returns true when it succeeded.
    bool attempt(const std::vector<uint8_t> &bytes) {
        uint8_t *copy = bytes.empty() ? nullptr : (uint8_t *)std::malloc(bytes.size());
        if (copy) std::memcpy(copy, bytes.data(), bytes.size());
        bool ok = false;
        try {
            session.restore_bytes(copy, bytes.size(), "fuzz: ");
            ok = true;
        } catch (const endless::error &e) {
            if (e.status() != ENDLESS_ERR_FORMAT && e.status() != ENDLESS_ERR_MISMATCH) snap_finding("restore failed with an unexpected status");
            if (std::strncmp(e.what(), "fuzz: ", 6) != 0) snap_finding("restore error text lacks the snapshot's name");
        }
        std::free(copy);
        return ok;
    }

    // The session after a successful restore: consistent, and every call still works.
    void exercise() {
        current = -1;
        const endless::cache_params p = snap_cache_params();
        const endless_session_stats st = session.stats();
        const std::vector<int32_t> toks = session.tokens();
        if (st.branch_open || st.n_branch != 0) snap_finding("a restored session has a branch open");
        if (st.n_sinks < 0 || st.n_sinks > p.n_sinks || st.n_memory < 0 || st.n_memory > p.n_memory_max || st.n_window < 0 ||
            st.n_window > p.n_window)
            snap_finding("restored counters out of range");
        if ((size_t)st.n_sinks + st.n_memory + st.n_window != toks.size()) snap_finding("restored stats disagree with tokens()");
        if (st.cache_bytes != bases[0].observed.stats.cache_bytes) snap_finding("restore changed the cache size");
        if (st.n_seen < st.n_sinks + st.n_window || st.n_evicted < 0 || st.n_processed < 0 || st.n_reused < 0)
            snap_finding("restored lifetime counters are inconsistent");
        for (int32_t t : toks)
            if (t < 0 || t >= snap_n_vocab) snap_finding("restored token outside the vocabulary");
        float sink = 0;
        try {
            for (float x : session.last_logits()) sink += x;  // may be invalid: then it throws STATE
        } catch (const endless::error &e) {
            if (e.status() != ENDLESS_ERR_STATE) throw;
        }
        (void)sink;
        std::vector<float> logits(snap_n_vocab);
        session.decode(&snap_probe_token, 1, ENDLESS_LOGITS_LAST, logits.data(), nullptr);
        if (session.stats().n_sinks == p.n_sinks) {
            session.branch_begin();
            const int32_t b[3] = {1, 2, 3};
            session.decode(b, 3, ENDLESS_LOGITS_LAST, logits.data(), nullptr);
            session.branch_discard();
            const int32_t m[2] = {4, 5};
            session.set_memory(m, 2, nullptr);
        }
        const int32_t more[5] = {6, 7, 8, 9, 10};
        session.decode(more, 5, ENDLESS_LOGITS_LAST, logits.data(), nullptr);
        // sampling from whatever the restored K/V produce (NaN and inf included)
        endless_sampler_params sp = endless_sampler_default_params();
        sp.temperature = 0.8f;
        sp.top_k = 10;
        sp.top_p = 0.9f;
        sp.min_p = 0.01f;
        sp.repeat_penalty = 1.1f;
        sp.seed = 1;
        endless::sampler smp(sp);
        auto check_token = [](int32_t tok, void *) -> int {
            if (tok < 0 || tok >= snap_n_vocab) snap_finding("generated a token outside the vocabulary");
            return 0;
        };
        session.generate(smp, 3, nullptr, 0, check_token, nullptr, nullptr);
        const std::vector<int32_t> after = session.tokens();
        if (after.size() != (size_t)session.stats().n_sinks + session.stats().n_memory + session.stats().n_window)
            snap_finding("stats disagree with tokens() after decoding from a restored state");
    }

    void run(const uint8_t *data, size_t size) {
        const int base = (int)(size % bases.size());
        enter(base);
        const snap_observed &before = bases[base].observed;
        if (!snap_same(snap_observe(session), before)) snap_finding("the base state did not restore exactly");

        std::vector<uint8_t> input(data, data + size);
        bool failed = false;
        for (int variant = 0; variant < 2; variant++) {
            if (variant == 1) {
                if (input.size() < 32) break;
                endless::sha256 h;
                h.update(input.data(), input.size() - 32);
                h.finish(input.data() + input.size() - 32);
            }
            if (attempt(input)) {
                exercise();
                enter(base);
            } else {
                failed = true;
                if (!snap_same(snap_observe(session), before)) snap_finding("a failed restore changed the session");
            }
        }
        if (failed) {
            // Untouched means it also decodes exactly as before.
            session.decode(&snap_probe_token, 1, ENDLESS_LOGITS_NONE, nullptr, nullptr);
            current = -1;
            const std::vector<float> &got = session.last_logits();
            const std::vector<float> &want = bases[base].probe_logits;
            if (got.size() != want.size() || std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) != 0)
                snap_finding("after a failed restore the next logits differ from the untouched session's");
        }
    }
};

snap_harness &snap_get_harness() {
    static snap_harness h;
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Only endless::error may leave the session calls below, and only where the harness expects
    // one; anything escaping here ends the process (std::terminate) and is a finding.
    snap_get_harness().run(data, size);
    return 0;
}

#ifdef ENDLESS_FUZZ_STANDALONE
// ---------------------------------------------------------------------------------------------
// Standalone build: the shared driver in standalone_driver.h (for machines without
// clang/libFuzzer), with this target's seeds, hooks and mutation profile.
//   fuzz_snapshot --write-seeds DIR                   write the seed corpus (real snapshots)
//   fuzz_snapshot -n N [-seed S] [-max-len L] DIR...  N coverage-guided mutations of DIR's files
//   fuzz_snapshot FILE...                             run each file once (reproduce a finding)
// A finding aborts the process after the input is written to ./crash-snapshot-<pid>.bin.
#include "standalone_driver.h"

namespace {

// Interesting integers for the snapshot layout: little-endian i32/i64 fields (counts, sinks,
// window, ring index, tokens near the vocabulary size 48, lifetime counters).
const uint64_t snap_fuzz_ints[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 32, 47, 48, 49, 64, 127, 128, 255, 256,
                                   0x7fff, 0xffff, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu, 1ull << 32,
                                   0x3fffffffffffffffull, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull - 1, ~0ull};
// f32 payloads (logits, K/V): zeros, huge, denormal, inf, NaN, the f16 limit.
const float snap_fuzz_floats[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e30f, -1e30f, 1e-40f, INFINITY, -INFINITY, NAN, 65504.0f, 3.4e38f};

fuzz_seed_list snap_fuzz_seeds() { return snap_get_harness().seeds; }
void snap_fuzz_setup() { snap_get_harness(); }  // the model and the base states, before any input runs
// A finding ends the process without running atexit handlers: remove the temporary model here
// (unlink is async-signal-safe).
void snap_fuzz_on_finding() {
    if (!snap_model_path.empty()) ::unlink(snap_model_path.c_str());
}
std::string snap_fuzz_describe() { return std::to_string(snap_get_harness().bases.size()) + " base states, "; }

}  // namespace

int main(int argc, char **argv) {
    // fields in fuzz_mutation_profile's order: the integers and floats above, up to 8 operations a
    // mutant, nudges of +-8, deletions mostly of whole 4-byte tokens and K/V rows, inserts up to
    // 256 bytes, copies up to 64, half the splices at the same offset (another state's body in place)
    const fuzz_mutation_profile prof{snap_fuzz_ints, std::size(snap_fuzz_ints), false, snap_fuzz_floats, std::size(snap_fuzz_floats),
                                     3, 8, true, 256, 64, true};
    const fuzz_target target{"snapshot", "session.cpp/kv_cache.cpp", 1 << 14, prof,
                             snap_fuzz_seeds, snap_fuzz_setup, snap_fuzz_on_finding, snap_fuzz_describe};
    return fuzz_standalone_main(argc, argv, target);
}
#endif  // ENDLESS_FUZZ_STANDALONE
