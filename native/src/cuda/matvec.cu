// Matrix-vector kernels for decode (n = 1..8 tokens). The weight matrix is read exactly once per
// call, so these kernels are limited by memory bandwidth: warps keep several 16-byte loads in
// flight. Float rows (F32/F16/BF16) load straight into registers, two warps per row (each half of
// it, their sums meeting in shared memory); quantized rows take a warp each (a SwiGLU pair, both
// its rows at once).
// Quantized rows are not 16-byte aligned block by block (Q8_0 blocks are 34 bytes), so a warp
// copies a 2048-value stretch of its row into shared memory with aligned 16-byte loads (the next
// stretch is loaded into registers while the current one is decoded) and each lane then decodes
// 4 consecutive values at a time; the activations x stay in L1/L2 and are read as float4. In the
// default mode quantized rows go to matvec_int8_kernel instead (x as int8 in shared memory, dp4a;
// below), the CPU backend's arithmetic; matvec_quant_kernel keeps fp32 x for precise mode.
#include "matvec.cuh"
#include "cuda_common.cuh"

#include <algorithm>
#include <vector>


namespace endless {

namespace {

constexpr int MV_WARPS = 4;           // warps per block
constexpr int MV_ITER = 2048;         // values per warp iteration (quantized path)
constexpr int MV_SMEM = 2240;         // bytes of shared memory per warp (max stretch + alignment slack)
constexpr int MV_LOADS = MV_SMEM / 16 / 32 + 1;  // 16-byte loads per lane per stretch (5)
constexpr int MV_SPLIT = 2;           // warps per row task of the float kernels (matvec_float_kernel)

// Kernel-side copy of cuda_matvec_set: task t is a row of one member (rows of the members follow
// each other), or in SwiGLU mode row t of both gate and up; a warp takes a task (quantized rows)
// or half of one (float rows, MV_SPLIT).
struct mv_params {
    const uint8_t *W[CUDA_MATVEC_MAX_SET];
    float *y[CUDA_MATVEC_MAX_SET];
    const float *bias[CUDA_MATVEC_MAX_SET];
    float *acc[CUDA_MATVEC_MAX_SET];
    int64_t M[CUDA_MATVEC_MAX_SET];
    int64_t row_start[CUDA_MATVEC_MAX_SET + 1];
    int n_members;
    float *swiglu_out;
    const float *x;          // the input rows, or with a fused RMS norm its source rows
    int64_t K;
    size_t row_bytes;
    // fused RMS norm: x * norm_g, scaled by 1/rms at the end; norm_out gets the normalized rows
    const float *norm_g;
    float *norm_out;
    float norm_eps;
    int64_t n_tasks;
    // fused K/V store: kv[m][slots[t] * M + row] = output
    float *kv[CUDA_MATVEC_MAX_SET];
    const int32_t *slots;
    // float kernels: blocks below pair_blocks take MV_WARPS / MV_SPLIT tasks of MV_SPLIT warps each
    // (tasks 0 .. pair_tasks - 1), the blocks after them MV_WARPS tasks of one warp each
    int64_t pair_blocks, pair_tasks;
};

// Weight loads: every weight byte is read once per call, so they go around L1
// (L1::no_allocate) and leave it to x, which every warp of a multiprocessor reads again; L2 is
// asked for 256 bytes at a time (a lane's neighbours want the rest). (H100: decode step 2.37 vs
// 2.48 ms with __ldg, NOTES.md.)
__device__ __forceinline__ uint4 mv_ld_weight(const void *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

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

// With a fused RMS norm: ss[t] (the row's total, see mv_reduce) -> r[t] = 1/rms of token t's row,
// the scale the rms_norm op computes (rounded to nearest at each step, once per row).
template <int N, bool NORM>
__device__ __forceinline__ void mv_norm_scale(const mv_params &P, const float (&ss)[N], float (&r)[N]) {
#pragma unroll
    for (int t = 0; t < N; t++) r[t] = NORM ? dev_rms_scale(ss[t], (float)P.K, P.norm_eps) : 1.0f;
}

// A task's partial dot products (R rows x N tokens) and, with a fused norm, sums of squares: summed
// over the lanes of each warp and, when S warps share the task (each a stretch of the row),
// over those warps through shared memory red[MV_WARPS][(R + 1) * N]. The totals end on every lane
// of the task's first warp (warp % S == 0); every warp of the block must call it (S > 1 has a
// block barrier).
template <int N, int R, bool NORM, int S>
__device__ __forceinline__ void mv_reduce(float (&acc)[R][N], float (&ss)[N], float *red, int warp, int lane) {
#pragma unroll
    for (int t = 0; t < N; t++) {
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] = warp_sum(acc[r][t]);
        if (NORM) ss[t] = warp_sum(ss[t]);
    }
    if (S == 1) return;
    float *mine = red + warp * (R + 1) * N;
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < N; t++) {
#pragma unroll
            for (int r = 0; r < R; r++) mine[r * N + t] = acc[r][t];
            mine[R * N + t] = ss[t];
        }
    }
    __syncthreads();
    if (warp % S != 0) return;
#pragma unroll
    for (int i = 1; i < S; i++) {
        const float *other = mine + i * (R + 1) * N;
#pragma unroll
        for (int t = 0; t < N; t++) {
#pragma unroll
            for (int r = 0; r < R; r++) acc[r][t] += other[r * N + t];
            if (NORM) ss[t] += other[R * N + t];
        }
    }
}

// Operands of a task's epilogue, requested at the start of the task so that their round trips
// overlap the weight loads instead of following the dot product (a one-row task is one weight
// round trip, so a load in the epilogue made it two): the bias and the K/V cache slots (no earlier
// kernel writes them) before the wait for the kernel before, the accumulation target's values and
// the warp's first share of the rows to normalize after it. (H100, the decode products as the
// backend issues them, whole-row kernels: q/k/v 6.7 -> 6.1 us, o 3.8 -> 3.4, down 15.0 -> 14.0.)
template <int N>
struct mv_pre {
    float bias = 0.0f;
    float acc[N];
    int slot[N];
    float nx = 0.0f, ng = 0.0f;  // with a fused norm: x and gain of element e0 + lane of the share
};
// The warp's share [e0, e1) of the normalized rows (N x K values) that a fused norm writes.
__device__ __forceinline__ void mv_norm_share(const mv_params &P, int n, int64_t task, int64_t &e0, int64_t &e1) {
    const int64_t total = (int64_t)n * P.K, per = (total + P.n_tasks - 1) / P.n_tasks;
    e0 = task * per;
    e1 = min(total, e0 + per);
}
template <int N>
__device__ __forceinline__ void mv_pre_static(const mv_params &P, int m, int64_t row, int lane, mv_pre<N> &pre) {
    if (lane != 0) return;
    if (P.bias[m]) pre.bias = __ldg(P.bias[m] + row);
#pragma unroll
    for (int t = 0; t < N; t++) pre.slot[t] = P.kv[m] ? __ldg(P.slots + t) : 0;
}
template <int N, bool NORM>
__device__ __forceinline__ void mv_pre_inputs(const mv_params &P, int m, int64_t row, int64_t task, int lane, mv_pre<N> &pre) {
    if (lane == 0 && P.acc[m]) {
#pragma unroll
        for (int t = 0; t < N; t++) pre.acc[t] = P.acc[m][(size_t)t * P.M[m] + row];
    }
    if (NORM) {
        int64_t e0, e1;
        mv_norm_share(P, N, task, e0, e1);
        const int64_t e = e0 + lane;
        if (e < e1) {
            pre.nx = P.x[e];
            pre.ng = P.norm_g[e % P.K];
        }
    }
}

