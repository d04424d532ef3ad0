// Prefill products through cuBLAS, loaded with dlopen (see gemm_cublas.cuh for the why).
//
// Only the few entry points below are used, so their C declarations are written out here (the
// cuBLAS headers need not exist where the engine is built; the values are cuBLAS's stable ABI:
// the _v2 entry points, CUBLAS_OP_N/T = 0/1, CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1).
//
// Layout: y is [n tokens][M outputs] row-major, which column-major BLAS sees as an M x n matrix
// with leading dimension M; W is [M][K] row-major = a K x M column-major matrix used transposed;
// x is [n][K] = K x n column-major. So y = op_T(W) * x: cublasGemmEx(T, N, M, n, K, ...).
#include "gemm_cublas.cuh"
#include "cuda_common.cuh"
#include "elementwise.cuh"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

namespace endless {

namespace {

using cublas_status = int;
using cublas_handle = void *;
using fn_create = cublas_status (*)(cublas_handle *);
using fn_destroy = cublas_status (*)(cublas_handle);
using fn_set_stream = cublas_status (*)(cublas_handle, cudaStream_t);
using fn_set_workspace = cublas_status (*)(cublas_handle, void *, size_t);
using fn_gemm_ex = cublas_status (*)(cublas_handle, int transa, int transb, int m, int n, int k, const void *alpha,
                                     const void *A, cudaDataType_t Atype, int lda, const void *B, cudaDataType_t Btype,
                                     int ldb, const void *beta, void *C, cudaDataType_t Ctype, int ldc, int compute, int algo);
constexpr int OP_N = 0, OP_T = 1, COMPUTE_32F = 68, GEMM_DEFAULT = -1;
constexpr size_t WORKSPACE = (size_t)32 << 20;

// cuBLASLt, for products with a bias epilogue (y = W x + b in one launch). Its handles and
// descriptors are opaque pointers; the values are cublasLt.h's (CUDA 12 and 13): matmul descriptor
// attributes TRANSA 3, TRANSB 4, EPILOGUE 7, BIAS_POINTER 8, BIAS_DATA_TYPE 26; epilogue BIAS 4;
// preference MAX_WORKSPACE_BYTES 1. The heuristic result is {algo (8 x uint64), workspace size,
// status, waves, 4 reserved ints}.
using lt_handle = void *;
using lt_desc = void *;
using lt_layout = void *;
using lt_pref = void *;
struct lt_algo { uint64_t data[8]; };
struct lt_heuristic {
    lt_algo algo;
    size_t workspace_size;
    int state;
    float waves;
    int reserved[4];
};
static_assert(sizeof(lt_heuristic) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");
constexpr int LT_DESC_TRANSA = 3, LT_DESC_TRANSB = 4, LT_DESC_EPILOGUE = 7, LT_DESC_BIAS_POINTER = 8, LT_DESC_BIAS_TYPE = 26;
constexpr int LT_EPILOGUE_BIAS = 4, LT_PREF_MAX_WORKSPACE = 1;
using fn_lt_create = cublas_status (*)(lt_handle *);
using fn_lt_destroy = cublas_status (*)(lt_handle);
using fn_lt_desc_create = cublas_status (*)(lt_desc *, int compute, cudaDataType_t scale);
using fn_lt_desc_destroy = cublas_status (*)(lt_desc);
using fn_lt_desc_set = cublas_status (*)(lt_desc, int attr, const void *buf, size_t bytes);
using fn_lt_layout_create = cublas_status (*)(lt_layout *, cudaDataType_t, uint64_t rows, uint64_t cols, int64_t ld);
using fn_lt_layout_destroy = cublas_status (*)(lt_layout);
using fn_lt_pref_create = cublas_status (*)(lt_pref *);
using fn_lt_pref_destroy = cublas_status (*)(lt_pref);
using fn_lt_pref_set = cublas_status (*)(lt_pref, int attr, const void *buf, size_t bytes);
using fn_lt_heuristic = cublas_status (*)(lt_handle, lt_desc, lt_layout A, lt_layout B, lt_layout C, lt_layout D, lt_pref, int requested,
                                          lt_heuristic *results, int *returned);
using fn_lt_matmul = cublas_status (*)(lt_handle, lt_desc, const void *alpha, const void *A, lt_layout, const void *B, lt_layout,
                                       const void *beta, const void *C, lt_layout, void *D, lt_layout, const lt_algo *, void *workspace,
                                       size_t workspace_bytes, cudaStream_t);

struct cublas_api {
    bool ok = false;
    std::string why;
    fn_create create = nullptr;
    fn_destroy destroy = nullptr;
    fn_set_stream set_stream = nullptr;
    fn_set_workspace set_workspace = nullptr;
    fn_gemm_ex gemm_ex = nullptr;
    // cuBLASLt (bias epilogues); lt_ok false leaves those products on GemmEx plus a bias launch
    bool lt_ok = false;
    fn_lt_create lt_create = nullptr;
    fn_lt_destroy lt_destroy = nullptr;
    fn_lt_desc_create desc_create = nullptr;
    fn_lt_desc_destroy desc_destroy = nullptr;
    fn_lt_desc_set desc_set = nullptr;
    fn_lt_layout_create layout_create = nullptr;
    fn_lt_layout_destroy layout_destroy = nullptr;
    fn_lt_pref_create pref_create = nullptr;
    fn_lt_pref_destroy pref_destroy = nullptr;
    fn_lt_pref_set pref_set = nullptr;
    fn_lt_heuristic heuristic = nullptr;
    fn_lt_matmul lt_matmul = nullptr;
};

// dlopen of <base>.so.13, .so.12 or .so: in the toolkit this was built against first, then on the
// loader's search path. errs gets the first failure's message.
void *open_library(const std::string &base, std::string &errs) {
    std::vector<std::string> names;
#ifdef ENDLESS_CUBLAS_DIR
    for (const char *v : {".so.13", ".so.12", ".so"}) names.push_back(std::string(ENDLESS_CUBLAS_DIR) + "/" + base + v);
#endif
    for (const char *v : {".so.13", ".so.12", ".so"}) names.push_back(base + v);
    for (const std::string &n : names) {
        if (void *lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) return lib;
        const char *e = dlerror();
        if (errs.empty() && e) errs = e;
    }
    return nullptr;
}

const cublas_api &api() {
    static cublas_api a;
    static std::once_flag once;
    std::call_once(once, [] {
        const char *off = std::getenv("ENDLESS_CUBLAS");
        if (off && std::string(off) == "0") {
            a.why = "ENDLESS_CUBLAS=0";
            return;
        }
        std::string errs;
        void *lib = open_library("libcublas", errs);
        if (!lib) {
            a.why = "cuBLAS not found (" + errs + ")";
            return;
        }
        a.create = (fn_create)dlsym(lib, "cublasCreate_v2");
        a.destroy = (fn_destroy)dlsym(lib, "cublasDestroy_v2");
        a.set_stream = (fn_set_stream)dlsym(lib, "cublasSetStream_v2");
        a.set_workspace = (fn_set_workspace)dlsym(lib, "cublasSetWorkspace_v2");
        a.gemm_ex = (fn_gemm_ex)dlsym(lib, "cublasGemmEx");
        if (!a.create || !a.destroy || !a.set_stream || !a.set_workspace || !a.gemm_ex) {
            a.why = "cuBLAS lacks an entry point this engine uses";
            return;  // the library stays loaded: harmless
        }
        a.ok = true;
        // cuBLASLt ships beside cuBLAS (which itself depends on it); optional
        const char *off_lt = std::getenv("ENDLESS_CUBLASLT");
        if (off_lt && std::string(off_lt) == "0") return;
        std::string lt_errs;
        void *lt = open_library("libcublasLt", lt_errs);
        if (!lt) return;
        // every entry point or none
        const std::pair<void **, const char *> syms[] = {
            {(void **)&a.lt_create, "cublasLtCreate"}, {(void **)&a.lt_destroy, "cublasLtDestroy"},
            {(void **)&a.desc_create, "cublasLtMatmulDescCreate"}, {(void **)&a.desc_destroy, "cublasLtMatmulDescDestroy"},
            {(void **)&a.desc_set, "cublasLtMatmulDescSetAttribute"}, {(void **)&a.layout_create, "cublasLtMatrixLayoutCreate"},
            {(void **)&a.layout_destroy, "cublasLtMatrixLayoutDestroy"}, {(void **)&a.pref_create, "cublasLtMatmulPreferenceCreate"},
            {(void **)&a.pref_destroy, "cublasLtMatmulPreferenceDestroy"}, {(void **)&a.pref_set, "cublasLtMatmulPreferenceSetAttribute"},
            {(void **)&a.heuristic, "cublasLtMatmulAlgoGetHeuristic"}, {(void **)&a.lt_matmul, "cublasLtMatmul"}};
        a.lt_ok = true;
        for (const auto &[slot, name] : syms) {
            *slot = dlsym(lt, name);
            a.lt_ok = a.lt_ok && *slot;
        }
    });
    return a;
}

void cublas_check(cublas_status st, const char *what) {
    if (st == 0) return;
    fail(st == 3 ? ENDLESS_ERR_OUT_OF_MEMORY : ENDLESS_ERR_DEVICE,
         std::string("cuBLAS ") + what + " failed with status " + std::to_string(st));
}

// x [n, K] f32 -> hi [n, K] bf16 (and lo = x - hi as bf16 when lo is set). Four values a thread.
__global__ void gemm_convert_x_kernel(const float4 *x, size_t count4, uint2 *hi, uint2 *lo) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count4; i += (size_t)gridDim.x * blockDim.x) {
        const float4 v = x[i];
        const __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        uint2 h;
        h.x = *reinterpret_cast<const uint32_t *>(&a);
        h.y = *reinterpret_cast<const uint32_t *>(&b);
        hi[i] = h;
        if (lo) {
            const float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
            const __nv_bfloat162 la = __floats2bfloat162_rn(v.x - fa.x, v.y - fa.y), lb = __floats2bfloat162_rn(v.z - fb.x, v.w - fb.y);
            uint2 l;
            l.x = *reinterpret_cast<const uint32_t *>(&la);
            l.y = *reinterpret_cast<const uint32_t *>(&lb);
            lo[i] = l;
        }
    }
}

// A quantized matrix [M][K] -> BF16 [M][K], 16 values a thread through the shared decoder.
__global__ void gemm_dequant_kernel(ggml_type type, const uint8_t *W, size_t row_bytes, int64_t M, int64_t K, uint4 *out) {
    const int64_t per_row = K / 16;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * per_row) return;
    const int64_t r = i / per_row, k0 = (i - r * per_row) * 16;
    float v[16];
    dev_dequant16(type, W + (size_t)r * row_bytes, k0, v);
    uint32_t p[8];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
        p[j] = *reinterpret_cast<const uint32_t *>(&h);
    }
    out[2 * i] = make_uint4(p[0], p[1], p[2], p[3]);
    out[2 * i + 1] = make_uint4(p[4], p[5], p[6], p[7]);
}

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// x [n][K] f32 -> bf16 hi (and, for precise mode, the remainder lo) in the scratch.
void gemm_convert_x(const float *x, int n, int64_t K, uint2 *hi, uint2 *lo, cudaStream_t stream) {
    const size_t count4 = (size_t)n * (size_t)K / 4;
    const unsigned blocks = (unsigned)std::min<size_t>(cuda_blocks(count4, 256), 4096);
    gemm_convert_x_kernel<<<blocks, 256, 0, stream>>>((const float4 *)x, count4, hi, lo);
    CUDA_CHECK_LAUNCH("gemm convert");
}

