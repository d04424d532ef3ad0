// Reference (plain C++) conversions of every supported tensor type: dequantize a row to f32,
// and quantize f32 to a type (used by tests and the round-trip checks, not on the hot path).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ggml_types.h"

namespace endless {

// n must be a multiple of the type's block size.
void dequantize_row(ggml_type type, const void *src, float *dst, int64_t n);
void quantize_row(ggml_type type, const float *src, void *dst, int64_t n);
// Reference dot product of a row of type `type` with f32 x (dequantize then multiply, in double).
double dot_row_reference(ggml_type type, const void *row, const float *x, int64_t n);

}  // namespace endless
