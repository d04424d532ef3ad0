// Session calls over the model and the StreamingLLM cache, and the snapshot file format:
//   "ENDLSNAP" | u32 version | 64-byte model fingerprint (hex) | u32 n_vocab |
//   i64 processed | i64 reused | u8 logits_valid | n_vocab f32 last logits | cache body |
//   32-byte SHA-256 of everything before it.
#include "session.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "sha256.h"

namespace endless {

namespace {
constexpr char SNAP_MAGIC[8] = {'E', 'N', 'D', 'L', 'S', 'N', 'A', 'P'};
constexpr uint32_t SNAP_VERSION = 1;

inline bool cancelled(const volatile int32_t *cancel) { return cancel && *cancel != 0; }
}  // namespace

session::session(model &m, const cache_params &p) : model_(m), cache_(m, p) {
    logits_.assign(m.hparams().n_vocab, 0.0f);
}

void session::check_tokens(const int32_t *tokens, int n) const {
    if (n < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "negative token count");
    if (n > 0 && !tokens) fail(ENDLESS_ERR_INVALID_ARGUMENT, "tokens is null");
    const int32_t nv = model_.hparams().n_vocab;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                                   " is out of range (vocabulary of " + std::to_string(nv) + ")");
}

void session::decode(const int32_t *tokens, int n, endless_logits_mode mode, float *logits, const volatile int32_t *cancel) {
    decode_impl(tokens, n, mode, logits, cancel, nullptr);
}

void session::decode_impl(const int32_t *tokens, int n, endless_logits_mode mode, float *logits, const volatile int32_t *cancel,
                          int32_t *greedy, const argmax_penalty &pen) {
    check_tokens(tokens, n);
    if (mode != ENDLESS_LOGITS_NONE && !logits) fail(ENDLESS_ERR_INVALID_ARGUMENT, "logits output is null");
    if (n == 0) {
        if (mode == ENDLESS_LOGITS_LAST) {
            if (!logits_valid_) fail(ENDLESS_ERR_STATE, "no logits yet: nothing was decoded");
            std::copy(logits_.begin(), logits_.end(), logits);
        }
        return;
    }
    if (cache_.branch_open() && mode != ENDLESS_LOGITS_ALL) {
        // Reuse the K/V the previous branch computed for the same tokens; the last token is
        // always recomputed so its logits are fresh.
        int r = cache_.reusable_prefix(tokens, n - 1);
        if (r > 0) {
            cache_.reuse(r);
            n_reused_ += r;
            tokens += r;
            n -= r;
        }
    }
    const int32_t nv = model_.hparams().n_vocab;
    int done = 0;
    while (done < n) {
        if (cancelled(cancel)) fail(ENDLESS_ERR_CANCELLED, "decode cancelled after " + std::to_string(done) + " of " + std::to_string(n) + " tokens");
        const int k = cache_.plan_append(n - done, view_);
        const bool all = mode == ENDLESS_LOGITS_ALL;
        float *dst = all ? logits + (size_t)done * nv : logits_.data();
        // Every chunk yields the logits of its last token, so a cancelled decode still leaves
        // valid last logits for the tokens that made it in.
        int32_t *pick = greedy && !all && done + k == n ? greedy : nullptr;
        model_.forward(tokens + done, k, view_, cache_.k(), cache_.v(), cache_.rope_cos(), cache_.rope_sin(), all ? k : 1, dst, pick, pen);
        cache_.commit_append(tokens + done, k);
        n_processed_ += k;
        done += k;
        if (all) std::copy(dst + (size_t)(k - 1) * nv, dst + (size_t)k * nv, logits_.begin());
        logits_valid_ = true;
        logits_behind_ = pick != nullptr;
    }
    if (mode == ENDLESS_LOGITS_LAST) std::copy(logits_.begin(), logits_.end(), logits);
}

const std::vector<float> &session::last_logits() const {
    if (!logits_valid_) fail(ENDLESS_ERR_STATE, "no logits yet: nothing was decoded");
    return logits_;
}

void session::branch_begin() {
    cache_.branch_begin();
    saved_logits_ = logits_;
    saved_valid_ = logits_valid_;
}

void session::branch_discard() {
    cache_.branch_discard();
    logits_.swap(saved_logits_);
    logits_valid_ = saved_valid_;
}

void session::branch_commit() { cache_.branch_commit(); }

