// AVX-512 (F/BW/VL/DQ/VNNI) kernel set, chosen at run time. Kernels not specialised here
// fall back to the AVX2 set.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "cpu/cpu_internal.h"

namespace endless {

namespace {

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

mm_kernel_set avx512_make_set() {
    mm_kernel_set k = mm_kernels_avx2();
    k.dot_f32 = avx512_dot_f32;
    k.axpy_f32 = avx512_axpy_f32;
    return k;
}

}  // namespace

const mm_kernel_set &mm_kernels_avx512() {
    static const mm_kernel_set k = avx512_make_set();
    return k;
}

}  // namespace endless
