// Every layer of a one-token decode step in one persistent kernel (sm_90 and newer; F16 / BF16
// weights). OFF unless ENDLESS_CUDA_FUSED_DECODE=1: correct (the tests and the benchmark's check at the
// 1.5B shape agree with the separate launches to ~6e-7), but measured slower so far: 2.59 ms a BF16
// step on an H100 against 1.75 ms (NOTES.md, tenth session: issue-latency bound, 17 warps a
// multiprocessor, a third of the stalls at block barriers). Why it exists: the separate launches of a step (q/k/v, attention, its merge, o, gate/up, down,
// per layer) each pay a ramp and a tail, and the attention's chain of dependent steps leaves the
// memory idle for ~12 us a layer (NOTES.md); together they held the step at ~59% of the weight
// roofline. Here one block per multiprocessor stays resident for the whole step (a cooperative
// launch), and
//
// - a producer warp streams the block's share of every weight matrix, in the order the step uses
//   them, through a ring of 16 KB chunks in shared memory (cp.async.bulk, completion counted on
//   mbarriers), limited only by free ring slots: the loads for the o, gate/up and down products run
//   while the block waits at a grid barrier or works on the attention, so the memory stays busy;
// - 16 consumer warps run the phases of each layer, separated by grid barriers (a counter in
//   global memory): q/k/v (rms_norm inside, biases, K/V stored into the cache before RoPE), the
//   attention over the key list split across blocks (keys rotated by position as they are read),
//   the merge of the splits, o (+ residual), gate/up (rms_norm inside, SwiGLU), down (+ residual).
//
// A block takes a contiguous range of rows of each product (the concatenation q|k|v for the first),
// so its weight bytes are one to three contiguous ranges; chunks do not cross a range. In a chunk,
// warp w takes the 16-byte units w*32 + lane (+ 512 per pass): 8 weights against x in shared
// memory, summed per row in the warp, then added into the warp's own accumulator of that row; the
// epilogue adds the 16 warps' accumulators in a fixed order, so a step's results do not depend on
// timing (no float atomics anywhere).
// Data written by other blocks in this launch is read with ld.global.cg (L2), never through L1.
#include "decode_fused.cuh"
#include "backend.h"
#include "cuda_common.cuh"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace endless {

namespace {

constexpr int DF_WARPS = 16;                    // consumer warps a block
constexpr int DF_THREADS = DF_WARPS * 32;
constexpr uint32_t DF_CHUNK = 8192;             // bytes a ring slot (one warp consumes it)
constexpr int DF_KT = 64;                       // keys an attention round (a multiple of 32)
constexpr int DF_MAX_SLOTS = 32;
constexpr int DF_MAX_PAIRS = 8;                 // (head, dim) pairs a thread accumulates: G * hd <= 4096
constexpr float DF_LOG2E = 1.4426950408889634f;
// profile words (ENDLESS_CUDA_FUSED_PROFILE=1): 0..11 the phases of a layer (see df_mark), then these
constexpr int DF_PROF_FULL_WAIT = 40, DF_PROF_EMPTY_WAIT = 41, DF_PROF_STEPS = 63, DF_PROF_WORDS = 64;

struct df_params {
    const cuda_fused_layer *layers;
    float *x, *q, *att, *h, *part;
    const int32_t *keys, *meta;
    unsigned *bar;
    const float *rope_cos, *rope_sin;
    int n_layer, d, n_ff, n_head, n_head_kv, hd, n_rot, mode;
    float eps, qscale;  // qscale = scale * log2(e): scores in base 2
    int n_split, slots, inflight, nb, work_floats, acc_stride;
    unsigned backoff, min_chunk;  // experiment knobs (ENDLESS_CUDA_FUSED_BACKOFF / _MIN_CHUNK); 0 / DF_CHUNK: off
    unsigned long long *prof;  // ENDLESS_CUDA_FUSED_PROFILE=1: block 0's time per phase (see df_mark)
};

// A contiguous byte range of one weight matrix: rows of K values; its first row adds into
// accumulator acc_off.
struct df_seg {
    const uint8_t *p;
    uint32_t bytes;
    int K, acc_off;
};

// The device code below exists for sm_90 and newer only (bulk copies, mbarrier transaction
// counts); older targets compile an empty kernel that the plan never launches.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
// The first row of block b when R rows are shared by nb blocks.
__device__ __forceinline__ int df_lo(int R, int b, int nb) { return (int)((long long)R * b / nb); }

// ---- mbarrier and bulk copy (sm_90) ----
__device__ __forceinline__ uint32_t df_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void df_mbar_init(uint64_t *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(df_smem(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void df_mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(df_smem(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void df_mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(df_smem(bar)) : "memory");
}
__device__ __forceinline__ bool df_mbar_try(uint64_t *bar, uint32_t parity) {
    uint32_t done;
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(df_smem(bar)), "r"(parity)
        : "memory");
    return done != 0;
}
// Waits for the phase of `parity` to complete; backoff_ns > 0: sleeps that long between tries
// (ENDLESS_CUDA_FUSED_BACKOFF; a try is a shared-memory operation, which spinning warps would take
// from the working ones).
__device__ __forceinline__ void df_mbar_wait(uint64_t *bar, uint32_t parity, unsigned backoff_ns) {
    while (!df_mbar_try(bar, parity))
        if (backoff_ns) __nanosleep(backoff_ns);
}
__device__ __forceinline__ void df_bulk_load(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(df_smem(dst)),
                 "l"(src), "r"(bytes), "r"(df_smem(bar))
                 : "memory");
}
// The consumer warps only (the producer warp never joins): named barrier 1.
__device__ __forceinline__ void df_sync() { asm volatile("bar.sync 1, %0;" ::"r"(DF_THREADS) : "memory"); }

// Profiling (ENDLESS_CUDA_FUSED_PROFILE=1): block 0 adds the nanoseconds since its last mark to
// prof[k] (k: DF_PROF_* below and the phases 0..11 of the layer loop).
__device__ __forceinline__ unsigned long long df_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ void df_mark(const df_params &P, int k, unsigned long long &t_prev) {
    if (P.prof && blockIdx.x == 0 && threadIdx.x == 0) {
        const unsigned long long t = df_now();
        atomicAdd(&P.prof[k], t - t_prev);
        t_prev = t;
    }
}

// All blocks: every consumer's writes before it are visible to every block after it.
__device__ __forceinline__ void df_grid_sync(const df_params &P, unsigned &epoch) {
    df_sync();
    epoch++;
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(P.bar, 1u);
        const unsigned target = epoch * (unsigned)P.nb;
        unsigned v;
        for (;;) {
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(P.bar) : "memory");
            if (v >= target) break;
        }
    }
    df_sync();
}

