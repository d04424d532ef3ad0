// Decode attention for one query over the sink / memory / window / branch cache (attn_args in
// backend.h), built to be short rather than general: attention_decode_kernel (attention.cu) pays
// six block barriers, a shared-memory staging of K and V and a two-level merge per 32-key chunk,
// and measured ~20 us per layer at 4096 keys for ~3 us of K/V bytes. Here:
//   - a block takes one KV head and CUDA_A1_KEYS_PER_BLOCK consecutive key-list entries per
//     round; each of its 8 warps takes 8 of them and works alone (no block barrier until the end):
//     it loads the 8 keys' K and V rows straight into registers (lane l holds pairs PPL l ..
//     PPL l + PPL - 1 of every head vector), scores them against the G <= 8 heads of the KV head,
//     sums the partial dot products over the lanes with a transposing shuffle tree (each lane ends
//     with one (key, head) score of a group of 4 keys), and keeps an online softmax and the P.V
//     sums of every head in registers;
//   - the 8 warps' (m, l, o) merge once in shared memory, into one record per head;
//   - a second launch merges the blocks' records (attention_decode1_merge_kernel).
// Early loads (EARLY, one round per block): the kernel is a programmatic dependent launch, so it
// may start while the q/k/v product before it still runs. Only the rows written since the last
// host sync can be new, and the backend knows them (kv_store's slots; "fresh", at most
// CUDA_A1_MAX_FRESH; with any other write into the cache it passes n_fresh = -1 and every row waits).
// So every other row is requested before griddepcontrol.wait, the fresh ones after it. H100 decode
// step 1.786-1.790 ms vs 1.806-1.868 for the code before it, four alternating rounds on one card
// (NOTES.md, seventh session).
// RoPE (keys stored before rotation): a key at list entry t = t0 + k (t0: the warp's first entry
// of the round) scores against a query at position P as (R((P - t0) theta) q)^T (R(k theta) k),
// the same relative trick as attention_decode_kernel: keys use table rows 0..7 (shared by every
// warp, so they stay in L1), the query row P - t0. P is the window or the fixed-key position of
// attn_args (both below n_keys).
// Measured (H100, NOTES.md, fourth session): 18.3 vs 20.7 us per layer for attention_decode_kernel,
// both alone in one run; with the merge as its own launch (fifth session) 15.6-17.0 us, of which the
// attention kernel ~12 (measured without a merge). The kernel is bound by its instruction chain at
// 8 warps per SM, not by the loads: rotating each key once in place and each head's query one at a
// time, with no products for the padding heads, took it from ~211 to ~185 registers and the
// attention with its merge from ~12.4 to ~11 us per layer alone, the step ~1.3% faster (sixteenth
// session). Without the merge launch the BF16 step would be ~0.06 ms shorter, without the attention
// ~0.36 ms (ablations, NOTES.md).
// A version staging K/V in shared memory (4 lanes per key, no shuffle tree) ran fewer instructions
// but was slower (three barriers per round at 8 warps per SM).
#include "attention_decode1.cuh"
#include "cuda_common.cuh"

#include <algorithm>
#include <string>