// With a fused RMS norm, every task (its first warp) writes its share of the normalized rows (as
// rms_norm would).
template <int N>
__device__ __forceinline__ void mv_write_norm(const mv_params &P, int64_t task, const float (&r)[N], const mv_pre<N> &pre, int lane) {
    int64_t e0, e1;
    mv_norm_share(P, N, task, e0, e1);
    auto scale = [&](int64_t e) {
        const int64_t t = e / P.K;
        float rt = r[0];
#pragma unroll
        for (int u = 1; u < N; u++)
            if (t == u) rt = r[u];
        return rt;
    };
    int64_t e = e0 + lane;
    if (e < e1) P.norm_out[e] = pre.nx * scale(e) * pre.ng;
    for (e += 32; e < e1; e += 32) P.norm_out[e] = P.x[e] * scale(e) * P.norm_g[e % P.K];
}

// The epilogues take the reduced totals (mv_reduce).
template <int N>
__device__ __forceinline__ void mv_epilogue(const mv_params &P, int m, int64_t row, const float (&acc)[N], const float (&r)[N],
                                            const mv_pre<N> &pre, int lane) {
    if (lane != 0) return;
    const int64_t M = P.M[m];
#pragma unroll
    for (int t = 0; t < N; t++) {
        const float v = acc[t] * r[t] + pre.bias;
        const size_t i = (size_t)t * M + row;
        P.y[m][i] = v;
        if (P.acc[m]) P.acc[m][i] = pre.acc[t] + v;
        if (P.kv[m]) P.kv[m][(size_t)pre.slot[t] * M + row] = v;
    }
}

// SwiGLU pair: g from member 0, u from member 1 (biases and accumulations do not apply).
template <int N>
__device__ __forceinline__ void mv_epilogue_swiglu(const mv_params &P, int64_t row, const float (&g)[N], const float (&u)[N],
                                                   const float (&r)[N], int lane) {
    if (lane != 0) return;
    const int64_t M = P.M[0];
#pragma unroll
    for (int t = 0; t < N; t++) {
        const size_t i = (size_t)t * M + row;
        const float gt = g[t] * r[t], ut = u[t] * r[t];
        P.y[1][i] = ut;
        if (P.swiglu_out != P.y[0]) P.y[0][i] = gt;
        P.swiglu_out[i] = dev_swiglu(gt, ut);
    }
}

// x values k..k+3 of every token; with a fused norm: times the gain, and their squares summed.
template <int N, bool NORM>
__device__ __forceinline__ void mv_x4(const float *x, const float *g, int64_t K, int64_t k, float (&ss)[N], float4 (&a)[N]) {
    float4 gv = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    if (NORM) gv = __ldg(reinterpret_cast<const float4 *>(g + k));
#pragma unroll
    for (int t = 0; t < N; t++) {
        a[t] = __ldg(reinterpret_cast<const float4 *>(x + (size_t)t * K + k));
        if (NORM) {
            ss[t] = fmaf(a[t].x, a[t].x, fmaf(a[t].y, a[t].y, fmaf(a[t].z, a[t].z, fmaf(a[t].w, a[t].w, ss[t]))));
            a[t].x *= gv.x; a[t].y *= gv.y; a[t].z *= gv.z; a[t].w *= gv.w;
        }
    }
}

// acc[r][t] += the 8 values w[r][0..7] times x values k..k+7 of token t (x loaded once for the R rows).
template <int N, bool NORM, int R>
__device__ __forceinline__ void mv_fma8(float (&acc)[R][N], float (&ss)[N], const float (&w)[R][8], const float *x, const float *g,
                                        int64_t K, int64_t k) {
    float4 av[N], bv[N];
    mv_x4<N, NORM>(x, g, K, k, ss, av);
    mv_x4<N, NORM>(x, g, K, k + 4, ss, bv);
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < N; t++) {
            const float4 a = av[t], b = bv[t];
            float s = acc[r][t];
            s = fmaf(w[r][0], a.x, s); s = fmaf(w[r][1], a.y, s); s = fmaf(w[r][2], a.z, s); s = fmaf(w[r][3], a.w, s);
            s = fmaf(w[r][4], b.x, s); s = fmaf(w[r][5], b.y, s); s = fmaf(w[r][6], b.z, s); s = fmaf(w[r][7], b.w, s);
            acc[r][t] = s;
        }
}

// The 8 F16 / BF16 values of a 16-byte chunk as floats.
template <ggml_type T>
__device__ __forceinline__ void mv_unpack8(const uint4 &c, float (&v)[8]) {
    const uint32_t q[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const float2 f = T == GGML_TYPE_F16 ? dev_half2_to_f32(q[j]) : dev_bf162_to_f32(q[j]);
        v[2 * j] = f.x; v[2 * j + 1] = f.y;
    }
}

// F16 / BF16 / F32 rows against x: chunk c holds 8 values (16 bytes for halves, 32 for f32).
// R = 1 row, or R = 2 (a SwiGLU pair: gate and up rows, whose loads are in flight together).
// U chunks per lane per row are requested at once. (Tried for long rows, 2026-11-26, and not kept
// as neither moved the decode step: requesting the next U chunks before using the current ones;
// one block per row, its threads reading consecutive chunks. NOTES.md has the numbers.)
// Chunks [c_lo, c_hi) of the rows; after_wait() runs once the kernel before has finished (it
// requests the epilogue's inputs). DB: the next U chunks per lane are requested before the current
// ones are used (long rows).
template <int N, ggml_type T, bool NORM, int R, int U, bool DB, class F>
__device__ __forceinline__ void mv_dot_float(const uint8_t *w0, const uint8_t *w1, const float *x, const float *g, int64_t K,
                                             int64_t c_lo, int64_t c_hi, int lane, float (&acc)[R][N], float (&ss)[N], F &&after_wait) {
    constexpr int ES = T == GGML_TYPE_F32 ? 4 : 2;
#pragma unroll
    for (int t = 0; t < N; t++) {
        ss[t] = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] = 0.0f;
    }
    const uint8_t *rows[2] = {w0, w1};
    auto load = [&](uint4 (&buf)[R][U][ES / 2], int64_t c0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + 32 * u;
            if (c < c_hi) {
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int h = 0; h < ES / 2; h++)
                        buf[r][u][h] = mv_ld_weight(reinterpret_cast<const uint4 *>(rows[r] + (size_t)c * 8 * ES) + h);
            }
        }
    };
    auto use = [&](const uint4 (&buf)[R][U][ES / 2], int64_t c0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t c = c0 + 32 * u;
            if (c >= c_hi) break;
            float wv[R][8];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (T == GGML_TYPE_F32) {
                    const float *f0 = reinterpret_cast<const float *>(&buf[r][u][0]);
                    const float *f1 = reinterpret_cast<const float *>(&buf[r][u][ES / 2 - 1]);
#pragma unroll
                    for (int j = 0; j < 4; j++) { wv[r][j] = f0[j]; wv[r][4 + j] = f1[j]; }
                } else {
                    mv_unpack8<T>(buf[r][u][0], wv[r]);
                }
            }
            mv_fma8<N, NORM, R>(acc, ss, wv, x, g, K, c * 8);
        }
    };
    // the first loads go out before the wait for the kernel before (weights depend on nothing)
    uint4 a[R][U][ES / 2];
    const int64_t first = c_lo + lane;
    load(a, first);
    dev_pdl_wait();
    dev_pdl_release();
    after_wait();
    if (DB) {
        uint4 b[R][U][ES / 2];
        for (int64_t c0 = first; c0 < c_hi; c0 += 32 * U) {
            const bool more = c0 + 32 * U < c_hi;
            if (more) load(b, c0 + 32 * U);
            use(a, c0);
            if (more) {
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int u = 0; u < U; u++)
#pragma unroll
                        for (int h = 0; h < ES / 2; h++) a[r][u][h] = b[r][u][h];
            }
        }
    } else {
        for (int64_t c0 = first; c0 < c_hi; c0 += 32 * U) {
            if (c0 != first) load(a, c0);
            use(a, c0);
        }
    }
}

