// Tensor-core matrix product for prefill: 128x128 output tiles, K in steps of 32, mma.sync
// m16n8k16 with fp32 accumulation, fragments through ldmatrix from padded (conflict-free)
// shared memory, double buffered with one barrier per step.
//
// Operands are 16-bit: BF16 weights run in bf16; every other type is decoded tile by tile into
// f16 in shared memory (never a dequantized copy of the matrix). The activations are converted
// once per call into a scratch copy: bf16 for BF16 weights, f16 otherwise, each token's row
// scaled down if its largest magnitude would come near f16's range (and scaled back on output).
// In the backend's precise mode, F16/BF16 products match fp32 (the weights are exact in 16 bits,
// so only the activations lose precision): the activations are split into a high and a low
// 16-bit part, x = hi + lo, and both are multiplied (twice the tensor work; error ~1e-6 instead
// of ~1e-3). By default, and always for quantized weights (which carry more error than that),
// one part.
#include "matmul_mma.cuh"
#include "cuda_common.cuh"


namespace endless {

namespace {

constexpr int BM = 128, BN = 128, BK = 32, PAD = 8, LDS = BK + PAD;  // LDS: halves per smem row
constexpr int THREADS = 256;
constexpr float F16_SAFE = 8192.0f;  // token rows are scaled so |x| <= this before f16 conversion

template <bool BF> struct mma_t;
template <> struct mma_t<false> {
    static __device__ __forceinline__ uint32_t pack(float a, float b) {
        __half2 h = __floats2half2_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};
template <> struct mma_t<true> {
    static __device__ __forceinline__ uint32_t pack(float a, float b) {
        __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
        return *reinterpret_cast<uint32_t *>(&h);
    }
};

// x [n, K] f32 -> xh [n, K] 16-bit (and the remainder xl when split), inv_scale[n]. One block per row.
template <bool BF> __device__ __forceinline__ float2 mma_unpack(uint32_t w);
template <> __device__ __forceinline__ float2 mma_unpack<false>(uint32_t w) { return dev_half2_to_f32(w); }
template <> __device__ __forceinline__ float2 mma_unpack<true>(uint32_t w) { return dev_bf162_to_f32(w); }

template <bool BF>
__global__ void mma_convert_x_kernel(const float *x, int64_t K, uint32_t *xh, uint32_t *xl, float *inv_scale) {
    const int i = blockIdx.x;
    const float *xr = x + (size_t)i * K;
    float scale = 1.0f;
    if (!BF) {
        float m = 0.0f;
        for (int64_t k = threadIdx.x; k < K; k += blockDim.x) m = fmaxf(m, fabsf(xr[k]));
        __shared__ float red[32];
        m = warp_max(m);
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
        __syncthreads();
        if (threadIdx.x < 32) {
            float v = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f;
            v = warp_max(v);
            if (threadIdx.x == 0) red[0] = v;
        }
        __syncthreads();
        m = red[0];
        if (m > F16_SAFE) scale = F16_SAFE / m;
    }
    if (threadIdx.x == 0) inv_scale[i] = 1.0f / scale;
    uint32_t *o = xh + (size_t)i * K / 2;
    uint32_t *ol = xl ? xl + (size_t)i * K / 2 : nullptr;
    for (int64_t k = threadIdx.x; k < K / 2; k += blockDim.x) {
        const float a = xr[2 * k] * scale, b = xr[2 * k + 1] * scale;
        const uint32_t hi = mma_t<BF>::pack(a, b);
        o[k] = hi;
        if (ol) {
            const float2 h = mma_unpack<BF>(hi);
            ol[k] = mma_t<BF>::pack(a - h.x, b - h.y);
        }
    }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

template <bool BF>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if (BF) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// 16 weight values of row `row` (or zeros past M) at k0, packed as 8 words of 16-bit pairs.
template <bool BF>
__device__ __forceinline__ void mma_load_a(ggml_type type, const uint8_t *W, size_t row_bytes, int64_t M,
                                           int64_t row, int64_t k0, uint4 (&out)[2]) {
    if (row >= M) { out[0] = out[1] = make_uint4(0, 0, 0, 0); return; }
    const uint8_t *wr = W + (size_t)row * row_bytes;
    if ((BF && type == GGML_TYPE_BF16) || (!BF && type == GGML_TYPE_F16)) {
        const uint4 *p = reinterpret_cast<const uint4 *>(wr + k0 * 2);
        out[0] = __ldg(p); out[1] = __ldg(p + 1);
        return;
    }
    float v[16];
    dev_dequant16(type, wr, k0, v);
    uint32_t *o = reinterpret_cast<uint32_t *>(out);
#pragma unroll
    for (int j = 0; j < 8; j++) o[j] = mma_t<BF>::pack(v[2 * j], v[2 * j + 1]);
}

template <bool BF, bool SPLIT, int MINB>
__global__ void __launch_bounds__(THREADS, MINB) matmul_mma_kernel(ggml_type type, const uint8_t *W, size_t row_bytes,
                                                                 const uint16_t *xh, const uint16_t *xl, const float *inv_scale,
                                                                 float *y, int64_t M, int64_t K, int n) {
    constexpr int NP = SPLIT ? 2 : 1;  // activation parts
    extern __shared__ __align__(16) uint8_t mma_smem[];
    auto sA = reinterpret_cast<uint16_t (*)[BM][LDS]>(mma_smem);                            // [2][BM][LDS]
    auto sB = reinterpret_cast<uint16_t (*)[NP][BN][LDS]>(mma_smem + 2 * BM * LDS * 2);     // [2][NP][BN][LDS]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp & 1, wn = warp >> 1;  // warp tile: 64 rows of W x 32 tokens
    const int64_t m0 = (int64_t)blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int lrow = tid >> 1, lk = (tid & 1) * 16;  // this thread's 16 values of the A and B tiles

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][j][c] = 0.0f;

    uint4 ra[2] = {}, rb[NP][2] = {};
    auto load_b = [&](int64_t k0) {
        const int tok = n0 + lrow;
#pragma unroll
        for (int part = 0; part < NP; part++) {
            if (tok < n) {
                const uint4 *p = reinterpret_cast<const uint4 *>((part ? xl : xh) + (size_t)tok * K + k0 + lk);
                rb[part][0] = __ldg(p); rb[part][1] = __ldg(p + 1);
            } else {
                rb[part][0] = rb[part][1] = make_uint4(0, 0, 0, 0);
            }
        }
    };
    auto store = [&](int buf) {
        uint4 *a = reinterpret_cast<uint4 *>(&sA[buf][lrow][lk]);
        a[0] = ra[0]; a[1] = ra[1];
#pragma unroll
        for (int part = 0; part < NP; part++) {
            uint4 *b = reinterpret_cast<uint4 *>(&sB[buf][part][lrow][lk]);
            b[0] = rb[part][0]; b[1] = rb[part][1];
        }
    };

    const int64_t n_k = K / BK;
    mma_load_a<BF>(type, W, row_bytes, M, m0 + lrow, lk, ra);
    load_b(0);
    store(0);
    __syncthreads();
    for (int64_t kt = 0; kt < n_k; kt++) {
        const int buf = (int)(kt & 1);
        const bool more = kt + 1 < n_k;
        if (more) load_b((kt + 1) * BK);  // in flight during the products below
        if (more) mma_load_a<BF>(type, W, row_bytes, M, m0 + lrow, (kt + 1) * BK + lk, ra);
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            uint32_t af[4][4];
#pragma unroll
            for (int i = 0; i < 4; i++)
                ldmatrix_x4(af[i], &sA[buf][wm * 64 + i * 16 + (lane & 15)][ks + (lane >> 4) * 8]);
#pragma unroll
            for (int part = 0; part < NP; part++) {
                uint32_t bf[2][4];
#pragma unroll
                for (int j = 0; j < 2; j++)
                    ldmatrix_x4(bf[j], &sB[buf][part][wn * 32 + j * 16 + (lane & 7) + ((lane >> 4) << 3)][ks + ((lane >> 3) & 1) * 8]);
#pragma unroll
                for (int i = 0; i < 4; i++)
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        mma16816<BF>(acc[i][j], af[i], bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
            }
        }
        if (more) store(buf ^ 1);
        __syncthreads();
    }

    // c0,c1: row lane/4, tokens 2*(lane%4)+{0,1}; c2,c3: row lane/4 + 8
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t r = m0 + wm * 64 + i * 16 + (lane >> 2);
            const int t = n0 + wn * 32 + j * 8 + (lane & 3) * 2;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                const int64_t rr = r + (c >> 1) * 8;
                const int tt = t + (c & 1);
                if (rr < M && tt < n) y[(size_t)tt * M + rr] = acc[i][j][c] * inv_scale[tt];
            }
        }
    }
}

}  // namespace