namespace endless {

namespace {

constexpr int A1_WARPS = 8, A1_THREADS = 32 * A1_WARPS;
constexpr int A1_KW = CUDA_A1_KEYS_PER_BLOCK / A1_WARPS;  // keys per warp per round
constexpr int A1_HP = 8;                                   // head slots (heads of a KV head, padded)
constexpr int A1_MERGE = 16;                               // records whose loads are in flight together
static_assert(A1_KW == 8 && A1_HP == 8, "the score tree maps 4 keys x 8 heads onto 32 lanes");

struct a1_params {
    const float *q, *k_cache, *v_cache;
    float *out;
    const int32_t *keys, *win_lo, *win_hi, *meta;
    const int32_t *fresh;  // EARLY: the n_fresh slots written since the last sync (loaded after the wait)
    const float *rope_cos, *rope_sin;
    float *rec;          // [n_head_kv][n_split][G][rs]: o[head_dim], m, l
    int n_head_kv, G, keys_bucket, n_split, rounds, rs, n_fresh;
    float scale;
};

// N consecutive floats (N = 1, 2, 4; p aligned to 4N bytes), through the read-only path.
template <int N>
__device__ __forceinline__ void a1_ld(const float *p, float *x) {
    if (N == 4) {
        const float4 v = __ldg(reinterpret_cast<const float4 *>(p));
        x[0] = v.x; x[1] = v.y; x[2] = v.z; x[3] = v.w;
    } else if (N == 2) {
        const float2 v = __ldg(reinterpret_cast<const float2 *>(p));
        x[0] = v.x; x[1] = v.y;
    } else {
        x[0] = __ldg(p);
    }
}
template <int N>
__device__ __forceinline__ void a1_st(float *p, const float *x) {
    if (N == 4) *reinterpret_cast<float4 *>(p) = make_float4(x[0], x[1], x[2], x[3]);
    else if (N == 2) *reinterpret_cast<float2 *>(p) = make_float2(x[0], x[1]);
    else p[0] = x[0];
}

// A head vector's pairs held by this lane: a[i], b[i] are the two dims of pair PPL lane + i
// (NEOX: dims p and p + head_dim / 2; NORM: 2p and 2p + 1).
template <int PPL, bool NEOX>
__device__ __forceinline__ void a1_load_pairs(const float *row, int lane, float (&a)[PPL], float (&b)[PPL]) {
    constexpr int HALF = 32 * PPL;
    if (NEOX) {
        a1_ld<PPL>(row + PPL * lane, a);
        a1_ld<PPL>(row + HALF + PPL * lane, b);
    } else {
        float x[2 * PPL];
        if (PPL == 1) a1_ld<2>(row + 2 * lane, x);
        else {
#pragma unroll
            for (int c = 0; c < PPL; c += 2) a1_ld<4>(row + 2 * PPL * lane + 2 * c, x + 2 * c);
        }
#pragma unroll
        for (int i = 0; i < PPL; i++) { a[i] = x[2 * i]; b[i] = x[2 * i + 1]; }
    }
}
template <int PPL, bool NEOX>
__device__ __forceinline__ void a1_store_pairs(float *row, int lane, const float (&a)[PPL], const float (&b)[PPL]) {
    constexpr int HALF = 32 * PPL;
    if (NEOX) {
        a1_st<PPL>(row + PPL * lane, a);
        a1_st<PPL>(row + HALF + PPL * lane, b);
    } else {
        float x[2 * PPL];
#pragma unroll
        for (int i = 0; i < PPL; i++) { x[2 * i] = a[i]; x[2 * i + 1] = b[i]; }
        if (PPL == 1) a1_st<2>(row + 2 * lane, x);
        else {
#pragma unroll
            for (int c = 0; c < PPL; c += 2) a1_st<4>(row + 2 * PPL * lane + 2 * c, x + 2 * c);
        }
    }
}

// Transposing sum over the lanes: of N values per lane, at offset N / 2 the lanes with that bit set
// keep the upper half and send the lower half to lane ^ N / 2 (the others the opposite), then
// again on the N / 2 kept values. 32 values -> 1: lane l ends with the sum of value l. (Written as
// a recursion so every index is a constant: a loop here left the values in local memory.)
template <int N>
__device__ __forceinline__ void a1_tree(float (&v)[32], int lane) {
    constexpr int O = N / 2;
    const bool up = (lane & O) != 0;
#pragma unroll
    for (int i = 0; i < O; i++) {
        const float vl = v[i], vh = v[i + O];
        const float send = up ? vl : vh, keep = up ? vh : vl;
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, O);
    }
    if constexpr (N > 2) a1_tree<N / 2>(v, lane);
}

template <int PPL, bool NEOX, bool EARLY>
__global__ void __launch_bounds__(A1_THREADS, 1) attention_decode1_kernel(const a1_params P) {
    constexpr int HD = 64 * PPL, HALF = 32 * PPL;
    __shared__ __align__(16) float sO[A1_WARPS][A1_HP][HD];  // each warp's P.V sums per head
    __shared__ __align__(16) float sP[A1_WARPS][A1_KW][A1_HP];  // a round's probabilities, [key][head]
    __shared__ float sA[A1_WARPS][A1_HP];                    // a round's rescale factor per head
    __shared__ float sM[A1_WARPS][A1_HP], sL[A1_WARPS][A1_HP];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kvh = blockIdx.y, G = P.G, split = blockIdx.x;
    const size_t row_floats = (size_t)P.n_head_kv * HD, kv_off = (size_t)kvh * HD;
    const int t_warp = (split * A1_WARPS + warp) * A1_KW * P.rounds;  // the warp's first key-list entry

    // ---- loads that depend on nothing: the list's shape, the query's window, the warp's key slots
    const int n_fixed = __ldg(P.meta), n_keys = __ldg(P.meta + 1);
    const int lo = __ldg(P.win_lo), hi = __ldg(P.win_hi);
    int slot = 0;  // lane i: slot of entry t_warp + i (i < 8 rounds)
    if (lane < A1_KW * P.rounds && t_warp + lane < P.keys_bucket) slot = __ldg(P.keys + t_warp + lane);
    const int wlo = n_fixed + lo, whi = min(n_fixed + hi, n_keys);  // visible window entries
    // (the above is staged; the cache rows and the query come from the kernels before)
    float ka[A1_KW][PPL], kb[A1_KW][PPL], va[A1_KW][PPL], vb[A1_KW][PPL];
    // EARLY (one round): the rows no kernel since the last sync writes are requested before the
    // wait; a lane's key is fresh when its slot is one of P.fresh
    bool fresh = false;
    if (EARLY)
        for (int j = 0; j < P.n_fresh; j++) fresh |= slot == __ldg(P.fresh + j);
    const unsigned fresh_lanes = __ballot_sync(0xffffffffu, fresh);
    auto load_key = [&](int k, int t, int s) {
        const bool v = t < n_keys && (t < n_fixed || (t >= wlo && t < whi));
        if (v) {
            a1_load_pairs<PPL, NEOX>(P.k_cache + (size_t)s * row_floats + kv_off, lane, ka[k], kb[k]);
            a1_load_pairs<PPL, NEOX>(P.v_cache + (size_t)s * row_floats + kv_off, lane, va[k], vb[k]);
        } else {
#pragma unroll
            for (int i = 0; i < PPL; i++) ka[k][i] = kb[k][i] = va[k][i] = vb[k][i] = 0.0f;
        }
    };
    if (EARLY) {
#pragma unroll
        for (int k = 0; k < A1_KW; k++)
            if (!((fresh_lanes >> k) & 1u)) load_key(k, t_warp + k, __shfl_sync(0xffffffffu, slot, k));
    }
    dev_pdl_wait();
    dev_pdl_release();
    if (EARLY && fresh_lanes) {
#pragma unroll
        for (int k = 0; k < A1_KW; k++)
            if ((fresh_lanes >> k) & 1u) load_key(k, t_warp + k, __shfl_sync(0xffffffffu, slot, k));
    }
    const int pos_fixed = n_fixed + hi - lo - 1, pos_win = n_fixed + hi - 1;
    const float *q0 = P.q + (size_t)kvh * G * HD;

    // running softmax of head (lane & 7) and P.V sums of every head (lane's pairs)
    float m_run = -INFINITY, l_run = 0.0f;
    float oa[A1_HP][PPL], ob[A1_HP][PPL];
#pragma unroll
    for (int h = 0; h < A1_HP; h++)
#pragma unroll
        for (int i = 0; i < PPL; i++) oa[h][i] = ob[h][i] = 0.0f;

    for (int r = 0; r < P.rounds; r++) {
        const int t0 = t_warp + r * A1_KW;
        if (t0 >= n_keys) break;  // (warp-uniform) later rounds see nothing either
        // the round's K and V rows into registers (zeros for keys nobody sees)
        unsigned vis = 0, fixed = 0;
#pragma unroll
        for (int k = 0; k < A1_KW; k++) {
            const int t = t0 + k;
            const bool v = t < n_keys && (t < n_fixed || (t >= wlo && t < whi));
            vis |= (unsigned)v << k;
            fixed |= (unsigned)(t < n_fixed) << k;
            if (!EARLY) load_key(k, t, __shfl_sync(0xffffffffu, slot, r * A1_KW + k));
        }
        if (vis == 0) continue;

        // ---- scores, two groups of 4 keys; after the tree, lane l holds key 4 g + l / 8, head l % 8
        float sc[2];
#pragma unroll
        for (int g = 0; g < 2; g++) {
            float part[4][A1_HP];
#pragma unroll
            for (int k = 0; k < 4; k++)
#pragma unroll
                for (int h = 0; h < A1_HP; h++) part[k][h] = 0.0f;
            const unsigned gvis = (vis >> (4 * g)) & 15u, gfix = (fixed >> (4 * g)) & 15u;
            // the group's keys rotated in place by table rows 4 g + k (each key is fixed or window, not both)
#pragma unroll
            for (int k = 0; k < 4; k++) {
                if (!((gvis >> k) & 1u)) continue;
                const int kk = 4 * g + k;
                float kc[PPL], ks[PPL];
                a1_ld<PPL>(P.rope_cos + (size_t)kk * HALF + PPL * lane, kc);
                a1_ld<PPL>(P.rope_sin + (size_t)kk * HALF + PPL * lane, ks);
#pragma unroll
                for (int i = 0; i < PPL; i++) {
                    const float ra = ka[kk][i] * kc[i] - kb[kk][i] * ks[i];
                    const float rb = ka[kk][i] * ks[i] + kb[kk][i] * kc[i];
                    ka[kk][i] = ra;
                    kb[kk][i] = rb;
                }
            }
#pragma unroll
            for (int ver = 0; ver < 2; ver++) {  // 0: fixed keys, 1: window keys (each key is one)
                const unsigned keys_v = gvis & (ver == 0 ? gfix : ~gfix);
                if (keys_v == 0) continue;
                // the query of every head rotated by (position - t0), scaled, one head at a time
                const int qrow = (ver == 0 ? pos_fixed : pos_win) - t0;
                float qc[PPL], qs[PPL];
                a1_ld<PPL>(P.rope_cos + (size_t)qrow * HALF + PPL * lane, qc);
                a1_ld<PPL>(P.rope_sin + (size_t)qrow * HALF + PPL * lane, qs);
#pragma unroll
                for (int h = 0; h < A1_HP; h++) {
                    if (h >= G) continue;  // (padding heads keep 0; their scores are masked below)
                    float xa[PPL], xb[PPL], qa[PPL], qb[PPL];
                    a1_load_pairs<PPL, NEOX>(q0 + (size_t)h * HD, lane, xa, xb);
#pragma unroll
                    for (int i = 0; i < PPL; i++) {
                        qa[i] = (xa[i] * qc[i] - xb[i] * qs[i]) * P.scale;
                        qb[i] = (xa[i] * qs[i] + xb[i] * qc[i]) * P.scale;
                    }
#pragma unroll
                    for (int k = 0; k < 4; k++) {
                        if (!((keys_v >> k) & 1u)) continue;
                        const int kk = 4 * g + k;
                        float x = part[k][h];
#pragma unroll
                        for (int i = 0; i < PPL; i++) x = fmaf(qa[i], ka[kk][i], fmaf(qb[i], kb[kk][i], x));
                        part[k][h] = x;
                    }
                }
            }
            float v[32];
#pragma unroll
            for (int i = 0; i < 32; i++) v[i] = part[i / A1_HP][i % A1_HP];
            a1_tree<32>(v, lane);
            const int key = 4 * g + lane / A1_HP, head = lane % A1_HP;
            sc[g] = ((vis >> key) & 1u) && head < G ? v[0] : -INFINITY;
        }

        // ---- online softmax of head lane % 8 over the round's 8 keys (lanes h, h + 8, h + 16, h + 24)
        float mx = fmaxf(sc[0], sc[1]);
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 8));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 16));
        const float m_new = fmaxf(m_run, mx);
        const float p0 = sc[0] == -INFINITY ? 0.0f : __expf(sc[0] - m_new);
        const float p1 = sc[1] == -INFINITY ? 0.0f : __expf(sc[1] - m_new);
        float ps = p0 + p1;
        ps += __shfl_xor_sync(0xffffffffu, ps, 8);
        ps += __shfl_xor_sync(0xffffffffu, ps, 16);
        const float alpha = m_run == -INFINITY ? 0.0f : __expf(m_run - m_new);
        l_run = l_run * alpha + ps;
        m_run = m_new;
        sP[warp][lane / A1_HP][lane % A1_HP] = p0;
        sP[warp][4 + lane / A1_HP][lane % A1_HP] = p1;
        if (lane < A1_HP) sA[warp][lane] = alpha;
        __syncwarp();

        // ---- P.V: every lane its pairs of every head
