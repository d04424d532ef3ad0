// AVX-512 (F/BW/VL/DQ/VNNI) kernel set, chosen at run time: 512-bit float, Q8_0 and Q4_0
// matmul kernels, a 4x4 register-blocked f32 GEMM for prefill with f32/f16/bf16 weights, the
// shared 256-bit integer kernels (matmul_simd.inc) with vpdpbusd/vpdpwssd for Q4_K and Q6_K,
// and the attention helpers. (AMX prefill for Q8_0 is in matmul_amx_avx512.cpp.)
//
// GCC 12's AVX-512 headers trip false (maybe-)uninitialized warnings in their own
// _mm512_undefined_* helpers; they are not about this file's code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_internal.h"
#include "ggml_types.h"

namespace endless {

namespace {

#define SIMD_VNNI 1
#include "cpu/matmul_simd.inc"

// (_mm512_reduce_add_ps trips a false -Wuninitialized in GCC 12's headers)
inline float avx512_hsum(__m512 v) {
    __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float avx512_dot_f32(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return avx512_hsum(_mm512_add_ps(s0, s1));
}

void avx512_axpy_f32(float a, const float *x, float *y, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

// e^x for x <= 0, as in the AVX2 set; vscalefps applies 2^n (and underflows to 0 cleanly).
inline __m512 avx512_exp_neg(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

float avx512_exp_sum_f32(float *x, int64_t n, float mx) {
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = avx512_exp_neg(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, avx512_exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm)));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_add_ps(acc, e);
    }
    return avx512_hsum(acc);
}

void avx512_rope_f32(const float *src, float *dst, int head_dim, int n_rot, int mode, const float *cs, const float *sn) {
    const int half = n_rot / 2;
    int i = 0;
    if (mode == 2) {  // NEOX: (i, i + half)
        for (; i < half; i += 16) {
            const __mmask16 m = half - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (half - i)) - 1);
            const __m512 x0 = _mm512_maskz_loadu_ps(m, src + i), x1 = _mm512_maskz_loadu_ps(m, src + i + half);
            const __m512 c = _mm512_maskz_loadu_ps(m, cs + i), s = _mm512_maskz_loadu_ps(m, sn + i);
            const __m512 lo = _mm512_fmsub_ps(x0, c, _mm512_mul_ps(x1, s));
            const __m512 hi = _mm512_fmadd_ps(x0, s, _mm512_mul_ps(x1, c));
            _mm512_mask_storeu_ps(dst + i, m, lo);
            _mm512_mask_storeu_ps(dst + i + half, m, hi);
        }
    } else {  // NORM: (2i, 2i + 1); 8 pairs per step
        const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        for (; i < half; i += 8) {
            const int np = half - i >= 8 ? 8 : half - i;
            const __mmask8 m8 = (__mmask8)((1u << np) - 1);
            const __mmask16 m16 = (__mmask16)((1u << (2 * np)) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(m16, src + 2 * i);
            const __m512 c = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, cs + i)));
            const __m512 s = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, sn + i)));
            const __m512 sw = _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
            _mm512_mask_storeu_ps(dst + 2 * i, m16, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(sw, s)));
        }
    }
    if (dst != src)
        for (int j = n_rot; j < head_dim; j++) dst[j] = src[j];
}

// silu as in the AVX2 set: exp(-|g|), then 1 / (1 + e) or e / (1 + e) by the sign of g
void avx512_swiglu_f32(const float *gate, const float *up, float *y, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = avx512_exp_neg(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(g), _mm512_set1_epi32((int)0x80000000))));
        const __m512 inv = _mm512_div_ps(one, _mm512_add_ps(one, e));
        const __mmask16 neg = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
        const __m512 sg = _mm512_mask_mul_ps(inv, neg, e, inv);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sg), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

// ---------------------------------------------------------------- 512-bit float kernels

struct z_load_f32 {
    typedef float elem;
    static __m512 load(const float *p) { return _mm512_loadu_ps(p); }
    static float scalar(float v) { return v; }
};
struct z_load_f16 {
    typedef fp16_t elem;
    static __m512 load(const fp16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
    static float scalar(fp16_t v) { return _cvtsh_ss(v); }
};
struct z_load_bf16 {
    typedef bf16_t elem;
    static __m512 load(const bf16_t *p) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    }
    static float scalar(bf16_t v) { return bf16_to_fp32(v); }
};

