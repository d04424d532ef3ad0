// The CUDA backend: device memory, one stream, and the dispatch of every op to its kernel file.
//
// Ops are not launched one by one: each op checks its arguments at once (a bad argument throws
// at the call), copies its small host arrays (token ids, cache slots, key lists, windows) into a
// pinned staging buffer, and queues a launcher. The queue runs at the next point where the host
// needs the device (download, synchronize, release, a large upload): one host->device copy of
// the staging buffer, then every queued kernel, all on one stream. When a queued sequence of
// ops is the same as the previous one (same ops, pointers, shapes; only staged contents differ,
// which is what consecutive decode steps look like), it is captured once as a CUDA graph and
// replayed: the graph's first node re-reads the staging buffer, so a decode step costs one graph
// launch plus the download of the logits. The attention kernel reads n_keys and the windows
// from staged device memory and its launch shape depends only on n_keys rounded up to 1024, so
// the graph survives the window filling up. ENDLESS_CUDA_GRAPHS=0 turns graphs off.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend.h"
#include "backend_cuda.h"
#include "cuda_common.cuh"
#include "attention.cuh"
#include "attention_decode1.cuh"
#include "attention_mma.cuh"
#include "argmax.cuh"
#include "decode_fused.cuh"
#include "elementwise.cuh"
#include "gemm_cublas.cuh"
#include "get_rows.cuh"
#include "kv_store.cuh"
#include "matmul_mma.cuh"
#include "matvec.cuh"
#include "rms_norm.cuh"

