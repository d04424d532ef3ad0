// gemm_cublas: prefill matrix products (n > 8 tokens) through cuBLAS's tensor-core GEMMs.
//
// cuBLAS is part of the CUDA toolkit but not of the driver, so it is loaded at run time
// (dlopen): a machine without it runs the same engine on our own tensor-core kernel
// (matmul_mma.cu), and the addon never fails to load for its lack. BF16 weights go in as they
// are; quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) are decoded per call into a BF16 copy (at most
// GEMM_DEQUANT_MAX bytes: the FFN and attention matrices; the output matrix of a large vocabulary
// stays on matmul_mma). The f32 activations are rounded to BF16; in precise mode their remainder
// x - bf16(x) is a second BF16 operand and a second product is accumulated (~1e-6 relative
// instead of ~1e-3, for the op tests). F16 weights stay on matmul_mma, whose f16 path scales
// rows against f16 overflow, which cuBLAS cannot undo per token.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "backend.h"

namespace endless {

constexpr size_t GEMM_DEQUANT_MAX = (size_t)96 << 20;

// Loads cuBLAS once per process; false (with the reason in *why) when it is not there.
bool cuda_cublas_available(std::string *why = nullptr);

// One cuBLAS handle on one stream, with its own workspace (so products can be graph-captured).
class cuda_gemm {
public:
    explicit cuda_gemm(cudaStream_t stream);  // throws endless::error when cuBLAS fails to start
    ~cuda_gemm();
    cuda_gemm(const cuda_gemm &) = delete;
    cuda_gemm &operator=(const cuda_gemm &) = delete;

    static bool takes(const weight &w);
    static size_t scratch_bytes(const weight &w, int n, bool precise);
    // y[n, w.ne1] = x[n, w.ne0] * W^T; scratch: scratch_bytes(w, n, precise) bytes, 256-aligned.
    // x_ready: the scratch already holds x converted by the previous call (same x, n, K, mode),
    // as for q/k/v or gate/up, which share their input.
    void matmul(const weight &w, const float *x, int n, float *y, void *scratch, bool precise, bool x_ready);

private:
    void *handle_ = nullptr;
    void *workspace_ = nullptr;
    cudaStream_t stream_ = nullptr;
};

}  // namespace endless
