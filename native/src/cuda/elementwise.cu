// Elementwise ops: grid-stride loops, four values per thread per step (float4) where the sizes
// and pointers allow it, one otherwise. Bandwidth bound: prefill chunks make them large (SwiGLU of
// 4096 tokens x 8960 reads and writes 440 MB), so the vector path matters there.
#include "elementwise.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {

bool aligned16(const void *p) { return ((uintptr_t)p % 16) == 0; }

__global__ void add_bias_kernel(float *y, const float *b, size_t total, int dim) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % dim];
}
// dim % 4 == 0, y and b 16-byte aligned
__global__ void add_bias4_kernel(float4 *y, const float4 *b, size_t total4, int dim4) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total4; i += (size_t)gridDim.x * blockDim.x) {
        float4 v = y[i];
        const float4 c = __ldg(b + i % dim4);
        v.x += c.x; v.y += c.y; v.z += c.z; v.w += c.w;
        y[i] = v;
    }
}
__global__ void add_kernel(float *y, const float *x, size_t count) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}
__global__ void add4_kernel(float4 *y, const float4 *x, size_t count4) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count4; i += (size_t)gridDim.x * blockDim.x) {
        float4 v = y[i];
        const float4 c = x[i];
        v.x += c.x; v.y += c.y; v.z += c.z; v.w += c.w;
        y[i] = v;
    }
}
__global__ void swiglu_kernel(const float *gate, const float *up, size_t count, float *y, __nv_bfloat16 *ybf) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const float v = dev_swiglu(gate[i], up[i]);
        y[i] = v;
        if (ybf) ybf[i] = __float2bfloat16_rn(v);
    }
}
__global__ void swiglu4_kernel(const float4 *gate, const float4 *up, size_t count4, float4 *y, uint2 *ybf) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count4; i += (size_t)gridDim.x * blockDim.x) {
        const float4 g = gate[i], u = up[i];
        const float4 v = make_float4(dev_swiglu(g.x, u.x), dev_swiglu(g.y, u.y), dev_swiglu(g.z, u.z), dev_swiglu(g.w, u.w));
        y[i] = v;
        if (ybf) {
            const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
            ybf[i] = make_uint2(*reinterpret_cast<const uint32_t *>(&a), *reinterpret_cast<const uint32_t *>(&b));
        }
    }
}
// bf16 in, bf16 out: 4 values (8 bytes) per step, or one at a time
__global__ void swiglu_bf16x4_kernel(const uint2 *gate, const uint2 *up, size_t count4, uint2 *y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count4; i += (size_t)gridDim.x * blockDim.x) {
        const uint2 g = gate[i], u = up[i];
        const float2 g0 = dev_bf162_to_f32(g.x), g1 = dev_bf162_to_f32(g.y), u0 = dev_bf162_to_f32(u.x), u1 = dev_bf162_to_f32(u.y);
        const __nv_bfloat162 a = __floats2bfloat162_rn(dev_swiglu(g0.x, u0.x), dev_swiglu(g0.y, u0.y));
        const __nv_bfloat162 b = __floats2bfloat162_rn(dev_swiglu(g1.x, u1.x), dev_swiglu(g1.y, u1.y));
        y[i] = make_uint2(*reinterpret_cast<const uint32_t *>(&a), *reinterpret_cast<const uint32_t *>(&b));
    }
}
__global__ void swiglu_bf16_kernel(const uint16_t *gate, const uint16_t *up, size_t count, __nv_bfloat16 *y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(dev_swiglu(dev_bf16_to_f32(gate[i]), dev_bf16_to_f32(up[i])));
}
// enough blocks to fill the device a few times over; the loops stride over the rest
unsigned ew_grid(size_t count) {
    const size_t b = (count + 255) / 256;
    return (unsigned)(b < 8192 ? (b ? b : 1) : 8192);
}
}  // namespace

void cuda_add_bias(float *y, const float *b, int n, int dim, cudaStream_t stream) {
    const size_t total = (size_t)n * dim;
    if (!total) return;
    if (dim % 4 == 0 && aligned16(y) && aligned16(b))
        add_bias4_kernel<<<ew_grid(total / 4), 256, 0, stream>>>((float4 *)y, (const float4 *)b, total / 4, dim / 4);
    else
        add_bias_kernel<<<ew_grid(total), 256, 0, stream>>>(y, b, total, dim);
    CUDA_CHECK_LAUNCH("add_bias");
}
void cuda_add(float *y, const float *x, size_t count, cudaStream_t stream) {
    if (!count) return;
    if (count % 4 == 0 && aligned16(y) && aligned16(x))
        add4_kernel<<<ew_grid(count / 4), 256, 0, stream>>>((float4 *)y, (const float4 *)x, count / 4);
    else
        add_kernel<<<ew_grid(count), 256, 0, stream>>>(y, x, count);
    CUDA_CHECK_LAUNCH("add");
}
void cuda_swiglu(const float *gate, const float *up, size_t count, float *y, cudaStream_t stream, void *y_bf16) {
    if (!count) return;
    if (count % 4 == 0 && aligned16(gate) && aligned16(up) && aligned16(y) && ((uintptr_t)y_bf16 % 8) == 0)
        swiglu4_kernel<<<ew_grid(count / 4), 256, 0, stream>>>((const float4 *)gate, (const float4 *)up, count / 4, (float4 *)y,
                                                               (uint2 *)y_bf16);
    else
        swiglu_kernel<<<ew_grid(count), 256, 0, stream>>>(gate, up, count, y, (__nv_bfloat16 *)y_bf16);
    CUDA_CHECK_LAUNCH("swiglu");
}

void cuda_swiglu_bf16(const void *gate, const void *up, size_t count, void *y, cudaStream_t stream) {
    if (!count) return;
    auto a8 = [](const void *p) { return ((uintptr_t)p % 8) == 0; };
    if (count % 4 == 0 && a8(gate) && a8(up) && a8(y))
        swiglu_bf16x4_kernel<<<ew_grid(count / 4), 256, 0, stream>>>((const uint2 *)gate, (const uint2 *)up, count / 4, (uint2 *)y);
    else
        swiglu_bf16_kernel<<<ew_grid(count), 256, 0, stream>>>((const uint16_t *)gate, (const uint16_t *)up, count, (__nv_bfloat16 *)y);
    CUDA_CHECK_LAUNCH("swiglu (bf16)");
}

}  // namespace endless
