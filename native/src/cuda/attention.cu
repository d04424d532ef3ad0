// Attention over the sink / memory / window / branch cache (semantics: attn_args in backend.h).
//
// Query i sees the n_fixed keys at positions 0..n_fixed-1, then window entries j in
// [win_lo[i], win_hi[i]) at positions n_fixed + j - win_lo[i]; the query sits at
// n_fixed + win_hi[i] - win_lo[i] - 1. RoPE scores depend only on the difference of positions, so
// window keys are rotated once, by n_fixed + j (shared by every query of a block), and the query
// by n_fixed + win_hi[i] - 1 for them: same differences, and positions stay below n_keys. The
// fixed keys use their true positions and the query's true position.
//
// Two kernels. Many rows (prefill chunks; attention_kernel): a block takes a tile of queries x a
// chunk of the heads of one KV head (GQA) and a share of the key tiles (split-K); it stages
// rotated K and V tiles in shared memory, keeps an online softmax per row, and writes either the
// output or a partial (m, l, o) that a combine kernel merges. Fixed-key tiles and window tiles
// are kept apart so each tile uses one query rotation. Decode (attention_decode_kernel, below):
// one launch; every block's loads issued at once; the split-K merge done by the last block of
// each group of blocks.
#include "attention.cuh"
#include "attention_decode1.cuh"
#include "cuda_common.cuh"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

namespace endless {

namespace {

constexpr int AT_THREADS = 128;

struct at_params {
    const float *q, *k_cache, *v_cache;
    float *out;
    const int32_t *keys, *win_lo, *win_hi, *meta;
    const float *rope_cos, *rope_sin;
    float *part_o, *part_ml;
    int n_q, n_head, n_head_kv, head_dim, n_rot, mode;
    int hs;  // shared-memory row stride in floats
    int heads_per_block, queries_per_block, n_hchunk, n_split;
    float scale;
};

// Rotates the pair p of a head vector src (global memory) by position pos and writes it to dst
// (shared memory row), times mul. Pairs past n_rot/2 are copied unrotated.
__device__ __forceinline__ void at_rope_pair(const at_params &P, const float *src, float *dst, int p, int pos, float mul) {
    const int half = P.n_rot / 2;
    int d0, d1;
    if (p < half) {
        if (P.mode == ROPE_MODE_NEOX) { d0 = p; d1 = p + half; }
        else { d0 = 2 * p; d1 = 2 * p + 1; }
        const float c = P.rope_cos[(size_t)pos * half + p], s = P.rope_sin[(size_t)pos * half + p];
        const float x0 = src[d0], x1 = src[d1];
        dst[d0] = (x0 * c - x1 * s) * mul;
        dst[d1] = (x0 * s + x1 * c) * mul;
    } else {
        d0 = P.n_rot + 2 * (p - half);
        d1 = d0 + 1;
        dst[d0] = src[d0] * mul;
        dst[d1] = src[d1] * mul;
    }
}

// Vector path (head_dim and n_rot multiples of 8): a "quad" is 4 consecutive pairs p..p+3, read as
// two float4 of the head vector at dims da and db (with the 4 cos/sin values when rotated).
__device__ __forceinline__ void at_quad_dims(int n_rot, int mode, int p, int &da, int &db, bool &rot) {
    const int half = n_rot / 2;
    rot = p < half;
    if (rot) {
        if (mode == ROPE_MODE_NEOX) { da = p; db = p + half; }
        else { da = 2 * p; db = 2 * p + 4; }
    } else {
        da = n_rot + 2 * (p - half);
        db = da + 4;
    }
}
__device__ __forceinline__ void at_quad_dims(const at_params &P, int p, int &da, int &db, bool &rot) {
    at_quad_dims(P.n_rot, P.mode, p, da, db, rot);
}
__device__ __forceinline__ float4 ldg4(const float *p) { return __ldg(reinterpret_cast<const float4 *>(p)); }
__device__ __forceinline__ void st4(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }
__device__ __forceinline__ void at_rot_quad(int mode, bool rot, float4 a, float4 b, float4 c, float4 s, float mul,
                                            float4 &oa, float4 &ob) {
    if (!rot) {
        oa = make_float4(a.x * mul, a.y * mul, a.z * mul, a.w * mul);
        ob = make_float4(b.x * mul, b.y * mul, b.z * mul, b.w * mul);
    } else if (mode == ROPE_MODE_NEOX) {  // a: first halves of pairs p..p+3, b: second halves
        oa = make_float4((a.x * c.x - b.x * s.x) * mul, (a.y * c.y - b.y * s.y) * mul, (a.z * c.z - b.z * s.z) * mul, (a.w * c.w - b.w * s.w) * mul);
        ob = make_float4((a.x * s.x + b.x * c.x) * mul, (a.y * s.y + b.y * c.y) * mul, (a.z * s.z + b.z * c.z) * mul, (a.w * s.w + b.w * c.w) * mul);
    } else {  // a: pairs p, p+1 interleaved; b: pairs p+2, p+3
        oa = make_float4((a.x * c.x - a.y * s.x) * mul, (a.x * s.x + a.y * c.x) * mul, (a.z * c.y - a.w * s.y) * mul, (a.z * s.y + a.w * c.y) * mul);
        ob = make_float4((b.x * c.z - b.y * s.z) * mul, (b.x * s.z + b.y * c.z) * mul, (b.z * c.w - b.w * s.w) * mul, (b.z * s.w + b.w * c.w) * mul);
    }
}

template <int RMAX, int KT, int DJ, bool VEC>
__global__ void __launch_bounds__(AT_THREADS) attention_kernel(at_params P) {
    extern __shared__ __align__(16) float smem[];
    const int hs = P.hs, hd = P.head_dim, n_pairs = hd / 2;
    float *sQ = smem;                 // [RMAX][hs]
    float *sK = sQ + RMAX * hs;       // [KT][hs]
    float *sV = sK + KT * hs;         // [KT][hs]
    float *sS = sV + KT * hs;         // [RMAX][KT] scores, then probabilities
    float *sM = sS + RMAX * KT;       // [RMAX] running max
    float *sL = sM + RMAX;            // [RMAX] running sum
    float *sA = sL + RMAX;            // [RMAX] rescale factor of this tile
    int *sLo = reinterpret_cast<int *>(sA + RMAX);  // [RMAX] window of the row's query
    int *sHi = sLo + RMAX;
    int *sInfo = sHi + RMAX;          // jlo, jhi

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int split = blockIdx.x;
    const int G = P.n_head / P.n_head_kv;
    const int kvh = blockIdx.y / P.n_hchunk, hc = blockIdx.y % P.n_hchunk;
    const int h_first = kvh * G + hc * P.heads_per_block;
    const int n_h = min(P.heads_per_block, G - hc * P.heads_per_block);
    const int i_first = blockIdx.z * P.queries_per_block;
    const int n_i = min(P.queries_per_block, P.n_q - i_first);
    const int HG = P.heads_per_block;
    const int n_fixed = P.meta[0];
    const int row_floats = P.n_head_kv * hd;

    // Row r = query (r / HG), head (r % HG).
    if (tid < RMAX) {
        const int a = tid / HG, g = tid % HG;
        const bool valid = a < n_i && g < n_h;
        sLo[tid] = valid ? P.win_lo[i_first + a] : 0;
        sHi[tid] = valid ? P.win_hi[i_first + a] : 0;
        sM[tid] = -INFINITY;
        sL[tid] = 0.0f;
    }
    __syncthreads();
    if (tid == 0) {
        int lo = 1 << 30, hi = 0;
        for (int a = 0; a < n_i; a++) { lo = min(lo, sLo[a * HG]); hi = max(hi, sHi[a * HG]); }
        sInfo[0] = lo; sInfo[1] = hi;
    }
    __syncthreads();
    const int jlo = sInfo[0], jhi = sInfo[1];
    const int n_ft = (n_fixed + KT - 1) / KT;
    const int n_wt = (jhi - jlo + KT - 1) / KT;
    const int n_tiles = n_ft + n_wt;
    const int t_begin = (int)((long long)n_tiles * split / P.n_split);
    const int t_end = (int)((long long)n_tiles * (split + 1) / P.n_split);

    // Loads the block's queries into sQ, scaled, rotated for fixed (window = false) or window tiles.
    const int n_quads = hd / 8;
    constexpr int VB = 4;  // quads per thread per round: all their loads are issued before any use
    auto load_q = [&](bool window) {
        if (VEC) {
            for (int i0 = 0; i0 < RMAX * n_quads; i0 += AT_THREADS * VB) {
                float4 a[VB], b[VB], c[VB], sn[VB];
                bool rot[VB], ok[VB];
                int da[VB], db[VB], rr[VB];
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const int idx = i0 + tid + AT_THREADS * u;
                    const int r = idx / n_quads, p = 4 * (idx % n_quads);
                    rr[u] = idx < RMAX * n_quads ? r : -1;
                    at_quad_dims(P, p, da[u], db[u], rot[u]);
                    const int ai = r / HG, g = r % HG;
                    ok[u] = rr[u] >= 0 && ai < n_i && g < n_h;
                    a[u] = b[u] = c[u] = sn[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    if (ok[u]) {
                        const float *src = P.q + ((size_t)(i_first + ai) * P.n_head + h_first + g) * hd;
                        a[u] = ldg4(src + da[u]);
                        b[u] = ldg4(src + db[u]);
                        if (rot[u]) {
                            const int pos = window ? n_fixed + sHi[r] - 1 : n_fixed + sHi[r] - sLo[r] - 1;
                            const size_t t = (size_t)pos * (P.n_rot / 2) + p;
                            c[u] = ldg4(P.rope_cos + t);
                            sn[u] = ldg4(P.rope_sin + t);
                        }
                    }
                }
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    if (rr[u] < 0) continue;
                    float4 oa, ob;
                    at_rot_quad(P.mode, rot[u], a[u], b[u], c[u], sn[u], P.scale, oa, ob);
                    st4(sQ + rr[u] * hs + da[u], oa);
                    st4(sQ + rr[u] * hs + db[u], ob);
                }
            }
        } else {
            for (int idx = tid; idx < RMAX * n_pairs; idx += AT_THREADS) {
            const int r = idx / n_pairs, p = idx % n_pairs;
            const int a = r / HG, g = r % HG;
            float *dst = sQ + r * hs;
            if (a < n_i && g < n_h) {
                const int i = i_first + a;
                const float *src = P.q + ((size_t)i * P.n_head + h_first + g) * hd;
                const int pos = window ? n_fixed + sHi[r] - 1 : n_fixed + sHi[r] - sLo[r] - 1;
                at_rope_pair(P, src, dst, p, pos, P.scale);
            } else {
                dst[2 * p] = 0.0f; dst[2 * p + 1] = 0.0f;
            }
            }
        }
        for (int idx = tid; idx < RMAX * (hs - hd); idx += AT_THREADS) sQ[(idx / (hs - hd)) * hs + hd + idx % (hs - hd)] = 0.0f;
    };