// One weight row (converted 16 at a time) against RX f32 activation rows.
template <typename LOAD>
struct z_kern_float {
    template <int RX>
    static void run(const mm_tile &t, int64_t r, int i0) {
        typedef typename LOAD::elem elem;
        const elem *w = (const elem *)mm_w_row(t, r, 1, sizeof(elem));
        const float *x[RX];
        for (int j = 0; j < RX; j++) x[j] = mm_x_f32(t, i0 + j);
        __m512 acc0[RX], acc1[RX];
        for (int j = 0; j < RX; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
        int64_t e = 0;
        simd_prefetcher<RX> pf(w);
        for (; e + 32 <= t.k; e += 32) {
            pf.advance(w + e + 32);
            const __m512 w0 = LOAD::load(w + e), w1 = LOAD::load(w + e + 16);
            for (int j = 0; j < RX; j++) {
                acc0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[j] + e), acc0[j]);
                acc1[j] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[j] + e + 16), acc1[j]);
            }
        }
        for (; e + 16 <= t.k; e += 16) {
            const __m512 w0 = LOAD::load(w + e);
            for (int j = 0; j < RX; j++) acc0[j] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[j] + e), acc0[j]);
        }
        float out[RX];
        for (int j = 0; j < RX; j++) {
            out[j] = avx512_hsum(_mm512_add_ps(acc0[j], acc1[j]));
            for (int64_t q = e; q < t.k; q++) out[j] += LOAD::scalar(w[q]) * x[j][q];
        }
        simd_store<RX>(t, r, i0, out);
    }
};

// Prefill (n >= 4) with f16/bf16/f32 weights: the tile's weight rows are converted to f32 once
// (not once per group of activation rows), then a 4x4 register-blocked kernel runs over
// L1-sized slices of the inner dimension: per 16 elements, 4 weight loads and 4 activation
// loads feed 16 FMAs.
template <int RW, int RX>
void z_gemm_micro(const float *w, size_t ldw, const float *x, size_t ldx, int64_t k, float *out, int ldo) {
    __m512 acc[RW][RX];
    for (int a = 0; a < RW; a++)
        for (int b = 0; b < RX; b++) acc[a][b] = _mm512_setzero_ps();
    int64_t e = 0;
    for (; e + 16 <= k; e += 16) {
        __m512 wv[RW];
        for (int a = 0; a < RW; a++) wv[a] = _mm512_loadu_ps(w + a * ldw + e);
        for (int b = 0; b < RX; b++) {
            const __m512 xv = _mm512_loadu_ps(x + b * ldx + e);
            for (int a = 0; a < RW; a++) acc[a][b] = _mm512_fmadd_ps(wv[a], xv, acc[a][b]);
        }
    }
    if (e < k) {  // the last partial 16
        const __mmask16 m = (__mmask16)((1u << (k - e)) - 1);
        __m512 wv[RW];
        for (int a = 0; a < RW; a++) wv[a] = _mm512_maskz_loadu_ps(m, w + a * ldw + e);
        for (int b = 0; b < RX; b++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + b * ldx + e);
            for (int a = 0; a < RW; a++) acc[a][b] = _mm512_fmadd_ps(wv[a], xv, acc[a][b]);
        }
    }
    for (int a = 0; a < RW; a++) {
        if (RX == 4) {
            // the four sums of a weight row reduced together: fold 512 -> 128 bits per
            // accumulator while gathering them into one register, then across each 128-bit lane
            const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(acc[a][0], acc[a][RX / 4], 0x44),
                                           _mm512_shuffle_f32x4(acc[a][0], acc[a][RX / 4], 0xEE));
            const __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(acc[a][RX / 2], acc[a][RX - 1], 0x44),
                                           _mm512_shuffle_f32x4(acc[a][RX / 2], acc[a][RX - 1], 0xEE));
            __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(u, v, 0x88), _mm512_shuffle_f32x4(u, v, 0xDD));
            q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(2, 3, 0, 1)));
            q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));
            const __m128 sums = _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), q));
            alignas(16) float s4[4];
            _mm_store_ps(s4, sums);
            for (int b = 0; b < 4; b++) out[b * ldo + a] += s4[b];
        } else {
            for (int b = 0; b < RX; b++) out[b * ldo + a] += avx512_hsum(acc[a][b]);
        }
    }
}

