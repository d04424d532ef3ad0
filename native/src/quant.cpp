// Reference (plain C++) conversions between f32 and every tensor type the engine runs:
// F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, with ggml's block semantics. These define what the
// fast kernels in src/cpu must compute; tests compare against them. The quantizers are simple
// (min/max based, no error search): they only have to produce valid blocks for tests and tools.
#include "quant.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "error.h"

namespace endless {

namespace {

int quant_block_size(ggml_type type) {
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: return 1;
    case GGML_TYPE_Q8_0: return QK8_0;
    case GGML_TYPE_Q4_0: return QK4_0;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K: return QK_K;
    default:
        fail(ENDLESS_ERR_UNSUPPORTED, "quant: unsupported tensor type " + std::to_string((unsigned)type));
    }
}

void quant_check_length(ggml_type type, int64_t n) {
    const int bs = quant_block_size(type);
    if (n < 0 || n % bs != 0)
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "quant: row length " + std::to_string(n) +
             " is not a multiple of the block size " + std::to_string(bs) + " of type " +
             std::to_string((unsigned)type));
}

// Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes: bytes 0..3 hold scales 0..3
// (low 6 bits) and the top 2 bits of scales 4..7; bytes 4..7 the same for mins; bytes 8..11
// hold the low 4 bits of scales 4..7 (low nibble) and mins 4..7 (high nibble).
inline void q4k_unpack_scale_min(const uint8_t *s, int j, int &sc, int &m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void q4k_pack_scale_min(const int *sc, const int *m, uint8_t *s) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
    }
}

void dequantize_q8_0(const block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

void dequantize_q4_0(const block_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[i * QK4_0 + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            y[i * QK4_0 + j + QK4_0 / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

// Sub-block j (32 values, in order) of a Q4_K block: nibbles of qs[32*(j/2) ..], low nibbles
// for even j, high nibbles for odd j.
void dequantize_q4_k(const block_q4_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4k_unpack_scale_min(b[i].scales, j, sc, m);
            const float ds = d * (float)sc, dm = dmin * (float)m;
            const uint8_t *q = b[i].qs + 32 * (j / 2);
            const int shift = (j & 1) * 4;
            for (int l = 0; l < 32; l++) y[i * QK_K + 32 * j + l] = ds * (float)((q[l] >> shift) & 0x0f) - dm;
        }
    }
}

// Q6_K: two halves of 128 values; in half h, value 32*k + l (k = 0..3, l = 0..31) takes its low
// 4 bits from ql[64h + l + 32*(k&1)] (low nibble for k < 2, high for k >= 2) and its high 2 bits
// from bits 2k..2k+1 of qh[32h + l]. Scale i covers values 16i..16i+15.
inline int q6k_get(const block_q6_k &b, int idx) {
    const int h = idx / 128, r = idx % 128, k = r / 32, l = r % 32;
    const uint8_t lo = b.ql[64 * h + l + 32 * (k & 1)];
    const int low4 = k < 2 ? (lo & 0x0f) : (lo >> 4);
    const int high2 = (b.qh[32 * h + l] >> (2 * k)) & 3;
    return (low4 | (high2 << 4)) - 32;
}

void dequantize_q6_k(const block_q6_k *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_fp32(b[i].d);
        for (int idx = 0; idx < QK_K; idx++)
            y[i * QK_K + idx] = d * (float)b[i].scales[idx / 16] * (float)q6k_get(b[i], idx);
    }
}

void quantize_q8_0(const float *x, block_q8_0 *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0;
        for (int j = 0; j < QK8_0; j++) amax = std::max(amax, std::fabs(x[i * QK8_0 + j]));
        const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++) b[i].qs[j] = (int8_t)std::lrintf(x[i * QK8_0 + j] * id);
    }
}

// The value of largest magnitude maps to -8 (the full negative range), as ggml does.
void quantize_q4_0(const float *x, block_q4_0 *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < QK4_0; j++) {
            const float v = x[i * QK4_0 + j];
            if (std::fabs(v) > amax) { amax = std::fabs(v); vmax = v; }
        }
        const float d = vmax / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int q0 = std::min(15, std::max(0, (int)std::lrintf(x[i * QK4_0 + j] * id) + 8));
            const int q1 = std::min(15, std::max(0, (int)std::lrintf(x[i * QK4_0 + j + QK4_0 / 2] * id) + 8));
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

void quantize_q4_k(const float *x, block_q4_k *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK_K;
        float scale[8], minv[8];  // per sub-block: value = scale*q - minv, q in 0..15
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            float lo = xb[32 * j], hi = xb[32 * j];
            for (int l = 1; l < 32; l++) { lo = std::min(lo, xb[32 * j + l]); hi = std::max(hi, xb[32 * j + l]); }
            lo = std::min(lo, 0.0f);  // mins are stored as non-negative offsets
            scale[j] = (hi - lo) / 15.0f;
            minv[j] = -lo;
            max_scale = std::max(max_scale, scale[j]);
            max_min = std::max(max_min, minv[j]);
        }
        const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
        b[i].d = fp32_to_fp16(d);
        b[i].dmin = fp32_to_fp16(dmin);
        const float dq = fp16_to_fp32(b[i].d), dminq = fp16_to_fp32(b[i].dmin);
        int sc[8], m[8];
        for (int j = 0; j < 8; j++) {
            sc[j] = dq > 0 ? std::min(63, (int)std::lrintf(scale[j] / dq)) : 0;
            m[j] = dminq > 0 ? std::min(63, (int)std::lrintf(minv[j] / dminq)) : 0;
        }
        q4k_pack_scale_min(sc, m, b[i].scales);
        for (int j = 0; j < 8; j++) {
            const float ds = dq * (float)sc[j], dm = dminq * (float)m[j];
            const float ids = ds > 0 ? 1.0f / ds : 0.0f;
            uint8_t *q = b[i].qs + 32 * (j / 2);
            for (int l = 0; l < 32; l++) {
                const int v = std::min(15, std::max(0, (int)std::lrintf((xb[32 * j + l] + dm) * ids)));
                if (j & 1) q[l] = (uint8_t)((q[l] & 0x0f) | (v << 4));
                else q[l] = (uint8_t)v;
            }
        }
    }
}

