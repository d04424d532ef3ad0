// attention_wgmma: the prefill attention kernel of attention_mma.cu on sm_90's warpgroup tensor-core
// instructions (wgmma.mma_async). Same inputs (the f16 query rows and key list that
// attention_mma.cu's conversion pass writes), same semantics, same split-K partials and combine;
// only the main kernel differs. Built only where the CUDA architectures include 90 (the file is
// compiled for sm_90a alone, native/CMakeLists.txt), used only on compute capability 9.0 devices and
// for head dims 65..128 (attention_mma.cu, am_wgmma_usable).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace endless {

constexpr int CUDA_AW_ROWS = 128;  // (query, head) rows per block: two warpgroups of 64
constexpr int CUDA_AW_KT = 128;    // keys per tile (64 measured 10-15% slower)

// The main kernels' inputs (attention_mma_kernel's and attention_wgmma_kernel's).
struct attn_tc_params {
    float *out;
    const __half *qh;               // [2][n_q * n_head][HD]: rotated for fixed tiles, for window tiles
    const __half *kh, *vh;          // [n_head_kv][rows_kv][HD] (the wgmma kernel: 8-row core-matrix groups)
    const int32_t *win_lo, *win_hi, *meta;
    float *part_o, *part_ml;        // split-K: [n_q * n_head][n_split][HD], [n_q * n_head][n_split][2]
    int n_q, n_head, G, hd, rows_kv, n_split, n_qtiles;
};

#ifdef __CUDACC__
// Device helpers of both kernels.
__device__ __forceinline__ uint32_t tc_pack(float a, float b) {
    // .x (the lower-index element of a fragment pair) goes to the low 16 bits
    __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
}
__device__ __forceinline__ float tc_exp2(float x) {
    float y;  // ex2.approx(-inf) = +0: masked scores vanish without a branch
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ int tc_warp_min(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int tc_warp_max(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
#endif

// Launches the kernel: grid (n_qtiles, n_head_kv, n_split), CUDA_AW_ROWS rows per block.
void cuda_attention_wgmma(const attn_tc_params &P, int HD, int n_head_kv, cudaStream_t stream);

}  // namespace endless