void session::set_memory(const int32_t *tokens, int n, const volatile int32_t *cancel) {
    check_tokens(tokens, n);
    if (n > cache_.params().n_memory_max)
        fail(ENDLESS_ERR_CAPACITY, "memory of " + std::to_string(n) + " tokens exceeds the session's maximum of " + std::to_string(cache_.params().n_memory_max));
    cache_.begin_memory();
    int done = 0;
    while (done < n) {
        if (cancelled(cancel)) fail(ENDLESS_ERR_CANCELLED, "memory update cancelled; " + std::to_string(done) + " of " + std::to_string(n) + " tokens pinned");
        const int k = cache_.plan_memory(n - done, view_);
        model_.forward(tokens + done, k, view_, cache_.k(), cache_.v(), cache_.rope_cos(), cache_.rope_sin(), 0, nullptr);
        cache_.commit_memory(tokens + done, k);
        n_processed_ += k;
        done += k;
    }
}

void session::clear() {
    cache_.clear();
    logits_valid_ = false;
    saved_valid_ = false;
}

endless_session_stats session::stats() const {
    endless_session_stats s{};
    const cache_params &p = cache_.params();
    s.n_seen = cache_.n_seen();
    s.n_evicted = cache_.n_evicted();
    s.n_processed = n_processed_;
    s.n_reused = n_reused_;
    s.n_sinks = cache_.n_sinks();
    s.n_sinks_max = p.n_sinks;
    s.n_memory = cache_.n_memory();
    s.n_memory_max = p.n_memory_max;
    s.n_window = cache_.n_window();
    s.n_window_max = p.n_window;
    s.n_branch = cache_.branch_len();
    s.n_branch_max = p.n_branch_max;
    s.branch_open = cache_.branch_open() ? 1 : 0;
    s.n_vocab = model_.hparams().n_vocab;
    s.cache_bytes = cache_.bytes();
    return s;
}

int session::generate(sampler &smp, int max_tokens, const int32_t *stop, int n_stop, endless_token_fn on_token,
                      void *user_data, const volatile int32_t *cancel) {
    if (max_tokens < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "max_tokens is negative");
    if (n_stop > 0 && !stop) fail(ENDLESS_ERR_INVALID_ARGUMENT, "stop is null");
    if (!logits_valid_) fail(ENDLESS_ERR_STATE, "nothing to generate from: decode a prompt first");
    std::vector<int32_t> recent = cache_.tokens();
    const int keep = std::max(64, smp.params().repeat_last_n);
    if ((int)recent.size() > keep) recent.erase(recent.begin(), recent.end() - keep);
    // A greedy sampler's pick, with its repetition penalty, is taken where the logits are (the CUDA
    // backend: 4 bytes come back a token instead of the vocabulary's logits); logits_ catches up
    // once, before returning. A penalty window of more than ARGMAX_MAX_PENALIZED distinct tokens
    // (a repeat_last_n above it) draws on the host.
    const int32_t nv = (int32_t)logits_.size();
    int32_t next = -1;  // greedy: the pick after the last decoded token
    int produced = 0;
    try {
        while (produced < max_tokens) {
            if (cancelled(cancel)) fail(ENDLESS_ERR_CANCELLED, "generation cancelled after " + std::to_string(produced) + " tokens");
            const int32_t tok = next >= 0 ? next : smp.sample(logits_.data(), nv, recent.data(), (int32_t)recent.size());
            next = -1;
            produced++;
            const bool is_stop = std::find(stop, stop + n_stop, tok) != stop + n_stop;
            const bool want_stop = on_token ? on_token(tok, user_data) != 0 : false;
            if (is_stop) break;
            recent.push_back(tok);  // (the next draw's penalty window)
            if ((int)recent.size() > keep) recent.erase(recent.begin());
            std::vector<int32_t> pen_ids;
            if (smp.greedy() && smp.penalizes()) pen_ids = smp.penalized_ids(recent.data(), (int32_t)recent.size(), nv);
            const bool device_pick = smp.greedy() && pen_ids.size() <= (size_t)ARGMAX_MAX_PENALIZED;
            decode_impl(&tok, 1, ENDLESS_LOGITS_NONE, nullptr, cancel, device_pick ? &next : nullptr,
                        argmax_penalty{pen_ids.data(), (int)pen_ids.size(), smp.params().repeat_penalty});
            if (want_stop) break;
        }
    } catch (...) {
        try {
            settle_logits();
        } catch (...) {
        }
        throw;
    }
    settle_logits();
    return produced;
}

void session::settle_logits() {
    if (!logits_behind_) return;
    logits_behind_ = false;
    try {
        model_.fetch_logits(logits_.data());
    } catch (...) {
        logits_valid_ = false;  // (the device failed: no logits rather than old ones)
        throw;
    }
}

