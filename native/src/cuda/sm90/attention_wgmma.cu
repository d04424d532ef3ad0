// Prefill attention on sm_90a's warpgroup tensor-core instructions (wgmma.mma_async); see
// attention_wgmma.cuh. A block owns 128 (query, head) rows of one KV head, as attention_mma_kernel
// (attention_mma.cu, mma.sync) does: two consumer warpgroups of 64 rows each and a producer warpgroup
// that loads the block's key tiles (128 keys) and lends its registers to the consumers (setmaxnreg).
// It walks the tiles with:
//   - the block's queries (f16, rotated and scaled by the conversion pass) and the K and V tiles in
//     shared memory in the instructions' canonical no-swizzle layout: 8-row x 16-byte core matrices,
//     byte (row, 16-byte chunk c) at (row / 8) * HD * 16 + c * 128 + (row % 8) * 16. The conversion
//     pass writes kh / vh in that layout already (attention_mma_convert_kernel<HD, true>), so a tile
//     that starts at a multiple of 8 rows is one contiguous stretch: two bulk copies (cp.async.bulk,
//     issued by one producer thread, up to 3 tiles ahead) whose bytes arrive on the stage's "full"
//     mbarrier; every consumer warp releases a stage on its "empty" mbarrier, so the two consumer
//     warpgroups need no block barrier and run at their own pace;
//   - S = Q K^T per warpgroup: wgmma m64n128k16, the queries as A fragments in registers (read once
//     from shared memory by ldmatrix, again when the rotation changes), K from shared memory (K-major);
//   - the online softmax in registers (each thread: two rows, 32 scores), base 2 (Q carries
//     scale * log2 e), masks for tiles that straddle a window edge, as attention_mma_kernel;
//   - O += P V: wgmma m64nHDk16 with P from registers (the S accumulator layout is the A fragment
//     layout once rounded to f16) and V from shared memory read N-major (imm-trans-b), so one tile
//     layout serves K and V; the product of tile t - 1 runs while tile t's softmax does, and O's
//     rescale to tile t - 1's maxima while S of tile t does (the loop).
//     No wgmma may sit behind a branch ptxas cannot prove uniform over the warpgroup: it then
//     serializes every wgmma of the kernel ("C7520 ... WG.AR in divergent path"), which the eleventh
//     session's kernel did; the ctest cuda_sm90a_no_ptxas_notes fails on any such ptxas note.
// Tile ranges, window skipping, split-K and the partial records are attention_mma_kernel's, except
// that window tiles start at a multiple of 8 rows (the keys before the first visible one are masked).
// H100, 4096 queries x 12 / 2 heads x 128 dims (test_cuda_bench ENDLESS_BENCH_ONLY=attn_prefill;
// NOTES.md, eleventh session), TFLOP/s of useful work for a causal chunk / a 4092-key window:
// attention_mma_kernel 147 / 179; here, serialized (C7520), with cp.async tiles (every thread, 16
// bytes a copy) 157-166 / 180-191 (the threads stalled issuing the copies); bulk copies, 64-key tiles
// 230 / 266-272; 128-key tiles 255-268 / 299-308 (262-263 / 302-305 in the twelfth session's A/B);
// without the serialization 293-294 / 334-337; with the producer warpgroup 296-302 / 340-342
// (ncu: tensor pipe 47.6%, issue slots 31.9%; ptxas had put the wait for the P V product before the
// softmax, at the join after the branchy mask); with the mask branch-free 314 / 370 (NOTES.md,
// twelfth session), 311-318 / 362-372 in the fourteenth session's A/B (the same card type, another day);
// then the queries in registers and O's rescale behind S: 333-335 / 397-399 (T1303). Tried and not
// kept: exponentials on f16x2 pairs (ex2.approx.f16x2, 5-7% slower: more instructions for the row
// sums), FlashAttention-3's ping-pong between the consumer warpgroups (+0-2%), the mask on every tile
// without the branch (no gain), a row's max and sum in four partial chains (alone 3-7% faster, with
// the two changes above no further gain).
#include "../attention_wgmma.cuh"
#include "../cuda_common.cuh"

