// The CPU matmul driver and the portable (scalar C++) kernel set. The driver validates the
// weight, converts the activations once per row into the format the weight type's kernel wants
// (f32, or Q8 blocks for quantized weights so the dot products run on integers), and splits the
// output into tiles: threads take contiguous blocks of weight rows, and for n > 1 each block of
// weight rows is applied to a chunk of activation rows that stays in cache, so every weight byte
// is read from memory once per chunk rather than once per activation row.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"
#include "error.h"
#include "quant.h"

namespace endless {

namespace {

// ---------------------------------------------------------------- scalar activation quantizers

void scalar_quant_q8_0(const float *x, void *out, int64_t k) {
    const int64_t nb = k / 32;
    int8_t *qs = (int8_t *)out;
    float *dd = (float *)((uint8_t *)out + k), *ss = dd + nb;
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f, id = amax > 0 ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int q = (int)std::lrintf(x[j] * id);
            qs[32 * i + j] = (int8_t)q;
            sum += q;
        }
        dd[i] = d;
        ss[i] = d * (float)sum;
    }
}

void scalar_quant_q8_k(const float *x, void *out, int64_t k) {
    act_q8_k *b = (act_q8_k *)out;
    for (int64_t i = 0; i < k / 256; i++, x += 256) {
        float amax = 0;
        for (int j = 0; j < 256; j++) amax = std::max(amax, std::fabs(x[j]));
        const float id = amax > 0 ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                const int q = (int)std::lrintf(x[j] * id);
                b[i].qs[j] = (int8_t)q;
                sum += q;
            }
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = amax / 127.0f;
    }
}

// ---------------------------------------------------------------- scalar dot products

float scalar_dot_f32(const float *a, const float *b, int64_t n) {
    float s[8] = {0};  // independent partial sums so the compiler can vectorize
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = 0;
    for (; i < n; i++) r += a[i] * b[i];
    for (int j = 0; j < 8; j++) r += s[j];
    return r;
}

void scalar_axpy_f32(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

float scalar_exp_sum_f32(float *x, int64_t n, float mx) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    return (float)sum;
}

void scalar_rope_f32(const float *src, float *dst, int head_dim, int n_rot, int mode, const float *cos_row,
                     const float *sin_row) {
    const int half = n_rot / 2;
    if (mode == 2) {  // NEOX
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

void scalar_swiglu_f32(const float *gate, const float *up, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void scalar_attn_scores(const float *q, int ratio, int hd, const float *k, int n, float scale, float *s, int ld) {
    for (int v = 0; v < n; v++)
        for (int r = 0; r < ratio; r++) s[(size_t)r * ld + v] = scale * scalar_dot_f32(q + (size_t)r * hd, k + (size_t)v * hd, hd);
}

void scalar_attn_values(const float *p, int ld, int ratio, int hd, const float *v_base, size_t v_stride,
                        const int32_t *slots, int n, float *out) {
    std::fill(out, out + (size_t)ratio * hd, 0.0f);
    for (int v = 0; v < n; v++) {
        const float *vr = v_base + (size_t)slots[v] * v_stride;
        for (int r = 0; r < ratio; r++) scalar_axpy_f32(p[(size_t)r * ld + v], vr, out + (size_t)r * hd, hd);
    }
}

float scalar_dot_f16(const fp16_t *w, const float *x, int64_t k) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; j++) s[j] += fp16_to_fp32(w[i + j]) * x[i + j];
    float r = 0;
    for (; i < k; i++) r += fp16_to_fp32(w[i]) * x[i];
    for (int j = 0; j < 8; j++) r += s[j];
    return r;
}

float scalar_dot_bf16(const bf16_t *w, const float *x, int64_t k) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; j++) s[j] += bf16_to_fp32(w[i + j]) * x[i + j];
    float r = 0;
    for (; i < k; i++) r += bf16_to_fp32(w[i]) * x[i];
    for (int j = 0; j < 8; j++) r += s[j];
    return r;
}

float scalar_dot_q8_0(const block_q8_0 *w, const act_q8_0_view &x, int64_t nb) {
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += (int)w[b].qs[j] * (int)x.qs[32 * b + j];
        r += fp16_to_fp32(w[b].d) * x.d[b] * (float)s;
    }
    return r;
}

float scalar_dot_q4_0(const block_q4_0 *w, const act_q8_0_view &x, int64_t nb) {
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;  // unsigned nibbles times x; the -8 offset comes in through x's block sum
        for (int j = 0; j < 16; j++)
            s += (int)(w[b].qs[j] & 15) * (int)x.qs[32 * b + j] + (int)(w[b].qs[j] >> 4) * (int)x.qs[32 * b + j + 16];
        r += fp16_to_fp32(w[b].d) * (x.d[b] * (float)s - 8.0f * x.s[b]);
    }
    return r;
}

