// The Node binding of the Endless engine: the only file that includes napi.h.
//
// It converts JS values into the C API's plain structs, runs every piece of model work on a libuv
// worker thread (AsyncWorker, AsyncProgressWorker for load progress, AsyncProgressQueueWorker for
// streamed tokens) and converts results back. Arguments are validated in TypeScript
// (server/engine/index.ts); this file checks only what it needs to stay memory-safe.
//
// Lifetimes: native handles live in shared_ptr boxes. A JS wrapper owns one reference, every
// worker in flight owns another, so dispose() or garbage collection during a call never frees a
// handle under a worker. A session's box holds its model's box: the model outlives its sessions.
// Cancellation: a CancelToken owns an int32 flag that the C API polls through a
// `const volatile int32_t *`; cancel() sets it from the JS thread.
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "endless.h"

namespace {

// ---- per-environment state ------------------------------------------------------------------

struct addon_data {
    Napi::FunctionReference model_ctor;
    Napi::FunctionReference session_ctor;
    Napi::FunctionReference sampler_ctor;
    Napi::FunctionReference cancel_ctor;
};

addon_data &addon_get_data(Napi::Env env) { return *env.GetInstanceData<addon_data>(); }

// ---- errors ---------------------------------------------------------------------------------

Napi::Error addon_make_error(Napi::Env env, endless_status status, const std::string &message) {
    const char *name = endless_status_name(status);
    std::string text = message.empty() ? std::string(name ? name : "error") : message;
    Napi::Error err = Napi::Error::New(env, text);
    err.Set("code", Napi::String::New(env, name ? name : "ENDLESS_ERR_INTERNAL"));
    err.Set("status", Napi::Number::New(env, static_cast<double>(status)));
    return err;
}

// Reads the calling thread's last error: call it on the thread that made the failing call.
std::string addon_last_error() {
    const char *e = endless_last_error();
    return e ? std::string(e) : std::string();
}

[[noreturn]] void addon_throw_status(Napi::Env env, endless_status status) {
    throw addon_make_error(env, status, addon_last_error());
}

[[noreturn]] void addon_throw_disposed(Napi::Env env, const char *what) {
    throw addon_make_error(env, ENDLESS_ERR_STATE, std::string(what) + " has been disposed");
}

// ---- cancel flags ---------------------------------------------------------------------------

struct cancel_flag {
    volatile int32_t value = 0;
    void set() { __atomic_store_n(&value, 1, __ATOMIC_SEQ_CST); }
    bool is_set() const { return __atomic_load_n(&value, __ATOMIC_SEQ_CST) != 0; }
};
using cancel_ptr = std::shared_ptr<cancel_flag>;

class cancel_wrap : public Napi::ObjectWrap<cancel_wrap> {
public:
    static Napi::Function addon_define(Napi::Env env) {
        return DefineClass(env, "CancelToken",
                           {InstanceMethod<&cancel_wrap::cancel>("cancel"),
                            InstanceAccessor<&cancel_wrap::cancelled>("cancelled")});
    }
    explicit cancel_wrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<cancel_wrap>(info), flag_(std::make_shared<cancel_flag>()) {}
    cancel_ptr flag() const { return flag_; }

private:
    Napi::Value cancel(const Napi::CallbackInfo &info) {
        flag_->set();
        return info.Env().Undefined();
    }
    Napi::Value cancelled(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), flag_->is_set()); }
    cancel_ptr flag_;
};

// undefined/null: a private flag nobody sets; otherwise a CancelToken.
cancel_ptr addon_get_cancel(Napi::Env env, Napi::Value v) {
    if (v.IsUndefined() || v.IsNull()) return std::make_shared<cancel_flag>();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_get_data(env).cancel_ctor.Value()))
        throw Napi::TypeError::New(env, "cancel must be a CancelToken");
    return cancel_wrap::Unwrap(v.As<Napi::Object>())->flag();
}

// ---- argument helpers (the TypeScript side has validated the values) -----------------------

std::string addon_get_string(const Napi::CallbackInfo &info, size_t i, const char *what) {
    if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
    return info[i].As<Napi::String>().Utf8Value();
}

double addon_get_number(const Napi::CallbackInfo &info, size_t i, const char *what) {
    if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
    return info[i].As<Napi::Number>().DoubleValue();
}

std::vector<int32_t> addon_get_tokens(const Napi::CallbackInfo &info, size_t i, const char *what) {
    if (i >= info.Length() || !info[i].IsTypedArray() ||
        info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an Int32Array");
    Napi::Int32Array a = info[i].As<Napi::Int32Array>();
    return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// Optional numeric field of an options object.
bool addon_opt_number(Napi::Object o, const char *key, double *out) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) return false;
    *out = v.As<Napi::Number>().DoubleValue();
    return true;
}

// ---- metadata ---------------------------------------------------------------------------------

constexpr uint32_t GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6,
                   GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11, GGUF_F64 = 12;

// A double represents every integer of magnitude up to 2^53 exactly; beyond that, a bigint.
constexpr uint64_t addon_max_safe = (uint64_t(1) << 53);

