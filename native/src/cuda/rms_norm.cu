// rms_norm: one block per row; the sum of squares is reduced in fp32 across the block.
#include "rms_norm.cuh"
#include "cuda_common.cuh"

#include <algorithm>

namespace endless {

namespace {
// ybf (optional): the same rows rounded to bf16, for a following tensor-core product; y may be null
// (only ybf wanted). V4: rows read and written four values at a time (dim % 4 == 0, 16-byte aligned).
template <bool V4>
__global__ void rms_norm_kernel(const float *x, const float *g, int dim, float eps, float *y, __nv_bfloat16 *ybf) {
    const size_t row = (size_t)blockIdx.x * dim;
    const float *xr = x + row;
    float s = 0.0f;
    if constexpr (V4) {
        for (int i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            const float4 v = reinterpret_cast<const float4 *>(xr)[i];
            s = fmaf(v.x, v.x, fmaf(v.y, v.y, fmaf(v.z, v.z, fmaf(v.w, v.w, s))));
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) s = fmaf(xr[i], xr[i], s);
    }
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
    if constexpr (V4) {
        for (int i = threadIdx.x; i < dim / 4; i += blockDim.x) {
            const float4 v = reinterpret_cast<const float4 *>(xr)[i], w = reinterpret_cast<const float4 *>(g)[i];
            const float4 o = make_float4(v.x * r * w.x, v.y * r * w.y, v.z * r * w.z, v.w * r * w.w);
            if (y) reinterpret_cast<float4 *>(y + row)[i] = o;
            if (ybf) {
                const __nv_bfloat162 a = __floats2bfloat162_rn(o.x, o.y), b = __floats2bfloat162_rn(o.z, o.w);
                uint2 h;
                h.x = *reinterpret_cast<const uint32_t *>(&a);
                h.y = *reinterpret_cast<const uint32_t *>(&b);
                reinterpret_cast<uint2 *>(ybf + row)[i] = h;
            }
        }
    } else {
        for (int i = threadIdx.x; i < dim; i += blockDim.x) {
            const float v = xr[i] * r * g[i];
            if (y) y[row + i] = v;
            if (ybf) ybf[row + i] = __float2bfloat16_rn(v);
        }
    }
}
}  // namespace

void cuda_rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y, cudaStream_t stream, void *y_bf16) {
    if (n <= 0 || dim <= 0) return;
    auto aligned = [](const void *p, uintptr_t a) { return ((uintptr_t)p % a) == 0; };
    if (dim % 4 == 0 && aligned(x, 16) && aligned(g, 16) && aligned(y, 16) && aligned(y_bf16, 8)) {
        // a few float4 a thread: 1536 values -> 128 threads
        const int threads = std::min(512, std::max(64, ((dim / 4 + 2) / 3 + 31) / 32 * 32));
        rms_norm_kernel<true><<<n, threads, 0, stream>>>(x, g, dim, eps, y, (__nv_bfloat16 *)y_bf16);
    } else {
        const int threads = dim >= 1024 ? 512 : dim >= 256 ? 256 : 128;
        rms_norm_kernel<false><<<n, threads, 0, stream>>>(x, g, dim, eps, y, (__nv_bfloat16 *)y_bf16);
    }
    CUDA_CHECK_LAUNCH("rms_norm");
}

}  // namespace endless