// The byte ranges of the rows block b takes in phase ph (0: q|k|v, 1: o, 2: gate and up, 3: down).
__device__ int df_segments(const df_params &P, const cuda_fused_layer &L, int ph, int b, df_seg *s) {
    const int nq = P.n_head * P.hd, nkv = P.n_head_kv * P.hd;
    int n = 0;
    auto add = [&](const void *w, int K, int a, int c, int acc_off) {
        if (c > a) s[n++] = df_seg{(const uint8_t *)w + (size_t)a * K * 2, (uint32_t)((size_t)(c - a) * K * 2), K, acc_off};
    };
    if (ph == 0) {
        const int R = nq + 2 * nkv, r0 = df_lo(R, b, P.nb), r1 = df_lo(R, b + 1, P.nb);
        add(L.wq, P.d, r0, min(r1, nq), 0);
        add(L.wk, P.d, max(r0 - nq, 0), min(r1 - nq, nkv), max(nq - r0, 0));
        add(L.wv, P.d, max(r0 - nq - nkv, 0), min(r1 - nq - nkv, nkv), max(nq + nkv - r0, 0));
    } else if (ph == 1) {
        add(L.wo, nq, df_lo(P.d, b, P.nb), df_lo(P.d, b + 1, P.nb), 0);
    } else if (ph == 2) {
        const int r0 = df_lo(P.n_ff, b, P.nb), r1 = df_lo(P.n_ff, b + 1, P.nb);
        add(L.wg, P.d, r0, r1, 0);
        add(L.wu, P.d, r0, r1, r1 - r0);
    } else {
        add(L.wd, P.n_ff, df_lo(P.d, b, P.nb), df_lo(P.d, b + 1, P.nb), 0);
    }
    return n;
}

// Bytes a chunk of range s: a ring slot's DF_CHUNK, or (P.min_chunk < DF_CHUNK, from
// ENDLESS_CUDA_FUSED_MIN_CHUNK) a 16th of the range in 512-byte multiples, at least P.min_chunk, so
// that the small products (q/k/v, o: 5-6 slots' worth a block) give every warp a chunk. Producer and
// consumers take the same sizes.
__device__ __forceinline__ uint32_t df_chunk_bytes(const df_params &P, const df_seg &s) {
    if (P.min_chunk >= DF_CHUNK) return DF_CHUNK;
    const uint32_t share = (s.bytes / DF_WARPS + 511) / 512 * 512;
    return min(DF_CHUNK, max((uint32_t)P.min_chunk, share));
}

// The producer (one thread): every chunk of the step, in the consumers' order.
__device__ void df_produce(const df_params &P, uint8_t *ring, uint64_t *full, uint64_t *empty) {
    uint32_t c = 0;
    for (int l = 0; l < P.n_layer; l++) {
        const cuda_fused_layer L = P.layers[l];
        for (int ph = 0; ph < 4; ph++) {
            df_seg s[3];
            const int ns = df_segments(P, L, ph, blockIdx.x, s);
            for (int i = 0; i < ns; i++) {
                const uint32_t cs = df_chunk_bytes(P, s[i]);
                for (uint32_t off = 0; off < s[i].bytes; off += cs, c++) {
                    const uint32_t n = min(cs, s[i].bytes - off);
                    const uint32_t slot = c % (uint32_t)P.slots, round = c / (uint32_t)P.slots;
                    const unsigned long long t0 = P.prof ? df_now() : 0;
                    df_mbar_wait(&empty[slot], (round & 1) ^ 1, P.backoff);
                    if (c >= (uint32_t)P.inflight) {  // at most `inflight` chunks on their way (deeper queues only add latency)
                        const uint32_t e = c - (uint32_t)P.inflight;
                        df_mbar_wait(&full[e % (uint32_t)P.slots], (e / (uint32_t)P.slots) & 1, P.backoff);
                    }
                    if (P.prof && blockIdx.x == 0) atomicAdd(&P.prof[DF_PROF_EMPTY_WAIT], df_now() - t0);
                    df_mbar_expect_tx(&full[slot], n);
                    df_bulk_load(ring + (size_t)slot * DF_CHUNK, s[i].p + off, n, &full[slot]);
                }
            }
        }
    }
}

