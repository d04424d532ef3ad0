// The CPU implementation of endless::backend: host memory, the thread pool, and the ops of a
// token step. matmul and get_rows go to cpu_matmul / cpu_get_rows; attention rotates queries
// and cached keys on the fly (keys are cached before RoPE, see backend.h) and runs threaded
// over (query, kv head) pairs so each key is rotated once for all query heads sharing it.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"
#include "error.h"

namespace endless {

namespace {

// Below this many elements an elementwise op runs on the calling thread: waking the pool
// costs more than the work.
constexpr size_t CPU_PARALLEL_MIN = 1 << 15;

// Rotates the first n_rot dims of v (head_dim floats) by position pos.
inline void cpu_rope_apply(const float *src, float *dst, int head_dim, int n_rot, rope_mode mode,
                           const float *cos_row, const float *sin_row) {
    const int half = n_rot / 2;
    if (mode == ROPE_MODE_NEOX) {
        for (int i = 0; i < half; i++) {
            const float x0 = src[i], x1 = src[i + half], c = cos_row[i], s = sin_row[i];
            dst[i] = x0 * c - x1 * s;
            dst[i + half] = x0 * s + x1 * c;
        }
    } else {
        for (int i = 0; i < half; i++) {
            const float x0 = src[2 * i], x1 = src[2 * i + 1], c = cos_row[i], s = sin_row[i];
            dst[2 * i] = x0 * c - x1 * s;
            dst[2 * i + 1] = x0 * s + x1 * c;
        }
    }
    if (dst != src)
        for (int i = n_rot; i < head_dim; i++) dst[i] = src[i];
}

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
        void *p = std::aligned_alloc(64, size);
        if (!p) fail(ENDLESS_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
        return p;
    }
    void release(void *ptr) override { std::free(ptr); }
    void upload(void *dst, const void *src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
    void download(void *dst, const void *src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
    void copy(void *dst, const void *src, size_t bytes) override { if (bytes && dst != src) std::memmove(dst, src, bytes); }
    const void *place_weight(const void *file_data, size_t) override { return file_data; }

    void get_rows(const weight &w, const int32_t *ids, int n, float *out) override { cpu_get_rows(w, ids, n, out); }
    void matmul(const weight &w, const float *x, int n, float *y) override { cpu_matmul(pool_, w, x, n, y); }

    void rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y) override {
        if (n < 0 || dim <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "rms_norm: bad shape [" + std::to_string(n) + ", " + std::to_string(dim) + "]");
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
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < dim; j++) y[i * dim + j] += b[j];
    }

    void add(float *y, const float *x, size_t count) override {
        auto part = [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) y[i] += x[i];
        };
        if (count < CPU_PARALLEL_MIN) part(0, (int64_t)count, 0);
        else pool_.parallel_for((int64_t)count, part);
    }