    float acc[RMAX / 4][DJ];
#pragma unroll
    for (int u = 0; u < RMAX / 4; u++)
#pragma unroll
        for (int j = 0; j < DJ; j++) acc[u][j] = 0.0f;

    int q_mode = -1;
    for (int vt = t_begin; vt < t_end; vt++) {
        const bool window = vt >= n_ft;
        const int base = window ? jlo + (vt - n_ft) * KT : vt * KT;  // first j (window) or t (fixed)
        const int limit = window ? jhi : n_fixed;
        if (q_mode != (int)window) {
            __syncthreads();
            load_q(window);
            q_mode = (int)window;
        }
        // K tile (rotated) and V tile
        if (VEC) {
            for (int i0 = 0; i0 < KT * n_quads; i0 += AT_THREADS * VB) {
                float4 a[VB], b[VB], c[VB], sn[VB], va[VB], vb[VB];
                bool rot[VB];
                int da[VB], db[VB], kr[VB];
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    const int idx = i0 + tid + AT_THREADS * u;
                    const int kk = idx / n_quads, p = 4 * (idx % n_quads);
                    kr[u] = idx < KT * n_quads ? kk : -1;
                    at_quad_dims(P, p, da[u], db[u], rot[u]);
                    const int e = base + kk;
                    a[u] = b[u] = c[u] = sn[u] = va[u] = vb[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    if (kr[u] >= 0 && e < limit) {
                        const int slot = window ? P.keys[n_fixed + e] : P.keys[e];
                        const size_t off = (size_t)slot * row_floats + (size_t)kvh * hd;
                        a[u] = ldg4(P.k_cache + off + da[u]);
                        b[u] = ldg4(P.k_cache + off + db[u]);
                        va[u] = ldg4(P.v_cache + off + da[u]);
                        vb[u] = ldg4(P.v_cache + off + db[u]);
                        if (rot[u]) {
                            const size_t t = (size_t)(window ? n_fixed + e : e) * (P.n_rot / 2) + p;
                            c[u] = ldg4(P.rope_cos + t);
                            sn[u] = ldg4(P.rope_sin + t);
                        }
                    }
                }
#pragma unroll
                for (int u = 0; u < VB; u++) {
                    if (kr[u] < 0) continue;
                    float4 oa, ob;
                    at_rot_quad(P.mode, rot[u], a[u], b[u], c[u], sn[u], 1.0f, oa, ob);
                    st4(sK + kr[u] * hs + da[u], oa);
                    st4(sK + kr[u] * hs + db[u], ob);
                    st4(sV + kr[u] * hs + da[u], va[u]);
                    st4(sV + kr[u] * hs + db[u], vb[u]);
                }
            }
        } else
        for (int idx = tid; idx < KT * n_pairs; idx += AT_THREADS) {
            const int kk = idx / n_pairs, p = idx % n_pairs;
            const int e = base + kk;
            float *dk = sK + kk * hs;
            float *dv = sV + kk * hs;
            if (e < limit) {
                const int slot = window ? P.keys[n_fixed + e] : P.keys[e];
                const int pos = window ? n_fixed + e : e;
                const size_t off = (size_t)slot * row_floats + (size_t)kvh * hd;
                at_rope_pair(P, P.k_cache + off, dk, p, pos, 1.0f);
                dv[2 * p] = P.v_cache[off + 2 * p];
                dv[2 * p + 1] = P.v_cache[off + 2 * p + 1];
            } else {
                dk[2 * p] = 0.0f; dk[2 * p + 1] = 0.0f;
                dv[2 * p] = 0.0f; dv[2 * p + 1] = 0.0f;
            }
        }
        for (int idx = tid; idx < KT * (hs - hd); idx += AT_THREADS) sK[(idx / (hs - hd)) * hs + hd + idx % (hs - hd)] = 0.0f;
        __syncthreads();

        // scores: thread -> key kk, rows r = rp, rp + NRP, ...
        {
            constexpr int NRP = AT_THREADS / KT, RPT = RMAX / NRP;
            const int kk = tid % KT, rp = tid / KT;
            float s[RPT];
#pragma unroll
            for (int u = 0; u < RPT; u++) s[u] = 0.0f;
            const float *kr = sK + kk * hs;
            for (int d = 0; d < hs - 4; d += 4) {
                const float4 kv = *reinterpret_cast<const float4 *>(kr + d);
#pragma unroll
                for (int u = 0; u < RPT; u++) {
                    const float4 qv = *reinterpret_cast<const float4 *>(sQ + (rp + NRP * u) * hs + d);
                    s[u] = fmaf(qv.x, kv.x, fmaf(qv.y, kv.y, fmaf(qv.z, kv.z, fmaf(qv.w, kv.w, s[u]))));
                }
            }
            const int e = base + kk;
#pragma unroll
            for (int u = 0; u < RPT; u++) {
                const int r = rp + NRP * u;
                bool vis = e < limit;
                if (window) vis = vis && e >= sLo[r] && e < sHi[r];
                sS[r * KT + kk] = vis ? s[u] : -INFINITY;
            }
        }
        __syncthreads();

        // online softmax per row: warp w takes rows w, w + 4, ...
        for (int r = warp; r < RMAX; r += AT_THREADS / 32) {
            float mx = -INFINITY;
            for (int kk = lane; kk < KT; kk += 32) mx = fmaxf(mx, sS[r * KT + kk]);
            mx = warp_max(mx);
            const float m_old = sM[r];
            const float m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
            for (int kk = lane; kk < KT; kk += 32) {
                const float v = sS[r * KT + kk];
                const float p = m_new == -INFINITY ? 0.0f : __expf(v - m_new);
                sS[r * KT + kk] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            __syncwarp();  // every lane has read sM[r] before lane 0 rewrites it (shuffles order no memory)
            if (lane == 0) {
                const float alpha = m_new == -INFINITY ? 1.0f : __expf(m_old - m_new);
                sA[r] = alpha;
                sL[r] = sL[r] * alpha + sum;
                sM[r] = m_new;
            }
        }
        __syncthreads();

        // o[r][d] = o * alpha + sum_k p[r][k] v[k][d]; lane -> dims lane + 32 j, warp -> rows
#pragma unroll
        for (int u = 0; u < RMAX / 4; u++) {
            const int r = warp + 4 * u;
            const float alpha = sA[r];
#pragma unroll
            for (int j = 0; j < DJ; j++) acc[u][j] *= alpha;
        }
        for (int kk = 0; kk < KT; kk += 4) {
            float v[4][DJ];
#pragma unroll
            for (int c = 0; c < 4; c++)
#pragma unroll
                for (int j = 0; j < DJ; j++) {
                    const int d = lane + 32 * j;
                    v[c][j] = d < hd ? sV[(kk + c) * hs + d] : 0.0f;
                }
#pragma unroll
            for (int u = 0; u < RMAX / 4; u++) {
                const float4 p = *reinterpret_cast<const float4 *>(sS + (warp + 4 * u) * KT + kk);
#pragma unroll
                for (int j = 0; j < DJ; j++)
                    acc[u][j] = fmaf(p.x, v[0][j], fmaf(p.y, v[1][j], fmaf(p.z, v[2][j], fmaf(p.w, v[3][j], acc[u][j]))));
            }
        }
        __syncthreads();
    }

    // output or split-K partial
#pragma unroll
    for (int u = 0; u < RMAX / 4; u++) {
        const int r = warp + 4 * u;
        const int a = r / HG, g = r % HG;
        if (a >= n_i || g >= n_h) continue;
        const int i = i_first + a, h = h_first + g;
        if (P.n_split == 1) {
            const float l = sL[r];
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            float *o = P.out + ((size_t)i * P.n_head + h) * hd;
#pragma unroll
            for (int j = 0; j < DJ; j++) {
                const int d = lane + 32 * j;
                if (d < hd) o[d] = acc[u][j] * inv;
            }
        } else {
            const size_t pi = ((size_t)i * P.n_head + h) * P.n_split + split;
            float *o = P.part_o + pi * hd;
#pragma unroll
            for (int j = 0; j < DJ; j++) {
                const int d = lane + 32 * j;
                if (d < hd) o[d] = acc[u][j];
            }
            if (lane == 0) { P.part_ml[2 * pi] = sM[r]; P.part_ml[2 * pi + 1] = sL[r]; }
        }
    }
}

// Merges the split-K partials of one (query, head) per block: the split weights exp(m_s - M) / sum
// first (one split per thread), then warp w sums splits w, w + 8, ... over the dims (lanes), and
// the 8 warp sums are added in shared memory.
constexpr int AT_MAX_SPLIT = 512;
constexpr int CB_THREADS = 256;
__global__ void __launch_bounds__(CB_THREADS) attention_combine_kernel(const float *part_o, const float *part_ml, int n_split, int hd, float *out) {
    __shared__ float w[AT_MAX_SPLIT];
    __shared__ __align__(16) float red[CB_THREADS / 32][256];
    __shared__ float stat[CB_THREADS / 32];
    const size_t qh = blockIdx.x;  // i * n_head + h
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const float *ml = part_ml + 2 * qh * n_split;
    // M = max_s m_s
    float mx = -INFINITY;
    for (int s = tid; s < n_split; s += CB_THREADS) mx = fmaxf(mx, ml[2 * s]);
    mx = warp_max(mx);
    if (lane == 0) stat[warp] = mx;
    __syncthreads();
    float M = -INFINITY;
    for (int i = 0; i < CB_THREADS / 32; i++) M = fmaxf(M, stat[i]);
    __syncthreads();
    // weights and their l-weighted sum
    float sum = 0.0f;
    for (int s = tid; s < n_split; s += CB_THREADS) {
        const float m = ml[2 * s];
        const float e = m == -INFINITY ? 0.0f : __expf(m - M);
        w[s] = e;
        sum += e * ml[2 * s + 1];
    }
    sum = warp_sum(sum);
    if (lane == 0) stat[warp] = sum;
    __syncthreads();
    float total = 0.0f;
    for (int i = 0; i < CB_THREADS / 32; i++) total += stat[i];
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    // sum_s w_s o_s[d]
    const float *po = part_o + qh * n_split * (size_t)hd;
    if (hd % 4 == 0) {
        // lane -> 4 consecutive dims (two groups for hd > 128); 4 splits per warp in flight at once,
        // so a warp waits ~n_split / 32 times for the cache instead of n_split / 8
        float4 a4[2] = {make_float4(0.0f, 0.0f, 0.0f, 0.0f), make_float4(0.0f, 0.0f, 0.0f, 0.0f)};
        constexpr int NW = CB_THREADS / 32, U = 4;
        for (int s0 = warp; s0 < n_split; s0 += NW * U) {
            float4 x[U][2];
            float wv[U];
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int s = s0 + NW * u;
                wv[u] = s < n_split ? w[s] : 0.0f;
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const int d = 4 * lane + 128 * j;
                    x[u][j] = s < n_split && d < hd ? *reinterpret_cast<const float4 *>(po + (size_t)s * hd + d) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                }
            }
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    a4[j].x = fmaf(wv[u], x[u][j].x, a4[j].x);
                    a4[j].y = fmaf(wv[u], x[u][j].y, a4[j].y);
                    a4[j].z = fmaf(wv[u], x[u][j].z, a4[j].z);
                    a4[j].w = fmaf(wv[u], x[u][j].w, a4[j].w);
                }
        }
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int d = 4 * lane + 128 * j;
            if (d < hd) *reinterpret_cast<float4 *>(&red[warp][d]) = a4[j];
        }
        __syncthreads();
        for (int d = tid; d < hd; d += CB_THREADS) {
            float o = 0.0f;
            for (int i = 0; i < CB_THREADS / 32; i++) o += red[i][d];
            out[qh * hd + d] = o * inv;
        }
        return;
    }
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; j++) acc[j] = 0.0f;
    for (int s = warp; s < n_split; s += CB_THREADS / 32) {
        const float ws = w[s];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int d = lane + 32 * j;
            if (d < hd) acc[j] = fmaf(ws, po[(size_t)s * hd + d], acc[j]);
        }
    }
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int d = lane + 32 * j;
        if (d < hd) red[warp][d] = acc[j];
    }
    __syncthreads();
    for (int d = tid; d < hd; d += CB_THREADS) {
        float o = 0.0f;
        for (int i = 0; i < CB_THREADS / 32; i++) o += red[i][d];
        out[qh * hd + d] = o * inv;
    }
}

