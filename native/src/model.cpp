// Model loading (llama, qwen2) and the forward pass. The two architectures share one
// transformer: qwen2 adds q/k/v biases and rotates NEOX-style pairs (i, i + n_rot/2); llama
// rotates adjacent pairs (llama.cpp's converter permutes q/k for that) and may carry llama3
// rope scaling as rope_freqs.weight.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "error.h"
#include "quant.h"
#include "sha256.h"
#ifdef ENDLESS_WITH_CUDA
#include "cuda/backend_cuda.h"
#endif

namespace endless {

namespace {

std::string shape_str(const int64_t *ne, uint32_t n_dims) {
    std::string s = "[";
    for (uint32_t i = 0; i < n_dims; i++) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

int32_t positive_int(const gguf_file &f, const std::string &key, int64_t max) {
    int64_t v = f.get_int_req(key);
    if (v <= 0 || v > max)
        fail(ENDLESS_ERR_FORMAT, f.path() + ": key '" + key + "' = " + std::to_string(v) + " is out of range (1.." + std::to_string(max) + ")");
    return (int32_t)v;
}

}  // namespace

model::~model() {
    if (be_) {
        for (void *p : owned_) be_->release(p);
        for (float *p : {x_, h_, q_, k_, v_, att_, gate_, up_, logits_dev_})
            if (p) be_->release(p);
        if (greedy_dev_) be_->release(greedy_dev_);
    }
}

std::unique_ptr<model> model::load(const std::string &path, const endless_model_params &params) {
    std::unique_ptr<model> m(new model());
    m->file_ = gguf_file::open(path);
    m->load_hparams();
    m->n_threads_ = params.n_threads > 0 ? params.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());

    // Device choice: CUDA when asked for (or auto) and usable, else the CPU with a notice.
    bool want_cuda = params.device == ENDLESS_DEVICE_CUDA || params.device == ENDLESS_DEVICE_AUTO;
#ifdef ENDLESS_WITH_CUDA
    if (want_cuda) {
        if (backend_cuda_device_count() > 0) {
            try {
                m->be_ = backend_cuda_create(0);
                m->load_weights(params);
                // prefill products without cuBLAS run on the built-in kernels (~2.5x slower prefill)
                const std::string gemm = backend_cuda_gemm_engine(*m->be_);
                if (gemm.rfind("own kernels", 0) == 0)
                    m->notice_ = "prefill products on the built-in tensor-core kernels, not cuBLAS" + gemm.substr(11);
            } catch (const error &e) {
                if (e.status() == ENDLESS_ERR_CANCELLED) throw;
                for (void *p : m->owned_) m->be_->release(p);
                m->owned_.clear();
                m->be_.reset();
                m->notice_ = std::string("CUDA not used (") + e.what() + "); running on the CPU";
            }
        } else if (params.device == ENDLESS_DEVICE_CUDA) {
            m->notice_ = "no CUDA device found; running on the CPU";
        }
    }
#else
    if (params.device == ENDLESS_DEVICE_CUDA) m->notice_ = "this build has no CUDA backend; running on the CPU";
    (void)want_cuda;
#endif
    if (!m->be_) {
        m->be_ = backend_cpu_create(m->n_threads_);
        m->load_weights(params);
    }

