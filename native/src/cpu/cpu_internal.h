// Internal interface between the CPU matmul driver (matmul.cpp) and its per-instruction-set
// kernels (matmul.cpp scalar, matmul_avx2.cpp, matmul_avx512.cpp). Not used outside src/cpu.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ggml_types.h"

namespace endless {

bool cpu_has_avx512_bf16();  // AVX-512 BF16 (vdpbf16ps) usable
bool cpu_has_avx_vnni();     // AVX-VNNI (256-bit vpdpbusd without AVX-512)

// Activations quantized once per row for integer dot products with quantized weights.
// Q8_0 and Q4_0 weights: blocks of 32, s = d * sum(qs) lets kernels fold in constant offsets
// (Q4_0's -8, the +128 bias of unsigned-by-signed instructions).
struct act_q8_0 {
    int8_t qs[32];
    float d;
    float s;
};
// Q4_K and Q6_K weights: blocks of 256 with the sum of every 16 values (for mins and Q6_K's -32).
struct act_q8_k {
    int8_t qs[256];
    int16_t bsums[16];
    float d;
};
static_assert(sizeof(act_q8_0) == 40, "act_q8_0 is 40 bytes");
static_assert(sizeof(act_q8_k) == 292, "act_q8_k is 292 bytes");

// The weight kinds a kernel set handles, with the activation format each one takes.
enum mm_kind : int { MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_K, MM_Q6_K, MM_KIND_COUNT };
enum mm_act : int { MM_ACT_F32, MM_ACT_Q8_0, MM_ACT_Q8_K };

// One rectangle of the output: y[i * ldy + r] = dot(weight row r, activation row i)
// for r in [r0, r1), i in [0, nx).
struct mm_tile {
    const uint8_t *w = nullptr;  // weight row 0
    size_t w_stride = 0;         // bytes per weight row
    int64_t k = 0;               // elements per row
    const uint8_t *x = nullptr;  // activation row 0, in the kind's activation format
    size_t x_stride = 0;         // bytes per activation row
    int nx = 0;
    int64_t r0 = 0, r1 = 0;
    float *y = nullptr;
    int64_t ldy = 0;
};
typedef void (*mm_tile_fn)(const mm_tile &t);
typedef void (*act_quant_fn)(const float *x, void *out, int64_t k);

struct mm_kernel_set {
    mm_tile_fn tile[MM_KIND_COUNT];
    act_quant_fn quant_q8_0;  // k multiple of 32 -> k/32 act_q8_0
    act_quant_fn quant_q8_k;  // k multiple of 256 -> k/256 act_q8_k
    // attention helpers
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy_f32)(float a, const float *x, float *y, int64_t n);  // y += a*x
};

const mm_kernel_set &mm_kernels_scalar();
#if defined(__x86_64__)
const mm_kernel_set &mm_kernels_avx2();
const mm_kernel_set &mm_kernels_avx512();
#endif
const mm_kernel_set &mm_kernels_current();  // per cpu_get_isa()

}  // namespace endless
