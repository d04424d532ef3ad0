// Matrix-vector kernels for decode (n = 1..8 tokens). The weight matrix is read exactly once per
// call, so these kernels are limited by memory bandwidth: each warp owns one weight row and keeps
// several 16-byte loads in flight. Float rows (F32/F16/BF16) load straight into registers.
// Quantized rows are not 16-byte aligned block by block (Q8_0 blocks are 34 bytes), so a warp
// copies a 2048-value stretch of its row into shared memory with aligned 16-byte loads (the next
// stretch is loaded into registers while the current one is decoded) and each lane then decodes
// 4 consecutive values at a time; the activations x stay in L1/L2 and are read as float4.
#include "matvec.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {

constexpr int MV_WARPS = 4;           // rows per block
constexpr int MV_ITER = 2048;         // values per warp iteration (quantized path)
constexpr int MV_SMEM = 2240;         // bytes of shared memory per warp (max stretch + alignment slack)
constexpr int MV_LOADS = MV_SMEM / 16 / 32 + 1;  // 16-byte loads per lane per stretch (5)

// Kernel-side copy of cuda_matvec_set: a warp's task t is a row of one member (rows of the
// members follow each other), or in SwiGLU mode row t of both gate and up.
struct mv_params {
    const uint8_t *W[CUDA_MATVEC_MAX_SET];
    float *y[CUDA_MATVEC_MAX_SET];
    const float *bias[CUDA_MATVEC_MAX_SET];
    float *acc[CUDA_MATVEC_MAX_SET];
    int64_t M[CUDA_MATVEC_MAX_SET];
    int64_t row_start[CUDA_MATVEC_MAX_SET + 1];
    int n_members;
    float *swiglu_out;
    const float *x;
    int64_t K;
    size_t row_bytes;
};

__device__ __forceinline__ bool mv_task(const mv_params &P, int64_t t, int &m, int64_t &row) {
    if (P.swiglu_out) { m = 0; row = t; return t < P.M[0]; }
    if (t >= P.row_start[P.n_members]) return false;
    m = 0;
#pragma unroll
    for (int i = 1; i < CUDA_MATVEC_MAX_SET; i++)
        if (i < P.n_members && t >= P.row_start[i]) m = i;
    row = t - P.row_start[m];
    return true;
}

template <int N>
__device__ __forceinline__ void mv_epilogue(const mv_params &P, int m, int64_t row, float (&acc)[N], int lane) {
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = warp_sum(acc[t]);
    if (lane != 0) return;
    const int64_t M = P.M[m];
    const float b = P.bias[m] ? P.bias[m][row] : 0.0f;
#pragma unroll
    for (int t = 0; t < N; t++) {
        const float v = acc[t] + b;
        const size_t i = (size_t)t * M + row;
        P.y[m][i] = v;
        if (P.acc[m]) P.acc[m][i] += v;
    }
}

// SwiGLU pair: g from member 0, u from member 1 (biases and accumulations do not apply).
template <int N>
__device__ __forceinline__ void mv_epilogue_swiglu(const mv_params &P, int64_t row, float (&g)[N], float (&u)[N], int lane) {
#pragma unroll
    for (int t = 0; t < N; t++) { g[t] = warp_sum(g[t]); u[t] = warp_sum(u[t]); }
    if (lane != 0) return;
    const int64_t M = P.M[0];
#pragma unroll
    for (int t = 0; t < N; t++) {
        const size_t i = (size_t)t * M + row;
        P.y[1][i] = u[t];
        if (P.swiglu_out != P.y[0]) P.y[0][i] = g[t];
        P.swiglu_out[i] = (float)((double)g[t] / (1.0 + exp(-(double)g[t])) * (double)u[t]);
    }
}

template <int N>
__device__ __forceinline__ void mv_fma8(float (&acc)[N], const float *w, const float *x, int64_t K, int64_t k) {
#pragma unroll
    for (int t = 0; t < N; t++) {
        const float4 a = __ldg(reinterpret_cast<const float4 *>(x + (size_t)t * K + k));
        const float4 b = __ldg(reinterpret_cast<const float4 *>(x + (size_t)t * K + k + 4));
        float s = acc[t];
        s = fmaf(w[0], a.x, s); s = fmaf(w[1], a.y, s); s = fmaf(w[2], a.z, s); s = fmaf(w[3], a.w, s);
        s = fmaf(w[4], b.x, s); s = fmaf(w[5], b.y, s); s = fmaf(w[6], b.z, s); s = fmaf(w[7], b.w, s);
        acc[t] = s;
    }
}

