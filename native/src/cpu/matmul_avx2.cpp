// AVX2 + FMA + F16C kernel set (compiled with -mavx2 -mfma -mf16c, chosen at run time): the
// shared 256-bit matmul kernels of matmul_simd.inc (vpmaddubsw for the int8 dot products), and
// the attention and elementwise helpers.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/cpu_internal.h"
#include "ggml_types.h"

namespace endless {

namespace {

#define SIMD_VNNI 0
#include "cpu/matmul_simd.inc"

float avx2_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float r = simd_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void avx2_axpy_f32(float a, const float *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

// e^x for x <= 0 (softmax after subtracting the max): 2^n * p(r), r = x - n ln2 in
// [-ln2/2, ln2/2], p the degree-6 Taylor polynomial (relative error about 1e-7).
inline __m256 avx2_exp_neg(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));  // keeps 2^n a normal float
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

float avx2_exp_sum_f32(float *x, int64_t n, float mx) {
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = avx2_exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = simd_hsum(acc);
    for (; i < n; i++) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

void avx2_rope_f32(const float *src, float *dst, int head_dim, int n_rot, int mode, const float *cs, const float *sn) {
    const int half = n_rot / 2;
    int i = 0;
    if (mode == 2) {  // NEOX: (i, i + half)
        for (; i + 8 <= half; i += 8) {
            const __m256 x0 = _mm256_loadu_ps(src + i), x1 = _mm256_loadu_ps(src + i + half);
            const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
            _mm256_storeu_ps(dst + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
            _mm256_storeu_ps(dst + i + half, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
        }
        for (; i < half; i++) {
            const float x0 = src[i], x1 = src[i + half];
            dst[i] = x0 * cs[i] - x1 * sn[i];
            dst[i + half] = x0 * sn[i] + x1 * cs[i];
        }
    } else {  // NORM: (2i, 2i + 1); 4 pairs per step, cos/sin duplicated onto both lanes
        const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        for (; i + 4 <= half; i += 4) {
            const __m256 v = _mm256_loadu_ps(src + 2 * i);
            const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cs + i)), dup);
            const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sn + i)), dup);
            const __m256 sw = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
            // even lanes x0 c - x1 s, odd lanes x1 c + x0 s
            _mm256_storeu_ps(dst + 2 * i, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(sw, s)));
        }
        for (; i < half; i++) {
            const float x0 = src[2 * i], x1 = src[2 * i + 1];
            dst[2 * i] = x0 * cs[i] - x1 * sn[i];
            dst[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
        }
    }
    if (dst != src)
        for (int j = n_rot; j < head_dim; j++) dst[j] = src[j];
}

// silu(g) = g * sigmoid(g); with e = exp(-|g|) (never overflows), sigmoid is 1 / (1 + e) for
// g >= 0 and e / (1 + e) for g < 0.
void avx2_swiglu_f32(const float *gate, const float *up, float *y, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = avx2_exp_neg(_mm256_or_ps(g, sign));
        const __m256 inv = _mm256_div_ps(one, _mm256_add_ps(one, e));
        const __m256 sg = _mm256_blendv_ps(inv, _mm256_mul_ps(e, inv), g);  // blend on the sign bit of g
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(g, sg), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) y[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// Scores: each key row is loaded once for up to 4 query heads.
void avx2_attn_scores(const float *q, int ratio, int hd, const float *k, int n, float scale, float *s, int ld) {
    const int hd8 = hd & ~7;
    for (int v = 0; v < n; v++) {
        const float *kv = k + (size_t)v * hd;
        for (int r0 = 0; r0 < ratio; r0 += 4) {
            const int nr = std::min(4, ratio - r0);
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int d = 0; d < hd8; d += 8) {
                const __m256 kk = _mm256_loadu_ps(kv + d);
                for (int r = 0; r < nr; r++) acc[r] = _mm256_fmadd_ps(kk, _mm256_loadu_ps(q + (size_t)(r0 + r) * hd + d), acc[r]);
            }
            for (int r = 0; r < nr; r++) {
                float sum = simd_hsum(acc[r]);
                for (int d = hd8; d < hd; d++) sum += kv[d] * q[(size_t)(r0 + r) * hd + d];
                s[(size_t)(r0 + r) * ld + v] = scale * sum;
            }
        }
    }
}

// Values: for each block of 64 keys (their value rows then sit in L1), accumulators for 4
// heads x 16 dims are loaded, updated over the block's keys in registers, and stored back.
void avx2_attn_values(const float *p, int ld, int ratio, int hd, const float *v_base, size_t v_stride,
                      const int32_t *slots, int n, float *out) {
    std::fill(out, out + (size_t)ratio * hd, 0.0f);
    const int hd16 = hd & ~15;
    for (int v0 = 0; v0 < n; v0 += 64) {
        const int v1 = std::min(n, v0 + 64);
        for (int c = 0; c < hd16; c += 16)
            for (int r0 = 0; r0 < ratio; r0 += 4) {
                const int nr = std::min(4, ratio - r0);
                __m256 acc[4][2];
                for (int r = 0; r < nr; r++) {
                    acc[r][0] = _mm256_loadu_ps(out + (size_t)(r0 + r) * hd + c);
                    acc[r][1] = _mm256_loadu_ps(out + (size_t)(r0 + r) * hd + c + 8);
                }
                for (int v = v0; v < v1; v++) {
                    const float *vr = v_base + (size_t)slots[v] * v_stride + c;
                    const __m256 a0 = _mm256_loadu_ps(vr), a1 = _mm256_loadu_ps(vr + 8);
                    for (int r = 0; r < nr; r++) {
                        const __m256 pw = _mm256_broadcast_ss(p + (size_t)(r0 + r) * ld + v);
                        acc[r][0] = _mm256_fmadd_ps(pw, a0, acc[r][0]);
                        acc[r][1] = _mm256_fmadd_ps(pw, a1, acc[r][1]);
                    }
                }
                for (int r = 0; r < nr; r++) {
                    _mm256_storeu_ps(out + (size_t)(r0 + r) * hd + c, acc[r][0]);
                    _mm256_storeu_ps(out + (size_t)(r0 + r) * hd + c + 8, acc[r][1]);
                }
            }
        for (int c = hd16; c < hd; c++)
            for (int r = 0; r < ratio; r++) {
                float sum = 0;
                for (int v = v0; v < v1; v++) sum += p[(size_t)r * ld + v] * v_base[(size_t)slots[v] * v_stride + c];
                out[(size_t)r * hd + c] += sum;
            }
    }
}

mm_kernel_set avx2_make_set() {
    mm_kernel_set k = simd_make_set(mm_kernels_scalar());
    k.dot_f32 = avx2_dot_f32;
    k.axpy_f32 = avx2_axpy_f32;
    k.exp_sum_f32 = avx2_exp_sum_f32;
    k.rope_f32 = avx2_rope_f32;
    k.swiglu_f32 = avx2_swiglu_f32;
    k.attn_scores = avx2_attn_scores;
    k.attn_values = avx2_attn_values;
    return k;
}

}  // namespace

const mm_kernel_set &mm_kernels_avx2() {
    static const mm_kernel_set k = avx2_make_set();
    return k;
}

}  // namespace endless
