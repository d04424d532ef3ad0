// The engine must not depend on the model file after it has loaded: the file may be truncated,
// overwritten in place, removed or replaced by a rename while the editor runs (a model update, a
// `git checkout`, a full disk). Before the fix the CPU backend read small weights straight from
// the mapping, so truncating the file faulted the process with SIGBUS on the next decode. Each
// test loads a random model (weights below and above the 4 MiB huge-page threshold) from a temp
// file, decodes, does something to the file, and checks that new sessions, the running session
// and the metadata all give bit-identical results.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "endless.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "test_util.h"

namespace {

constexpr int n_embd = 256, n_head = 4, n_head_kv = 2, n_ff = 384, n_vocab = 4200, n_layer = 2;

std::vector<uint8_t> model_file_f32(std::mt19937 &rng, size_t n, float scale, float shift = 0.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = nd(rng) + shift;
    std::vector<uint8_t> b(n * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

// token_embd and output are 256 x 4200 F32 = 4.1 MiB (the huge-page path of the CPU backend);
// every other weight is small (the path that used to stay in the mapping).
std::vector<uint8_t> model_file_bytes(uint32_t seed) {
    using namespace gguf_test;
    std::mt19937 rng(seed);
    const int hd = n_embd / n_head, nq = n_head * hd, nkv = n_head_kv * hd;
    const float s = 1.0f / std::sqrt((float)n_embd);
    gguf_builder b;
    b.str("general.architecture", "llama").str("general.name", "model-file-test");
    b.u32("llama.context_length", 512).u32("llama.embedding_length", n_embd).u32("llama.block_count", n_layer);
    b.u32("llama.feed_forward_length", n_ff).u32("llama.attention.head_count", n_head).u32("llama.attention.head_count_kv", n_head_kv);
    b.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f).f32("llama.rope.freq_base", 10000.0f).u32("llama.rope.dimension_count", hd);
    b.tensor("token_embd.weight", 0, {(uint64_t)n_embd, (uint64_t)n_vocab}, model_file_f32(rng, (size_t)n_embd * n_vocab, 1.0f));
    for (int l = 0; l < n_layer; l++) {
        const std::string p = "blk." + std::to_string(l) + ".";
        b.tensor(p + "attn_norm.weight", 0, {(uint64_t)n_embd}, model_file_f32(rng, n_embd, 0.1f, 1.0f));
        b.tensor(p + "attn_q.weight", 0, {(uint64_t)n_embd, (uint64_t)nq}, model_file_f32(rng, (size_t)n_embd * nq, 3 * s));
        b.tensor(p + "attn_k.weight", 0, {(uint64_t)n_embd, (uint64_t)nkv}, model_file_f32(rng, (size_t)n_embd * nkv, 3 * s));
        b.tensor(p + "attn_v.weight", 0, {(uint64_t)n_embd, (uint64_t)nkv}, model_file_f32(rng, (size_t)n_embd * nkv, s));
        b.tensor(p + "attn_output.weight", 0, {(uint64_t)nq, (uint64_t)n_embd}, model_file_f32(rng, (size_t)nq * n_embd, s));
        b.tensor(p + "ffn_norm.weight", 0, {(uint64_t)n_embd}, model_file_f32(rng, n_embd, 0.1f, 1.0f));
        b.tensor(p + "ffn_gate.weight", 0, {(uint64_t)n_embd, (uint64_t)n_ff}, model_file_f32(rng, (size_t)n_embd * n_ff, s));
        b.tensor(p + "ffn_up.weight", 0, {(uint64_t)n_embd, (uint64_t)n_ff}, model_file_f32(rng, (size_t)n_embd * n_ff, s));
        b.tensor(p + "ffn_down.weight", 0, {(uint64_t)n_ff, (uint64_t)n_embd}, model_file_f32(rng, (size_t)n_ff * n_embd, 1.0f / std::sqrt((float)n_ff)));
    }
    b.tensor("output_norm.weight", 0, {(uint64_t)n_embd}, model_file_f32(rng, n_embd, 0.1f, 1.0f));
    b.tensor("output.weight", 0, {(uint64_t)n_embd, (uint64_t)n_vocab}, model_file_f32(rng, (size_t)n_embd * n_vocab, 0.5f));
    return b.build();
}

void model_file_write(const std::string &path, const std::vector<uint8_t> &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write((const char *)bytes.data(), (std::streamsize)bytes.size());
}

const std::vector<int32_t> &model_file_prompt() {
    static const std::vector<int32_t> t = {1, 17, 4100, 33, 2048, 5, 999, 12, 3000, 77, 4199, 0, 64};
    return t;
}

// Logits of the last prompt token in a new session, and of one more token decoded in `running`.
std::vector<float> model_file_logits(endless_model *m) {
    endless_session_params sp = endless_session_default_params();
    sp.n_sinks = 4;
    sp.n_window = 64;
    endless_session *s = nullptr;
    endless_status st = endless_session_create(m, &sp, &s);
    CHECK_MSG(st == ENDLESS_OK, "session: %s", endless_last_error());
    std::vector<float> out(n_vocab, NAN);
    if (!s) return out;
    st = endless_session_decode(s, model_file_prompt().data(), (int32_t)model_file_prompt().size(), ENDLESS_LOGITS_LAST, out.data(), nullptr);
    CHECK_MSG(st == ENDLESS_OK, "decode: %s", endless_last_error());
    endless_session_free(s);
    return out;
}

std::vector<float> model_file_step(endless_session *s, int32_t token) {
    std::vector<float> out(n_vocab, NAN);
    const endless_status st = endless_session_decode(s, &token, 1, ENDLESS_LOGITS_LAST, out.data(), nullptr);
    CHECK_MSG(st == ENDLESS_OK, "decode: %s", endless_last_error());
    return out;
}

std::string model_file_name(const endless_model *m) {
    const endless_gguf *g = endless_model_gguf(m);
    const int64_t i = endless_gguf_meta_find(g, "general.name");
    endless_meta_value v{};
    if (i < 0 || endless_gguf_meta_get(g, i, 0, &v) != ENDLESS_OK) return "<missing>";
    return std::string(v.s, v.s_len);
}

bool model_file_same(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Loads the model, decodes, runs `damage` on the file, and checks nothing changed.
void model_file_check(const char *what, void (*damage)(const std::string &path, size_t size)) {
    const std::string path = "/tmp/endless-test-" + std::to_string(getpid()) + "-model-file.gguf";
    const std::vector<uint8_t> bytes = model_file_bytes(21);
    model_file_write(path, bytes);
    endless_model_params p = endless_model_default_params();
    p.device = ENDLESS_DEVICE_CPU;
    p.n_threads = 2;
    endless_model *m = nullptr;
    endless_status st = endless_model_load(path.c_str(), &p, &m);
    CHECK_MSG(st == ENDLESS_OK, "%s: load: %s", what, endless_last_error());
    if (!m) return;
    endless_model_desc desc{};
    CHECK(endless_model_describe(m, &desc) == ENDLESS_OK);
    CHECK_MSG(std::string(desc.notice).empty(), "%s: unexpected notice: %s", what, desc.notice);
    const std::string fingerprint = desc.fingerprint;

    const std::vector<float> before = model_file_logits(m);
    endless_session_params sp = endless_session_default_params();
    sp.n_sinks = 4;
    sp.n_window = 64;
    endless_session *running = nullptr, *twin = nullptr;
    CHECK(endless_session_create(m, &sp, &running) == ENDLESS_OK);
    CHECK(endless_session_create(m, &sp, &twin) == ENDLESS_OK);
    for (endless_session *s : {running, twin})
        CHECK(endless_session_decode(s, model_file_prompt().data(), (int32_t)model_file_prompt().size(), ENDLESS_LOGITS_NONE, nullptr, nullptr) == ENDLESS_OK);
    const std::vector<float> step_ref = model_file_step(twin, 42);

    damage(path, bytes.size());

    CHECK_MSG(model_file_same(model_file_logits(m), before), "%s: logits of a new session changed", what);
    CHECK_MSG(model_file_same(model_file_step(running, 42), step_ref), "%s: the running session's next logits changed", what);
    CHECK_MSG(model_file_name(m) == "model-file-test", "%s: metadata read after the damage: '%s'", what, model_file_name(m).c_str());
    CHECK(endless_model_describe(m, &desc) == ENDLESS_OK);
    CHECK_MSG(fingerprint == desc.fingerprint, "%s: the fingerprint changed", what);
    // and once more after more decoding, in case anything was read lazily
    CHECK_MSG(model_file_same(model_file_logits(m), before), "%s: logits changed on the second pass", what);
    endless_session_free(running);
    endless_session_free(twin);
    endless_model_free(m);
    std::remove(path.c_str());
}

}  // namespace

TEST(model_file_truncated_then_garbage_in_place) {
    model_file_check("truncate + garbage", [](const std::string &path, size_t size) {
        CHECK(truncate(path.c_str(), 0) == 0);
        // the same inode, rewritten in place with garbage of the old length
        const int fd = open(path.c_str(), O_WRONLY);
        CHECK(fd >= 0);
        std::vector<uint8_t> junk(size);
        std::mt19937 rng(99);
        for (auto &c : junk) c = (uint8_t)rng();
        CHECK(write(fd, junk.data(), junk.size()) == (ssize_t)junk.size());
        close(fd);
    });
}

TEST(model_file_truncated_to_half) {
    model_file_check("truncate to half", [](const std::string &path, size_t size) { CHECK(truncate(path.c_str(), (off_t)(size / 2)) == 0); });
}

TEST(model_file_removed) {
    model_file_check("removed", [](const std::string &path, size_t) { CHECK(unlink(path.c_str()) == 0); });
}

TEST(model_file_replaced_by_rename) {
    model_file_check("rename over", [](const std::string &path, size_t) {
        const std::string other = path + ".new";
        model_file_write(other, model_file_bytes(22));  // another valid model
        CHECK(rename(other.c_str(), path.c_str()) == 0);
    });
}

// The reader's own promise: after release_mapping() every metadata value (scalars, numeric and
// string arrays) reads the same although the bytes it was parsed from are gone, and no tensor
// points into them any more.
TEST(model_file_gguf_release_mapping) {
    using namespace gguf_test;
    gguf_builder b;
    b.str("general.name", "meta").u32("a.u32", 7).f32("a.f32", 0.25f).boolean("a.bool", true).i64("a.i64", -5);
    b.arr("a.arr", T_I32, std::vector<int32_t>{3, -1, 4}).arr_str("a.strs", {"x", "", "hello world"});
    b.tensor("t", 0, {4}, std::vector<uint8_t>(16, 1));
    std::vector<uint8_t> buf = b.build();
    auto f = endless::gguf_file::parse(buf.data(), buf.size(), "meta.gguf");
    CHECK(f->mapped());
    f->release_mapping();
    std::fill(buf.begin(), buf.end(), (uint8_t)0xA5);
    buf.clear();
    buf.shrink_to_fit();
    CHECK(!f->mapped() && f->file_data() == nullptr);
    CHECK(f->get_string_req("general.name") == "meta");
    CHECK(f->get_int_req("a.u32") == 7);
    CHECK(f->get_float_req("a.f32") == 0.25);
    CHECK(f->get_bool("a.bool", false));
    CHECK(f->get_int_req("a.i64") == -5);
    const endless::gguf_kv *arr = f->find("a.arr");
    CHECK(arr && arr->n == 3 && arr->get_int(0) == 3 && arr->get_int(1) == -1 && arr->get_int(2) == 4);
    const endless::gguf_kv *strs = f->find("a.strs");
    CHECK(strs && strs->n == 3 && strs->get_string(0) == "x" && strs->get_string(1).empty() && strs->get_string(2) == "hello world");
    const endless::gguf_tensor *t = f->find_tensor("t");
    CHECK(t && t->data == nullptr && t->nbytes == 16);
    f->release_mapping();  // a second call is harmless
    CHECK(f->get_string_req("general.name") == "meta");
}

TEST_MAIN()
