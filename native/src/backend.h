// The backend interface: memory and the ops of a token step. The model and the cache call only
// this; CPU (src/cpu) and CUDA (src/cuda) implement it. All float pointers passed to ops point
// to the backend's own memory (host memory for the CPU backend, device memory for CUDA); index
// arrays marked "host" live in host memory and are small.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "error.h"
#include "ggml_types.h"

namespace endless {

// A weight matrix or vector as stored in the file: ne0 is the contiguous (input) dimension,
// ne1 the number of rows (outputs). data is backend memory in the file's type.
struct weight {
    ggml_type type = GGML_TYPE_F32;
    int64_t ne0 = 0;   // elements per row
    int64_t ne1 = 1;   // rows
    const void *data = nullptr;
    size_t nbytes = 0;
};

enum rope_mode : int32_t {
    ROPE_MODE_NORM = 0,  // llama.cpp's llama: rotate adjacent pairs (2i, 2i+1)
    ROPE_MODE_NEOX = 2,  // qwen2: rotate (i, i + n_rot/2)
};

// Attention of n_q queries over the cache of one layer, with RoPE applied on the fly to both
// queries and keys (keys are stored before RoPE).
//
// keys[] lists cache slots: the first n_fixed are sinks and memory, at positions 0..n_fixed-1;
// the rest are window/branch entries in age order. Query i sees the fixed keys and the entries
// keys[n_fixed + win_lo[i] .. n_fixed + win_hi[i]) (its own key is the last one); the entry at
// keys[n_fixed + j] has position n_fixed + (j - win_lo[i]) for query i, and query i itself has
// position n_fixed + (win_hi[i] - win_lo[i]) - 1.
struct attn_args {
    const float *q = nullptr;        // [n_q, n_head, head_dim], before RoPE
    const float *k_cache = nullptr;  // [n_slots, n_head_kv, head_dim] f32, before RoPE
    const float *v_cache = nullptr;  // [n_slots, n_head_kv, head_dim] f32
    float *out = nullptr;            // [n_q, n_head, head_dim]
    const int32_t *keys = nullptr;   // host: [n_keys] slot indices
    int32_t n_keys = 0;
    int32_t n_fixed = 0;
    const int32_t *win_lo = nullptr; // host: [n_q]
    const int32_t *win_hi = nullptr; // host: [n_q]
    int32_t n_q = 0;
    int32_t n_head = 0;
    int32_t n_head_kv = 0;
    int32_t head_dim = 0;
    int32_t n_rot = 0;               // rotated dims (<= head_dim), usually head_dim
    rope_mode mode = ROPE_MODE_NORM;
    const float *rope_cos = nullptr; // [n_pos, n_rot/2] backend memory, cos(pos * theta_i)
    const float *rope_sin = nullptr; // [n_pos, n_rot/2]
    float scale = 1.0f;              // 1/sqrt(head_dim)
};

// One layer's tensors as backend::decode_layers takes them.
struct layer_ref {
    weight wq, wk, wv, wo, gate, up, down;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // optional biases
    const float *attn_norm = nullptr, *ffn_norm = nullptr;
    float *k_cache = nullptr, *v_cache = nullptr;
};

// The layer loop of a one-token step, in model.cpp's order: rms_norm, q/k/v (+ biases), kv_store
// into `slot`, attention, o + residual, rms_norm, the SwiGLU feed-forward block + residual.
struct decode_args {
    float *x = nullptr;                  // [n_embd]: the token's embedding in, the last layer's output out
    const layer_ref *layers = nullptr;   // host array [n_layer]
    int n_layer = 0, n_embd = 0, n_ff = 0;
    float eps = 1e-6f;                   // both norms'
    attn_args attn;                      // n_q = 1; its q, out, k_cache and v_cache are not used
    int32_t slot = 0;                    // the cache slot of this token's K/V
    float *q = nullptr, *att = nullptr;  // scratch [n_head * head_dim] each
    float *h = nullptr;                  // scratch [max(n_ff, n_embd)]
};

// A repetition penalty for backend::argmax: ids (host memory) strictly increasing, in [0, n), at
// most ARGMAX_MAX_PENALIZED of them.
constexpr int ARGMAX_MAX_PENALIZED = 1024;
struct argmax_penalty {
    const int32_t *ids = nullptr;
    int n_ids = 0;
    float penalty = 1.0f;
};
// Checks n and pen (endless::error(ENDLESS_ERR_INVALID_ARGUMENT) naming `op`).
inline void argmax_check(const char *op, int64_t n, const argmax_penalty &pen) {
    const std::string at = std::string(op) + ": ";
    if (n <= 0 || n >= INT32_MAX) fail(ENDLESS_ERR_INVALID_ARGUMENT, at + std::to_string(n) + " values");
    if (pen.n_ids < 0 || pen.n_ids > ARGMAX_MAX_PENALIZED || (pen.n_ids > 0 && !pen.ids))
        fail(ENDLESS_ERR_INVALID_ARGUMENT, at + std::to_string(pen.n_ids) + " penalized ids (at most " + std::to_string(ARGMAX_MAX_PENALIZED) + ")");
    if (pen.n_ids > 0 && !(pen.penalty > 0)) fail(ENDLESS_ERR_INVALID_ARGUMENT, at + "the penalty must be positive");
    for (int i = 0; i < pen.n_ids; i++)
        if (pen.ids[i] < 0 || pen.ids[i] >= n || (i > 0 && pen.ids[i] <= pen.ids[i - 1]))
            fail(ENDLESS_ERR_INVALID_ARGUMENT, at + "penalized ids must increase strictly within 0.." + std::to_string(n - 1));
}

class backend {
public:
    virtual ~backend() = default;
    virtual std::string name() const = 0;    // "cpu" or "cuda:<device name>"
    virtual bool is_host() const = 0;         // memory directly readable by the host

