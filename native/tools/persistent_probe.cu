// Probe (not part of the build): is a persistent decode kernel worth writing?
//
// Streams the matrix-vector products of a Qwen2.5-1.5B-shaped decode step (per layer: q/k/v
// 2048x1536, o 1536x1536, gate+up 2 x 8960x1536 with SwiGLU, down 1536x8960; 28 layers, BF16)
// three ways, each captured as a CUDA graph and replayed:
//   sep      one kernel per product (warp per row, as matvec.cu), plain launches
//   sep-pdl  the same with programmatic dependent launch (first weight loads before the wait)
//   chain-L  one cooperative kernel per layer: the 4 products as phases separated by grid
//            barriers; each warp loads its first row of the next phase before the barrier
//   chain-1  one cooperative kernel for all 112 products
// and a plain streaming read of the same bytes (one kernel) as the bound; also the down product
// with each row split over S warps (split_kernel). Prints ms per step and GB/s. Result on an H100
// (2026-11-26, bench/results/cuda-nvidia-h100-80gb-hbm3-2026-11-26T1820-matvec-split.json): the
// cooperative kernels were slower (1.31 vs 1.20 ms, stream 0.84), rows split over two warps faster
// (down 11.2-11.6 vs 14.0 us), which is what matvec.cu took. Build and run on the GPU machine:
//   nvcc -std=c++17 -O3 -arch=sm_90 -o /tmp/pp native/tools/persistent_probe.cu && /tmp/pp
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "probe_util.cuh"

namespace {

constexpr int L = 28, D = 1536, QKV = 2048, FF = 8960;

struct phase {
    const uint16_t *w0, *w1;  // w1: the up rows of a SwiGLU phase
    const float *x;
    float *y;
    int M, K, sw;
};

__device__ __forceinline__ uint4 ld_w(const void *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}
__device__ __forceinline__ float bf_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ float wsum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// acc + the 8 bf16 values of w times x[8c .. 8c + 7]
__device__ __forceinline__ float dot8(float acc, uint4 w, const float *x, int c) {
    const float4 a = *reinterpret_cast<const float4 *>(x + (size_t)c * 8);
    const float4 b = *reinterpret_cast<const float4 *>(x + (size_t)c * 8 + 4);
    acc = fmaf(bf_lo(w.x), a.x, acc); acc = fmaf(bf_hi(w.x), a.y, acc); acc = fmaf(bf_lo(w.y), a.z, acc); acc = fmaf(bf_hi(w.y), a.w, acc);
    acc = fmaf(bf_lo(w.z), b.x, acc); acc = fmaf(bf_hi(w.z), b.y, acc); acc = fmaf(bf_lo(w.w), b.z, acc); acc = fmaf(bf_hi(w.w), b.w, acc);
    return acc;
}
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_release() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

// Self-resetting grid barrier (the arrival count's top bit flips once per barrier).
__device__ __forceinline__ void grid_barrier(unsigned *bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
        __threadfence();
        const unsigned old = atomicAdd(bar, add);
        unsigned cur;
        do {
            asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(cur) : "l"(bar) : "memory");
        } while (((old ^ cur) & 0x80000000u) == 0);
        __threadfence();
    }
    __syncthreads();
}

// One row task (R = 1) or a gate/up pair (R = 2): U 16-byte chunks per lane in flight.
template <int R, int U>
struct row_task {
    uint4 buf[R][U];
    const uint16_t *rows[R];
    int chunks;
    __device__ void start(const phase &P, int row, int lane) {
        chunks = P.K / 8;
        rows[0] = P.w0 + (size_t)row * P.K;
        if (R == 2) rows[R - 1] = P.w1 + (size_t)row * P.K;
        load(lane);
    }
    __device__ void load(int c0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
            if (c < chunks)
#pragma unroll
                for (int r = 0; r < R; r++) buf[r][u] = ld_w(rows[r] + (size_t)c * 8);
        }
    }
    // x read with plain loads: inside a persistent kernel it was written by other blocks
    __device__ void finish(const phase &P, int row, int lane) {
        float acc[R] = {};
        for (int c0 = lane; c0 < chunks; c0 += 32 * U) {
            if (c0 != lane) load(c0);
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int c = c0 + 32 * u;
                if (c >= chunks) break;
#pragma unroll
                for (int r = 0; r < R; r++) acc[r] = dot8(acc[r], buf[r][u], P.x, c);
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = wsum(acc[r]);
        if (lane == 0) {
            if (R == 2) P.y[row] = acc[0] / (1.0f + __expf(-acc[0])) * acc[R - 1];
            else P.y[row] = acc[0];
        }
    }
};