    // From here on nothing reads the file: every weight lives in memory the backend owns
    // (placed or uploaded), vectors were dequantized into owned memory, rope_freqs and the
    // fingerprint were taken, and the metadata is copied out. Unmapping makes the model
    // immune to the file being removed, truncated or rewritten in place. Only a weight that
    // the CPU backend left in the mapping (ENDLESS_CPU_WEIGHT_COPY=0, or an allocation that
    // failed) keeps the mapping alive, and the notice says what that costs.
    const uint8_t *lo = m->file_->file_data(), *hi = lo + m->file_->file_size();
    auto in_mapping = [&](const weight &w) { return m->be_->is_host() && lo && w.data && (const uint8_t *)w.data >= lo && (const uint8_t *)w.data < hi; };
    bool mapped_weights = in_mapping(m->tok_embd_) || in_mapping(m->output_);
    for (const layer_weights &L : m->layers_)
        for (const weight *w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) mapped_weights = mapped_weights || in_mapping(*w);
    if (!mapped_weights) {
        m->file_->release_mapping();
    } else {
        const std::string n = "weights are read from the mapped model file (ENDLESS_CPU_WEIGHT_COPY=0 or low memory): "
                              "removing or rewriting the file while Endless runs can crash it";
        m->notice_ = m->notice_.empty() ? n : m->notice_ + "; " + n;
    }
    return m;
}

void model::load_hparams() {
    const gguf_file &f = *file_;
    hp_.arch = f.get_string_req("general.architecture");
    if (hp_.arch != "llama" && hp_.arch != "qwen2")
        fail(ENDLESS_ERR_UNSUPPORTED, f.path() + ": architecture '" + hp_.arch + "' is not supported (supported: llama, qwen2)");
    const std::string a = hp_.arch + ".";
    hp_.name = f.get_string("general.name", "");
    hp_.n_embd = positive_int(f, a + "embedding_length", 1 << 16);
    hp_.n_layer = positive_int(f, a + "block_count", 1024);
    hp_.n_head = positive_int(f, a + "attention.head_count", 1024);
    if (const gguf_kv *kv = f.find(a + "attention.head_count_kv"); kv && kv->is_array())
        fail(ENDLESS_ERR_UNSUPPORTED, f.path() + ": per-layer attention.head_count_kv is not supported");
    hp_.n_head_kv = f.find(a + "attention.head_count_kv") ? positive_int(f, a + "attention.head_count_kv", 1024) : hp_.n_head;
    hp_.n_ff = positive_int(f, a + "feed_forward_length", 1 << 20);
    hp_.n_ctx_train = f.find(a + "context_length") ? positive_int(f, a + "context_length", 1 << 24) : 4096;
    hp_.head_dim = f.find(a + "attention.key_length") ? positive_int(f, a + "attention.key_length", 4096) : hp_.n_embd / hp_.n_head;
    hp_.n_rot = f.find(a + "rope.dimension_count") ? positive_int(f, a + "rope.dimension_count", 4096) : hp_.head_dim;
    hp_.rope_freq_base = (float)f.get_float(a + "rope.freq_base", 10000.0);
    hp_.norm_eps = (float)f.get_float(a + "attention.layer_norm_rms_epsilon", hp_.arch == "qwen2" ? 1e-6 : 1e-5);
    hp_.rope = hp_.arch == "qwen2" ? ROPE_MODE_NEOX : ROPE_MODE_NORM;
    hp_.qkv_bias = hp_.arch == "qwen2";
    if (hp_.n_head % hp_.n_head_kv != 0)
        fail(ENDLESS_ERR_FORMAT, f.path() + ": head_count " + std::to_string(hp_.n_head) + " is not a multiple of head_count_kv " + std::to_string(hp_.n_head_kv));
    if (hp_.n_rot > hp_.head_dim || hp_.n_rot % 2 != 0)
        fail(ENDLESS_ERR_FORMAT, f.path() + ": rope.dimension_count " + std::to_string(hp_.n_rot) + " must be even and at most the head size " + std::to_string(hp_.head_dim));
    if (!(hp_.rope_freq_base > 0) || !(hp_.norm_eps > 0) || hp_.norm_eps > 1)
        fail(ENDLESS_ERR_FORMAT, f.path() + ": rope.freq_base or layer_norm_rms_epsilon out of range");
    if (const gguf_kv *kv = f.find(a + "rope.scaling.type")) {
        std::string t(kv->get_string());
        if (t != "none" && t != "linear")
            fail(ENDLESS_ERR_UNSUPPORTED, f.path() + ": rope scaling type '" + t + "' is not supported");
        if (t == "linear" && f.get_float(a + "rope.scaling.factor", 1.0) != 1.0)
            fail(ENDLESS_ERR_UNSUPPORTED, f.path() + ": linear rope scaling is not supported");
    }
    const gguf_tensor *emb = f.find_tensor("token_embd.weight");
    if (!emb) fail(ENDLESS_ERR_FORMAT, f.path() + ": missing tensor 'token_embd.weight'");
    if (emb->n_dims != 2 || emb->ne[0] != hp_.n_embd)
        fail(ENDLESS_ERR_FORMAT, f.path() + ": tensor 'token_embd.weight' has shape " + shape_str(emb->ne, emb->n_dims) + ", expected [" + std::to_string(hp_.n_embd) + ", n_vocab]");
    hp_.n_vocab = (int32_t)emb->ne[1];
    hp_.tied_output = f.find_tensor("output.weight") == nullptr;
}

weight model::get_matrix(const std::string &name, int64_t ne0, int64_t ne1, bool required) {
    const gguf_tensor *t = file_->find_tensor(name);
    if (!t) {
        if (required) fail(ENDLESS_ERR_FORMAT, file_->path() + ": missing tensor '" + name + "'");
        return weight{};
    }
    if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1)
        fail(ENDLESS_ERR_FORMAT, file_->path() + ": tensor '" + name + "' has shape " + shape_str(t->ne, t->n_dims) +
                                     ", expected [" + std::to_string(ne0) + ", " + std::to_string(ne1) + "]");
    if (!ggml_type_supported(t->type))
        fail(ENDLESS_ERR_UNSUPPORTED, file_->path() + ": tensor '" + name + "' has unsupported type " + ggml_type_info(t->type).name);
    weight w;
    w.type = t->type;
    w.ne0 = ne0;
    w.ne1 = ne1;
    w.nbytes = t->nbytes;
    w.data = be_->place_weight(t->data, t->nbytes);
    if (!be_->is_host() || w.data != t->data) owned_.push_back(const_cast<void *>(w.data));
    n_params_ += ne0 * ne1;
    weight_bytes_ += t->nbytes;
    return w;
}

