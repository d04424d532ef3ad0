// Prefill (n >= 16) with Q8_0 weights on processors with AMX-INT8 (Intel Sapphire Rapids and
// later), chosen at run time on top of the AVX-512 kernel set. One tdpbssd multiplies a tile of
// 16 weight rows x one 32-value block by a tile of the same block of 16 activation rows
// (16 x 16 x 32 multiply-adds); the int32 result is scaled by dw * dx per block in AVX-512
// registers. Weight rows are read in place (a tile load with the row stride); activations are
// quantized straight into the tile layout AMX wants (act_q8_0_amx below).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#pragma GCC target("amx-tile,amx-int8")
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

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
// (8 rows of 64 bytes: 4 values of each of the 16 activation rows) and then 16 floats of dx.
void amx_quant_q8_0(const float *x, void *out, int64_t k) {
    uint8_t *o = (uint8_t *)out;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / 32; b++, x += 32) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const __m512 amax = _mm512_max_ps(_mm512_andnot_ps(sign, v0), _mm512_andnot_ps(sign, v1));
        const float m = _mm512_reduce_max_ps(amax);
        const __m512 id = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
        const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)));
        const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)));
        alignas(16) int32_t words[8];  // 8 groups of 4 values, one per B tile row
        _mm_store_si128((__m128i *)words, q0);
        _mm_store_si128((__m128i *)(words + 4), q1);
        uint8_t *blk = o + (size_t)b * AMX_Q8_0_BLOCK_BYTES;
        for (int kk = 0; kk < 8; kk++) std::memcpy(blk + 64 * kk, &words[kk], 4);
        const float d = m / 127.0f;
        std::memcpy(blk + 512, &d, 4);
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
        const uint8_t *xb = xg + (size_t)(b - b0) * AMX_Q8_0_BLOCK_BYTES;
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
            amx_block_16x16(w0 + r * t.w_stride, t.w_stride, rows, xg + (size_t)b0 * AMX_Q8_0_BLOCK_BYTES, b0, nb, res);
            for (int m = 0; m < rows; m++)
                for (int n = 0; n < nxg; n++) mm_store(t, r + m, 16 * g + n, res[16 * m + n]);
        }
    }
    _tile_release();
}

}  // namespace endless