template <int R, int U>
__global__ void __launch_bounds__(128) sep_kernel(const phase P, int pdl) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * 4 + (threadIdx.x >> 5);
    if (row >= P.M) return;
    row_task<R, U> t;
    t.start(P, row, lane);
    if (pdl) { pdl_wait(); pdl_release(); }
    t.finish(P, row, lane);
}

// Long rows (the down product): each row split over S warps of a block (partial sums reduced in
// shared memory); DB: the next U chunks are requested before the current ones are used.
template <int S, int U, bool DB>
__global__ void __launch_bounds__(128) split_kernel(const phase P) {
    __shared__ float part[4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row = blockIdx.x * (4 / S) + warp / S, piece = warp % S;
    const int chunks = P.K / 8, c_lo = chunks * piece / S, c_hi = chunks * (piece + 1) / S;
    const uint16_t *wr = P.w0 + (size_t)row * P.K;
    float acc = 0.0f;
    uint4 a[U], b[U];
    auto load = [&](uint4 (&buf)[U], int c0) {
#pragma unroll
        for (int u = 0; u < U; u++)
            if (c0 + 32 * u < c_hi) buf[u] = ld_w(wr + (size_t)(c0 + 32 * u) * 8);
    };
    auto use = [&](const uint4 (&buf)[U], int c0) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
            if (c >= c_hi) break;
            acc = dot8(acc, buf[u], P.x, c);
        }
    };
    const bool ok = row < P.M;
    if (ok) load(a, c_lo + lane);
    pdl_wait();
    pdl_release();
    if (ok) {
        for (int c0 = c_lo + lane; c0 < c_hi; c0 += 32 * U) {
            if (DB) {
                if (c0 + 32 * U < c_hi) load(b, c0 + 32 * U);
                use(a, c0);
#pragma unroll
                for (int u = 0; u < U; u++) a[u] = b[u];
            } else {
                if (c0 != c_lo + lane) load(a, c0);
                use(a, c0);
            }
        }
    }
    acc = wsum(acc);
    if (S == 1) {
        if (ok && lane == 0) P.y[row] = acc;
        return;
    }
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (ok && piece == 0 && lane == 0) {
        float t = 0.0f;
        for (int i = 0; i < S; i++) t += part[warp + i];
        P.y[row] = t;
    }
}

// A launch of 128-thread blocks, with programmatic dependent launch when pdl.
template <class... A>
void launch128(void (*kernel)(A...), int blocks, bool pdl, cudaStream_t s, A... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(128);
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    if (pdl) {
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = at;
        cfg.numAttrs = 1;
    }
    CK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

template <int S, int U, bool DB>
void launch_split(const phase &P, cudaStream_t s) {
    launch128(split_kernel<S, U, DB>, (P.M + 4 / S - 1) / (4 / S), true, s, P);
}

// Rows of one batch of loads (K / 8 / S <= 32 U chunks per warp), R = 2: SwiGLU pairs; each warp
// takes TPW tasks in turn and requests the next task's rows before it uses the current ones.
template <int R, int S, int U, int TPW>
__global__ void __launch_bounds__(128) pipe_kernel(const phase P) {
    __shared__ float part[4][R];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, piece = warp % S;
    const int chunks = P.K / 8, c_lo = chunks * piece / S, c_hi = chunks * (piece + 1) / S;
    const uint16_t *w[2] = {P.w0, R == 2 ? P.w1 : P.w0};
    auto row_of = [&](int it) { return ((int)blockIdx.x * TPW + it) * (4 / S) + warp / S; };
    uint4 cur[R][U], nxt[R][U];
    auto load = [&](uint4 (&b)[R][U], int row) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c_lo + lane + 32 * u;
            if (c < c_hi && row < P.M)
#pragma unroll
                for (int r = 0; r < R; r++) b[r][u] = ld_w(w[r] + (size_t)row * P.K + (size_t)c * 8);
        }
    };
    load(cur, row_of(0));
    pdl_wait();
    pdl_release();