#pragma unroll
        for (int h = 0; h < A1_HP; h++) {
            if (h >= G) continue;
            const float a = sA[warp][h];
#pragma unroll
            for (int i = 0; i < PPL; i++) { oa[h][i] *= a; ob[h][i] *= a; }
        }
#pragma unroll
        for (int k = 0; k < A1_KW; k++) {
            if (!((vis >> k) & 1u)) continue;
            const float4 pa = *reinterpret_cast<const float4 *>(&sP[warp][k][0]);
            const float4 pb = *reinterpret_cast<const float4 *>(&sP[warp][k][4]);
            const float p[A1_HP] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
#pragma unroll
            for (int h = 0; h < A1_HP; h++) {
                if (h >= G) continue;
#pragma unroll
                for (int i = 0; i < PPL; i++) {
                    oa[h][i] = fmaf(p[h], va[k][i], oa[h][i]);
                    ob[h][i] = fmaf(p[h], vb[k][i], ob[h][i]);
                }
            }
        }
        __syncwarp();  // sP, sA are rewritten next round
    }

    // ---- the block's 8 warps merged per head (warp h takes head h)
#pragma unroll
    for (int h = 0; h < A1_HP; h++)
        if (h < G) a1_store_pairs<PPL, NEOX>(&sO[warp][h][0], lane, oa[h], ob[h]);
    if (lane < A1_HP) { sM[warp][lane] = m_run; sL[warp][lane] = l_run; }
    __syncthreads();
    const int h = warp;
    const int d = 4 * lane;  // the lane's 4 dims in the merges (HD = 64: lanes 0..15)
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float m = -INFINITY, l = 0.0f;
    if (h < G) {
#pragma unroll
        for (int w = 0; w < A1_WARPS; w++) m = fmaxf(m, sM[w][h]);
#pragma unroll
        for (int w = 0; w < A1_WARPS; w++) {
            const float mw = sM[w][h];
            const float a = mw == -INFINITY ? 0.0f : __expf(mw - m);
            l = fmaf(a, sL[w][h], l);
            if (d < HD) {
                const float4 x = *reinterpret_cast<const float4 *>(&sO[w][h][d]);
                o.x = fmaf(a, x.x, o.x); o.y = fmaf(a, x.y, o.y); o.z = fmaf(a, x.z, o.z); o.w = fmaf(a, x.w, o.w);
            }
        }
        if (P.n_split == 1) {
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            if (d < HD)
                *reinterpret_cast<float4 *>(P.out + ((size_t)kvh * G + h) * HD + d) = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
        } else {
            float *rec = P.rec + (((size_t)kvh * P.n_split + split) * G + h) * P.rs;
            if (d < HD) __stcg(reinterpret_cast<float4 *>(rec + d), o);
            if (lane == 0) { __stcg(rec + HD, m); __stcg(rec + HD + 1, l); }
        }
    }
}

