// kv_store: k[i], v[i] (rows of `row` floats) into cache slots slots[i].
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
namespace endless {
// slots: device memory, validated by the caller.
void cuda_kv_store(float *k_cache, float *v_cache, const float *k, const float *v, const int32_t *slots,
                   int n, int row, cudaStream_t stream);
}
