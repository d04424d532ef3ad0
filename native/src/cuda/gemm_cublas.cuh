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

#include <memory>
#include <string>

#include "backend.h"

namespace endless {

constexpr size_t GEMM_DEQUANT_MAX = (size_t)96 << 20;

// Loads cuBLAS once per process; false (with the reason in *why) when it is not there.
bool cuda_cublas_available(std::string *why = nullptr);

// One cuBLAS handle on one stream, with its own workspace (so products can be graph-captured).
// A quantized weight that cuda_gemm::takes, decoded into out (BF16 [ne1][ne0], 16-byte aligned), in
// stream order: what every product of a quantized weight does into its scratch, and what the
// backend's kept BF16 copies for prefill are made with.
void cuda_gemm_decode_bf16(const weight &w, void *out, cudaStream_t stream);

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
    // accumulate: y += x * W^T (beta = 1) instead of y = x * W^T.
    // bias: y = x * W^T + bias (bias[w.ne1], f32) in the product's epilogue (cuBLASLt); only where
    // bias_epilogue(w, n) said yes, default mode, not accumulating.
    void matmul(const weight &w, const float *x, int n, float *y, void *scratch, bool precise, bool x_ready, bool accumulate = false,
                const float *bias = nullptr);
    // Whether a product of w over n tokens can add a bias in its epilogue (cuBLASLt loaded and an
    // algorithm found for the shape; the answer is kept per shape). Host work only.
    bool bias_epilogue(const weight &w, int n);

    // The SwiGLU feed-forward block of backend::ffn_swiglu_add with bf16 between its products:
    // g = gate h and u = up h written as bf16 into gate_bf and up_bf ([n, n_ff] each), s = silu(g) *
    // u as bf16 into the scratch, then x += down s (beta = 1: the residual add inside the product).
    // scratch: ffn_scratch_bytes bytes: [h in bf16][s in bf16][a BF16 copy of a quantized weight];
    // h_ready: the scratch already holds h in bf16 (written by the rms_norm launch before).
    static size_t ffn_scratch_bytes(const weight &gate, const weight &up, const weight &down, int n);
    void ffn_swiglu(const weight &gate, const weight &up, const weight &down, const float *h, int n, float *x, void *gate_bf,
                    void *up_bf, void *scratch, bool h_ready);

private:
    struct lt_state;
    std::unique_ptr<lt_state> lt_;  // cuBLASLt handle and per-shape plans (gemm_cublas.cu)
    void *handle_ = nullptr;
    void *workspace_ = nullptr;
    cudaStream_t stream_ = nullptr;
};

}  // namespace endless