// The weight as BF16 for GemmEx: as stored, or a quantized weight decoded into wq.
const void *gemm_weight_bf16(const weight &w, uint4 *wq, cudaStream_t stream) {
    if (w.type == GGML_TYPE_BF16) return w.data;
    cuda_gemm_decode_bf16(w, wq, stream);
    return wq;
}

}  // namespace

void cuda_gemm_decode_bf16(const weight &w, void *out, cudaStream_t stream) {
    const int64_t tasks = w.ne1 * (w.ne0 / 16);
    gemm_dequant_kernel<<<cuda_blocks((size_t)tasks, 256), 256, 0, stream>>>(w.type, (const uint8_t *)w.data,
                                                                           cuda_row_bytes(w.type, w.ne0), w.ne1, w.ne0, (uint4 *)out);
    CUDA_CHECK_LAUNCH("gemm dequantize");
}

// One cuBLASLt plan per product shape (M outputs, n tokens, K inputs): y[n][M] = x W^T + b with BF16
// operands, f32 output and bias, f32 accumulation; the bias pointer is set at each call.
struct cuda_gemm::lt_state {
    struct plan {
        int64_t M, K;
        int n;
        bool ok = false;
        lt_desc desc = nullptr;
        lt_layout a = nullptr, b = nullptr, d = nullptr;
        lt_algo algo{};
    };
    lt_handle handle = nullptr;
    std::vector<plan> plans;
    ~lt_state() {
        const cublas_api &a = api();
        for (plan &p : plans) {
            if (p.desc) a.desc_destroy(p.desc);
            for (lt_layout l : {p.a, p.b, p.d})
                if (l) a.layout_destroy(l);
        }
        if (handle) a.lt_destroy(handle);
    }
    const plan *find(int64_t M, int n, int64_t K) const {
        for (const plan &p : plans)
            if (p.M == M && p.n == n && p.K == K) return &p;
        return nullptr;
    }
    // Creates the plan (once per shape); ok false when cuBLASLt offers no algorithm for it.
    const plan &get(int64_t M, int n, int64_t K) {
        if (const plan *p = find(M, n, K)) return *p;
        const cublas_api &a = api();
        plan p;
        p.M = M; p.n = n; p.K = K;
        const int32_t ta = OP_T, tb = OP_N, epi = LT_EPILOGUE_BIAS;
        const int32_t bias_type = CUDA_R_32F;
        const uint64_t ws = WORKSPACE;
        lt_pref pref = nullptr;
        bool good = a.desc_create(&p.desc, COMPUTE_32F, CUDA_R_32F) == 0 && a.desc_set(p.desc, LT_DESC_TRANSA, &ta, 4) == 0 &&
                    a.desc_set(p.desc, LT_DESC_TRANSB, &tb, 4) == 0 && a.desc_set(p.desc, LT_DESC_EPILOGUE, &epi, 4) == 0 &&
                    a.desc_set(p.desc, LT_DESC_BIAS_TYPE, &bias_type, 4) == 0 &&
                    // column-major views: W as K x M (used transposed), x as K x n, y as M x n
                    a.layout_create(&p.a, CUDA_R_16BF, (uint64_t)K, (uint64_t)M, K) == 0 &&
                    a.layout_create(&p.b, CUDA_R_16BF, (uint64_t)K, (uint64_t)n, K) == 0 &&
                    a.layout_create(&p.d, CUDA_R_32F, (uint64_t)M, (uint64_t)n, M) == 0 && a.pref_create(&pref) == 0 &&
                    a.pref_set(pref, LT_PREF_MAX_WORKSPACE, &ws, 8) == 0;
        if (good) {
            lt_heuristic h{};
            int returned = 0;
            good = a.heuristic(handle, p.desc, p.a, p.b, p.d, p.d, pref, 1, &h, &returned) == 0 && returned > 0 && h.state == 0 &&
                   h.workspace_size <= WORKSPACE;
            if (good) p.algo = h.algo;
        }
        if (pref) a.pref_destroy(pref);
        p.ok = good;
        plans.push_back(p);
        return plans.back();
    }
};