#include <climits>
#include <cmath>

#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "attention_wgmma.cu uses sm_90a instructions: compile it for sm_90a only (native/CMakeLists.txt)"
#endif

namespace endless {

namespace {

constexpr int AW_WG = CUDA_AW_ROWS / 64;   // warpgroups per block, 64 rows each
// a producer warpgroup issues the tile loads (one thread of it) and gives its registers to the
// consumer warpgroups (setmaxnreg), which only compute
constexpr int AW_CONSUMERS = 128 * AW_WG;
constexpr int AW_PROD = 128;
constexpr int AW_THREADS = AW_CONSUMERS + AW_PROD;
constexpr int AW_BM = CUDA_AW_ROWS;
constexpr int AW_KT = CUDA_AW_KT;
static_assert(AW_KT == 128, "S is one m64n128 accumulator per warpgroup");
// K / V tile stages: 3 x 2 x 32 KB + the queries' 32 KB (head dim 128) fill the 227 KB a block may
// have; the producer puts tile t into the stage of tile t - 3 once every consumer warp released it
constexpr int AW_STAGES = 3;

// mbarriers (one per stage: the tile's bytes arrive on it) and 1-D bulk copies into shared memory
__device__ __forceinline__ void aw_mbar_init(uint32_t bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void aw_mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void aw_mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void aw_mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
}
__device__ __forceinline__ void aw_bulk_load(uint32_t dst, const void *src, uint32_t bytes, uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst), "l"(src),
                 "r"(bytes), "r"(bar)
                 : "memory");
}
__device__ __forceinline__ void aw_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void aw_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void aw_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Keeps the compiler from moving uses of accumulator registers across a wgmma wait or issue (the
// asm statements of the instructions name them, but an async result is only there after the wait).
template <int N>
__device__ __forceinline__ void aw_pin(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): start address, leading and
// stride byte offsets (each >> 4), no swizzle.
__device__ __forceinline__ uint64_t aw_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFFu) >> 4) | ((uint64_t)((lbo & 0x3FFFFu) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFFu) >> 4) << 32);
}

// The accumulator operands of the wrappers below: 32 registers starting at d[o], as asm outputs, and
// the operand numbers %0..%31 / %32..%63 of the instruction strings.
#define AW_ACC8(o) "+f"(d[(o) + 0]), "+f"(d[(o) + 1]), "+f"(d[(o) + 2]), "+f"(d[(o) + 3]), "+f"(d[(o) + 4]), "+f"(d[(o) + 5]), \
    "+f"(d[(o) + 6]), "+f"(d[(o) + 7])