// SW: the SwiGLU launch (gate and up rows of one task together), a separate instantiation.
// S = MV_SPLIT warps per task, each a stretch of the rows (their sums meet in shared memory); U:
// 16-byte loads in flight per lane and row; DB (single rows): the next U requested before the
// current U are used. S = 2, U = 4: twice the warps of a one-wave launch in
// flight, each with half the round trips. H100, decode step 1.88 vs 2.07 ms with whole rows
// (S = 1: U = 8 for single rows, 4 for one-token SwiGLU pairs); the products as the backend issues
// them, q/k/v / o / gate+up / down: 5.3 / 2.6 / 21.5 / 10.9 us vs 6.6 / 3.4 / 22.8 / 13.9 (NOTES.md).
// Capping one-token kernels at 72 registers (7 blocks per multiprocessor) was slower (q/k/v 6.5,
// gate+up 22.5 us).
// Tasks on one warp (blocks from P.pair_blocks on): where twice the tasks would not fit one wave of
// warps but the tasks alone would, the last ones go one warp each so the launch is one wave (q/k/v
// at the 1.5B shape: 2048 rows, 4096 warps against 3696 an H100 holds at once; matvec_launch_k).
template <int N, ggml_type T, bool NORM, bool SW>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_float_kernel(const mv_params P) {
    constexpr int S = MV_SPLIT, R = SW ? 2 : 1, U = T == GGML_TYPE_F32 ? 2 : 4;
    constexpr bool DB = !SW;
    __shared__ float red[MV_WARPS * (R + 1) * N];
    const bool paired = blockIdx.x < P.pair_blocks;  // (uniform per block)
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, piece = paired ? warp % S : 0, s = paired ? S : 1;
    const int64_t task = paired ? (int64_t)blockIdx.x * (MV_WARPS / S) + warp / S
                                : P.pair_tasks + (blockIdx.x - P.pair_blocks) * MV_WARPS + warp;
    int m = 0;
    int64_t row = 0;
    const bool ok = mv_task(P, task, m, row);
    const int64_t chunks = P.K / 8, c_lo = chunks * piece / s, c_hi = chunks * (piece + 1) / s;
    mv_pre<N> pre;
    float acc[R][N], ss[N], r[N];
    if (ok) {
        if (piece == 0) mv_pre_static<N>(P, m, row, lane, pre);
        mv_dot_float<N, T, NORM, R, U, DB>(P.W[m] + (size_t)row * P.row_bytes, SW ? P.W[1] + (size_t)row * P.row_bytes : nullptr, P.x,
                                           P.norm_g, P.K, c_lo, c_hi, lane, acc, ss, [&] {
                                               if (piece == 0) mv_pre_inputs<N, NORM>(P, m, row, task, lane, pre);
                                           });
    } else {  // a block's last task may be missing; its warps still meet the others at the barrier
        dev_pdl_release();
#pragma unroll
        for (int t = 0; t < N; t++) {
            ss[t] = 0.0f;
#pragma unroll
            for (int i = 0; i < R; i++) acc[i][t] = 0.0f;
        }
    }
    if (paired) mv_reduce<N, R, NORM, S>(acc, ss, red, warp, lane);
    else mv_reduce<N, R, NORM, 1>(acc, ss, red, warp, lane);
    if (!ok || piece != 0) return;
    mv_norm_scale<N, NORM>(P, ss, r);
    if (SW) mv_epilogue_swiglu<N>(P, row, acc[0], acc[R - 1], r, lane);
    else mv_epilogue<N>(P, m, row, acc[0], r, pre, lane);
    if (NORM) mv_write_norm<N>(P, task, r, pre, lane);
}

// One token, F16 / BF16 rows, more tasks than one wave of matvec_float_kernel's warps holds (the
// logits' 151,936 rows, the gate/up pairs' 8960): a grid of one wave whose warps loop over tasks
// t, t + warps, ..., each task's rows in units of 32 x MVS_U 16-byte chunks (a 1536-value row is one
// unit); the next unit's loads go out before the current one is used, across task boundaries, so
// a warp never waits a round trip between its tasks and no block starts between waves (the plain
// kernel's warps each take one task and leave). x (times the norm's gain) sits in shared memory,
// written once a block after the wait; with a fused norm every block computes the scale itself
// and writes its share of the normalized row. BF16 decode step, same binary: H100 1.611-1.616 ms
// against 1.718-1.722 (the logits 153 against 164 us), H200 1.417 (units of 32 x 4) against 1.590
// (the logits 118 against 158 us); units of 32 x 4 on the H100 1.656-1.659 (bench/results T0752, T0741).
constexpr int MVS_U = 6;
template <ggml_type T, bool NORM, bool SW>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_float_stream_kernel(const mv_params P) {
    constexpr int R = SW ? 2 : 1;
    extern __shared__ float4 mvs_x4[];  // P.K floats
    __shared__ float red[MV_WARPS];
    const float *xs = reinterpret_cast<const float *>(mvs_x4);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t stride = (int64_t)gridDim.x * MV_WARPS, chunks = P.K / 8, per_unit = 32 * MVS_U;
    const int units = (int)((chunks + per_unit - 1) / per_unit);
    int64_t task = (int64_t)blockIdx.x * MV_WARPS + warp;
    int m = 0, nm = 0;
    int64_t row = 0, nrow = 0;
    auto load = [&](uint4 (&buf)[R][MVS_U], int mm, int64_t rr, int u) {
        const uint8_t *rows[2] = {P.W[mm] + (size_t)rr * P.row_bytes, SW ? P.W[1] + (size_t)rr * P.row_bytes : nullptr};
#pragma unroll
        for (int i = 0; i < MVS_U; i++) {
            const int64_t c = u * per_unit + lane + 32 * i;
            if (c < chunks) {
#pragma unroll
                for (int r = 0; r < R; r++) buf[r][i] = mv_ld_weight(reinterpret_cast<const uint4 *>(rows[r]) + c);
            }
        }
    };
    uint4 a[R][MVS_U], b[R][MVS_U];
    mv_pre<1> pre, npre;
    const bool any = mv_task(P, task, m, row);
    if (any) {
        load(a, m, row, 0);
        mv_pre_static<1>(P, m, row, lane, pre);
    }
    dev_pdl_wait();
    dev_pdl_release();
    if (any) mv_pre_inputs<1, false>(P, m, row, task, lane, pre);
    float ss[1] = {0.0f};
    for (int64_t k = (int64_t)threadIdx.x * 4; k < P.K; k += MV_WARPS * 32 * 4) {
        float4 v[1];
        mv_x4<1, NORM>(P.x, P.norm_g, P.K, k, ss, v);
        mvs_x4[k / 4] = v[0];
    }
    if (NORM) {
        ss[0] = warp_sum(ss[0]);
        if (lane == 0) red[warp] = ss[0];
    }
    __syncthreads();
    float r1[1];
    if (NORM) {
        ss[0] = 0.0f;
#pragma unroll
        for (int w = 0; w < MV_WARPS; w++) ss[0] += red[w];
    }
    mv_norm_scale<1, NORM>(P, ss, r1);
    if (NORM) {
        const int64_t per = (P.K + gridDim.x - 1) / gridDim.x;
        for (int64_t e = blockIdx.x * per + threadIdx.x; e < min(P.K, (int64_t)(blockIdx.x + 1) * per); e += MV_WARPS * 32)
            P.norm_out[e] = P.x[e] * r1[0] * P.norm_g[e];
    }
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    int u = 0;
    while (any && task < P.n_tasks) {
        int64_t nt = task;
        int nu = u + 1;
        if (nu == units) { nu = 0; nt += stride; }
        bool more = false;
        if (nu == 0) {
            more = mv_task(P, nt, nm, nrow);
            if (more) {
                load(b, nm, nrow, 0);
                npre = mv_pre<1>{};
                mv_pre_static<1>(P, nm, nrow, lane, npre);
                mv_pre_inputs<1, false>(P, nm, nrow, nt, lane, npre);
            }
        } else {
            more = true;
            load(b, m, row, nu);
        }
#pragma unroll
        for (int i = 0; i < MVS_U; i++) {
            const int64_t c = u * per_unit + lane + 32 * i;
            if (c < chunks) {
                const float4 x0 = reinterpret_cast<const float4 *>(xs)[2 * c], x1 = reinterpret_cast<const float4 *>(xs)[2 * c + 1];
                const float xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float wv[8];
                    mv_unpack8<T>(a[r][i], wv);
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[r] = fmaf(wv[j], xv[j], acc[r]);
                }
            }
        }
        if (nu == 0) {
            float tot[R][1];
#pragma unroll
            for (int r = 0; r < R; r++) { tot[r][0] = warp_sum(acc[r]); acc[r] = 0.0f; }
            if (SW) mv_epilogue_swiglu<1>(P, row, tot[0], tot[R - 1], r1, lane);
            else mv_epilogue<1>(P, m, row, tot[0], r1, pre, lane);
            pre = npre;
            m = nm;
            row = nrow;
        }
        if (!more) break;
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < MVS_U; i++) a[r][i] = b[r][i];
        task = nt;
        u = nu;
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

