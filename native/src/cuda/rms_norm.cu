// rms_norm: one block per row; the sum of squares is reduced in fp32 across the block.
#include "rms_norm.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {
// ybf (optional): the same rows rounded to bf16, for a following tensor-core product
__global__ void rms_norm_kernel(const float *x, const float *g, int dim, float eps, float *y, __nv_bfloat16 *ybf) {
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float s = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s = fmaf(xr[i], xr[i], s);
    __shared__ float red[32];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    const float r = dev_rms_scale(red[0], (float)dim, eps);  // once per row
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = xr[i] * r * g[i];
        yr[i] = v;
        if (ybf) ybf[(size_t)blockIdx.x * dim + i] = __float2bfloat16_rn(v);
    }
}
}  // namespace

void cuda_rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y, cudaStream_t stream, void *y_bf16) {
    if (n <= 0 || dim <= 0) return;
    const int threads = dim >= 1024 ? 512 : dim >= 256 ? 256 : 128;
    rms_norm_kernel<<<n, threads, 0, stream>>>(x, g, dim, eps, y, (__nv_bfloat16 *)y_bf16);
    CUDA_CHECK_LAUNCH("rms_norm");
}

}  // namespace endless