// ---- decode: one launch --------------------------------------------------------------------
//
// Few rows (n_q * heads-per-KV-head <= 16). A block takes the rows (query x head) of one KV
// head and `chunks` chunks of KB consecutive key-list entries, at fixed places in the list (so
// the entries a block reads do not depend on n_keys, and its first loads need nothing loaded
// before them). The chain of dependent global round trips per block is:
//   wave 1: meta, windows, the block's key slots, the raw query rows (cp.async)
//   wave 2: K and V rows of the visible keys, the RoPE rows of the chunk (cp.async, all at once)
//   compute in shared memory, then the merge below.
// A block that walks several chunks issues the next chunk's wave 2 (into a second K, V buffer) as
// soon as the current chunk's queries are rotated, so its loads fly while the current one computes.
// Compute per chunk (instructions and registers are what bound it: at one 256-thread block per
// multiprocessor it was latency bound, so the 32-key variant is built for two blocks, <= 128
// registers): queries rotated into shared memory; scores with the 8 lanes of a key splitting its
// dims (vector path: each lane reads whole 16-byte pieces of K, its table rows and the 8 rows'
// queries with no index math: K's dims are permuted on the way in, dc_kpos; the rope mode is a
// template argument), then a transposing shuffle reduction (7 shuffles for 8 rows); softmax per
// row (warp r: row r); P.V of the chunk in registers, summed over the warps into row r's running
// output held by warp r.
// RoPE: a key at list entry t = t0 + k (t0: the chunk's first entry) scores against a query at
// position P as q^T R((t - P) theta) k = (R((P - t0) theta) q)^T (R(k theta) k): keys are rotated
// by table rows 0..KB-1 (the same rows for every block: they stay in L2), the query by row P - t0
// (P: the window or the fixed-key position of attn_args' RoPE trick, both < n_keys).
// Split-K merge in the same launch: each block writes a record (o, m, l) per row; blocks are
// grouped by dc_fan_of(n_split) consecutive splits, and the last block of a group to arrive (one atomic
// counter per group, __threadfence before it) merges the group's records into a record one level
// up, until one record is left, which becomes the output. The merging block sets its counter back
// to zero, so counters are zero again after every launch (next layer, next graph replay).
constexpr int DC_THREADS = 256;
constexpr int DC_WARPS = DC_THREADS / 32;
constexpr int DC_RMAX = 8;          // rows per block; == DC_WARPS: warp r owns row r (softmax, sums, merge)
constexpr int DC_SP = DC_RMAX + 4;  // floats per key in sS (the RMAX rows' scores, 16-byte aligned)
constexpr int DC_FAN = 8;           // records whose loads a merging warp keeps in flight at once (8 dims a lane)
constexpr int DC_QS = DC_RMAX * 8 + 4;  // vector path: floats per quad in sQ (8 rows x 8 dims; +4: the 8 lanes
                                        // of a quarter warp read 8 quads from 8 different bank groups)
constexpr int DC_MAX_CHUNKS = 16;   // chunks per block (their key slots are staged in shared memory)
static_assert(DC_RMAX == DC_WARPS, "warp r owns row r");

struct dc_params {
    const float *q, *k_cache, *v_cache;
    float *out;
    const int32_t *keys, *win_lo, *win_hi, *meta;
    const float *rope_cos, *rope_sin;
    float *rec;          // merge records: [group][record][DC_RMAX][rs]: o[hd], m, l
    uint32_t *counters;  // [group][cnt_per_group]
    int n_q, n_head, n_head_kv, head_dim, n_rot, mode;
    int hs, ts, rs;      // floats per shared head row, per shared table row, per record row
    int heads_per_block, queries_per_block, n_hchunk, n_split, chunks, keys_bucket;
    int rec_per_group, cnt_per_group;
    float scale;
};

// Records merged per merge step: the smallest power of two >= 8 that needs at most two levels
// (each level costs a fence, an atomic and a load round trip).
__host__ __device__ inline int dc_fan_of(int n_split) {
    int fan = 8;
    while ((int64_t)fan * fan < n_split) fan *= 2;
    return fan;
}
// Floats per shared head row (K, V, queries) and per shared table row, for the largest head_dim of
// a variant (32 DJ): compile-time strides and offsets, so shared addresses need no registers and no
// index math. Table rows hold head_dim / 2 entries (>= n_rot / 2): the vector path pads entries
// n_rot / 2.. with cos 1, sin 0, so the unrotated dims go through the same code as the rotated ones.
// Head rows: a multiple of 4 floats whose quarter is odd, so 16-byte loads of 8 different keys hit 8
// different bank groups.
__host__ __device__ constexpr int dc_hs_of(int dj) { return 32 * dj + 4; }
__host__ __device__ constexpr int dc_ts_of(int dj) { return 16 * dj + 4; }

