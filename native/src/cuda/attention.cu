// Attention over the sink / memory / window / branch cache (semantics: attn_args in backend.h).
//
// Query i sees the n_fixed keys at positions 0..n_fixed-1, then window entries j in
// [win_lo[i], win_hi[i]) at positions n_fixed + j - win_lo[i]; the query sits at
// n_fixed + win_hi[i] - win_lo[i] - 1. RoPE scores depend only on the difference of positions, so
// window keys are rotated once, by n_fixed + j (shared by every query of a block), and the query
// by n_fixed + win_hi[i] - 1 for them: same differences, and positions stay below n_keys. The
// fixed keys use their true positions and the query's true position.
//
// A block takes a tile of queries x a chunk of the heads of one KV head (GQA) and a share of
// the key tiles (split-K); it stages rotated K and V tiles in shared memory, keeps an online
// softmax per row, and writes either the output or a partial (m, l, o) that a combine kernel
// merges. Fixed-key tiles and window tiles are kept apart so each tile uses one query rotation.
#include "attention.cuh"
#include "cuda_common.cuh"

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
__device__ __forceinline__ void at_quad_dims(const at_params &P, int p, int &da, int &db, bool &rot) {
    const int half = P.n_rot / 2;
    rot = p < half;
    if (rot) {
        if (P.mode == ROPE_MODE_NEOX) { da = p; db = p + half; }
        else { da = 2 * p; db = 2 * p + 4; }
    } else {
        da = P.n_rot + 2 * (p - half);
        db = da + 4;
    }
}
__device__ __forceinline__ float4 ldg4(const float *p) { return __ldg(reinterpret_cast<const float4 *>(p)); }
__device__ __forceinline__ void st4(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }
__device__ __forceinline__ void at_rot_quad(const at_params &P, bool rot, float4 a, float4 b, float4 c, float4 s, float mul,
                                            float4 &oa, float4 &ob) {
    if (!rot) {
        oa = make_float4(a.x * mul, a.y * mul, a.z * mul, a.w * mul);
        ob = make_float4(b.x * mul, b.y * mul, b.z * mul, b.w * mul);
    } else if (P.mode == ROPE_MODE_NEOX) {  // a: first halves of pairs p..p+3, b: second halves
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
                    at_rot_quad(P, rot[u], a[u], b[u], c[u], sn[u], P.scale, oa, ob);
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
                    at_rot_quad(P, rot[u], a[u], b[u], c[u], sn[u], 1.0f, oa, ob);
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

struct at_variant {
    int rmax, kt, dj;
};
// 3: decode with head_dim <= 128. DJ = 4 instead of 8 halves the accumulator registers (157 per
// thread for variant 0 on sm_90: 3 blocks per SM) and the predicated-off half of the P.V loop.
constexpr at_variant AT_VARIANTS[4] = {{8, 32, 8}, {64, 32, 4}, {32, 32, 8}, {8, 32, 4}};

size_t at_smem_bytes(int v, int hs) {
    const at_variant &a = AT_VARIANTS[v];
    return sizeof(float) * ((size_t)(a.rmax + 2 * a.kt) * hs + (size_t)a.rmax * a.kt + 3 * a.rmax) +
           sizeof(int) * (2 * a.rmax + 2);
}

template <int RMAX, int KT, int DJ, bool VEC>
void at_launch(const at_params &P, const cuda_attn_plan &plan, cudaStream_t stream) {
    static size_t configured = 0;  // the dynamic shared-memory limit, raised as far as needed
    if (plan.smem > configured) {
        const cudaError_t err = cudaFuncSetAttribute(attention_kernel<RMAX, KT, DJ, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)plan.smem);
        if (err != cudaSuccess) {
            cudaGetLastError();
            fail(ENDLESS_ERR_UNSUPPORTED, "cuda attention: head_dim " + std::to_string(P.head_dim) + " needs " +
                 std::to_string(plan.smem) + " bytes of shared memory per block, more than this device allows");
        }
        configured = plan.smem;
    }
    const dim3 grid(plan.n_split, P.n_head_kv * plan.n_hchunk, plan.n_qtiles);
    attention_kernel<RMAX, KT, DJ, VEC><<<grid, AT_THREADS, plan.smem, stream>>>(P);
}

int g_decode_tiles = 1;  // key tiles per split-K block for decode (benchmark knob)

}  // namespace

void cuda_attention_set_decode_tiles(int tiles) { g_decode_tiles = tiles < 1 ? 1 : tiles; }

