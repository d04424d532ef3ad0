// Tensor element types as GGUF/ggml number them, their block layouts, and scalar conversions
// (fp16, bf16). Shared by the GGUF reader, the CPU kernels and the CUDA backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace endless {

enum ggml_type : uint32_t {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
};

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

typedef uint16_t fp16_t;  // IEEE half, stored as bits
typedef uint16_t bf16_t;  // bfloat16, stored as bits

#pragma pack(push, 1)
struct block_q8_0 {
    fp16_t d;          // scale
    int8_t qs[QK8_0];  // value = qs[i] * d
};
struct block_q4_0 {
    fp16_t d;                // scale
    uint8_t qs[QK4_0 / 2];   // low nibbles: values 0..15, high nibbles: 16..31; value = (q - 8) * d
};
struct block_q4_k {
    fp16_t d;                      // super-block scale for the quantized scales
    fp16_t dmin;                   // super-block scale for the quantized mins
    uint8_t scales[K_SCALE_SIZE];  // 8 sub-blocks: 6-bit scales and 6-bit mins, packed
    uint8_t qs[QK_K / 2];          // nibbles
};
struct block_q6_k {
    uint8_t ql[QK_K / 2];      // low 4 bits
    uint8_t qh[QK_K / 4];      // high 2 bits
    int8_t scales[QK_K / 16];  // 16 sub-blocks of 16, 8-bit scales
    fp16_t d;                  // super-block scale
};
#pragma pack(pop)
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 is 34 bytes");
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 is 18 bytes");
static_assert(sizeof(block_q4_k) == 144, "block_q4_k is 144 bytes");
static_assert(sizeof(block_q6_k) == 210, "block_q6_k is 210 bytes");

// Values per block and bytes per block; 0 for types the engine does not support.
struct ggml_type_traits {
    const char *name;
    int block_size;
    size_t type_size;
    bool supported;
};
const ggml_type_traits &ggml_type_info(uint32_t type);  // unknown ids get {"unknown",0,0,false}
inline bool ggml_type_supported(uint32_t type) { return ggml_type_info(type).supported; }
// Bytes of a row of n elements (n must be a multiple of the block size).
inline size_t ggml_row_size(uint32_t type, int64_t n) {
    const auto &t = ggml_type_info(type);
    return t.block_size ? (size_t)(n / t.block_size) * t.type_size : 0;
}

inline float fp32_from_bits(uint32_t w) { float f; std::memcpy(&f, &w, 4); return f; }
inline uint32_t fp32_to_bits(float f) { uint32_t w; std::memcpy(&w, &f, 4); return w; }

// IEEE half <-> float, exact for all finite values, inf and NaN.
inline float fp16_to_fp32(fp16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return fp32_from_bits(sign);
        // subnormal: normalize
        exp = 127 - 15 + 1;
        while (!(mant & 0x400)) { mant <<= 1; exp--; }
        mant &= 0x3ff;
        return fp32_from_bits(sign | (exp << 23) | (mant << 13));
    }
    if (exp == 31) return fp32_from_bits(sign | 0x7f800000 | (mant << 13));
    return fp32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}
// round to nearest even
inline fp16_t fp32_to_fp16(float f) {
    uint32_t x = fp32_to_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000;
    x &= 0x7fffffff;
    if (x >= 0x7f800000) return (fp16_t)(sign | 0x7c00 | (x > 0x7f800000 ? 0x200 : 0));
    if (x >= 0x477ff000) return (fp16_t)(sign | 0x7c00);  // overflow to inf
    if (x < 0x38800000) {  // subnormal or zero in half
        if (x < 0x33000000) return (fp16_t)sign;
        const uint32_t e = x >> 23;
        uint32_t m = (x & 0x7fffff) | 0x800000;
        const int shift = 126 - (int)e;  // 14..24
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (fp16_t)(sign | r);
    }
    uint32_t r = ((x >> 13) - ((127 - 15) << 10));
    const uint32_t rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (fp16_t)(sign | r);
}
inline float bf16_to_fp32(bf16_t h) { return fp32_from_bits((uint32_t)h << 16); }
inline bf16_t fp32_to_bf16(float f) {
    uint32_t x = fp32_to_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (bf16_t)((x >> 16) | 0x40);  // quiet NaN
    x += 0x7fff + ((x >> 16) & 1);
    return (bf16_t)(x >> 16);
}

}  // namespace endless