bool cuda_cublas_available(std::string *why) {
    const cublas_api &a = api();
    if (!a.ok && why) *why = a.why;
    return a.ok;
}

cuda_gemm::cuda_gemm(cudaStream_t stream) : stream_(stream) {
    const cublas_api &a = api();
    if (!a.ok) fail(ENDLESS_ERR_UNSUPPORTED, "cuBLAS is not available: " + a.why);
    cublas_handle h = nullptr;
    cublas_check(a.create(&h), "create");
    handle_ = h;
    const cudaError_t err = cudaMalloc(&workspace_, WORKSPACE);
    if (err != cudaSuccess) {
        cudaGetLastError();
        a.destroy(h);
        handle_ = nullptr;
        fail(ENDLESS_ERR_OUT_OF_MEMORY, "CUDA out of memory allocating the cuBLAS workspace");
    }
    cublas_check(a.set_stream(h, stream_), "set stream");
    cublas_check(a.set_workspace(h, workspace_, WORKSPACE), "set workspace");
}

cuda_gemm::~cuda_gemm() {
    lt_.reset();  // (its plans and handle before the cuBLAS handle)
    if (handle_) api().destroy(handle_);
    if (workspace_) cudaFree(workspace_);
}

bool cuda_gemm::bias_epilogue(const weight &w, int n) {
    const cublas_api &a = api();
    if (!a.lt_ok || n <= 0 || w.ne1 % 4 != 0) return false;
    if (!lt_) {
        lt_ = std::make_unique<lt_state>();
        if (a.lt_create(&lt_->handle) != 0) {
            lt_->handle = nullptr;
            return false;
        }
    }
    if (!lt_->handle) return false;
    return lt_->get(w.ne1, n, w.ne0).ok;
}