cuda_attn_plan cuda_attention_plan(const attn_args &a, int keys_bucket, int n_sm) {
    if (a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: n_head " + std::to_string(a.n_head) +
             " is not a positive multiple of n_head_kv " + std::to_string(a.n_head_kv));
    if (a.head_dim <= 0 || a.head_dim % 2 != 0 || a.head_dim > 256)
        fail(ENDLESS_ERR_UNSUPPORTED, "cuda attention: head_dim " + std::to_string(a.head_dim) +
             " is not supported (even, at most 256)");
    if (a.n_rot < 0 || a.n_rot % 2 != 0 || a.n_rot > a.head_dim)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda attention: n_rot " + std::to_string(a.n_rot) +
             " must be even and at most head_dim " + std::to_string(a.head_dim));
    const int G = a.n_head / a.n_head_kv;
    const int hs = (a.head_dim + 3) / 4 * 4 + 4;
    cuda_attn_plan p;
    const bool few_rows = (int64_t)a.n_q * G <= 16;
    if (few_rows) p.variant = a.head_dim <= 128 ? 3 : 0;
    else p.variant = a.head_dim <= 128 ? 1 : 2;
    const int rmax = AT_VARIANTS[p.variant].rmax, kt = AT_VARIANTS[p.variant].kt;
    p.heads_per_block = G < rmax ? G : rmax;
    p.queries_per_block = rmax / p.heads_per_block;
    p.n_hchunk = (G + p.heads_per_block - 1) / p.heads_per_block;
    p.n_qtiles = (a.n_q + p.queries_per_block - 1) / p.queries_per_block;
    const int64_t base = (int64_t)p.n_qtiles * a.n_head_kv * p.n_hchunk;
    const int64_t tiles_max = keys_bucket / kt + 1;
    // decode: as many blocks as it takes to keep every multiprocessor loading (down to one key
    // tile per block); many queries: fewer, longer splits
    const int64_t target = (few_rows ? 4 : 2) * (int64_t)n_sm;
    int64_t n_split = (target + base - 1) / base;
    const int64_t cap = few_rows ? (tiles_max + g_decode_tiles - 1) / g_decode_tiles : (tiles_max / 2 > 1 ? tiles_max / 2 : 1);
    if (n_split > cap) n_split = cap;
    if (n_split > AT_MAX_SPLIT) n_split = AT_MAX_SPLIT;
    if (n_split < 1) n_split = 1;
    p.n_split = (int)n_split;
    p.smem = at_smem_bytes(p.variant, hs);
    p.scratch_bytes = p.n_split > 1 ? (size_t)a.n_q * a.n_head * p.n_split * ((size_t)a.head_dim + 2) * sizeof(float) : 0;
    return p;
}

void cuda_attention(const attn_args &a, const cuda_attn_plan &plan, const int32_t *keys, const int32_t *win_lo,
                    const int32_t *win_hi, const int32_t *meta, void *scratch, cudaStream_t stream) {
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
    // float4 path: whole quads of pairs, 16-byte aligned rows and tables
    auto a16 = [](const void *p) { return ((uintptr_t)p % 16) == 0; };
    const bool vec = a.head_dim % 8 == 0 && a.n_rot % 8 == 0 && a16(a.q) && a16(a.k_cache) && a16(a.v_cache) &&
                     (a.n_rot == 0 || (a16(a.rope_cos) && a16(a.rope_sin)));
    switch (plan.variant * 2 + (vec ? 1 : 0)) {
    case 0: at_launch<8, 32, 8, false>(P, plan, stream); break;
    case 1: at_launch<8, 32, 8, true>(P, plan, stream); break;
    case 2: at_launch<64, 32, 4, false>(P, plan, stream); break;
    case 3: at_launch<64, 32, 4, true>(P, plan, stream); break;
    case 4: at_launch<32, 32, 8, false>(P, plan, stream); break;
    case 5: at_launch<32, 32, 8, true>(P, plan, stream); break;
    case 6: at_launch<8, 32, 4, false>(P, plan, stream); break;
    default: at_launch<8, 32, 4, true>(P, plan, stream); break;
    }
    CUDA_CHECK_LAUNCH("attention");
    if (plan.n_split > 1) {
        attention_combine_kernel<<<a.n_q * a.n_head, CB_THREADS, 0, stream>>>(P.part_o, P.part_ml, plan.n_split, a.head_dim, a.out);
        CUDA_CHECK_LAUNCH("attention combine");
    }
}

}  // namespace endless
