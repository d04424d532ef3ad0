// The table of ggml tensor types: name, values per block and bytes per block, and whether the
// engine's kernels can run it. Known-but-unsupported types keep their true sizes so that the
// GGUF reader can name them in its errors and still compute their byte extents.
#include "ggml_types.h"

namespace endless {

const ggml_type_traits &ggml_type_info(uint32_t type) {
    // Sizes follow ggml's block layouts (a few f16 scales plus packed quants per block).
    static const ggml_type_traits f32{"f32", 1, 4, true};
    static const ggml_type_traits f16{"f16", 1, 2, true};
    static const ggml_type_traits bf16{"bf16", 1, 2, true};
    static const ggml_type_traits q4_0{"q4_0", QK4_0, sizeof(block_q4_0), true};  // 18
    static const ggml_type_traits q4_1{"q4_1", 32, 20, false};    // d, m (f16) + 16 nibble bytes
    static const ggml_type_traits q5_0{"q5_0", 32, 22, false};    // d + 4 high-bit bytes + 16
    static const ggml_type_traits q5_1{"q5_1", 32, 24, false};    // d, m + 4 + 16
    static const ggml_type_traits q8_0{"q8_0", QK8_0, sizeof(block_q8_0), true};  // 34
    static const ggml_type_traits q8_1{"q8_1", 32, 36, false};    // d, s (f16) + 32 int8
    static const ggml_type_traits q2_k{"q2_K", QK_K, 84, false};  // 16 scales + 64 quants + d, dmin
    static const ggml_type_traits q3_k{"q3_K", QK_K, 110, false}; // 32 hmask + 64 + 12 scales + d
    static const ggml_type_traits q4_k{"q4_K", QK_K, sizeof(block_q4_k), true};   // 144
    static const ggml_type_traits q5_k{"q5_K", QK_K, 176, false}; // d, dmin + 12 + 32 qh + 128 qs
    static const ggml_type_traits q6_k{"q6_K", QK_K, sizeof(block_q6_k), true};   // 210
    static const ggml_type_traits q8_k{"q8_K", QK_K, 292, false}; // f32 d + 256 int8 + 16 i16 sums
    static const ggml_type_traits unknown{"unknown", 0, 0, false};
    switch (type) {
    case GGML_TYPE_F32: return f32;
    case GGML_TYPE_F16: return f16;
    case GGML_TYPE_BF16: return bf16;
    case GGML_TYPE_Q4_0: return q4_0;
    case GGML_TYPE_Q4_1: return q4_1;
    case GGML_TYPE_Q5_0: return q5_0;
    case GGML_TYPE_Q5_1: return q5_1;
    case GGML_TYPE_Q8_0: return q8_0;
    case GGML_TYPE_Q8_1: return q8_1;
    case GGML_TYPE_Q2_K: return q2_k;
    case GGML_TYPE_Q3_K: return q3_k;
    case GGML_TYPE_Q4_K: return q4_k;
    case GGML_TYPE_Q5_K: return q5_k;
    case GGML_TYPE_Q6_K: return q6_k;
    case GGML_TYPE_Q8_K: return q8_k;
    default: return unknown;
    }
}

}  // namespace endless