template <int RW>
void z_gemm_micro_rx(int rx, const float *w, size_t ldw, const float *x, size_t ldx, int64_t k, float *out, int ldo) {
    switch (rx) {
    case 4: z_gemm_micro<RW, 4>(w, ldw, x, ldx, k, out, ldo); break;
    case 3: z_gemm_micro<RW, 3>(w, ldw, x, ldx, k, out, ldo); break;
    case 2: z_gemm_micro<RW, 2>(w, ldw, x, ldx, k, out, ldo); break;
    default: z_gemm_micro<RW, 1>(w, ldw, x, ldx, k, out, ldo); break;
    }
}

template <typename LOAD>
void z_tile_float_gemm(const mm_tile &t) {
    typedef typename LOAD::elem elem;
    if (t.nx < 4) {
        simd_tile<z_kern_float<LOAD>>(t);
        return;
    }
    const int rows = (int)(t.r1 - t.r0);
    static thread_local std::vector<float> panel, out;
    const float *wp;
    size_t ldw;
    if (sizeof(elem) == 4) {  // f32 weights are used in place
        wp = (const float *)mm_w_row(t, t.r0, 1, 4);
        ldw = t.w_stride / 4;
    } else {
        if (panel.size() < (size_t)rows * t.k) panel.resize((size_t)rows * t.k);
        for (int a = 0; a < rows; a++) {
            const elem *src = (const elem *)mm_w_row(t, t.r0 + a, 1, sizeof(elem));
            float *dst = panel.data() + (size_t)a * t.k;
            int64_t e = 0;
            for (; e + 16 <= t.k; e += 16) _mm512_storeu_ps(dst + e, LOAD::load(src + e));
            for (; e < t.k; e++) dst[e] = LOAD::scalar(src[e]);
        }
        wp = panel.data();
        ldw = (size_t)t.k;
    }
    if (out.size() < (size_t)t.nx * rows) out.resize((size_t)t.nx * rows);
    std::fill(out.begin(), out.begin() + (size_t)t.nx * rows, 0.0f);
    const float *x0 = mm_x_f32(t, 0);
    const size_t ldx = t.x_stride / 4;
    const int64_t KS = 1024;  // 4 weight rows + 4 activation rows of a slice: 32 KiB, in L1
    for (int64_t ks = 0; ks < t.k; ks += KS) {
        const int64_t kn = std::min(KS, t.k - ks);
        for (int b = 0; b < t.nx; b += 4) {
            const int rx = std::min(4, t.nx - b);
            for (int a = 0; a < rows; a += 4) {
                const float *w = wp + a * ldw + ks, *x = x0 + b * ldx + ks;
                float *o = out.data() + (size_t)b * rows + a;
                switch (std::min(4, rows - a)) {
                case 4: z_gemm_micro_rx<4>(rx, w, ldw, x, ldx, kn, o, rows); break;
                case 3: z_gemm_micro_rx<3>(rx, w, ldw, x, ldx, kn, o, rows); break;
                case 2: z_gemm_micro_rx<2>(rx, w, ldw, x, ldx, kn, o, rows); break;
                default: z_gemm_micro_rx<1>(rx, w, ldw, x, ldx, kn, o, rows); break;
                }
            }
        }
    }
    for (int b = 0; b < t.nx; b++)
        for (int a = 0; a < rows; a++) mm_store(t, t.r0 + a, b, out[(size_t)b * rows + a]);
}

// Scores as a small GEMM, keys x query vectors, through the 4x4 kernel above (its sums of
// four are reduced together); the block of scores is zeroed first since the kernel adds.
void avx512_attn_scores(const float *q, int ratio, int hd, const float *k, int n, float scale, float *s, int ld) {
    for (int r = 0; r < ratio; r++) std::fill(s + (size_t)r * ld, s + (size_t)r * ld + n, 0.0f);
    for (int v0 = 0; v0 < n; v0 += 4) {
        const float *kv = k + (size_t)v0 * hd;
        for (int r0 = 0; r0 < ratio; r0 += 4) {
            const int rx = std::min(4, ratio - r0);
            const float *qv = q + (size_t)r0 * hd;
            float *o = s + (size_t)r0 * ld + v0;
            switch (std::min(4, n - v0)) {
            case 4: z_gemm_micro_rx<4>(rx, kv, hd, qv, hd, hd, o, ld); break;
            case 3: z_gemm_micro_rx<3>(rx, kv, hd, qv, hd, hd, o, ld); break;
            case 2: z_gemm_micro_rx<2>(rx, kv, hd, qv, hd, hd, o, ld); break;
            default: z_gemm_micro_rx<1>(rx, kv, hd, qv, hd, hd, o, ld); break;
            }
        }
    }
    const __m512 vs = _mm512_set1_ps(scale);
    for (int r = 0; r < ratio; r++)
        for (int v = 0; v < n; v += 16) {
            const __mmask16 m = n - v >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - v)) - 1);
            float *p = s + (size_t)r * ld + v;
            _mm512_mask_storeu_ps(p, m, _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, p)));
        }
}

