// attention_mma: the attention of backend.h's attn_args for many queries (prefill chunks) on
// tensor cores: a FlashAttention-2 style kernel (mma.sync m16n8k16, f16 inputs, f32 accumulation,
// online softmax in registers), with RoPE by relative position, GQA and split-K like attention.cu.
//
// Precision: Q (rotated, times scale), K (rotated) and V are rounded to f16, and so are the softmax
// probabilities before the P.V product: scores carry ~1e-3 relative error, the output ~1e-3.
// Limits that are real, not clamped: |K|, |V| and |Q * scale * log2(e)| must stay below f16's
// 65504 (a larger value becomes inf and the output NaN). Shapes: head_dim a multiple of 16, at
// most 256 (64, 128 and 256 are compiled; other dims are padded with zeros to the next one);
// n_rot a multiple of 8; q, k_cache, v_cache, out and the RoPE tables 16-byte aligned.
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {

// wgmma: the main kernel is attention_wgmma.cu's (sm_90a builds on compute capability 9.0 devices,
// head dims 65..128; ENDLESS_CUDA_ATTN_WGMMA=0 keeps the mma.sync kernel).
struct cuda_attn_mma_plan { int n_qtiles = 1, n_split = 1; size_t scratch_bytes = 0; bool wgmma = false; };

// Whether attention_wgmma.cu's kernel is built and the current device runs it (compute capability 9.0).
bool cuda_attention_wgmma_device();
// Which padded head dims take the wgmma kernel: 0 none, 1 128 (the default), 2 64 and 128
// (ENDLESS_CUDA_ATTN_WGMMA=0 / all set it too). Plans made afterwards follow it. Returns the mode
// in force before (the environment's, if not set yet), for putting it back.
int cuda_attention_set_wgmma(int mode);
// Whether the kernel takes these shapes and pointers (else the caller uses cuda_attention).
bool cuda_attention_mma_supported(const attn_args &a);
// Launch shape and scratch size; depends only on keys_bucket (n_keys rounded up to 1024, at least
// n_keys), n_q, the head counts and head_dim, so a captured graph survives n_keys growing.
cuda_attn_mma_plan cuda_attention_mma_plan(const attn_args &a, int keys_bucket, int n_sm);
// keys/win_lo/win_hi/meta are device copies (meta = {n_fixed, n_keys}); a.keys/win_lo/win_hi are
// not read. scratch holds plan.scratch_bytes (the rotated f16 K/V of the key list + split-K partials).
void cuda_attention_mma(const attn_args &a, const cuda_attn_mma_plan &plan, const int32_t *keys, const int32_t *win_lo,
                        const int32_t *win_hi, const int32_t *meta, void *scratch, cudaStream_t stream);

}  // namespace endless
