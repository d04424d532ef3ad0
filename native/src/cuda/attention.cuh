// attention: the StreamingLLM cache attention of backend.h's attn_args, with RoPE of queries and
// keys fused in, GQA, online softmax and split-K over the key list (flash-decoding).
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include "backend.h"

namespace endless {

// Everything the kernels need besides attn_args' pointers and sizes. keys/win_lo/win_hi/meta
// are device copies of the host arrays; meta = {n_fixed, n_keys}. The launch shape depends only
// on keys_bucket (n_keys rounded up), so a captured graph stays valid while n_keys grows.
struct cuda_attn_plan {
    // decode (queries x heads per KV head <= 16), one launch with the split-K merge in it:
    //   4: head_dim <= 128, 32-key chunks (two blocks per multiprocessor);
    //   3: head_dim <= 256, 32-key chunks;
    //   5: decode where shared memory is too small for those (sm_86/89 with head_dim > 128):
    //      the split-K kernel + a combine launch;
    //   6: one query, head_dim 64 or 128 fully rotated, <= 8 heads per KV head: the warp kernel of
    //      attention_decode1.cu (split-K merge in the launch; `rounds` of 64 keys per block)
    // 1, 2: many rows, head_dim <= 128 / 256 (+ a combine launch)
    int variant = 0;
    int rounds = 1;
    // one query on variant 6: the kernel requests the cached K/V rows before it waits for the
    // kernels before it, all but the rows the batch wrote (the backend passes those: fresh rows)
    bool early = false;
    int heads_per_block = 1;
    int queries_per_block = 1;
    int n_hchunk = 1;
    int n_qtiles = 1;
    int n_split = 1;
    size_t smem = 0;
    size_t scratch_bytes = 0;  // split-K partials (decode: merge records)
    // decode only
    int keys_bucket = 0;
    int kb = 0;                // keys per chunk
    int chunks = 1;            // chunks per block
    int rec_per_group = 0, cnt_per_group = 0;
    size_t counter_bytes = 0;  // merge counters: see cuda_attention
};

// One-query decode attention on attention_decode1.cu's kernel (default, where its shapes fit) or on
// attention_decode_kernel (for comparison in the benchmark). Applies to plans made after the call.
void cuda_attention_set_decode1(bool on);

// Fails with a clear error for shapes the kernels do not take (head_dim > 256, odd, ...).
// smem_limit: the device's opt-in shared memory per block (0: asked of the current device).
cuda_attn_plan cuda_attention_plan(const attn_args &a, int keys_bucket, int n_sm, size_t smem_limit = 0);

// keys: device array of plan.keys_bucket entries (the decode kernel reads entries up to there
// whatever n_keys is; those past n_keys are not used). scratch: plan.scratch_bytes.
// counters: plan.counter_bytes of device memory that is ZERO when the launch starts, private to
// this launch while it runs (not shared with a launch that may run at the same time, e.g. on
// another stream); the kernel leaves it zero again. Required when plan.counter_bytes > 0.
// fresh: device array of the n_fresh cache slots that kernels launched before this one (since the
// last host sync) may write; every other row the keys reach is settled, so the one-query kernel
// requests those before waiting on the kernel before it. n_fresh < 0: not known (every row waits).
void cuda_attention(const attn_args &a, const cuda_attn_plan &plan, const int32_t *keys, const int32_t *win_lo,
                    const int32_t *win_hi, const int32_t *meta, void *scratch, cudaStream_t stream, uint32_t *counters,
                    const int32_t *fresh = nullptr, int n_fresh = -1);

}  // namespace endless