bool cuda_gemm::takes(const weight &w) {
    if (w.ne0 % 16 != 0 || ((uintptr_t)w.data % 16) != 0 || w.ne0 > (1 << 30) || w.ne1 > (1 << 30)) return false;
    switch (w.type) {
    case GGML_TYPE_BF16:
        return true;
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K:
        return (size_t)w.ne0 * (size_t)w.ne1 * 2 <= GEMM_DEQUANT_MAX;
    default:
        return false;
    }
}

size_t cuda_gemm::scratch_bytes(const weight &w, int n, bool precise) {
    const size_t part = align256((size_t)n * (size_t)w.ne0 * 2);
    const size_t wcopy = w.type == GGML_TYPE_BF16 ? 0 : align256((size_t)w.ne0 * (size_t)w.ne1 * 2);
    return part * (precise ? 2 : 1) + wcopy;
}

size_t cuda_gemm::ffn_scratch_bytes(const weight &gate, const weight &up, const weight &down, int n) {
    size_t wcopy = 0;
    for (const weight *w : {&gate, &up, &down})
        if (w->type != GGML_TYPE_BF16) wcopy = std::max(wcopy, align256((size_t)w->ne0 * (size_t)w->ne1 * 2));
    return align256((size_t)n * (size_t)gate.ne0 * 2) + align256((size_t)n * (size_t)down.ne0 * 2) + wcopy;
}

