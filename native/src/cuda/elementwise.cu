// Elementwise ops: grid-stride loops, one value per thread per step (bandwidth bound, tiny).
#include "elementwise.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {
__global__ void add_bias_kernel(float *y, const float *b, size_t total, int dim) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % dim];
}
__global__ void add_kernel(float *y, const float *x, size_t count) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}
__global__ void swiglu_kernel(const float *gate, const float *up, size_t count, float *y) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        // silu(g) = g / (1 + e^-g) in double: --use_fast_math would make expf and the division
        // approximate, and this op is tiny next to the matrix products
        y[i] = (float)((double)g / (1.0 + exp(-(double)g)) * (double)up[i]);
    }
}
unsigned ew_grid(size_t count) {
    const size_t b = (count + 255) / 256;
    return (unsigned)(b < 65535 ? (b ? b : 1) : 65535);
}
}  // namespace

void cuda_add_bias(float *y, const float *b, int n, int dim, cudaStream_t stream) {
    const size_t total = (size_t)n * dim;
    if (!total) return;
    add_bias_kernel<<<ew_grid(total), 256, 0, stream>>>(y, b, total, dim);
    CUDA_CHECK_LAUNCH("add_bias");
}
void cuda_add(float *y, const float *x, size_t count, cudaStream_t stream) {
    if (!count) return;
    add_kernel<<<ew_grid(count), 256, 0, stream>>>(y, x, count);
    CUDA_CHECK_LAUNCH("add");
}
void cuda_swiglu(const float *gate, const float *up, size_t count, float *y, cudaStream_t stream) {
    if (!count) return;
    swiglu_kernel<<<ew_grid(count), 256, 0, stream>>>(gate, up, count, y);
    CUDA_CHECK_LAUNCH("swiglu");
}

}  // namespace endless