namespace endless {

namespace {

constexpr size_t ALLOC_SLACK = 64;          // every allocation: room for aligned-window reads past the end
constexpr size_t STAGE_UPLOAD_MAX = 256 << 10;  // uploads up to this size are staged and queued
constexpr int KEYS_BUCKET = 1024;
constexpr size_t GRAPH_MIN_OPS = 8;
constexpr size_t GRAPH_CACHE = 16;
// The first batch after a host sync is sent once it holds this many launches, at the end of a few-token
// FFN (a layer's end): the device starts on the first layers while the host issues the rest of the step
// (cuda_backend::ffn_swiglu_add). About three layers of a decode step (~5 launches a layer).
constexpr size_t SPLIT_FIRST_OPS = 16;
constexpr int ATTN_MMA_MIN_QUERIES = 16;  // fewer queries per call: the fp32 kernels (decode, short chunks)

enum op_code : uint64_t {
    OP_UPLOAD = 1, OP_COPY, OP_GET_ROWS, OP_MATMUL, OP_RMS_NORM, OP_ADD_BIAS, OP_ADD, OP_SWIGLU, OP_KV_STORE, OP_ATTENTION, OP_FFN, OP_MATMUL_ADD, OP_ARGMAX, OP_DECODE_LAYERS, OP_DISCARD, OP_BF16_COPY,
};

inline uint64_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline uint64_t ptr_bits(const void *p) { return (uint64_t)(uintptr_t)p; }

bool cuda_type_supported(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

void check_weight(const weight &w, const char *op) {
    if (!cuda_type_supported(w.type))
        fail(ENDLESS_ERR_UNSUPPORTED, std::string("cuda ") + op + ": weight type " + cuda_type_name(w.type) +
             " is not supported");
    const int bs = cuda_block_values(w.type);
    if (w.ne0 <= 0 || w.ne1 <= 0 || w.ne0 % bs != 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string("cuda ") + op + ": weight shape " + std::to_string(w.ne0) + " x " +
             std::to_string(w.ne1) + " does not fit type " + cuda_type_name(w.type));
    if (!w.data) fail(ENDLESS_ERR_INVALID_ARGUMENT, std::string("cuda ") + op + ": weight without data");
}

class cuda_backend final : public backend {
public:
    explicit cuda_backend(int device) : device_(device) {
        CUDA_CHECK(cudaSetDevice(device_));
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
        if (prop.major < 8)
            fail(ENDLESS_ERR_DEVICE, std::string("CUDA device ") + prop.name + " has compute capability " +
                 std::to_string(prop.major) + "." + std::to_string(prop.minor) + "; the CUDA backend needs 8.0 or newer");
        name_ = std::string("cuda:") + prop.name;
        n_sm_ = prop.multiProcessorCount;
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        CUDA_CHECK(cudaEventCreateWithFlags(&stage_done_, cudaEventDisableTiming));
        // switches for A/Bs: each is on unless its variable is "0" (precise mode: on when "1")
        auto env_is = [](const char *name, const char *v) { const char *e = std::getenv(name); return e && std::strcmp(e, v) == 0; };
        graphs_enabled_ = !env_is("ENDLESS_CUDA_GRAPHS", "0");
        discard_on_ = !env_is("ENDLESS_CUDA_DISCARD", "0");           // off: discard() does nothing
        split_on_ = !env_is("ENDLESS_CUDA_STEP_SPLIT", "0");          // off: a token step stays one batch
        precise_ = env_is("ENDLESS_CUDA_PRECISE", "1");
        copies_on_ = !env_is("ENDLESS_CUDA_PREFILL_BF16", "0");       // off: no BF16 copies for prefill (prefill_weight)
        stage_grow(1 << 20);
    }

    ~cuda_backend() override {
        cudaSetDevice(device_);
        try { flush(); } catch (...) {}
        cudaStreamSynchronize(stream_);
        gemm_.reset();
        for (auto &e : graphs_) cudaGraphExecDestroy(e.exec);
        for (auto &c : copies_) cudaFree(c.second.p);
        if (stage_host_) cudaFreeHost(stage_host_);
        if (stage_dev_) cudaFree(stage_dev_);
        if (bounce_) cudaFreeHost(bounce_);
        if (scratch_) cudaFree(scratch_);
        cudaEventDestroy(stage_done_);
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return name_; }
    bool is_host() const override { return false; }

    // ---- memory ----
    void *alloc(size_t bytes) override {
        CUDA_CHECK(cudaSetDevice(device_));
        void *p = nullptr;
        const bool sane = bytes <= ((size_t)1 << 56);
        cudaError_t err = sane ? cudaMalloc(&p, bytes + ALLOC_SLACK) : cudaErrorMemoryAllocation;
        if (err != cudaSuccess && sane && !copies_.empty()) {
            // memory pressure: the prefill copies are a cache and give way (none are made again)
            cudaGetLastError();
            copies_on_ = false;
            drop_copies(0, UINTPTR_MAX);
            err = cudaMalloc(&p, bytes + ALLOC_SLACK);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();  // clear the error: the device is still usable
            size_t free_b = 0, total_b = 0;
            cudaMemGetInfo(&free_b, &total_b);
            fail(ENDLESS_ERR_OUT_OF_MEMORY, "CUDA out of memory allocating " + std::to_string(bytes) + " bytes on " +
                 name_ + " (" + std::to_string(free_b >> 20) + " MiB free of " + std::to_string(total_b >> 20) + " MiB)");
        }
        alloc_bytes_[p] = bytes;
        return p;
    }
    void release(void *ptr) override {
        if (!ptr) return;
        flush();
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (const auto it = alloc_bytes_.find(ptr); it != alloc_bytes_.end()) {
            drop_copies((uintptr_t)ptr, (uintptr_t)ptr + it->second);  // (of weights in it)
            alloc_bytes_.erase(it);
        }
        CUDA_CHECK(cudaFree(ptr));
        copies_refused_ = false;  // memory came back
    }
    void upload(void *dst, const void *src, size_t bytes) override {
        if (!bytes) return;
        drop_copies((uintptr_t)dst, (uintptr_t)dst + bytes);  // new weight bytes: their old copy goes
        if (bytes <= STAGE_UPLOAD_MAX) {
            const size_t off = stage(src, bytes, bytes);
            const uint8_t *from = stage_dev_ + off;
            sig({OP_UPLOAD, ptr_bits(dst), bytes, off});
            wrote(dst, bytes);
            push([=] { CUDA_CHECK(cudaMemcpyAsync(dst, from, bytes, cudaMemcpyDeviceToDevice, stream_)); });
            return;
        }
        flush();
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void download(void *dst, const void *src, size_t bytes) override {
        flush();
        if (!bytes) return;
        if (bytes <= (64u << 20)) {  // through pinned memory: faster than a pageable copy
            if (bytes > bounce_cap_) {
                if (bounce_) CUDA_CHECK(cudaFreeHost(bounce_));
                bounce_ = nullptr;
                bounce_cap_ = 0;
                CUDA_CHECK(cudaMallocHost((void **)&bounce_, bytes));
                bounce_cap_ = bytes;
            }
            CUDA_CHECK(cudaMemcpyAsync(bounce_, src, bytes, cudaMemcpyDeviceToHost, stream_));
            CUDA_CHECK(cudaStreamSynchronize(stream_));
            std::memcpy(dst, bounce_, bytes);
        } else {
            CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
            CUDA_CHECK(cudaStreamSynchronize(stream_));
        }
        split_armed_ = true;
    }
    void copy(void *dst, const void *src, size_t bytes) override {
        if (!bytes) return;
        drop_copies((uintptr_t)dst, (uintptr_t)dst + bytes);
        sig({OP_COPY, ptr_bits(dst), ptr_bits(src), bytes});
        wrote(dst, bytes);
        push([=] { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_)); });
    }
    const void *place_weight(const void *file_data, size_t bytes) override {
        void *p = alloc(bytes);
        flush();
        CUDA_CHECK(cudaMemcpyAsync(p, file_data, bytes, cudaMemcpyHostToDevice, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        return p;
    }
    void synchronize() override {
        flush();
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        split_armed_ = true;
    }

    // ---- ops ----
    void get_rows(const weight &w, const int32_t *ids, int n, float *out) override {
        check_weight(w, "get_rows");
        if (n < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda get_rows: negative row count");
        if (n == 0) return;
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= w.ne1)
                fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda get_rows: row id " + std::to_string(ids[i]) + " is outside 0.." +
                     std::to_string(w.ne1 - 1));
        const size_t off = stage(ids, (size_t)n * 4, (size_t)n * 4);
        const int32_t *dids = (const int32_t *)(stage_dev_ + off);
        sig({OP_GET_ROWS, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(out), off});
        wrote(out, (size_t)n * w.ne0 * 4);
        const weight wc = w;
        push([=] { cuda_get_rows(wc, dids, n, out, stream_); });
    }

    void matmul(const weight &w, const float *x, int n, float *y) override {
        check_weight(w, "matmul");
        if (n < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda matmul: negative token count");
        if (n == 0) return;
        wrote(y, (size_t)n * w.ne1 * 4);
        const weight wc = w;
        if (n <= CUDA_MATVEC_MAX_N) {
            sig({OP_MATMUL, 2, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(x), ptr_bits(y), precise_});
            const size_t y_bytes = (size_t)n * w.ne1 * 4;
            mm_group *g = open_mm_.get();
            if (g && g->x == x && g->n == n && g->set.n_members < CUDA_MATVEC_MAX_SET && !g->set.swiglu_out &&
                g->set.w[0].type == w.type && g->set.w[0].ne0 == w.ne0 && !overlaps_group(*g, y, y_bytes)) {
                // same input as the open launch (q, k, v; gate, up): one launch for all
                const int i = g->set.n_members++;
                g->set.w[i] = w;
                g->set.y[i] = y;
                return;
            }
            auto grp = std::make_shared<mm_group>();
            grp->x = x;
            grp->n = n;
            grp->set.n_members = 1;
            grp->set.w[0] = w;
            grp->set.y[0] = y;
            grp->set.int8_x = !precise_;
            const size_t x_bytes = (size_t)n * w.ne0 * 4;
            if (norm_ && norm_->n <= CUDA_MATVEC_MAX_N && norm_->y == x && norm_->n == n && norm_->dim == w.ne0 &&
                !ranges_overlap(y, y_bytes, norm_->x, x_bytes) &&
                !ranges_overlap(y, y_bytes, x, x_bytes)) {
                // x is the output of the rms_norm just before: normalize inside this launch
                grp->set.norm_x = norm_->x;
                grp->set.norm_g = norm_->g;
                grp->set.norm_eps = norm_->eps;
                norm_.reset();
            }
            push([this, grp] { cuda_matvec_set_run(grp->set, grp->x, grp->n, stream_); });
            open_mm_ = grp;
            return;
        }
        if (gemm_usable(w, x)) {
            const bool precise = precise_ && w.type == GGML_TYPE_BF16;
            void *ws = nullptr;
            const weight wb = gemm_operands({&w}, [&](const weight *const *v) { return cuda_gemm::scratch_bytes(*v[0], n, precise); }, ws)[0];
            sig({OP_MATMUL, 3, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(x), ptr_bits(y), ptr_bits(ws), precise,
                 ptr_bits(wb.data)});
            cuda_gemm *gm = gemm_.get();
            // the previous op converted this same x into the same scratch: use it as it is
            const gemm_input key{x, n, w.ne0, precise, ws};
            bool ready = last_gemm_input_ && *last_gemm_input_ == key;
            const size_t x_bytes = (size_t)n * w.ne0 * 4, y_bytes = (size_t)n * w.ne1 * 4;
            if (!ready && !precise && !ranges_overlap(y, y_bytes, x, x_bytes)) {
                // x is the output of the rms_norm or swiglu just before: that launch writes its bf16 copy
                if (norm_ && norm_->y == x && norm_->n == n && norm_->dim == w.ne0) {
                    emit_norm_bf16(ws);
                    ready = true;
                } else if (swiglu_ && swiglu_->y == x && swiglu_->count == (size_t)n * w.ne0) {
                    const pending_swiglu p = *swiglu_;
                    swiglu_.reset();
                    queue_.push_back([=] { cuda_swiglu(p.gate, p.up, p.count, p.y, stream_, ws); });
                    ready = true;
                }
            }
            auto rec = std::make_shared<gemm_rec>(gemm_rec{w, y, n, nullptr});
            std::vector<std::shared_ptr<gemm_rec>> keep;
            keep.swap(recent_gemms_);
            spares_norm_out(ready ? nullptr : x, x_bytes, {{y, y_bytes}});
            push([=] { gm->matmul(wb, x, n, y, ws, precise, ready, false, rec->bias); });
            // after push, which forgets them: the earlier products whose output this one neither reads
            // nor writes stay open to a bias, and so does this one (default mode)
            for (auto &r : keep)
                if (!ranges_overlap(r->y, r->bytes(), x, x_bytes) && !ranges_overlap(r->y, r->bytes(), y, y_bytes)) recent_gemms_.push_back(r);
            if (!precise) recent_gemms_.push_back(rec);
            // an output written over its own input ends the reuse
            if (!ranges_overlap(y, (size_t)n * w.ne1 * 4, x, (size_t)n * w.ne0 * 4)) last_gemm_input_ = key;
            return;
        }
        if (n > CUDA_MATVEC_MAX_N && cuda_mma_supported(w)) {
            const bool precise = precise_;
            void *ws = scratch(cuda_mma_scratch_bytes(w, n, precise));
            sig({OP_MATMUL, 1, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(x), ptr_bits(y), ptr_bits(ws), precise});
            push([=] { cuda_matmul_mma(wc, x, n, y, ws, precise, stream_); });
            return;
        }
        sig({OP_MATMUL, 0, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(x), ptr_bits(y)});
        push([=] {
            // F32 weights (and odd shapes) stay in exact fp32: groups of up to 8 tokens
            for (int i = 0; i < n; i += CUDA_MATVEC_MAX_N) {
                const int m = std::min(CUDA_MATVEC_MAX_N, n - i);
                cuda_matvec(wc, x + (size_t)i * wc.ne0, m, y + (size_t)i * wc.ne1, stream_);
            }
        });
    }

    void discard(const void *p, size_t bytes) override {
        if (!p || !bytes) return;
        const bool drop = discard_on_ && norm_out_ && (uintptr_t)p <= (uintptr_t)norm_out_->y &&
                          (uintptr_t)norm_out_->y + norm_out_->bytes <= (uintptr_t)p + bytes;
        sig({OP_DISCARD, ptr_bits(p), bytes, drop});
        if (!drop) return;
        *norm_out_->skip = true;
        norm_out_.reset();
    }
    void argmax(const float *x, int64_t n, int32_t *out, const argmax_penalty &pen) override {
        argmax_check("cuda argmax", n, pen);
        if (!x || !out) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda argmax: null tensor");
        // scratch first: growing it flushes the queue, which would drop the staged ids
        uint64_t *partials = (uint64_t *)scratch((size_t)CUDA_ARGMAX_MAX_BLOCKS * 8);
        // penalized ids staged as {count, ids..., 0...} in a bucket of 64: the count the kernel reads
        // changes from step to step (the distinct tokens of a sliding window), the batch's
        // signature does not, so decode steps still replay one graph
        const int bucket = (pen.n_ids + 63) / 64 * 64;
        size_t off = 0;
        if (bucket) {
            argmax_ids_.assign((size_t)bucket + 1, 0);
            argmax_ids_[0] = pen.n_ids;
            std::copy(pen.ids, pen.ids + pen.n_ids, argmax_ids_.begin() + 1);
            off = stage(argmax_ids_.data(), argmax_ids_.size() * 4, argmax_ids_.size() * 4);
        }
        sig({OP_ARGMAX, ptr_bits(x), (uint64_t)n, ptr_bits(out), ptr_bits(partials), (uint64_t)bucket, f32_bits(pen.penalty), off});
        wrote(out, 4);
        const int32_t *dids = bucket ? (const int32_t *)(stage_dev_ + off) : nullptr;
        const float penalty = pen.penalty;
        push([=] { cuda_argmax(x, n, out, partials, dids, penalty, stream_); });
    }
    void rms_norm(const float *x, const float *g, int n, int dim, float eps, float *y) override {
        if (n < 0 || dim <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda rms_norm: bad shape " + std::to_string(n) + " x " + std::to_string(dim));
        if (n == 0) return;
        sig({OP_RMS_NORM, ptr_bits(x), ptr_bits(g), (uint64_t)n, (uint64_t)dim, f32_bits(eps), ptr_bits(y)});
        wrote(y, (size_t)n * dim * 4);
        if (fuse_ && !ranges_overlap(x, (size_t)n * dim * 4, y, (size_t)n * dim * 4)) {
            // held back: a matrix-vector product of y that follows normalizes inside its own launch;
            // a cuBLAS product of y takes its bf16 copy from this op's launch
            close_open();
            recent_gemms_.clear();  // (it runs after them: a bias joining one of them would move past it)
            reads_f32(x, (size_t)n * dim * 4);
            reads_f32(g, (size_t)dim * 4);
            reads_f32(y, (size_t)n * dim * 4);  // (written later, at its launch)
            norm_ = pending_norm{x, g, n, dim, eps, y};
            return;
        }
        push([=] { cuda_rms_norm(x, g, n, dim, eps, y, stream_); });
    }
    void add_bias(float *y, const float *b, int n, int dim) override {
        if (n < 0 || dim <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda add_bias: bad shape");
        if (n == 0) return;
        sig({OP_ADD_BIAS, ptr_bits(y), ptr_bits(b), (uint64_t)n, (uint64_t)dim});
        wrote(y, (size_t)n * dim * 4);
        if (mm_group *g = open_mm_.get(); g && g->n == n && !g->set.swiglu_out) {
            for (int i = 0; i < g->set.n_members; i++)
                if (g->set.y[i] == y && g->set.w[i].ne1 == dim && !g->set.bias[i] && !g->set.acc[i]) {
                    g->set.bias[i] = b;  // y = Wx + b in the matrix-vector epilogue
                    return;
                }
        }
        if (fuse_ && !precise_ && gemm_) {
            // y is the output of a queued cuBLAS product that no later op has touched (q, k, v: the
            // three products, then the three biases): y = Wx + b in its epilogue (cuBLASLt), unless a
            // product queued after it writes b
            for (size_t i = 0; i < recent_gemms_.size(); i++) {
                gemm_rec &r = *recent_gemms_[i];
                if (r.y != y || r.n != n || r.w.ne1 != dim || r.bias) continue;
                bool clash = ranges_overlap(b, (size_t)dim * 4, r.y, r.bytes());
                for (size_t j = i + 1; j < recent_gemms_.size(); j++) clash |= ranges_overlap(b, (size_t)dim * 4, recent_gemms_[j]->y, recent_gemms_[j]->bytes());
                if (!clash && gemm_->bias_epilogue(r.w, n)) {
                    r.bias = b;
                    reads_f32(b, (size_t)dim * 4);
                    return;
                }
                break;
            }
        }
        push([=] { cuda_add_bias(y, b, n, dim, stream_); });
    }
    void add(float *y, const float *x, size_t count) override {
        if (!count) return;
        sig({OP_ADD, ptr_bits(y), ptr_bits(x), count});
        wrote(y, count * 4);
        if (mm_group *g = open_mm_.get(); g && !g->set.swiglu_out && !overlaps_group(*g, y, count * 4)) {
            for (int i = 0; i < g->set.n_members; i++)
                if (g->set.y[i] == x && (size_t)g->n * g->set.w[i].ne1 == count && !g->set.acc[i]) {
                    g->set.acc[i] = y;  // the residual add in the matrix-vector epilogue
                    return;
                }
        }
        push([=] { cuda_add(y, x, count, stream_); });
    }
    void swiglu(const float *gate, const float *up, size_t count, float *y) override {
        if (!count) return;
        sig({OP_SWIGLU, ptr_bits(gate), ptr_bits(up), count, ptr_bits(y)});
        wrote(y, count * 4);
        if (mm_group *g = open_mm_.get(); g && g->set.n_members == 2 && !g->set.swiglu_out && g->set.y[0] == gate &&
            g->set.y[1] == up && g->set.w[0].ne1 == g->set.w[1].ne1 && (size_t)g->n * g->set.w[0].ne1 == count &&
            !g->set.bias[0] && !g->set.bias[1] && !g->set.acc[0] && !g->set.acc[1] &&
            (y == gate || !overlaps_group(*g, y, count * 4))) {
            g->set.swiglu_out = y;  // gate and up rows of one warp, SwiGLU in the epilogue
            return;
        }
        if (fuse_) {
            // held back: a cuBLAS product of y that follows takes its bf16 copy from this launch
            close_open();
            recent_gemms_.clear();
            reads_f32(gate, count * 4);
            reads_f32(up, count * 4);
            reads_f32(y, count * 4);
            swiglu_ = pending_swiglu{gate, up, count, y};
            return;
        }
        push([=] { cuda_swiglu(gate, up, count, y, stream_); });
    }
    // Prefill on cuBLAS (n > 8, fusions on): the add inside the product (beta = 1), tmp untouched.
    // Otherwise matmul then add (decode: the matrix-vector epilogue adds).
    void matmul_add(const weight &w, const float *x, int n, float *y, float *tmp) override {
        const size_t xb = (size_t)n * w.ne0 * 4, yb = (size_t)n * w.ne1 * 4;
        if (!(fuse_ && n > CUDA_MATVEC_MAX_N && cuda_type_supported(w.type) && ((uintptr_t)y % 16) == 0 &&
              !ranges_overlap(x, xb, y, yb) && gemm_usable(w, x))) {
            backend::matmul_add(w, x, n, y, tmp);
            return;
        }
        check_weight(w, "matmul_add");
        const bool precise = precise_ && w.type == GGML_TYPE_BF16;
        void *ws = nullptr;
        const weight wb = gemm_operands({&w}, [&](const weight *const *v) { return cuda_gemm::scratch_bytes(*v[0], n, precise); }, ws)[0];
        sig({OP_MATMUL_ADD, ptr_bits(w.data), w.type, (uint64_t)w.ne0, (uint64_t)w.ne1, (uint64_t)n, ptr_bits(x), ptr_bits(y),
             ptr_bits(ws), precise, ptr_bits(wb.data)});
        wrote(y, yb);
        cuda_gemm *gm = gemm_.get();
        push([=] { gm->matmul(wb, x, n, y, ws, precise, false, true); });
    }
    // Prefill (n > 8, cuBLAS, default mode, fusions on): the products keep the FFN intermediates in
    // bf16 (cuda_gemm::ffn_swiglu) and add into x inside the down product; 16-bit gate/up values
    // are what transformers and llama.cpp compute too. Otherwise (decode, precise mode) the ops of
    // the default, whose matrix-vector fusions apply.
    void ffn_swiglu_add(float *x, const float *h, const weight &gate, const weight &up, const weight &down, int n, float *gate_buf,
                        float *up_buf, float *out_buf) override {
        const int64_t d = gate.ne0, ff = gate.ne1;
        const size_t xb = (size_t)n * d * 4, fb = (size_t)n * ff * 4;
        auto a16 = [](const void *p) { return ((uintptr_t)p % 16) == 0; };
        const bool fused = fuse_ && !precise_ && n > CUDA_MATVEC_MAX_N && up.ne0 == d && up.ne1 == ff && down.ne0 == ff &&
                           down.ne1 == d && ff % 16 == 0 && a16(x) && a16(gate_buf) && a16(up_buf) && !ranges_overlap(x, xb, h, xb) &&
                           !ranges_overlap(x, xb, gate_buf, fb) && !ranges_overlap(x, xb, up_buf, fb) &&
                           !ranges_overlap(gate_buf, fb, up_buf, fb) && !ranges_overlap(h, xb, gate_buf, fb) &&
                           !ranges_overlap(h, xb, up_buf, fb) && cuda_type_supported(gate.type) && cuda_type_supported(up.type) &&
                           cuda_type_supported(down.type) && gemm_usable(gate, h) && gemm_usable(up, h) && gemm_usable(down, gate_buf);
        if (!fused) {
            backend::ffn_swiglu_add(x, h, gate, up, down, n, gate_buf, up_buf, out_buf);
            // a token step's first layers go to the device now: it works through them while the host
            // issues the rest, which otherwise waited for the whole step's issue (~0.05 ms an H100 step;
            // NOTES.md, nineteenth session)
            if (split_on_ && split_armed_ && n <= CUDA_MATVEC_MAX_N && queue_.size() >= SPLIT_FIRST_OPS) flush();
            return;
        }
        check_weight(gate, "ffn (gate)");
        check_weight(up, "ffn (up)");
        check_weight(down, "ffn (down)");
        // scratch first: growing it flushes the queue
        void *ws = nullptr;
        const std::vector<weight> wb = gemm_operands(
            {&gate, &up, &down}, [&](const weight *const *v) { return cuda_gemm::ffn_scratch_bytes(*v[0], *v[1], *v[2], n); }, ws);
        sig({OP_FFN, ptr_bits(x), ptr_bits(h), ptr_bits(gate.data), gate.type, ptr_bits(up.data), up.type, ptr_bits(down.data),
             down.type, (uint64_t)d, (uint64_t)ff, (uint64_t)n, ptr_bits(gate_buf), ptr_bits(up_buf), ptr_bits(ws), ptr_bits(wb[0].data),
             ptr_bits(wb[1].data), ptr_bits(wb[2].data)});
        wrote(x, xb);
        wrote(gate_buf, fb);
        wrote(up_buf, fb);
        // h is the output of the rms_norm just before: that launch writes its bf16 copy
        bool ready = false;
        if (norm_ && norm_->y == h && norm_->n == n && norm_->dim == d && !ranges_overlap(norm_->x, xb, gate_buf, fb) &&
            !ranges_overlap(norm_->x, xb, up_buf, fb)) {
            emit_norm_bf16(ws);
            ready = true;
        }
        spares_norm_out(ready ? nullptr : h, xb, {{x, xb}, {gate_buf, fb}, {up_buf, fb}});
        cuda_gemm *gm = gemm_.get();
        const weight g = wb[0], u = wb[1], dn = wb[2];
        push([=] { gm->ffn_swiglu(g, u, dn, h, n, x, gate_buf, up_buf, ws, ready); });
    }
    void kv_store(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slots, int n, int row) override {
        if (n < 0 || row <= 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda kv_store: bad shape");
        if (n == 0) return;
        for (int i = 0; i < n; i++)
            if (slots[i] < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda kv_store: negative slot " + std::to_string(slots[i]));
        const size_t off = stage(slots, (size_t)n * 4, (size_t)n * 4);
        const int32_t *dslots = (const int32_t *)(stage_dev_ + off);
        sig({OP_KV_STORE, ptr_bits(k_cache), ptr_bits(v_cache), ptr_bits(k), ptr_bits(v), (uint64_t)n, (uint64_t)row, off});
        int32_t max_slot = 0;
        for (int i = 0; i < n; i++) max_slot = std::max(max_slot, slots[i]);
        kv_write kw{k_cache, v_cache, row, max_slot, n, {}};
        std::copy(slots, slots + std::min(n, CUDA_A1_MAX_FRESH), kw.slots);
        batch_kv_.push_back(kw);
        if (mm_group *g = open_mm_.get(); fuse_ && g && g->n == n && !g->set.swiglu_out && !g->set.kv_slots) {
            // k and v are outputs of the open launch: its epilogue stores them into the cache too
            int ik = -1, iv = -1;
            for (int i = 0; i < g->set.n_members; i++) {
                if (g->set.w[i].ne1 != row || g->set.acc[i]) continue;
                if (g->set.y[i] == k) ik = i;
                if (g->set.y[i] == v) iv = i;
            }
            const size_t cache_bytes = ((size_t)max_slot + 1) * row * 4;
            if (ik >= 0 && iv >= 0 && ik != iv && !ranges_overlap(k_cache, cache_bytes, v_cache, cache_bytes) &&
                !overlaps_group(*g, k_cache, cache_bytes) && !overlaps_group(*g, v_cache, cache_bytes)) {
                g->set.kv_dst[ik] = k_cache;
                g->set.kv_dst[iv] = v_cache;
                g->set.kv_slots = dslots;
                return;
            }
        }
        push([=] { cuda_kv_store(k_cache, v_cache, k, v, dslots, n, row, stream_); });
    }

    void attention(const attn_args &a) override {
        if (a.n_q <= 0) return;
        if (a.n_keys <= 0 || a.n_fixed < 0 || a.n_fixed > a.n_keys)
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: n_fixed " + std::to_string(a.n_fixed) + " and n_keys " +
                 std::to_string(a.n_keys) + " do not fit");
        if (!a.q || !a.k_cache || !a.v_cache || !a.out || !a.keys || !a.win_lo || !a.win_hi)
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: a required pointer is null");
        if (a.n_rot > 0 && (!a.rope_cos || !a.rope_sin)) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: missing RoPE tables");
        if (a.mode != ROPE_MODE_NORM && a.mode != ROPE_MODE_NEOX)
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: unknown rope mode " + std::to_string((int)a.mode));
        const int n_win = a.n_keys - a.n_fixed;
        for (int i = 0; i < a.n_q; i++) {
            // an empty window is fine while fixed keys exist (the query then sits at n_fixed - 1)
            if (a.win_lo[i] < 0 || a.win_hi[i] < a.win_lo[i] || a.win_hi[i] > n_win)
                fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: window [" + std::to_string(a.win_lo[i]) + ", " +
                     std::to_string(a.win_hi[i]) + ") of query " + std::to_string(i) + " is not inside 0.." + std::to_string(n_win));
            if (a.win_hi[i] == a.win_lo[i] && a.n_fixed == 0)
                fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: query " + std::to_string(i) + " sees no key");
        }
        const int bucket = (a.n_keys + KEYS_BUCKET - 1) / KEYS_BUCKET * KEYS_BUCKET;
        // Every layer of a token step passes the same key list: staged (and checked) once per batch,
        // found again by comparing the bytes (H100 decode step: the 28 checks and copies of 4096
        // keys were most of the ~0.16 ms the host spent issuing a step).
        const size_t keys_len = (size_t)a.n_keys * 4;
        const bool keys_staged = staged_keys_ && staged_keys_->n_keys == a.n_keys && staged_keys_->bucket == bucket &&
                                 std::memcmp(stage_host_ + staged_keys_->off, a.keys, keys_len) == 0;
        int32_t max_slot = keys_staged ? staged_keys_->max_slot : 0;
        if (!keys_staged)
            for (int i = 0; i < a.n_keys; i++) {
                if (a.keys[i] < 0) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: negative cache slot " + std::to_string(a.keys[i]));
                max_slot = std::max(max_slot, a.keys[i]);
            }
        // many queries (prefill) on tensor cores unless precise; few (decode) in fp32
        const bool tc = !precise_ && a.n_q >= ATTN_MMA_MIN_QUERIES && cuda_attention_mma_supported(a);
        cuda_attn_plan plan;
        cuda_attn_mma_plan tc_plan;
        if (tc) {
            tc_plan = cuda_attention_mma_plan(a, bucket, n_sm_);
            plan.scratch_bytes = tc_plan.scratch_bytes;
            plan.n_split = tc_plan.n_split;
        } else {
            plan = cuda_attention_plan(a, bucket, n_sm_);
        }
        // staged: meta {n_fixed, n_keys}, keys (bucket-sized, so offsets stay put while n_keys grows), windows
        const size_t keys_bytes = (size_t)bucket * 4, win_bytes = (size_t)a.n_q * 4;
        // meta is followed by the decode kernel's merge counters, staged as zeros: the staging copy
        // zeroes them for every batch and graph replay (and the kernel leaves them zero)
        const size_t meta_bytes = 16 + (plan.counter_bytes + 15) / 16 * 16;
        // one query on a kernel with early loads (plan.early): the cache rows this batch has written
        // so far (the kernel requests the others before waiting for the kernels before it); -1
        // when that is not known or the kernel does not use them
        int32_t fresh[CUDA_A1_MAX_FRESH];
        const int n_fresh = tc || !plan.early ? -1 : fresh_rows(a, max_slot, fresh);
        if (n_fresh >= 0) attn_early_++;
        const size_t fresh_bytes = n_fresh > 0 ? (size_t)n_fresh * 4 : 0;
        const size_t need = meta_bytes + keys_bytes + 2 * win_bytes + (fresh_bytes + 15) / 16 * 16 + 64;  // keys too: a flush below forgets them
        // scratch first: growing it flushes the queue, which would drop this op's staged bytes
        void *ws = plan.scratch_bytes ? scratch(plan.scratch_bytes) : nullptr;
        stage_reserve(need);  // (a flush here forgets staged_keys_: the keys are then staged again below)
        const int32_t meta[4] = {a.n_fixed, a.n_keys, 0, 0};
        const size_t off_meta = stage(meta, 16, meta_bytes);
        size_t off_keys;
        if (staged_keys_ && keys_staged) {
            off_keys = staged_keys_->off;
        } else {
            off_keys = stage(a.keys, keys_len, keys_bytes);
            staged_keys_ = staged_keys{off_keys, a.n_keys, bucket, max_slot};
        }
        const size_t off_lo = stage(a.win_lo, win_bytes, win_bytes);
        const size_t off_hi = stage(a.win_hi, win_bytes, win_bytes);
        const size_t off_fresh = n_fresh > 0 ? stage(fresh, fresh_bytes, fresh_bytes) : 0;
        wrote(a.out, (size_t)a.n_q * a.n_head * a.head_dim * 4);
        attn_args ac = a;
        ac.keys = ac.win_lo = ac.win_hi = nullptr;  // host arrays: only their staged copies are used later
        sig({OP_ATTENTION, ptr_bits(a.q), ptr_bits(a.k_cache), ptr_bits(a.v_cache), ptr_bits(a.out), (uint64_t)bucket,
             (uint64_t)a.n_q, (uint64_t)a.n_head, (uint64_t)a.n_head_kv, (uint64_t)a.head_dim, (uint64_t)a.n_rot,
             (uint64_t)a.mode, ptr_bits(a.rope_cos), ptr_bits(a.rope_sin), f32_bits(a.scale), off_meta, off_keys, off_lo,
             off_hi, ptr_bits(ws), (uint64_t)plan.n_split, (uint64_t)plan.variant, (uint64_t)tc + 2 * (uint64_t)tc_plan.wgmma,
             (uint64_t)(int64_t)n_fresh, off_fresh});
        const uint8_t *d = stage_dev_;
        if (tc) {
            push([=] {
                cuda_attention_mma(ac, tc_plan, (const int32_t *)(d + off_keys), (const int32_t *)(d + off_lo),
                                   (const int32_t *)(d + off_hi), (const int32_t *)(d + off_meta), ws, stream_);
            });
            return;
        }
        uint32_t *counters = plan.counter_bytes ? (uint32_t *)(stage_dev_ + off_meta + 16) : nullptr;
        const int32_t *dfresh = n_fresh > 0 ? (const int32_t *)(d + off_fresh) : nullptr;
        push([=] {
            cuda_attention(ac, plan, (const int32_t *)(d + off_keys), (const int32_t *)(d + off_lo),
                           (const int32_t *)(d + off_hi), (const int32_t *)(d + off_meta), ws, stream_, counters, dfresh, n_fresh);
        });
    }

    // A one-token step's layers as one persistent kernel (decode_fused.cu) where it applies: turned on
    // (ENDLESS_CUDA_FUSED_DECODE=1), default mode with fusions on, F16/BF16 weights of one type, sm_90.
    // Anything else, or an argument the ops would reject (they then say why), returns false and the
    // caller issues the ops.
    bool decode_layers(const decode_args &a) override {
        if (precise_ || !fuse_ || a.n_layer <= 0 || !a.layers || !a.x || !a.q || !a.att || !a.h) return false;
        const attn_args &at = a.attn;
        cuda_fused_shape s;
        s.type = a.layers[0].wq.type;
        s.n_layer = a.n_layer;
        s.d = a.n_embd;
        s.n_ff = a.n_ff;
        s.n_head = at.n_head;
        s.n_head_kv = at.n_head_kv;
        s.head_dim = at.head_dim;
        s.n_rot = at.n_rot;
        if (at.n_q != 1 || s.n_head_kv <= 0 || s.head_dim <= 0 || (at.mode != ROPE_MODE_NORM && at.mode != ROPE_MODE_NEOX) ||
            (at.n_rot > 0 && (!at.rope_cos || !at.rope_sin)) || !at.keys || !at.win_lo || !at.win_hi || a.slot < 0)
            return false;
        // the plan first (cached by shape): while the kernel is off, a step costs this lookup and no more
        const cuda_fused_plan *plan = nullptr;
        for (auto &e : fused_plans_) {
            const cuda_fused_shape &t = e.first;
            if (t.type == s.type && t.n_layer == s.n_layer && t.d == s.d && t.n_ff == s.n_ff && t.n_head == s.n_head &&
                t.n_head_kv == s.n_head_kv && t.head_dim == s.head_dim && t.n_rot == s.n_rot)
                plan = &e.second;
        }
        if (!plan) {
            fused_plans_.emplace_back(s, cuda_decode_fused_plan(s));
            plan = &fused_plans_.back().second;
        }
        if (!plan->ok) return false;
        const int64_t d = s.d, ff = s.n_ff, nq = (int64_t)s.n_head * s.head_dim, nkv = (int64_t)s.n_head_kv * s.head_dim;
        // (bulk copies read the weights in 16-byte units, the attention the cache rows as float4)
        auto a16 = [](const void *p) { return p && (uintptr_t)p % 16 == 0; };
        auto fits = [&](const weight &w, int64_t ne0, int64_t ne1) { return w.type == s.type && w.ne0 == ne0 && w.ne1 == ne1 && a16(w.data); };
        for (int l = 0; l < a.n_layer; l++) {
            const layer_ref &L = a.layers[l];
            if (!fits(L.wq, d, nq) || !fits(L.wk, d, nkv) || !fits(L.wv, d, nkv) || !fits(L.wo, nq, d) || !fits(L.gate, d, ff) ||
                !fits(L.up, d, ff) || !fits(L.down, ff, d) || !L.attn_norm || !L.ffn_norm || !a16(L.k_cache) || !a16(L.v_cache))
                return false;
        }
        const int n_win = at.n_keys - at.n_fixed;
        if (at.n_keys <= 0 || at.n_fixed < 0 || n_win < 0 || at.win_lo[0] < 0 || at.win_hi[0] < at.win_lo[0] || at.win_hi[0] > n_win ||
            (at.win_hi[0] == at.win_lo[0] && at.n_fixed == 0))
            return false;
        for (int i = 0; i < at.n_keys; i++)
            if (at.keys[i] < 0) return false;
        const cuda_fused_plan pl = *plan;
        // scratch first: growing it flushes the queue, which would drop staged bytes
        void *part = scratch(pl.part_bytes);
        const int bucket = (at.n_keys + KEYS_BUCKET - 1) / KEYS_BUCKET * KEYS_BUCKET;
        fused_table_.resize(a.n_layer);
        for (int l = 0; l < a.n_layer; l++) {
            const layer_ref &L = a.layers[l];
            fused_table_[l] = cuda_fused_layer{L.wq.data, L.wk.data, L.wv.data, L.wo.data, L.gate.data, L.up.data, L.down.data, L.bq, L.bk,
                                               L.bv, L.attn_norm, L.ffn_norm, L.k_cache, L.v_cache, nullptr};
        }
        const size_t table_bytes = fused_table_.size() * sizeof(cuda_fused_layer), keys_bytes = (size_t)bucket * 4;
        stage_reserve(table_bytes + keys_bytes + 64 + 64);
        const int32_t meta[12] = {at.n_fixed, at.n_keys, at.win_lo[0], at.win_hi[0], a.slot, 0, 0, 0, 0, 0, 0, 0};  // then the barrier counter
        const size_t off_meta = stage(meta, sizeof meta, sizeof meta);
        const size_t off_keys = stage(at.keys, (size_t)at.n_keys * 4, keys_bytes);
        const size_t off_table = stage(fused_table_.data(), table_bytes, table_bytes);
        sig({OP_DECODE_LAYERS, ptr_bits(a.x), ptr_bits(a.q), ptr_bits(a.att), ptr_bits(a.h), ptr_bits(part), (uint64_t)s.type,
             (uint64_t)s.n_layer, (uint64_t)d, (uint64_t)ff, (uint64_t)s.n_head, (uint64_t)s.n_head_kv, (uint64_t)s.head_dim,
             (uint64_t)s.n_rot, (uint64_t)at.mode, ptr_bits(at.rope_cos), ptr_bits(at.rope_sin), f32_bits(a.eps), f32_bits(at.scale),
             (uint64_t)bucket, off_meta, off_keys, off_table});
        wrote(a.x, (size_t)d * 4);
        wrote(a.q, (size_t)nq * 4);
        wrote(a.att, (size_t)nq * 4);
        wrote(a.h, (size_t)ff * 4);
        for (int l = 0; l < a.n_layer; l++) {
            kv_write kw{a.layers[l].k_cache, a.layers[l].v_cache, (int)nkv, a.slot, 1, {}};
            kw.slots[0] = a.slot;
            batch_kv_.push_back(kw);
        }
        cuda_fused_args fa;
        fa.shape = s;
        fa.x = a.x;
        fa.q = a.q;
        fa.att = a.att;
        fa.h = a.h;
        fa.part = part;
        const uint8_t *dv = stage_dev_;
        fa.layers = (const cuda_fused_layer *)(dv + off_table);
        fa.keys = (const int32_t *)(dv + off_keys);
        fa.meta = (const int32_t *)(dv + off_meta);
        fa.barrier = (unsigned *)(stage_dev_ + off_meta + 32);
        fa.rope_cos = at.rope_cos;
        fa.rope_sin = at.rope_sin;
        fa.rope_mode = at.mode;
        fa.eps = a.eps;
        fa.scale = at.scale;
        push([this, fa, pl] { cuda_decode_fused(fa, pl, stream_); });
        fused_decodes_++;
        return true;
    }

    // The rows of a's caches that ops queued in this batch write (slots into `fresh`; their count),
    // or -1 when some queued op may write the rows the keys reach (slots 0..max_slot) other than
    // through kv_store into these very caches, or more than CUDA_A1_MAX_FRESH rows are new.
    int fresh_rows(const attn_args &a, int32_t max_slot, int32_t (&fresh)[CUDA_A1_MAX_FRESH]) const {
        const size_t row = (size_t)a.n_head_kv * a.head_dim, ext = ((size_t)max_slot + 1) * row * 4;
        const uintptr_t k0 = (uintptr_t)a.k_cache, v0 = (uintptr_t)a.v_cache;
        auto touches = [&](uintptr_t lo, uintptr_t hi) { return (lo < k0 + ext && k0 < hi) || (lo < v0 + ext && v0 < hi); };
        for (const batch_write &w : batch_writes_)
            if (touches(w.lo, w.hi)) return -1;
        int n = 0;
        for (const kv_write &w : batch_kv_) {
            if (w.k_cache == a.k_cache && w.v_cache == a.v_cache && (size_t)w.row == row) {
                if (w.n > CUDA_A1_MAX_FRESH) return -1;
                for (int i = 0; i < w.n; i++) {
                    if (std::find(fresh, fresh + n, w.slots[i]) != fresh + n) continue;
                    if (n == CUDA_A1_MAX_FRESH) return -1;
                    fresh[n++] = w.slots[i];
                }
                continue;
            }
            const size_t wext = ((size_t)w.max_slot + 1) * w.row * 4;
            if (touches((uintptr_t)w.k_cache, (uintptr_t)w.k_cache + wext) || touches((uintptr_t)w.v_cache, (uintptr_t)w.v_cache + wext))
                return -1;
        }
        return n;
    }

    // Statistics for tests and benchmarks.
    size_t graph_launches() const { return graph_launches_; }
    size_t fused_decodes() const { return fused_decodes_; }
    size_t attn_early() const { return attn_early_; }
    void set_precise(bool on) {
        flush();
        precise_ = on;
    }
    void set_fusion(bool on) {
        flush();
        fuse_ = on;
    }
    void set_prefill_copies(bool on, size_t reserve) {
        if (!on) drop_copies(0, UINTPTR_MAX);
        copies_on_ = on;
        copy_reserve_ = reserve;
        copies_refused_ = false;
    }
    size_t free_memory() {
        CUDA_CHECK(cudaSetDevice(device_));
        size_t free_b = 0, total_b = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        return free_b;
    }
    size_t prefill_copies(size_t *bytes) const {
        if (bytes) *bytes = copies_bytes_;
        return copies_.size();
    }
    void drop_graphs() {
        flush();
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        clear_graphs();
    }
    void set_cublas(bool on) {
        flush();
        use_cublas_ = on;
    }
    // What the prefill products run on: "cublas", or "own kernels (<why>)".
    std::string gemm_engine() {
        if (gemm_) return "cublas";
        std::string why;
        if (!cuda_cublas_available(&why)) return "own kernels (" + why + ")";
        return gemm_failed_.empty() ? "cublas (not started yet)" : "own kernels (" + gemm_failed_ + ")";
    }
    size_t graph_captures() const { return graph_captures_; }

private:
    struct graph_entry {
        std::vector<uint64_t> sig;
        cudaGraphExec_t exec = nullptr;
        uint64_t last_use = 0;
    };

    void sig(std::initializer_list<uint64_t> words) { sig_.insert(sig_.end(), words); }

    // A queued matrix-vector launch that the next ops may still join (bias, residual add,
    // SwiGLU, another matmul of the same input) while it is the last op of the queue.
    struct mm_group {
        cuda_matvec_set set;
        const float *x = nullptr;
        int n = 0;
    };
    // An rms_norm held back for the matrix-vector launch that may follow (see rms_norm).
    struct pending_norm {
        const float *x, *g;
        int n, dim;
        float eps;
        float *y;
    };
    // A swiglu held back for the cuBLAS product that may follow (see swiglu).
    struct pending_swiglu {
        const float *gate, *up;
        size_t count;
        float *y;
    };
    // Ends any fusion in progress: a held-back rms_norm or swiglu becomes its own launch; no launch
    // stays open.
    void close_open() {
        open_mm_.reset();
        if (norm_) {
            const pending_norm p = *norm_;
            norm_.reset();
            queue_.push_back([=] { cuda_rms_norm(p.x, p.g, p.n, p.dim, p.eps, p.y, stream_); });
        }
        if (swiglu_) {
            const pending_swiglu p = *swiglu_;
            swiglu_.reset();
            queue_.push_back([=] { cuda_swiglu(p.gate, p.up, p.count, p.y, stream_); });
        }
    }
    // The held-back rms_norm as its own launch writing the bf16 copy of its rows into ws (for the
    // cuBLAS product after it) and its f32 rows unless discard() drops them (see norm_out_).
    void emit_norm_bf16(void *ws) {
        const pending_norm p = *norm_;
        norm_.reset();
        auto skip = std::make_shared<bool>(false);
        queue_.push_back([=] { cuda_rms_norm(p.x, p.g, p.n, p.dim, p.eps, *skip ? nullptr : p.y, stream_, ws); });
        norm_out_ = norm_out{p.y, (size_t)p.n * p.dim * 4, skip};
    }
    // Called by an op about to be pushed that reads `in` as f32 (null: it reads nothing the norm
    // wrote, e.g. only the bf16 copy) and writes `outs`: whether the norm's f32 rows stay unread and
    // unwritten by it, so that a discard() after it may still drop them.
    void spares_norm_out(const void *in, size_t in_bytes, std::initializer_list<std::pair<const void *, size_t>> outs) {
        if (!norm_out_) return;
        bool spared = !(in && ranges_overlap(in, in_bytes, norm_out_->y, norm_out_->bytes));
        for (const auto &[p, b] : outs) spared = spared && !ranges_overlap(p, b, norm_out_->y, norm_out_->bytes);
        spare_norm_out_ = spared;
    }
    // An op that reads [p, p + bytes) as f32 without being pushed (a held-back or joined op).
    void reads_f32(const void *p, size_t bytes) {
        if (norm_out_ && p && ranges_overlap(p, bytes, norm_out_->y, norm_out_->bytes)) norm_out_.reset();
    }
    void push(std::function<void()> fn) {
        close_open();
        last_gemm_input_.reset();
        recent_gemms_.clear();
        if (!spare_norm_out_) norm_out_.reset();
        spare_norm_out_ = false;
        queue_.push_back(std::move(fn));
    }
    // Whether a prefill product of w on x goes to cuBLAS (starting it on first use).
    bool gemm_usable(const weight &w, const float *x) {
        if (!use_cublas_ || !cuda_gemm::takes(w) || ((uintptr_t)x % 16) != 0 || !gemm_failed_.empty()) return false;
        if (!gemm_) {
            std::string why;
            if (!cuda_cublas_available(&why)) {
                gemm_failed_ = why;
                return false;
            }
            try {
                gemm_ = std::make_unique<cuda_gemm>(stream_);
            } catch (const error &e) {
                gemm_failed_ = e.what();
                return false;
            }
        }
        return true;
    }
    static bool ranges_overlap(const void *a, size_t an, const void *b, size_t bn) {
        const uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
        return a0 < b0 + bn && b0 < a0 + an;
    }
    // Whether [p, p + bytes) touches the group's input, outputs or accumulation targets: a fused
    // write there would race with the launch (the separate ops would have been ordered).
    bool overlaps_group(const mm_group &g, const void *p, size_t bytes) const {
        if (ranges_overlap(p, bytes, g.x, (size_t)g.n * g.set.w[0].ne0 * 4)) return true;
        if (g.set.norm_x && (ranges_overlap(p, bytes, g.set.norm_x, (size_t)g.n * g.set.w[0].ne0 * 4) ||
                             ranges_overlap(p, bytes, g.set.norm_g, (size_t)g.set.w[0].ne0 * 4)))
            return true;
        for (int i = 0; i < g.set.n_members; i++) {
            const size_t yb = (size_t)g.n * g.set.w[i].ne1 * 4;
            if (ranges_overlap(p, bytes, g.set.y[i], yb)) return true;
            if (g.set.acc[i] && ranges_overlap(p, bytes, g.set.acc[i], yb)) return true;
            if (g.set.bias[i] && ranges_overlap(p, bytes, g.set.bias[i], (size_t)g.set.w[i].ne1 * 4)) return true;
        }
        return false;
    }

    // Makes room for `bytes` more staged bytes in this batch (flushing the queue if it must).
    void stage_reserve(size_t bytes) {
        if (stage_used_ + bytes <= stage_cap_) return;
        flush();
        // grow (up to 64 MiB) so that a whole token step fits one batch, hence one graph
        if (bytes > stage_cap_ || stage_cap_ < ((size_t)64 << 20)) stage_grow(std::max(bytes, 2 * stage_cap_));
    }
    // Copies bytes (taking `reserve` >= bytes of room, 16-byte aligned) into the staging buffer;
    // returns the offset, valid on the device side after the next flush's first copy.
    size_t stage(const void *src, size_t bytes, size_t reserve) {
        reserve = (reserve + 15) / 16 * 16;
        stage_reserve(reserve);
        if (stage_used_ == 0 && stage_inflight_) {
            // the previous batch's copy must have left the buffer before it is overwritten
            CUDA_CHECK(cudaEventSynchronize(stage_done_));
            stage_inflight_ = false;
        }
        const size_t off = stage_used_;
        if (bytes) std::memcpy(stage_host_ + off, src, bytes);
        if (reserve > bytes) std::memset(stage_host_ + off + bytes, 0, reserve - bytes);
        stage_used_ += reserve;
        return off;
    }
    void stage_grow(size_t bytes) {
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        clear_graphs();  // graphs hold the old buffers' addresses
        if (stage_host_) CUDA_CHECK(cudaFreeHost(stage_host_));
        if (stage_dev_) {
            alloc_bytes_.erase(stage_dev_);
            CUDA_CHECK(cudaFree(stage_dev_));
        }
        stage_host_ = nullptr;
        stage_dev_ = nullptr;
        stage_cap_ = 0;
        CUDA_CHECK(cudaMallocHost((void **)&stage_host_, bytes));
        stage_dev_ = (uint8_t *)alloc(bytes);
        stage_cap_ = bytes;
    }
    // The weight a cuBLAS (prefill) product reads. A quantized weight is decoded to BF16 before every
    // product (into the scratch), so a prefill chunk decoded every weight of the model again: ~6% of a
    // Q8_0 chunk on an H100 (NOTES.md, fifteenth session). Instead its first product makes a BF16 copy
    // (a launch queued in this batch decodes it) that later products read, while decode keeps reading
    // the quantized rows. Copies are a cache: made only while free device memory stays above a
    // reserve (an eighth of the card), all freed when an allocation would otherwise fail (and none
    // made again), a weight's freed with its buffer or when bytes are uploaded or copied over it.
    // Graphs name a copy's address, so a copy never moves, and freeing one drops the graphs.
    weight prefill_weight(const weight &w) {
        if (w.type == GGML_TYPE_BF16 || !copies_on_) return w;
        weight b = w;
        b.type = GGML_TYPE_BF16;
        b.nbytes = (size_t)w.ne0 * (size_t)w.ne1 * 2;
        if (const auto it = copies_.find((uintptr_t)w.data); it != copies_.end()) {
            const bf16_copy &c = it->second;
            if (c.type != w.type || c.ne0 != w.ne0 || c.ne1 != w.ne1) return w;  // another view of the bytes: decoded each time
            b.data = c.p;
            return b;
        }
        if (copies_refused_) return w;
        size_t free_b = 0, total_b = 0;
        void *p = nullptr;
        const bool room = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess &&
                          free_b >= b.nbytes + (copy_reserve_ != SIZE_MAX ? copy_reserve_ : total_b / 8);
        if (!room || cudaMalloc(&p, b.nbytes) != cudaSuccess) {
            cudaGetLastError();
            copies_refused_ = true;  // until a release gives memory back
            return w;
        }
        copies_.emplace((uintptr_t)w.data, bf16_copy{p, cuda_row_bytes(w.type, w.ne0) * (size_t)w.ne1, w.type, w.ne0, w.ne1});
        copies_bytes_ += b.nbytes;
        b.data = p;
        // queued past push(): it touches nothing the fusions watch (a held-back norm still joins the product)
        sig({OP_BF16_COPY, ptr_bits(w.data), ptr_bits(p)});
        wrote(p, b.nbytes);
        open_mm_.reset();
        const weight wc = w;
        queue_.push_back([=] { cuda_gemm_decode_bf16(wc, p, stream_); });
        return b;
    }
    // The weights (prefill_weight) and the scratch of one cuBLAS op; growing the scratch may free the
    // copies (memory pressure), and then the weights are chosen again (as stored).
    template <class F>
    std::vector<weight> gemm_operands(std::initializer_list<const weight *> ws, F &&scratch_bytes, void *&scratch_out) {
        for (;;) {
            const uint64_t dropped = copies_dropped_;
            std::vector<weight> v;
            std::vector<const weight *> pv;
            for (const weight *w : ws) v.push_back(prefill_weight(*w));
            for (const weight &w : v) pv.push_back(&w);
            scratch_out = scratch(scratch_bytes(pv.data()));
            if (dropped == copies_dropped_) return v;
        }
    }
    // Frees the copies of the weights in [lo, hi) (after the queued work that may read them) and the
    // graphs that name them.
    void drop_copies(uintptr_t lo, uintptr_t hi) {
        if (copies_.empty()) return;
        auto first = copies_.lower_bound(lo);
        if (first != copies_.begin() && std::prev(first)->first + std::prev(first)->second.src_bytes > lo) --first;
        const auto last = copies_.lower_bound(hi);
        if (first == last) return;
        flush();
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        clear_graphs();
        for (auto it = first; it != last; ++it) {
            copies_bytes_ -= (size_t)it->second.ne0 * (size_t)it->second.ne1 * 2;
            CUDA_CHECK(cudaFree(it->second.p));
        }
        copies_.erase(first, last);
        copies_dropped_++;
        copies_refused_ = false;
    }
    // Device scratch shared by the ops of a batch (they run in order on one stream).
    void *scratch(size_t bytes) {
        if (bytes <= scratch_cap_) return scratch_;
        flush();
        last_gemm_input_.reset();
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        if (scratch_) {
            alloc_bytes_.erase(scratch_);
            CUDA_CHECK(cudaFree(scratch_));
        }
        scratch_ = nullptr;
        scratch_cap_ = 0;
        const size_t cap = std::max(bytes, (size_t)16 << 20);
        scratch_ = alloc(cap);
        scratch_cap_ = cap;
        return scratch_;
    }
    void clear_graphs() {
        for (auto &e : graphs_) cudaGraphExecDestroy(e.exec);
        graphs_.clear();
    }

    // Runs the batch's queued launches (flush has sent its staged bytes first).
    void run_batch() {
        for (auto &op : queue_) op();
    }

    void flush() {
        close_open();
        last_gemm_input_.reset();  // a later batch (or a graph of it) must not rely on this one
        if (queue_.empty()) {
            stage_used_ = 0;
            forget_batch();
            open_mm_.reset();
            return;
        }
        CUDA_CHECK(cudaSetDevice(device_));
        sig_.push_back(stage_used_);
        open_mm_.reset();
        split_armed_ = false;
        struct reset {
            cuda_backend *b;
            ~reset() { b->queue_.clear(); b->stage_used_ = 0; b->sig_.clear(); b->forget_batch(); }
        } reset_at_exit{this};
        const bool repeat = graphs_enabled_ && queue_.size() >= GRAPH_MIN_OPS;
        // the staged bytes go over first, outside any graph: the event after that copy lets the next
        // batch stage into the host buffer without waiting for this one's kernels
        if (stage_used_) {
            CUDA_CHECK(cudaMemcpyAsync(stage_dev_, stage_host_, stage_used_, cudaMemcpyHostToDevice, stream_));
            CUDA_CHECK(cudaEventRecord(stage_done_, stream_));
        }
        graph_entry *entry = nullptr;
        if (repeat)
            for (auto &e : graphs_)
                if (e.sig == sig_) { entry = &e; break; }
        if (entry) {
            entry->last_use = ++use_clock_;
            CUDA_CHECK(cudaGraphLaunch(entry->exec, stream_));
            graph_launches_++;
        } else {
            run_batch();
            // A batch seen twice in a row (a decode step, a prefill chunk of a repeating shape) is
            // captured for its next use, after its launches: the capture and instantiation (~5 ms
            // for a 4096-token chunk's ~450 launches on an H100) then run on the host while the
            // device works through this batch, instead of holding the device idle before it.
            // The batch has run: a capture that fails (e.g. no memory left to instantiate the graph)
            // costs only the replay, so it is not this batch's error; the next use tries again. A
            // fault of the batch's own kernels surfaces at the next synchronizing call. (A token step
            // sent as two batches alternates them: seen two batches back counts as a repeat too.)
            if (repeat && (sig_ == last_sig_ || sig_ == last_sig2_)) {
                try {
                    capture();
                } catch (const error &) {
                    cudaGetLastError();
                    graph_capture_failures_++;
                }
            }
        }
        if (stage_used_) stage_inflight_ = true;  // (until stage() has waited for stage_done_)
        last_sig2_.swap(last_sig_);
        last_sig_.swap(sig_);
    }

    graph_entry *capture() {
        CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        try {
            run_batch();
        } catch (...) {
            cudaGraph_t g = nullptr;
            cudaStreamEndCapture(stream_, &g);
            if (g) cudaGraphDestroy(g);
            cudaGetLastError();
            throw;
        }
        cudaGraph_t g = nullptr;
        CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
        cudaGraphDestroy(g);
        CUDA_CHECK(err);
        if (graphs_.size() >= GRAPH_CACHE) {
            auto lru = std::min_element(graphs_.begin(), graphs_.end(),
                                        [](const graph_entry &x, const graph_entry &y) { return x.last_use < y.last_use; });
            cudaGraphExecDestroy(lru->exec);
            graphs_.erase(lru);
        }
        graphs_.push_back(graph_entry{sig_, exec, 0});
        graph_captures_++;
        return &graphs_.back();
    }

    int device_ = 0;
    std::string name_;
    int n_sm_ = 1;
    cudaStream_t stream_ = nullptr;
    cudaEvent_t stage_done_ = nullptr;
    bool stage_inflight_ = false;
    uint8_t *stage_host_ = nullptr;  // pinned
    uint8_t *stage_dev_ = nullptr;
    size_t stage_cap_ = 0, stage_used_ = 0;
    uint8_t *bounce_ = nullptr;      // pinned, for downloads
    size_t bounce_cap_ = 0;
    void *scratch_ = nullptr;
    size_t scratch_cap_ = 0;
    std::vector<std::function<void()>> queue_;
    std::shared_ptr<mm_group> open_mm_;
    std::optional<pending_norm> norm_;
    std::optional<pending_swiglu> swiglu_;
    // The key list the attention ops of this batch staged (see attention); forgotten at every flush.
    struct staged_keys {
        size_t off;
        int n_keys, bucket;
        int32_t max_slot;
    };
    std::optional<staged_keys> staged_keys_;
    // What the queued batch writes, for the one-query attention's early K/V loads (see attention):
    // every op's output range, and the cache rows of each kv_store. Forgotten at every flush.
    struct batch_write {
        uintptr_t lo, hi;
    };
    struct kv_write {
        const float *k_cache, *v_cache;
        int row;
        int32_t max_slot;
        int n;                               // rows stored
        int32_t slots[CUDA_A1_MAX_FRESH];    // their slots (the first ones, when n is larger)
    };
    std::vector<batch_write> batch_writes_;
    std::vector<kv_write> batch_kv_;
    void wrote(const void *p, size_t bytes) {
        if (!bytes) return;
        // a decode step writes the same few activation buffers layer after layer: a range inside
        // one of the last few recorded adds nothing (and the attention's scan stays short)
        const uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
        const size_t n = batch_writes_.size();
        for (size_t i = n > 16 ? n - 16 : 0; i < n; i++)
            if (batch_writes_[i].lo <= lo && hi <= batch_writes_[i].hi) return;
        batch_writes_.push_back({lo, hi});
    }
    void forget_batch() {
        recent_gemms_.clear();
        norm_out_.reset();
        staged_keys_.reset();
        batch_writes_.clear();
        batch_kv_.clear();
    }
    // The input the last queued op (a cuBLAS product) converted into the scratch.
    struct gemm_input {
        const float *x;
        int n;
        int64_t k;
        bool precise;
        void *scratch;
        bool operator==(const gemm_input &o) const {
            return x == o.x && n == o.n && k == o.k && precise == o.precise && scratch == o.scratch;
        }
    };
    std::optional<gemm_input> last_gemm_input_;
    // Queued cuBLAS products (default mode) whose output no op queued after them has read or written:
    // an add_bias of that output joins the product's epilogue (bias is read when the batch runs).
    struct gemm_rec {
        weight w;
        const float *y;
        int n;
        const float *bias;
        size_t bytes() const { return (size_t)n * w.ne1 * 4; }
    };
    std::vector<std::shared_ptr<gemm_rec>> recent_gemms_;
    // The f32 rows of the last rms_norm that handed its bf16 copy to a cuBLAS product, while every op
    // queued since read only that copy: discard() of those rows makes the norm's launch skip them
    // (*skip, read when the batch runs). Any other op ends the chance (push, reads_f32).
    struct norm_out {
        const float *y;
        size_t bytes;
        std::shared_ptr<bool> skip;
    };
    std::optional<norm_out> norm_out_;
    bool spare_norm_out_ = false;
    bool discard_on_ = true;
    bool split_on_ = true;      // off: ENDLESS_CUDA_STEP_SPLIT=0
    bool split_armed_ = false;  // since the last host sync, no batch has been sent
    // BF16 copies of quantized weights for cuBLAS products, by the weight's address (prefill_weight)
    struct bf16_copy {
        void *p;
        size_t src_bytes;
        ggml_type type;
        int64_t ne0, ne1;
    };
    std::map<uintptr_t, bf16_copy> copies_;
    size_t copies_bytes_ = 0;
    uint64_t copies_dropped_ = 0;      // drop_copies calls that freed some
    bool copies_on_ = true;            // off: ENDLESS_CUDA_PREFILL_BF16=0, a test, or memory pressure
    bool copies_refused_ = false;      // the last try found too little memory (tried again after a release)
    size_t copy_reserve_ = SIZE_MAX;   // free memory a copy must leave (SIZE_MAX: an eighth of the card)
    std::unordered_map<const void *, size_t> alloc_bytes_;  // alloc()'s buffers and their sizes
    bool precise_ = false;
    bool use_cublas_ = true;
    bool fuse_ = true;  // rms_norm and kv_store into the matrix-vector launches
    std::unique_ptr<cuda_gemm> gemm_;
    std::string gemm_failed_;
    std::vector<uint64_t> sig_, last_sig_, last_sig2_;
    std::vector<graph_entry> graphs_;
    std::vector<int32_t> argmax_ids_;  // argmax's staged penalized ids (host side, reused)
    bool graphs_enabled_ = true;
    uint64_t use_clock_ = 0;
    size_t graph_launches_ = 0, graph_captures_ = 0, graph_capture_failures_ = 0;
    size_t attn_early_ = 0;  // one-query attention ops queued with their fresh rows known
    std::vector<std::pair<cuda_fused_shape, cuda_fused_plan>> fused_plans_;  // decode_layers' plans by shape
    std::vector<cuda_fused_layer> fused_table_;                               // (host side, reused)
    size_t fused_decodes_ = 0;                                                // decode_layers calls that ran fused
};

}  // namespace

int backend_cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::unique_ptr<backend> backend_cuda_create(int device_index) {
    const int n = backend_cuda_device_count();
    if (n == 0) fail(ENDLESS_ERR_DEVICE, "no usable CUDA device (no driver or no GPU)");
    if (device_index < 0 || device_index >= n)
        fail(ENDLESS_ERR_DEVICE, "CUDA device " + std::to_string(device_index) + " does not exist (" + std::to_string(n) +
             " device(s))");
    return std::make_unique<cuda_backend>(device_index);
}

void backend_cuda_set_precise(backend &b, bool on) {
    if (auto *c = dynamic_cast<cuda_backend *>(&b)) c->set_precise(on);
}

void backend_cuda_set_prefill_copies(backend &b, bool on, size_t reserve_bytes) {
    if (auto *c = dynamic_cast<cuda_backend *>(&b)) c->set_prefill_copies(on, reserve_bytes);
}

size_t backend_cuda_prefill_copies(const backend &b, size_t *bytes) {
    const auto *c = dynamic_cast<const cuda_backend *>(&b);
    if (!c) {
        if (bytes) *bytes = 0;
        return 0;
    }
    return c->prefill_copies(bytes);
}

size_t backend_cuda_free_memory(backend &b) {
    auto *c = dynamic_cast<cuda_backend *>(&b);
    return c ? c->free_memory() : 0;
}

void backend_cuda_drop_graphs(backend &b) {
    if (auto *c = dynamic_cast<cuda_backend *>(&b)) c->drop_graphs();
}

void backend_cuda_set_fusion(backend &b, bool on) {
    if (auto *c = dynamic_cast<cuda_backend *>(&b)) c->set_fusion(on);
}

void backend_cuda_set_cublas(backend &b, bool on) {
    if (auto *c = dynamic_cast<cuda_backend *>(&b)) c->set_cublas(on);
}

std::string backend_cuda_gemm_engine(backend &b) {
    auto *c = dynamic_cast<cuda_backend *>(&b);
    return c ? c->gemm_engine() : "not a CUDA backend";
}
void backend_cuda_set_attn_decode1(bool on) { cuda_attention_set_decode1(on); }
bool backend_cuda_attn_wgmma_available() { return cuda_attention_wgmma_device(); }
int backend_cuda_set_attn_wgmma(int mode) { return cuda_attention_set_wgmma(mode); }

void backend_cuda_graph_stats(const backend &b, size_t *launches, size_t *captures) {
    const auto *c = dynamic_cast<const cuda_backend *>(&b);
    if (launches) *launches = c ? c->graph_launches() : 0;
    if (captures) *captures = c ? c->graph_captures() : 0;
}

bool backend_cuda_fused_decode_available() { return cuda_decode_fused_available(nullptr); }
std::string backend_cuda_fused_decode_profile() { return cuda_decode_fused_profile(); }

size_t backend_cuda_fused_decodes(const backend &b) {
    const auto *c = dynamic_cast<const cuda_backend *>(&b);
    return c ? c->fused_decodes() : 0;
}

size_t backend_cuda_attention_early_ops(const backend &b) {
    const auto *c = dynamic_cast<const cuda_backend *>(&b);
    return c ? c->attn_early() : 0;
}

}  // namespace endless
