// matmul_mma: y[n, w.ne1] = x[n, w.ne0] * W^T for many tokens (prefill), on tensor cores.
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {
// Whether the tensor-core path takes this weight (F16, BF16 and the quantized types, ne0 % 32 == 0).
bool cuda_mma_supported(const weight &w);
// Scratch bytes the call needs for n tokens (the activations converted to 16-bit, plus scales).
// precise: F16/BF16 activations as two 16-bit parts (fp32-accurate products, twice the work).
size_t cuda_mma_scratch_bytes(const weight &w, int n, bool precise);
// scratch: device memory of cuda_mma_scratch_bytes(w, n, precise) bytes, 16-byte aligned.
void cuda_matmul_mma(const weight &w, const float *x, int n, float *y, void *scratch, bool precise, cudaStream_t stream);
}
