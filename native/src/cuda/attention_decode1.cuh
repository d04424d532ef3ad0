// Decode attention for one query (the token step): warps that work alone over 8 keys at a time,
// the heads of one KV head (GQA) together, one block-level merge, and the split-K merge as a
// second launch. Used by cuda_attention (attention.cu) when its shapes fit
// (cuda_attention_decode1_fits); attention_decode_kernel takes the rest.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include "backend.h"

namespace endless {

constexpr int CUDA_A1_KEYS_PER_BLOCK = 64;  // keys a block takes per round (8 warps x 8 keys)
constexpr int CUDA_A1_MAX_ROUNDS = 4;       // rounds per block (a warp's key slots fit its 32 lanes)
constexpr int CUDA_A1_MAX_FRESH = 4;        // rows written in the batch that the kernel can wait for alone

// One query, head_dim 64 or 128, fully rotated, at most 8 heads per KV head.
bool cuda_attention_decode1_fits(const attn_args &a);

// Rounds per block and blocks per KV head for a key list of keys_bucket entries: one round while
// the blocks fit two per multiprocessor, more beyond.
void cuda_attention_decode1_shape(int keys_bucket, int n_head_kv, int n_sm, int &rounds, int &n_split);

// Whether a launch of that many rounds per block requests the K/V rows before its wait (then the
// backend passes the rows written in the batch; otherwise it need not find them).
bool cuda_attention_decode1_early(int rounds);

// Bytes of the merge records the launch needs.
size_t cuda_attention_decode1_scratch_bytes(const attn_args &a, int n_split);

// keys/win_lo/win_hi/meta/fresh: device arrays as for cuda_attention; scratch: the merge records.
// With 0 <= n_fresh <= CUDA_A1_MAX_FRESH and one round per block, every K/V row but the fresh ones
// is requested before the wait on the kernel before (the q/k/v product that stores the new row).
void cuda_attention_decode1(const attn_args &a, int keys_bucket, int rounds, int n_split, const int32_t *keys,
                            const int32_t *win_lo, const int32_t *win_hi, const int32_t *meta, float *scratch,
                            cudaStream_t stream, const int32_t *fresh = nullptr, int n_fresh = -1);

}  // namespace endless
