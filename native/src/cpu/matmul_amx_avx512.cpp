// Prefill (n >= 16) with Q8_0, Q4_0 and Q4_K weights on processors with AMX-INT8 (Intel
// Sapphire Rapids and later), chosen at run time on top of the AVX-512 kernel set. One tile
// multiply takes 16 weight rows x one 32-value block against the same block of 16 activation
// rows (16 x 16 x 32 multiply-adds); the int32 result is scaled per block in AVX-512 registers.
// Q8_0 weight rows are read in place (a tile load with the row stride, tdpbssd); Q4_0 and Q4_K
// rows are unpacked once per tile into unsigned 32-byte rows (tdpbusd), their offsets (-8,
// mins) applied through the activations' block sums. Activations are quantized straight into
// the tile layout AMX wants (AMX_BLOCK_BYTES in cpu_internal.h).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
// AMX instructions come from the file's compile flags (-mamx-tile -mamx-int8, native/CMakeLists.txt):
// a `#pragma GCC target` here makes g++ 13 refuse to inline standard-library code.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <sys/syscall.h>
#include <unistd.h>

#include "cpu/cpu_internal.h"
#include "ggml_types.h"

namespace endless {

namespace {

// The 64-byte tile configuration (palette 1): tile 0 = C (16 x 16 int32), tile 1 = A
// (16 weight rows x 32 int8), tile 2 = B (8 rows x 64 bytes: 16 activation rows x 4 int8).
struct amx_tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
static_assert(sizeof(amx_tile_config) == 64, "tile config is 64 bytes");

void amx_configure() {
    amx_tile_config cfg;
    std::memset(&cfg, 0, sizeof(cfg));
    cfg.palette_id = 1;
    cfg.rows[0] = 16; cfg.colsb[0] = 64;
    cfg.rows[1] = 16; cfg.colsb[1] = 32;
    cfg.rows[2] = 8;  cfg.colsb[2] = 64;
    _tile_loadconfig(&cfg);
}

}  // namespace

// Whether AMX-INT8 can be used: the processor has it, the OS saves tile state, and Linux
// grants this process the tile data permission (asked once).
bool cpu_amx_available() {
    static const bool ok = [] {
#if defined(__x86_64__)
        unsigned a, b, c, d;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
        if (a < 7) return false;
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
        const bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
        if (!tile || !int8) return false;
        unsigned xlo, xhi;
        __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
        if (((xlo >> 17) & 3) != 3) return false;  // XTILECFG and XTILEDATA enabled by the OS
        const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
        return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
        return false;
#endif
    }();
    return ok;
}

namespace {
// -1: not decided yet; ENDLESS_CPU_AMX=0 in the environment starts with AMX off
std::atomic<int> g_amx_enabled{-1};
}

bool cpu_amx_enabled() {
    int v = g_amx_enabled.load(std::memory_order_relaxed);
    if (v < 0) {
        const char *env = std::getenv("ENDLESS_CPU_AMX");
        v = env && std::strcmp(env, "0") == 0 ? 0 : 1;
        g_amx_enabled.store(v, std::memory_order_relaxed);
    }
    return v == 1 && cpu_amx_available();
}
void cpu_set_amx(bool on) { g_amx_enabled.store(on ? 1 : 0, std::memory_order_relaxed); }

// Quantizes one activation row into the AMX layout. `out` is the row's position inside its
// group of 16 (group base + 4 * (row % 16)); per block the group holds 512 bytes of B tile
// (8 rows of 64 bytes: 4 values of each of the 16 activation rows), 16 floats of dx and 16
// floats of dx * sum.
void amx_quant_row(const float *x, void *out, int64_t k) {
    uint8_t *o = (uint8_t *)out;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / 32; b++, x += 32) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const __m512 amax = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        const float m = _mm512_reduce_max_ps(amax);
        const __m512 id = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
        const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
        alignas(16) int32_t words[8];  // 8 groups of 4 values, one per B tile row
        _mm_store_si128((__m128i *)words, _mm512_cvtsepi32_epi8(i0));
        _mm_store_si128((__m128i *)(words + 4), _mm512_cvtsepi32_epi8(i1));
        uint8_t *blk = o + (size_t)b * AMX_BLOCK_BYTES;
        for (int kk = 0; kk < 8; kk++) std::memcpy(blk + 64 * kk, &words[kk], 4);
        const float d = m / 127.0f, s = d * (float)_mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        std::memcpy(blk + 512, &d, 4);
        std::memcpy(blk + 576, &s, 4);
    }
}