template <bool BF16>
__device__ __forceinline__ float2 df_pair(uint32_t w) {
    if constexpr (BF16) return dev_bf162_to_f32(w);
    else return dev_half2_to_f32(w);
}

// 8 weights (one 16-byte unit) . 8 values of x.
template <bool BF16>
__device__ __forceinline__ float df_dot8(const uint4 w, const float *xa4, const float *xb4, float p) {
    const float4 xa = *reinterpret_cast<const float4 *>(xa4), xb = *reinterpret_cast<const float4 *>(xb4);
    const float2 w0 = df_pair<BF16>(w.x), w1 = df_pair<BF16>(w.y), w2 = df_pair<BF16>(w.z), w3 = df_pair<BF16>(w.w);
    p = fmaf(w0.x, xa.x, p);
    p = fmaf(w0.y, xa.y, p);
    p = fmaf(w1.x, xa.z, p);
    p = fmaf(w1.y, xa.w, p);
    p = fmaf(w2.x, xb.x, p);
    p = fmaf(w2.y, xb.y, p);
    p = fmaf(w3.x, xb.z, p);
    return fmaf(w3.y, xb.w, p);
}

// One range's chunks: chunk c belongs to warp (c % slots) % DF_WARPS, which adds its rows . xs into its own
// accumulators (acc_w); the other warps pass it by. Lane l takes units l, l + 32, ...: with rows of
// a multiple of 256 values the 32 units of a step lie in one row, so each lane keeps its sum in a
// register until the row ends (one warp sum a row); shorter rows take a per-step segmented sum.
template <bool BF16>
__device__ void df_consume(const df_params &P, const df_seg &s, const uint8_t *ring, uint64_t *full, uint64_t *empty, uint32_t &c,
                           const float *xs, float *acc_w) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const uint32_t K = (uint32_t)s.K;
    const uint32_t cs = df_chunk_bytes(P, s);
    for (uint32_t off = 0; off < s.bytes; off += cs, c++) {
        const uint32_t slot = c % (uint32_t)P.slots, round = c / (uint32_t)P.slots;
        // a slot always belongs to the same warp, so the warp has consumed the slot's previous chunk
        // before it waits for this one: the barrier is then at most one phase behind, and its parity
        // test cannot mistake the previous chunk's phase for this one's
        if ((int)(slot % DF_WARPS) != warp) continue;
        const uint32_t n = min(cs, s.bytes - off);
        const unsigned long long t0 = P.prof ? df_now() : 0;
        df_mbar_wait(&full[slot], round & 1, P.backoff);
        if (P.prof && blockIdx.x == 0 && lane == 0) atomicAdd(&P.prof[DF_PROF_FULL_WAIT], df_now() - t0);
        const uint4 *src = reinterpret_cast<const uint4 *>(ring + (size_t)slot * DF_CHUNK);
        const uint32_t units = n / 16, e0 = off / 2;  // e0: a multiple of 256 values (chunks of 512-byte multiples)
        if (K % 256 == 0) {
            // (units is a multiple of 32 here: ranges and chunks are multiples of 512 bytes)
            // xs in the interleaved order of df_xs_index: this lane's 8 values at cb + lane * 4 and
            // cb + 128 + lane * 4 (consecutive 16 bytes across the lanes: no bank conflicts)
            int row = (int)(e0 / K);
            uint32_t cb = e0 - (uint32_t)row * K;
            float p = 0.0f;
            bool open = false;
            for (uint32_t u = lane; u < units; u += 32) {
                p = df_dot8<BF16>(src[u], xs + cb + lane * 4, xs + cb + 128 + lane * 4, p);
                open = true;
                cb += 256;
                if (cb >= K) {  // (the same step for every lane)
                    cb -= K;
                    const float v = warp_sum(p);
                    if (lane == 0) acc_w[s.acc_off + row] += v;
                    row++;
                    p = 0.0f;
                    open = false;
                }
            }
            if (open) {  // the row goes on in the next chunk
                const float v = warp_sum(p);
                if (lane == 0) acc_w[s.acc_off + row] += v;
            }
        } else {
            for (uint32_t g = 0; g < units; g += 32) {
                const uint32_t u = g + lane;
                const bool valid = u < units;
                float p = 0.0f;
                int row = INT_MAX;
                if (valid) {
                    const uint32_t e = e0 + u * 8;
                    row = (int)(e / K);
                    const float *x = xs + (e - (uint32_t)row * K);
                    p = df_dot8<BF16>(src[u], x, x + 4, 0.0f);
                }
                const int rlo = __reduce_min_sync(0xffffffffu, row);
                const int rhi = __reduce_max_sync(0xffffffffu, valid ? row : INT_MIN);
                for (int r = rlo; r <= rhi; r++) {
                    const float v = warp_sum(row == r ? p : 0.0f);
                    if (lane == 0) acc_w[s.acc_off + r] += v;
                }
            }
        }
        __syncwarp();
        if (lane == 0) df_mbar_arrive(&empty[slot]);
    }
}

