// matvec: y[n, w.ne1] = x[n, w.ne0] * W^T for small n (1..8, the decode case). Memory bound: one
// warp per weight row, 16-byte loads, values decoded in registers, warp-shuffle reductions.
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {
constexpr int CUDA_MATVEC_MAX_N = 8;
// n in 1..CUDA_MATVEC_MAX_N; x and y device memory.
void cuda_matvec(const weight &w, const float *x, int n, float *y, cudaStream_t stream);
}
