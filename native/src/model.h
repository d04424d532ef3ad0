// A loaded model: hyper-parameters and weights read from GGUF (llama and qwen2 families), placed
// on a backend, and the forward pass over a chunk of tokens against the StreamingLLM cache.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "endless.h"
#include "gguf.h"

namespace endless {

struct model_hparams {
    std::string arch;        // "llama" | "qwen2"
    std::string name;        // general.name
    int32_t n_vocab = 0;     // rows of the output matrix
    int32_t n_ctx_train = 0;
    int32_t n_embd = 0;
    int32_t n_layer = 0;
    int32_t n_head = 0;
    int32_t n_head_kv = 0;
    int32_t head_dim = 0;    // n_embd / n_head unless attention.key_length says otherwise
    int32_t n_ff = 0;
    int32_t n_rot = 0;       // rope.dimension_count (<= head_dim)
    float rope_freq_base = 10000.0f;
    float norm_eps = 1e-5f;
    rope_mode rope = ROPE_MODE_NORM;
    bool qkv_bias = false;
    bool tied_output = false;
};

struct layer_weights {
    const float *attn_norm = nullptr;  // (n_embd) f32, backend memory
    weight wq;                         // (n_embd -> n_head * head_dim)
    weight wk;                         // (n_embd -> n_head_kv * head_dim)
    weight wv;                         // (n_embd -> n_head_kv * head_dim)
    weight wo;                         // (n_head * head_dim -> n_embd)
    const float *bq = nullptr;         // (n_head * head_dim) qwen2 only
    const float *bk = nullptr;         // (n_head_kv * head_dim)
    const float *bv = nullptr;         // (n_head_kv * head_dim)
    const float *ffn_norm = nullptr;   // (n_embd)
    weight ffn_gate;                   // (n_embd -> n_ff)
    weight ffn_up;                     // (n_embd -> n_ff)
    weight ffn_down;                   // (n_ff -> n_embd)
};

// The part of the cache a chunk of queries attends to (see attn_args in backend.h).
struct cache_view {
    std::vector<int32_t> slots;   // where each query's K/V is written
    std::vector<int32_t> keys;    // visible slots: n_fixed fixed keys, then window entries
    int32_t n_fixed = 0;
    std::vector<int32_t> win_lo;  // per query
    std::vector<int32_t> win_hi;
};

class model {
public:
    // Throws endless::error. progress may be null; returning non-zero cancels.
    static std::unique_ptr<model> load(const std::string &path, const endless_model_params &params);
    ~model();

    const model_hparams &hparams() const { return hp_; }
    const gguf_file &file() const { return *file_; }
    backend &be() const { return *be_; }
    const std::string &fingerprint() const { return fingerprint_; }
    const std::string &file_type() const { return file_type_; }
    const std::string &notice() const { return notice_; }
    int64_t n_params() const { return n_params_; }
    uint64_t weight_bytes() const { return weight_bytes_; }
    int n_threads() const { return n_threads_; }

    // Runs n tokens through the model. k_cache/v_cache: per layer, [n_slots, n_head_kv*head_dim].
    // rope tables: [n_pos, n_rot/2]. If logits_rows > 0, writes the logits of the last
    // logits_rows tokens to logits (host memory, logits_rows * n_vocab floats).
    // greedy (then logits_rows is 1 and logits unused): the logits stay in backend memory and
    // *greedy gets their greedy pick (backend::argmax with pen), taken there: 4 bytes come back
    // instead of the vocabulary's logits; fetch_logits brings the logits when they are wanted.
    void forward(const int32_t *tokens, int n, const cache_view &view,
                 const std::vector<float *> &k_cache, const std::vector<float *> &v_cache,
                 const float *rope_cos, const float *rope_sin, int logits_rows, float *logits,
                 int32_t *greedy = nullptr, const argmax_penalty &pen = {});
    // The last token's logits of the last forward that made any (n_vocab floats to dst). Valid
    // until the next forward: the caller keeps the model to itself in between.
    void fetch_logits(float *dst);

    // cos/sin of pos * theta_i for pos in [0, n_pos), i in [0, n_rot/2), on the host.
    void rope_tables(int n_pos, std::vector<float> &cos_out, std::vector<float> &sin_out) const;

private:
    model() = default;
    void load_hparams();
    void load_weights(const endless_model_params &params);
    weight get_matrix(const std::string &name, int64_t ne0, int64_t ne1, bool required = true);
    const float *get_vector(const std::string &name, int64_t n, bool required = true);
    void ensure_scratch(int n);

    std::unique_ptr<gguf_file> file_;
    std::unique_ptr<backend> be_;
    model_hparams hp_;
    weight tok_embd_;
    const float *output_norm_ = nullptr;
    weight output_;
    std::vector<float> rope_freqs_;     // per pair divisor (llama3 scaling), empty when absent
    std::vector<layer_weights> layers_;
    std::vector<layer_ref> refs_;       // layers_ and the caches of the last decode step (backend::decode_layers)
    std::vector<void *> owned_;         // backend allocations to release
    std::string fingerprint_;
    std::string file_type_;
    std::string notice_;
    int64_t n_params_ = 0;
    uint64_t weight_bytes_ = 0;
    int n_threads_ = 1;

    // activations for up to scratch_n_ tokens (backend memory)
    int scratch_n_ = 0;
    float *x_ = nullptr, *h_ = nullptr, *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *att_ = nullptr;
    float *gate_ = nullptr, *up_ = nullptr, *logits_dev_ = nullptr;
    int logits_rows_cap_ = 0;
    int logits_last_rows_ = 0;       // rows the last forward with logits wrote to logits_dev_
    int32_t *greedy_dev_ = nullptr;  // the greedy index (backend memory)
};

}  // namespace endless