// Where value i of a product's input sits in shared memory: for rows of a multiple of 256 values,
// value lane * 8 + half * 4 + t of each 256 at half * 128 + lane * 4 + t (see df_consume); else i.
__device__ __forceinline__ int df_xs_index(int i, int K) {
    if (K % 256 != 0) return i;
    const int r = i & 255;
    return (i - r) + ((r >> 2) & 1) * 128 + (r >> 3) * 4 + (r & 3);
}

// xs = x / rms(x) * g over d values (x from L2).
__device__ void df_norm(const df_params &P, const float *g, float *xs, float *red) {
    const int tid = threadIdx.x;
    float ss = 0.0f;
    for (int i = tid; i < P.d; i += DF_THREADS) {
        const float v = __ldcg(P.x + i);
        xs[df_xs_index(i, P.d)] = v;
        ss = fmaf(v, v, ss);
    }
    ss = warp_sum(ss);
    if ((tid & 31) == 0) red[tid >> 5] = ss;
    df_sync();
    float t = 0.0f;
#pragma unroll
    for (int w = 0; w < DF_WARPS; w++) t += red[w];
    const float r = dev_rms_scale(t, (float)P.d, P.eps);
    for (int i = tid; i < P.d; i += DF_THREADS) {
        const int j = df_xs_index(i, P.d);
        xs[j] = xs[j] * r * g[i];
    }
}

__device__ void df_copy_in(const float *src, int n, float *xs) {
    for (int i = threadIdx.x; i < n; i += DF_THREADS) xs[df_xs_index(i, n)] = __ldcg(src + i);
}

// Row sum i of the block's accumulators (fixed order), cleared for the next phase.
__device__ __forceinline__ float df_row_sum(float *acc, int stride, int i) {
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < DF_WARPS; w++) {
        s += acc[w * stride + i];
        acc[w * stride + i] = 0.0f;
    }
    return s;
}

// x += the block's row sums, over its rows of the residual stream (the o and down products).
__device__ __forceinline__ void df_add_residual(const df_params &P, float *acc) {
    const int r0 = df_lo(P.d, blockIdx.x, P.nb), r1 = df_lo(P.d, blockIdx.x + 1, P.nb);
    for (int i = threadIdx.x; i < r1 - r0; i += DF_THREADS) P.x[r0 + i] = __ldcg(P.x + r0 + i) + df_row_sum(acc, P.acc_stride, i);
}

// Rotates element i of a head vector v (read through ld) by position pos.
template <class LD>
__device__ __forceinline__ float df_rope(const df_params &P, LD ld, int i, int pos) {
    const float x = ld(i);
    if (i >= P.n_rot) return x;
    const int half = P.n_rot / 2;
    int j, other;
    bool first;
    if (P.mode == ROPE_MODE_NEOX) {
        first = i < half;
        j = first ? i : i - half;
        other = first ? i + half : i - half;
    } else {
        first = (i & 1) == 0;
        j = i >> 1;
        other = first ? i + 1 : i - 1;
    }
    const float c = P.rope_cos[(size_t)pos * half + j], s = P.rope_sin[(size_t)pos * half + j];
    const float y = ld(other);
    return first ? x * c - y * s : y * s + x * c;
}

