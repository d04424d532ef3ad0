// The CPU implementation of endless::backend: host memory, the thread pool, and the ops of a
// token step. matmul and get_rows go to cpu_matmul / cpu_get_rows; attention rotates queries
// and cached keys on the fly (keys are cached before RoPE, see backend.h), threaded over
// (block of queries, kv head[, range of keys]) so each key is rotated once per block of
// queries for all the query heads that share its kv head.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"
#include "error.h"
#include "sampler.h"

namespace endless {

namespace {

// Below this many elements an elementwise op runs on the calling thread: waking the pool
// costs more than the work.
constexpr size_t CPU_PARALLEL_MIN = 1 << 15;

void cpu_check_attn(const attn_args &a) {
    auto bad = [](const std::string &what) { fail(ENDLESS_ERR_INVALID_ARGUMENT, "attention: " + what); };
    if (a.n_q < 0) bad("negative query count");
    if (a.n_q == 0) return;
    if (!a.q || !a.k_cache || !a.v_cache || !a.out || !a.win_lo || !a.win_hi) bad("null tensor or window pointer");
    if (a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0)
        bad("n_head " + std::to_string(a.n_head) + " is not a positive multiple of n_head_kv " + std::to_string(a.n_head_kv));
    if (a.head_dim <= 0) bad("head_dim must be positive");
    if (a.n_rot < 0 || a.n_rot > a.head_dim || a.n_rot % 2 != 0)
        bad("n_rot " + std::to_string(a.n_rot) + " must be even and at most head_dim " + std::to_string(a.head_dim));
    if (a.n_rot > 0 && (!a.rope_cos || !a.rope_sin)) bad("missing RoPE tables");
    if (a.mode != ROPE_MODE_NORM && a.mode != ROPE_MODE_NEOX) bad("unknown rope mode " + std::to_string((int)a.mode));
    if (a.n_keys < 0 || a.n_fixed < 0 || a.n_fixed > a.n_keys)
        bad("n_fixed " + std::to_string(a.n_fixed) + " outside [0, n_keys " + std::to_string(a.n_keys) + "]");
    if (a.n_keys > 0 && !a.keys) bad("null key list");
    for (int j = 0; j < a.n_keys; j++)
        if (a.keys[j] < 0) bad("negative cache slot " + std::to_string(a.keys[j]) + " at key " + std::to_string(j));
    const int n_win = a.n_keys - a.n_fixed;
    for (int i = 0; i < a.n_q; i++) {
        if (a.win_lo[i] < 0 || a.win_lo[i] > a.win_hi[i] || a.win_hi[i] > n_win)
            bad("query " + std::to_string(i) + " window [" + std::to_string(a.win_lo[i]) + ", " +
                std::to_string(a.win_hi[i]) + ") outside [0, " + std::to_string(n_win) + "]");
        if (a.n_fixed + a.win_hi[i] - a.win_lo[i] == 0) bad("query " + std::to_string(i) + " sees no key");
    }
}

class backend_cpu : public backend {
public:
    explicit backend_cpu(int n_threads) : pool_(n_threads) {}

    std::string name() const override { return "cpu"; }
    bool is_host() const override { return true; }