const float *model::get_vector(const std::string &name, int64_t n, bool required) {
    const gguf_tensor *t = file_->find_tensor(name);
    if (!t) {
        if (required) fail(ENDLESS_ERR_FORMAT, file_->path() + ": missing tensor '" + name + "'");
        return nullptr;
    }
    if (t->n_elements() != n || (t->n_dims != 1 && !(t->n_dims == 2 && t->ne[1] == 1)))
        fail(ENDLESS_ERR_FORMAT, file_->path() + ": tensor '" + name + "' has shape " + shape_str(t->ne, t->n_dims) + ", expected [" + std::to_string(n) + "]");
    if (!ggml_type_supported(t->type))
        fail(ENDLESS_ERR_UNSUPPORTED, file_->path() + ": tensor '" + name + "' has unsupported type " + ggml_type_info(t->type).name);
    std::vector<float> host((size_t)n);
    dequantize_row(t->type, t->data, host.data(), n);
    float *dev = static_cast<float *>(be_->alloc((size_t)n * sizeof(float)));
    owned_.push_back(dev);
    be_->upload(dev, host.data(), (size_t)n * sizeof(float));
    n_params_ += n;
    weight_bytes_ += t->nbytes;
    return dev;
}

void model::load_weights(const endless_model_params &params) {
    const gguf_file &f = *file_;
    const int64_t d = hp_.n_embd, hd = hp_.head_dim, nq = (int64_t)hp_.n_head * hd, nkv = (int64_t)hp_.n_head_kv * hd;
    n_params_ = 0;
    weight_bytes_ = 0;
    layers_.assign(hp_.n_layer, layer_weights{});
    auto progress = [&](int done) {
        if (params.progress && params.progress((float)done / (float)(hp_.n_layer + 2), params.progress_user_data))
            fail(ENDLESS_ERR_CANCELLED, "model load cancelled");
    };
    tok_embd_ = get_matrix("token_embd.weight", d, hp_.n_vocab);
    progress(1);
    for (int il = 0; il < hp_.n_layer; il++) {
        const std::string p = "blk." + std::to_string(il) + ".";
        layer_weights &L = layers_[il];
        L.attn_norm = get_vector(p + "attn_norm.weight", d);
        L.wq = get_matrix(p + "attn_q.weight", d, nq);
        L.wk = get_matrix(p + "attn_k.weight", d, nkv);
        L.wv = get_matrix(p + "attn_v.weight", d, nkv);
        L.wo = get_matrix(p + "attn_output.weight", nq, d);
        if (hp_.qkv_bias) {
            L.bq = get_vector(p + "attn_q.bias", nq);
            L.bk = get_vector(p + "attn_k.bias", nkv);
            L.bv = get_vector(p + "attn_v.bias", nkv);
        } else {
            // llama files may carry biases too (some fine-tunes); use them when present
            L.bq = get_vector(p + "attn_q.bias", nq, false);
            L.bk = get_vector(p + "attn_k.bias", nkv, false);
            L.bv = get_vector(p + "attn_v.bias", nkv, false);
        }
        L.ffn_norm = get_vector(p + "ffn_norm.weight", d);
        L.ffn_gate = get_matrix(p + "ffn_gate.weight", d, hp_.n_ff);
        L.ffn_up = get_matrix(p + "ffn_up.weight", d, hp_.n_ff);
        L.ffn_down = get_matrix(p + "ffn_down.weight", hp_.n_ff, d);
        progress(il + 2);
    }
    output_norm_ = get_vector("output_norm.weight", d);
    if (hp_.tied_output) {
        output_ = tok_embd_;
    } else {
        output_ = get_matrix("output.weight", d, hp_.n_vocab);
    }
    rope_freqs_.clear();
    if (const gguf_tensor *t = f.find_tensor("rope_freqs.weight")) {
        if (t->n_elements() != hp_.n_rot / 2 || t->type != GGML_TYPE_F32)
            fail(ENDLESS_ERR_FORMAT, f.path() + ": tensor 'rope_freqs.weight' must be F32 with " + std::to_string(hp_.n_rot / 2) + " elements");
        rope_freqs_.resize(hp_.n_rot / 2);
        std::memcpy(rope_freqs_.data(), t->data, rope_freqs_.size() * sizeof(float));
        for (float v : rope_freqs_)
            if (!(v > 0) || !std::isfinite(v)) fail(ENDLESS_ERR_FORMAT, f.path() + ": 'rope_freqs.weight' holds a non-positive factor");
    }

    // The dominant matrix type names the file type.
    size_t best = 0;
    std::vector<std::pair<uint32_t, size_t>> by_type;
    for (const auto &t : f.tensors()) {
        if (t.n_dims < 2) continue;
        auto it = std::find_if(by_type.begin(), by_type.end(), [&](auto &p) { return p.first == (uint32_t)t.type; });
        if (it == by_type.end()) by_type.push_back({(uint32_t)t.type, t.nbytes});
        else it->second += t.nbytes;
    }
    for (auto &p : by_type) if (p.second > best) { best = p.second; file_type_ = ggml_type_info(p.first).name; }

    // Fingerprint: hyper-parameters, tensor table and samples of every tensor's bytes (hashing
    // every byte of a multi-GB file would cost seconds at each load).
    sha256 h;
    std::string hp = hp_.arch + "|" + std::to_string(hp_.n_vocab) + "|" + std::to_string(hp_.n_embd) + "|" +
                     std::to_string(hp_.n_layer) + "|" + std::to_string(hp_.n_head) + "|" + std::to_string(hp_.n_head_kv) + "|" +
                     std::to_string(hp_.n_ff) + "|" + std::to_string(hp_.rope_freq_base) + "|" + std::to_string(f.file_size());
    h.update(hp.data(), hp.size());
    for (const auto &t : f.tensors()) {
        h.update(t.name.data(), t.name.size());
        h.update(&t.type, sizeof(t.type));
        h.update(t.ne, sizeof(t.ne));
        const size_t chunk = 256;
        if (t.nbytes <= 16 * chunk) {
            h.update(t.data, t.nbytes);
        } else {
            for (int s = 0; s < 16; s++) {
                size_t off = (t.nbytes - chunk) * s / 15;
                h.update(t.data + off, chunk);
            }
        }
    }
    fingerprint_ = h.hex();
    progress(hp_.n_layer + 2);
}

