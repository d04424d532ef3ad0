// kv_store: one block row per token, threads over the row's floats (keys stay before RoPE).
#include "kv_store.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {
__global__ void kv_store_kernel(float *k_cache, float *v_cache, const float *k, const float *v,
                                const int32_t *slots, int row) {
    const int i = blockIdx.y;
    const size_t dst = (size_t)slots[i] * row, src = (size_t)i * row;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < row; e += gridDim.x * blockDim.x) {
        k_cache[dst + e] = k[src + e];
        v_cache[dst + e] = v[src + e];
    }
}
}  // namespace

void cuda_kv_store(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slots,
                   int n, int row, cudaStream_t stream) {
    if (n <= 0 || row <= 0) return;
    const dim3 grid(cuda_blocks((size_t)row, 256) < 8 ? cuda_blocks((size_t)row, 256) : 8, (unsigned)n);
    kv_store_kernel<<<grid, 256, 0, stream>>>(k_cache, v_cache, k, v, slots, row);
    CUDA_CHECK_LAUNCH("kv_store");
}

}  // namespace endless