// The split-K merge, its own launch (programmatic dependent launch: it starts while the attention
// kernel finishes and waits for its records): A1_MQ lanes per 4 output dims of a head, each
// merging every A1_MQ-th record (all its loads in flight at once), then a shuffle merge of the
// A1_MQ partial results. (It replaced a merge by the last block of each KV head to finish, which
// waited on a fence and an atomic and then merged 64 records alone: attention + merge 15.6-17.0
// vs 18.0-19.5 us per layer, decode step 2.14-2.19 vs 2.21-2.31 ms, H100, NOTES.md.)
constexpr int A1_MQ = 8;
template <int HD>
__global__ void __launch_bounds__(128) attention_decode1_merge_kernel(const a1_params P) {
    dev_pdl_wait();
    dev_pdl_release();
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int q = t % A1_MQ, item = t / A1_MQ;  // item: (kv head, head, 4 dims)
    const int per_head = HD / 4;
    const bool on = item < P.n_head_kv * P.G * per_head;
    const int it = on ? item : 0;
    const int d = (it % per_head) * 4, hg = it / per_head, kvh = hg / P.G, h = hg % P.G;
    const float *rec0 = P.rec + ((size_t)kvh * P.n_split * P.G + h) * P.rs;
    const size_t stride = (size_t)P.G * P.rs;
    float m = -INFINITY, l = 0.0f;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int b = q; b < P.n_split; b += A1_MQ * A1_MERGE) {
        float ms[A1_MERGE], ls[A1_MERGE];
        float4 xs[A1_MERGE];
#pragma unroll
        for (int s = 0; s < A1_MERGE; s++) {
            const int r = b + s * A1_MQ;
            const bool ok = on && r < P.n_split;
            const float *rc = rec0 + (size_t)(ok ? r : 0) * stride;
            ms[s] = ok ? __ldcg(rc + HD) : -INFINITY;
            ls[s] = ok ? __ldcg(rc + HD + 1) : 0.0f;
            xs[s] = ok ? __ldcg(reinterpret_cast<const float4 *>(rc + d)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float mb = m;
#pragma unroll
        for (int s = 0; s < A1_MERGE; s++) mb = fmaxf(mb, ms[s]);
        const float a0 = m == -INFINITY ? 0.0f : __expf(m - mb);
        l *= a0;
        o.x *= a0; o.y *= a0; o.z *= a0; o.w *= a0;
#pragma unroll
        for (int s = 0; s < A1_MERGE; s++) {
            const float w = ms[s] == -INFINITY ? 0.0f : __expf(ms[s] - mb);
            l = fmaf(w, ls[s], l);
            o.x = fmaf(w, xs[s].x, o.x); o.y = fmaf(w, xs[s].y, o.y); o.z = fmaf(w, xs[s].z, o.z); o.w = fmaf(w, xs[s].w, o.w);
        }
        m = mb;
    }
    // the A1_MQ partial merges of an item sit in consecutive lanes
#pragma unroll
    for (int off = 1; off < A1_MQ; off <<= 1) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, off), lo = __shfl_xor_sync(0xffffffffu, l, off);
        float4 oo;
        oo.x = __shfl_xor_sync(0xffffffffu, o.x, off); oo.y = __shfl_xor_sync(0xffffffffu, o.y, off);
        oo.z = __shfl_xor_sync(0xffffffffu, o.z, off); oo.w = __shfl_xor_sync(0xffffffffu, o.w, off);
        const float mn = fmaxf(m, mo);
        const float a = m == -INFINITY ? 0.0f : __expf(m - mn), b = mo == -INFINITY ? 0.0f : __expf(mo - mn);
        l = a * l + b * lo;
        o.x = a * o.x + b * oo.x; o.y = a * o.y + b * oo.y; o.z = a * o.z + b * oo.z; o.w = a * o.w + b * oo.w;
        m = mn;
    }
    if (!on || q != 0) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    *reinterpret_cast<float4 *>(P.out + ((size_t)kvh * P.G + h) * HD + d) = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
}