#define AW_ACC32(o) AW_ACC8(o), AW_ACC8((o) + 8), AW_ACC8((o) + 16), AW_ACC8((o) + 24)
#define AW_OPS_LO "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define AW_OPS_HI "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// O (m64 x nN, f32) += A (64 x 16 in registers, the mma.m16n8k16 A layout per warp) x B (16 x N, an
// N-major descriptor: imm-trans-b = 1); N = 64 or 128 (the head dim).
__device__ __forceinline__ void aw_wgmma_rs_n64(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {" AW_OPS_LO "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : AW_ACC32(0)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}
__device__ __forceinline__ void aw_wgmma_rs_n128(float (&d)[64], const uint32_t (&a)[4], uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" AW_OPS_LO ", " AW_OPS_HI "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
                 : AW_ACC32(0), AW_ACC32(32)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}
// S (m64 x n128, f32) = A (64 x 16 in registers, the mma.m16n8k16 A layout per warp) x B (16 x 128, a
// K-major descriptor); scale_d = 0 overwrites S.
__device__ __forceinline__ void aw_wgmma_rs_kn128(float (&d)[64], const uint32_t (&a)[4], uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" AW_OPS_LO ", " AW_OPS_HI "}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
                 : AW_ACC32(0), AW_ACC32(32)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
#undef AW_ACC32
#undef AW_ACC8
#undef AW_OPS_LO
#undef AW_OPS_HI

template <int HD>
__global__ void __launch_bounds__(AW_THREADS, 1) attention_wgmma_kernel(const attn_tc_params P) {
    constexpr int RG = HD * 16;           // bytes from one 8-row group of a tile to the next
    constexpr int CH = HD / 8;            // 16-byte chunks per row
    constexpr int NK = HD / 16;           // k steps of Q K^T
    constexpr int ND = HD / 8;            // 8-dim blocks of O
    constexpr int NS = AW_KT / 8;         // 8-key blocks of S
    constexpr uint32_t Q_BYTES = AW_BM * HD * 2, T_BYTES = AW_KT * HD * 2;
    extern __shared__ __align__(128) uint8_t aw_smem[];
    const uint32_t sQ = (uint32_t)__cvta_generic_to_shared(aw_smem);
    const uint32_t sK = sQ + Q_BYTES, sV = sK + AW_STAGES * T_BYTES;  // K[AW_STAGES], V[AW_STAGES]
    __shared__ int s_range[AW_CONSUMERS / 32][5];
    // per stage: its tile has landed (the producer's expect_tx and the bytes), every consumer warp is
    // done with it (one arrival per warp); a phase per use
    __shared__ __align__(8) uint64_t s_full[AW_STAGES], s_empty[AW_STAGES];
    const uint32_t full0 = (uint32_t)__cvta_generic_to_shared(&s_full[0]), empty0 = (uint32_t)__cvta_generic_to_shared(&s_empty[0]);

    // consumer-relative thread, warp and warpgroup (negative in the producer warpgroup); wg is read
    // through a shuffle so that ptxas sees it warp-uniform
    const int tid = (int)threadIdx.x - AW_PROD, lane = threadIdx.x & 31, warp = tid >> 5, gr = lane >> 2, tq = lane & 3;
    const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0);
    const int qt = P.n_qtiles - 1 - (int)blockIdx.x;  // the last queries see the most keys: start them first
    const int kvh = blockIdx.y, split = blockIdx.z;
    const int n_rows = P.n_q * P.G;
    const int n_fixed = P.meta[0];

    // This thread's rows: accumulator rows gr and gr + 8 of its warp's 16 (u = 0, 1); row r is query
    // r / G, head kvh * G + r % G.
    auto row_local = [&](int u) { return warp * 16 + gr + 8 * u; };
    auto row_qh = [&](int r) { return (size_t)(r / P.G) * P.n_head + kvh * P.G + r % P.G; };
    bool any = false;
    int r_lo[2], r_hi[2];  // this thread's rows' windows (window entries [lo, hi))
    int lmin = INT_MAX, hmax = -1, lmax = INT_MIN, hmin = INT_MAX;
#pragma unroll
    for (int u = 0; u < 2; u++) {
        const int rl = row_local(u), r = qt * AW_BM + rl;
        int lo = 0, hi = 0;
        if (tid >= 0 && r < n_rows) {
            lo = P.win_lo[r / P.G];
            hi = P.win_hi[r / P.G];
            any = true; lmin = min(lmin, lo); hmax = max(hmax, hi); lmax = max(lmax, lo); hmin = min(hmin, hi);
        }
        r_lo[u] = lo;
        r_hi[u] = hi;
    }
    if (threadIdx.x == 0) {
        for (int i = 0; i < AW_STAGES; i++) {
            aw_mbar_init(full0 + 8 * i, 1);
            aw_mbar_init(empty0 + 8 * i, AW_CONSUMERS / 32);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    {
        const int a = __any_sync(0xffffffffu, any), l0 = tc_warp_min(lmin), h0 = tc_warp_max(hmax), l1 = tc_warp_max(lmax), h1 = tc_warp_min(hmin);
        if (tid >= 0 && lane == 0) { s_range[warp][0] = l0; s_range[warp][1] = h0; s_range[warp][2] = l1; s_range[warp][3] = h1; s_range[warp][4] = a; }
    }
    __syncthreads();
    // the block's window entries (union of its rows' windows) and the warpgroup's ranges: tiles
    // outside [g_lo_min, g_hi_max) are skipped by the warpgroup, tiles inside [g_lo_max, g_hi_min)
    // need no mask
    int jlo = INT_MAX, jhi = -1, g_lo_min = INT_MAX, g_hi_max = -1, g_lo_max = INT_MIN, g_hi_min = INT_MAX;
    bool g_any = false;
#pragma unroll
    for (int w = 0; w < AW_CONSUMERS / 32; w++) {
        jlo = min(jlo, s_range[w][0]);
        jhi = max(jhi, s_range[w][1]);
        if ((w >> 2) == wg && s_range[w][4]) {
            g_any = true;
            g_lo_min = min(g_lo_min, s_range[w][0]); g_hi_max = max(g_hi_max, s_range[w][1]);
            g_lo_max = max(g_lo_max, s_range[w][2]); g_hi_min = min(g_hi_min, s_range[w][3]);
        }
    }
    // fixed tiles: keys 0.. in steps of KT; window tiles: from the first visible window key rounded
    // down to a group of 8 rows (a tile is then one contiguous stretch of kh / vh); keys before it
    // in the tile (window entries below every row's window, or fixed keys) are masked
    const int n_ft = (n_fixed + AW_KT - 1) / AW_KT;
    const int w_base = jhi > jlo ? (n_fixed + jlo) & ~7 : 0;
    const int n_wt = jhi > jlo ? (n_fixed + jhi - w_base + AW_KT - 1) / AW_KT : 0;
    const int n_tiles = n_ft + n_wt;
    const int t_begin = (int)((long long)n_tiles * split / P.n_split);
    const int t_end = (int)((long long)n_tiles * (split + 1) / P.n_split);

    // Tile t (key index e0 = t * KT for fixed tiles, w_base + (t - n_ft) * KT for window tiles): rows
    // e0.. of kh and vh, two bulk copies whose bytes arrive on the stage's mbarrier (the producer
    // thread issues them). Rows past n_keys are zeros in kh / vh (the conversion pass leaves a tile of them).
    auto tile_e0 = [&](int t) { return t < n_ft ? t * AW_KT : w_base + (t - n_ft) * AW_KT; };
    auto load_tile = [&](int t, int stage) {
        const size_t base = ((size_t)kvh * P.rows_kv + tile_e0(t)) * HD;
        const uint32_t bar = full0 + 8 * stage;
        aw_mbar_expect_tx(bar, 2 * T_BYTES);
        aw_bulk_load(sK + stage * T_BYTES, P.kh + base, T_BYTES, bar);
        aw_bulk_load(sV + stage * T_BYTES, P.vh + base, T_BYTES, bar);
    };
    // the warpgroup's 64 queries in the rotation of the window or the fixed tiles (zeros past n_rows)
    auto load_q = [&](bool window) {
#pragma unroll
        for (int i0 = 0; i0 < 64 * CH; i0 += 128) {
            const int i = i0 + (tid & 127), r8 = i & 7, c = (i >> 3) % CH, grp = wg * 8 + i / (8 * CH), rl = grp * 8 + r8, r = qt * AW_BM + rl;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (r < n_rows) v = *reinterpret_cast<const uint4 *>(P.qh + ((size_t)window * P.n_q * P.n_head + row_qh(r)) * HD + c * 8);
            const uint32_t dst = sQ + grp * RG + c * 128 + r8 * 16;
            asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
        }
    };

    // o[4 dn + c]: row gr + 8 (c >> 1) of the warp's 16, dim 8 dn + 2 tq + (c & 1); s likewise with keys
    float o[HD / 2];
#pragma unroll
    for (int i = 0; i < HD / 2; i++) o[i] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this thread's partial row sums
    int q_mode = -1;
    uint32_t qf[NK][4];  // the warp's 16 query rows as A fragments of S = Q K^T, k step k

    // The loop (consumers). Every warp waits for tile t to land. A warpgroup issues S_t = Q K_t^T (the
    // queries' A fragments in registers, K_t from shared memory), rescales O to tile t - 1's row maxima
    // while S_t runs, issues O += P_{t-1} V_{t-1} (the previous tile's probabilities, kept in registers),
    // waits for S_t only, and runs tile t's softmax while the P V product is on the tensor cores; then it
    // waits for that and releases tile t - 1's stage. No block barrier: the two warpgroups run at their
    // own pace (the stages give the later one slack).
    // No wgmma sits behind a branch that differs between the warpgroups (ptxas then serializes every
    // wgmma of the kernel, C7520): both run every tile of the block, a tile outside a warpgroup's rows
    // fully masked; the first tile's "previous" P V multiplies zero probabilities by its own V (the
    // stage has landed, so the values are finite).
    uint32_t pa[AW_KT / 16][4];  // P of the previous tile, the A fragments of its P V product
#pragma unroll
    for (int kk = 0; kk < AW_KT / 16; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
    auto pv = [&](int stage) {   // O += P V of the previous tile (issue only)
        const uint32_t vb = sV + stage * T_BYTES;
#pragma unroll
        for (int kk = 0; kk < AW_KT / 16; kk++) {
            if constexpr (HD == 128) aw_wgmma_rs_n128(o, pa[kk], aw_desc(vb + 2 * RG * kk, RG, 128));
            else aw_wgmma_rs_n64(o, pa[kk], aw_desc(vb + 2 * RG * kk, RG, 128));
        }
        aw_commit();
    };
    auto release = [&](int stage) {  // this warp is done with the stage (its wgmma reads have completed)
        __syncwarp();
        if (lane == 0) aw_mbar_arrive(empty0 + 8 * stage);
    };
    auto wg_sync = [&] { asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory"); };
    if (wg < 0) {  // the producer: every tile of the block, each into a stage its previous tile has left
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (threadIdx.x == 0)
            for (int i = 0; t_begin + i < t_end; i++) {
                if (i >= AW_STAGES) aw_mbar_wait(empty0 + 8 * (i % AW_STAGES), (i / AW_STAGES - 1) & 1);
                load_tile(t_begin + i, i % AW_STAGES);
            }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");  // 40 x 128 + 232 x 256 <= 64K
    int prev = 0;  // the previous tile's stage (the first iteration: its own)
    float alpha_prev[2] = {1.0f, 1.0f};  // the previous tile's rescale, not yet applied to O
    auto rescale = [&](const float (&al)[2]) {
#pragma unroll
        for (int dn = 0; dn < ND; dn++) {
            o[4 * dn + 0] *= al[0]; o[4 * dn + 1] *= al[0];
            o[4 * dn + 2] *= al[1]; o[4 * dn + 3] *= al[1];
        }
    };
    for (int t = t_begin; t < t_end; t++) {
        const int it = t - t_begin, stage = it % AW_STAGES;
        aw_mbar_wait(full0 + 8 * stage, (it / AW_STAGES) & 1);  // tile t has landed
        if (it == 0) prev = stage;
        const bool window = t >= n_ft;
        if (q_mode != (int)window) {  // (block-uniform) the warpgroup is past its last S of the other rotation
            wg_sync();
            load_q(window);
            q_mode = (int)window;
            wg_sync();  // the stores above and the ldmatrix reads below are both generic-proxy accesses
            {  // ldmatrix x4: matrix i = lane / 8 (rows + 8 (i & 1), 16-byte chunk 2 k + (i >> 1)), row lane % 8
                const int grp = wg * 8 + (warp & 3) * 2 + ((lane >> 3) & 1);
#pragma unroll
                for (int k = 0; k < NK; k++) {
                    const uint32_t a = sQ + grp * RG + (2 * k + (lane >> 4)) * 128 + (lane & 7) * 16;
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                                 : "=r"(qf[k][0]), "=r"(qf[k][1]), "=r"(qf[k][2]), "=r"(qf[k][3])
                                 : "r"(a)
                                 : "memory");
                }
            }
        }

        const int e0 = tile_e0(t);                    // key index of the tile's first key
        const int j0 = window ? e0 - n_fixed : 0;     // its window entry (negative: below every window)
        bool active, need_mask;
        if (window) {
            active = g_any && j0 < g_hi_max && j0 + AW_KT > g_lo_min;
            need_mask = !(j0 >= g_lo_max && j0 + AW_KT <= g_hi_min);
        } else {
            active = g_any;
            need_mask = e0 + AW_KT > n_fixed;
        }
        // S = Q K^T: A = the warpgroup's 64 query rows, B = the tile's keys (both K-major)
        float s[AW_KT / 2];
        // nothing is in flight here (the last iteration waited for all); saying so again lets ptxas see
        // it (else it waits for S before the rescale below, C7517)
        aw_wait_all();
        aw_fence();
        const uint32_t kb = sK + stage * T_BYTES;
#pragma unroll
        for (int k = 0; k < NK; k++) aw_wgmma_rs_kn128(s, qf[k], aw_desc(kb + 256 * k, 128, RG), k > 0);
        aw_commit();
        // O to the previous tile's maxima while S is on the tensor cores, then that tile's P V
        rescale(alpha_prev);
        aw_pin(o);  // (else the multiplies may sink past the fence, and ptxas waits for S before the P V)
        aw_fence();
        pv(prev);
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");  // S done; P V may still run
        aw_pin(s);
        // the mask, branch-free (a data-dependent branch here made ptxas wait for the P V product before
        // the softmax, so the two did not overlap): per row, the visible keys of the tile are offsets
        // [a, b); a tile a warpgroup does not see, none. The branch around it is warp-uniform (shuffled).
        if (__shfl_sync(0xffffffffu, (int)(!active || need_mask), 0)) {
#pragma unroll
            for (int u = 0; u < 2; u++) {
                int a = window ? r_lo[u] - j0 : 0, b = window ? r_hi[u] - j0 : n_fixed - e0;
                if (!active) a = b = 0;
                // key offset 8 j + 2 tq + c is visible when (offset - a) < (b - a), unsigned
                const unsigned base = (unsigned)(2 * tq - a), width = (unsigned)max(b - a, 0);
#pragma unroll
                for (int j = 0; j < NS; j++)
#pragma unroll
                    for (int c = 0; c < 2; c++)
                        if (base + (unsigned)(8 * j + c) >= width) s[4 * j + 2 * u + c] = -INFINITY;
            }
        }
        // online softmax per row; a row's scores sit in the 4 lanes of a quad (xor 1, 2)
        float alpha[2];
#pragma unroll
        for (int u = 0; u < 2; u++) {
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < NS; j++) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * u], s[4 * j + 2 * u + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[u], mx);
            // a row with nothing visible yet keeps m = -inf; subtracting 0 then gives exp2(-inf) = 0
            const float mu = m_new == -INFINITY ? 0.0f : m_new;
            alpha[u] = tc_exp2(m[u] - mu);
            m[u] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < NS; j++) {
                const float p0 = tc_exp2(s[4 * j + 2 * u] - mu), p1 = tc_exp2(s[4 * j + 2 * u + 1] - mu);
                s[4 * j + 2 * u] = p0;
                s[4 * j + 2 * u + 1] = p1;
                sum += p0 + p1;
            }
            l[u] = l[u] * alpha[u] + sum;
        }
        aw_wait_all();  // the previous tile's P V
        aw_pin(o);
        if (it > 0) release(prev);
        // O (which holds every tile before t, at the previous maxima) goes to tile t's maxima in the next
        // iteration, while that one's S runs
        alpha_prev[0] = alpha[0];
        alpha_prev[1] = alpha[1];
        // P of this tile as A fragments: keys 16 kk.. are the S blocks 2 kk and 2 kk + 1
#pragma unroll
        for (int kk = 0; kk < AW_KT / 16; kk++) {
            pa[kk][0] = tc_pack(s[8 * kk + 0], s[8 * kk + 1]);
            pa[kk][1] = tc_pack(s[8 * kk + 2], s[8 * kk + 3]);
            pa[kk][2] = tc_pack(s[8 * kk + 4], s[8 * kk + 5]);
            pa[kk][3] = tc_pack(s[8 * kk + 6], s[8 * kk + 7]);
        }
        prev = stage;
    }
    if (t_end > t_begin) {  // (block-uniform) the last tile's P V (its stage is not reloaded: no tile follows)
        rescale(alpha_prev);
        aw_pin(o);
        aw_fence();
        pv(prev);
        aw_wait_all();
        aw_pin(o);
    }

#pragma unroll
    for (int u = 0; u < 2; u++) {
        l[u] += __shfl_xor_sync(0xffffffffu, l[u], 1);
        l[u] += __shfl_xor_sync(0xffffffffu, l[u], 2);
    }
#pragma unroll
    for (int u = 0; u < 2; u++) {
        const int r = qt * AW_BM + row_local(u);
        if (r >= n_rows) continue;
        const size_t qh = row_qh(r);
        if (P.n_split == 1) {
            const float inv = l[u] > 0.0f ? 1.0f / l[u] : 0.0f;
            float *dst = P.out + qh * P.hd;
#pragma unroll
            for (int dn = 0; dn < ND; dn++) {
                const int d = 8 * dn + 2 * tq;
                if (d < P.hd) *reinterpret_cast<float2 *>(dst + d) = make_float2(o[4 * dn + 2 * u] * inv, o[4 * dn + 2 * u + 1] * inv);
            }
        } else {
            const size_t pi = qh * P.n_split + split;
            float *dst = P.part_o + pi * HD;
#pragma unroll
            for (int dn = 0; dn < ND; dn++) {
                const int d = 8 * dn + 2 * tq;
                if (d < P.hd) *reinterpret_cast<float2 *>(dst + d) = make_float2(o[4 * dn + 2 * u], o[4 * dn + 2 * u + 1]);
            }
            if (tq == 0) { P.part_ml[2 * pi] = m[u]; P.part_ml[2 * pi + 1] = l[u]; }
        }
    }
}

template <int HD>
void aw_launch(const attn_tc_params &P, int n_head_kv, cudaStream_t stream) {
    const size_t smem = (size_t)(AW_BM + 2 * AW_STAGES * AW_KT) * HD * sizeof(__half);  // queries + K / V stages
    static bool configured = false;  // above 48 KiB of dynamic shared memory needs the opt-in
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(attention_wgmma_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    attention_wgmma_kernel<HD><<<dim3(P.n_qtiles, n_head_kv, P.n_split), AW_THREADS, smem, stream>>>(P);
}

}  // namespace

void cuda_attention_wgmma(const attn_tc_params &P, int HD, int n_head_kv, cudaStream_t stream) {
    if (HD == 64) aw_launch<64>(P, n_head_kv, stream);
    else if (HD == 128) aw_launch<128>(P, n_head_kv, stream);
    else fail(ENDLESS_ERR_INTERNAL, "cuda attention (wgmma): head dim " + std::to_string(HD) + " is not compiled");
    CUDA_CHECK_LAUNCH("attention (wgmma)");
}

}  // namespace endless
