// Extras of the CUDA backend for tests and benchmarks (the engine needs only backend.h).
#pragma once
#include <cstddef>
#include "backend.h"

namespace endless {
// Graph replays and captures so far (0 and 0 for a backend that is not CUDA).
void backend_cuda_graph_stats(const backend &b, size_t *launches, size_t *captures);
// Benchmark tuning: the prefill matrix kernel compiled for 1 or 2 blocks per multiprocessor.
void backend_cuda_set_mma_min_blocks(int blocks);
// Benchmark tuning: key tiles per split-K block of the decode attention (default 1).
void backend_cuda_set_attn_decode_tiles(int tiles);
}