// R rows (a SwiGLU pair: R = 2) side by side: their stretches in flight together, each in its own
// shared buffer sm + r * MV_SMEM, x read once for both.
template <int N, ggml_type T, bool NORM, int R, class F>
__device__ __forceinline__ void mv_dot_quant(const uint8_t *const (&wr)[R], const float *x, const float *g, int64_t K, uint8_t *sm,
                                             int lane, float (&acc)[R][N], float (&ss)[N], F &&after_wait) {
    using Q = mvq<T>;
    constexpr int STRETCH_BYTES = MV_ITER / Q::BLOCK_VALUES * Q::BLOCK_BYTES;
    static_assert(STRETCH_BYTES + 32 <= MV_SMEM, "stretch fits the warp's shared memory");
    const int64_t n_iter = (K + MV_ITER - 1) / MV_ITER;
#pragma unroll
    for (int t = 0; t < N; t++) {
        ss[t] = 0.0f;
#pragma unroll
        for (int r = 0; r < R; r++) acc[r][t] = 0.0f;
    }

    // The stretch [it*STRETCH_BYTES, +bytes) is read through the 16-byte aligned window that holds
    // it (allocations carry 64 bytes of slack, so the window never leaves the allocation).
    uint4 regs[R][MV_LOADS];
    int delta[R], n16[R];
    auto load = [&](int64_t it) {
        const int64_t values = min((int64_t)MV_ITER, K - it * MV_ITER);
        const int bytes = (int)(values / Q::BLOCK_VALUES * Q::BLOCK_BYTES);
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint8_t *p = wr[r] + (size_t)it * STRETCH_BYTES;
            const uint8_t *p16 = reinterpret_cast<const uint8_t *>((uintptr_t)p & ~(uintptr_t)15);
            delta[r] = (int)(p - p16);
            n16[r] = (delta[r] + bytes + 15) / 16;
#pragma unroll
            for (int i = 0; i < MV_LOADS; i++) {
                const int c = lane + 32 * i;
                if (c < n16[r]) regs[r][i] = mv_ld_weight(reinterpret_cast<const uint4 *>(p16) + c);
            }
        }
    };
    load(0);
    dev_pdl_wait();  // (the first stretch is in flight: weights depend on no earlier kernel)
    dev_pdl_release();
    after_wait();
    for (int64_t it = 0; it < n_iter; it++) {
        __syncwarp();  // every lane is done with the previous stretch
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int i = 0; i < MV_LOADS; i++) {
                const int c = lane + 32 * i;
                if (c < n16[r]) reinterpret_cast<uint4 *>(sm + r * MV_SMEM)[c] = regs[r][i];
            }
        __syncwarp();
        int cur_delta[R];
#pragma unroll
        for (int r = 0; r < R; r++) cur_delta[r] = delta[r];
        const int64_t base = it * MV_ITER;
        const int rem = (int)min((int64_t)MV_ITER, K - base);
        if (it + 1 < n_iter) load(it + 1);  // next stretch in flight while this one is decoded
#pragma unroll
        for (int s = 0; s < MV_ITER / 128; s++) {
            const int e = 128 * s + 4 * lane;
            if (e < rem) {
                float4 av[N];
                mv_x4<N, NORM>(x, g, K, base + e, ss, av);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float wv[4];
                    Q::dequant4(sm + r * MV_SMEM + cur_delta[r], e, wv);
#pragma unroll
                    for (int t = 0; t < N; t++) {
                        const float4 a = av[t];
                        float v = acc[r][t];
                        v = fmaf(wv[0], a.x, v); v = fmaf(wv[1], a.y, v); v = fmaf(wv[2], a.z, v); v = fmaf(wv[3], a.w, v);
                        acc[r][t] = v;
                    }
                }
            }
        }
    }
}

// SW: a SwiGLU pair's gate and up rows together (mv_dot_quant with R = 2: both rows' stretches in
// flight at once, x read once), a separate instantiation. H100, Q8_0 decode step 2.218-2.252 vs
// 2.262-2.276 ms with the up row after the gate row (NOTES.md, seventh session). Splitting a task
// over two warps instead (as the float kernel does) was slower: 2.469 vs 2.268 ms.
template <int N, ggml_type T, bool NORM, bool SW>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_quant_kernel(const mv_params P) {
    constexpr int R = SW ? 2 : 1;
    __shared__ __align__(16) uint8_t smem[MV_WARPS][R * MV_SMEM];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t task = (int64_t)blockIdx.x * MV_WARPS + warp;
    int m;
    int64_t row;
    if (!mv_task(P, task, m, row)) return;
    mv_pre<N> pre;
    mv_pre_static<N>(P, m, row, lane, pre);
    float acc[R][N], ss[N], r[N];
    const uint8_t *wr[R];
    wr[0] = P.W[m] + (size_t)row * P.row_bytes;
    if (SW) wr[R - 1] = P.W[1] + (size_t)row * P.row_bytes;
    mv_dot_quant<N, T, NORM, R>(wr, P.x, P.norm_g, P.K, smem[warp], lane, acc, ss,
                                [&] { mv_pre_inputs<N, NORM>(P, m, row, task, lane, pre); });
    mv_reduce<N, R, NORM, 1>(acc, ss, nullptr, warp, lane);
    mv_norm_scale<N, NORM>(P, ss, r);
    if (SW) mv_epilogue_swiglu<N>(P, row, acc[0], acc[R - 1], r, lane);
    else mv_epilogue<N>(P, m, row, acc[0], r, pre, lane);
    if (NORM) mv_write_norm<N>(P, task, r, pre, lane);
}