// Shared-memory layout in floats (host and device agree through this one function).
struct dc_layout {
    int k, v, tc, tsn, qraw, q, qv, qt, s, ints;
    size_t bytes;
};
__host__ __device__ constexpr dc_layout dc_layout_of(int kb, int dj, int chunks) {
    const int hs = dc_hs_of(dj), ts = dc_ts_of(dj);
    dc_layout L{};
    L.k = 0;                            // [KB][hs] keys as stored (not rotated; vector path: dims permuted, see dc_kpos)
    L.v = L.k + kb * hs;                // [KB][hs] values
    L.tc = L.v + kb * hs;               // [KB][ts] cos rows 0..KB-1
    L.tsn = L.tc + kb * ts;             // [KB][ts] sin rows 0..KB-1
    L.qraw = L.tsn + kb * ts;           // [RMAX][hs] queries as given
    // [2][...] rotated for the chunk, scaled: 0 fixed keys, 1 window keys; each [RMAX][hs], or in the
    // vector path [head_dim / 8 quads][DC_QS]: quad u of the 8 rows side by side
    L.qv = DC_RMAX * hs > 4 * dj * DC_QS ? DC_RMAX * hs : 4 * dj * DC_QS;
    L.q = L.qraw + DC_RMAX * hs;
    L.qt = L.q + 2 * L.qv;              // [RMAX queries][2 versions][cos, sin][ts] the queries' table rows
    L.s = L.qt + DC_RMAX * 4 * ts;      // [KB][DC_SP] scores, then probabilities
    L.ints = L.s + kb * DC_SP;          // int lo[RMAX], hi[RMAX], flag[4], slot[chunks * KB]
    // then, when a block walks several chunks, a second [KB][hs] K, V pair at dc_kv1_of (16-byte aligned)
    const size_t end = (size_t)L.ints + 2 * DC_RMAX + 4 + (size_t)chunks * kb;
    L.bytes = sizeof(float) * (chunks > 1 ? (end + 3) / 4 * 4 + 2 * (size_t)kb * hs : end);
    return L;
}
__host__ __device__ constexpr int dc_kv1_of(const dc_layout &L, int kb, int chunks) {
    return (L.ints + 2 * DC_RMAX + 4 + chunks * kb + 3) / 4 * 4;
}

// Asynchronous global -> shared copy of W floats (W = 4: 16 bytes, both addresses 16-byte aligned;
// W = 1: 4 bytes). valid = false writes zeros and reads nothing.
template <int W>
__device__ __forceinline__ void dc_cp_async(float *dst, const float *src, bool valid) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    const unsigned long long g = (unsigned long long)__cvta_generic_to_global(src);
    const int n = valid ? 4 * W : 0;
    if (W == 4) asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(g), "r"(n) : "memory");
    else asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(g), "r"(n) : "memory");
}
__device__ __forceinline__ void dc_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void dc_cp_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ float4 ld4s(const float *p) { return *reinterpret_cast<const float4 *>(p); }

// Pair p of a head vector: its two dims, and whether it is rotated (p < n_rot / 2).
__device__ __forceinline__ bool dc_pair_dims(int n_rot, int mode, int p, int &d0, int &d1) {
    const int half = n_rot / 2;
    if (p < half) {
        if (mode == ROPE_MODE_NEOX) { d0 = p; d1 = p + half; }
        else { d0 = 2 * p; d1 = 2 * p + 1; }
        return true;
    }
    d0 = n_rot + 2 * (p - half);
    d1 = d0 + 1;
    return false;
}

// The dims a lane holds in the P.V sums and the merge: j-th of DJ. VEC: float4 groups 4 lane +
// 128 (j / 4); else lane + 32 j. Either way every dim < 32 DJ has exactly one (lane, j).
template <int DJ, bool VEC>
__device__ __forceinline__ int dc_dim(int lane, int j) {
    return VEC ? 4 * lane + 128 * (j / 4) + (j % 4) : lane + 32 * j;
}