// One split of one KV head: its share of the visible keys against the group's G queries; writes
// the unnormalized output and (max, sum) of the split (base-2 scores).
__device__ void df_attention(const df_params &P, const cuda_fused_layer &L, float *work) {
    const int item = blockIdx.x;
    if (item >= P.n_head_kv * P.n_split) return;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int kvh = item / P.n_split, sp = item % P.n_split;
    const int hd = P.hd, G = P.n_head / P.n_head_kv, nkv = P.n_head_kv * hd, hdp = hd + 4, hd4 = hd / 4;
    const int n_fixed = P.meta[0], lo = P.meta[2], hi = P.meta[3];
    const int n_vis = n_fixed + hi - lo, per = (n_vis + P.n_split - 1) / P.n_split;
    const int v0 = sp * per, v1 = min(n_vis, v0 + per);
    float *qs = work;                      // [G][hd]
    float *ks = qs + G * hd;               // [KT][hdp]
    float *vs = ks + DF_KT * hdp;          // [KT][hdp]
    float *sc = vs + DF_KT * hdp;          // [G][KT]
    float *st = sc + G * DF_KT;            // m[G], l[G], alpha[G]
    const int qpos = n_vis - 1;
    for (int t = tid; t < G * hd; t += DF_THREADS) {
        const int g = t / hd, i = t - g * hd;
        const float *qh = P.q + (size_t)(kvh * G + g) * hd;
        qs[t] = df_rope(P, [&](int k) { return __ldcg(qh + k); }, i, qpos) * P.qscale;
    }
    if (tid < G) {
        st[tid] = -INFINITY;
        st[G + tid] = 0.0f;
    }
    const int n_pairs = G * hd;
    float acc[DF_MAX_PAIRS];
#pragma unroll
    for (int k = 0; k < DF_MAX_PAIRS; k++) acc[k] = 0.0f;
    df_sync();
    for (int base = v0; base < v1; base += DF_KT) {
        const int nk = min(DF_KT, v1 - base);
        for (int u = tid; u < nk * hd4; u += DF_THREADS) {
            const int k = u / hd4, c4 = u - k * hd4, v = base + k;
            const int slot = P.keys[v < n_fixed ? v : v + lo];
            const size_t off = (size_t)slot * nkv + (size_t)kvh * hd;
            *reinterpret_cast<float4 *>(ks + k * hdp + c4 * 4) = __ldcg(reinterpret_cast<const float4 *>(L.k_cache + off) + c4);
            *reinterpret_cast<float4 *>(vs + k * hdp + c4 * 4) = __ldcg(reinterpret_cast<const float4 *>(L.v_cache + off) + c4);
        }
        df_sync();
        // the keys rotated in place by their positions (a visible key's index is its position)
        const int half = P.n_rot / 2;
        for (int u = tid; u < nk * half; u += DF_THREADS) {
            const int k = u / half, j = u - k * half, pos = base + k;
            float *kr = ks + k * hdp;
            const int i0 = P.mode == ROPE_MODE_NEOX ? j : 2 * j, i1 = P.mode == ROPE_MODE_NEOX ? j + half : 2 * j + 1;
            const float a = kr[i0], b = kr[i1];
            const float c = P.rope_cos[(size_t)pos * half + j], s = P.rope_sin[(size_t)pos * half + j];
            kr[i0] = a * c - b * s;
            kr[i1] = a * s + b * c;
        }
        df_sync();
        for (int t = tid; t < G * DF_KT; t += DF_THREADS) {
            const int g = t / DF_KT, k = t - g * DF_KT;
            float s = -INFINITY;
            if (k < nk) {
                const float *qr = qs + g * hd, *kr = ks + k * hdp;
                s = 0.0f;
                for (int i = 0; i < hd; i += 4) {
                    const float4 a = *reinterpret_cast<const float4 *>(qr + i), b = *reinterpret_cast<const float4 *>(kr + i);
                    s = fmaf(a.x, b.x, s);
                    s = fmaf(a.y, b.y, s);
                    s = fmaf(a.z, b.z, s);
                    s = fmaf(a.w, b.w, s);
                }
            }
            sc[t] = s;
        }
        df_sync();
        if (warp < G) {  // the online softmax of head `warp` (lane = key, key + 32, ...)
            float sv[DF_KT / 32], mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < DF_KT / 32; j++) {
                sv[j] = sc[warp * DF_KT + j * 32 + lane];
                mx = fmaxf(mx, sv[j]);
            }
            const float m_old = st[warp], m_new = fmaxf(m_old, warp_max(mx));
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < DF_KT / 32; j++) {
                const float p = sv[j] == -INFINITY ? 0.0f : exp2f(sv[j] - m_new);
                sc[warp * DF_KT + j * 32 + lane] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float alpha = m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);
                st[warp] = m_new;
                st[G + warp] = st[G + warp] * alpha + sum;
                st[2 * G + warp] = alpha;
            }
        }
        df_sync();
#pragma unroll
        for (int k = 0; k < DF_MAX_PAIRS; k++) {
            const int t = tid + k * DF_THREADS;
            if (t < n_pairs) {
                const int g = t / hd, i = t - g * hd;
                const float *pr = sc + g * DF_KT;
                float a = acc[k] * st[2 * G + g];
                for (int kk = 0; kk < nk; kk++) a = fmaf(pr[kk], vs[kk * hdp + i], a);
                acc[k] = a;
            }
        }
        df_sync();
    }
    const int stride = hd + 2;
#pragma unroll
    for (int k = 0; k < DF_MAX_PAIRS; k++) {
        const int t = tid + k * DF_THREADS;
        if (t < n_pairs) {
            const int g = t / hd, i = t - g * hd;
            P.part[((size_t)(kvh * G + g) * P.n_split + sp) * stride + i] = acc[k];
        }
    }
    if (tid < G) {
        float *r = P.part + ((size_t)(kvh * G + tid) * P.n_split + sp) * stride + hd;
        r[0] = st[tid];
        r[1] = st[G + tid];
    }
}

