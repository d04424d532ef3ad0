// StreamingLLM cache semantics through the public C API, on small random-weight models built in
// memory: streaming == dense before eviction; after eviction == a dense run on the kept tokens
// (first S + last W) at positions 0..S+W-1; chunked == token by token; branch discard is
// bit-identical; commit == append; branch prefix reuse; pinned memory; snapshots and each bad
// snapshot class; flat memory over 100k tokens.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "endless.h"
#include "gguf_builder.h"
#include "test_util.h"

namespace {

struct dims {
    std::string arch = "llama";
    int n_embd = 64, n_layer = 2, n_head = 4, n_head_kv = 2, n_ff = 96, n_vocab = 101, n_ctx = 256;
};

std::vector<uint8_t> f32_bytes(const std::vector<float> &v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

// A random model written to a temp file; returns its path.
std::string write_model(const dims &d, uint32_t seed, const std::string &name) {
    using namespace gguf_test;
    std::mt19937 rng(seed);
    auto rnd = [&](size_t n, float s) {
        std::normal_distribution<float> nd(0.0f, s);
        std::vector<float> v(n);
        for (auto &x : v) x = nd(rng);
        return v;
    };
    auto ones = [&](size_t n) {
        std::vector<float> v = rnd(n, 0.1f);
        for (auto &x : v) x += 1.0f;
        return v;
    };
    const int hd = d.n_embd / d.n_head, nq = d.n_head * hd, nkv = d.n_head_kv * hd;
    gguf_builder b;
    const std::string a = d.arch + ".";
    b.str("general.architecture", d.arch).str("general.name", name);
    b.u32(a + "context_length", d.n_ctx).u32(a + "embedding_length", d.n_embd).u32(a + "block_count", d.n_layer);
    b.u32(a + "feed_forward_length", d.n_ff).u32(a + "attention.head_count", d.n_head).u32(a + "attention.head_count_kv", d.n_head_kv);
    b.f32(a + "attention.layer_norm_rms_epsilon", 1e-5f).f32(a + "rope.freq_base", 10000.0f).u32(a + "rope.dimension_count", hd);
    b.tensor("token_embd.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)d.n_vocab}, f32_bytes(rnd((size_t)d.n_embd * d.n_vocab, 1.0f)));
    for (int l = 0; l < d.n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        const float s = 1.0f / std::sqrt((float)d.n_embd);
        b.tensor(p + "attn_norm.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd}, f32_bytes(ones(d.n_embd)));
        b.tensor(p + "attn_q.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)nq}, f32_bytes(rnd((size_t)d.n_embd * nq, 3 * s)));
        b.tensor(p + "attn_k.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)nkv}, f32_bytes(rnd((size_t)d.n_embd * nkv, 3 * s)));
        b.tensor(p + "attn_v.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)nkv}, f32_bytes(rnd((size_t)d.n_embd * nkv, s)));
        if (d.arch == "qwen2") {
            b.tensor(p + "attn_q.bias", 0 /* GGML F32 */, {(uint64_t)nq}, f32_bytes(rnd(nq, 0.5f)));
            b.tensor(p + "attn_k.bias", 0 /* GGML F32 */, {(uint64_t)nkv}, f32_bytes(rnd(nkv, 0.5f)));
            b.tensor(p + "attn_v.bias", 0 /* GGML F32 */, {(uint64_t)nkv}, f32_bytes(rnd(nkv, 0.5f)));
        }
        b.tensor(p + "attn_output.weight", 0 /* GGML F32 */, {(uint64_t)nq, (uint64_t)d.n_embd}, f32_bytes(rnd((size_t)nq * d.n_embd, s)));
        b.tensor(p + "ffn_norm.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd}, f32_bytes(ones(d.n_embd)));
        b.tensor(p + "ffn_gate.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)d.n_ff}, f32_bytes(rnd((size_t)d.n_embd * d.n_ff, s)));
        b.tensor(p + "ffn_up.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)d.n_ff}, f32_bytes(rnd((size_t)d.n_embd * d.n_ff, s)));
        b.tensor(p + "ffn_down.weight", 0 /* GGML F32 */, {(uint64_t)d.n_ff, (uint64_t)d.n_embd}, f32_bytes(rnd((size_t)d.n_ff * d.n_embd, 1.0f / std::sqrt((float)d.n_ff))));
    }
    b.tensor("output_norm.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd}, f32_bytes(ones(d.n_embd)));
    b.tensor("output.weight", 0 /* GGML F32 */, {(uint64_t)d.n_embd, (uint64_t)d.n_vocab}, f32_bytes(rnd((size_t)d.n_embd * d.n_vocab, 0.5f)));
    std::vector<uint8_t> bytes = b.build();
    std::string path = "/tmp/endless-test-" + std::to_string(getpid()) + "-" + name + ".gguf";
    std::ofstream(path, std::ios::binary).write((const char *)bytes.data(), (std::streamsize)bytes.size());
    return path;
}

struct model_fixture {
    endless_model *m = nullptr;
    std::string path;
    int n_vocab = 0;
    model_fixture(const dims &d, uint32_t seed, const std::string &name) {
        path = write_model(d, seed, name);
        endless_model_params p = endless_model_default_params();
        p.device = ENDLESS_DEVICE_CPU;
        p.n_threads = 2;
        endless_status st = endless_model_load(path.c_str(), &p, &m);
        CHECK_MSG(st == ENDLESS_OK, "load: %s", endless_last_error());
        n_vocab = d.n_vocab;
    }
    ~model_fixture() {
        endless_model_free(m);
        std::remove(path.c_str());
    }
};

model_fixture &llama() { static model_fixture f(dims{}, 7, "llama"); return f; }
// One layer: K/V depend only on the token (keys are cached before RoPE), so a StreamingLLM cache
// and a dense run on exactly the kept tokens must agree. With more layers they legitimately
// differ: cached K/V of window tokens were computed while now-evicted tokens were visible.
model_fixture &llama1() { static model_fixture f([] { dims d; d.n_layer = 1; return d; }(), 5, "llama1"); return f; }
model_fixture &qwen1() {
    static model_fixture f([] { dims d; d.arch = "qwen2"; d.n_layer = 1; d.n_head = 8; d.n_head_kv = 2; return d; }(), 13, "qwen1");
    return f;
}
model_fixture &qwen() {
    static model_fixture f([] { dims d; d.arch = "qwen2"; d.n_head = 8; d.n_head_kv = 2; return d; }(), 11, "qwen2");
    return f;
}

// generate's token callback for tests: appends each token to the std::vector<int32_t> at ud.
int collect_token(int32_t tok, void *ud) {
    static_cast<std::vector<int32_t> *>(ud)->push_back(tok);
    return 0;
}

endless_session *make_session(model_fixture &f, int S, int W, int M = 0, int B = 64, int batch = 256) {
    endless_session_params p = endless_session_default_params();
    p.n_sinks = S;
    p.n_window = W;
    p.n_memory_max = M;
    p.n_branch_max = B;
    p.n_batch = batch;
    endless_session *s = nullptr;
    endless_status st = endless_session_create(f.m, &p, &s);
    CHECK_MSG(st == ENDLESS_OK, "session: %s", endless_last_error());
    return s;
}

std::vector<int32_t> random_tokens(int n, int n_vocab) {
    std::uniform_int_distribution<int32_t> d(0, n_vocab - 1);
    std::vector<int32_t> t(n);
    for (auto &x : t) x = d(test::rng());
    return t;
}

std::vector<float> decode_last(endless_session *s, const std::vector<int32_t> &t, int n_vocab) {
    std::vector<float> out(n_vocab);
    endless_status st = endless_session_decode(s, t.data(), (int32_t)t.size(), ENDLESS_LOGITS_LAST, out.data(), nullptr);
    CHECK_MSG(st == ENDLESS_OK, "decode: %s", endless_last_error());
    return out;
}

// Logits of a dense run over exactly these tokens (positions 0..n-1).
std::vector<float> dense_last(model_fixture &f, const std::vector<int32_t> &t) {
    endless_session *s = make_session(f, 0, (int)t.size() + 8);
    std::vector<float> out = decode_last(s, t, f.n_vocab);
    endless_session_free(s);
    return out;
}

void check_streaming_reference(model_fixture &f, int S, int W, int batch, bool exact_reference) {
    const int n = S + W + 20;
    std::vector<int32_t> toks = random_tokens(n, f.n_vocab);
    endless_session *one = make_session(f, S, W);
    endless_session *chunked = make_session(f, S, W, 0, 64, batch);
    double worst = 0;
    for (int t = 0; t < n; t++) {
        std::vector<float> got = decode_last(one, {toks[t]}, f.n_vocab);
        std::vector<int32_t> kept;
        if (t < S + W) {
            kept.assign(toks.begin(), toks.begin() + t + 1);
        } else {
            kept.assign(toks.begin(), toks.begin() + S);
            kept.insert(kept.end(), toks.begin() + (t - W + 1), toks.begin() + t + 1);
        }
        if (!exact_reference && t >= S + W) continue;  // multi-layer: only before eviction
        std::vector<float> ref = dense_last(f, kept);
        worst = std::max(worst, test::rel_error(got.data(), ref.data(), got.size()));
    }
    CHECK_MSG(worst < 1e-5, "S=%d W=%d: streaming vs kept-token reference rel error %g", S, W, worst);
    // the same stream fed in chunks of `batch` gives the same final logits
    std::vector<float> a(f.n_vocab), b(f.n_vocab);
    endless_session_last_logits(one, a.data());
    b = decode_last(chunked, toks, f.n_vocab);
    double e = test::rel_error(b.data(), a.data(), a.size());
    CHECK_MSG(e < 1e-5, "S=%d W=%d batch=%d: chunked vs one by one rel error %g", S, W, batch, e);
    endless_session_stats st;
    endless_session_stats_get(one, &st);
    CHECK(st.n_seen == n);
    CHECK(st.n_evicted == std::max(0, n - S - W));
    CHECK(st.n_window == std::min(W, n - std::min(n, S)));
    endless_session_free(one);
    endless_session_free(chunked);
}

std::string tmp_path(const std::string &name) { return "/tmp/endless-test-" + std::to_string(getpid()) + "-" + name; }

// The sampler's definition (sampler.cpp's header comment) written plainly: every candidate
// sorted, each step in order. The engine's sampler sorts only as far as the kept prefix reaches.
int32_t reference_draw(const endless_sampler_params &p, std::mt19937_64 &rng, std::vector<float> w,
                       const std::vector<int32_t> &recent) {
    const int32_t nv = (int32_t)w.size();
    if (p.repeat_penalty != 1.0f && p.repeat_penalty > 0 && !recent.empty()) {
        const size_t n = p.repeat_last_n > 0 ? std::min(recent.size(), (size_t)p.repeat_last_n) : recent.size();
        std::vector<int32_t> seen(recent.end() - (ptrdiff_t)n, recent.end());
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        for (int32_t t : seen)
            if (t >= 0 && t < nv) w[t] = w[t] > 0 ? w[t] / p.repeat_penalty : w[t] * p.repeat_penalty;
    }
    for (float &x : w) if (std::isnan(x)) x = -INFINITY;
    const int32_t best = (int32_t)(std::max_element(w.begin(), w.end()) - w.begin());
    const float mx = w[best];
    if (p.temperature <= 0.0f || !std::isfinite(mx)) return best;
    const double inv_t = 1.0 / (double)p.temperature;
    std::vector<double> z(nv);
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < nv; i++) {
        z[i] = ((double)w[i] - mx) * inv_t;
        if (z[i] >= -40.0) ids.push_back(i);
    }
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
    if (p.top_k > 0 && (size_t)p.top_k < ids.size()) ids.resize(p.top_k);
    std::vector<int32_t> by_id = ids;
    std::sort(by_id.begin(), by_id.end());
    double sum = 0;
    for (int32_t i : by_id) sum += std::exp(z[i]);
    size_t keep = ids.size();
    if (p.top_p > 0 && p.top_p < 1.0f) {
        double acc = 0;
        for (size_t i = 0; i < ids.size(); i++) {
            acc += std::exp(z[ids[i]]) / sum;
            if (acc >= p.top_p) { keep = i + 1; break; }
        }
    }
    if (p.min_p > 0) {
        size_t i = 1;
        while (i < keep && std::exp(z[ids[i]]) >= p.min_p * 1.0) i++;
        keep = i;
    }
    double total = 0;
    for (size_t i = 0; i < keep; i++) total += std::exp(z[ids[i]]);
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng), acc = 0;
    for (size_t i = 0; i < keep; i++) {
        acc += std::exp(z[ids[i]]);
        if (r < acc) return ids[i];
    }
    return ids[keep - 1];
}

}  // namespace

TEST(streaming_matches_kept_tokens_llama) {
    check_streaming_reference(llama1(), 4, 16, 5, true);
    check_streaming_reference(llama1(), 1, 24, 7, true);
    check_streaming_reference(llama1(), 0, 16, 3, true);  // plain window attention
    check_streaming_reference(llama1(), 2, 8, 8, true);
    check_streaming_reference(llama(), 4, 16, 5, false);
    check_streaming_reference(llama(), 0, 12, 16, false);
}

TEST(streaming_matches_kept_tokens_qwen2) {
    check_streaming_reference(qwen1(), 4, 16, 6, true);
    check_streaming_reference(qwen1(), 0, 12, 4, true);
    check_streaming_reference(qwen(), 2, 10, 7, false);
}

TEST(branch_discard_is_bit_identical) {
    model_fixture &f = llama();
    std::vector<int32_t> p = random_tokens(40, f.n_vocab), q = random_tokens(9, f.n_vocab);
    endless_session *a = make_session(f, 4, 24), *b = make_session(f, 4, 24);
    decode_last(a, p, f.n_vocab);
    decode_last(b, p, f.n_vocab);
    std::vector<float> before(f.n_vocab), after(f.n_vocab);
    endless_session_last_logits(a, before.data());
    CHECK(endless_session_branch_begin(a) == ENDLESS_OK);
    decode_last(a, q, f.n_vocab);
    CHECK(endless_session_branch_discard(a) == ENDLESS_OK);
    endless_session_last_logits(a, after.data());
    CHECK(std::memcmp(before.data(), after.data(), before.size() * 4) == 0);
    std::vector<float> la = decode_last(a, {5}, f.n_vocab), lb = decode_last(b, {5}, f.n_vocab);
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * 4) == 0);
    endless_session_free(a);
    endless_session_free(b);
}

TEST(branch_commit_equals_append) {
    model_fixture &f = llama();
    std::vector<int32_t> p = random_tokens(30, f.n_vocab), q = random_tokens(12, f.n_vocab);
    endless_session *a = make_session(f, 4, 20), *b = make_session(f, 4, 20);
    decode_last(a, p, f.n_vocab);
    decode_last(b, p, f.n_vocab);
    endless_session_branch_begin(a);
    decode_last(a, q, f.n_vocab);
    CHECK(endless_session_branch_commit(a) == ENDLESS_OK);
    decode_last(b, q, f.n_vocab);
    std::vector<float> la = decode_last(a, {3}, f.n_vocab), lb = decode_last(b, {3}, f.n_vocab);
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * 4) == 0);
    endless_session_stats sa, sb;
    endless_session_stats_get(a, &sa);
    endless_session_stats_get(b, &sb);
    CHECK(sa.n_seen == sb.n_seen && sa.n_evicted == sb.n_evicted && sa.n_window == sb.n_window);
    std::vector<int32_t> ta(200), tb(200);
    int na = endless_session_tokens(a, ta.data(), 200), nb = endless_session_tokens(b, tb.data(), 200);
    CHECK(na == nb && std::equal(ta.begin(), ta.begin() + na, tb.begin()));
    endless_session_free(a);
    endless_session_free(b);
}

TEST(branch_reuses_common_prefix) {
    model_fixture &f = llama();
    std::vector<int32_t> p = random_tokens(30, f.n_vocab), q1 = random_tokens(10, f.n_vocab);
    std::vector<int32_t> first = q1, second = q1;
    first.insert(first.end(), {1, 2, 3});
    second.insert(second.end(), {4, 5});
    endless_session *a = make_session(f, 4, 64), *b = make_session(f, 4, 64);
    decode_last(a, p, f.n_vocab);
    decode_last(b, p, f.n_vocab);
    endless_session_branch_begin(a);
    decode_last(a, first, f.n_vocab);
    endless_session_branch_discard(a);
    endless_session_stats s0, s1;
    endless_session_stats_get(a, &s0);
    endless_session_branch_begin(a);
    std::vector<float> la = decode_last(a, second, f.n_vocab);
    endless_session_stats_get(a, &s1);
    CHECK_MSG(s1.n_reused - s0.n_reused == (int64_t)q1.size(), "reused %lld", (long long)(s1.n_reused - s0.n_reused));
    CHECK(s1.n_processed - s0.n_processed == (int64_t)(second.size() - q1.size()));
    endless_session_branch_begin(b);
    std::vector<float> lb = decode_last(b, second, f.n_vocab);
    CHECK(test::rel_error(la.data(), lb.data(), la.size()) < 1e-5);
    // an append in between invalidates reuse
    endless_session_branch_discard(a);
    decode_last(a, {7}, f.n_vocab);
    endless_session_stats_get(a, &s0);
    endless_session_branch_begin(a);
    decode_last(a, second, f.n_vocab);
    endless_session_stats_get(a, &s1);
    CHECK(s1.n_reused == s0.n_reused);
    endless_session_free(a);
    endless_session_free(b);
}

TEST(pinned_memory_sits_after_sinks) {
    model_fixture &f = llama();
    const int S = 2;
    std::vector<int32_t> sinks = random_tokens(S, f.n_vocab), mem = random_tokens(7, f.n_vocab), win = random_tokens(10, f.n_vocab);
    endless_session *a = make_session(f, S, 32, 16);
    decode_last(a, sinks, f.n_vocab);
    CHECK(endless_session_set_memory(a, mem.data(), (int32_t)mem.size(), nullptr) == ENDLESS_OK);
    std::vector<float> got = decode_last(a, win, f.n_vocab);
    std::vector<int32_t> all = sinks;
    all.insert(all.end(), mem.begin(), mem.end());
    all.insert(all.end(), win.begin(), win.end());
    std::vector<float> ref = dense_last(f, all);
    CHECK(test::rel_error(got.data(), ref.data(), got.size()) < 1e-5);
    // replacing the memory re-encodes only the memory
    endless_session_stats s0, s1;
    endless_session_stats_get(a, &s0);
    std::vector<int32_t> mem2 = random_tokens(5, f.n_vocab);
    CHECK(endless_session_set_memory(a, mem2.data(), 5, nullptr) == ENDLESS_OK);
    endless_session_stats_get(a, &s1);
    CHECK(s1.n_processed - s0.n_processed == 5);
    CHECK(s1.n_memory == 5 && s1.n_window == 10);
    // too much memory is refused, leaving the session usable
    std::vector<int32_t> big = random_tokens(17, f.n_vocab);
    CHECK(endless_session_set_memory(a, big.data(), 17, nullptr) == ENDLESS_ERR_CAPACITY);
    endless_session_free(a);
}

TEST(snapshot_round_trip_and_bad_files) {
    model_fixture &f = llama();
    std::vector<int32_t> p = random_tokens(50, f.n_vocab), mem = random_tokens(4, f.n_vocab);
    endless_session *a = make_session(f, 4, 24, 8);
    decode_last(a, p, f.n_vocab);
    endless_session_set_memory(a, mem.data(), 4, nullptr);
    decode_last(a, {9, 8}, f.n_vocab);
    const std::string path = tmp_path("snap.bin");
    CHECK_MSG(endless_session_save(a, path.c_str()) == ENDLESS_OK, "%s", endless_last_error());
    struct stat sbuf;
    CHECK(stat(path.c_str(), &sbuf) == 0 && (sbuf.st_mode & 0777) == 0600);
    endless_session *b = make_session(f, 4, 24, 8);
    CHECK_MSG(endless_session_restore(b, path.c_str()) == ENDLESS_OK, "%s", endless_last_error());
    std::vector<float> la = decode_last(a, {1, 2, 3}, f.n_vocab), lb = decode_last(b, {1, 2, 3}, f.n_vocab);
    CHECK(std::memcmp(la.data(), lb.data(), la.size() * 4) == 0);

    std::ifstream in(path, std::ios::binary);
    std::vector<char> good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto write = [&](const std::vector<char> &bytes) {
        std::ofstream(path, std::ios::binary).write(bytes.data(), (std::streamsize)bytes.size());
    };
    // each bad file: a clear error, and the session (b) untouched
    std::vector<float> before = decode_last(b, {4}, f.n_vocab);
    auto expect = [&](const std::vector<char> &bytes, endless_status want, const char *words, endless_session *s) {
        write(bytes);
        endless_session_stats s0, s1;
        endless_session_stats_get(s, &s0);
        endless_status st = endless_session_restore(s, path.c_str());
        endless_session_stats_get(s, &s1);
        CHECK_MSG(st == want, "want %s got %s: %s", endless_status_name(want), endless_status_name(st), endless_last_error());
        CHECK_MSG(std::strstr(endless_last_error(), words) != nullptr, "message '%s' lacks '%s'", endless_last_error(), words);
        CHECK(s0.n_seen == s1.n_seen && s0.n_window == s1.n_window && s0.n_memory == s1.n_memory);
    };
    std::vector<char> bad = good;
    bad.resize(good.size() / 2);
    expect(bad, ENDLESS_ERR_FORMAT, "checksum", b);
    bad.resize(20);
    expect(bad, ENDLESS_ERR_FORMAT, "truncated", b);
    bad = good;
    bad[good.size() / 2] ^= 0x5a;
    expect(bad, ENDLESS_ERR_FORMAT, "checksum", b);
    bad = good;
    bad[0] = 'X';
    expect(bad, ENDLESS_ERR_FORMAT, "magic", b);
    bad = good;
    bad[8] = 99;  // version
    expect(bad, ENDLESS_ERR_MISMATCH, "version", b);
    // another model's snapshot
    endless_session *q = make_session(qwen(), 4, 24, 8);
    decode_last(q, random_tokens(10, qwen().n_vocab), qwen().n_vocab);
    CHECK(endless_session_save(q, path.c_str()) == ENDLESS_OK);
    endless_session_free(q);
    std::ifstream in2(path, std::ios::binary);
    std::vector<char> other((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
    expect(other, ENDLESS_ERR_MISMATCH, "another model", b);
    // same model, other window
    endless_session *w = make_session(f, 4, 16, 8);
    write(good);
    CHECK(endless_session_restore(w, path.c_str()) == ENDLESS_ERR_MISMATCH);
    endless_session_free(w);
    // missing file
    CHECK(endless_session_restore(b, "/nonexistent/dir/snap.bin") == ENDLESS_ERR_IO);
    // b was untouched by every failed restore: it continues exactly like a twin that never tried
    endless_session *twin = make_session(f, 4, 24, 8);
    write(good);
    CHECK(endless_session_restore(twin, path.c_str()) == ENDLESS_OK);
    decode_last(twin, {1, 2, 3}, f.n_vocab);
    decode_last(twin, {4}, f.n_vocab);
    std::vector<float> lt = decode_last(twin, {6}, f.n_vocab), lb2 = decode_last(b, {6}, f.n_vocab);
    CHECK(std::memcmp(lt.data(), lb2.data(), lt.size() * 4) == 0);
    endless_session_free(twin);
    (void)before;
    std::remove(path.c_str());
    endless_session_free(a);
    endless_session_free(b);
}

TEST(generate_greedy_matches_manual_loop) {
    model_fixture &f = llama();
    std::vector<int32_t> p = random_tokens(12, f.n_vocab);
    endless_session *a = make_session(f, 4, 32), *b = make_session(f, 4, 32);
    decode_last(a, p, f.n_vocab);
    std::vector<float> l = decode_last(b, p, f.n_vocab);
    endless_sampler *smp = nullptr;
    endless_sampler_params sp = endless_sampler_default_params();
    CHECK(endless_sampler_create(&sp, &smp) == ENDLESS_OK);
    std::vector<int32_t> got;
    int32_t n = 0;
    CHECK(endless_session_generate(a, smp, 20, nullptr, 0, collect_token, &got, nullptr, &n) == ENDLESS_OK);
    CHECK(n == 20 && got.size() == 20);
    for (int i = 0; i < 20 && i < (int)got.size(); i++) {
        int32_t best = (int32_t)(std::max_element(l.begin(), l.end()) - l.begin());
        CHECK(best == got[i]);
        l = decode_last(b, {best}, f.n_vocab);
    }
    // the greedy picks were taken where the logits are: the session's last logits caught up
    std::vector<float> la(f.n_vocab);
    endless_session_last_logits(a, la.data());
    CHECK(std::memcmp(la.data(), l.data(), l.size() * 4) == 0);
    // cancelled from the token callback at the third pick (which is then not decoded): the logits
    // are those after the second
    {
        struct ctx { std::vector<int32_t> toks; volatile int32_t cancel = 0; } c;
        auto cancel_cb = [](int32_t tok, void *ud) -> int {
            ctx *x = static_cast<ctx *>(ud);
            x->toks.push_back(tok);
            if (x->toks.size() == 3) x->cancel = 1;
            return 0;
        };
        CHECK(endless_session_generate(a, smp, 20, nullptr, 0, cancel_cb, &c, &c.cancel, &n) == ENDLESS_ERR_CANCELLED);
        CHECK(c.toks.size() == 3);
        for (size_t i = 0; i < c.toks.size(); i++) {
            CHECK(c.toks[i] == (int32_t)(std::max_element(l.begin(), l.end()) - l.begin()));
            if (i + 1 < c.toks.size()) l = decode_last(b, {c.toks[i]}, f.n_vocab);
        }
        endless_session_last_logits(a, la.data());
        CHECK(std::memcmp(la.data(), l.data(), l.size() * 4) == 0);
    }
    // a stop token ends generation and is not decoded
    endless_session_stats s0, s1;
    endless_session_stats_get(a, &s0);
    int32_t next = (int32_t)(std::max_element(la.begin(), la.end()) - la.begin());
    got.clear();
    CHECK(endless_session_generate(a, smp, 20, &next, 1, collect_token, &got, nullptr, &n) == ENDLESS_OK);
    endless_session_stats_get(a, &s1);
    CHECK(n == 1 && s1.n_seen == s0.n_seen);
    // cancellation
    volatile int32_t cancel = 1;
    CHECK(endless_session_generate(a, smp, 20, nullptr, 0, collect_token, &got, &cancel, &n) == ENDLESS_ERR_CANCELLED);
    endless_sampler_free(smp);
    endless_session_free(a);
    endless_session_free(b);
}

// A greedy sampler with a repetition penalty: generate takes each pick where the logits are
// (backend::argmax with the penalized ids); the host sampler over the same logits and tokens must
// draw the same tokens, and the session's last logits must be the model's.
TEST(generate_greedy_with_penalty_matches_sampler) {
    model_fixture &f = llama();
    std::vector<int32_t> recent = random_tokens(12, f.n_vocab);
    endless_session *a = make_session(f, 4, 64), *b = make_session(f, 4, 64);
    decode_last(a, recent, f.n_vocab);
    std::vector<float> l = decode_last(b, recent, f.n_vocab);
    for (float penalty : {1.5f, 0.5f}) {
        endless_sampler_params sp = endless_sampler_default_params();
        sp.temperature = 0.0f;
        sp.repeat_penalty = penalty;
        sp.repeat_last_n = 8;
        endless_sampler *smp = nullptr, *host = nullptr;
        CHECK(endless_sampler_create(&sp, &smp) == ENDLESS_OK);
        CHECK(endless_sampler_create(&sp, &host) == ENDLESS_OK);
        std::vector<int32_t> got;
        int32_t n = 0;
        CHECK(endless_session_generate(a, smp, 12, nullptr, 0, collect_token, &got, nullptr, &n) == ENDLESS_OK);
        CHECK(n == 12 && got.size() == 12);
        for (size_t i = 0; i < got.size(); i++) {
            const int32_t want = endless_sampler_sample(host, l.data(), f.n_vocab, recent.data(), (int32_t)recent.size());
            CHECK_MSG(got[i] == want, "penalty %g, token %zu: %d, the host sampler draws %d", penalty, i, got[i], want);
            recent.push_back(got[i]);
            if (i + 1 < got.size()) l = decode_last(b, {got[i]}, f.n_vocab);
        }
        l = decode_last(b, {got.back()}, f.n_vocab);
        std::vector<float> la(f.n_vocab);
        endless_session_last_logits(a, la.data());
        CHECK(std::memcmp(la.data(), l.data(), l.size() * 4) == 0);
        endless_sampler_free(smp);
        endless_sampler_free(host);
    }
    endless_session_free(a);
    endless_session_free(b);
}

TEST(sampler_respects_top_k_and_seed) {
    std::vector<float> logits = {1.0f, 3.0f, 2.0f, -1.0f, 2.5f};
    endless_sampler_params p = endless_sampler_default_params();
    p.temperature = 1.0f;
    p.top_k = 2;
    p.seed = 42;
    endless_sampler *a = nullptr, *b = nullptr;
    endless_sampler_create(&p, &a);
    endless_sampler_create(&p, &b);
    for (int i = 0; i < 200; i++) {
        int32_t x = endless_sampler_sample(a, logits.data(), 5, nullptr, 0);
        int32_t y = endless_sampler_sample(b, logits.data(), 5, nullptr, 0);
        CHECK(x == y);
        CHECK(x == 1 || x == 4);
    }
    endless_sampler_free(a);
    endless_sampler_free(b);
    p.temperature = 0;
    p.repeat_penalty = 10.0f;
    endless_sampler_create(&p, &a);
    int32_t recent[] = {1};
    CHECK(endless_sampler_sample(a, logits.data(), 5, recent, 1) == 4);
    endless_sampler_free(a);
}

TEST(sampler_matches_its_full_sort_definition) {
    // every combination below, 6 draws each, must pick the reference's token: vocabularies with
    // ties, -inf and NaN logits, greedy (T 0, with and without the penalty), long tails (T up to 50)
    // and short ones, each cut on and off
    std::mt19937 gen(7);
    int configs = 0, draws = 0;
    for (int nv : {1, 5, 300, 20000}) {
        for (int shape = 0; shape < 3; shape++) {
            std::vector<float> logits(nv);
            std::normal_distribution<float> nd(0.0f, shape == 2 ? 8.0f : 2.0f);
            for (float &x : logits) x = nd(gen);
            if (shape == 1) for (float &x : logits) x = std::round(x * 2.0f) / 2.0f;  // many ties
            if (nv > 5) { logits[3] = -INFINITY; logits[4] = NAN; logits[nv - 1] = logits[nv / 2]; }
            std::vector<int32_t> recent;
            for (int i = 0; i < 20; i++) recent.push_back((int32_t)(gen() % (uint32_t)nv));
            // the largest logit among them, so the penalty decides greedy draws
            recent.push_back((int32_t)(std::max_element(logits.begin(), logits.end(), [](float a, float b) { return !(a >= b) && b == b; }) - logits.begin()));
            for (float t : {0.0f, 0.05f, 0.2f, 0.7f, 1.0f, 3.0f, 50.0f})
                for (int k : {0, 1, 3, 40, 5000})
                    for (float tp : {1.0f, 0.95f, 0.5f, 0.999999f})
                        for (float mp : {0.0f, 0.01f, 0.3f, 1.0f}) {
                            endless_sampler_params p = endless_sampler_default_params();
                            p.temperature = t;
                            p.top_k = k;
                            p.top_p = tp;
                            p.min_p = mp;
                            p.repeat_penalty = configs % 2 ? (t == 0.0f ? 3.0f : 1.3f) : 1.0f;
                            p.repeat_last_n = 16;
                            p.seed = 1000 + configs;
                            endless_sampler *smp = nullptr;
                            CHECK(endless_sampler_create(&p, &smp) == ENDLESS_OK);
                            std::mt19937_64 rng(p.seed);
                            for (int d = 0; d < 6; d++) {
                                const int32_t want = reference_draw(p, rng, logits, recent);
                                const int32_t got = endless_sampler_sample(smp, logits.data(), nv, recent.data(), (int32_t)recent.size());
                                if (got != want) {
                                    std::fprintf(stderr, "  nv %d shape %d T %g k %d top_p %g min_p %g draw %d: %d != %d\n", nv, shape,
                                                 t, k, tp, mp, d, got, want);
                                    CHECK(got == want);
                                }
                                draws++;
                            }
                            endless_sampler_free(smp);
                            configs++;
                        }
        }
    }
    CHECK(draws == configs * 6 && configs == 4 * 3 * 7 * 5 * 4 * 4);
}

TEST(bad_arguments_are_errors) {
    model_fixture &f = llama();
    endless_session *a = make_session(f, 4, 16, 0, 8);
    std::vector<float> out(f.n_vocab);
    int32_t bad = f.n_vocab;
    CHECK(endless_session_decode(a, &bad, 1, ENDLESS_LOGITS_LAST, out.data(), nullptr) == ENDLESS_ERR_INVALID_ARGUMENT);
    CHECK(std::strstr(endless_last_error(), "out of range") != nullptr);
    CHECK(endless_session_branch_begin(a) == ENDLESS_ERR_STATE);  // no sinks yet
    CHECK(endless_session_branch_discard(a) == ENDLESS_ERR_STATE);
    CHECK(endless_session_last_logits(a, out.data()) == ENDLESS_ERR_STATE);
    decode_last(a, random_tokens(6, f.n_vocab), f.n_vocab);
    CHECK(endless_session_branch_begin(a) == ENDLESS_OK);
    CHECK(endless_session_branch_begin(a) == ENDLESS_ERR_STATE);
    std::vector<int32_t> many = random_tokens(9, f.n_vocab);
    CHECK(endless_session_decode(a, many.data(), 9, ENDLESS_LOGITS_LAST, out.data(), nullptr) == ENDLESS_ERR_CAPACITY);
    CHECK(endless_session_branch_discard(a) == ENDLESS_OK);
    endless_model *m = nullptr;
    CHECK(endless_model_load("/nonexistent.gguf", nullptr, &m) == ENDLESS_ERR_IO && m == nullptr);
    endless_session_free(a);
}

TEST(memory_stays_flat_over_100k_tokens) {
    dims d;
    d.n_embd = 32;
    d.n_head = 2;
    d.n_head_kv = 1;
    d.n_ff = 32;
    d.n_layer = 1;
    d.n_vocab = 64;
    model_fixture f(d, 3, "tiny");
    endless_session *s = make_session(f, 4, 64);
    endless_session_stats st;
    endless_session_stats_get(s, &st);
    const uint64_t bytes0 = st.cache_bytes;
    auto rss_kb = [] {
        long pages = 0, resident = 0;
        FILE *fp = std::fopen("/proc/self/statm", "r");
        if (fp) { if (std::fscanf(fp, "%ld %ld", &pages, &resident) != 2) resident = 0; std::fclose(fp); }
        return resident * (sysconf(_SC_PAGESIZE) / 1024);
    };
    std::vector<int32_t> chunk = random_tokens(1000, d.n_vocab);
    long rss_after_warmup = 0;
    for (int i = 0; i < 100; i++) {
        // one by one for the first chunk (the decode path), then in chunks
        if (i == 0) {
            for (int32_t t : chunk) endless_session_decode(s, &t, 1, ENDLESS_LOGITS_NONE, nullptr, nullptr);
        } else {
            endless_session_decode(s, chunk.data(), (int32_t)chunk.size(), ENDLESS_LOGITS_NONE, nullptr, nullptr);
        }
        if (i == 4) rss_after_warmup = rss_kb();
    }
    endless_session_stats_get(s, &st);
    CHECK(st.n_seen == 100000);
    CHECK(st.cache_bytes == bytes0);
    const long growth = rss_kb() - rss_after_warmup;
    CHECK_MSG(growth < 1024, "RSS grew by %ld KiB over 95k tokens", growth);
    endless_session_free(s);
}

TEST_MAIN()