// Loads DJ dims of a lane from p (row of hd floats; cg: from L2, the rows were written by other
// blocks of this launch); dims past hd read as 0.
template <int DJ, bool VEC, bool CG>
__device__ __forceinline__ void dc_load_dims(const float *p, int hd, int lane, float (&x)[DJ]) {
    if (VEC) {
#pragma unroll
        for (int j = 0; j < DJ; j += 4) {
            const int d = dc_dim<DJ, VEC>(lane, j);
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (d < hd) v = CG ? __ldcg(reinterpret_cast<const float4 *>(p + d)) : ld4s(p + d);
            x[j] = v.x; x[j + 1] = v.y; x[j + 2] = v.z; x[j + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int j = 0; j < DJ; j++) {
            const int d = dc_dim<DJ, VEC>(lane, j);
            x[j] = d < hd ? (CG ? __ldcg(p + d) : p[d]) : 0.0f;
        }
    }
}
template <int DJ, bool VEC, bool CG>
__device__ __forceinline__ void dc_store_dims(float *p, int hd, int lane, const float (&x)[DJ], float mul) {
    if (VEC) {
#pragma unroll
        for (int j = 0; j < DJ; j += 4) {
            const int d = dc_dim<DJ, VEC>(lane, j);
            if (d >= hd) continue;
            const float4 v = make_float4(x[j] * mul, x[j + 1] * mul, x[j + 2] * mul, x[j + 3] * mul);
            if (CG) __stcg(reinterpret_cast<float4 *>(p + d), v);
            else *reinterpret_cast<float4 *>(p + d) = v;
        }
    } else {
#pragma unroll
        for (int j = 0; j < DJ; j++) {
            const int d = dc_dim<DJ, VEC>(lane, j);
            if (d >= hd) continue;
            if (CG) __stcg(p + d, x[j] * mul);
            else p[d] = x[j] * mul;
        }
    }
}

// Merges `count` records (rec0, rec0 + stride, ...) of one row into (o, m, l): B records' loads in
// flight at once, online rescaling between batches. A record with m = -inf (no visible key) adds
// nothing, whatever its o holds. B = 16 on sm_90 when a lane holds one float4 (one round trip for a
// whole group of 16); else 8 (sm_80..89 would spill registers at 16 under two blocks per SM).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
constexpr int DC_MERGE_WIDE = 16;
#else
constexpr int DC_MERGE_WIDE = DC_FAN;
#endif
template <int DJ, bool VEC>
__device__ __forceinline__ void dc_merge(const float *rec0, size_t stride, int count, int hd, int lane, float (&o)[DJ],
                                         float &m, float &l) {
    constexpr int B = VEC && DJ <= 4 ? DC_MERGE_WIDE : DC_FAN;
    m = -INFINITY;
    l = 0.0f;
#pragma unroll
    for (int j = 0; j < DJ; j++) o[j] = 0.0f;
    for (int b = 0; b < count; b += B) {
        float ms[B], ls[B], x[B][DJ];
#pragma unroll
        for (int s = 0; s < B; s++) {
            const bool ok = b + s < count;
            const float *rc = rec0 + (size_t)(ok ? b + s : 0) * stride;
            ms[s] = ok ? __ldcg(rc + hd) : -INFINITY;
            ls[s] = ok ? __ldcg(rc + hd + 1) : 0.0f;
            if (ok) dc_load_dims<DJ, VEC, true>(rc, hd, lane, x[s]);
            else {
#pragma unroll
                for (int j = 0; j < DJ; j++) x[s][j] = 0.0f;
            }
        }
        float mb = m;
#pragma unroll
        for (int s = 0; s < B; s++) mb = fmaxf(mb, ms[s]);
        const float a0 = m == -INFINITY ? 0.0f : __expf(m - mb);
        l *= a0;
#pragma unroll
        for (int j = 0; j < DJ; j++) o[j] *= a0;
#pragma unroll
        for (int s = 0; s < B; s++) {
            const float w = ms[s] == -INFINITY ? 0.0f : __expf(ms[s] - mb);
            l = fmaf(w, ls[s], l);
#pragma unroll
            for (int j = 0; j < DJ; j++) o[j] = w == 0.0f ? o[j] : fmaf(w, x[s][j], o[j]);
        }
        m = mb;
    }
}

// Rows of a block: row r = query i_first + r / HG, head h_first + r % HG. The divisions are done
// once here (valid and query read bit fields), not in the loops.
struct dc_rows {
    int kvh, HG, h_first, n_h, i_first, n_i, gid;
    unsigned vmask, qof;  // bit r: row r is a real (query, head); bits 4r..4r+3: r / HG
    __device__ dc_rows(const dc_params &P) {
        const int G = P.n_head / P.n_head_kv;
        kvh = P.n_hchunk == 1 ? (int)blockIdx.y : (int)blockIdx.y / P.n_hchunk;
        const int hc = blockIdx.y - kvh * P.n_hchunk;
        HG = P.heads_per_block;
        h_first = kvh * G + hc * HG;
        n_h = min(HG, G - hc * HG);
        i_first = blockIdx.z * P.queries_per_block;
        n_i = min(P.queries_per_block, P.n_q - i_first);
        gid = blockIdx.z * gridDim.y + blockIdx.y;
        // query a owns rows a HG .. a HG + HG - 1 (n_h of them real); a HG < DC_RMAX = 8, a < 8
        const unsigned ones = HG >= 8 ? 0x11111111u : 0x11111111u & ((1u << (4 * HG)) - 1u);  // one 1 per row of a query
        vmask = 0;
        qof = 0;
        for (int a = 0; a * HG < DC_RMAX; a++) {
            if (a < n_i) vmask |= ((1u << n_h) - 1u) << (a * HG);
            qof |= (unsigned)a * (ones << (4 * a * HG));
        }
        vmask &= (1u << DC_RMAX) - 1u;
    }
    __device__ bool valid(int r) const { return (vmask >> r) & 1u; }
    __device__ int query(int r) const { return (qof >> (4 * r)) & 15u; }
    __device__ size_t out_off(const dc_params &P, int r) const {
        const int a = query(r);
        return ((size_t)(i_first + a) * P.n_head + h_first + r - a * HG) * P.head_dim;
    }
};

// Vector path: where the 4 dims of K from d (a multiple of 4) go in its shared row. Quad u (pairs
// 4u..4u+3, the dims of at_quad_dims) keeps its first float4 at 4u and its second at hd / 2 + 4u,
// so the lanes of one key read consecutive 16-byte pieces (no bank conflict, no index math).
__device__ __forceinline__ int dc_kpos(int d, int hd, int n_rot, bool neox) {
    const int half = n_rot / 2;
    if (neox && d < n_rot) return d < half ? d : hd / 2 + d - half;
    const int base = neox ? n_rot : 0;  // from here on pairs are interleaved: 8 dims per quad
    const int u = (neox ? half / 4 : 0) + (d - base) / 8;
    return ((d - base) % 8 == 0 ? 0 : hd / 2) + 4 * u;
}

__host__ __device__ constexpr int dc_log2(int x) { return x <= 1 ? 0 : 1 + dc_log2(x / 2); }

// NEOX: the vector path's RoPE mode (a template argument, so the score loop has no branch on it);
// the scalar path reads P.mode.
template <int KB, int DJ, bool VEC, bool NEOX>
__global__ void __launch_bounds__(DC_THREADS, KB == 32 && DJ == 4 ? 2 : 1) attention_decode_kernel(dc_params P) {
    extern __shared__ __align__(16) float smem[];
    constexpr int W = VEC ? 4 : 1;       // floats per asynchronous copy
    constexpr int TPK = DC_THREADS / KB;  // threads per key (copies, scores)
    constexpr int KPW = 32 / TPK;         // keys per warp in the scores
    static_assert(TPK * KB == DC_THREADS && KPW * TPK == 32 && KB % 32 == 0 && KB % DC_WARPS == 0, "decode tile shape");
    static_assert(TPK <= DC_RMAX && (1 << dc_log2(TPK)) == TPK, "score reduction: TPK lanes share a key's rows");
    constexpr int hs = dc_hs_of(DJ), ts = dc_ts_of(DJ);
    constexpr dc_layout L = dc_layout_of(KB, DJ, 0);  // (chunks only moves L.bytes)
    float *sK = smem + L.k, *sTc = smem + L.tc, *sTs = smem + L.tsn;  // (V: L.v = L.k + KB hs)
    float *sQraw = smem + L.qraw, *sQ = smem + L.q, *sQT = smem + L.qt, *sS = smem + L.s;
    int *sLo = reinterpret_cast<int *>(smem + L.ints), *sHi = sLo + DC_RMAX, *sFlag = sHi + DC_RMAX, *sSlot = sFlag + 4;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int hd = P.head_dim, n_rot = P.n_rot, half = P.n_rot / 2, mode = P.mode;
    const dc_rows R(P);
    const int row_floats = P.n_head_kv * hd;
    const size_t kv_off = (size_t)R.kvh * hd;
    const int t_block = blockIdx.x * P.chunks * KB;  // the block's first key-list entry

    // ---- wave 1: nothing here depends on another load
    const int n_fixed = __ldg(P.meta), n_keys = __ldg(P.meta + 1);
    if (tid < R.n_i) {
        sLo[tid] = __ldg(P.win_lo + R.i_first + tid);
        sHi[tid] = __ldg(P.win_hi + R.i_first + tid);
    }
    // slots of every entry the block may read (the staged list has keys_bucket entries; past n_keys unused)
    for (int e = tid; e < P.chunks * KB; e += DC_THREADS) {
        const int t = t_block + e;
        sSlot[e] = t < P.keys_bucket ? __ldg(P.keys + t) : 0;
    }
    {
        for (int r = warp; r < DC_RMAX; r += DC_WARPS) {
            const bool ok = R.valid(r);
            const float *src = ok ? P.q + R.out_off(P, r) : P.q;
            for (int d = lane * W; d < hd; d += 32 * W) dc_cp_async<W>(sQraw + r * hs + d, src + d, ok);
        }
        dc_cp_commit();
    }
    if (VEC) {  // table entries n_rot / 2 .. hd / 2 - 1: cos 1, sin 0 (the dims RoPE leaves alone)
        const int pad = hd / 2 - half;
        for (int idx = tid; idx < KB * pad; idx += DC_THREADS) {
            const int kk = idx / pad, p = half + idx % pad;
            sTc[kk * ts + p] = 1.0f;
            sTs[kk * ts + p] = 0.0f;
        }
    }
    __syncthreads();

    int jlo = 1 << 30, jhi = 0;  // window entries any row of the block sees (superset of each row's)
    for (int a = 0; a < R.n_i; a++) { jlo = min(jlo, sLo[a]); jhi = max(jhi, sHi[a]); }
    const int wlo = n_fixed + jlo, whi = n_fixed + jhi;  // as key-list entries

    // row `warp`'s running max, sum and P.V sums (lane's dims; every lane holds m and l). The P.V
    // sums of a chunk live in registers only from the P.V loop to the end of the chunk: not across
    // the score loop, which needs the registers.
    float m_run = -INFINITY, l_run = 0.0f, o_run[DJ];
#pragma unroll
    for (int j = 0; j < DJ; j++) o_run[j] = 0.0f;
    // a chunk is seen when some row sees one of its keys (block-uniform)
    auto seen = [&](int c) {
        const int t0 = t_block + c * KB;
        return t0 < n_fixed || max(t0, wlo) < min(t0 + KB, whi);
    };
    // ---- wave 2 of chunk c into the K, V pair at kbuf: K, V of the keys any row sees (zeros for
    // the others), the queries' table rows, and the first time the keys' table rows
    auto issue = [&](int c, float *kbuf, bool tables) {
        const int t0 = t_block + c * KB;
        const int kk = tid / TPK, sub = tid % TPK;
        const int t = t0 + kk;
        const bool vis = t < n_fixed || (t >= wlo && t < whi);
        const size_t off = vis ? (size_t)sSlot[c * KB + kk] * row_floats + kv_off : 0;
        float *vbuf = kbuf + KB * hs;
        for (int d = sub * W; d < hd; d += TPK * W) {
            dc_cp_async<W>(kbuf + kk * hs + (VEC ? dc_kpos(d, hd, n_rot, NEOX) : d), P.k_cache + off + d, vis);
            dc_cp_async<W>(vbuf + kk * hs + d, P.v_cache + off + d, vis);
        }
        if (tables) {  // key rows 0..KB-1: the same for every chunk; rows past n_keys may not exist
            const bool tv = kk < n_keys;
            for (int p = sub * W; p < half; p += TPK * W) {
                dc_cp_async<W>(sTc + kk * ts + p, P.rope_cos + (tv ? (size_t)kk * half + p : 0), tv);
                dc_cp_async<W>(sTs + kk * ts + p, P.rope_sin + (tv ? (size_t)kk * half + p : 0), tv);
            }
        }
        // the queries' rows: position - t0, for the fixed keys and for the window keys
        for (int av = warp; av < 2 * R.n_i; av += DC_WARPS)
        for (int p = lane * W; p < half; p += 32 * W) {
            const int a = av >> 1, v = av & 1;
            const int pos = v == 0 ? n_fixed + sHi[a] - sLo[a] - 1 : n_fixed + sHi[a] - 1;
            const int row = min(max(pos - t0, 0), n_keys - 1);  // out of range only when no key of the chunk is seen
            float *dst = sQT + (a * 2 + v) * 2 * ts + p;
            dc_cp_async<W>(dst, P.rope_cos + (size_t)row * half + p, true);
            dc_cp_async<W>(dst + ts, P.rope_sin + (size_t)row * half + p, true);
        }
        dc_cp_commit();
    };
    // K, V pairs: one, or two when the block walks several chunks: the next chunk's loads are
    // issued once this chunk's queries are rotated (sQT is free again) and fly while it computes
    float *const sK1 = smem + dc_kv1_of(L, KB, P.chunks);
    int c = 0;
    while (c < P.chunks && !seen(c)) c++;
    if (c < P.chunks) issue(c, sK, true);
    bool buf1 = false;  // chunk c sits in the second pair
    while (c < P.chunks) {
        int next = c + 1;
        while (next < P.chunks && !seen(next)) next++;
        const int t0 = t_block + c * KB;
        const bool any_fixed = t0 < n_fixed;
        const bool any_win = max(t0, wlo) < min(t0 + KB, whi);
        float *const cK = buf1 ? sK1 : sK, *const cV = cK + KB * hs;
        dc_cp_wait_all();  // (only chunk c's copies are in flight)
        __syncthreads();

        // ---- queries rotated by (position - t0), scaled; version 0 for fixed keys, 1 for window keys
        {
            const int n_units = VEC ? hd / 8 : hd / 2;  // quads of pairs, or pairs
            const int r = tid % DC_RMAX;  // the rows of one quad side by side (vector path: as in sQ)
            for (int v = 0; v < 2; v++)
            for (int u = tid / DC_RMAX; u < n_units; u += DC_THREADS / DC_RMAX) {
                if (v == 0 ? !any_fixed : !any_win) continue;
                const bool ok = R.valid(r);
                const float *qr = sQraw + r * hs;
                const float *tc = sQT + ((ok ? R.query(r) : 0) * 2 + v) * 2 * ts, *tsn = tc + ts;
                if (VEC) {
                    int da, db;
                    bool rot;
                    at_quad_dims(n_rot, mode, 4 * u, da, db, rot);
                    float4 oa = make_float4(0.0f, 0.0f, 0.0f, 0.0f), ob = oa;
                    if (ok) {
                        const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                        at_rot_quad(mode, rot, ld4s(qr + da), ld4s(qr + db), rot ? ld4s(tc + 4 * u) : zero,
                                    rot ? ld4s(tsn + 4 * u) : zero, P.scale, oa, ob);
                    }
                    float *qd = sQ + v * L.qv + u * DC_QS + 8 * r;
                    st4(qd, oa);
                    st4(qd + 4, ob);
                } else {
                    float *qd = sQ + v * L.qv + r * hs;
                    int d0, d1;
                    const bool rot = dc_pair_dims(n_rot, mode, u, d0, d1);
                    float x0 = 0.0f, x1 = 0.0f;
                    if (ok) {
                        x0 = qr[d0];
                        x1 = qr[d1];
                        if (rot) {
                            const float cs = tc[u], sn = tsn[u];
                            const float y0 = x0 * cs - x1 * sn, y1 = x0 * sn + x1 * cs;
                            x0 = y0;
                            x1 = y1;
                        }
                    }
                    qd[d0] = x0 * P.scale;
                    qd[d1] = x1 * P.scale;
                }
            }
        }
        __syncthreads();
        if (next < P.chunks) issue(next, buf1 ? sK : sK1, false);

        // ---- scores: the TPK lanes of a key split its dims (RoPE of K on the fly), every row; then
        // a transposing reduction over those lanes leaves each lane DC_RMAX / TPK rows' full sums
        {
            const int part = lane % TPK, kk = warp * KPW + lane / TPK;
            const int t = t0 + kk;
            const bool fixed = t < n_fixed;
            const float *kr = cK + kk * hs, *cr = sTc + kk * ts, *sr = sTs + kk * ts;
            float s[DC_RMAX];
#pragma unroll
            for (int r = 0; r < DC_RMAX; r++) s[r] = 0.0f;
            if (VEC) {
                // quad u: K at 4u and hd / 2 + 4u (dc_kpos), its table entries at 4u (identity past
                // n_rot / 2), the 8 rows' query dims at u * DC_QS, side by side
                constexpr int NQT = 4 * DJ / TPK;  // quads per lane for head_dim 32 DJ
                const int n_quads = hd / 8, h2 = hd / 2;
                const float *qb = sQ + (fixed ? 0 : L.qv);
#pragma unroll
                for (int i = 0; i < NQT; i++) {
                    const int u = part + TPK * i;
                    if (u < n_quads) {
                        const float4 a = ld4s(kr + 4 * u), b = ld4s(kr + h2 + 4 * u);
                        const float4 c = ld4s(cr + 4 * u), sn = ld4s(sr + 4 * u);
                        float4 ka, kb;
                        if (NEOX) {  // a: first halves of pairs 4u..4u+3, b: second halves
                            ka = make_float4(a.x * c.x - b.x * sn.x, a.y * c.y - b.y * sn.y, a.z * c.z - b.z * sn.z, a.w * c.w - b.w * sn.w);
                            kb = make_float4(a.x * sn.x + b.x * c.x, a.y * sn.y + b.y * c.y, a.z * sn.z + b.z * c.z, a.w * sn.w + b.w * c.w);
                        } else {  // a: pairs 4u, 4u+1 interleaved; b: pairs 4u+2, 4u+3
                            ka = make_float4(a.x * c.x - a.y * sn.x, a.x * sn.x + a.y * c.x, a.z * c.y - a.w * sn.y, a.z * sn.y + a.w * c.y);
                            kb = make_float4(b.x * c.z - b.y * sn.z, b.x * sn.z + b.y * c.z, b.z * c.w - b.w * sn.w, b.z * sn.w + b.w * c.w);
                        }
                        const float *qu = qb + u * DC_QS;
#pragma unroll
                        for (int r = 0; r < DC_RMAX; r++) {
                            const float4 qa = ld4s(qu + 8 * r), qc = ld4s(qu + 8 * r + 4);
                            float x = s[r];
                            x = fmaf(qa.x, ka.x, fmaf(qa.y, ka.y, fmaf(qa.z, ka.z, fmaf(qa.w, ka.w, x))));
                            x = fmaf(qc.x, kb.x, fmaf(qc.y, kb.y, fmaf(qc.z, kb.z, fmaf(qc.w, kb.w, x))));
                            s[r] = x;
                        }
                    }
                }
            } else {
                const float *qv = sQ + (fixed ? 0 : L.qv);
                for (int p = part; p < hd / 2; p += TPK) {
                    int d0, d1;
                    const bool rot = dc_pair_dims(n_rot, mode, p, d0, d1);
                    float k0 = kr[d0], k1 = kr[d1];
                    if (rot) {
                        const float cs = cr[p], sn = sr[p];
                        const float y0 = k0 * cs - k1 * sn, y1 = k0 * sn + k1 * cs;
                        k0 = y0;
                        k1 = y1;
                    }
#pragma unroll
                    for (int r = 0; r < DC_RMAX; r++) s[r] = fmaf(qv[r * hs + d0], k0, fmaf(qv[r * hs + d1], k1, s[r]));
                }
            }
            // level o: the lanes with bit o set keep the upper half of their n values and send the
            // lower half to the partner (lane ^ o), which does the opposite; n halves each level
            int row0 = 0;
#pragma unroll
            for (int lv = 0; lv < dc_log2(TPK); lv++) {
                const int o = TPK >> (lv + 1), n = DC_RMAX >> lv;
                const bool up = (lane & o) != 0;
#pragma unroll
                for (int i = 0; i < n / 2; i++) {
                    const float send = up ? s[i] : s[i + n / 2], keep = up ? s[i + n / 2] : s[i];
                    s[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
                }
                if (up) row0 += n / 2;
            }
#pragma unroll
            for (int i = 0; i < DC_RMAX / TPK; i++) {
                const int r = row0 + i, a = R.query(r);
                bool vis = R.valid(r);
                if (vis && !fixed) vis = t >= n_fixed + sLo[a] && t < n_fixed + sHi[a];
                sS[kk * DC_SP + r] = vis ? s[i] : -INFINITY;
            }
        }
        __syncthreads();

        // ---- online softmax: warp r takes row r
        {
            const int r = warp;
            float mx = -INFINITY;
#pragma unroll
            for (int kk = lane; kk < KB; kk += 32) mx = fmaxf(mx, sS[kk * DC_SP + r]);
            mx = warp_max(mx);
            const float m_new = fmaxf(m_run, mx);
            float sum = 0.0f;
#pragma unroll
            for (int kk = lane; kk < KB; kk += 32) {
                const float p = m_new == -INFINITY ? 0.0f : __expf(sS[kk * DC_SP + r] - m_new);
                sS[kk * DC_SP + r] = p;
                sum += p;
            }
            sum = warp_sum(sum);
            const float alpha = m_new == -INFINITY ? 1.0f : __expf(m_run - m_new);
            l_run = l_run * alpha + sum;
            m_run = m_new;
#pragma unroll
            for (int j = 0; j < DJ; j++) o_run[j] *= alpha;
        }
        __syncthreads();

        // ---- P.V of the chunk: warp w takes keys w, w + 8, ...; lane its dims; every row
        float acc[DC_RMAX][DJ];
#pragma unroll
        for (int r = 0; r < DC_RMAX; r++)
#pragma unroll
            for (int j = 0; j < DJ; j++) acc[r][j] = 0.0f;
#pragma unroll 2
        for (int u = 0; u < KB / DC_WARPS; u++) {
            const int kk = warp + DC_WARPS * u;
            const float4 p0 = ld4s(sS + kk * DC_SP), p1 = ld4s(sS + kk * DC_SP + 4);
            const float pr[DC_RMAX] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
            float v[DJ];
            dc_load_dims<DJ, VEC, false>(cV + kk * hs, hd, lane, v);
#pragma unroll
            for (int r = 0; r < DC_RMAX; r++)
#pragma unroll
                for (int j = 0; j < DJ; j++) acc[r][j] = fmaf(pr[r], v[j], acc[r][j]);
        }
        __syncthreads();

        // ---- the chunk's sums over the warps, into row `warp`'s o_run (red aliases the chunk's K, V:
        // 2 KB hs >= DC_WARPS * DC_RMAX * hd)
        {
            float *red = cK;
#pragma unroll
            for (int r = 0; r < DC_RMAX; r++) dc_store_dims<DJ, VEC, false>(red + (warp * DC_RMAX + r) * hd, hd, lane, acc[r], 1.0f);
            __syncthreads();
#pragma unroll
            for (int w = 0; w < DC_WARPS; w++) {
                float x[DJ];
                dc_load_dims<DJ, VEC, false>(red + (w * DC_RMAX + warp) * hd, hd, lane, x);
#pragma unroll
                for (int j = 0; j < DJ; j++) o_run[j] += x[j];
            }
        }
        __syncthreads();  // red is read: the chunk after next may land in this pair
        c = next;
        buf1 = !buf1;
    }
    dc_cp_wait_all();  // (the query rows are still in flight when every chunk was skipped)
    const int r = warp;
    float o[DJ];
#pragma unroll
    for (int j = 0; j < DJ; j++) o[j] = o_run[j];
    float m = m_run, l = l_run;
    const bool row_ok = R.valid(r);

    // ---- merge: level by level, the last block of each group of `fan` merges it
    const int fan = dc_fan_of(P.n_split);
    int n_level = P.n_split, idx = blockIdx.x, rec_off = 0, cnt_off = 0;
    while (n_level > 1) {
        const size_t group_rec = (size_t)R.gid * P.rec_per_group;
        if (row_ok) {
            float *rec = P.rec + ((group_rec + rec_off + idx) * DC_RMAX + r) * P.rs;
            dc_store_dims<DJ, VEC, true>(rec, hd, lane, o, 1.0f);
            if (lane == 0) { __stcg(rec + hd, m); __stcg(rec + hd + 1, l); }
        }
        const int grp = idx / fan, first = grp * fan, cnt = min(fan, n_level - first);
        const int n_next = (n_level + fan - 1) / fan;
        __threadfence();  // this thread's record writes are visible device-wide before the count says so
        __syncthreads();
        if (tid == 0) {
            uint32_t *ctr = P.counters + (size_t)R.gid * P.cnt_per_group + cnt_off + grp;
            const uint32_t prev = atomicAdd(ctr, 1u);
            const bool last = prev == (uint32_t)(cnt - 1);
            if (last) atomicExch(ctr, 0u);  // every block of the group has counted: zero for the next launch
            sFlag[0] = last ? 1 : 0;
        }
        __syncthreads();
        if (!sFlag[0]) return;
        __threadfence();  // acquire: the group's records (read through L2 with __ldcg, never a stale L1 line)
        if (row_ok) dc_merge<DJ, VEC>(P.rec + ((group_rec + rec_off + first) * DC_RMAX + r) * P.rs, (size_t)DC_RMAX * P.rs, cnt,
                                      hd, lane, o, m, l);
        rec_off += n_level;
        cnt_off += n_next;
        n_level = n_next;
        idx = grp;
    }
    if (row_ok) dc_store_dims<DJ, VEC, false>(P.out + R.out_off(P, r), hd, lane, o, l > 0.0f ? 1.0f / l : 0.0f);
}

struct at_variant {
    int rmax, kt, dj;
};
// attention_kernel's shapes by plan variant: 1, 2 many rows; 5 the split-K decode fallback for
// devices whose shared memory is too small for attention_decode_kernel (3, 4, 6: no entry here).
constexpr at_variant AT_VARIANTS[6] = {{0, 0, 0}, {64, 32, 4}, {32, 32, 8}, {0, 0, 0}, {0, 0, 0}, {8, 32, 8}};

size_t at_smem_bytes(int v, int hs) {
    const at_variant &a = AT_VARIANTS[v];
    return sizeof(float) * ((size_t)(a.rmax + 2 * a.kt) * hs + (size_t)a.rmax * a.kt + 3 * a.rmax) +
           sizeof(int) * (2 * a.rmax + 2);
}

// Raises a kernel's dynamic shared-memory limit as far as needed, or fails with a clear error.
template <typename K>
void at_configure(K kernel, size_t smem, size_t &configured, int head_dim) {
    if (smem <= configured) return;
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) {
        cudaGetLastError();
        fail(ENDLESS_ERR_UNSUPPORTED, "cuda attention: head_dim " + std::to_string(head_dim) + " needs " +
             std::to_string(smem) + " bytes of shared memory per block, more than this device allows");
    }
    configured = smem;
}

template <int RMAX, int KT, int DJ, bool VEC>
void at_launch(const at_params &P, const cuda_attn_plan &plan, cudaStream_t stream) {
    static size_t configured = 0;
    at_configure(attention_kernel<RMAX, KT, DJ, VEC>, plan.smem, configured, P.head_dim);
    const dim3 grid(plan.n_split, P.n_head_kv * plan.n_hchunk, plan.n_qtiles);
    attention_kernel<RMAX, KT, DJ, VEC><<<grid, AT_THREADS, plan.smem, stream>>>(P);
}

template <int KB, int DJ, bool VEC, bool NEOX = false>
void dc_launch(const dc_params &P, const cuda_attn_plan &plan, cudaStream_t stream) {
    static size_t configured = 0;
    if (plan.smem > configured) {
        // two blocks per multiprocessor need the largest shared-memory carveout (the default may
        // pick the smallest that fits one block); the kernel reads global memory around L1 anyway
        if (cudaFuncSetAttribute(attention_decode_kernel<KB, DJ, VEC, NEOX>, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 (int)cudaSharedmemCarveoutMaxShared) != cudaSuccess)
            cudaGetLastError();  // only a preference
    }
    at_configure(attention_decode_kernel<KB, DJ, VEC, NEOX>, plan.smem, configured, P.head_dim);
    const dim3 grid(plan.n_split, P.n_head_kv * plan.n_hchunk, plan.n_qtiles);
    attention_decode_kernel<KB, DJ, VEC, NEOX><<<grid, DC_THREADS, plan.smem, stream>>>(P);
    CUDA_CHECK_LAUNCH("attention (decode)");
}

// One-query decode on attention_decode1.cu's kernel: -1 until set (then ENDLESS_CUDA_ATTN_DECODE1,
// default on); the benchmark sets it to time both kernels in one run.
std::atomic<int> g_decode1{-1};
bool at_decode1_on() {
    int v = g_decode1.load(std::memory_order_relaxed);
    if (v < 0) {
        const char *e = std::getenv("ENDLESS_CUDA_ATTN_DECODE1");
        v = e && e[0] == '0' ? 0 : 1;
        g_decode1.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}

// The current device's opt-in shared memory per block, cached per device. ENDLESS_CUDA_ATTN_SMEM
// (bytes) lowers it, so the paths of cards with less shared memory (sm_86/89: 99 KiB) can be
// tested on any card.
size_t at_device_smem_limit() {
    static const int lim = [] {  // ENDLESS_CUDA_ATTN_SMEM (0: unset)
        const char *e = std::getenv("ENDLESS_CUDA_ATTN_SMEM");
        const long v = e ? std::strtol(e, nullptr, 10) : 0;
        return v > 0 && v < (1 << 30) ? (int)v : 0;
    }();
    int v = cuda_device_attr<cudaDevAttrMaxSharedMemoryPerBlockOptin>(48 << 10);
    if (v <= 0) v = 48 << 10;
    if (lim > 0 && lim < v) v = lim;
    return (size_t)v;
}

}  // namespace

void cuda_attention_set_decode1(bool on) { g_decode1.store(on ? 1 : 0, std::memory_order_relaxed); }

cuda_attn_plan cuda_attention_plan(const attn_args &a, int keys_bucket, int n_sm, size_t smem_limit) {
    if (a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: n_head " + std::to_string(a.n_head) +
             " is not a positive multiple of n_head_kv " + std::to_string(a.n_head_kv));
    if (a.head_dim <= 0 || a.head_dim % 2 != 0 || a.head_dim > 256)
        fail(ENDLESS_ERR_UNSUPPORTED, "cuda attention: head_dim " + std::to_string(a.head_dim) +
             " is not supported (even, at most 256)");
    if (a.n_rot < 0 || a.n_rot % 2 != 0 || a.n_rot > a.head_dim)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: n_rot " + std::to_string(a.n_rot) +
             " must be even and at most head_dim " + std::to_string(a.head_dim));
    if (keys_bucket < a.n_keys)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: keys_bucket " + std::to_string(keys_bucket) + " is below n_keys " +
             std::to_string(a.n_keys));
    const int G = a.n_head / a.n_head_kv;
    // shared rows: a multiple of 4 floats whose quarter is odd when head_dim % 8 == 0, so the 8
    // lanes of a 16-byte shared load that read 8 different keys hit 8 different bank groups
    const int hs = (a.head_dim + 3) / 4 * 4 + 4;
    cuda_attn_plan p;
    p.keys_bucket = keys_bucket;
    const bool few_rows = (int64_t)a.n_q * G <= 16;
    // one query (the token step): the warp kernel of attention_decode1.cu where its shapes fit
    // (ENDLESS_CUDA_ATTN_DECODE1=0 or cuda_attention_set_decode1(false): attention_decode_kernel)
    if (at_decode1_on() && cuda_attention_decode1_fits(a)) {
        p.variant = 6;
        cuda_attention_decode1_shape(keys_bucket, a.n_head_kv, n_sm, p.rounds, p.n_split);
        p.early = cuda_attention_decode1_early(p.rounds);
        p.scratch_bytes = cuda_attention_decode1_scratch_bytes(a, p.n_split);
        return p;
    }
    if (smem_limit == 0) smem_limit = at_device_smem_limit();
    // decode: 32-key chunks (two 256-thread blocks per multiprocessor for head_dim <= 128), as far as
    // shared memory allows; else (consumer cards, head_dim > 128) the split-K kernel with a separate
    // combine
    int dc_variant = -1;
    if (few_rows) {
        for (int v : {4, 3}) {
            if ((v == 4 && a.head_dim > 128) || dc_layout_of(32, v == 3 ? 8 : 4, 1).bytes > smem_limit) continue;
            dc_variant = v;
            break;
        }
    }
    if (dc_variant >= 0) {
        p.variant = dc_variant;
        p.kb = 32;
        p.heads_per_block = G < DC_RMAX ? G : DC_RMAX;
        p.queries_per_block = DC_RMAX / p.heads_per_block;
        p.n_hchunk = (G + p.heads_per_block - 1) / p.heads_per_block;
        p.n_qtiles = (a.n_q + p.queries_per_block - 1) / p.queries_per_block;
        const int64_t groups = (int64_t)p.n_qtiles * a.n_head_kv * p.n_hchunk;
        const int64_t n_chunks = (keys_bucket + p.kb - 1) / p.kb;
        // one chunk per block while the blocks fit two waves of the device's multiprocessors (one
        // wave where two blocks fit a multiprocessor); more chunks per block beyond
        int64_t cpb = 1;
        while (cpb < DC_MAX_CHUNKS && groups * ((n_chunks + cpb - 1) / cpb) > 2 * (int64_t)n_sm) cpb++;
        const int dj = p.variant == 3 ? 8 : 4;
        while (cpb > 1 && dc_layout_of(p.kb, dj, (int)cpb).bytes > smem_limit) cpb--;  // the slots of its chunks
        p.chunks = (int)cpb;
        p.n_split = (int)((n_chunks + cpb - 1) / cpb);
        int rec = 0, cnt = 0;
        for (int n = p.n_split; n > 1;) {
            rec += n;
            n = (n + dc_fan_of(p.n_split) - 1) / dc_fan_of(p.n_split);
            cnt += n;
        }
        p.rec_per_group = rec;
        p.cnt_per_group = cnt;
        const int rs = (a.head_dim + 2 + 3) / 4 * 4;
        p.smem = dc_layout_of(p.kb, dj, p.chunks).bytes;
        p.scratch_bytes = (size_t)groups * rec * DC_RMAX * rs * sizeof(float);
        p.counter_bytes = (size_t)groups * cnt * sizeof(uint32_t);
        return p;
    }
    p.variant = few_rows ? 5 : a.head_dim <= 128 ? 1 : 2;
    const int rmax = AT_VARIANTS[p.variant].rmax, kt = AT_VARIANTS[p.variant].kt;
    p.heads_per_block = G < rmax ? G : rmax;
    p.queries_per_block = rmax / p.heads_per_block;
    p.n_hchunk = (G + p.heads_per_block - 1) / p.heads_per_block;
    p.n_qtiles = (a.n_q + p.queries_per_block - 1) / p.queries_per_block;
    const int64_t base = (int64_t)p.n_qtiles * a.n_head_kv * p.n_hchunk;
    const int64_t tiles_max = keys_bucket / kt + 1;
    // decode fallback: as many blocks as it takes to keep every multiprocessor loading (down to
    // one key tile per block); many queries: fewer, longer splits
    const int64_t target = (few_rows ? 4 : 2) * (int64_t)n_sm;
    int64_t n_split = (target + base - 1) / base;
    const int64_t cap = few_rows ? tiles_max : (tiles_max / 2 > 1 ? tiles_max / 2 : 1);
    if (n_split > cap) n_split = cap;
    if (n_split > AT_MAX_SPLIT) n_split = AT_MAX_SPLIT;
    if (n_split < 1) n_split = 1;
    p.n_split = (int)n_split;
    p.smem = at_smem_bytes(p.variant, hs);
    p.scratch_bytes = p.n_split > 1 ? (size_t)a.n_q * a.n_head * p.n_split * ((size_t)a.head_dim + 2) * sizeof(float) : 0;
    return p;
}