// att[h] = the splits of head h merged. Thread (group, dim) takes the splits group, group +
// n_groups, ...: first all their maxima, then their sums and outputs (loads independent of each
// other, so they are in flight together); then the groups are combined.
__device__ void df_merge(const df_params &P, float *work) {
    const int tid = threadIdx.x, hd = P.hd, stride = hd + 2;
    const int n_groups = DF_THREADS / hd;  // hd <= 256: at least 2
    const int grp = tid / hd, i = tid - grp * hd;
    float *wo = work;                       // [n_groups][hd]
    float *wm = wo + n_groups * hd;         // [n_groups] max, [n_groups] sum
    for (int h = blockIdx.x; h < P.n_head; h += P.nb) {
        const float *ph = P.part + (size_t)h * P.n_split * stride;
        if (grp < n_groups) {
            float M = -INFINITY;
#pragma unroll 8
            for (int s = grp; s < P.n_split; s += n_groups) M = fmaxf(M, __ldcg(ph + (size_t)s * stride + hd));
            float Ls = 0.0f, O = 0.0f;
            if (M != -INFINITY) {
#pragma unroll 8
                for (int s = grp; s < P.n_split; s += n_groups) {
                    const float *r = ph + (size_t)s * stride;
                    const float w = exp2f(__ldcg(r + hd) - M);  // 0 for an empty split (its l and o are 0)
                    Ls = fmaf(w, __ldcg(r + hd + 1), Ls);
                    O = fmaf(w, __ldcg(r + i), O);
                }
            }
            wo[grp * hd + i] = O;
            if (i == 0) {
                wm[grp] = M;
                wm[n_groups + grp] = Ls;
            }
        }
        df_sync();
        if (tid < hd) {
            float Mx = -INFINITY;
            for (int g = 0; g < n_groups; g++) Mx = fmaxf(Mx, wm[g]);
            float Lt = 0.0f, Ot = 0.0f;
            for (int g = 0; g < n_groups; g++) {
                if (wm[g] == -INFINITY) continue;
                const float w = exp2f(wm[g] - Mx);
                Lt = fmaf(w, wm[n_groups + g], Lt);
                Ot = fmaf(w, wo[g * hd + tid], Ot);
            }
            P.att[(size_t)h * hd + tid] = Ot / Lt;
        }
        df_sync();
    }
}

#endif  // sm_90