#pragma unroll 1
    for (int it = 0; it < TPW; it++) {
        const int row = row_of(it);
        if (it + 1 < TPW) load(nxt, row_of(it + 1));
        float acc[R] = {};
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c_lo + lane + 32 * u;
            if (c >= c_hi) break;
#pragma unroll
            for (int r = 0; r < R; r++) acc[r] = dot8(acc[r], cur[r][u], P.x, c);
        }
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = wsum(acc[r]);
        if (S > 1) {
            if (lane == 0)
#pragma unroll
                for (int r = 0; r < R; r++) part[warp][r] = acc[r];
            __syncthreads();
            if (piece == 0)
                for (int i = 1; i < S; i++)
#pragma unroll
                    for (int r = 0; r < R; r++) acc[r] += part[warp + i][r];
            __syncthreads();
        }
        if (piece == 0 && lane == 0 && row < P.M) P.y[row] = R == 2 ? acc[0] / (1.0f + __expf(-acc[0])) * acc[R - 1] : acc[0];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int u = 0; u < U; u++) cur[r][u] = nxt[r][u];
    }
}

template <int R, int S, int U, int TPW>
void launch_pipe(const phase &P, cudaStream_t s) {
    const int per_block = 4 / S * TPW;
    launch128(pipe_kernel<R, S, U, TPW>, (P.M + per_block - 1) / per_block, true, s, P);
}

template <int R, int U>
__device__ __forceinline__ void chain_phase(const phase &P, bool barrier, unsigned *bar, int gw, int nw, int lane) {
    row_task<R, U> t;
    int row = gw;
    if (row < P.M) t.start(P, row, lane);
    if (barrier) grid_barrier(bar);
    for (; row < P.M; row += nw) {
        if (row != gw) t.start(P, row, lane);
        t.finish(P, row, lane);
    }
}

constexpr int CH_WARPS = 8;
template <int MINB>
__global__ void __launch_bounds__(CH_WARPS * 32, MINB) chain_kernel(const phase *ph, int n_ph, unsigned *bar) {
    const int lane = threadIdx.x & 31;
    const int gw = blockIdx.x * CH_WARPS + (threadIdx.x >> 5), nw = gridDim.x * CH_WARPS;
    for (int p = 0; p < n_ph; p++) {
        const phase P = ph[p];
        if (P.sw) chain_phase<2, 4>(P, p > 0, bar, gw, nw, lane);
        else chain_phase<1, 8>(P, p > 0, bar, gw, nw, lane);
    }
}