namespace {

// C (16 weight rows x 16 activation rows) over blocks [b0, b0 + nb) of one weight-row group.
// `a_rows` < 16 means a partial group: its blocks are copied into a zero-padded A tile.
void amx_block_16x16(const uint8_t *w_row0, size_t w_stride, int a_rows, const uint8_t *xg, int64_t b0, int64_t nb,
                     float *res /* [16 w][16 x] */) {
    __m512 acc[16];
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
    alignas(64) int32_t cbuf[16 * 16];
    alignas(64) int8_t apad[16 * 32];
    alignas(64) float dwv[16];
    if (a_rows < 16) std::memset(apad, 0, sizeof(apad));
    const __m512i gidx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)w_stride));
    const __mmask16 rows_mask = a_rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << a_rows) - 1);
    for (int64_t b = b0; b < b0 + nb; b++) {
        const block_q8_0 *wb = (const block_q8_0 *)w_row0 + b;  // row 0's block; row m is w_stride further
        _tile_zero(0);
        if (a_rows == 16) {
            _tile_loadd(1, wb->qs, (long)w_stride);
        } else {
            for (int m = 0; m < a_rows; m++)
                std::memcpy(apad + 32 * m, ((const block_q8_0 *)(w_row0 + m * w_stride) + b)->qs, 32);
            _tile_loadd(1, apad, 32);
        }
        const uint8_t *xb = xg + (size_t)(b - b0) * AMX_BLOCK_BYTES;
        _tile_loadd(2, xb, 64);
        _tile_dpbssd(0, 1, 2);
        _tile_stored(0, cbuf, 64);
        // the weight scales of the 16 rows (4 bytes read at each: d and two bytes of qs)
        const __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), rows_mask, gidx, (const void *)&wb->d, 1);
        _mm512_store_ps(dwv, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw)));
        const __m512 dx = _mm512_loadu_ps((const float *)(xb + 512));
        for (int m = 0; m < 16; m++) {
            const __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cbuf + 16 * m)));
            acc[m] = _mm512_fmadd_ps(c, _mm512_mul_ps(dx, _mm512_set1_ps(dwv[m])), acc[m]);
        }
    }
    for (int m = 0; m < 16; m++) _mm512_storeu_ps(res + 16 * m, acc[m]);
}

}  // namespace

// The tile: weight rows in groups of 16, activation rows in groups of 16 (the last one padded
// with zero rows by the quantizer's buffer).
void amx_tile_q8_0(const mm_tile &t) {
    amx_configure();
    const int64_t nb = t.k / 32, b0 = t.k_off / 32;
    const uint8_t *w0 = t.w;
    alignas(64) float res[16 * 16];
    for (int g = 0; g * 16 < t.nx; g++) {
        const uint8_t *xg = t.x + (size_t)g * t.x_stride;  // group g of this chunk, at block b0
        const int nxg = std::min(16, t.nx - 16 * g);
        for (int64_t r = t.r0; r < t.r1; r += 16) {
            const int rows = (int)std::min<int64_t>(16, t.r1 - r);
            amx_block_16x16(w0 + r * t.w_stride, t.w_stride, rows, xg + (size_t)b0 * AMX_BLOCK_BYTES, b0, nb, res);
            for (int m = 0; m < rows; m++)
                for (int n = 0; n < nxg; n++) mm_store(t, r + m, 16 * g + n, res[16 * m + n]);
        }
    }
    _tile_release();
}

namespace {

// Weights unpacked to unsigned bytes, 32 values per A tile row, with per (row, 32-block) scale
// ws and offset weight wm: value = ws * q - wm, q in 0..15.
struct amx_unpack_q4_0 {
    typedef block_q4_0 block;
    static constexpr int values = 32;
    static void unpack(const block &b, uint8_t *a /* 1 x 32 */, float *ws, float *wm, int, int) {
        const __m128i raw = _mm_loadu_si128((const __m128i *)b.qs), m = _mm_set1_epi8(15);
        _mm_storeu_si128((__m128i *)a, _mm_and_si128(raw, m));
        _mm_storeu_si128((__m128i *)(a + 16), _mm_and_si128(_mm_srli_epi16(raw, 4), m));
        const float d = _cvtsh_ss(b.d);
        ws[0] = d;
        wm[0] = 8.0f * d;
    }
};
struct amx_unpack_q4_k {
    typedef block_q4_k block;
    static constexpr int values = 256;
    // sub-block j's 32 bytes go to a + j * stride; its scale and offset to ws[j * sstride], wm[j * sstride]
    static void unpack(const block &b, uint8_t *a, float *ws, float *wm, int stride, int sstride) {
        const uint8_t *s = b.scales;
        const float d = _cvtsh_ss(b.d), dmin = _cvtsh_ss(b.dmin);
        for (int q = 0; q < 4; q++) {
            ws[sstride * q] = d * (float)(s[q] & 63);
            wm[sstride * q] = dmin * (float)(s[q + 4] & 63);
            ws[sstride * (q + 4)] = d * (float)((s[q + 8] & 15) | ((s[q] >> 6) << 4));
            wm[sstride * (q + 4)] = dmin * (float)((s[q + 8] >> 4) | ((s[q + 4] >> 6) << 4));
        }
        const __m256i m4 = _mm256_set1_epi8(15);
        for (int c = 0; c < 4; c++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(b.qs + 32 * c));
            _mm256_storeu_si256((__m256i *)(a + (size_t)(2 * c) * stride), _mm256_and_si256(raw, m4));
            _mm256_storeu_si256((__m256i *)(a + (size_t)(2 * c + 1) * stride), _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4));
        }
    }
};