template <bool BF16>
__global__ void __launch_bounds__(DF_THREADS + 32, 1) decode_fused_kernel(const df_params P) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(128) uint8_t df_shared[];
    uint64_t *full = reinterpret_cast<uint64_t *>(df_shared), *empty = full + P.slots;
    uint8_t *ring = df_shared + (2 * P.slots * 8 + 127) / 128 * 128;
    float *work = reinterpret_cast<float *>(ring + (size_t)P.slots * DF_CHUNK);
    float *acc = work + P.work_floats;
    float *red = acc + DF_WARPS * P.acc_stride;
    const int tid = threadIdx.x;
    if (tid == 0) {
        for (int i = 0; i < P.slots; i++) {
            df_mbar_init(&full[i], 1);
            df_mbar_init(&empty[i], 1);
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    for (int i = tid; i < DF_WARPS * P.acc_stride; i += blockDim.x) acc[i] = 0.0f;
    __syncthreads();
    if (tid >= DF_THREADS) {
        if (tid == DF_THREADS) df_produce(P, ring, full, empty);
        return;
    }
    const int b = blockIdx.x, warp = tid >> 5;
    const int nq = P.n_head * P.hd, nkv = P.n_head_kv * P.hd;
    const int slot = P.meta[4];
    float *acc_w = acc + warp * P.acc_stride;
    uint32_t c = 0;
    unsigned epoch = 0;
    df_seg s[3];
    const unsigned long long t_start = P.prof ? df_now() : 0;
    unsigned long long t_mark = t_start;
    // phase ph's products of this block, once the input is in `work` (then profile mark `mark`)
    auto products = [&](const cuda_fused_layer &L, int ph, int mark) {
        df_sync();
        const int ns = df_segments(P, L, ph, b, s);
        for (int i = 0; i < ns; i++) df_consume<BF16>(P, s[i], ring, full, empty, c, work, acc_w);
        df_sync();
        df_mark(P, mark, t_mark);
    };
    for (int l = 0; l < P.n_layer; l++) {
        const cuda_fused_layer L = P.layers[l];
        // q, k, v = norm(x) W^T + b; k and v into the cache row `slot`
        df_norm(P, L.attn_norm, work, red);
        products(L, 0, 0);
        {
            const int R = nq + 2 * nkv, r0 = df_lo(R, b, P.nb), r1 = df_lo(R, b + 1, P.nb);
            for (int i = tid; i < r1 - r0; i += DF_THREADS) {
                const float v = df_row_sum(acc, P.acc_stride, i);
                const int r = r0 + i;
                if (r < nq) {
                    P.q[r] = v + (L.bq ? L.bq[r] : 0.0f);
                } else if (r < nq + nkv) {
                    const int j = r - nq;
                    L.k_cache[(size_t)slot * nkv + j] = v + (L.bk ? L.bk[j] : 0.0f);
                } else {
                    const int j = r - nq - nkv;
                    L.v_cache[(size_t)slot * nkv + j] = v + (L.bv ? L.bv[j] : 0.0f);
                }
            }
        }
        df_grid_sync(P, epoch);
        df_mark(P, 1, t_mark);
        df_attention(P, L, work);
        df_sync();
        df_mark(P, 2, t_mark);
        df_grid_sync(P, epoch);
        df_mark(P, 3, t_mark);
        df_merge(P, work);
        df_mark(P, 4, t_mark);
        df_grid_sync(P, epoch);
        df_mark(P, 5, t_mark);
        // x += att Wo^T
        df_copy_in(P.att, nq, work);
        products(L, 1, 6);
        df_add_residual(P, acc);
        df_grid_sync(P, epoch);
        df_mark(P, 7, t_mark);
        // h = silu(norm(x) Wg^T) * (norm(x) Wu^T)
        df_norm(P, L.ffn_norm, work, red);
        products(L, 2, 8);
        {
            const int r0 = df_lo(P.n_ff, b, P.nb), r1 = df_lo(P.n_ff, b + 1, P.nb), n = r1 - r0;
            for (int i = tid; i < n; i += DF_THREADS) {
                const float g = df_row_sum(acc, P.acc_stride, i), u = df_row_sum(acc, P.acc_stride, n + i);
                P.h[r0 + i] = dev_swiglu(g, u);
            }
        }
        df_grid_sync(P, epoch);
        df_mark(P, 9, t_mark);
        // x += h Wd^T
        df_copy_in(P.h, P.n_ff, work);
        products(L, 3, 10);
        df_add_residual(P, acc);
        if (l + 1 < P.n_layer) df_grid_sync(P, epoch);
        df_mark(P, 11, t_mark);
    }
    if (P.prof && b == 0 && tid == 0) {
        atomicAdd(&P.prof[DF_PROF_STEPS], 1ull);
        atomicAdd(&P.prof[DF_PROF_STEPS - 1], df_now() - t_start);
    }
#endif
}

size_t df_work_floats(const cuda_fused_shape &s) {
    const int G = s.n_head / s.n_head_kv, hd = s.head_dim, hdp = hd + 4;
    const size_t attn = (size_t)G * hd + 2 * (size_t)DF_KT * hdp + (size_t)G * DF_KT + 3 * (size_t)G;
    const size_t merge = (size_t)(DF_THREADS / hd) * hd + 2 * (DF_THREADS / hd);
    const size_t vec = (size_t)std::max(std::max(s.d, s.n_head * hd), s.n_ff);
    return (std::max(std::max(attn, merge), vec) + 31) / 32 * 32;
}

unsigned long long *df_profile_buffer() {
    static unsigned long long *buf = [] {
        const char *v = std::getenv("ENDLESS_CUDA_FUSED_PROFILE");
        unsigned long long *p = nullptr;
        if (v && std::strcmp(v, "1") == 0) {
            CUDA_CHECK(cudaMalloc(&p, DF_PROF_WORDS * 8));
            CUDA_CHECK(cudaMemset(p, 0, DF_PROF_WORDS * 8));
        }
        return p;
    }();
    return buf;
}

}  // namespace

bool cuda_decode_fused_available(std::string *why) {
    auto no = [&](const char *w) {
        if (why) *why = w;
        return false;
    };
    // opt-in: measured slower than the separate launches so far (NOTES.md, tenth session)
    const char *v = std::getenv("ENDLESS_CUDA_FUSED_DECODE");
    if (!(v && std::strcmp(v, "1") == 0)) return no("off (ENDLESS_CUDA_FUSED_DECODE=1 turns it on)");
    int dev = 0, major = 0, coop = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    if (major < 9) return no("compute capability below 9.0 (no bulk copies)");
    if (!coop) return no("the device has no cooperative launch");
    return true;
}