float scalar_dot_q4_k(const block_q4_k *w, const act_q8_k *x, int64_t nb) {
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *sc = w[b].scales;
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; j++) {
            int s, m;
            if (j < 4) { s = sc[j] & 63; m = sc[j + 4] & 63; }
            else { s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4); m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4); }
            const uint8_t *q = w[b].qs + 32 * (j / 2);
            const int shift = 4 * (j & 1);
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q[l] >> shift) & 15) * (int)x[b].qs[32 * j + l];
            sumi += s * dot;
            summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        }
        r += x[b].d * (fp16_to_fp32(w[b].d) * (float)sumi - fp16_to_fp32(w[b].dmin) * (float)summ);
    }
    return r;
}

float scalar_dot_q6_k(const block_q6_k *w, const act_q8_k *x, int64_t nb) {
    float r = 0;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int h = 0; h < 2; h++)
            for (int k = 0; k < 4; k++)
                for (int half = 0; half < 2; half++) {
                    // 16 values 128h + 32k + 16half + l, l = 0..15; scale index = their /16
                    const int base = 128 * h + 32 * k + 16 * half;
                    int dot = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        const uint8_t lo = w[b].ql[64 * h + l + 32 * (k & 1)];
                        const int q = (k < 2 ? (lo & 15) : (lo >> 4)) | (((w[b].qh[32 * h + l] >> (2 * k)) & 3) << 4);
                        dot += q * (int)x[b].qs[128 * h + 32 * k + l];
                    }
                    const int g = base / 16;
                    sumi += (int)w[b].scales[g] * (dot - 32 * x[b].bsums[g]);
                }
        r += fp16_to_fp32(w[b].d) * x[b].d * (float)sumi;
    }
    return r;
}

// ---------------------------------------------------------------- scalar tiles

void scalar_tile_f32(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++) mm_store(t, r, i, scalar_dot_f32((const float *)mm_w_row(t, r, 1, 4), mm_x_f32(t, i), t.k));
}
void scalar_tile_f16(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++) mm_store(t, r, i, scalar_dot_f16((const fp16_t *)mm_w_row(t, r, 1, 2), mm_x_f32(t, i), t.k));
}
void scalar_tile_bf16(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++) mm_store(t, r, i, scalar_dot_bf16((const bf16_t *)mm_w_row(t, r, 1, 2), mm_x_f32(t, i), t.k));
}
void scalar_tile_q8_0(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++)
            mm_store(t, r, i, scalar_dot_q8_0((const block_q8_0 *)mm_w_row(t, r, 32, sizeof(block_q8_0)), mm_x_q8_0(t, i), t.k / 32));
}
void scalar_tile_q4_0(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++)
            mm_store(t, r, i, scalar_dot_q4_0((const block_q4_0 *)mm_w_row(t, r, 32, sizeof(block_q4_0)), mm_x_q8_0(t, i), t.k / 32));
}
void scalar_tile_q4_k(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++)
            mm_store(t, r, i, scalar_dot_q4_k((const block_q4_k *)mm_w_row(t, r, 256, sizeof(block_q4_k)), mm_x_q8_k(t, i), t.k / 256));
}
void scalar_tile_q6_k(const mm_tile &t) {
    for (int64_t r = t.r0; r < t.r1; r++)
        for (int i = 0; i < t.nx; i++)
            mm_store(t, r, i, scalar_dot_q6_k((const block_q6_k *)mm_w_row(t, r, 256, sizeof(block_q6_k)), mm_x_q8_k(t, i), t.k / 256));
}

// ---------------------------------------------------------------- driver helpers

struct mm_type_info {
    mm_kind kind;
    mm_act act;
    int block;         // elements per block
    size_t block_bytes;
};

bool mm_type_lookup(ggml_type type, mm_type_info &info) {
    switch (type) {
    case GGML_TYPE_F32: info = {MM_F32, MM_ACT_F32, 1, 4}; return true;
    case GGML_TYPE_F16: info = {MM_F16, MM_ACT_F32, 1, 2}; return true;
    case GGML_TYPE_BF16: info = {MM_BF16, MM_ACT_F32, 1, 2}; return true;
    case GGML_TYPE_Q8_0: info = {MM_Q8_0, MM_ACT_Q8_0, 32, sizeof(block_q8_0)}; return true;
    case GGML_TYPE_Q4_0: info = {MM_Q4_0, MM_ACT_Q8_0, 32, sizeof(block_q4_0)}; return true;
    case GGML_TYPE_Q4_K: info = {MM_Q4_K, MM_ACT_Q8_K, 256, sizeof(block_q4_k)}; return true;
    case GGML_TYPE_Q6_K: info = {MM_Q6_K, MM_ACT_Q8_K, 256, sizeof(block_q6_k)}; return true;
    default: return false;
    }
}