// Raw napi calls here: a vocabulary is ~150k strings and the C++ wrappers' per-call checks add up.
napi_value addon_meta_scalar(napi_env env, uint32_t type, const endless_meta_value &v) {
    napi_value out = nullptr;
    switch (type) {
    case GGUF_U8: case GGUF_U16: case GGUF_U32: case GGUF_U64:
        if (v.u <= addon_max_safe) napi_create_double(env, static_cast<double>(v.u), &out);
        else napi_create_bigint_uint64(env, v.u, &out);
        break;
    case GGUF_I8: case GGUF_I16: case GGUF_I32: case GGUF_I64:
        if (v.i <= int64_t(addon_max_safe) && v.i >= -int64_t(addon_max_safe)) napi_create_double(env, static_cast<double>(v.i), &out);
        else napi_create_bigint_int64(env, v.i, &out);
        break;
    case GGUF_F32: case GGUF_F64:
        napi_create_double(env, v.f, &out);
        break;
    case GGUF_BOOL:
        napi_get_boolean(env, v.i != 0, &out);
        break;
    case GGUF_STRING:
        napi_create_string_utf8(env, v.s ? v.s : "", static_cast<size_t>(v.s ? v.s_len : 0), &out);
        break;
    default:
        napi_get_undefined(env, &out);
    }
    return out;
}

// A long string array (a vocabulary): one JS string of all elements joined by NUL, split in JS,
// is several times faster than one napi string per element. Elements that contain a NUL byte
// themselves fall back to the element-by-element path.
Napi::Value addon_meta_string_array(Napi::Env env, const endless_gguf *g, int64_t i, uint64_t len) {
    std::string joined;
    endless_meta_value v{};
    bool has_nul = false;
    for (uint64_t j = 0; j < len && !has_nul; j++) {
        endless_status st = endless_gguf_meta_get(g, i, j, &v);
        if (st != ENDLESS_OK) addon_throw_status(env, st);
        if (j) joined.push_back('\0');
        if (v.s_len && std::memchr(v.s, 0, v.s_len)) has_nul = true;
        else if (v.s_len) joined.append(v.s, v.s_len);
    }
    if (!has_nul) {
        Napi::String s = Napi::String::New(env, joined);
        Napi::Function split = s.ToObject().Get("split").As<Napi::Function>();
        Napi::Value parts = split.Call(s, {Napi::String::New(env, std::string(1, '\0'))});
        if (parts.IsArray() && parts.As<Napi::Array>().Length() == len) return parts;
    }
    napi_value arr;
    napi_create_array_with_length(env, static_cast<size_t>(len), &arr);
    for (uint64_t j = 0; j < len; j++) {
        endless_status st = endless_gguf_meta_get(g, i, j, &v);
        if (st != ENDLESS_OK) addon_throw_status(env, st);
        napi_set_element(env, arr, static_cast<uint32_t>(j), addon_meta_scalar(env, GGUF_STRING, v));
    }
    return Napi::Value(env, arr);
}

Napi::Object addon_meta_to_js(Napi::Env env, const endless_gguf *g) {
    Napi::Object obj = Napi::Object::New(env);
    int64_t n = endless_gguf_meta_count(g);
    for (int64_t i = 0; i < n; i++) {
        const char *key = endless_gguf_meta_key(g, i);
        if (!key) continue;
        uint32_t type = 0, elem = 0;
        uint64_t len = 0;
        endless_status st = endless_gguf_meta_info(g, i, &type, &elem, &len);
        if (st != ENDLESS_OK) addon_throw_status(env, st);
        endless_meta_value v{};
        if (type == GGUF_ARRAY) {
            if (len > 0xFFFFFFFFull) throw addon_make_error(env, ENDLESS_ERR_FORMAT, std::string("metadata array too long: ") + key);
            if (elem == GGUF_STRING && len > 64) {
                obj.Set(key, addon_meta_string_array(env, g, i, len));
                continue;
            }
            napi_value arr;
            napi_create_array_with_length(env, static_cast<size_t>(len), &arr);
            for (uint64_t j = 0; j < len; j++) {
                st = endless_gguf_meta_get(g, i, j, &v);
                if (st != ENDLESS_OK) addon_throw_status(env, st);
                napi_set_element(env, arr, static_cast<uint32_t>(j), addon_meta_scalar(env, elem, v));
            }
            obj.Set(key, Napi::Value(env, arr));
        } else {
            st = endless_gguf_meta_get(g, i, 0, &v);
            if (st != ENDLESS_OK) addon_throw_status(env, st);
            obj.Set(key, Napi::Value(env, addon_meta_scalar(env, type, v)));
        }
    }
    return obj;
}

// ---- native handle boxes ---------------------------------------------------------------------

struct model_box {
    endless_model *model = nullptr;
    ~model_box() { if (model) endless_model_free(model); }
};

struct session_box {
    std::shared_ptr<model_box> model;  // keeps the model alive while the session exists
    endless_session *session = nullptr;
    int32_t n_vocab = 0;
    bool busy = false;                 // JS thread only: a worker owns the session
    cancel_ptr current_cancel;         // JS thread only: the flag of the call in flight
    // Stats and tokens as of the last completed call, so stats()/tokens() never touch the
    // native session while a worker runs on it.
    std::mutex mutex;
    endless_session_stats stats{};
    std::vector<int32_t> tokens;