    // Memory. alloc throws endless::error(ENDLESS_ERR_OUT_OF_MEMORY) on failure.
    virtual void *alloc(size_t bytes) = 0;
    virtual void release(void *ptr) = 0;
    virtual void upload(void *dst, const void *src, size_t bytes) = 0;    // host -> backend
    virtual void download(void *dst, const void *src, size_t bytes) = 0;  // backend -> host
    virtual void copy(void *dst, const void *src, size_t bytes) = 0;      // backend -> backend
    // A weight's data: on host backends the mmapped file bytes are used in place; others copy.
    virtual const void *place_weight(const void *file_data, size_t bytes) = 0;
    virtual void synchronize() {}

    // Ops. Row-major activations: x[n, dim].
    // out[n, w.ne0] = rows ids of w, converted to f32 (token embedding lookup).
    virtual void get_rows(const weight &w, const int32_t *ids /* host */, int n, float *out) = 0;
    // y[n, w.ne1] = x[n, w.ne0] * W^T
    virtual void matmul(const weight &w, const float *x, int n, float *y) = 0;
    // y = x / rms(x) * g, per row of dim
    virtual void rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y) = 0;
    // y[n, dim] += b[dim]
    virtual void add_bias(float *y, const float *b, int n, int dim) = 0;
    // y[i] += x[i]
    virtual void add(float *y, const float *x, size_t count) = 0;
    // y[i] = silu(gate[i]) * up[i]
    virtual void swiglu(const float *gate, const float *up, size_t count, float *y) = 0;
    // y[n, w.ne1] += x[n, w.ne0] * W^T (a product and its residual add); tmp ([n, w.ne1]) is
    // scratch. The default runs matmul then add; a backend may add inside the product.
    virtual void matmul_add(const weight &w, const float *x, int n, float *y, float *tmp) {
        matmul(w, x, n, tmp);
        add(y, tmp, (size_t)n * w.ne1);
    }
    // x[n, d] += down(silu(h gate^T) * (h up^T)), d = gate.ne0 = down.ne1, n_ff = gate.ne1 =
    // up.ne1 = down.ne0: the SwiGLU feed-forward block with its residual add. gate_buf and up_buf
    // ([n, n_ff]) and out_buf ([n, d], may be h) are scratch: their contents afterwards are
    // unspecified. This default runs the ops above; a backend may fuse them (CUDA: the prefill
    // products keep the intermediates in bf16 and add into x inside the last product).
    virtual void ffn_swiglu_add(float *x, const float *h, const weight &gate, const weight &up, const weight &down, int n,
                                float *gate_buf, float *up_buf, float *out_buf) {
        matmul(gate, h, n, gate_buf);
        matmul(up, h, n, up_buf);
        swiglu(gate_buf, up_buf, (size_t)n * gate.ne1, gate_buf);
        matmul(down, gate_buf, n, out_buf);
        add(x, out_buf, (size_t)n * down.ne1);
    }
    // Writes k[i], v[i] ([n, n_head_kv*head_dim]) into cache slots slots[i].
    virtual void kv_store(float *k_cache, float *v_cache, const float *k, const float *v,
                          const int32_t *slots /* host */, int n, int row) = 0;
    virtual void attention(const attn_args &args) = 0;
    // out[0] (backend memory) = the first index of the largest of x[0, n), NaN counting as -inf,
    // the values at pen.ids first penalized as the sampler does (divided by pen.penalty where
    // positive, multiplied where not): the greedy pick where the logits are (greedy_index /
    // sampler.h), so a greedy step brings back 4 bytes. x itself is not changed.
    virtual void argmax(const float *x, int64_t n, int32_t *out, const argmax_penalty &pen) = 0;
    // The caller will not read [p, p + bytes) again before writing it: its contents are unspecified
    // from here on, and a backend may leave it unwritten by ops already issued. CUDA: an rms_norm
    // whose rows only cuBLAS products read (through the bf16 copy the norm's launch writes for
    // them) then skips its f32 rows (model.cpp: the norm output h after its products). A hint only.
    virtual void discard(const void *p, size_t bytes) { (void)p; (void)bytes; }
    // Runs every layer of a one-token step in one call and returns true, or does nothing and returns
    // false (no fused path for these arguments, or an argument the ops would reject): the caller then
    // issues the ops one by one. Afterwards x and the caches are what the ops would have left (the
    // token's K/V in `slot` of every layer); the scratch contents are unspecified. CUDA: one
    // persistent kernel for F16/BF16 weights on sm_90 and newer (decode_fused.cu), opt-in
    // (ENDLESS_CUDA_FUSED_DECODE=1) while it measures slower than the separate launches.
    virtual bool decode_layers(const decode_args &) { return false; }
};

std::unique_ptr<backend> backend_cpu_create(int n_threads);
#ifdef ENDLESS_WITH_CUDA
// Throws endless::error(ENDLESS_ERR_DEVICE) when no usable device exists.
std::unique_ptr<backend> backend_cuda_create(int device_index);
int backend_cuda_device_count();
#endif

}  // namespace endless