template <int PPL, bool NEOX>
void a1_launch(const a1_params &P, cudaStream_t stream) {
    if (P.n_fresh >= 0 && P.n_fresh <= CUDA_A1_MAX_FRESH && P.rounds == 1)
        cuda_launch_pdl(attention_decode1_kernel<PPL, NEOX, true>, dim3(P.n_split, P.n_head_kv), dim3(A1_THREADS), 0, stream, P);
    else
        cuda_launch_pdl(attention_decode1_kernel<PPL, NEOX, false>, dim3(P.n_split, P.n_head_kv), dim3(A1_THREADS), 0, stream, P);
    if (P.n_split > 1) {
        const int threads = P.n_head_kv * P.G * (64 * PPL / 4) * A1_MQ;
        cuda_launch_pdl(attention_decode1_merge_kernel<64 * PPL>, dim3(cuda_blocks((size_t)threads, 128)), dim3(128), 0, stream, P);
    }
}

bool a1_aligned(const void *p, size_t n) { return ((uintptr_t)p % n) == 0; }

}  // namespace

bool cuda_attention_decode1_fits(const attn_args &a) {
    if (a.n_q != 1 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0) return false;
    const int G = a.n_head / a.n_head_kv;
    if (G > A1_HP || (a.head_dim != 64 && a.head_dim != 128) || a.n_rot != a.head_dim) return false;
    // float4 rows and tables (16-byte aligned pointers; rows of 64 or 128 floats keep it)
    return a1_aligned(a.q, 16) && a1_aligned(a.k_cache, 16) && a1_aligned(a.v_cache, 16) && a1_aligned(a.out, 16) &&
           a1_aligned(a.rope_cos, 16) && a1_aligned(a.rope_sin, 16);
}

