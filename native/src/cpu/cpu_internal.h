// Internal interface between the CPU backend (backend_cpu.cpp), the matmul driver
// (matmul.cpp) and the per-instruction-set kernel sets (scalar in matmul.cpp, matmul_avx2.cpp,
// matmul_avx512.cpp, matmul_amx_avx512.cpp). Not used outside src/cpu and its tests.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ggml_types.h"

namespace endless {

// Activations quantized once per row for integer dot products with quantized weights.
//
// Q8_0 and Q4_0 weights take a Q8_0 row in struct-of-arrays form, so that SIMD kernels load
// the int8 values of consecutive blocks in one go and the block scales as vectors:
//   int8_t qs[k]; float d[k/32]; float s[k/32]   (s = d * sum of the block's qs, which folds
//   in Q4_0's -8 offset and the +128 bias of unsigned-by-signed instructions)
inline size_t act_q8_0_row_bytes(int64_t k) { return (size_t)k + 8 * (size_t)(k / 32); }
struct act_q8_0_view {
    const int8_t *qs;
    const float *d;
    const float *s;
};
// Q4_K and Q6_K weights: blocks of 256 with the sum of every 16 values (for mins and Q6_K's -32).
struct act_q8_k {
    int8_t qs[256];
    int16_t bsums[16];
    float d;
};
static_assert(sizeof(act_q8_k) == 292, "act_q8_k is 292 bytes");

// The weight kinds a kernel set handles, with the activation format each one takes.
enum mm_kind : int { MM_F32, MM_F16, MM_BF16, MM_Q8_0, MM_Q4_0, MM_Q4_K, MM_Q6_K, MM_KIND_COUNT };
enum mm_act : int { MM_ACT_F32, MM_ACT_Q8_0, MM_ACT_Q8_K };

// One rectangle of the output over one slice of the inner dimension:
// y[i * ldy + r] (+)= dot(weight row r, activation row i) over elements [k_off, k_off + k),
// for r in [r0, r1), i in [0, nx). The first slice stores, later ones accumulate.
struct mm_tile {
    const uint8_t *w = nullptr;  // weight row 0 (start of the row)
    size_t w_stride = 0;         // bytes per weight row
    const uint8_t *x = nullptr;  // activation row 0 (start of the row), in the kind's format
    size_t x_stride = 0;         // bytes per activation row
    int64_t k_row = 0;           // elements per full row
    int64_t k_off = 0;           // first element of the slice (a multiple of 256 when sliced)
    int64_t k = 0;               // elements in the slice
    bool accumulate = false;
    int nx = 0;
    int64_t r0 = 0, r1 = 0;
    float *y = nullptr;
    int64_t ldy = 0;
};

// Where a kernel finds its slice of weight row r (blocks of `block` elements of `bytes` bytes)
// and of activation row i.
inline const uint8_t *mm_w_row(const mm_tile &t, int64_t r, int block, size_t bytes) {
    return t.w + r * t.w_stride + (size_t)(t.k_off / block) * bytes;
}
inline const float *mm_x_f32(const mm_tile &t, int i) { return (const float *)(t.x + (size_t)i * t.x_stride) + t.k_off; }
inline act_q8_0_view mm_x_q8_0(const mm_tile &t, int i) {
    const uint8_t *base = t.x + (size_t)i * t.x_stride;
    const int64_t nb = t.k_row / 32;
    const float *d = (const float *)(base + t.k_row);
    return {(const int8_t *)base + t.k_off, d + t.k_off / 32, d + nb + t.k_off / 32};
}
inline const act_q8_k *mm_x_q8_k(const mm_tile &t, int i) {
    return (const act_q8_k *)(t.x + (size_t)i * t.x_stride) + t.k_off / 256;
}
inline void mm_store(const mm_tile &t, int64_t r, int i, float v) {
    float &dst = t.y[(int64_t)i * t.ldy + r];
    dst = t.accumulate ? dst + v : v;
}

typedef void (*mm_tile_fn)(const mm_tile &t);
typedef void (*act_quant_fn)(const float *x, void *out, int64_t k);

struct mm_kernel_set {
    mm_tile_fn tile[MM_KIND_COUNT];
    act_quant_fn quant_q8_0;  // k multiple of 32 -> one Q8_0 row (act_q8_0_row_bytes)
    act_quant_fn quant_q8_k;  // k multiple of 256 -> k/256 act_q8_k
    // attention helpers
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*axpy_f32)(float a, const float *x, float *y, int64_t n);  // y += a*x
    // x[i] = exp(x[i] - mx), returns the sum (softmax)
    float (*exp_sum_f32)(float *x, int64_t n, float mx);
    // dst = src (head_dim floats) with its first n_rot dims rotated; mode as rope_mode
    // (0: pairs (2i, 2i+1), 2: pairs (i, i + n_rot/2)); cos/sin: n_rot/2 values of one position
    void (*rope_f32)(const float *src, float *dst, int head_dim, int n_rot, int mode, const float *cos_row,
                     const float *sin_row);
    // y[i] = silu(gate[i]) * up[i]
    void (*swiglu_f32)(const float *gate, const float *up, float *y, int64_t n);
    // attention scores of `ratio` query heads (q: [ratio][hd]) against n contiguous keys
    // (k: [n][hd]): s[r * ld + v] = scale * dot(q_r, k_v)
    void (*attn_scores)(const float *q, int ratio, int hd, const float *k, int n, float scale, float *s, int ld);
    // weighted sums of value rows: out[r * hd + c] = sum_v p[r * ld + v] * v_base[slots[v] * v_stride + c]
    void (*attn_values)(const float *p, int ld, int ratio, int hd, const float *v_base, size_t v_stride,
                        const int32_t *slots, int n, float *out);
};

const mm_kernel_set &mm_kernels_scalar();
#if defined(__x86_64__)
const mm_kernel_set &mm_kernels_avx2();
const mm_kernel_set &mm_kernels_avx512();
#endif
const mm_kernel_set &mm_kernels_current();  // per cpu_get_isa()

#if defined(__x86_64__)
// AMX-INT8 prefill for Q8_0, Q4_0 and Q4_K weights (matmul_amx_avx512.cpp), used at the
// AVX-512 level when the processor and OS allow it; tests switch it off to cover the plain
// AVX-512 kernels too.
bool cpu_amx_available();
bool cpu_amx_enabled();
void cpu_set_amx(bool on);
// Activations for it, in groups of 16 rows; per 32-value block a group holds the B tile
// (8 rows x 64 bytes: bytes 4c..4c+3 of row kk are values 4kk..4kk+3 of activation row c),
// then the 16 rows' scales dx, then their dx * (sum of the block's int8 values).
constexpr size_t AMX_BLOCK_BYTES = 512 + 64 + 64;
void amx_quant_row(const float *x, void *out, int64_t k);  // out: group base + 4 * (row % 16)
// Tiles: t.x is group 0 of the chunk, t.x_stride the bytes per group.
void amx_tile_q8_0(const mm_tile &t);
void amx_tile_q4_0(const mm_tile &t);
void amx_tile_q4_k(const mm_tile &t);
#endif

}  // namespace endless
