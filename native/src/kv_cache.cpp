// The StreamingLLM cache: bookkeeping of sinks, pinned memory, the ring window and branches,
// and the K/V buffers of every layer. See kv_cache.h for the layout and visibility rules.
#include "kv_cache.h"

#include <algorithm>
#include <cstring>

#include "error.h"

namespace endless {

kv_cache::kv_cache(const model &m, const cache_params &p) : be_(m.be()), p_(p) {
    const model_hparams &hp = m.hparams();
    n_layer_ = hp.n_layer;
    kv_dim_ = hp.n_head_kv * hp.head_dim;
    n_vocab_ = hp.n_vocab;
    ring_ = p_.n_window + std::max(p_.n_branch_max, p_.n_batch);
    n_slots_ = p_.n_sinks + p_.n_memory_max + ring_;
    ring_tokens_.assign(ring_, -1);
    const size_t layer_bytes = (size_t)n_slots_ * kv_dim_ * sizeof(float);
    try {
        for (int il = 0; il < n_layer_; il++) {
            k_.push_back(static_cast<float *>(be_.alloc(layer_bytes)));
            v_.push_back(static_cast<float *>(be_.alloc(layer_bytes)));
        }
        bytes_ = 2 * layer_bytes * n_layer_;
        // True positions never exceed S + M + W - 1 (the newest visible window entry), but the
        // CUDA attention rotates window keys by their index in a chunk's key list (n_fixed + j,
        // relative positions being what RoPE scores depend on), and a chunk of n queries lists up
        // to W + n - 1 window entries: the tables cover every slot (S + M + ring) so that index
        // stays inside them. (Found on an H100 by compute-sanitizer: a 150-token chunk read past
        // a 65-row table.)
        const int n_pos = n_slots_;
        std::vector<float> c, s;
        m.rope_tables(n_pos, c, s);
        rope_cos_ = static_cast<float *>(be_.alloc(c.size() * sizeof(float)));
        rope_sin_ = static_cast<float *>(be_.alloc(s.size() * sizeof(float)));
        be_.upload(rope_cos_, c.data(), c.size() * sizeof(float));
        be_.upload(rope_sin_, s.data(), s.size() * sizeof(float));
    } catch (...) {
        for (float *b : k_) be_.release(b);
        for (float *b : v_) be_.release(b);
        if (rope_cos_) be_.release(rope_cos_);
        if (rope_sin_) be_.release(rope_sin_);
        throw;
    }
}

kv_cache::~kv_cache() {
    for (float *b : k_) be_.release(b);
    for (float *b : v_) be_.release(b);
    be_.release(rope_cos_);
    be_.release(rope_sin_);
}

void kv_cache::view_window(int64_t e0, int k, cache_view &view) const {
    const int ns = (int)sinks_.size(), nm = (int)memory_.size();
    const int64_t first = std::max<int64_t>(0, e0 - p_.n_window + 1);
    view.n_fixed = ns + nm;
    view.keys.clear();
    for (int i = 0; i < ns; i++) view.keys.push_back(i);
    for (int i = 0; i < nm; i++) view.keys.push_back(p_.n_sinks + i);
    for (int64_t e = first; e < e0 + k; e++) view.keys.push_back(ring_slot(e));
    view.slots.resize(k);
    view.win_lo.resize(k);
    view.win_hi.resize(k);
    for (int i = 0; i < k; i++) {
        const int64_t e = e0 + i;
        view.slots[i] = ring_slot(e);
        view.win_lo[i] = (int32_t)(std::max<int64_t>(0, e - p_.n_window + 1) - first);
        view.win_hi[i] = (int32_t)(e + 1 - first);
    }
}

int kv_cache::plan_append(int n, cache_view &view) const {
    if (n <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "nothing to append");
    if (!branch_open_ && (int)sinks_.size() < p_.n_sinks) {
        // The stream's first tokens become the sinks: they see only each other.
        const int have = (int)sinks_.size(), k = std::min(n, p_.n_sinks - have);
        view.n_fixed = 0;
        view.keys.resize(have + k);
        for (int i = 0; i < have + k; i++) view.keys[i] = i;
        view.slots.resize(k);
        view.win_lo.assign(k, 0);
        view.win_hi.resize(k);
        for (int i = 0; i < k; i++) {
            view.slots[i] = have + i;
            view.win_hi[i] = have + i + 1;
        }
        return k;
    }
    int limit = p_.n_batch;
    if (branch_open_) {
        const int room = p_.n_branch_max - branch_len_;
        if (room <= 0)
            fail(ENDLESS_ERR_CAPACITY, "the branch is full (" + std::to_string(p_.n_branch_max) + " tokens); discard or commit it");
        limit = std::min(limit, room);
    }
    const int k = std::min(n, limit);
    view_window(win_count_ + (branch_open_ ? branch_len_ : 0), k, view);
    return k;
}

void kv_cache::commit_append(const int32_t *tokens, int k) {
    if (!branch_open_ && (int)sinks_.size() < p_.n_sinks) {
        sinks_.insert(sinks_.end(), tokens, tokens + k);
        branch_valid_ = 0;
        return;
    }
    const int64_t e0 = win_count_ + (branch_open_ ? branch_len_ : 0);
    for (int i = 0; i < k; i++) ring_tokens_[(e0 + i) % ring_] = tokens[i];
    if (branch_open_) {
        branch_len_ += k;
        branch_valid_ = branch_len_;  // later entries were computed after other tokens
    } else {
        win_count_ += k;
        branch_valid_ = 0;
    }
}

void kv_cache::begin_memory() {
    if (branch_open_) fail(ENDLESS_ERR_STATE, "cannot set the pinned memory while a branch is open");
    if (!sinks_full()) fail(ENDLESS_ERR_STATE, "cannot set the pinned memory before the stream holds its " + std::to_string(p_.n_sinks) + " sink tokens");
    memory_.clear();
    branch_valid_ = 0;
}

int kv_cache::plan_memory(int n, cache_view &view) const {
    const int m0 = (int)memory_.size();
    if (m0 + n > p_.n_memory_max)
        fail(ENDLESS_ERR_CAPACITY, "memory of " + std::to_string(m0 + n) + " tokens exceeds the session's maximum of " + std::to_string(p_.n_memory_max));
    const int k = std::min(n, p_.n_batch);
    const int ns = (int)sinks_.size();
    view.n_fixed = ns;
    view.keys.clear();
    for (int i = 0; i < ns; i++) view.keys.push_back(i);
    for (int i = 0; i < m0 + k; i++) view.keys.push_back(p_.n_sinks + i);
    view.slots.resize(k);
    view.win_lo.assign(k, 0);
    view.win_hi.resize(k);
    for (int i = 0; i < k; i++) {
        view.slots[i] = p_.n_sinks + m0 + i;
        view.win_hi[i] = m0 + i + 1;
    }
    return k;
}

void kv_cache::commit_memory(const int32_t *tokens, int k) {
    memory_.insert(memory_.end(), tokens, tokens + k);
}

void kv_cache::branch_begin() {
    if (branch_open_) fail(ENDLESS_ERR_STATE, "a branch is already open");
    if (!sinks_full())
        fail(ENDLESS_ERR_STATE, "cannot open a branch before the stream holds its " + std::to_string(p_.n_sinks) + " sink tokens");
    branch_open_ = true;
    branch_len_ = 0;
}

void kv_cache::branch_discard() {
    if (!branch_open_) fail(ENDLESS_ERR_STATE, "no branch is open");
    branch_open_ = false;
    branch_len_ = 0;  // entries stay in the ring for reuse by the next branch
}

void kv_cache::branch_commit() {
    if (!branch_open_) fail(ENDLESS_ERR_STATE, "no branch is open");
    win_count_ += branch_len_;
    branch_open_ = false;
    branch_len_ = 0;
    branch_valid_ = 0;
}

int kv_cache::reusable_prefix(const int32_t *tokens, int n) const {
    if (!branch_open_) return 0;
    int k = 0;
    while (k < n && branch_len_ + k < branch_valid_ && branch_len_ + k < p_.n_branch_max &&
           ring_tokens_[(win_count_ + branch_len_ + k) % ring_] == tokens[k])
        k++;
    return k;
}

void kv_cache::reuse(int k) { branch_len_ += k; }

void kv_cache::clear() {
    sinks_.clear();
    memory_.clear();
    win_count_ = 0;
    branch_open_ = false;
    branch_len_ = 0;
    branch_valid_ = 0;
}

std::vector<int32_t> kv_cache::tokens() const {
    std::vector<int32_t> out(sinks_);
    out.insert(out.end(), memory_.begin(), memory_.end());
    for (int64_t e = win_count_ - n_window(); e < win_count_; e++) out.push_back(ring_tokens_[e % ring_]);
    if (branch_open_)
        for (int64_t e = win_count_; e < win_count_ + branch_len_; e++) out.push_back(ring_tokens_[e % ring_]);
    return out;
}

namespace {
template <typename T> void put(std::vector<uint8_t> &out, T v) {
    const uint8_t *p = reinterpret_cast<const uint8_t *>(&v);
    out.insert(out.end(), p, p + sizeof(T));
}
struct reader {
    const uint8_t *p, *end;
    template <typename T> T get() {
        if ((size_t)(end - p) < sizeof(T)) fail(ENDLESS_ERR_FORMAT, "snapshot is truncated");
        T v;
        std::memcpy(&v, p, sizeof(T));
        p += sizeof(T);
        return v;
    }
    const uint8_t *take(size_t n) {
        if ((size_t)(end - p) < n) fail(ENDLESS_ERR_FORMAT, "snapshot is truncated");
        const uint8_t *r = p;
        p += n;
        return r;
    }
};
}  // namespace

void kv_cache::serialize(std::vector<uint8_t> &out) const {
    put<int32_t>(out, p_.n_sinks);
    put<int32_t>(out, p_.n_window);
    put<int32_t>(out, n_layer_);
    put<int32_t>(out, kv_dim_);
    put<int64_t>(out, win_count_);
    const int ns = n_sinks(), nm = n_memory(), nw = n_window();
    put<int32_t>(out, ns);
    put<int32_t>(out, nm);
    put<int32_t>(out, nw);
    std::vector<int32_t> slots;
    for (int i = 0; i < ns; i++) slots.push_back(i);
    for (int i = 0; i < nm; i++) slots.push_back(p_.n_sinks + i);
    for (int64_t e = win_count_ - nw; e < win_count_; e++) slots.push_back(ring_slot(e));
    std::vector<int32_t> toks = tokens();  // branch excluded below: snapshots hold the stream only
    toks.resize(ns + nm + nw);
    for (int32_t t : toks) put<int32_t>(out, t);
    const size_t row = (size_t)kv_dim_ * sizeof(float);
    for (int il = 0; il < n_layer_; il++) {
        for (const std::vector<float *> *buf : {&k_, &v_}) {
            const size_t at = out.size();
            out.resize(at + row * slots.size());
            for (size_t j = 0; j < slots.size(); j++)
                be_.download(out.data() + at + j * row, (*buf)[il] + (size_t)slots[j] * kv_dim_, row);
        }
    }
}

void kv_cache::deserialize(const uint8_t *data, size_t size) {
    reader r{data, data + size};
    const int32_t s = r.get<int32_t>(), w = r.get<int32_t>(), nl = r.get<int32_t>(), kvd = r.get<int32_t>();
    if (s != p_.n_sinks || w != p_.n_window)
        fail(ENDLESS_ERR_MISMATCH, "snapshot was taken with sinks=" + std::to_string(s) + " window=" + std::to_string(w) +
                                       ", this session has sinks=" + std::to_string(p_.n_sinks) + " window=" + std::to_string(p_.n_window));
    if (nl != n_layer_ || kvd != kv_dim_) fail(ENDLESS_ERR_MISMATCH, "snapshot has another model's cache shape");
    const int64_t wc = r.get<int64_t>();
    const int32_t ns = r.get<int32_t>(), nm = r.get<int32_t>(), nw = r.get<int32_t>();
    if (wc < 0 || wc > (int64_t(1) << 53) /* see session::restore_bytes */ || ns < 0 || ns > p_.n_sinks || nm < 0 || nm > p_.n_memory_max || nw != (int32_t)std::min<int64_t>(wc, p_.n_window) ||
        (ns < p_.n_sinks && (wc != 0 || nm != 0)))
        fail(ENDLESS_ERR_FORMAT, "snapshot counters are inconsistent (sinks " + std::to_string(ns) + ", memory " + std::to_string(nm) +
                                     ", window " + std::to_string(nw) + ")");
    const int total = ns + nm + nw;
    const int32_t *toks = reinterpret_cast<const int32_t *>(r.take((size_t)total * sizeof(int32_t)));
    const size_t row = (size_t)kv_dim_ * sizeof(float);
    const uint8_t *kv = r.take(row * total * 2 * n_layer_);
    if (r.p != r.end) fail(ENDLESS_ERR_FORMAT, "snapshot has trailing bytes");
    std::vector<int32_t> tok(total);
    if (total > 0) std::memcpy(tok.data(), toks, tok.size() * sizeof(int32_t));  // data() may be null when empty
    for (int32_t t : tok)
        if (t < 0 || t >= n_vocab_) fail(ENDLESS_ERR_FORMAT, "snapshot holds token " + std::to_string(t) + ", outside the vocabulary");

    // Everything checked: now replace the state.
    clear();
    sinks_.assign(tok.begin(), tok.begin() + ns);
    memory_.assign(tok.begin() + ns, tok.begin() + ns + nm);
    win_count_ = wc;
    std::vector<int32_t> slots;
    for (int i = 0; i < ns; i++) slots.push_back(i);
    for (int i = 0; i < nm; i++) slots.push_back(p_.n_sinks + i);
    for (int64_t e = wc - nw; e < wc; e++) {
        slots.push_back(ring_slot(e));
        ring_tokens_[e % ring_] = tok[ns + nm + (e - (wc - nw))];
    }
    for (int il = 0; il < n_layer_; il++) {
        for (const std::vector<float *> *buf : {&k_, &v_}) {
            for (size_t j = 0; j < slots.size(); j++)
                be_.upload((*buf)[il] + (size_t)slots[j] * kv_dim_, kv + j * row, row);
            kv += row * slots.size();
        }
    }
}

}  // namespace endless