void cuda_attention(const attn_args &a, const cuda_attn_plan &plan, const int32_t *keys, const int32_t *win_lo,
                    const int32_t *win_hi, const int32_t *meta, void *scratch, cudaStream_t stream, uint32_t *counters,
                    const int32_t *fresh, int n_fresh) {
    // float4 path: whole quads of pairs, 16-byte aligned rows and tables
    auto a16 = [](const void *p) { return ((uintptr_t)p % 16) == 0; };
    const bool vec = a.head_dim % 8 == 0 && a.n_rot % 8 == 0 && a16(a.q) && a16(a.k_cache) && a16(a.v_cache) &&
                     (a.n_rot == 0 || (a16(a.rope_cos) && a16(a.rope_sin)));
    if (plan.variant == 6) {
        cuda_attention_decode1(a, plan.keys_bucket, plan.rounds, plan.n_split, keys, win_lo, win_hi, meta, (float *)scratch, stream,
                               fresh, n_fresh);
        return;
    }
    if (plan.variant == 3 || plan.variant == 4) {
        dc_params P{};
        P.q = a.q; P.k_cache = a.k_cache; P.v_cache = a.v_cache; P.out = a.out;
        P.keys = keys; P.win_lo = win_lo; P.win_hi = win_hi; P.meta = meta;
        P.rope_cos = a.rope_cos; P.rope_sin = a.rope_sin;
        P.rec = (float *)scratch;
        P.counters = counters;
        P.n_q = a.n_q; P.n_head = a.n_head; P.n_head_kv = a.n_head_kv; P.head_dim = a.head_dim;
        P.n_rot = a.n_rot; P.mode = (int)a.mode;
        P.hs = dc_hs_of(plan.variant == 3 ? 8 : 4);  // (the kernel uses the same constants)
        P.ts = dc_ts_of(plan.variant == 3 ? 8 : 4);
        P.rs = (a.head_dim + 2 + 3) / 4 * 4;
        P.heads_per_block = plan.heads_per_block; P.queries_per_block = plan.queries_per_block;
        P.n_hchunk = plan.n_hchunk; P.n_split = plan.n_split; P.chunks = plan.chunks; P.keys_bucket = plan.keys_bucket;
        P.rec_per_group = plan.rec_per_group; P.cnt_per_group = plan.cnt_per_group;
        P.scale = a.scale;
        if (plan.n_split > 1 && (!scratch || !counters))
            fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: the decode plan needs " + std::to_string(plan.scratch_bytes) +
                 " bytes of scratch and " + std::to_string(plan.counter_bytes) + " bytes of zeroed counters");
        const bool dvec = vec && a16(a.out);  // the decode kernel also writes its output as float4
        const bool neox = a.mode == ROPE_MODE_NEOX;
        switch ((plan.variant == 4 ? 2 : 4) + (dvec ? 1 : 0)) {
        case 2: dc_launch<32, 4, false>(P, plan, stream); break;
        case 3: neox ? dc_launch<32, 4, true, true>(P, plan, stream) : dc_launch<32, 4, true, false>(P, plan, stream); break;
        case 4: dc_launch<32, 8, false>(P, plan, stream); break;
        default: neox ? dc_launch<32, 8, true, true>(P, plan, stream) : dc_launch<32, 8, true, false>(P, plan, stream); break;
        }
        return;
    }
    at_params P{};
    P.q = a.q; P.k_cache = a.k_cache; P.v_cache = a.v_cache; P.out = a.out;
    P.keys = keys; P.win_lo = win_lo; P.win_hi = win_hi; P.meta = meta;
    P.rope_cos = a.rope_cos; P.rope_sin = a.rope_sin;
    P.n_q = a.n_q; P.n_head = a.n_head; P.n_head_kv = a.n_head_kv; P.head_dim = a.head_dim;
    P.n_rot = a.n_rot; P.mode = (int)a.mode; P.hs = (a.head_dim + 3) / 4 * 4 + 4;
    P.heads_per_block = plan.heads_per_block; P.queries_per_block = plan.queries_per_block;
    P.n_hchunk = plan.n_hchunk; P.n_split = plan.n_split; P.scale = a.scale;
    if (plan.n_split > 1) {
        P.part_o = (float *)scratch;
        P.part_ml = P.part_o + (size_t)a.n_q * a.n_head * plan.n_split * a.head_dim;
    }
    switch (plan.variant * 2 + (vec ? 1 : 0)) {
    case 2: at_launch<64, 32, 4, false>(P, plan, stream); break;
    case 3: at_launch<64, 32, 4, true>(P, plan, stream); break;
    case 4: at_launch<32, 32, 8, false>(P, plan, stream); break;
    case 5: at_launch<32, 32, 8, true>(P, plan, stream); break;
    case 10: at_launch<8, 32, 8, false>(P, plan, stream); break;
    default: at_launch<8, 32, 8, true>(P, plan, stream); break;
    }
    CUDA_CHECK_LAUNCH("attention");
    if (plan.n_split > 1) {
        attention_combine_kernel<<<a.n_q * a.n_head, CB_THREADS, 0, stream>>>(P.part_o, P.part_ml, plan.n_split, a.head_dim, a.out);
        CUDA_CHECK_LAUNCH("attention combine");
    }
}

}  // namespace endless