// The tile for unpacked weights. Per group of 16 weight rows the panel holds, for each 32-value
// block of the slice, a 16 x 32 A tile (512 bytes), and the scales hold a 32-float record:
// ws of the 16 rows, then wm.
template <typename U>
void amx_tile_unpacked(const mm_tile &t) {
    typedef typename U::block block;
    constexpr int SUB = U::values / 32;  // 32-value blocks per weight block
    const int64_t nwb = t.k / U::values, wb0 = t.k_off / U::values;  // weight blocks of the slice
    const int64_t nsub = nwb * SUB;                                     // 32-value blocks
    const int rows_total = (int)(t.r1 - t.r0), n_wg = (rows_total + 15) / 16;
    static thread_local std::vector<uint8_t> panel;
    static thread_local std::vector<float> scales;
    const size_t a_bytes = (size_t)n_wg * nsub * 512, s_floats = (size_t)n_wg * nsub * 32;
    if (panel.size() < a_bytes) panel.resize(a_bytes);
    if (scales.size() < s_floats) scales.resize(s_floats);
    for (int wg = 0; wg < n_wg; wg++) {
        uint8_t *pa = panel.data() + (size_t)wg * nsub * 512;
        float *ps = scales.data() + (size_t)wg * nsub * 32;
        const int rows = std::min(16, rows_total - 16 * wg);
        if (rows < 16) {  // padding rows: zero values and scales
            std::memset(pa, 0, (size_t)nsub * 512);
            std::memset(ps, 0, (size_t)nsub * 32 * sizeof(float));
        }
        for (int m = 0; m < rows; m++) {
            const block *wr = (const block *)(t.w + (t.r0 + 16 * wg + m) * t.w_stride) + wb0;
            for (int64_t b = 0; b < nwb; b++) {
                const int64_t j0 = b * SUB;  // first 32-value block of this weight block
                U::unpack(wr[b], pa + (size_t)j0 * 512 + 32 * m, ps + (size_t)j0 * 32 + m, ps + (size_t)j0 * 32 + 16 + m, 512, 32);
            }
        }
    }
    amx_configure();
    const int64_t xb0 = t.k_off / 32;
    alignas(64) int32_t cbuf[16 * 16];
    alignas(64) float res[16 * 16];
    for (int g = 0; g * 16 < t.nx; g++) {
        const uint8_t *xg = t.x + (size_t)g * t.x_stride + (size_t)xb0 * AMX_BLOCK_BYTES;
        const int nxg = std::min(16, t.nx - 16 * g);
        for (int wg = 0; wg < n_wg; wg++) {
            const uint8_t *pa = panel.data() + (size_t)wg * nsub * 512;
            const float *ps = scales.data() + (size_t)wg * nsub * 32;
            __m512 acc[16];
            for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
            for (int64_t j = 0; j < nsub; j++) {
                const uint8_t *xb = xg + (size_t)j * AMX_BLOCK_BYTES;
                _tile_zero(0);
                _tile_loadd(1, pa + (size_t)j * 512, 32);
                _tile_loadd(2, xb, 64);
                _tile_dpbusd(0, 1, 2);
                _tile_stored(0, cbuf, 64);
                const __m512 dx = _mm512_loadu_ps((const float *)(xb + 512)), sx = _mm512_loadu_ps((const float *)(xb + 576));
                const float *ws = ps + (size_t)j * 32, *wm = ws + 16;
                for (int m = 0; m < 16; m++) {
                    const __m512 c = _mm512_cvtepi32_ps(_mm512_load_si512((const void *)(cbuf + 16 * m)));
                    acc[m] = _mm512_fmadd_ps(c, _mm512_mul_ps(dx, _mm512_set1_ps(ws[m])), acc[m]);
                    acc[m] = _mm512_fnmadd_ps(_mm512_set1_ps(wm[m]), sx, acc[m]);
                }
            }
            for (int m = 0; m < 16; m++) _mm512_store_ps(res + 16 * m, acc[m]);
            const int rows = std::min(16, rows_total - 16 * wg);
            for (int m = 0; m < rows; m++)
                for (int n = 0; n < nxg; n++) mm_store(t, t.r0 + 16 * wg + m, 16 * g + n, res[16 * m + n]);
        }
    }
    _tile_release();
}

}  // namespace

void amx_tile_q4_0(const mm_tile &t) { amx_tile_unpacked<amx_unpack_q4_0>(t); }
void amx_tile_q4_k(const mm_tile &t) { amx_tile_unpacked<amx_unpack_q4_k>(t); }

}  // namespace endless