void quantize_q6_k(const float *x, block_q6_k *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QK_K;
        float scale[16], max_scale = 0;
        for (int s = 0; s < 16; s++) {
            float amax = 0;
            for (int l = 0; l < 16; l++) amax = std::max(amax, std::fabs(xb[16 * s + l]));
            scale[s] = amax / 31.0f;
            max_scale = std::max(max_scale, scale[s]);
        }
        const float d = max_scale / 127.0f;
        b[i].d = fp32_to_fp16(d);
        const float dq = fp16_to_fp32(b[i].d);
        int q[QK_K];
        for (int s = 0; s < 16; s++) {
            const int sc = dq > 0 ? std::min(127, (int)std::lrintf(scale[s] / dq)) : 0;
            b[i].scales[s] = (int8_t)sc;
            const float ds = dq * (float)sc, ids = ds > 0 ? 1.0f / ds : 0.0f;
            for (int l = 0; l < 16; l++)
                q[16 * s + l] = std::min(31, std::max(-32, (int)std::lrintf(xb[16 * s + l] * ids))) + 32;
        }
        std::fill(b[i].ql, b[i].ql + QK_K / 2, 0);
        std::fill(b[i].qh, b[i].qh + QK_K / 4, 0);
        for (int idx = 0; idx < QK_K; idx++) {
            const int h = idx / 128, r = idx % 128, k = r / 32, l = r % 32;
            uint8_t &lo = b[i].ql[64 * h + l + 32 * (k & 1)];
            lo |= (uint8_t)((q[idx] & 0x0f) << (k < 2 ? 0 : 4));
            b[i].qh[32 * h + l] |= (uint8_t)((q[idx] >> 4) << (2 * k));
        }
    }
}

}  // namespace

void dequantize_row(ggml_type type, const void *src, float *dst, int64_t n) {
    quant_check_length(type, n);
    switch (type) {
    case GGML_TYPE_F32: std::copy((const float *)src, (const float *)src + n, dst); break;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_fp32(((const fp16_t *)src)[i]);
        break;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_fp32(((const bf16_t *)src)[i]);
        break;
    case GGML_TYPE_Q8_0: dequantize_q8_0((const block_q8_0 *)src, dst, n / QK8_0); break;
    case GGML_TYPE_Q4_0: dequantize_q4_0((const block_q4_0 *)src, dst, n / QK4_0); break;
    case GGML_TYPE_Q4_K: dequantize_q4_k((const block_q4_k *)src, dst, n / QK_K); break;
    case GGML_TYPE_Q6_K: dequantize_q6_k((const block_q6_k *)src, dst, n / QK_K); break;
    default: break;  // quant_check_length rejected it
    }
}

void quantize_row(ggml_type type, const float *src, void *dst, int64_t n) {
    quant_check_length(type, n);
    switch (type) {
    case GGML_TYPE_F32: std::copy(src, src + n, (float *)dst); break;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) ((fp16_t *)dst)[i] = fp32_to_fp16(src[i]);
        break;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) ((bf16_t *)dst)[i] = fp32_to_bf16(src[i]);
        break;
    case GGML_TYPE_Q8_0: quantize_q8_0(src, (block_q8_0 *)dst, n / QK8_0); break;
    case GGML_TYPE_Q4_0: quantize_q4_0(src, (block_q4_0 *)dst, n / QK4_0); break;
    case GGML_TYPE_Q4_K: quantize_q4_k(src, (block_q4_k *)dst, n / QK_K); break;
    case GGML_TYPE_Q6_K: quantize_q6_k(src, (block_q6_k *)dst, n / QK_K); break;
    default: break;
    }
}

double dot_row_reference(ggml_type type, const void *row, const float *x, int64_t n) {
    quant_check_length(type, n);
    const int64_t chunk = 4096;  // dequantize piecewise: no allocation proportional to n
    float buf[4096];
    const int bs = quant_block_size(type);
    size_t block_bytes = 0;
    switch (type) {
    case GGML_TYPE_F32: block_bytes = 4; break;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: block_bytes = 2; break;
    case GGML_TYPE_Q8_0: block_bytes = sizeof(block_q8_0); break;
    case GGML_TYPE_Q4_0: block_bytes = sizeof(block_q4_0); break;
    case GGML_TYPE_Q4_K: block_bytes = sizeof(block_q4_k); break;
    case GGML_TYPE_Q6_K: block_bytes = sizeof(block_q6_k); break;
    default: break;
    }
    double sum = 0;
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        const int64_t len = std::min(chunk, n - i0);
        dequantize_row(type, (const uint8_t *)row + (size_t)(i0 / bs) * block_bytes, buf, len);
        for (int64_t i = 0; i < len; i++) sum += (double)buf[i] * (double)x[i0 + i];
    }
    return sum;
}

}  // namespace endless
