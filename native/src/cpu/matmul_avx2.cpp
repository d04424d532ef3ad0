// AVX2 + FMA + F16C kernel set (compiled with -mavx2 -mfma -mf16c, chosen at run time).
// Kernels not specialised here fall back to the scalar set.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/cpu_internal.h"

namespace endless {

namespace {

inline float avx2_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float avx2_dot_f32(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float r = avx2_hsum(_mm256_add_ps(s0, s1));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void avx2_axpy_f32(float a, const float *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

mm_kernel_set avx2_make_set() {
    mm_kernel_set k = mm_kernels_scalar();
    k.dot_f32 = avx2_dot_f32;
    k.axpy_f32 = avx2_axpy_f32;
    return k;
}

}  // namespace

const mm_kernel_set &mm_kernels_avx2() {
    static const mm_kernel_set k = avx2_make_set();
    return k;
}

}  // namespace endless
