// attention: the StreamingLLM cache attention of backend.h's attn_args, with RoPE of queries and
// keys fused in, GQA, online softmax and split-K over the key list (flash-decoding).
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {

// Everything the kernels need besides attn_args' pointers and sizes. keys/win_lo/win_hi/meta
// are device copies of the host arrays; meta = {n_fixed, n_keys}. The launch shape depends only
// on keys_bucket (n_keys rounded up), so a captured graph stays valid while n_keys grows.
struct cuda_attn_plan {
    int variant = 0;        // few rows (decode): 3 for head_dim <= 128, else 0; many rows: 1 for head_dim <= 128, else 2
    int heads_per_block = 1;
    int queries_per_block = 1;
    int n_hchunk = 1;
    int n_qtiles = 1;
    int n_split = 1;
    size_t smem = 0;
    size_t scratch_bytes = 0;  // split-K partials
};

// Benchmark knob: key tiles per split-K block in decode (default 1: as many blocks as tiles).
void cuda_attention_set_decode_tiles(int tiles);

// Fails with a clear error for shapes the kernels do not take (head_dim > 256, odd, ...).
cuda_attn_plan cuda_attention_plan(const attn_args &a, int keys_bucket, int n_sm);
void cuda_attention(const attn_args &a, const cuda_attn_plan &plan, const int32_t *keys, const int32_t *win_lo,
                    const int32_t *win_hi, const int32_t *meta, void *scratch, cudaStream_t stream);

}  // namespace endless
