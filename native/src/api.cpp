// The C API: argument checks, exceptions turned into status codes and the thread's last-error
// text, and the opaque handles.
#include <cstring>
#include <string>
#include <thread>

#include "endless.h"
#include "error.h"
#include "gguf.h"
#include "model.h"
#include "sampler.h"
#include "session.h"
#ifdef ENDLESS_WITH_CUDA
#include "backend.h"
#endif
#include "cpu/cpu_kernels.h"

using namespace endless;

struct endless_gguf {
    const gguf_file *file = nullptr;
    std::unique_ptr<gguf_file> owned;
};

struct endless_model {
    std::unique_ptr<model> m;
    endless_gguf meta;
    std::string device;
};

struct endless_session {
    std::unique_ptr<session> s;
};

struct endless_sampler {
    explicit endless_sampler(const endless_sampler_params &p) : s(p) {}
    sampler s;
};

namespace {

thread_local std::string g_last_error;

endless_status set_error(endless_status st, const std::string &msg) {
    g_last_error = msg;
    return st;
}

template <typename F> endless_status guarded(F &&fn) {
    try {
        fn();
        return ENDLESS_OK;
    } catch (const error &e) {
        return set_error(e.status(), e.what());
    } catch (const std::bad_alloc &) {
        return set_error(ENDLESS_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return set_error(ENDLESS_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return set_error(ENDLESS_ERR_INTERNAL, "internal error");
    }
}

#define REQUIRE(cond, msg) do { if (!(cond)) return set_error(ENDLESS_ERR_INVALID_ARGUMENT, msg); } while (0)

}  // namespace

extern "C" {

const char *endless_last_error(void) { return g_last_error.c_str(); }

const char *endless_status_name(endless_status status) {
    switch (status) {
        case ENDLESS_OK: return "ENDLESS_OK";
        case ENDLESS_ERR_INVALID_ARGUMENT: return "ENDLESS_ERR_INVALID_ARGUMENT";
        case ENDLESS_ERR_IO: return "ENDLESS_ERR_IO";
        case ENDLESS_ERR_FORMAT: return "ENDLESS_ERR_FORMAT";
        case ENDLESS_ERR_UNSUPPORTED: return "ENDLESS_ERR_UNSUPPORTED";
        case ENDLESS_ERR_OUT_OF_MEMORY: return "ENDLESS_ERR_OUT_OF_MEMORY";
        case ENDLESS_ERR_CANCELLED: return "ENDLESS_ERR_CANCELLED";
        case ENDLESS_ERR_STATE: return "ENDLESS_ERR_STATE";
        case ENDLESS_ERR_CAPACITY: return "ENDLESS_ERR_CAPACITY";
        case ENDLESS_ERR_MISMATCH: return "ENDLESS_ERR_MISMATCH";
        case ENDLESS_ERR_DEVICE: return "ENDLESS_ERR_DEVICE";
        case ENDLESS_ERR_INTERNAL: return "ENDLESS_ERR_INTERNAL";
    }
    return "ENDLESS_ERR_UNKNOWN";
}

/* ---- models ---- */

endless_model_params endless_model_default_params(void) {
    endless_model_params p{};
    p.n_threads = 0;
    p.device = ENDLESS_DEVICE_AUTO;
    return p;
}

endless_status endless_model_load(const char *path, const endless_model_params *params, endless_model **out) {
    REQUIRE(path && *path, "model path is empty");
    REQUIRE(out, "out is null");
    *out = nullptr;
    endless_model_params p = params ? *params : endless_model_default_params();
    REQUIRE(p.n_threads >= 0 && p.n_threads <= 1024, "n_threads out of range");
    REQUIRE(p.device >= ENDLESS_DEVICE_AUTO && p.device <= ENDLESS_DEVICE_CUDA, "unknown device");
    return guarded([&] {
        auto h = std::make_unique<endless_model>();
        h->m = model::load(path, p);
        h->meta.file = &h->m->file();
        h->device = h->m->be().name();
        *out = h.release();
    });
}

void endless_model_free(endless_model *model) { delete model; }

endless_status endless_model_describe(const endless_model *model, endless_model_desc *out) {
    REQUIRE(model && out, "null argument");
    const model_hparams &hp = model->m->hparams();
    endless_model_desc d{};
    d.architecture = hp.arch.c_str();
    d.name = hp.name.c_str();
    d.device = model->device.c_str();
    d.fingerprint = model->m->fingerprint().c_str();
    d.file_type = model->m->file_type().c_str();
    d.notice = model->m->notice().c_str();
    d.n_vocab = hp.n_vocab;
    d.n_ctx_train = hp.n_ctx_train;
    d.n_embd = hp.n_embd;
    d.n_layer = hp.n_layer;
    d.n_head = hp.n_head;
    d.n_head_kv = hp.n_head_kv;
    d.head_dim = hp.head_dim;
    d.n_ff = hp.n_ff;
    d.n_threads = model->m->n_threads();
    d.rope_freq_base = hp.rope_freq_base;
    d.norm_eps = hp.norm_eps;
    d.n_params = model->m->n_params();
    d.weight_bytes = model->m->weight_bytes();
    *out = d;
    return ENDLESS_OK;
}

/* ---- metadata ---- */

endless_status endless_gguf_open(const char *path, endless_gguf **out) {
    REQUIRE(path && *path, "path is empty");
    REQUIRE(out, "out is null");
    *out = nullptr;
    return guarded([&] {
        auto g = std::make_unique<endless_gguf>();
        g->owned = gguf_file::open(path);
        g->file = g->owned.get();
        *out = g.release();
    });
}

void endless_gguf_free(endless_gguf *gguf) { delete gguf; }

const endless_gguf *endless_model_gguf(const endless_model *model) { return model ? &model->meta : nullptr; }

int64_t endless_gguf_meta_count(const endless_gguf *gguf) { return gguf ? (int64_t)gguf->file->kvs().size() : 0; }

const char *endless_gguf_meta_key(const endless_gguf *gguf, int64_t i) {
    if (!gguf || i < 0 || i >= (int64_t)gguf->file->kvs().size()) return nullptr;
    return gguf->file->kvs()[i].key.c_str();
}

int64_t endless_gguf_meta_find(const endless_gguf *gguf, const char *key) {
    if (!gguf || !key) return -1;
    const gguf_kv *kv = gguf->file->find(key);
    return kv ? (int64_t)(kv - gguf->file->kvs().data()) : -1;
}

endless_status endless_gguf_meta_info(const endless_gguf *gguf, int64_t i, uint32_t *type, uint32_t *elem_type, uint64_t *length) {
    REQUIRE(gguf && i >= 0 && i < (int64_t)gguf->file->kvs().size(), "metadata index out of range");
    const gguf_kv &kv = gguf->file->kvs()[i];
    if (type) *type = kv.type;
    if (elem_type) *elem_type = kv.elem_type;
    if (length) *length = kv.n;
    return ENDLESS_OK;
}

endless_status endless_gguf_meta_get(const endless_gguf *gguf, int64_t i, uint64_t j, endless_meta_value *out) {
    REQUIRE(gguf && out && i >= 0 && i < (int64_t)gguf->file->kvs().size(), "metadata index out of range");
    const gguf_kv &kv = gguf->file->kvs()[i];
    REQUIRE(j < kv.n, "metadata element index out of range");
    return guarded([&] {
        endless_meta_value v{};
        v.type = kv.elem_type;
        if (kv.elem_type == GGUF_TYPE_STRING) {
            std::string_view s = kv.get_string(j);
            v.s = s.data();
            v.s_len = s.size();
        } else if (kv.elem_type == GGUF_TYPE_FLOAT32 || kv.elem_type == GGUF_TYPE_FLOAT64) {
            v.f = kv.get_float(j);
        } else {
            if (kv.elem_type == GGUF_TYPE_UINT64) {
                v.u = kv.get_uint(j);
                v.i = (int64_t)v.u;
                v.f = (double)v.u;
            } else {
                v.i = kv.get_int(j);
                v.u = (uint64_t)v.i;
                v.f = (double)v.i;
            }
        }
        *out = v;
    });
}

/* ---- sessions ---- */

endless_session_params endless_session_default_params(void) {
    endless_session_params p{};
    p.n_sinks = -1;
    p.n_window = 0;
    p.n_memory_max = 0;
    p.n_branch_max = 512;
    p.n_batch = 256;
    return p;
}

endless_status endless_session_create(endless_model *model, const endless_session_params *params, endless_session **out) {
    REQUIRE(model && out, "null argument");
    *out = nullptr;
    endless_session_params p = params ? *params : endless_session_default_params();
    cache_params cp;
    cp.n_sinks = p.n_sinks < 0 ? 4 : p.n_sinks;
    cp.n_window = p.n_window > 0 ? p.n_window : std::max(1, model->m->hparams().n_ctx_train - cp.n_sinks);
    cp.n_memory_max = p.n_memory_max;
    cp.n_branch_max = p.n_branch_max > 0 ? p.n_branch_max : 512;
    cp.n_batch = p.n_batch > 0 ? p.n_batch : 256;
    REQUIRE(cp.n_sinks <= 1024, "n_sinks must be between 0 and 1024");
    REQUIRE(cp.n_window <= (1 << 24), "n_window must be at most 16M");
    REQUIRE(cp.n_memory_max >= 0 && cp.n_memory_max <= (1 << 20), "n_memory_max out of range");
    REQUIRE(cp.n_branch_max <= (1 << 20), "n_branch_max out of range");
    REQUIRE(cp.n_batch <= 8192, "n_batch must be at most 8192");
    return guarded([&] {
        auto h = std::make_unique<endless_session>();
        h->s = std::make_unique<session>(*model->m, cp);
        *out = h.release();
    });
}

void endless_session_free(endless_session *session) { delete session; }

endless_status endless_session_decode(endless_session *session, const int32_t *tokens, int32_t n, endless_logits_mode mode,
                                      float *logits, const volatile int32_t *cancel) {
    REQUIRE(session, "session is null");
    REQUIRE(mode >= ENDLESS_LOGITS_NONE && mode <= ENDLESS_LOGITS_ALL, "unknown logits mode");
    return guarded([&] { session->s->decode(tokens, n, mode, logits, cancel); });
}

endless_status endless_session_last_logits(const endless_session *session, float *out) {
    REQUIRE(session && out, "null argument");
    return guarded([&] {
        const auto &l = session->s->last_logits();
        std::memcpy(out, l.data(), l.size() * sizeof(float));
    });
}

endless_status endless_session_branch_begin(endless_session *session) {
    REQUIRE(session, "session is null");
    return guarded([&] { session->s->branch_begin(); });
}

endless_status endless_session_branch_discard(endless_session *session) {
    REQUIRE(session, "session is null");
    return guarded([&] { session->s->branch_discard(); });
}

endless_status endless_session_branch_commit(endless_session *session) {
    REQUIRE(session, "session is null");
    return guarded([&] { session->s->branch_commit(); });
}

endless_status endless_session_set_memory(endless_session *session, const int32_t *tokens, int32_t n, const volatile int32_t *cancel) {
    REQUIRE(session, "session is null");
    return guarded([&] { session->s->set_memory(tokens, n, cancel); });
}

endless_status endless_session_clear(endless_session *session) {
    REQUIRE(session, "session is null");
    return guarded([&] { session->s->clear(); });
}

endless_status endless_session_stats_get(const endless_session *session, endless_session_stats *out) {
    REQUIRE(session && out, "null argument");
    *out = session->s->stats();
    return ENDLESS_OK;
}

int32_t endless_session_tokens(const endless_session *session, int32_t *out, int32_t cap) {
    if (!session) return 0;
    std::vector<int32_t> t = session->s->tokens();
    if (out && cap > 0 && !t.empty()) std::memcpy(out, t.data(), std::min<size_t>(cap, t.size()) * sizeof(int32_t));
    return (int32_t)t.size();
}

endless_status endless_session_save(const endless_session *session, const char *path) {
    REQUIRE(session && path && *path, "null argument");
    return guarded([&] { session->s->save(path); });
}

endless_status endless_session_restore(endless_session *session, const char *path) {
    REQUIRE(session && path && *path, "null argument");
    return guarded([&] { session->s->restore(path); });
}

/* ---- sampling ---- */

endless_sampler_params endless_sampler_default_params(void) {
    endless_sampler_params p{};
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

endless_status endless_sampler_create(const endless_sampler_params *params, endless_sampler **out) {
    REQUIRE(out, "out is null");
    endless_sampler_params p = params ? *params : endless_sampler_default_params();
    REQUIRE(p.temperature == p.temperature && p.temperature <= 100.0f, "temperature out of range");
    REQUIRE(p.top_p == p.top_p && p.min_p == p.min_p && p.min_p <= 1.0f, "top_p/min_p out of range");
    REQUIRE(p.repeat_penalty > 0.0f && p.repeat_penalty <= 100.0f, "repeat_penalty must be > 0");
    return guarded([&] { *out = new endless_sampler(p); });
}

void endless_sampler_free(endless_sampler *sampler) { delete sampler; }

int32_t endless_sampler_sample(endless_sampler *sampler, const float *logits, int32_t n_vocab, const int32_t *recent, int32_t n_recent) {
    if (!sampler || !logits || n_vocab <= 0) return -1;
    return sampler->s.sample(logits, n_vocab, recent, n_recent);
}

endless_status endless_session_generate(endless_session *session, endless_sampler *sampler, int32_t max_tokens, const int32_t *stop,
                                        int32_t n_stop, endless_token_fn on_token, void *user_data, const volatile int32_t *cancel,
                                        int32_t *n_out) {
    REQUIRE(session && sampler, "null argument");
    if (n_out) *n_out = 0;
    int produced = 0;
    struct counter { endless_token_fn fn; void *ud; int *n; };
    counter c{on_token, user_data, &produced};
    auto cb = [](int32_t tok, void *ud) -> int {
        auto *c = static_cast<counter *>(ud);
        (*c->n)++;
        return c->fn ? c->fn(tok, c->ud) : 0;
    };
    endless_status st = guarded([&] { session->s->generate(sampler->s, max_tokens, stop, n_stop, cb, &c, cancel); });
    if (n_out) *n_out = produced;
    return st;
}

/* ---- system ---- */

const char *endless_system_info(void) {
    static std::string info = [] {
        std::string s = std::string("cpu:") + cpu_isa_name(cpu_detect_isa());
#ifdef ENDLESS_WITH_CUDA
        s += ",cuda-build";
#endif
        return s;
    }();
    return info.c_str();
}

int32_t endless_cuda_device_count(void) {
#ifdef ENDLESS_WITH_CUDA
    try {
        return backend_cuda_device_count();
    } catch (...) {
        return 0;
    }
#else
    return 0;
#endif
}

}  // extern "C"