void cuda_gemm::ffn_swiglu(const weight &gate, const weight &up, const weight &down, const float *h, int n, float *x, void *gate_bf,
                           void *up_bf, void *scratch, bool h_ready) {
    const cublas_api &a = api();
    const int64_t d = gate.ne0, ff = gate.ne1;
    uint8_t *s = (uint8_t *)scratch;
    uint2 *hh = (uint2 *)s, *sh = (uint2 *)(s + align256((size_t)n * d * 2));
    uint4 *wq = (uint4 *)(s + align256((size_t)n * d * 2) + align256((size_t)n * ff * 2));
    if (!h_ready) gemm_convert_x(h, n, d, hh, nullptr, stream_);
    // quantized weights are decoded into the same scratch one at a time, in stream order
    auto bf16_of = [&](const weight &w) { return gemm_weight_bf16(w, wq, stream_); };
    const float one = 1.0f, zero = 0.0f;
    cublas_check(a.gemm_ex(handle_, OP_T, OP_N, (int)ff, n, (int)d, &one, bf16_of(gate), CUDA_R_16BF, (int)d, hh, CUDA_R_16BF, (int)d,
                           &zero, gate_bf, CUDA_R_16BF, (int)ff, COMPUTE_32F, GEMM_DEFAULT),
                 "GemmEx (ffn gate)");
    cublas_check(a.gemm_ex(handle_, OP_T, OP_N, (int)ff, n, (int)d, &one, bf16_of(up), CUDA_R_16BF, (int)d, hh, CUDA_R_16BF, (int)d,
                           &zero, up_bf, CUDA_R_16BF, (int)ff, COMPUTE_32F, GEMM_DEFAULT),
                 "GemmEx (ffn up)");
    cuda_swiglu_bf16(gate_bf, up_bf, (size_t)n * (size_t)ff, sh, stream_);
    cublas_check(a.gemm_ex(handle_, OP_T, OP_N, (int)d, n, (int)ff, &one, bf16_of(down), CUDA_R_16BF, (int)ff, sh, CUDA_R_16BF, (int)ff,
                           &one, x, CUDA_R_32F, (int)d, COMPUTE_32F, GEMM_DEFAULT),
                 "GemmEx (ffn down + residual)");
}