void model::rope_tables(int n_pos, std::vector<float> &cos_out, std::vector<float> &sin_out) const {
    const int half = hp_.n_rot / 2;
    cos_out.assign((size_t)n_pos * half, 0.0f);
    sin_out.assign((size_t)n_pos * half, 0.0f);
    for (int i = 0; i < half; i++) {
        double theta = std::pow((double)hp_.rope_freq_base, -2.0 * i / hp_.n_rot);
        if (!rope_freqs_.empty()) theta /= rope_freqs_[i];
        for (int p = 0; p < n_pos; p++) {
            double a = p * theta;
            cos_out[(size_t)p * half + i] = (float)std::cos(a);
            sin_out[(size_t)p * half + i] = (float)std::sin(a);
        }
    }
}

void model::ensure_scratch(int n) {
    if (n <= scratch_n_) return;
    auto grab = [&](float *&p, size_t count) {
        if (p) be_->release(p);
        p = static_cast<float *>(be_->alloc(count * sizeof(float)));
    };
    const size_t d = hp_.n_embd, nq = (size_t)hp_.n_head * hp_.head_dim, nkv = (size_t)hp_.n_head_kv * hp_.head_dim;
    grab(x_, n * d);
    grab(h_, n * std::max(d, nq));
    grab(q_, n * nq);
    grab(k_, n * nkv);
    grab(v_, n * nkv);
    grab(att_, n * nq);
    grab(gate_, n * (size_t)hp_.n_ff);
    grab(up_, n * (size_t)hp_.n_ff);
    scratch_n_ = n;
}