bool cuda_mma_supported(const weight &w) {
    switch (w.type) {
    case GGML_TYPE_F16: case GGML_TYPE_BF16: case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K:
        return w.ne0 % BK == 0 && ((uintptr_t)w.data % 16) == 0;
    default:
        return false;
    }
}

namespace {
bool mma_split(const weight &w, bool precise) { return precise && (w.type == GGML_TYPE_F16 || w.type == GGML_TYPE_BF16); }
size_t mma_part_bytes(const weight &w, int n) { return ((size_t)n * (size_t)w.ne0 * 2 + 15) / 16 * 16; }

template <bool BF, bool SPLIT, int MINB>
void mma_launch_k(const weight &w, const uint16_t *xh, const uint16_t *xl, const float *inv_scale, float *y, int n,
                  cudaStream_t stream) {
    constexpr size_t smem = (size_t)2 * BM * LDS * 2 + (size_t)2 * (SPLIT ? 2 : 1) * BN * LDS * 2;
    static bool configured = false;
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(matmul_mma_kernel<BF, SPLIT, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const dim3 grid(cuda_blocks((size_t)w.ne1, BM), cuda_blocks((size_t)n, BN));
    matmul_mma_kernel<BF, SPLIT, MINB><<<grid, THREADS, smem, stream>>>(w.type, (const uint8_t *)w.data, cuda_row_bytes(w.type, w.ne0),
                                                                        xh, xl, inv_scale, y, w.ne1, w.ne0, n);
}
// Compiled for 2 blocks per multiprocessor (128 registers): as fast as or faster than 1 block
// (~154 registers) on an H100 (NOTES.md, 2026-11-26 08:09).
template <bool BF, bool SPLIT>
void mma_launch(const weight &w, const uint16_t *xh, const uint16_t *xl, const float *inv_scale, float *y, int n,
                cudaStream_t stream) {
    mma_launch_k<BF, SPLIT, 2>(w, xh, xl, inv_scale, y, n, stream);
}
}  // namespace

size_t cuda_mma_scratch_bytes(const weight &w, int n, bool precise) {
    return mma_part_bytes(w, n) * (mma_split(w, precise) ? 2 : 1) + (size_t)n * 4 + 16;
}

void cuda_matmul_mma(const weight &w, const float *x, int n, float *y, void *scratch, bool precise, cudaStream_t stream) {
    const int64_t K = w.ne0;
    const bool split = mma_split(w, precise), bf = w.type == GGML_TYPE_BF16;
    uint16_t *xh = (uint16_t *)scratch;
    uint16_t *xl = split ? (uint16_t *)((uint8_t *)scratch + mma_part_bytes(w, n)) : nullptr;
    float *inv_scale = (float *)((uint8_t *)scratch + mma_part_bytes(w, n) * (split ? 2 : 1));
    if (bf) mma_convert_x_kernel<true><<<n, 256, 0, stream>>>(x, K, (uint32_t *)xh, (uint32_t *)xl, inv_scale);
    else mma_convert_x_kernel<false><<<n, 256, 0, stream>>>(x, K, (uint32_t *)xh, (uint32_t *)xl, inv_scale);
    CUDA_CHECK_LAUNCH("matmul_mma convert");
    if (bf && split) mma_launch<true, true>(w, xh, xl, inv_scale, y, n, stream);
    else if (bf) mma_launch<true, false>(w, xh, xl, inv_scale, y, n, stream);
    else if (split) mma_launch<false, true>(w, xh, xl, inv_scale, y, n, stream);
    else mma_launch<false, false>(w, xh, xl, inv_scale, y, n, stream);
    CUDA_CHECK_LAUNCH("matmul_mma");
}

}  // namespace endless