    void *alloc(size_t bytes) override {
        const size_t size = (std::max<size_t>(bytes, 1) + 63) & ~(size_t)63;
        if (size < bytes) fail(ENDLESS_ERR_OUT_OF_MEMORY, "cpu backend: allocation of " + std::to_string(bytes) + " bytes overflows");
        // more than the machine's memory can never work; refusing it up front also keeps
        // sanitizer builds from aborting instead of returning null
        static const size_t phys = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
        if (phys > 0 && size > phys)
            fail(ENDLESS_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes (more than the machine's memory)");
        void *p = std::aligned_alloc(64, size);
        if (!p) fail(ENDLESS_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
        return p;
    }
    void release(void *ptr) override { std::free(ptr); }
    void upload(void *dst, const void *src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
    void download(void *dst, const void *src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
    void copy(void *dst, const void *src, size_t bytes) override { if (bytes && dst != src) std::memmove(dst, src, bytes); }
    // Every weight is copied out of the file mapping into memory the engine owns, so that the
    // model file can be removed, truncated or rewritten while the engine runs (a truncated
    // mapping faults with SIGBUS on the next read; a rewritten one changes the weights under
    // us). Large weights go to 2 MiB-aligned memory advised for transparent huge pages: decode
    // streams every weight once per token, and with 4 KiB pages the TLB misses cost a third of
    // the bandwidth (measured 10 vs 16 GB/s on the dev VM). ENDLESS_CPU_WEIGHT_COPY=0 keeps the
    // weights in the mapping (half the memory during load) and gives up that safety; so does a
    // failed allocation (the mapping still works). The model keeps the mapping only then.
    const void *place_weight(const void *file_data, size_t bytes) override {
        static const bool copy = [] {
            const char *e = std::getenv("ENDLESS_CPU_WEIGHT_COPY");
            return !(e && std::strcmp(e, "0") == 0);
        }();
        if (!copy || bytes == 0) return file_data;
        constexpr size_t huge = (size_t)2 << 20;
        if (bytes < 2 * huge) {
            const size_t size = (bytes + 63) & ~(size_t)63;
            void *p = std::aligned_alloc(64, size);
            if (!p) return file_data;
            std::memcpy(p, file_data, bytes);
            return p;
        }
        const size_t size = (bytes + huge - 1) & ~(huge - 1);
        void *p = std::aligned_alloc(huge, size);
        if (!p) return file_data;
#ifdef MADV_HUGEPAGE
        madvise(p, size, MADV_HUGEPAGE);
#endif
        std::memcpy(p, file_data, bytes);
        return p;
    }

    void get_rows(const weight &w, const int32_t *ids, int n, float *out) override { cpu_get_rows(w, ids, n, out); }
    void matmul(const weight &w, const float *x, int n, float *y) override { cpu_matmul(pool_, w, x, n, y); }

    void rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y) override {
        if (n < 0 || dim <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "rms_norm: bad shape [" + std::to_string(n) + ", " + std::to_string(dim) + "]");
        if (n > 0 && (!x || !g || !y)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "rms_norm: null tensor");
        auto rows = [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) {
                const float *xi = x + i * dim;
                float *yi = y + i * dim;
                double ss = 0;
                for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
                const float r = (float)(1.0 / std::sqrt(ss / dim + (double)eps));
                for (int j = 0; j < dim; j++) yi[j] = xi[j] * r * g[j];
            }
        };
        if ((size_t)n * dim < CPU_PARALLEL_MIN) rows(0, n, 0);
        else pool_.parallel_for(n, rows);
    }

    void add_bias(float *y, const float *b, int n, int dim) override {
        if (n < 0 || dim < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "add_bias: bad shape");
        if (n > 0 && dim > 0 && (!y || !b)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "add_bias: null tensor");
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) y[i * dim + j] += b[j];
    }

    void add(float *y, const float *x, size_t count) override {
        if (count > 0 && (!y || !x)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "add: null tensor");
        auto part = [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) y[i] += x[i];
        };
        if (count < CPU_PARALLEL_MIN) part(0, (int64_t)count, 0);
        else pool_.parallel_for((int64_t)count, part);
    }

    void swiglu(const float *gate, const float *up, size_t count, float *y) override {
        if (count > 0 && (!gate || !up || !y)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "swiglu: null tensor");
        const mm_kernel_set &ks = mm_kernels_current();
        auto part = [&](int64_t i0, int64_t i1, int) { ks.swiglu_f32(gate + i0, up + i0, y + i0, i1 - i0); };
        if (count < CPU_PARALLEL_MIN) part(0, (int64_t)count, 0);
        else pool_.parallel_for((int64_t)count, part);
    }

    void argmax(const float *x, int64_t n, int32_t *out, const argmax_penalty &pen) override {
        argmax_check("argmax", n, pen);
        if (!x || !out) fail(ENDLESS_ERR_INVALID_ARGUMENT, "argmax: null tensor");
        out[0] = greedy_index_penalized(x, (int32_t)n, pen.ids, pen.n_ids, pen.penalty);
    }

    void kv_store(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slots, int n,
                  int row) override {
        if (n < 0 || row <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "kv_store: bad shape");
        if (n > 0 && (!k_cache || !v_cache || !k || !v || !slots)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "kv_store: null tensor or slot list");
        for (int i = 0; i < n; i++) {
            if (slots[i] < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "kv_store: negative cache slot " + std::to_string(slots[i]));
            std::memcpy(k_cache + (size_t)slots[i] * row, k + (size_t)i * row, (size_t)row * sizeof(float));
            std::memcpy(v_cache + (size_t)slots[i] * row, v + (size_t)i * row, (size_t)row * sizeof(float));
        }
    }

    // Attention, flash-style: work items are (block of queries, kv head, range of keys). An
    // item rotates its keys a block at a time into an L1-sized buffer (keys are cached before
    // RoPE), scores all query heads of its queries that share the kv head against the block,
    // then takes a softmax over its range and the weighted sum of V. With several key ranges
    // (decode: one query, but more threads than kv heads) the partial results are merged with
    // the usual max/sum rescaling. Queries are grouped into runs of equal win_lo: within a run
    // every key has the same position for every query.
    void attention(const attn_args &a) override {
        cpu_check_attn(a);
        if (a.n_q == 0) return;
        const int ratio = a.n_head / a.n_head_kv, hd = a.head_dim, half = a.n_rot / 2;
        const size_t q_row = (size_t)a.n_head * hd, kv_row = (size_t)a.n_head_kv * hd;
        const mm_kernel_set &ks = mm_kernels_current();
        const int QB = 8;   // queries per work item
        const int KB = 64;  // keys rotated per step

        for (int run_begin = 0; run_begin < a.n_q;) {
            const int lo = a.win_lo[run_begin];
            int run_end = run_begin + 1, max_hi = a.win_hi[run_begin];
            while (run_end < a.n_q && a.win_lo[run_end] == lo) max_hi = std::max(max_hi, a.win_hi[run_end++]);
            const int n_run = run_end - run_begin;
            const int n_vis_max = a.n_fixed + max_hi - lo;
            // visible key v is keys[v] for v < n_fixed, else keys[n_fixed + lo + (v - n_fixed)];
            // its position is v
            if (vis_slots_.size() < (size_t)n_vis_max) vis_slots_.resize(n_vis_max);
            for (int v = 0; v < n_vis_max; v++) vis_slots_[v] = v < a.n_fixed ? a.keys[v] : a.keys[lo + v];

            const int n_qb = (n_run + QB - 1) / QB;
            const int base_items = n_qb * a.n_head_kv;
            int n_split = 1;
            if (base_items < pool_.size()) n_split = std::max(1, std::min((pool_.size() + base_items - 1) / base_items, n_vis_max / 256));
            // partial results when split: per (query of the run, head, split): acc[hd], max, sum
            if (n_split > 1) {
                const size_t n_part = (size_t)n_run * a.n_head * n_split;
                if (part_acc_.size() < n_part * hd) part_acc_.resize(n_part * hd);
                if (part_ml_.size() < n_part * 2) part_ml_.resize(n_part * 2);
            }

            auto item_fn = [&](int64_t t0, int64_t t1, int) {
                static thread_local std::vector<float> scratch;
                const int nvec_max = QB * ratio;
                const int range_max = (n_vis_max + n_split - 1) / n_split + 1;
                const size_t need = (size_t)nvec_max * hd * 2 + (size_t)KB * hd + (size_t)nvec_max * range_max + 2 * (size_t)nvec_max;
                if (scratch.size() < need) scratch.resize(need);
                float *qr = scratch.data();                    // [nvec][hd] rotated queries
                float *acc = qr + (size_t)nvec_max * hd;       // [nvec][hd] weighted V sums
                float *kbuf = acc + (size_t)nvec_max * hd;     // [KB][hd] rotated keys
                float *ml = kbuf + (size_t)KB * hd;            // [2][nvec] softmax max and sum
                float *scores = ml + 2 * (size_t)nvec_max;     // [nvec][range]
                for (int64_t t = t0; t < t1; t++) {
                    const int split = (int)(t % n_split), g = (int)(t / n_split % a.n_head_kv), qb = (int)(t / n_split / a.n_head_kv);
                    const int i0 = run_begin + qb * QB, i1 = std::min(run_end, i0 + QB), nq = i1 - i0, nvec = nq * ratio;
                    const int k0 = (int)((int64_t)n_vis_max * split / n_split), k1 = (int)((int64_t)n_vis_max * (split + 1) / n_split);
                    const int ld = k1 - k0;
                    int k_used = 0;  // keys of the range that some query of the block sees
                    for (int i = i0; i < i1; i++) k_used = std::max(k_used, std::min(k1, a.n_fixed + a.win_hi[i] - lo) - k0);
                    // queries, rotated to their positions
                    for (int i = i0; i < i1; i++) {
                        const int q_pos = a.n_fixed + a.win_hi[i] - lo - 1;
                        for (int r = 0; r < ratio; r++) {
                            const float *q = a.q + (size_t)i * q_row + (size_t)(g * ratio + r) * hd;
                            float *dst = qr + (size_t)((i - i0) * ratio + r) * hd;
                            if (half) ks.rope_f32(q, dst, hd, a.n_rot, (int)a.mode, a.rope_cos + (size_t)q_pos * half, a.rope_sin + (size_t)q_pos * half);
                            else std::memcpy(dst, q, hd * sizeof(float));
                        }
                    }
                    // scores, a block of rotated keys at a time
                    for (int kb = 0; kb < k_used; kb += KB) {
                        const int nk = std::min(KB, k_used - kb);
                        for (int j = 0; j < nk; j++) {
                            const int v = k0 + kb + j;
                            if (v + 8 < k1) {  // cache rows are scattered by slot: fetch ahead
                                const char *ahead = (const char *)(a.k_cache + (size_t)vis_slots_[v + 8] * kv_row + (size_t)g * hd);
                                for (int off = 0; off < hd * 4; off += 64) __builtin_prefetch(ahead + off);
                            }
                            const float *src = a.k_cache + (size_t)vis_slots_[v] * kv_row + (size_t)g * hd;
                            if (half) ks.rope_f32(src, kbuf + (size_t)j * hd, hd, a.n_rot, (int)a.mode, a.rope_cos + (size_t)v * half, a.rope_sin + (size_t)v * half);
                            else std::memcpy(kbuf + (size_t)j * hd, src, hd * sizeof(float));
                        }
                        ks.attn_scores(qr, nvec, hd, kbuf, nk, a.scale, scores + kb, ld);
                    }
                    // softmax over the range; keys a query does not see get weight 0
                    float *m_out = ml, *l_out = ml + nvec_max;  // per query head: max and sum
                    for (int i = i0; i < i1; i++) {
                        const int c = std::max(0, std::min(k1, a.n_fixed + a.win_hi[i] - lo) - k0);
                        for (int r = 0; r < ratio; r++) {
                            const int vec = (i - i0) * ratio + r;
                            float *sc = scores + (size_t)vec * ld;
                            float m = -INFINITY, l = 0;
                            if (c > 0) {
                                m = sc[0];
                                for (int v = 1; v < c; v++) m = std::max(m, sc[v]);
                                l = ks.exp_sum_f32(sc, c, m);
                            }
                            std::fill(sc + c, sc + k_used, 0.0f);
                            m_out[vec] = m;
                            l_out[vec] = l;
                        }
                    }
                    if (k_used > 0) ks.attn_values(scores, ld, nvec, hd, a.v_cache + (size_t)g * hd, kv_row, vis_slots_.data() + k0, k_used, acc);
                    else std::fill(acc, acc + (size_t)nvec * hd, 0.0f);
                    for (int i = i0; i < i1; i++)
                        for (int r = 0; r < ratio; r++) {
                            const int vec = (i - i0) * ratio + r, h = g * ratio + r;
                            const float *src = acc + (size_t)vec * hd;
                            if (n_split == 1) {
                                float *o = a.out + (size_t)i * q_row + (size_t)h * hd;
                                const float inv = 1.0f / l_out[vec];
                                for (int d = 0; d < hd; d++) o[d] = src[d] * inv;
                            } else {
                                const size_t pi = ((size_t)(i - run_begin) * a.n_head + h) * n_split + split;
                                std::memcpy(part_acc_.data() + pi * hd, src, hd * sizeof(float));
                                part_ml_[2 * pi] = m_out[vec];
                                part_ml_[2 * pi + 1] = l_out[vec];
                            }
                        }
                }
            };
            // Small jobs (a decode step of a small model) run on the calling thread: waking a
            // worker costs more than the work, and much more when another process holds a core.
            const int64_t n_items = (int64_t)base_items * n_split;
            const double work = (double)n_run * n_vis_max * a.n_head * hd;
            if (work < (double)(1 << 18)) item_fn(0, n_items, 0);
            else pool_.parallel_for(n_items, item_fn);
            if (n_split > 1) {  // merge the key ranges: rescale each by exp(its max - overall max)
                for (int i = run_begin; i < run_end; i++)
                    for (int h = 0; h < a.n_head; h++) {
                        const size_t p0 = ((size_t)(i - run_begin) * a.n_head + h) * n_split;
                        float m = -INFINITY;
                        for (int sp = 0; sp < n_split; sp++) m = std::max(m, part_ml_[2 * (p0 + sp)]);
                        float *o = a.out + (size_t)i * q_row + (size_t)h * hd;
                        std::fill(o, o + hd, 0.0f);
                        double l = 0;
                        for (int sp = 0; sp < n_split; sp++) {
                            const float pm = part_ml_[2 * (p0 + sp)];
                            if (pm == -INFINITY) continue;
                            const float f = std::exp(pm - m);
                            l += (double)f * part_ml_[2 * (p0 + sp) + 1];
                            ks.axpy_f32(f, part_acc_.data() + (p0 + sp) * hd, o, hd);
                        }
                        const float inv = (float)(1.0 / l);
                        for (int d = 0; d < hd; d++) o[d] *= inv;
                    }
            }
            run_begin = run_end;
        }
    }

private:
    thread_pool pool_;
    std::vector<int32_t> vis_slots_;  // attention: cache slot of each visible key of the run
    std::vector<float> part_acc_;     // attention: partial V sums of split key ranges
    std::vector<float> part_ml_;      // attention: their (max, sum) pairs
};

}  // namespace

std::unique_ptr<backend> backend_cpu_create(int n_threads) {
    if (n_threads < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cpu backend: negative thread count " + std::to_string(n_threads));
    if (n_threads == 0) n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    return std::unique_ptr<backend>(new backend_cpu(n_threads));
}

}  // namespace endless