mm_type_info mm_check_weight(const weight &w, const char *op) {
    mm_type_info info;
    if (!mm_type_lookup(w.type, info))
        fail(ENDLESS_ERR_UNSUPPORTED, std::string(op) + ": unsupported weight type " + std::to_string((unsigned)w.type));
    if (w.ne0 <= 0 || w.ne1 <= 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string(op) + ": bad weight shape [" + std::to_string(w.ne0) + ", " +
                                               std::to_string(w.ne1) + "]");
    if (w.ne0 % info.block != 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string(op) + ": row length " + std::to_string(w.ne0) +
                                               " is not a multiple of the block size " + std::to_string(info.block));
    if (!w.data) fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string(op) + ": weight has no data");
    const size_t row_bytes = (size_t)(w.ne0 / info.block) * info.block_bytes;
    // nbytes 0 means "not recorded"; otherwise it must cover every row
    if (w.nbytes != 0 && w.nbytes < row_bytes * (size_t)w.ne1)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string(op) + ": weight holds " + std::to_string(w.nbytes) +
                                               " bytes, its shape needs " + std::to_string(row_bytes * (size_t)w.ne1));
    return info;
}

}  // namespace

const mm_kernel_set &mm_kernels_scalar() {
    static const mm_kernel_set k = {
        {scalar_tile_f32, scalar_tile_f16, scalar_tile_bf16, scalar_tile_q8_0, scalar_tile_q4_0, scalar_tile_q4_k,
         scalar_tile_q6_k},
        scalar_quant_q8_0,
        scalar_quant_q8_k,
        scalar_dot_f32,
        scalar_axpy_f32,
        scalar_exp_sum_f32,
        scalar_rope_f32,
        scalar_swiglu_f32,
        scalar_attn_scores,
        scalar_attn_values,
    };
    return k;
}

const mm_kernel_set &mm_kernels_current() {
#if defined(__x86_64__)
    switch (cpu_get_isa()) {
    case CPU_ISA_AVX512: return mm_kernels_avx512();
    case CPU_ISA_AVX2: return mm_kernels_avx2();
    default: break;
    }
#endif
    return mm_kernels_scalar();
}

void cpu_matmul(thread_pool &pool, const weight &w, const float *x, int n, float *y) {
    const mm_type_info info = mm_check_weight(w, "matmul");
    if (n < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "matmul: negative row count " + std::to_string(n));
    if (n == 0) return;
    if (!x || !y) fail(ENDLESS_ERR_INVALID_ARGUMENT, "matmul: null input or output");
    const mm_kernel_set &ks = mm_kernels_current();
    const int64_t k = w.ne0, m = w.ne1;

    // AMX-INT8 takes prefill with Q8_0, Q4_0 and Q4_K weights where the processor has it
    bool amx = false;
#if defined(__x86_64__)
    amx = (info.kind == MM_Q8_0 || info.kind == MM_Q4_0 || info.kind == MM_Q4_K) && n >= 16 &&
          cpu_get_isa() == CPU_ISA_AVX512 && cpu_amx_enabled();
#endif

    // activations in the kernel's format
    static thread_local std::vector<uint8_t> act_buf;
    const uint8_t *xa = (const uint8_t *)x;
    size_t x_stride = (size_t)k * sizeof(float);  // bytes per row (per group of 16 rows for AMX)
    double bytes_per_elem = sizeof(float);         // per activation row and element
    mm_tile_fn tile_fn = ks.tile[info.kind];
    if (amx) {
#if defined(__x86_64__)
        x_stride = (size_t)(k / 32) * AMX_BLOCK_BYTES;
        bytes_per_elem = (double)AMX_BLOCK_BYTES / 32.0 / 16.0;
        const size_t n_groups = (size_t)(n + 15) / 16;
        if (act_buf.size() < x_stride * n_groups) act_buf.resize(x_stride * n_groups);
        uint8_t *buf = act_buf.data();
        if (n % 16) std::memset(buf + (n_groups - 1) * x_stride, 0, x_stride);  // padding rows: zeros
        pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) amx_quant_row(x + i * k, buf + (size_t)(i / 16) * x_stride + 4 * (i % 16), k);
        });
        xa = buf;
        tile_fn = info.kind == MM_Q8_0 ? amx_tile_q8_0 : info.kind == MM_Q4_0 ? amx_tile_q4_0 : amx_tile_q4_k;