// F16 / BF16 / F32 rows: chunk c holds 8 values (16 bytes for halves, 32 for f32).
template <int N, ggml_type T>
__device__ __forceinline__ void mv_dot_float(const uint8_t *wr, const float *x, int64_t K, int lane, float (&acc)[N]) {
    constexpr int ES = T == GGML_TYPE_F32 ? 4 : 2;
    const int64_t chunks = K / 8;
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = 0.0f;
    constexpr int U = 8;  // chunks in flight per lane (a 1536-value row: all of it at once)
    for (int64_t c0 = lane; c0 < chunks; c0 += 32 * U) {
        uint4 raw[U][ES / 2];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + 32 * u;
            if (c < chunks) {
#pragma unroll
                for (int h = 0; h < ES / 2; h++)
                    raw[u][h] = __ldg(reinterpret_cast<const uint4 *>(wr + (size_t)c * 8 * ES) + h);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + 32 * u;
            if (c >= chunks) break;
            float wv[8];
            if (T == GGML_TYPE_F32) {
                const float *f0 = reinterpret_cast<const float *>(&raw[u][0]);
#pragma unroll
                for (int j = 0; j < 4; j++) wv[j] = f0[j];
                const float *f1 = reinterpret_cast<const float *>(&raw[u][ES / 2 - 1]);
#pragma unroll
                for (int j = 0; j < 4; j++) wv[4 + j] = f1[j];
            } else {
                const uint32_t r[4] = {raw[u][0].x, raw[u][0].y, raw[u][0].z, raw[u][0].w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const float2 f = T == GGML_TYPE_F16 ? dev_half2_to_f32(r[j]) : dev_bf162_to_f32(r[j]);
                    wv[2 * j] = f.x; wv[2 * j + 1] = f.y;
                }
            }
            mv_fma8<N>(acc, wv, x, K, c * 8);
        }
    }
}

template <int N, ggml_type T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_float_kernel(const mv_params P) {
    const int lane = threadIdx.x & 31;
    const int64_t task = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    int m;
    int64_t row;
    if (!mv_task(P, task, m, row)) return;
    float acc[N];
    mv_dot_float<N, T>(P.W[m] + (size_t)row * P.row_bytes, P.x, P.K, lane, acc);
    if (P.swiglu_out) {
        float up[N];
        mv_dot_float<N, T>(P.W[1] + (size_t)row * P.row_bytes, P.x, P.K, lane, up);
        mv_epilogue_swiglu<N>(P, row, acc, up, lane);
    } else {
        mv_epilogue<N>(P, m, row, acc, lane);
    }
}

