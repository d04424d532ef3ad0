// rms_norm: y = x / rms(x) * g per row of dim (eps inside the root); y_bf16 (optional): y rounded
// to bf16 as well, the input of a following cuBLAS product (gemm_cublas.cuh); y may then be null
// (nobody reads the f32 rows).
#pragma once
#include <cuda_runtime.h>
namespace endless {
void cuda_rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y, cudaStream_t stream, void *y_bf16 = nullptr);
}