    // Worker thread (or JS thread while idle).
    void refresh() {
        endless_session_stats s{};
        endless_session_stats_get(session, &s);
        std::vector<int32_t> t(static_cast<size_t>(s.n_sinks) + s.n_memory + s.n_window + s.n_branch + 16);
        int32_t n = endless_session_tokens(session, t.data(), static_cast<int32_t>(t.size()));
        if (n > static_cast<int32_t>(t.size())) {
            t.resize(static_cast<size_t>(n));
            n = endless_session_tokens(session, t.data(), n);
        }
        t.resize(static_cast<size_t>(n < 0 ? 0 : n));
        std::lock_guard<std::mutex> lock(mutex);
        stats = s;
        tokens.swap(t);
    }
    ~session_box() { if (session) endless_session_free(session); }
};

struct sampler_box {
    endless_sampler *sampler = nullptr;
    bool busy = false;
    ~sampler_box() { if (sampler) endless_sampler_free(sampler); }
};

// ---- a promise-returning worker -------------------------------------------------------------

// Runs work() then after() on a worker thread and settles a promise: rejects with the native
// error, or resolves with result() built on the JS thread. done() runs on the JS thread either way.
class promise_worker : public Napi::AsyncWorker {
public:
    using work_fn = std::function<endless_status()>;
    using result_fn = std::function<Napi::Value(Napi::Env)>;
    using done_fn = std::function<void()>;

    promise_worker(Napi::Env env, const char *name, work_fn work, done_fn after, result_fn result, done_fn done)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
          after_(std::move(after)), result_(std::move(result)), done_(std::move(done)) {}

    Napi::Promise promise() const { return deferred_.Promise(); }

protected:
    void Execute() override {
        try {
            status_ = work_();
            // read the error text before after_ makes more C API calls on this thread
            if (status_ != ENDLESS_OK) message_ = addon_last_error();
            if (after_) after_();
        } catch (const std::exception &e) {
            status_ = ENDLESS_ERR_INTERNAL;
            message_ = e.what();
        }
    }
    void OnOK() override {
        Napi::Env env = Env();
        if (done_) done_();
        if (status_ != ENDLESS_OK) {
            deferred_.Reject(addon_make_error(env, status_, message_).Value());
            return;
        }
        try {
            deferred_.Resolve(result_ ? result_(env) : env.Undefined());
        } catch (const Napi::Error &e) {
            deferred_.Reject(e.Value());
        }
    }
    void OnError(const Napi::Error &e) override {
        if (done_) done_();
        deferred_.Reject(e.Value());
    }

private:
    Napi::Promise::Deferred deferred_;
    work_fn work_;
    done_fn after_;
    result_fn result_;
    done_fn done_;
    endless_status status_ = ENDLESS_OK;
    std::string message_;
};

// ---- model ------------------------------------------------------------------------------------

Napi::Object addon_describe_to_js(Napi::Env env, const endless_model_desc &d) {
    Napi::Object o = Napi::Object::New(env);
    auto str = [&](const char *s) { return Napi::String::New(env, s ? s : ""); };
    o.Set("architecture", str(d.architecture));
    o.Set("name", str(d.name));
    o.Set("device", str(d.device));
    o.Set("fingerprint", str(d.fingerprint));
    o.Set("notice", str(d.notice));
    o.Set("fileType", str(d.file_type));
    o.Set("nVocab", Napi::Number::New(env, d.n_vocab));
    o.Set("nCtxTrain", Napi::Number::New(env, d.n_ctx_train));
    o.Set("nEmbd", Napi::Number::New(env, d.n_embd));
    o.Set("nLayer", Napi::Number::New(env, d.n_layer));
    o.Set("nHead", Napi::Number::New(env, d.n_head));
    o.Set("nHeadKv", Napi::Number::New(env, d.n_head_kv));
    o.Set("headDim", Napi::Number::New(env, d.head_dim));
    o.Set("nFf", Napi::Number::New(env, d.n_ff));
    o.Set("nThreads", Napi::Number::New(env, d.n_threads));
    o.Set("ropeFreqBase", Napi::Number::New(env, d.rope_freq_base));
    o.Set("normEps", Napi::Number::New(env, d.norm_eps));
    o.Set("nParams", Napi::Number::New(env, static_cast<double>(d.n_params)));
    o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(d.weight_bytes)));
    return o;
}

Napi::Object addon_stats_to_js(Napi::Env env, const endless_session_stats &s) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("seen", Napi::Number::New(env, static_cast<double>(s.n_seen)));
    o.Set("evicted", Napi::Number::New(env, static_cast<double>(s.n_evicted)));
    o.Set("processed", Napi::Number::New(env, static_cast<double>(s.n_processed)));
    o.Set("reused", Napi::Number::New(env, static_cast<double>(s.n_reused)));
    o.Set("sinks", Napi::Number::New(env, s.n_sinks));
    o.Set("sinksMax", Napi::Number::New(env, s.n_sinks_max));
    o.Set("memory", Napi::Number::New(env, s.n_memory));
    o.Set("memoryMax", Napi::Number::New(env, s.n_memory_max));
    o.Set("window", Napi::Number::New(env, s.n_window));
    o.Set("windowMax", Napi::Number::New(env, s.n_window_max));
    o.Set("branch", Napi::Number::New(env, s.n_branch));
    o.Set("branchMax", Napi::Number::New(env, s.n_branch_max));
    o.Set("branchOpen", Napi::Boolean::New(env, s.branch_open != 0));
    o.Set("nVocab", Napi::Number::New(env, s.n_vocab));
    o.Set("cacheBytes", Napi::Number::New(env, static_cast<double>(s.cache_bytes)));
    return o;
}

class session_wrap;

