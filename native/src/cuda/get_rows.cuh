// get_rows: out[n, w.ne0] = rows ids[i] of w (any supported type) as f32 (the embedding lookup).
#pragma once
#include <cuda_runtime.h>
#include "backend.h"

namespace endless {
// ids: device memory, already validated against w.ne1 by the caller.
void cuda_get_rows(const weight &w, const int32_t *ids, int n, float *out, cudaStream_t stream);
}