cuda_fused_plan cuda_decode_fused_plan(const cuda_fused_shape &s) {
    cuda_fused_plan p;
    auto no = [&](const std::string &why) {
        p.ok = false;
        p.why = why;
        return p;
    };
    if (!cuda_decode_fused_available(&p.why)) return p;
    if (s.type != GGML_TYPE_BF16 && s.type != GGML_TYPE_F16) return no("weights are not F16 or BF16");
    int dev = 0, n_sm = 0, smem_optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (s.n_layer <= 0 || s.d <= 0 || s.n_ff <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv != 0)
        return no("bad shape");
    const int G = s.n_head / s.n_head_kv;
    if (G > DF_WARPS || G * s.head_dim > DF_MAX_PAIRS * DF_THREADS) return no("query group too large");
    if (s.head_dim % 4 != 0 || s.head_dim > 256 || s.n_rot % 2 != 0 || s.n_rot > s.head_dim) return no("head shape");
    if (s.d % 8 != 0 || s.n_ff % 8 != 0 || (s.n_head * s.head_dim) % 8 != 0) return no("rows are not a multiple of 8 values");
    p.n_blocks = n_sm;
    p.n_split = std::max(1, p.n_blocks / s.n_head_kv);
    const int nq = s.n_head * s.head_dim, nkv = s.n_head_kv * s.head_dim;
    const int rows_qkv = (nq + 2 * nkv + p.n_blocks - 1) / p.n_blocks + 1;
    const int rows_d = (s.d + p.n_blocks - 1) / p.n_blocks + 1;
    const int rows_ff = 2 * ((s.n_ff + p.n_blocks - 1) / p.n_blocks + 1);
    p.acc_stride = (std::max(std::max(rows_qkv, rows_d), rows_ff) + 3) / 4 * 4;
    p.work_floats = (int)df_work_floats(s);
    const size_t fixed = (size_t)(p.work_floats + DF_WARPS * p.acc_stride + 32) * 4;
    const size_t avail = (size_t)smem_optin;
    int slots = DF_MAX_SLOTS;
    auto total = [&](int n) { return (size_t)(2 * n * 8 + 127) / 128 * 128 + (size_t)n * DF_CHUNK + fixed; };
    while (slots >= 4 && total(slots) > avail) slots--;
    if (slots < 4) return no("not enough shared memory for the weight ring");
    p.slots = slots;
    p.inflight = slots;
    if (const char *v = std::getenv("ENDLESS_CUDA_FUSED_INFLIGHT")) p.inflight = std::max(1, std::min(slots, std::atoi(v)));
    if (const char *v = std::getenv("ENDLESS_CUDA_FUSED_BACKOFF")) p.backoff_ns = (unsigned)std::max(0, std::min(10000, std::atoi(v)));
    p.min_chunk = DF_CHUNK;
    if (const char *v = std::getenv("ENDLESS_CUDA_FUSED_MIN_CHUNK"))
        p.min_chunk = (unsigned)std::max(512, std::min((int)DF_CHUNK, std::atoi(v) / 512 * 512));
    p.smem = total(slots);
    p.part_bytes = ((size_t)s.n_head * p.n_split * (s.head_dim + 2) * 4 + 255) / 256 * 256;
    auto kernel = s.type == GGML_TYPE_BF16 ? decode_fused_kernel<true> : decode_fused_kernel<false>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)p.smem));
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, DF_THREADS + 32, p.smem));
    if (per_sm < 1) return no("a block does not fit a multiprocessor");
    p.ok = true;
    return p;
}

std::string cuda_decode_fused_profile() {
    unsigned long long *buf = df_profile_buffer();
    if (!buf) return "";
    unsigned long long h[DF_PROF_WORDS];
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h, buf, sizeof h, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemset(buf, 0, sizeof h));
    const double steps = (double)std::max(1ull, h[DF_PROF_STEPS]);
    static const char *names[12] = {"qkv", "qkv-end+bar", "attn", "attn-bar", "merge", "merge-bar",
                                    "o", "o-end+bar", "gate/up", "gu-end+bar", "down", "down-end+bar"};
    std::string r = "fused step (block 0, us a step; " + std::to_string((long long)steps) + " steps):";
    char b[96];
    for (int k = 0; k < 12; k++) {
        std::snprintf(b, sizeof b, " %s %.1f", names[k], h[k] / steps / 1e3);
        r += b;
    }
    std::snprintf(b, sizeof b, "; total %.1f; consumer wait for chunks %.1f; producer wait for slots %.1f",
                  h[DF_PROF_STEPS - 1] / steps / 1e3, h[DF_PROF_FULL_WAIT] / steps / 1e3, h[DF_PROF_EMPTY_WAIT] / steps / 1e3);
    return r + b;
}

void cuda_decode_fused(const cuda_fused_args &a, const cuda_fused_plan &plan, cudaStream_t stream) {
    const cuda_fused_shape &s = a.shape;
    df_params P{};
    P.layers = a.layers;
    P.x = a.x;
    P.q = a.q;
    P.att = a.att;
    P.h = a.h;
    P.part = static_cast<float *>(a.part);
    P.keys = a.keys;
    P.meta = a.meta;
    P.bar = a.barrier;
    P.rope_cos = a.rope_cos;
    P.rope_sin = a.rope_sin;
    P.n_layer = s.n_layer;
    P.d = s.d;
    P.n_ff = s.n_ff;
    P.n_head = s.n_head;
    P.n_head_kv = s.n_head_kv;
    P.hd = s.head_dim;
    P.n_rot = s.n_rot;
    P.mode = a.rope_mode;
    P.eps = a.eps;
    P.qscale = a.scale * DF_LOG2E;
    P.n_split = plan.n_split;
    P.slots = plan.slots;
    P.inflight = plan.inflight;
    P.backoff = plan.backoff_ns;
    P.min_chunk = plan.min_chunk;
    P.nb = plan.n_blocks;
    P.work_floats = plan.work_floats;
    P.acc_stride = plan.acc_stride;
    P.prof = df_profile_buffer();
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(plan.n_blocks);
    cfg.blockDim = dim3(DF_THREADS + 32);
    cfg.dynamicSmemBytes = plan.smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    auto kernel = s.type == GGML_TYPE_BF16 ? decode_fused_kernel<true> : decode_fused_kernel<false>;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, P));
}

}  // namespace endless