class model_wrap : public Napi::ObjectWrap<model_wrap> {
public:
    static Napi::Function addon_define(Napi::Env env) {
        return DefineClass(env, "Model",
                           {InstanceMethod<&model_wrap::describe>("describe"),
                            InstanceMethod<&model_wrap::metadata>("metadata"),
                            InstanceMethod<&model_wrap::create_session>("createSession"),
                            InstanceMethod<&model_wrap::dispose>("dispose"),
                            InstanceAccessor<&model_wrap::disposed>("disposed")});
    }

    // Constructed only by loadModel, which passes the box in an External.
    explicit model_wrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<model_wrap>(info) {
        if (info.Length() < 1 || !info[0].IsExternal())
            throw Napi::TypeError::New(info.Env(), "Model cannot be constructed directly; use loadModel()");
        auto *holder = info[0].As<Napi::External<std::shared_ptr<model_box>>>().Data();
        box_ = *holder;
        if (endless_model_describe(box_->model, &desc_) != ENDLESS_OK) addon_throw_status(info.Env(), ENDLESS_ERR_INTERNAL);
    }

private:
    model_box &live(Napi::Env env) {
        if (!box_) addon_throw_disposed(env, "model");
        return *box_;
    }
    Napi::Value describe(const Napi::CallbackInfo &info) {
        live(info.Env());
        return addon_describe_to_js(info.Env(), desc_);
    }
    Napi::Value metadata(const Napi::CallbackInfo &info) {
        const endless_gguf *g = endless_model_gguf(live(info.Env()).model);
        if (!g) throw addon_make_error(info.Env(), ENDLESS_ERR_INTERNAL, "model has no metadata");
        return addon_meta_to_js(info.Env(), g);
    }
    Napi::Value create_session(const Napi::CallbackInfo &info);
    Napi::Value dispose(const Napi::CallbackInfo &info) {
        box_.reset();  // sessions still hold the model; it is freed with the last of them
        return info.Env().Undefined();
    }
    Napi::Value disposed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !box_); }

    std::shared_ptr<model_box> box_;
    endless_model_desc desc_{};
};

// Loads a model on a worker, reporting progress (coalesced: only the latest fraction matters).
class load_worker : public Napi::AsyncProgressWorker<float> {
public:
    load_worker(Napi::Env env, std::string path, endless_model_params params, cancel_ptr cancel, Napi::Value on_progress)
        : Napi::AsyncProgressWorker<float>(env, "endless.load"), deferred_(Napi::Promise::Deferred::New(env)),
          path_(std::move(path)), params_(params), cancel_(std::move(cancel)) {
        if (on_progress.IsFunction()) on_progress_ = Napi::Persistent(on_progress.As<Napi::Function>());
    }
    Napi::Promise promise() const { return deferred_.Promise(); }

protected:
    struct progress_ctx {
        const ExecutionProgress *progress;
        cancel_flag *cancel;
    };
    static int on_native_progress(float fraction, void *user) {
        auto *ctx = static_cast<progress_ctx *>(user);
        ctx->progress->Send(&fraction, 1);
        return ctx->cancel->is_set() ? 1 : 0;
    }
    void Execute(const ExecutionProgress &progress) override {
        progress_ctx ctx{&progress, cancel_.get()};
        endless_model_params p = params_;
        p.progress = &load_worker::on_native_progress;
        p.progress_user_data = &ctx;
        endless_model *m = nullptr;
        if (cancel_->is_set()) {
            status_ = ENDLESS_ERR_CANCELLED;
            message_ = "model load cancelled";
            return;
        }
        status_ = endless_model_load(path_.c_str(), &p, &m);
        if (status_ != ENDLESS_OK) {
            message_ = addon_last_error();
            if (m) endless_model_free(m);
            return;
        }
        box_ = std::make_shared<model_box>();
        box_->model = m;
    }
    void OnProgress(const float *data, size_t count) override {
        if (!data || count == 0 || on_progress_.IsEmpty()) return;
        try {
            on_progress_.Call({Napi::Number::New(Env(), data[count - 1])});
        } catch (const Napi::Error &) {
            // a throwing progress callback must not take the load down; the TS side reports it
        }
    }
    void OnOK() override {
        Napi::Env env = Env();
        if (status_ != ENDLESS_OK) {
            deferred_.Reject(addon_make_error(env, status_, message_).Value());
            return;
        }
        try {
            auto holder = std::make_unique<std::shared_ptr<model_box>>(box_);
            Napi::Object obj = addon_get_data(env).model_ctor.New({Napi::External<std::shared_ptr<model_box>>::New(env, holder.get())});
            box_.reset();
            deferred_.Resolve(obj);
        } catch (const Napi::Error &e) {
            deferred_.Reject(e.Value());
        }
    }
    void OnError(const Napi::Error &e) override { deferred_.Reject(e.Value()); }

private:
    Napi::Promise::Deferred deferred_;
    std::string path_;
    endless_model_params params_;
    cancel_ptr cancel_;
    Napi::FunctionReference on_progress_;
    std::shared_ptr<model_box> box_;
    endless_status status_ = ENDLESS_OK;
    std::string message_;
};

// ---- sampler ----------------------------------------------------------------------------------