// Values: for each block of 64 keys (their value rows then sit in L1), accumulators for 4
// heads x 64 dims are loaded, updated over the block's keys in registers, and stored back.
void avx512_attn_values(const float *p, int ld, int ratio, int hd, const float *v_base, size_t v_stride,
                        const int32_t *slots, int n, float *out) {
    std::fill(out, out + (size_t)ratio * hd, 0.0f);
    const int VB = 64;
    for (int v0 = 0; v0 < n; v0 += VB) {
        const int v1 = std::min(n, v0 + VB);
        for (int c = 0; c < hd; c += 64) {
            const int nc = std::min(4, (hd - c + 15) / 16);  // 16-float chunks in this step
            __mmask16 mk[4];
            for (int j = 0; j < 4; j++) {
                const int left = hd - c - 16 * j;
                mk[j] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
            }
            for (int r0 = 0; r0 < ratio; r0 += 4) {
                const int nr = std::min(4, ratio - r0);
                __m512 acc[4][4];
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < nc; j++) acc[r][j] = _mm512_maskz_loadu_ps(mk[j], out + (size_t)(r0 + r) * hd + c + 16 * j);
                for (int v = v0; v < v1; v++) {
                    const float *vr = v_base + (size_t)slots[v] * v_stride + c;
                    if (c == 0 && r0 == 0 && v + 8 < n) {  // value rows are scattered by slot: fetch ahead
                        const char *ahead = (const char *)(v_base + (size_t)slots[v + 8] * v_stride);
                        for (int off = 0; off < hd * 4; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
                    }
                    __m512 vv[4];
                    for (int j = 0; j < nc; j++) vv[j] = _mm512_maskz_loadu_ps(mk[j], vr + 16 * j);
                    for (int r = 0; r < nr; r++) {
                        const __m512 pw = _mm512_set1_ps(p[(size_t)(r0 + r) * ld + v]);
                        for (int j = 0; j < nc; j++) acc[r][j] = _mm512_fmadd_ps(pw, vv[j], acc[r][j]);
                    }
                }
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < nc; j++) _mm512_mask_storeu_ps(out + (size_t)(r0 + r) * hd + c + 16 * j, mk[j], acc[r][j]);
            }
        }
    }
}

// ---------------------------------------------------------------- 512-bit Q8_0 / Q4_0 kernels

// Two consecutive weight blocks as 64 unsigned bytes in value order, for vpdpbusd.
// Q8_0: w + 128 (the bias comes back out as -128 * dw * (dx * sum x)).
struct z_q8_0 {
    typedef block_q8_0 block;
    static constexpr float offset = 128.0f;
    static __m512i pair(const block_q8_0 *w) {
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)w[0].qs)),
                                             _mm256_loadu_si256((const __m256i *)w[1].qs), 1);
        return _mm512_xor_si512(z, _mm512_set1_epi8((char)0x80));
    }
    // one block, 256-bit, for the tail: |w| and the sign moved onto x, so no offset
    static __m256i tail_dot(const block_q8_0 &w, const int8_t *x) {
        const __m256i wq = _mm256_loadu_si256((const __m256i *)w.qs);
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq),
                                   _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x), wq));
    }
    static constexpr float tail_offset = 0.0f;
};
// Q4_0: nibbles 0..15 (low nibbles are values 0..15, high 16..31); the -8 comes back out as
// -8 * dw * (dx * sum x).
struct z_q4_0 {
    typedef block_q4_0 block;
    static constexpr float offset = 8.0f;
    static __m512i pair(const block_q4_0 *w) {
        const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)w[0].qs)),
                                                    _mm_loadu_si128((const __m128i *)w[1].qs), 1);
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1);
        // [lo0, lo1, hi0, hi1] -> [lo0, hi0, lo1, hi1]
        return _mm512_shuffle_i64x2(_mm512_and_si512(z, _mm512_set1_epi8(15)), _mm512_and_si512(z, _mm512_set1_epi8(15)),
                                    _MM_SHUFFLE(3, 1, 2, 0));
    }
    static __m256i tail_dot(const block_q4_0 &w, const int8_t *x) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)w.qs), m = _mm_set1_epi8(15);
        const __m256i wq = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), wq, _mm256_loadu_si256((const __m256i *)x));
    }
    static constexpr float tail_offset = 8.0f;
};