    void swiglu(const float *gate, const float *up, size_t count, float *y) override {
        auto part = [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) {
                const float g = gate[i];
                y[i] = g / (1.0f + std::exp(-g)) * up[i];
            }
        };
        if (count < CPU_PARALLEL_MIN) part(0, (int64_t)count, 0);
        else pool_.parallel_for((int64_t)count, part);
    }

    void kv_store(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slots, int n,
                  int row) override {
        if (n < 0 || row <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "kv_store: bad shape");
        for (int i = 0; i < n; i++) {
            if (slots[i] < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "kv_store: negative cache slot " + std::to_string(slots[i]));
            std::memcpy(k_cache + (size_t)slots[i] * row, k + (size_t)i * row, (size_t)row * sizeof(float));
            std::memcpy(v_cache + (size_t)slots[i] * row, v + (size_t)i * row, (size_t)row * sizeof(float));
        }
    }

    void attention(const attn_args &a) override {
        cpu_check_attn(a);
        if (a.n_q == 0) return;
        const int ratio = a.n_head / a.n_head_kv, hd = a.head_dim, half = a.n_rot / 2;
        const size_t q_row = (size_t)a.n_head * hd, kv_row = (size_t)a.n_head_kv * hd;
        const mm_kernel_set &ks = mm_kernels_current();

        pool_.parallel_for((int64_t)a.n_q * a.n_head_kv, [&](int64_t t0, int64_t t1, int) {
            static thread_local std::vector<float> scratch;
            const int n_vis_max = a.n_keys;
            const size_t need = (size_t)ratio * hd * 2 + hd + (size_t)ratio * n_vis_max;
            if (scratch.size() < need) scratch.resize(need);
            float *qr = scratch.data();                 // [ratio][hd] rotated queries
            float *acc = qr + (size_t)ratio * hd;       // [ratio][hd] weighted V sums
            float *kr = acc + (size_t)ratio * hd;       // [hd] the rotated key
            float *scores = kr + hd;                    // [ratio][n_vis]

            for (int64_t t = t0; t < t1; t++) {
                const int i = (int)(t / a.n_head_kv), g = (int)(t % a.n_head_kv);
                const int lo = a.win_lo[i], hi = a.win_hi[i];
                const int n_vis = a.n_fixed + hi - lo;
                const int q_pos = n_vis - 1;  // = n_fixed + (hi - lo) - 1
                for (int r = 0; r < ratio; r++) {
                    const float *q = a.q + (size_t)i * q_row + (size_t)(g * ratio + r) * hd;
                    if (half) cpu_rope_apply(q, qr + (size_t)r * hd, hd, a.n_rot, a.mode,
                                             a.rope_cos + (size_t)q_pos * half, a.rope_sin + (size_t)q_pos * half);
                    else std::memcpy(qr + (size_t)r * hd, q, hd * sizeof(float));
                }
                // scores: visible key v (0..n_vis-1) is keys[v] for v < n_fixed, else
                // keys[n_fixed + lo + (v - n_fixed)]; its position is v
                for (int v = 0; v < n_vis; v++) {
                    const int slot = v < a.n_fixed ? a.keys[v] : a.keys[a.n_fixed + lo + (v - a.n_fixed)];
                    const float *k = a.k_cache + (size_t)slot * kv_row + (size_t)g * hd;
                    const float *kk = k;
                    if (half) {
                        cpu_rope_apply(k, kr, hd, a.n_rot, a.mode, a.rope_cos + (size_t)v * half, a.rope_sin + (size_t)v * half);
                        kk = kr;
                    }
                    for (int r = 0; r < ratio; r++) scores[(size_t)r * n_vis + v] = ks.dot_f32(qr + (size_t)r * hd, kk, hd) * a.scale;
                }
                // softmax per query head, then one pass over V for all heads of the group
                for (int r = 0; r < ratio; r++) {
                    float *s = scores + (size_t)r * n_vis;
                    float mx = s[0];
                    for (int v = 1; v < n_vis; v++) mx = std::max(mx, s[v]);
                    double sum = 0;
                    for (int v = 0; v < n_vis; v++) { s[v] = std::exp(s[v] - mx); sum += s[v]; }
                    const float inv = (float)(1.0 / sum);
                    for (int v = 0; v < n_vis; v++) s[v] *= inv;
                }
                std::fill(acc, acc + (size_t)ratio * hd, 0.0f);
                for (int v = 0; v < n_vis; v++) {
                    const int slot = v < a.n_fixed ? a.keys[v] : a.keys[a.n_fixed + lo + (v - a.n_fixed)];
                    const float *vv = a.v_cache + (size_t)slot * kv_row + (size_t)g * hd;
                    for (int r = 0; r < ratio; r++) ks.axpy_f32(scores[(size_t)r * n_vis + v], vv, acc + (size_t)r * hd, hd);
                }
                for (int r = 0; r < ratio; r++)
                    std::memcpy(a.out + (size_t)i * q_row + (size_t)(g * ratio + r) * hd, acc + (size_t)r * hd, hd * sizeof(float));
            }
        });
    }

private:
    thread_pool pool_;
};

}  // namespace

std::unique_ptr<backend> backend_cpu_create(int n_threads) {
    if (n_threads < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cpu backend: negative thread count " + std::to_string(n_threads));
    if (n_threads == 0) n_threads = (int)std::max(1u, std::thread::hardware_concurrency());
    return std::unique_ptr<backend>(new backend_cpu(n_threads));
}

}  // namespace endless