// Quantized rows against one token in integers, the CPU backend's way (cpu/matmul.cpp): the
// activations quantized to int8 (d = amax / 127, q = rint(v * 127 / amax)) per 32 values for Q8_0 /
// Q4_0 (act_q8_0), per 256 for Q4_K / Q6_K (act_q8_k), integer dot products per weight block,
// scaled by the blocks' scales. Each block of MVQ_WARPS warps quantizes x (times the gain with a
// fused norm, whose sum of squares it takes on the way) into shared memory once, after the wait for
// the kernel before; its warps then take tasks in turn (the grid is capped at what the SMs hold,
// so the logits' 151,936 rows do not quantize x ~19,000 times), each row staged in shared memory
// as matvec_quant_kernel does, 16 weights a lane at a time against 16 int8 x values: four dp4a
// (and four for the x sums the offsets need) instead of 16 conversions and 16 FMAs, which held
// matvec_quant_kernel to 20-60% of the copy bandwidth. The next task's first stretch is in flight
// while the current one is decoded. (H100, Q8_0: decode step 1.44 vs 2.21-2.23 ms, logits 85 vs
// 137 us; NOTES.md, ninth session.)
constexpr int MVQ_WARPS = 8;
constexpr size_t MVQ_MAX_SMEM = 96 * 1024;
constexpr int MVQ_X_LOADS = 4;        // float4 loads of x (with a norm: and of the gain) a lane has in flight
constexpr int MVQ_X_LOADS_WIDE = 10;  // the same for long rows without a norm (mvq_launch)