void cuda_gemm::matmul(const weight &w, const float *x, int n, float *y, void *scratch, bool precise, bool x_ready, bool accumulate,
                       const float *bias) {
    const cublas_api &a = api();
    const int64_t K = w.ne0, M = w.ne1;
    uint8_t *s = (uint8_t *)scratch;
    const size_t part = align256((size_t)n * (size_t)K * 2);
    uint2 *xh = (uint2 *)s, *xl = precise ? (uint2 *)(s + part) : nullptr;
    const void *wd = gemm_weight_bf16(w, (uint4 *)(s + part * (precise ? 2 : 1)), stream_);
    if (!x_ready) gemm_convert_x(x, n, K, xh, xl, stream_);
    const float one = 1.0f, zero = 0.0f;
    if (bias) {
        const lt_state::plan *p = lt_ ? lt_->find(M, n, K) : nullptr;
        if (!p || !p->ok || precise || accumulate) fail(ENDLESS_ERR_INTERNAL, "cuBLASLt bias product without a plan for its shape");
        cublas_check(a.desc_set(p->desc, LT_DESC_BIAS_POINTER, &bias, sizeof(bias)), "Lt bias pointer");
        cublas_check(a.lt_matmul(lt_->handle, p->desc, &one, wd, p->a, xh, p->b, &zero, y, p->d, y, p->d, &p->algo, workspace_,
                                 WORKSPACE, stream_),
                     "LtMatmul (bias)");
        return;
    }
    cublas_check(a.gemm_ex(handle_, OP_T, OP_N, (int)M, n, (int)K, &one, wd, CUDA_R_16BF, (int)K, xh, CUDA_R_16BF, (int)K,
                           accumulate ? &one : &zero, y, CUDA_R_32F, (int)M, COMPUTE_32F, GEMM_DEFAULT),
                 "GemmEx");
    if (precise)
        cublas_check(a.gemm_ex(handle_, OP_T, OP_N, (int)M, n, (int)K, &one, wd, CUDA_R_16BF, (int)K, xl, CUDA_R_16BF, (int)K,
                               &one, y, CUDA_R_32F, (int)M, COMPUTE_32F, GEMM_DEFAULT),
                     "GemmEx (low part)");
}

}  // namespace endless