void session::save(const std::string &path) const {
    std::vector<uint8_t> out(SNAP_MAGIC, SNAP_MAGIC + 8);
    auto put32 = [&](uint32_t v) { out.insert(out.end(), (uint8_t *)&v, (uint8_t *)&v + 4); };
    auto put64 = [&](int64_t v) { out.insert(out.end(), (uint8_t *)&v, (uint8_t *)&v + 8); };
    put32(SNAP_VERSION);
    const std::string &fp = model_.fingerprint();
    out.insert(out.end(), fp.begin(), fp.end());
    put32((uint32_t)logits_.size());
    put64(n_processed_);
    put64(n_reused_);
    out.push_back(logits_valid_ ? 1 : 0);
    out.insert(out.end(), (const uint8_t *)logits_.data(), (const uint8_t *)(logits_.data() + logits_.size()));
    cache_.serialize(out);
    sha256 h;
    h.update(out.data(), out.size());
    uint8_t digest[32];
    h.finish(digest);
    out.insert(out.end(), digest, digest + 32);

    // Atomic replace: write a user-only temporary file beside the target, fsync, rename.
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail(ENDLESS_ERR_IO, "cannot write snapshot '" + tmp + "': " + std::strerror(errno));
    size_t off = 0;
    while (off < out.size()) {
        ssize_t w = ::write(fd, out.data() + off, out.size() - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            fail(ENDLESS_ERR_IO, "cannot write snapshot '" + tmp + "': " + std::strerror(e));
        }
        off += (size_t)w;
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        fail(ENDLESS_ERR_IO, "cannot write snapshot '" + tmp + "': " + std::strerror(e));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        fail(ENDLESS_ERR_IO, "cannot move snapshot into place at '" + path + "': " + std::strerror(e));
    }
}

void session::restore(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) fail(ENDLESS_ERR_IO, "cannot open snapshot '" + path + "': " + std::strerror(errno));
    std::vector<uint8_t> buf;
    uint8_t chunk[1 << 16];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof(chunk), f)) > 0) buf.insert(buf.end(), chunk, chunk + got);
    const bool read_error = std::ferror(f);
    std::fclose(f);
    if (read_error) fail(ENDLESS_ERR_IO, "cannot read snapshot '" + path + "'");
    restore_bytes(buf.data(), buf.size(), "snapshot '" + path + "': ");
}

void session::restore_bytes(const uint8_t *data, size_t size, const std::string &where) {
    const size_t head = 8 + 4 + 64 + 4 + 8 + 8 + 1;
    if (size < head + 32) fail(ENDLESS_ERR_FORMAT, where + "file is truncated (" + std::to_string(size) + " bytes)");
    if (std::memcmp(data, SNAP_MAGIC, 8) != 0) fail(ENDLESS_ERR_FORMAT, where + "not an Endless snapshot (bad magic)");
    uint32_t version;
    std::memcpy(&version, data + 8, 4);
    if (version != SNAP_VERSION)
        fail(ENDLESS_ERR_MISMATCH, where + "format version " + std::to_string(version) + ", this engine reads version " + std::to_string(SNAP_VERSION));
    sha256 h;
    h.update(data, size - 32);
    uint8_t digest[32];
    h.finish(digest);
    if (std::memcmp(digest, data + size - 32, 32) != 0) fail(ENDLESS_ERR_FORMAT, where + "checksum mismatch (the file is corrupted or truncated)");
    const std::string fp(reinterpret_cast<const char *>(data + 12), 64);
    if (fp != model_.fingerprint())
        fail(ENDLESS_ERR_MISMATCH, where + "taken with another model (fingerprint " + fp.substr(0, 12) + "..., this model " + model_.fingerprint().substr(0, 12) + "...)");
    uint32_t nv;
    std::memcpy(&nv, data + 76, 4);
    if (nv != logits_.size()) fail(ENDLESS_ERR_MISMATCH, where + "vocabulary size differs");
    int64_t processed, reused;
    std::memcpy(&processed, data + 80, 8);
    std::memcpy(&reused, data + 88, 8);
    if (processed < 0 || reused < 0) fail(ENDLESS_ERR_FORMAT, where + "negative counters");
    // Counters grow by one per token: 2^53 is centuries away, keeps them exact as JS numbers,
    // and keeps the increments that follow a restore from overflowing.
    if (processed > (int64_t(1) << 53) || reused > (int64_t(1) << 53)) fail(ENDLESS_ERR_FORMAT, where + "counters out of range");
    const bool valid = data[96] != 0;
    const size_t logits_bytes = (size_t)nv * sizeof(float);
    if (size < head + logits_bytes + 32) fail(ENDLESS_ERR_FORMAT, where + "file is truncated");
    std::vector<float> logits(nv);
    std::memcpy(logits.data(), data + head, logits_bytes);
    try {
        cache_.deserialize(data + head + logits_bytes, size - head - logits_bytes - 32);
    } catch (const error &e) {
        fail(e.status(), where + e.what());
    }
    logits_ = std::move(logits);
    logits_valid_ = valid;
    saved_valid_ = false;
    n_processed_ = processed;
    n_reused_ = reused;
}

}  // namespace endless