void model::forward(const int32_t *tokens, int n, const cache_view &view,
                    const std::vector<float *> &k_cache, const std::vector<float *> &v_cache,
                    const float *rope_cos, const float *rope_sin, int logits_rows, float *logits, int32_t *greedy,
                    const argmax_penalty &pen) {
    backend &be = *be_;
    const int d = hp_.n_embd, hd = hp_.head_dim, nq = hp_.n_head * hd, nkv = hp_.n_head_kv * hd;
    if (greedy && logits_rows != 1) fail(ENDLESS_ERR_INTERNAL, "model forward: a greedy pick takes one row of logits");
    ensure_scratch(n);
    if (greedy && !greedy_dev_) greedy_dev_ = static_cast<int32_t *>(be.alloc(sizeof(int32_t)));
    if (logits_rows > logits_rows_cap_) {
        if (logits_dev_) be.release(logits_dev_);
        logits_dev_ = static_cast<float *>(be.alloc((size_t)logits_rows * hp_.n_vocab * sizeof(float)));
        logits_rows_cap_ = logits_rows;
    }

    be.get_rows(tok_embd_, tokens, n, x_);  // token embeddings
    attn_args base;  // what every layer's attention shares
    base.keys = view.keys.data();
    base.n_keys = (int32_t)view.keys.size();
    base.n_fixed = view.n_fixed;
    base.win_lo = view.win_lo.data();
    base.win_hi = view.win_hi.data();
    base.n_q = n;
    base.n_head = hp_.n_head;
    base.n_head_kv = hp_.n_head_kv;
    base.head_dim = hd;
    base.n_rot = hp_.n_rot;
    base.mode = hp_.rope;
    base.rope_cos = rope_cos;
    base.rope_sin = rope_sin;
    base.scale = 1.0f / std::sqrt((float)hd);
    bool fused = false;
    if (n == 1) {  // a decode step: the backend may run the layer loop as one launch
        refs_.resize(hp_.n_layer);
        for (int il = 0; il < hp_.n_layer; il++) {
            const layer_weights &L = layers_[il];
            layer_ref &r = refs_[il];
            r.wq = L.wq; r.wk = L.wk; r.wv = L.wv; r.wo = L.wo;
            r.gate = L.ffn_gate; r.up = L.ffn_up; r.down = L.ffn_down;
            r.bq = L.bq; r.bk = L.bk; r.bv = L.bv;
            r.attn_norm = L.attn_norm; r.ffn_norm = L.ffn_norm;
            r.k_cache = k_cache[il]; r.v_cache = v_cache[il];
        }
        decode_args da;
        da.x = x_;
        da.layers = refs_.data();
        da.n_layer = hp_.n_layer;
        da.n_embd = d;
        da.n_ff = hp_.n_ff;
        da.eps = hp_.norm_eps;
        da.attn = base;
        da.slot = view.slots[0];
        da.q = q_;
        da.att = att_;
        da.h = gate_;
        fused = be.decode_layers(da);
    }
    for (int il = 0; il < hp_.n_layer && !fused; il++) {
        const layer_weights &L = layers_[il];
        be.rms_norm(x_, L.attn_norm, n, d, hp_.norm_eps, h_);
        be.matmul(L.wq, h_, n, q_);  // q = h Wq^T (+ bq)
        be.matmul(L.wk, h_, n, k_);
        be.matmul(L.wv, h_, n, v_);
        be.discard(h_, (size_t)n * d * sizeof(float));  // (read by the three products only)
        if (L.bq) be.add_bias(q_, L.bq, n, nq);
        if (L.bk) be.add_bias(k_, L.bk, n, nkv);
        if (L.bv) be.add_bias(v_, L.bv, n, nkv);
        be.kv_store(k_cache[il], v_cache[il], k_, v_, view.slots.data(), n, nkv);  // keys before RoPE

        attn_args a = base;  // softmax(RoPE(q) RoPE(K)^T / sqrt(hd)) V over the visible cache
        a.q = q_;
        a.k_cache = k_cache[il];
        a.v_cache = v_cache[il];
        a.out = att_;
        be.attention(a);

        be.matmul_add(L.wo, att_, n, x_, h_);  // x = x + att Wo^T (h_ as scratch)
        be.rms_norm(x_, L.ffn_norm, n, d, hp_.norm_eps, h_);
        // x = x + down(silu(gate(h)) * up(h)) (gate_, up_ and h_ as scratch)
        be.ffn_swiglu_add(x_, h_, L.ffn_gate, L.ffn_up, L.ffn_down, n, gate_, up_, h_);
        be.discard(h_, (size_t)n * d * sizeof(float));
    }
    if (logits_rows > 0) {
        const float *last = x_ + (size_t)(n - logits_rows) * d;
        be.rms_norm(last, output_norm_, logits_rows, d, hp_.norm_eps, h_);
        be.matmul(output_, h_, logits_rows, logits_dev_);
        logits_last_rows_ = 0;  // (set again once the logits are complete)
        if (greedy) {
            be.argmax(logits_dev_, hp_.n_vocab, greedy_dev_, pen);
            be.download(greedy, greedy_dev_, sizeof(int32_t));
        } else {
            be.download(logits, logits_dev_, (size_t)logits_rows * hp_.n_vocab * sizeof(float));
        }
        logits_last_rows_ = logits_rows;
    }
}

void model::fetch_logits(float *dst) {
    if (logits_last_rows_ <= 0) fail(ENDLESS_ERR_STATE, "no logits to fetch: the last forward made none");
    be_->download(dst, logits_dev_ + (size_t)(logits_last_rows_ - 1) * hp_.n_vocab, (size_t)hp_.n_vocab * sizeof(float));
}

}  // namespace endless