class sampler_wrap : public Napi::ObjectWrap<sampler_wrap> {
public:
    static Napi::Function addon_define(Napi::Env env) {
        return DefineClass(env, "Sampler",
                           {InstanceMethod<&sampler_wrap::sample>("sample"),
                            InstanceMethod<&sampler_wrap::dispose>("dispose")});
    }
    // new Sampler({temperature, topK, topP, minP, repeatPenalty, repeatLastN, seed}); absent
    // fields keep endless_sampler_default_params().
    explicit sampler_wrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<sampler_wrap>(info) {
        Napi::Env env = info.Env();
        endless_sampler_params p = endless_sampler_default_params();
        if (info.Length() > 0 && info[0].IsObject()) {
            Napi::Object o = info[0].As<Napi::Object>();
            double v;
            if (addon_opt_number(o, "temperature", &v)) p.temperature = static_cast<float>(v);
            if (addon_opt_number(o, "topK", &v)) p.top_k = static_cast<int32_t>(v);
            if (addon_opt_number(o, "topP", &v)) p.top_p = static_cast<float>(v);
            if (addon_opt_number(o, "minP", &v)) p.min_p = static_cast<float>(v);
            if (addon_opt_number(o, "repeatPenalty", &v)) p.repeat_penalty = static_cast<float>(v);
            if (addon_opt_number(o, "repeatLastN", &v)) p.repeat_last_n = static_cast<int32_t>(v);
            if (addon_opt_number(o, "seed", &v)) p.seed = static_cast<uint64_t>(v);
        }
        box_ = std::make_shared<sampler_box>();
        endless_status st = endless_sampler_create(&p, &box_->sampler);
        if (st != ENDLESS_OK) addon_throw_status(env, st);
    }
    std::shared_ptr<sampler_box> box(Napi::Env env) {
        if (!box_) addon_throw_disposed(env, "sampler");
        return box_;
    }

private:
    // sample(logits: Float32Array, recent?: Int32Array): number
    Napi::Value sample(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = box(env);
        if (b->busy) throw addon_make_error(env, ENDLESS_ERR_STATE, "sampler is in use by a running generate()");
        if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
            throw Napi::TypeError::New(env, "logits must be a Float32Array");
        Napi::Float32Array logits = info[0].As<Napi::Float32Array>();
        std::vector<int32_t> recent;
        if (info.Length() > 1 && !info[1].IsUndefined()) recent = addon_get_tokens(info, 1, "recent");
        int32_t t = endless_sampler_sample(b->sampler, logits.Data(), static_cast<int32_t>(logits.ElementLength()),
                                           recent.data(), static_cast<int32_t>(recent.size()));
        if (t < 0) throw addon_make_error(env, ENDLESS_ERR_INVALID_ARGUMENT, addon_last_error());
        return Napi::Number::New(env, t);
    }
    Napi::Value dispose(const Napi::CallbackInfo &info) {
        box_.reset();
        return info.Env().Undefined();
    }
    std::shared_ptr<sampler_box> box_;
};

// ---- session ----------------------------------------------------------------------------------

// Streams generated tokens to JS as they come; all are delivered before the promise settles.
class generate_worker : public Napi::AsyncProgressQueueWorker<int32_t> {
public:
    generate_worker(Napi::Env env, std::shared_ptr<session_box> session, std::shared_ptr<sampler_box> sampler,
                    int32_t max_tokens, std::vector<int32_t> stop, Napi::Value on_token, cancel_ptr cancel)
        : Napi::AsyncProgressQueueWorker<int32_t>(env, "endless.generate"), deferred_(Napi::Promise::Deferred::New(env)),
          session_(std::move(session)), sampler_(std::move(sampler)), max_tokens_(max_tokens), stop_(std::move(stop)),
          cancel_(std::move(cancel)) {
        if (on_token.IsFunction()) on_token_ = Napi::Persistent(on_token.As<Napi::Function>());
        session_->busy = true;
        session_->current_cancel = cancel_;
        sampler_->busy = true;
    }
    Napi::Promise promise() const { return deferred_.Promise(); }

protected:
    struct token_ctx {
        const ExecutionProgress *progress;
        std::vector<int32_t> *tokens;
    };
    static int on_native_token(int32_t token, void *user) {
        auto *ctx = static_cast<token_ctx *>(user);
        ctx->tokens->push_back(token);
        ctx->progress->Send(&token, 1);
        return 0;
    }
    void Execute(const ExecutionProgress &progress) override {
        token_ctx ctx{&progress, &tokens_};
        int32_t n_out = 0;
        try {
            status_ = endless_session_generate(session_->session, sampler_->sampler, max_tokens_, stop_.data(),
                                               static_cast<int32_t>(stop_.size()), &generate_worker::on_native_token, &ctx,
                                               &cancel_->value, &n_out);
            if (status_ != ENDLESS_OK && status_ != ENDLESS_ERR_CANCELLED) message_ = addon_last_error();
            session_->refresh();
        } catch (const std::exception &e) {
            status_ = ENDLESS_ERR_INTERNAL;
            message_ = e.what();
        }
    }
    void OnProgress(const int32_t *data, size_t count) override {
        if (!data || on_token_.IsEmpty() || callback_failed_) return;
        Napi::Env env = Env();
        for (size_t i = 0; i < count; i++) {
            try {
                on_token_.Call({Napi::Number::New(env, data[i])});
            } catch (const Napi::Error &e) {
                // a throwing onToken stops generation and becomes the call's error
                callback_error_ = Napi::Persistent(Napi::Value(e.Value()));
                callback_failed_ = true;
                cancel_->set();
                return;
            }
        }
    }
    void release() {
        session_->busy = false;
        session_->current_cancel.reset();
        sampler_->busy = false;
    }
    void OnOK() override {
        Napi::Env env = Env();
        release();
        if (callback_failed_) {
            deferred_.Reject(callback_error_.Value());
            return;
        }
        if (status_ != ENDLESS_OK && status_ != ENDLESS_ERR_CANCELLED) {
            deferred_.Reject(addon_make_error(env, status_, message_).Value());
            return;
        }
        const char *reason = "length";
        if (status_ == ENDLESS_ERR_CANCELLED) {
            reason = "cancelled";
        } else if (!tokens_.empty()) {
            for (int32_t s : stop_)
                if (s == tokens_.back()) reason = "stop";
        }
        Napi::Int32Array toks = Napi::Int32Array::New(env, tokens_.size());
        if (!tokens_.empty()) std::memcpy(toks.Data(), tokens_.data(), tokens_.size() * sizeof(int32_t));
        Napi::Object r = Napi::Object::New(env);
        r.Set("tokens", toks);
        r.Set("reason", Napi::String::New(env, reason));
        deferred_.Resolve(r);
    }
    void OnError(const Napi::Error &e) override {
        release();
        deferred_.Reject(e.Value());
    }

private:
    Napi::Promise::Deferred deferred_;
    std::shared_ptr<session_box> session_;
    std::shared_ptr<sampler_box> sampler_;
    int32_t max_tokens_;
    std::vector<int32_t> stop_;
    cancel_ptr cancel_;
    Napi::FunctionReference on_token_;
    Napi::Reference<Napi::Value> callback_error_;
    bool callback_failed_ = false;
    std::vector<int32_t> tokens_;
    endless_status status_ = ENDLESS_OK;
    std::string message_;
};

