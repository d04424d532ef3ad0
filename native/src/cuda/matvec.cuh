// matvec: y[n, w.ne1] = x[n, w.ne0] * W^T for small n (1..8, the decode case). Memory bound: one
// warp per weight row, 16-byte loads, values decoded in registers, warp-shuffle reductions.
// One launch can take up to three weights that share x, type and row length (q, k, v), with
// epilogues that the backend fuses from the ops that follow a matmul: + bias, an accumulation
// into another buffer (the residual add), SwiGLU of a gate/up pair and the K/V cache store; and
// a prologue fused from the op before it: the RMS norm of the input rows.
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {

constexpr int CUDA_MATVEC_MAX_N = 8;
constexpr int CUDA_MATVEC_MAX_SET = 3;

struct cuda_matvec_set {
    int n_members = 0;
    weight w[CUDA_MATVEC_MAX_SET];           // same type and ne0
    float *y[CUDA_MATVEC_MAX_SET] = {};      // [n, w.ne1]
    const float *bias[CUDA_MATVEC_MAX_SET] = {};  // [w.ne1] or null: y = Wx + bias
    float *acc[CUDA_MATVEC_MAX_SET] = {};    // [n, w.ne1] or null: acc += y (after the bias)
    // SwiGLU of members 0 (gate) and 1 (up), same ne1: y[1] = up, swiglu_out = silu(gate) * up,
    // and y[0] = gate unless swiglu_out is y[0].
    float *swiglu_out = nullptr;
    // RMS-norm prologue (the rms_norm op that produced x, fused): when norm_x is set, the kernel
    // reads norm_x and norm_g instead of x, scales each dot product by 1/rms of its token row at
    // the end, and writes x = rms_norm(norm_x) * norm_g as the separate op would have.
    const float *norm_x = nullptr;
    const float *norm_g = nullptr;
    float norm_eps = 0.0f;
    // K/V store (the kv_store op that follows, fused): member i's outputs (after the bias) also
    // go to kv_dst[i][slots[t] * ne1 + row]; slots is device memory [n].
    float *kv_dst[CUDA_MATVEC_MAX_SET] = {};
    const int32_t *kv_slots = nullptr;
    // Q8_0 members, one token: x may be taken as int8 per 32 values with integer dot products, as
    // the CPU backend takes the activations of quantized weights (the default mode; precise mode
    // keeps x in fp32).
    bool int8_x = false;
};

// n in 1..CUDA_MATVEC_MAX_N; x, y and the epilogue buffers are device memory.
void cuda_matvec(const weight &w, const float *x, int n, float *y, cudaStream_t stream);
void cuda_matvec_set_run(const cuda_matvec_set &set, const float *x, int n, cudaStream_t stream);

}  // namespace endless
