// Elementwise ops of a token step: add_bias (y[n, dim] += b[dim]), add (y += x), swiglu
// (y = silu(gate) * up).
#pragma once
#include <cstddef>
#include <cuda_runtime.h>
namespace endless {
void cuda_add_bias(float *y, const float *b, int n, int dim, cudaStream_t stream);
void cuda_add(float *y, const float *x, size_t count, cudaStream_t stream);
// y_bf16 (optional): y rounded to bf16 as well, the input of a following cuBLAS product.
void cuda_swiglu(const float *gate, const float *up, size_t count, float *y, cudaStream_t stream, void *y_bf16 = nullptr);
// y = silu(gate) * up on bf16 arrays (the prefill FFN between its products), in float math.
void cuda_swiglu_bf16(const void *gate, const void *up, size_t count, void *y, cudaStream_t stream);
}