// Eight blocks per step: their fp16 scales are gathered and converted at once, each pair of
// blocks is one vpdpbusd per activation row, and the per-block scale dw * dx is spread over the
// pair's two halves with one permute.
template <typename Q>
struct z_kern_q32 {
    template <int RX>
    static void run(const mm_tile &t, int64_t r, int i0) {
        typedef typename Q::block block;
        const block *w = (const block *)mm_w_row(t, r, 32, sizeof(block));
        act_q8_0_view x[RX];
        for (int j = 0; j < RX; j++) x[j] = mm_x_q8_0(t, i0 + j);
        __m512 acc[RX];
        __m256 corr[RX];
        for (int j = 0; j < RX; j++) { acc[j] = _mm512_setzero_ps(); corr[j] = _mm256_setzero_ps(); }
        const __m256i gidx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)sizeof(block)));
        const __m512i pidx[4] = {
            _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
            _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2),
            _mm512_set_epi32(5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4, 4),
            _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6, 6),
        };
        const int64_t nb = t.k / 32;
        int64_t b = 0;
        simd_prefetcher<RX> pf(w);
        for (; b + 8 <= nb; b += 8) {
            pf.advance(w + b + 8);
            // the d field leads each block; the gather reads it plus two bytes of the block
            const __m256i raw = _mm256_i32gather_epi32((const int *)(const void *)(w + b), gidx, 1);
            const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(raw));
            __m512 sc[RX];
            for (int j = 0; j < RX; j++) {
                sc[j] = _mm512_castps256_ps512(_mm256_mul_ps(dw, _mm256_loadu_ps(x[j].d + b)));
                corr[j] = _mm256_fmadd_ps(dw, _mm256_loadu_ps(x[j].s + b), corr[j]);
            }
            for (int p = 0; p < 4; p++) {
                const __m512i wz = Q::pair(w + b + 2 * p);
                for (int j = 0; j < RX; j++) {
                    const __m512i xz = _mm512_loadu_si512((const void *)(x[j].qs + 32 * (b + 2 * p)));
                    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wz, xz);
                    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(pidx[p], sc[j]), acc[j]);
                }
            }
        }
        float out[RX];
        for (int j = 0; j < RX; j++) out[j] = avx512_hsum(acc[j]) - Q::offset * simd_hsum(corr[j]);
        for (; b < nb; b++) {
            const float dw = _cvtsh_ss(w[b].d);
            for (int j = 0; j < RX; j++) {
                const __m256i dot = Q::tail_dot(w[b], x[j].qs + 32 * b);
                out[j] += dw * (x[j].d[b] * (float)simd_hsum_i32(dot) - Q::tail_offset * x[j].s[b]);
            }
        }
        simd_store<RX>(t, r, i0, out);
    }
};

mm_kernel_set avx512_make_set() {
    mm_kernel_set k = simd_make_set(mm_kernels_avx2());
    k.dot_f32 = avx512_dot_f32;
    k.axpy_f32 = avx512_axpy_f32;
    k.exp_sum_f32 = avx512_exp_sum_f32;
    k.rope_f32 = avx512_rope_f32;
    k.swiglu_f32 = avx512_swiglu_f32;
    k.attn_scores = avx512_attn_scores;
    k.attn_values = avx512_attn_values;
    k.tile[MM_F32] = z_tile_float_gemm<z_load_f32>;
    k.tile[MM_F16] = z_tile_float_gemm<z_load_f16>;
    k.tile[MM_BF16] = z_tile_float_gemm<z_load_bf16>;
    k.tile[MM_Q8_0] = simd_tile<z_kern_q32<z_q8_0>>;
    k.tile[MM_Q4_0] = simd_tile<z_kern_q32<z_q4_0>>;
    // Q4_K and Q6_K keep the shared 256-bit kernels (with vpdpwssd here): 512-bit versions
    // measured no faster, the 16-bit multiplies being the bottleneck either way
    return k;
}

}  // namespace

const mm_kernel_set &mm_kernels_avx512() {
    static const mm_kernel_set k = avx512_make_set();
    return k;
}

}  // namespace endless