class session_wrap : public Napi::ObjectWrap<session_wrap> {
public:
    static Napi::Function addon_define(Napi::Env env) {
        return DefineClass(env, "Session",
                           {InstanceMethod<&session_wrap::decode>("decode"),
                            InstanceMethod<&session_wrap::last_logits>("lastLogits"),
                            InstanceMethod<&session_wrap::branch_begin>("branchBegin"),
                            InstanceMethod<&session_wrap::branch_discard>("branchDiscard"),
                            InstanceMethod<&session_wrap::branch_commit>("branchCommit"),
                            InstanceMethod<&session_wrap::set_memory>("setMemory"),
                            InstanceMethod<&session_wrap::clear>("clear"),
                            InstanceMethod<&session_wrap::stats>("stats"),
                            InstanceMethod<&session_wrap::tokens>("tokens"),
                            InstanceMethod<&session_wrap::save>("save"),
                            InstanceMethod<&session_wrap::restore>("restore"),
                            InstanceMethod<&session_wrap::generate>("generate"),
                            InstanceMethod<&session_wrap::dispose>("dispose"),
                            InstanceAccessor<&session_wrap::disposed>("disposed"),
                            InstanceAccessor<&session_wrap::busy>("busy")});
    }

    explicit session_wrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<session_wrap>(info) {
        if (info.Length() < 1 || !info[0].IsExternal())
            throw Napi::TypeError::New(info.Env(), "Session cannot be constructed directly; use model.createSession()");
        box_ = *info[0].As<Napi::External<std::shared_ptr<session_box>>>().Data();
    }

private:
    // The session, checked to be alive and idle.
    std::shared_ptr<session_box> idle(Napi::Env env) {
        if (!box_) addon_throw_disposed(env, "session");
        if (box_->busy)
            throw addon_make_error(env, ENDLESS_ERR_STATE, "session is busy: another call is still running on it (calls must not overlap)");
        return box_;
    }

    // Queues work() on a worker with the session marked busy until it completes. The result
    // lambda is destroyed on the JS thread with the worker, so it may hold JS references.
    Napi::Value run(Napi::Env env, const char *name, std::shared_ptr<session_box> b, cancel_ptr cancel,
                    std::function<endless_status(session_box &)> work, promise_worker::result_fn result) {
        b->busy = true;
        b->current_cancel = cancel;
        auto *w = new promise_worker(
            env, name, [b, work]() { return work(*b); }, [b]() { b->refresh(); }, std::move(result),
            [b]() {
                b->busy = false;
                b->current_cancel.reset();
            });
        Napi::Promise p = w->promise();
        w->Queue();
        return p;
    }

