// The greedy token pick on the device: the first index of the largest of n floats, NaN counting
// as -inf (sampler.h's greedy_index, exactly), so a greedy step brings back 4 bytes instead of the
// vocabulary's logits.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>

namespace endless {

constexpr int CUDA_ARGMAX_MAX_BLOCKS = 1024;  // partial results of the first launch

// out[0] = the index; partials: CUDA_ARGMAX_MAX_BLOCKS 8-byte device words of scratch; pen (device;
// null: none): {count, ids...}, the ids strictly increasing, at most ARGMAX_MAX_PENALIZED of them,
// their values penalized first (backend::argmax). The count is read on the device, so it may
// change between replays of a captured launch.
void cuda_argmax(const float *x, int64_t n, int32_t *out, uint64_t *partials, const int32_t *pen, float penalty,
                 cudaStream_t stream);

}  // namespace endless