#endif
    } else if (info.act != MM_ACT_F32) {
        act_quant_fn quant = info.act == MM_ACT_Q8_0 ? ks.quant_q8_0 : ks.quant_q8_k;
        x_stride = info.act == MM_ACT_Q8_0 ? act_q8_0_row_bytes(k) : (size_t)(k / 256) * sizeof(act_q8_k);
        bytes_per_elem = (double)x_stride / (double)k;
        if (act_buf.size() < x_stride * (size_t)n) act_buf.resize(x_stride * (size_t)n);
        uint8_t *buf = act_buf.data();
        if (n == 1) quant(x, buf, k);
        else pool.parallel_for(n, [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; i++) quant(x + i * k, buf + i * x_stride, k);
        });
        xa = buf;
    }

    // Blocking for n > 1: a chunk of up to 256 activation rows times a slice of the inner
    // dimension is kept under ~512 KiB (L2) while the thread's weight rows stream past, so each
    // weight byte is read from memory once per chunk. Slices are multiples of 256 elements.
    const size_t w_stride = (size_t)(k / info.block) * info.block_bytes;
    const int xc = std::min(n, 256);
    int64_t kc = k;
    if (n > 1 && k % 256 == 0) {
        const int64_t fit = (int64_t)(524288.0 / (bytes_per_elem * xc)) / 256 * 256;
        if (fit >= 256 && fit < k) {
            const int64_t n_slices = (k + fit - 1) / fit;  // equal slices, rounded up to 256
            kc = ((k / 256 + n_slices - 1) / n_slices) * 256;
        }
    }
    // weight rows per tile (AMX: whole groups of 16), and at least a few tiles per thread so
    // the split is even
    const size_t w_slice_bytes = std::max<size_t>(1, (size_t)(kc / info.block) * info.block_bytes);
    const int64_t step = amx ? 16 : 4;
    int64_t rb = std::max<int64_t>(step, std::min<int64_t>(64, (int64_t)(65536 / w_slice_bytes))) / step * step;
    const int64_t nthreads = pool.size();
    while (rb > step && (m + rb - 1) / rb < 4 * nthreads) rb -= step;
    const int64_t n_blocks = (m + rb - 1) / rb;

    auto run = [&](int64_t b0, int64_t b1, int) {
        for (int i0 = 0; i0 < n; i0 += xc) {
            mm_tile t;
            t.w = (const uint8_t *)w.data;
            t.w_stride = w_stride;
            t.x = xa + (size_t)(amx ? i0 / 16 : i0) * x_stride;  // chunks start at multiples of 256 rows
            t.x_stride = x_stride;
            t.k_row = k;
            t.nx = std::min(xc, n - i0);
            t.y = y + (int64_t)i0 * m;
            t.ldy = m;
            for (int64_t k0 = 0; k0 < k; k0 += kc) {
                t.k_off = k0;
                t.k = std::min(kc, k - k0);
                t.accumulate = k0 > 0;
                for (int64_t b = b0; b < b1; b++) {
                    t.r0 = b * rb;
                    t.r1 = std::min(m, t.r0 + rb);
                    tile_fn(t);
                }
            }
        }
    };
    // Threads take tiles from a shared counter rather than one fixed share each: when another
    // process holds a core, the threads that do run pick up the slack instead of waiting.
    // Small jobs run on the calling thread: waking a worker (and, on a busy machine, waiting for
    // the scheduler to run it) costs more than the work itself. Measured on the 17M-parameter
    // default model on 2 shared cores: decode 97 tok/s threaded vs 510 tok/s on one thread.
    const bool small = (double)w.nbytes * (double)n < (double)(1 << 20);
    if (nthreads == 1 || n_blocks == 1 || small) {
        run(0, n_blocks, 0);
        return;
    }
    std::atomic<int64_t> next{0};
    pool.parallel_for(nthreads, [&](int64_t, int64_t, int thread) {
        for (;;) {
            const int64_t b = next.fetch_add(1, std::memory_order_relaxed);
            if (b >= n_blocks) break;
            run(b, b + 1, thread);
        }
    });
}

void cpu_get_rows(const weight &w, const int32_t *ids, int n, float *out) {
    const mm_type_info info = mm_check_weight(w, "get_rows");
    if (n < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "get_rows: negative row count " + std::to_string(n));
    if (n == 0) return;
    if (!ids || !out) fail(ENDLESS_ERR_INVALID_ARGUMENT, "get_rows: null ids or output");
    const size_t row_bytes = (size_t)(w.ne0 / info.block) * info.block_bytes;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= w.ne1)
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "get_rows: row id " + std::to_string(ids[i]) + " outside [0, " +
                                                   std::to_string(w.ne1) + ")");
        dequantize_row(w.type, (const uint8_t *)w.data + (size_t)ids[i] * row_bytes, out + (int64_t)i * w.ne0, w.ne0);
    }
}

}  // namespace endless