void cuda_attention_decode1_shape(int keys_bucket, int n_head_kv, int n_sm, int &rounds, int &n_split) {
    rounds = 1;
    auto splits = [&](int r) { return (keys_bucket + CUDA_A1_KEYS_PER_BLOCK * r - 1) / (CUDA_A1_KEYS_PER_BLOCK * r); };
    while (rounds < CUDA_A1_MAX_ROUNDS && (int64_t)n_head_kv * splits(rounds) > 2 * (int64_t)n_sm) rounds++;
    n_split = std::max(1, splits(rounds));
}

bool cuda_attention_decode1_early(int rounds) { return rounds == 1; }

size_t cuda_attention_decode1_scratch_bytes(const attn_args &a, int n_split) {
    if (n_split <= 1) return 0;
    const size_t rs = (size_t)(a.head_dim + 2 + 3) / 4 * 4;
    return (size_t)a.n_head_kv * n_split * (a.n_head / a.n_head_kv) * rs * sizeof(float);
}

void cuda_attention_decode1(const attn_args &a, int keys_bucket, int rounds, int n_split, const int32_t *keys,
                            const int32_t *win_lo, const int32_t *win_hi, const int32_t *meta, float *scratch,
                            cudaStream_t stream, const int32_t *fresh, int n_fresh) {
    if (!cuda_attention_decode1_fits(a)) fail(ENDLESS_ERR_INTERNAL, "cuda attention (decode1): shapes do not fit this kernel");
    if (n_split > 1 && !scratch)
        fail(ENDLESS_ERR_INTERNAL, "cuda attention (decode1): " + std::to_string(n_split) + " splits need merge records");
    a1_params P{};
    P.q = a.q; P.k_cache = a.k_cache; P.v_cache = a.v_cache; P.out = a.out;
    P.keys = keys; P.win_lo = win_lo; P.win_hi = win_hi; P.meta = meta;
    P.fresh = fresh;
    P.n_fresh = n_fresh > 0 && !fresh ? -1 : n_fresh;
    P.rope_cos = a.rope_cos; P.rope_sin = a.rope_sin;
    P.rec = scratch;
    P.n_head_kv = a.n_head_kv;
    P.G = a.n_head / a.n_head_kv;
    P.keys_bucket = keys_bucket;
    P.n_split = n_split;
    P.rounds = rounds;
    P.rs = (a.head_dim + 2 + 3) / 4 * 4;
    P.scale = a.scale;
    const bool neox = a.mode == ROPE_MODE_NEOX;
    if (a.head_dim == 64) neox ? a1_launch<1, true>(P, stream) : a1_launch<1, false>(P, stream);
    else neox ? a1_launch<2, true>(P, stream) : a1_launch<2, false>(P, stream);
    CUDA_CHECK_LAUNCH("attention (decode, one query)");
}

}  // namespace endless