__global__ void stream_kernel(const uint4 *p, size_t n, unsigned *sink) {
    uint32_t acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = ld_w(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

template <int R, int U>
void launch_sep(const phase &P, bool pdl, cudaStream_t s) {
    launch128(sep_kernel<R, U>, (P.M + 3) / 4, pdl, s, P, (int)pdl);
}

}  // namespace

int main() {
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
    const size_t per_layer = (size_t)QKV * D + (size_t)D * D + 2 * (size_t)FF * D + (size_t)D * FF;  // values
    const size_t total = per_layer * L;
    uint16_t *W;
    CK(cudaMalloc(&W, total * 2));
    {  // small random bf16 values: bytes i -> a bf16 around +-1e-2
        std::vector<uint16_t> h(per_layer);
        uint32_t s = 12345;
        for (auto &v : h) { s = s * 1664525u + 1013904223u; v = (uint16_t)(0x3c00 | ((s >> 16) & 0x01ff)) ^ ((s >> 8) & 0x8000); }
        for (int l = 0; l < L; l++) CK(cudaMemcpy(W + per_layer * l, h.data(), per_layer * 2, cudaMemcpyHostToDevice));
    }
    float *buf;
    CK(cudaMalloc(&buf, 64 << 20));
    CK(cudaMemset(buf, 0, 64 << 20));
    {
        std::vector<float> h(D, 0.01f);
        CK(cudaMemcpy(buf, h.data(), D * 4, cudaMemcpyHostToDevice));
    }
    float *h_in = buf, *qkv = buf + 4096, *res = buf + 12288, *act = buf + 16384;
    std::vector<phase> ph;
    for (int l = 0; l < L; l++) {
        const uint16_t *w = W + per_layer * l;
        const uint16_t *wqkv = w, *wo = wqkv + (size_t)QKV * D, *wg = wo + (size_t)D * D, *wu = wg + (size_t)FF * D,
                       *wd = wu + (size_t)FF * D;
        ph.push_back(phase{wqkv, nullptr, h_in, qkv, QKV, D, 0});
        ph.push_back(phase{wo, nullptr, qkv, res, D, D, 0});  // (reads q/k/v: no attention here)
        ph.push_back(phase{wg, wu, res, act, FF, D, 1});
        ph.push_back(phase{wd, nullptr, act, h_in, D, FF, 0});
    }
    phase *dph;
    CK(cudaMalloc(&dph, ph.size() * sizeof(phase)));
    CK(cudaMemcpy(dph, ph.data(), ph.size() * sizeof(phase), cudaMemcpyHostToDevice));
    unsigned *bar;
    CK(cudaMalloc(&bar, 256));
    CK(cudaMemset(bar, 0, 256));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

    void (*chains[3])(const phase *, int, unsigned *) = {chain_kernel<2>, chain_kernel<3>, chain_kernel<4>};
    int grids[3];
    for (int v = 0; v < 3; v++) {
        int occ = 0;
        CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, chains[v], CH_WARPS * 32, 0));
        grids[v] = occ * prop.multiProcessorCount;
        cudaFuncAttributes fa{};
        CK(cudaFuncGetAttributes(&fa, chains[v]));
        std::printf("chain kernel %d: %d registers, %d local bytes, %d blocks per SM, grid %d\n", v, fa.numRegs, (int)fa.localSizeBytes, occ, grids[v]);
    }
    int cv = 0, grid = grids[0];
    const double gb = total * 2 / 1e9;
    auto report = [&](const char *name, float ms) { std::printf("%-10s %.3f ms per step  %.0f GB/s\n", name, ms, gb / (ms * 1e-3)); };

    auto coop = [&](const phase *p, int n) {
        cudaLaunchConfig_t cfg{};
        cfg.gridDim = dim3(grid);
        cfg.blockDim = dim3(CH_WARPS * 32);
        cfg.stream = s;
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeCooperative;
        at[0].val.cooperative = 1;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        CK(cudaLaunchKernelEx(&cfg, chains[cv], p, n, bar));
    };
    const int reps = 20;
    for (int round = 0; round < 2; round++) {
        report("stream", time_graph(s, [&] { stream_kernel<<<prop.multiProcessorCount * 8, 512, 0, s>>>(reinterpret_cast<const uint4 *>(W), total / 8, bar + 32); }, reps));
        for (int pdl = 0; pdl < 2; pdl++)
            report(pdl ? "sep-pdl" : "sep", time_graph(s, [&] {
                for (auto &P : ph) {
                    if (P.sw) launch_sep<2, 4>(P, pdl, s);
                    else launch_sep<1, 8>(P, pdl, s);
                }
            }, reps));
        if (round == 0) {
            const char *kn[4] = {"qkv", "o", "gate/up", "down"};
            for (int kind = 0; kind < 4; kind++) {
                const float ms = time_graph(s, [&] {
                    for (int l = 0; l < L; l++) {
                        const phase &P = ph[4 * l + kind];
                        if (P.sw) launch_sep<2, 4>(P, true, s);
                        else launch_sep<1, 8>(P, true, s);
                    }
                }, reps);
                std::printf("  sep-pdl %-8s %7.2f us per launch\n", kn[kind], ms * 1e3 / L);
            }
        }
        if (round == 0) {
            struct dv { const char *name; void (*fn)(const phase &, cudaStream_t); };
            const dv dvs[] = {{"S1 U8", launch_split<1, 8, false>},  {"S1 U8 db", launch_split<1, 8, true>},
                              {"S1 U4 db", launch_split<1, 4, true>}, {"S2 U8", launch_split<2, 8, false>},
                              {"S2 U4 db", launch_split<2, 4, true>}, {"S4 U8", launch_split<4, 8, false>},
                              {"S4 U4", launch_split<4, 4, false>},   {"S4 U4 db", launch_split<4, 4, true>}};
            for (const dv &v : dvs) {
                const float ms = time_graph(s, [&] { for (int l = 0; l < L; l++) v.fn(ph[4 * l + 3], s); }, reps);
                std::printf("  down %-10s %7.2f us per launch\n", v.name, ms * 1e3 / L);
            }
            struct pv { const char *name; int kind; void (*fn)(const phase &, cudaStream_t); };
            const pv pvs[] = {{"gate/up S1 U6 T1", 2, launch_pipe<2, 1, 6, 1>}, {"gate/up S2 U3 T1", 2, launch_pipe<2, 2, 3, 1>},
                              {"gate/up S2 U3 T2", 2, launch_pipe<2, 2, 3, 2>}, {"gate/up S2 U3 T4", 2, launch_pipe<2, 2, 3, 4>},
                              {"gate/up S2 U3 T8", 2, launch_pipe<2, 2, 3, 8>}, {"gate/up S4 U2 T1", 2, launch_pipe<2, 4, 2, 1>},
                              {"gate/up S4 U2 T4", 2, launch_pipe<2, 4, 2, 4>}, {"gate/up S1 U6 T4", 2, launch_pipe<2, 1, 6, 4>},
                              {"qkv S2 U3 T1", 0, launch_pipe<1, 2, 3, 1>},     {"qkv S4 U2 T1", 0, launch_pipe<1, 4, 2, 1>},
                              {"qkv S4 U2 T2", 0, launch_pipe<1, 4, 2, 2>},     {"o S2 U3 T1", 1, launch_pipe<1, 2, 3, 1>},
                              {"o S4 U2 T1", 1, launch_pipe<1, 4, 2, 1>}};
            for (const pv &v : pvs) {
                const float ms = time_graph(s, [&] { for (int l = 0; l < L; l++) v.fn(ph[4 * l + v.kind], s); }, reps);
                std::printf("  %-18s %7.2f us per launch\n", v.name, ms * 1e3 / L);
            }
            // also for the one-row-per-warp shapes (q/k/v and o)
            for (int kind = 0; kind < 2; kind++) {
                const float a = time_graph(s, [&] { for (int l = 0; l < L; l++) launch_split<1, 8, false>(ph[4 * l + kind], s); }, reps);
                const float b = time_graph(s, [&] { for (int l = 0; l < L; l++) launch_split<2, 4, false>(ph[4 * l + kind], s); }, reps);
                std::printf("  %s: S1 U8 %.2f us, S2 U4 %.2f us per launch\n", kind ? "o" : "qkv", a * 1e3 / L, b * 1e3 / L);
            }
        }
        for (cv = 0; cv < 3; cv++) {
            grid = grids[cv];
            char n1[32], n2[32];
            std::snprintf(n1, 32, "chain-L/%d", cv + 2);
            std::snprintf(n2, 32, "chain-1/%d", cv + 2);
            report(n1, time_graph(s, [&] { for (int l = 0; l < L; l++) coop(dph + 4 * l, 4); }, reps));
            report(n2, time_graph(s, [&] { coop(dph, 4 * L); }, reps));
        }
        cv = 0;
        grid = grids[0];
    }
    // the same layer both ways from the same input: outputs must be bit-identical (same row code)
    const std::vector<float> x0(D, 0.01f);
    std::vector<float> a(D), b(D);
    CK(cudaMemcpy(h_in, x0.data(), D * 4, cudaMemcpyHostToDevice));
    for (int i = 0; i < 4; i++) {
        if (ph[i].sw) launch_sep<2, 4>(ph[i], false, s);
        else launch_sep<1, 8>(ph[i], false, s);
    }
    CK(cudaStreamSynchronize(s));
    CK(cudaMemcpy(a.data(), h_in, D * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h_in, x0.data(), D * 4, cudaMemcpyHostToDevice));
    coop(dph, 4);
    CK(cudaStreamSynchronize(s));
    CK(cudaMemcpy(b.data(), h_in, D * 4, cudaMemcpyDeviceToHost));
    int diff = 0;
    double mag = 0;
    for (int i = 0; i < D; i++) { diff += a[i] != b[i]; mag += std::fabs(a[i]); }
    std::printf("one layer, separate vs chain: %d of %d outputs differ (mean |y| %.3g)\n", diff, D, mag / D);
    std::printf("done\n");
    return 0;
}