    // decode(tokens: Int32Array, mode: 0|1|2, cancel?): Promise<Float32Array | null>
    Napi::Value decode(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        auto tokens = std::make_shared<std::vector<int32_t>>(addon_get_tokens(info, 0, "tokens"));
        int mode = static_cast<int>(addon_get_number(info, 1, "mode"));
        if (mode < 0 || mode > 2) throw Napi::RangeError::New(env, "mode must be 0 (none), 1 (last) or 2 (all)");
        cancel_ptr cancel = addon_get_cancel(env, info.Length() > 2 ? info[2] : env.Undefined());
        size_t rows = mode == ENDLESS_LOGITS_ALL ? tokens->size() : (mode == ENDLESS_LOGITS_LAST ? 1 : 0);
        size_t n_floats = rows * static_cast<size_t>(b->n_vocab);
        // The worker writes straight into a JS ArrayBuffer that JS sees only once it is done.
        float *out = nullptr;
        std::shared_ptr<Napi::Reference<Napi::Value>> ref;
        if (mode != ENDLESS_LOGITS_NONE) {
            Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n_floats * sizeof(float));
            out = static_cast<float *>(buf.Data());
            ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Napi::Value(buf)));
        }
        return run(
            env, "endless.decode", b, cancel,
            [tokens, mode, out, cancel](session_box &s) {
                return endless_session_decode(s.session, tokens->data(), static_cast<int32_t>(tokens->size()),
                                              static_cast<endless_logits_mode>(mode), out, &cancel->value);
            },
            [n_floats, ref](Napi::Env env) -> Napi::Value {
                if (!ref) return env.Null();
                return Napi::Float32Array::New(env, n_floats, ref->Value().As<Napi::ArrayBuffer>(), 0);
            });
    }

    // lastLogits(): Promise<Float32Array>
    Napi::Value last_logits(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        size_t n = static_cast<size_t>(b->n_vocab);
        Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, n * sizeof(float));
        float *out = static_cast<float *>(buf.Data());
        auto ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(Napi::Value(buf)));
        return run(
            env, "endless.lastLogits", b, nullptr,
            [out](session_box &s) { return endless_session_last_logits(s.session, out); },
            [ref, n](Napi::Env env) -> Napi::Value {
                return Napi::Float32Array::New(env, n, ref->Value().As<Napi::ArrayBuffer>(), 0);
            });
    }

    Napi::Value simple(const Napi::CallbackInfo &info, const char *name, endless_status (*fn)(endless_session *)) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        return run(env, name, b, nullptr, [fn](session_box &s) { return fn(s.session); }, nullptr);
    }
    Napi::Value branch_begin(const Napi::CallbackInfo &info) { return simple(info, "endless.branchBegin", endless_session_branch_begin); }
    Napi::Value branch_discard(const Napi::CallbackInfo &info) { return simple(info, "endless.branchDiscard", endless_session_branch_discard); }
    Napi::Value branch_commit(const Napi::CallbackInfo &info) { return simple(info, "endless.branchCommit", endless_session_branch_commit); }
    Napi::Value clear(const Napi::CallbackInfo &info) { return simple(info, "endless.clear", endless_session_clear); }

    // setMemory(tokens: Int32Array, cancel?): Promise<void>
    Napi::Value set_memory(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        auto tokens = std::make_shared<std::vector<int32_t>>(addon_get_tokens(info, 0, "tokens"));
        cancel_ptr cancel = addon_get_cancel(env, info.Length() > 1 ? info[1] : env.Undefined());
        return run(env, "endless.setMemory", b, cancel,
                   [tokens, cancel](session_box &s) {
                       return endless_session_set_memory(s.session, tokens->data(), static_cast<int32_t>(tokens->size()), &cancel->value);
                   },
                   nullptr);
    }

    Napi::Value save(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        std::string path = addon_get_string(info, 0, "path");
        return run(env, "endless.save", b, nullptr, [path](session_box &s) { return endless_session_save(s.session, path.c_str()); }, nullptr);
    }
    Napi::Value restore(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        std::string path = addon_get_string(info, 0, "path");
        return run(env, "endless.restore", b, nullptr, [path](session_box &s) { return endless_session_restore(s.session, path.c_str()); }, nullptr);
    }

    // generate(sampler: Sampler, maxTokens, stop: Int32Array, onToken?: (t) => void, cancel?)
    //   : Promise<{ tokens: Int32Array, reason: 'stop' | 'length' | 'cancelled' }>
    Napi::Value generate(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        auto b = idle(env);
        if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(addon_get_data(env).sampler_ctor.Value()))
            throw Napi::TypeError::New(env, "sampler must be a Sampler");
        auto sampler = sampler_wrap::Unwrap(info[0].As<Napi::Object>())->box(env);
        if (sampler->busy) throw addon_make_error(env, ENDLESS_ERR_STATE, "sampler is in use by another generate()");
        int32_t max_tokens = static_cast<int32_t>(addon_get_number(info, 1, "maxTokens"));
        std::vector<int32_t> stop = addon_get_tokens(info, 2, "stop");
        Napi::Value on_token = info.Length() > 3 ? info[3] : env.Undefined();
        cancel_ptr cancel = addon_get_cancel(env, info.Length() > 4 ? info[4] : env.Undefined());
        auto *w = new generate_worker(env, b, sampler, max_tokens, std::move(stop), on_token, cancel);
        Napi::Promise p = w->promise();
        w->Queue();
        return p;
    }

    Napi::Value stats(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!box_) addon_throw_disposed(env, "session");
        std::lock_guard<std::mutex> lock(box_->mutex);
        return addon_stats_to_js(env, box_->stats);
    }
    Napi::Value tokens(const Napi::CallbackInfo &info) {
        Napi::Env env = info.Env();
        if (!box_) addon_throw_disposed(env, "session");
        std::lock_guard<std::mutex> lock(box_->mutex);
        Napi::Int32Array a = Napi::Int32Array::New(env, box_->tokens.size());
        if (!box_->tokens.empty()) std::memcpy(a.Data(), box_->tokens.data(), box_->tokens.size() * sizeof(int32_t));
        return a;
    }
    // Frees the session once no worker uses it; a call in flight is cancelled.
    Napi::Value dispose(const Napi::CallbackInfo &info) {
        if (box_ && box_->current_cancel) box_->current_cancel->set();
        box_.reset();
        return info.Env().Undefined();
    }
    Napi::Value disposed(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), !box_); }
    Napi::Value busy(const Napi::CallbackInfo &info) { return Napi::Boolean::New(info.Env(), box_ && box_->busy); }

    std::shared_ptr<session_box> box_;
};