// Quantized types: geometry of one 2048-value stretch and the decoding of 4 values at value
// offset e (a multiple of 4) from the stretch's bytes in shared memory.
template <ggml_type T> struct mvq;
template <> struct mvq<GGML_TYPE_Q8_0> {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 34;
    static __device__ __forceinline__ void dequant4(const uint8_t *s, int e, float *w) {
        const uint8_t *b = s + (e / 32) * 34;
        const float d = dev_fp16_to_f32(dev_load_u16(b));
        const uint32_t q = dev_load_u32_a2(b + 2 + (e % 32)) ^ 0x80808080u;
#pragma unroll
        for (int k = 0; k < 4; k++) w[k] = d * dev_i8_to_f32(q, k);
    }
};
template <> struct mvq<GGML_TYPE_Q4_0> {
    static constexpr int BLOCK_VALUES = 32, BLOCK_BYTES = 18;
    static __device__ __forceinline__ void dequant4(const uint8_t *s, int e, float *w) {
        const uint8_t *b = s + (e / 32) * 18;
        const float d = dev_fp16_to_f32(dev_load_u16(b));
        const int o = e % 32;
        const uint32_t q = dev_load_u32_a2(b + 2 + (o & 15)) >> ((o & 16) ? 4 : 0);
        // nibble k sits at bits 8k..8k+3; 2^23 + nibble, minus 2^23 + 8
#pragma unroll
        for (int k = 0; k < 4; k++) w[k] = d * (__uint_as_float(0x4B000000u | ((q >> (8 * k)) & 0x0f)) - 8388616.0f);
    }
};
template <> struct mvq<GGML_TYPE_Q4_K> {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 144;
    static __device__ __forceinline__ void dequant4(const uint8_t *s, int e, float *w) {
        const uint8_t *b = s + (e / 256) * 144;
        const int idx = e % 256, j = idx / 32, l = idx % 32;
        int sc, m;
        dev_q4k_scale_min(b + 4, j, sc, m);
        const float d = dev_fp16_to_f32(dev_load_u16(b)) * (float)sc;
        const float dm = dev_fp16_to_f32(dev_load_u16(b + 2)) * (float)m;
        const uint32_t q = dev_load_u32_a2(b + 16 + 32 * (j / 2) + l) >> ((j & 1) * 4);
#pragma unroll
        for (int k = 0; k < 4; k++) w[k] = d * (__uint_as_float(0x4B000000u | ((q >> (8 * k)) & 0x0f)) - 8388608.0f) - dm;
    }
};
template <> struct mvq<GGML_TYPE_Q6_K> {
    static constexpr int BLOCK_VALUES = 256, BLOCK_BYTES = 210;
    static __device__ __forceinline__ void dequant4(const uint8_t *s, int e, float *w) {
        const uint8_t *b = s + (e / 256) * 210;
        const int idx = e % 256, h = idx / 128, r = idx % 128, k = r / 32, l = r % 32;
        const float d = dev_fp16_to_f32(dev_load_u16(b + 208)) * (float)(int8_t)b[192 + idx / 16];
        const uint32_t lo = dev_load_u32_a2(b + 64 * h + l + 32 * (k & 1)) >> (k < 2 ? 0 : 4);
        const uint32_t hi = dev_load_u32_a2(b + 128 + 32 * h + l) >> (2 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t v = ((lo >> (8 * i)) & 0x0f) | (((hi >> (8 * i)) & 3) << 4);
            w[i] = d * (__uint_as_float(0x4B000000u | v) - 8388640.0f);
        }
    }
};

template <int N, ggml_type T>
__device__ __forceinline__ void mv_dot_quant(const uint8_t *wr, const float *x, int64_t K, uint8_t *sm, int lane, float (&acc)[N]) {
    using Q = mvq<T>;
    constexpr int STRETCH_BYTES = MV_ITER / Q::BLOCK_VALUES * Q::BLOCK_BYTES;
    static_assert(STRETCH_BYTES + 32 <= MV_SMEM, "stretch fits the warp's shared memory");
    const int64_t n_iter = (K + MV_ITER - 1) / MV_ITER;
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = 0.0f;

    // The stretch [it*STRETCH_BYTES, +bytes) is read through the 16-byte aligned window that holds
    // it (allocations carry 64 bytes of slack, so the window never leaves the allocation).
    uint4 regs[MV_LOADS];
    int delta = 0;
    auto load = [&](int64_t it) {
        const int64_t values = min((int64_t)MV_ITER, K - it * MV_ITER);
        const int bytes = (int)(values / Q::BLOCK_VALUES * Q::BLOCK_BYTES);
        const uint8_t *p = wr + (size_t)it * STRETCH_BYTES;
        const uint8_t *p16 = reinterpret_cast<const uint8_t *>((uintptr_t)p & ~(uintptr_t)15);
        delta = (int)(p - p16);
        const int n16 = (delta + bytes + 15) / 16;
#pragma unroll
        for (int i = 0; i < MV_LOADS; i++) {
            const int c = lane + 32 * i;
            if (c < n16) regs[i] = __ldg(reinterpret_cast<const uint4 *>(p16) + c);
        }
        return n16;
    };
    int n16 = load(0);
    for (int64_t it = 0; it < n_iter; it++) {
        __syncwarp();  // every lane is done with the previous stretch
#pragma unroll
        for (int i = 0; i < MV_LOADS; i++) {
            const int c = lane + 32 * i;
            if (c < n16) reinterpret_cast<uint4 *>(sm)[c] = regs[i];
        }
        __syncwarp();
        const int cur_delta = delta;
        const int64_t base = it * MV_ITER;
        const int rem = (int)min((int64_t)MV_ITER, K - base);
        if (it + 1 < n_iter) n16 = load(it + 1);  // next stretch in flight while this one is decoded
#pragma unroll
        for (int s = 0; s < MV_ITER / 128; s++) {
            const int e = 128 * s + 4 * lane;
            if (e < rem) {
                float wv[4];
                Q::dequant4(sm + cur_delta, e, wv);
#pragma unroll
                for (int t = 0; t < N; t++) {
                    const float4 a = __ldg(reinterpret_cast<const float4 *>(x + (size_t)t * K + base + e));
                    float v = acc[t];
                    v = fmaf(wv[0], a.x, v); v = fmaf(wv[1], a.y, v); v = fmaf(wv[2], a.z, v); v = fmaf(wv[3], a.w, v);
                    acc[t] = v;
                }
            }
        }
    }
    __syncwarp();  // a second dot product of this warp reuses the buffer
}