// x (N rows of K values) quantized into xq (int8, row t at t K) and xd (K / XB scales a row) by the
// whole block: XB / 4 lanes a block of XB values (32 or 256), 4 values a lane per pass. ss[t]: the
// block-wide sum of squares of row t (the fused norm's), after a block barrier that also publishes
// xq / xd.
template <int N, bool NORM, int XB, int LOADS>
__device__ __forceinline__ void mvq_quantize_x(const float *x, const float *g, int64_t K, int8_t *xq, float *xd, float *red, int warp,
                                               int lane, float (&ss)[N]) {
    static_assert(XB == 32 || XB == 256, "x blocks of 32 or 256 values");
    constexpr int LANES = XB == 32 ? 8 : 32, PER = XB / 4 / LANES;  // lanes a block, float4s a lane
    constexpr int BPW = 32 / LANES;                                 // blocks a warp per pass
    // passes whose loads are in flight together (LOADS float4s a lane, x and with a norm g): x is read
    // from L2 after the wait for the kernel before, and one pass at a time made the down product's
    // 8960 values 9 round trips a block before its first dot product; 4 loads made them 3, 10 make
    // them one (8 made ptxas spill in the SwiGLU / norm kernels, whose weight registers are twice)
    constexpr int FIT = LOADS / PER / (NORM ? 2 : 1), PASSES = FIT > 0 ? FIT : 1;
    constexpr int64_t STEP = (int64_t)MVQ_WARPS * BPW;  // blocks of x a pass covers
    const int64_t nb = K / XB;
#pragma unroll
    for (int t = 0; t < N; t++) {
        float sst = 0.0f;
        for (int64_t b00 = (int64_t)warp * BPW; b00 < nb; b00 += PASSES * STEP) {  // (uniform per warp: full-warp shuffles)
            float4 v[PASSES][PER], gv[PASSES][NORM ? PER : 1];
#pragma unroll
            for (int p = 0; p < PASSES; p++) {
                const int64_t b = b00 + p * STEP + lane / LANES;
                const bool ok = b < nb;
#pragma unroll
                for (int i = 0; i < PER; i++) {
                    const int64_t k = (int64_t)XB * b + 4 * (lane % LANES) + 4 * LANES * i;
                    v[p][i] = ok ? __ldg(reinterpret_cast<const float4 *>(x + (size_t)t * K + k)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    if (NORM) gv[p][i] = ok ? __ldg(reinterpret_cast<const float4 *>(g + k)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                }
            }
#pragma unroll
            for (int p = 0; p < PASSES; p++) {
                if (b00 + p * STEP >= nb) break;  // (uniform per warp)
                const int64_t b = b00 + p * STEP + lane / LANES;
                const bool ok = b < nb;
                float amax = 0.0f;
#pragma unroll
                for (int i = 0; i < PER; i++) {
                    float4 &u = v[p][i];
                    if (NORM) {
                        sst = fmaf(u.x, u.x, fmaf(u.y, u.y, fmaf(u.z, u.z, fmaf(u.w, u.w, sst))));
                        u.x *= gv[p][i].x; u.y *= gv[p][i].y; u.z *= gv[p][i].z; u.w *= gv[p][i].w;
                    }
                    amax = fmaxf(amax, fmaxf(fmaxf(fabsf(u.x), fabsf(u.y)), fmaxf(fabsf(u.z), fabsf(u.w))));
                }
#pragma unroll
                for (int o = 1; o < LANES; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
                const float id = amax > 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
                if (ok) {
#pragma unroll
                    for (int i = 0; i < PER; i++) {
                        const int64_t k = (int64_t)XB * b + 4 * (lane % LANES) + 4 * LANES * i;
                        const float4 u = v[p][i];
                        const int q0 = __float2int_rn(u.x * id), q1 = __float2int_rn(u.y * id), q2 = __float2int_rn(u.z * id),
                                  q3 = __float2int_rn(u.w * id);
                        *reinterpret_cast<uint32_t *>(xq + (size_t)t * K + k) = (uint32_t)(q0 & 0xff) | ((uint32_t)(q1 & 0xff) << 8) |
                                                                                ((uint32_t)(q2 & 0xff) << 16) | ((uint32_t)(q3 & 0xff) << 24);
                    }
                    if (lane % LANES == 0) xd[t * nb + b] = __fdiv_rn(amax, 127.0f);
                }
            }
        }
        if (NORM) {
            sst = warp_sum(sst);
            if (lane == 0) red[warp * N + t] = sst;
        }
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < N; t++) {
        ss[t] = 0.0f;
        if (NORM) {
#pragma unroll
            for (int w = 0; w < MVQ_WARPS; w++) ss[t] += red[w * N + t];
        }
    }
}

// 16 bytes at a 2-byte aligned shared-memory address, as four words (five aligned loads).
__device__ __forceinline__ void mvq_ld16_a2(const uint8_t *p, int (&q)[4]) {
    const uint32_t *w = reinterpret_cast<const uint32_t *>((uintptr_t)p & ~(uintptr_t)3);
    const uint32_t sel = ((uintptr_t)p & 2) ? 0x5432u : 0x3210u;
    uint32_t v[5];
#pragma unroll
    for (int j = 0; j < 5; j++) v[j] = w[j];
#pragma unroll
    for (int j = 0; j < 4; j++) q[j] = (int)__byte_perm(v[j], v[j + 1], sel);
}
__device__ __forceinline__ int mvq_dot16(const int (&q)[4], const uint4 &x, int acc) {
    acc = __dp4a(q[0], (int)x.x, acc);
    acc = __dp4a(q[1], (int)x.y, acc);
    acc = __dp4a(q[2], (int)x.z, acc);
    return __dp4a(q[3], (int)x.w, acc);
}
__device__ __forceinline__ int mvq_sum16(const uint4 &x) {
    const int ones = 0x01010101;
    return __dp4a(ones, (int)x.w, __dp4a(ones, (int)x.z, __dp4a(ones, (int)x.y, __dp4a(ones, (int)x.x, 0))));
}

// Per type: XB (the activations' block), and unit u (16 values: 16u .. 16u + 15 of a stretch, whose
// bytes s points at in shared memory) decoded once into q (four words of int8 values for dp4a)
// and factors a, b: against int8 x values xv with scale dx the unit contributes
// dx (a dot(q, xv) - b sum(xv)) (OFFSET: whether b is used).
template <ggml_type T> struct mvi;
template <> struct mvi<GGML_TYPE_Q8_0> {
    static constexpr int XB = 32;
    static constexpr bool OFFSET = false;
    static __device__ __forceinline__ void unit(const uint8_t *s, int u, int (&q)[4], float &a, float &b) {
        const uint8_t *blk = s + 34 * (u >> 1);
        mvq_ld16_a2(blk + 2 + 16 * (u & 1), q);
        a = dev_fp16_to_f32(dev_load_u16(blk));
        b = 0.0f;
    }
};
template <> struct mvi<GGML_TYPE_Q4_0> {
    static constexpr int XB = 32;
    static constexpr bool OFFSET = true;
    // values 0..15 of a block are the low nibbles of its 16 bytes, 16..31 the high ones; minus 8
    static __device__ __forceinline__ void unit(const uint8_t *s, int u, int (&q)[4], float &a, float &b) {
        const uint8_t *blk = s + 18 * (u >> 1);
        mvq_ld16_a2(blk + 2, q);
        const int sh = 4 * (u & 1);
#pragma unroll
        for (int j = 0; j < 4; j++) q[j] = (q[j] >> sh) & 0x0f0f0f0f;
        a = dev_fp16_to_f32(dev_load_u16(blk));
        b = 8.0f * a;
    }
};
template <> struct mvi<GGML_TYPE_Q4_K> {
    static constexpr int XB = 256;
    static constexpr bool OFFSET = true;
    // sub-block j (32 values) of a 144-byte block: nibbles (j & 1) of qs[32 (j / 2) ..], scale and
    // min from the 12 packed bytes: d sc q - dmin m
    static __device__ __forceinline__ void unit(const uint8_t *s, int u, int (&q)[4], float &a, float &b) {
        const uint8_t *blk = s + 144 * (u >> 4);
        const int j = (u >> 1) & 7;
        mvq_ld16_a2(blk + 16 + 32 * (j >> 1) + 16 * (u & 1), q);
        const int sh = 4 * (j & 1);
#pragma unroll
        for (int i = 0; i < 4; i++) q[i] = (q[i] >> sh) & 0x0f0f0f0f;
        int sc, m;
        dev_q4k_scale_min(blk + 4, j, sc, m);
        a = dev_fp16_to_f32(dev_load_u16(blk)) * (float)sc;
        b = dev_fp16_to_f32(dev_load_u16(blk + 2)) * (float)m;
    }
};
template <> struct mvi<GGML_TYPE_Q6_K> {
    static constexpr int XB = 256;
    static constexpr bool OFFSET = true;
    // value i of a 210-byte block: h = i / 128, k = (i % 128) / 32, l = i % 32: low 4 bits from
    // ql[64 h + 32 (k & 1) + l] (nibble k / 2), high 2 from qh[32 h + l] (bits 2k), minus 32; scale i / 16
    static __device__ __forceinline__ void unit(const uint8_t *s, int u, int (&q)[4], float &a, float &b) {
        const uint8_t *blk = s + 210 * (u >> 4);
        const int i0 = 16 * (u & 15), h = i0 >> 7, k = (i0 >> 5) & 3, l0 = i0 & 31;
        int hi[4];
        mvq_ld16_a2(blk + 64 * h + 32 * (k & 1) + l0, q);
        mvq_ld16_a2(blk + 128 + 32 * h + l0, hi);
        const int sl = k < 2 ? 0 : 4, shh = 2 * k;
#pragma unroll
        for (int j = 0; j < 4; j++) q[j] = ((q[j] >> sl) & 0x0f0f0f0f) | (((hi[j] >> shh) & 0x03030303) << 4);
        a = dev_fp16_to_f32(dev_load_u16(blk + 208)) * (float)(int8_t)blk[192 + (i0 >> 4)];
        b = 32.0f * a;
    }
};

template <ggml_type T, int N, bool NORM, bool SW, int XLOADS>
__global__ void __launch_bounds__(MVQ_WARPS * 32) matvec_int8_kernel(const mv_params P) {
    using Q = mvq<T>;
    constexpr int XB = mvi<T>::XB;
    constexpr int R = SW ? 2 : 1;
    constexpr int STRETCH_BYTES = MV_ITER / Q::BLOCK_VALUES * Q::BLOCK_BYTES;
    static_assert(STRETCH_BYTES + 32 <= MV_SMEM, "stretch fits the warp's shared memory");
    extern __shared__ __align__(16) uint8_t mvq_smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t K = P.K, n_iter = (K + MV_ITER - 1) / MV_ITER;
    uint8_t *stage = mvq_smem + (size_t)warp * R * MV_SMEM;
    int8_t *xq = reinterpret_cast<int8_t *>(mvq_smem + (size_t)MVQ_WARPS * R * MV_SMEM);
    float *xd = reinterpret_cast<float *>(xq + (size_t)N * K), *red = xd + N * (K / XB);

    uint4 regs[R][MV_LOADS];
    int delta[R], n16[R];
    auto load = [&](const uint8_t *const (&wr)[R], int64_t it) {
        const int64_t values = min((int64_t)MV_ITER, K - it * MV_ITER);
        const int bytes = (int)(values / Q::BLOCK_VALUES * Q::BLOCK_BYTES);
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint8_t *p = wr[r] + (size_t)it * STRETCH_BYTES;
            const uint8_t *p16 = reinterpret_cast<const uint8_t *>((uintptr_t)p & ~(uintptr_t)15);
            delta[r] = (int)(p - p16);
            n16[r] = (delta[r] + bytes + 15) / 16;
#pragma unroll
            for (int i = 0; i < MV_LOADS; i++) {
                const int c = lane + 32 * i;
                if (c < n16[r]) regs[r][i] = mv_ld_weight(reinterpret_cast<const uint4 *>(p16) + c);
            }
        }
    };
    auto rows = [&](int m, int64_t row, const uint8_t *(&wr)[R]) {
        wr[0] = P.W[m] + (size_t)row * P.row_bytes;
        if (SW) wr[R - 1] = P.W[1] + (size_t)row * P.row_bytes;
    };

    // tasks interleaved over the blocks (block b: b, b + grid, ...), so every SM gets its share
    // even when there are fewer tasks than warps (1536 rows over 264 blocks of 8 warps: 5-6 each,
    // where consecutive tasks gave 8 to each of 192 blocks, two blocks on 60 SMs and one on 72)
    const int64_t stride = (int64_t)gridDim.x * MVQ_WARPS;
    int64_t task = (int64_t)warp * gridDim.x + blockIdx.x;
    int m = 0;
    int64_t row = 0;
    bool have = mv_task(P, task, m, row);
    const uint8_t *wr[R];
    mv_pre<N> pre;
    if (have) {
        mv_pre_static<N>(P, m, row, lane, pre);
        rows(m, row, wr);
        load(wr, 0);
    }
    dev_pdl_wait();  // (the first stretch is in flight: weights depend on no earlier kernel)
    dev_pdl_release();
    if (have) mv_pre_inputs<N, NORM>(P, m, row, task, lane, pre);
    float ss[N], rs[N];
    mvq_quantize_x<N, NORM, XB, XLOADS>(P.x, P.norm_g, K, xq, xd, red, warp, lane, ss);
    mv_norm_scale<N, NORM>(P, ss, rs);
    while (have) {
        int nm = 0;
        int64_t nrow = 0;
        const bool more = mv_task(P, task + stride, nm, nrow);
        const uint8_t *nwr[R];
        if (more) rows(nm, nrow, nwr);
        float acc[R][N];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < N; t++) acc[r][t] = 0.0f;
        for (int64_t it = 0; it < n_iter; it++) {
            __syncwarp();  // every lane is done with the previous stretch
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int i = 0; i < MV_LOADS; i++) {
                    const int c = lane + 32 * i;
                    if (c < n16[r]) reinterpret_cast<uint4 *>(stage + r * MV_SMEM)[c] = regs[r][i];
                }
            __syncwarp();
            int cur_delta[R];
#pragma unroll
            for (int r = 0; r < R; r++) cur_delta[r] = delta[r];
            const int64_t base = it * MV_ITER;
            const int nu = (int)(min((int64_t)MV_ITER, K - base) / 16);  // 16-value units in this stretch
            if (it + 1 < n_iter) load(wr, it + 1);  // the next stretch in flight while this one is decoded
            else if (more) load(nwr, 0);            // or the next task's first
#pragma unroll
            for (int v = 0; v < MV_ITER / 16 / 32; v++) {
                const int u = 32 * v + lane;
                if (u < nu) {
                    int q[R][4];
                    float a[R], b[R];
#pragma unroll
                    for (int r = 0; r < R; r++) mvi<T>::unit(stage + r * MV_SMEM + cur_delta[r], u, q[r], a[r], b[r]);
#pragma unroll
                    for (int t = 0; t < N; t++) {
                        const uint4 xv = *reinterpret_cast<const uint4 *>(xq + (size_t)t * K + base + 16 * u);
                        const float dx = xd[t * (K / XB) + (base + 16 * u) / XB];
                        const int xs = mvi<T>::OFFSET ? mvq_sum16(xv) : 0;
#pragma unroll
                        for (int r = 0; r < R; r++) {
                            const float d = (float)mvq_dot16(q[r], xv, 0);
                            acc[r][t] = fmaf(dx, mvi<T>::OFFSET ? fmaf(a[r], d, -b[r] * (float)xs) : a[r] * d, acc[r][t]);
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < N; t++) acc[r][t] = warp_sum(acc[r][t]);
        if (SW) mv_epilogue_swiglu<N>(P, row, acc[0], acc[R - 1], rs, lane);
        else mv_epilogue<N>(P, m, row, acc[0], rs, pre, lane);
        if (NORM) mv_write_norm<N>(P, task, rs, pre, lane);
        if (!more) break;
        task += stride;
        m = nm;
        row = nrow;
#pragma unroll
        for (int r = 0; r < R; r++) wr[r] = nwr[r];
        pre = mv_pre<N>();
        mv_pre_static<N>(P, m, row, lane, pre);
        mv_pre_inputs<N, NORM>(P, m, row, task, lane, pre);
    }
}

// Anything else (unaligned x, float rows of odd length): 16 values at a time (or one at a time),
// through the shared decoder. Correct for every type; not tuned.
// x value k of token t (times the gain with a fused norm, its square added to ss[t]).
template <bool NORM>
__device__ __forceinline__ float mv_x1(const float *x, const float *g, int64_t K, int t, int64_t k, float &ss) {
    const float v = x[(size_t)t * K + k];
    if (!NORM) return v;
    ss = fmaf(v, v, ss);
    return v * g[k];
}

template <int N, bool NORM>
__device__ __forceinline__ void mv_dot_generic(ggml_type type, const uint8_t *wr, const float *x, const float *g, int64_t K, int lane,
                                               float (&acc)[N], float (&ss)[N]) {
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = ss[t] = 0.0f;
    const bool float_type = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
    const bool aligned = ((uintptr_t)wr % 16) == 0;
    if (float_type && (K % 16 != 0 || !aligned)) {
        for (int64_t k = lane; k < K; k += 32) {
            float wv;
            if (type == GGML_TYPE_F32) wv = reinterpret_cast<const float *>(wr)[k];
            else if (type == GGML_TYPE_F16) wv = dev_fp16_to_f32(reinterpret_cast<const uint16_t *>(wr)[k]);
            else wv = dev_bf16_to_f32(reinterpret_cast<const uint16_t *>(wr)[k]);
#pragma unroll
            for (int t = 0; t < N; t++) acc[t] = fmaf(wv, mv_x1<NORM>(x, g, K, t, k, ss[t]), acc[t]);
        }
    } else {
        for (int64_t k0 = 16 * (int64_t)lane; k0 < K; k0 += 16 * 32) {
            float wv[16];
            dev_dequant16(type, wr, k0, wv);
#pragma unroll
            for (int t = 0; t < N; t++) {
                float v = acc[t];
#pragma unroll
                for (int j = 0; j < 16; j++) v = fmaf(wv[j], mv_x1<NORM>(x, g, K, t, k0 + j, ss[t]), v);
                acc[t] = v;
            }
        }
    }
}

// Anything else (unaligned x, float rows of odd length): 16 values at a time (or one at a time),
// through the shared decoder. Correct for every type; not tuned.
template <int N, bool NORM>
__global__ void __launch_bounds__(MV_WARPS * 32) matvec_generic_kernel(ggml_type type, const mv_params P) {
    const int lane = threadIdx.x & 31;
    const int64_t task = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    int m;
    int64_t row;
    if (!mv_task(P, task, m, row)) return;
    mv_pre<N> pre;
    mv_pre_static<N>(P, m, row, lane, pre);
    dev_pdl_wait();
    dev_pdl_release();
    mv_pre_inputs<N, NORM>(P, m, row, task, lane, pre);
    float acc[2][N] = {}, ss[N], r[N];
    mv_dot_generic<N, NORM>(type, P.W[m] + (size_t)row * P.row_bytes, P.x, P.norm_g, P.K, lane, acc[0], ss);
    if (P.swiglu_out) {
        float ss2[N];
        mv_dot_generic<N, NORM>(type, P.W[1] + (size_t)row * P.row_bytes, P.x, P.norm_g, P.K, lane, acc[1], ss2);
    }
    mv_reduce<N, 2, NORM, 1>(acc, ss, nullptr, lane >> 5, lane);
    mv_norm_scale<N, NORM>(P, ss, r);
    if (P.swiglu_out) mv_epilogue_swiglu<N>(P, row, acc[0], acc[1], r, lane);
    else mv_epilogue<N>(P, m, row, acc[0], r, pre, lane);
    if (NORM) mv_write_norm<N>(P, task, r, pre, lane);
}

using mv_kernel = void (*)(const mv_params);
template <int N, ggml_type T, bool NORM>
mv_kernel mv_quant_kernel(bool sw) {
    return sw ? matvec_quant_kernel<N, T, NORM, true> : matvec_quant_kernel<N, T, NORM, false>;
}
template <bool NORM>
mv_kernel mv_float_stream_kernel(ggml_type t, bool sw) {
    if (t == GGML_TYPE_BF16) return sw ? matvec_float_stream_kernel<GGML_TYPE_BF16, NORM, true> : matvec_float_stream_kernel<GGML_TYPE_BF16, NORM, false>;
    return sw ? matvec_float_stream_kernel<GGML_TYPE_F16, NORM, true> : matvec_float_stream_kernel<GGML_TYPE_F16, NORM, false>;
}
template <int N, ggml_type T, bool NORM>
mv_kernel mv_float_kernel(bool sw) {
    return sw ? matvec_float_kernel<N, T, NORM, true> : matvec_float_kernel<N, T, NORM, false>;
}

// Blocks of `kernel` (`threads` a block, `smem` bytes of dynamic shared memory) that the device holds
// at once (one wave); per (kernel, smem, device), once. `max_smem` > 0: first allow the kernel that
// much dynamic shared memory.
int64_t mv_wave_blocks(mv_kernel kernel, int threads, size_t smem, size_t max_smem) {
    struct entry { mv_kernel k; size_t smem; int dev; int64_t blocks; };
    static thread_local std::vector<entry> cache;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    for (const entry &e : cache)
        if (e.k == kernel && e.smem == smem && e.dev == dev) return e.blocks;
    if (max_smem > 0) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem));
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    const int64_t blocks = (int64_t)std::max(per_sm, 1) * cuda_device_attr<cudaDevAttrMultiProcessorCount>(1);
    cache.push_back(entry{kernel, smem, dev, blocks});
    return blocks;
}

// Launches matvec_int8_kernel for a one-token set of quantized rows; false when x and its scales
// would not fit the shared memory (then matvec_quant_kernel runs).
template <ggml_type T, int N, bool NORM>
bool mvq_launch(const mv_params &P, bool sw, int64_t tasks, cudaStream_t stream) {
    const int R = sw ? 2 : 1;
    const size_t smem = (size_t)MVQ_WARPS * R * MV_SMEM + (size_t)N * P.K + (size_t)N * (P.K / mvi<T>::XB) * 4 + MVQ_WARPS * N * 4;
    if (smem > MVQ_MAX_SMEM || P.K % mvi<T>::XB != 0) return false;
    // rows longer than one round of 4 loads covers (4096 values: the down product's 8960) take the
    // kernel with 10 loads a lane in flight, one round up to 10240 values: its 95 registers hold two
    // blocks an SM instead of three, which the logits' 151,936 rows would feel (85 -> 87.6 us), the
    // down product's 1536 rows not (H100, Q8_0 one token: 10.2 -> 9.6 us; T0055 in bench/results)
    const bool wide = !sw && !NORM && P.K > (int64_t)MVQ_X_LOADS * 32 * MVQ_WARPS * 4;
    mv_kernel kernel = sw     ? matvec_int8_kernel<T, N, NORM, true, MVQ_X_LOADS>
                       : wide ? matvec_int8_kernel<T, N, false, false, MVQ_X_LOADS_WIDE>
                              : matvec_int8_kernel<T, N, NORM, false, MVQ_X_LOADS>;
    const int64_t cap = mv_wave_blocks(kernel, MVQ_WARPS * 32, smem, MVQ_MAX_SMEM);
    const unsigned grid = (unsigned)std::max<int64_t>(1, std::min<int64_t>(tasks, cap));
    cuda_launch_pdl(kernel, dim3(grid), dim3(MVQ_WARPS * 32), smem, stream, P);
    return true;
}

template <int N, bool NORM>
void matvec_launch_k(const cuda_matvec_set &set, const float *x, cudaStream_t stream) {
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
        P.kv[i] = set.kv_dst[i];
        P.row_start[i + 1] = P.row_start[i] + set.w[i].ne1;
        w16 = w16 && ((uintptr_t)P.W[i] % 16) == 0;
    }
    P.n_members = set.n_members;
    P.swiglu_out = set.swiglu_out;
    P.x = NORM ? set.norm_x : x;
    P.norm_g = set.norm_g;
    P.norm_out = const_cast<float *>(x);
    P.norm_eps = set.norm_eps;
    P.slots = set.kv_slots;
    P.K = K;
    P.row_bytes = cuda_row_bytes(w0.type, K);
    const int64_t tasks = set.swiglu_out ? w0.ne1 : P.row_start[set.n_members];
    P.n_tasks = tasks;
    x = P.x;  // the rows the kernel reads (alignment below)
    const dim3 grid(cuda_blocks((size_t)tasks, MV_WARPS)), block(MV_WARPS * 32);
    const bool x_ok = ((uintptr_t)x % 16) == 0 && K % 4 == 0 && (!NORM || ((uintptr_t)P.norm_g % 16) == 0);
    const bool float_ok = x_ok && w16 && K % 8 == 0;
    const bool sw = set.swiglu_out != nullptr;
    // the tuned kernel of the type when the shapes and alignment allow it, else the generic one
    mv_kernel kernel = nullptr;
    switch (w0.type) {
    case GGML_TYPE_F32: kernel = float_ok ? mv_float_kernel<N, GGML_TYPE_F32, NORM>(sw) : nullptr; break;
    case GGML_TYPE_F16: kernel = float_ok ? mv_float_kernel<N, GGML_TYPE_F16, NORM>(sw) : nullptr; break;
    case GGML_TYPE_BF16: kernel = float_ok ? mv_float_kernel<N, GGML_TYPE_BF16, NORM>(sw) : nullptr; break;
    case GGML_TYPE_Q8_0: kernel = x_ok ? mv_quant_kernel<N, GGML_TYPE_Q8_0, NORM>(sw) : nullptr; break;
    case GGML_TYPE_Q4_0: kernel = x_ok ? mv_quant_kernel<N, GGML_TYPE_Q4_0, NORM>(sw) : nullptr; break;
    case GGML_TYPE_Q4_K: kernel = x_ok ? mv_quant_kernel<N, GGML_TYPE_Q4_K, NORM>(sw) : nullptr; break;
    case GGML_TYPE_Q6_K: kernel = x_ok ? mv_quant_kernel<N, GGML_TYPE_Q6_K, NORM>(sw) : nullptr; break;
    default: break;
    }
    // quantized rows: integer dot products against x quantized in shared memory
    if (set.int8_x && x_ok) {
        switch (w0.type) {
        case GGML_TYPE_Q8_0: if (mvq_launch<GGML_TYPE_Q8_0, N, NORM>(P, sw, tasks, stream)) return; break;
        case GGML_TYPE_Q4_0: if (mvq_launch<GGML_TYPE_Q4_0, N, NORM>(P, sw, tasks, stream)) return; break;
        case GGML_TYPE_Q4_K: if (mvq_launch<GGML_TYPE_Q4_K, N, NORM>(P, sw, tasks, stream)) return; break;
        case GGML_TYPE_Q6_K: if (mvq_launch<GGML_TYPE_Q6_K, N, NORM>(P, sw, tasks, stream)) return; break;
        default: break;
        }
    }
    if (kernel) {
        const bool is_float = w0.type == GGML_TYPE_F32 || w0.type == GGML_TYPE_F16 || w0.type == GGML_TYPE_BF16;
        dim3 g = grid;
        // one token, 16-bit rows, more tasks than a wave of warps: warps that loop over the rows (x in
        // shared memory: up to 47 KB, under the 48 KB a launch may take without opting in)
        if (is_float && N == 1 && (w0.type == GGML_TYPE_BF16 || w0.type == GGML_TYPE_F16) && (size_t)K * 4 <= 47 * 1024 &&
            tasks > mv_wave_blocks(kernel, MV_WARPS * 32, 0, 0) * MV_WARPS) {
            const mv_kernel sk = mv_float_stream_kernel<NORM>(w0.type, sw);
            const size_t smem = (size_t)K * 4;
            const int64_t blocks = std::min<int64_t>(mv_wave_blocks(sk, MV_WARPS * 32, smem, 0), (tasks + MV_WARPS - 1) / MV_WARPS);
            cuda_launch_pdl(sk, dim3((unsigned)blocks), block, smem, stream, P);
            return;
        }
        if (is_float) {
            // MV_SPLIT warps a task; but where that takes more than one wave of warps and one warp a
            // task would not, the last tasks take one warp each, as many as make it one wave
            const int64_t wave = mv_wave_blocks(kernel, MV_WARPS * 32, 0, 0) * MV_WARPS, per = MV_WARPS / MV_SPLIT;
            const int64_t pair_tasks = tasks < wave && 2 * tasks > wave ? (wave - tasks) / per * per : tasks;
            P.pair_blocks = (pair_tasks + per - 1) / per;
            P.pair_tasks = P.pair_blocks * per;
            g = dim3((unsigned)(P.pair_blocks + (std::max<int64_t>(0, tasks - P.pair_tasks) + MV_WARPS - 1) / MV_WARPS));
        }
        cuda_launch_pdl(kernel, g, block, 0, stream, P);
        return;
    }
    cuda_launch_pdl(matvec_generic_kernel<N, NORM>, grid, block, 0, stream, w0.type, P);
}
template <int N>
void matvec_launch(const cuda_matvec_set &set, const float *x, cudaStream_t stream) {
    if (set.norm_x) matvec_launch_k<N, true>(set, x, stream);
    else matvec_launch_k<N, false>(set, x, stream);
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