// createSession({sinks, window, memoryMax, branchMax, batch}): Session (allocates the cache)
Napi::Value model_wrap::create_session(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    model_box &m = live(env);
    endless_session_params p = endless_session_default_params();
    if (info.Length() > 0 && info[0].IsObject()) {
        Napi::Object o = info[0].As<Napi::Object>();
        double v;
        if (addon_opt_number(o, "sinks", &v)) p.n_sinks = static_cast<int32_t>(v);
        if (addon_opt_number(o, "window", &v)) p.n_window = static_cast<int32_t>(v);
        if (addon_opt_number(o, "memoryMax", &v)) p.n_memory_max = static_cast<int32_t>(v);
        if (addon_opt_number(o, "branchMax", &v)) p.n_branch_max = static_cast<int32_t>(v);
        if (addon_opt_number(o, "batch", &v)) p.n_batch = static_cast<int32_t>(v);
    }
    auto b = std::make_shared<session_box>();
    b->model = box_;
    endless_status st = endless_session_create(m.model, &p, &b->session);
    if (st != ENDLESS_OK) addon_throw_status(env, st);
    b->n_vocab = desc_.n_vocab;
    b->refresh();
    auto holder = std::make_unique<std::shared_ptr<session_box>>(b);
    return addon_get_data(env).session_ctor.New({Napi::External<std::shared_ptr<session_box>>::New(env, holder.get())});
}

// ---- module functions -----------------------------------------------------------------------

// loadModel(path, {threads, device}, onProgress?, cancel?): Promise<Model>
Napi::Value addon_load_model(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = addon_get_string(info, 0, "path");
    endless_model_params p = endless_model_default_params();
    if (info.Length() > 1 && info[1].IsObject()) {
        Napi::Object o = info[1].As<Napi::Object>();
        double v;
        if (addon_opt_number(o, "threads", &v)) p.n_threads = static_cast<int32_t>(v);
        if (addon_opt_number(o, "device", &v)) p.device = static_cast<endless_device>(static_cast<int>(v));
    }
    Napi::Value on_progress = info.Length() > 2 ? info[2] : env.Undefined();
    cancel_ptr cancel = addon_get_cancel(env, info.Length() > 3 ? info[3] : env.Undefined());
    auto *w = new load_worker(env, std::move(path), p, cancel, on_progress);
    Napi::Promise promise = w->promise();
    w->Queue();
    return promise;
}

// readGgufMetadata(path): { [key]: value } (metadata only; no tensor data is read)
Napi::Value addon_read_gguf_metadata(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = addon_get_string(info, 0, "path");
    endless_gguf *g = nullptr;
    endless_status st = endless_gguf_open(path.c_str(), &g);
    if (st != ENDLESS_OK) addon_throw_status(env, st);
    std::unique_ptr<endless_gguf, void (*)(endless_gguf *)> guard(g, endless_gguf_free);
    return addon_meta_to_js(env, g);
}

Napi::Value addon_system_info(const Napi::CallbackInfo &info) {
    const char *s = endless_system_info();
    return Napi::String::New(info.Env(), s ? s : "");
}

Napi::Value addon_cuda_device_count(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), endless_cuda_device_count());
}

Napi::Value addon_status_name(const Napi::CallbackInfo &info) {
    int s = static_cast<int>(addon_get_number(info, 0, "status"));
    const char *n = endless_status_name(static_cast<endless_status>(s));
    return Napi::String::New(info.Env(), n ? n : "");
}

Napi::Object addon_init(Napi::Env env, Napi::Object exports) {
    auto *data = new addon_data();
    env.SetInstanceData<addon_data>(data);  // deleted when the environment is torn down
    Napi::Function model = model_wrap::addon_define(env);
    Napi::Function session = session_wrap::addon_define(env);
    Napi::Function sampler = sampler_wrap::addon_define(env);
    Napi::Function cancel = cancel_wrap::addon_define(env);
    data->model_ctor = Napi::Persistent(model);
    data->session_ctor = Napi::Persistent(session);
    data->sampler_ctor = Napi::Persistent(sampler);
    data->cancel_ctor = Napi::Persistent(cancel);
    exports.Set("Model", model);
    exports.Set("Session", session);
    exports.Set("Sampler", sampler);
    exports.Set("CancelToken", cancel);
    exports.Set("loadModel", Napi::Function::New(env, addon_load_model, "loadModel"));
    exports.Set("readGgufMetadata", Napi::Function::New(env, addon_read_gguf_metadata, "readGgufMetadata"));
    exports.Set("systemInfo", Napi::Function::New(env, addon_system_info, "systemInfo"));
    exports.Set("cudaDeviceCount", Napi::Function::New(env, addon_cuda_device_count, "cudaDeviceCount"));
    exports.Set("statusName", Napi::Function::New(env, addon_status_name, "statusName"));
    exports.Set("apiVersion", Napi::Number::New(env, ENDLESS_API_VERSION));
    return exports;
}

}  // namespace

NODE_API_MODULE(endless, addon_init)
