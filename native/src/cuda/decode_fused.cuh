// Every layer of a one-token decode step in one persistent kernel (sm_90 and newer, 16-bit
// weights): see decode_fused.cu.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "ggml_types.h"

namespace endless {

// One layer as the kernel reads it (a table of these is staged with every step).
struct cuda_fused_layer {
    const void *wq, *wk, *wv, *wo, *wg, *wu, *wd;   // rows of the file type (F16 or BF16)
    const float *bq, *bk, *bv;                       // may be null
    const float *attn_norm, *ffn_norm;
    float *k_cache, *v_cache;                        // [slots][n_head_kv * head_dim], keys before RoPE
    const void *pad;                                 // (16 pointers: 128 bytes)
};

struct cuda_fused_shape {
    ggml_type type = GGML_TYPE_BF16;
    int n_layer = 0, d = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
};

struct cuda_fused_plan {
    bool ok = false;
    std::string why;            // when not ok: the reason (for logs and tests)
    int n_blocks = 0;           // one per multiprocessor, all resident (cooperative launch)
    int n_split = 0;            // key splits per KV head in the attention phase
    int slots = 0;              // weight chunks a block holds (shared-memory ring)
    int inflight = 0;           // chunks a block has on their way at most
    unsigned backoff_ns = 0;    // experiment knobs (decode_fused.cu): sleep between barrier tries,
    unsigned min_chunk = 0;     // smallest chunk of a product's range (the slot size: chunks never split)
    size_t smem = 0;            // dynamic shared memory per block
    size_t part_bytes = 0;      // device scratch for the attention's partial results
    int work_floats = 0;        // shared memory: the input vector / the attention's tiles
    int acc_stride = 0;         // shared memory: accumulators a warp (rows a block takes, at most)
};

// Whether the current device runs the fused kernel at all (else *why says why).
bool cuda_decode_fused_available(std::string *why);
// Whether (and how) the fused kernel runs this shape on the current device.
cuda_fused_plan cuda_decode_fused_plan(const cuda_fused_shape &s);

struct cuda_fused_args {
    cuda_fused_shape shape;
    const cuda_fused_layer *layers = nullptr;  // device (staged) [n_layer]
    float *x = nullptr;                        // [d] residual stream, updated in place
    float *q = nullptr, *att = nullptr;        // scratch [n_head * head_dim] each
    float *h = nullptr;                        // scratch [n_ff]
    void *part = nullptr;                      // scratch, plan.part_bytes
    const int32_t *keys = nullptr;             // device (staged) key list
    const int32_t *meta = nullptr;             // device (staged) {n_fixed, n_keys, win_lo, win_hi, slot, 0, 0, 0}
    unsigned *barrier = nullptr;               // device (staged), zero at launch
    const float *rope_cos = nullptr, *rope_sin = nullptr;
    int rope_mode = 0;
    float eps = 1e-6f, scale = 1.0f;
};

void cuda_decode_fused(const cuda_fused_args &a, const cuda_fused_plan &plan, cudaStream_t stream);

// With ENDLESS_CUDA_FUSED_PROFILE=1: block 0's time per phase since the last call, averaged over
// the steps, as one line (synchronizes the device); "" otherwise.
std::string cuda_decode_fused_profile();

}  // namespace endless