template <int N, ggml_type T>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_quant_kernel(const mv_params P) {
    __shared__ __align__(16) uint8_t smem[MV_WARPS][MV_SMEM];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t task = (int64_t)blockIdx.x * MV_WARPS + warp;
    int m;
    int64_t row;
    if (!mv_task(P, task, m, row)) return;
    float acc[N];
    mv_dot_quant<N, T>(P.W[m] + (size_t)row * P.row_bytes, P.x, P.K, smem[warp], lane, acc);
    if (P.swiglu_out) {
        float up[N];
        mv_dot_quant<N, T>(P.W[1] + (size_t)row * P.row_bytes, P.x, P.K, smem[warp], lane, up);
        mv_epilogue_swiglu<N>(P, row, acc, up, lane);
    } else {
        mv_epilogue<N>(P, m, row, acc, lane);
    }
}

// Anything else (unaligned x, float rows of odd length): 16 values at a time (or one at a time),
// through the shared decoder. Correct for every type; not tuned.
template <int N>
__device__ __forceinline__ void mv_dot_generic(ggml_type type, const uint8_t *wr, const float *x, int64_t K, int lane, float (&acc)[N]) {
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = 0.0f;
    const bool float_type = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
    const bool aligned = ((uintptr_t)wr % 16) == 0;
    if (float_type && (K % 16 != 0 || !aligned)) {
        for (int64_t k = lane; k < K; k += 32) {
            float wv;
            if (type == GGML_TYPE_F32) wv = reinterpret_cast<const float *>(wr)[k];
            else if (type == GGML_TYPE_F16) wv = dev_fp16_to_f32(reinterpret_cast<const uint16_t *>(wr)[k]);
            else wv = dev_bf16_to_f32(reinterpret_cast<const uint16_t *>(wr)[k]);
#pragma unroll
            for (int t = 0; t < N; t++) acc[t] = fmaf(wv, x[(size_t)t * K + k], acc[t]);
        }
    } else {
        for (int64_t k0 = 16 * (int64_t)lane; k0 < K; k0 += 16 * 32) {
            float wv[16];
            dev_dequant16(type, wr, k0, wv);
#pragma unroll
            for (int t = 0; t < N; t++) {
                float v = acc[t];
#pragma unroll
                for (int j = 0; j < 16; j++) v = fmaf(wv[j], x[(size_t)t * K + k0 + j], v);
                acc[t] = v;
            }
        }
    }
}

// Anything else (unaligned x, float rows of odd length): 16 values at a time (or one at a time),
// through the shared decoder. Correct for every type; not tuned.
template <int N>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_generic_kernel(ggml_type type, const mv_params P) {
    const int lane = threadIdx.x & 31;
    const int64_t task = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    int m;
    int64_t row;
    if (!mv_task(P, task, m, row)) return;
    float acc[N];
    mv_dot_generic<N>(type, P.W[m] + (size_t)row * P.row_bytes, P.x, P.K, lane, acc);
    if (P.swiglu_out) {
        float up[N];
        mv_dot_generic<N>(type, P.W[1] + (size_t)row * P.row_bytes, P.x, P.K, lane, up);
        mv_epilogue_swiglu<N>(P, row, acc, up, lane);
    } else {
        mv_epilogue<N>(P, m, row, acc, lane);
    }
}

template <int N>
void matvec_launch(const cuda_matvec_set &set, const float *x, cudaStream_t stream) {
    mv_params P{};
    const weight &w0 = set.w[0];
    const int64_t K = w0.ne0;
    bool w16 = true;
    for (int i = 0; i < set.n_members; i++) {
        P.W[i] = (const uint8_t *)set.w[i].data;
        P.y[i] = set.y[i];
        P.bias[i] = set.bias[i];
        P.acc[i] = set.acc[i];
        P.M[i] = set.w[i].ne1;
        P.row_start[i + 1] = P.row_start[i] + set.w[i].ne1;
        w16 = w16 && ((uintptr_t)P.W[i] % 16) == 0;
    }
    P.n_members = set.n_members;
    P.swiglu_out = set.swiglu_out;
    P.x = x;
    P.K = K;
    P.row_bytes = cuda_row_bytes(w0.type, K);
    const int64_t tasks = set.swiglu_out ? w0.ne1 : P.row_start[set.n_members];
    const dim3 grid(cuda_blocks((size_t)tasks, MV_WARPS)), block(MV_WARPS * 32);
    const bool x_ok = ((uintptr_t)x % 16) == 0 && K % 4 == 0;
    const bool float_ok = x_ok && w16 && K % 8 == 0;
    // the tuned kernel of the type when the shapes and alignment allow it, else the generic one
    void (*kernel)(const mv_params) = nullptr;
    switch (w0.type) {
    case GGML_TYPE_F32: kernel = float_ok ? matvec_float_kernel<N, GGML_TYPE_F32> : nullptr; break;
    case GGML_TYPE_F16: kernel = float_ok ? matvec_float_kernel<N, GGML_TYPE_F16> : nullptr; break;
    case GGML_TYPE_BF16: kernel = float_ok ? matvec_float_kernel<N, GGML_TYPE_BF16> : nullptr; break;
    case GGML_TYPE_Q8_0: kernel = x_ok ? matvec_quant_kernel<N, GGML_TYPE_Q8_0> : nullptr; break;
    case GGML_TYPE_Q4_0: kernel = x_ok ? matvec_quant_kernel<N, GGML_TYPE_Q4_0> : nullptr; break;
    case GGML_TYPE_Q4_K: kernel = x_ok ? matvec_quant_kernel<N, GGML_TYPE_Q4_K> : nullptr; break;
    case GGML_TYPE_Q6_K: kernel = x_ok ? matvec_quant_kernel<N, GGML_TYPE_Q6_K> : nullptr; break;
    default: break;
    }
    if (kernel) {
        kernel<<<grid, block, 0, stream>>>(P);
        return;
    }
    matvec_generic_kernel<N><<<grid, block, 0, stream>>>(w0.type, P);
}

}  // namespace

void cuda_matvec_set_run(const cuda_matvec_set &set, const float *x, int n, cudaStream_t stream) {
    switch (n) {
    case 1: matvec_launch<1>(set, x, stream); break;
    case 2: matvec_launch<2>(set, x, stream); break;
    case 3: matvec_launch<3>(set, x, stream); break;
    case 4: matvec_launch<4>(set, x, stream); break;
    case 5: matvec_launch<5>(set, x, stream); break;
    case 6: matvec_launch<6>(set, x, stream); break;
    case 7: matvec_launch<7>(set, x, stream); break;
    case 8: matvec_launch<8>(set, x, stream); break;
    default: fail(ENDLESS_ERR_INTERNAL, "cuda_matvec: n = " + std::to_string(n) + " is outside 1..8");
    }
    CUDA_CHECK_LAUNCH("matvec");
}

void cuda_matvec(const weight &w, const float *x, int n, float *y, cudaStream_t stream) {
    cuda_matvec_set set;
    set.n_members = 1;
    set.w[0] = w;
    set.y[0] = y;
    cuda_matvec_set_run(set, x, n, stream);
}

}  // namespace endless
