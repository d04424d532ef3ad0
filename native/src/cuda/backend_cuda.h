// Extras of the CUDA backend for tests and benchmarks (the engine needs only backend.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "backend.h"

namespace endless {
// Graph replays and captures so far (0 and 0 for a backend that is not CUDA).
void backend_cuda_graph_stats(const backend &b, size_t *launches, size_t *captures);
// One-query attention ops queued so far whose fresh cache rows (written earlier in their batch) were
// known, so their kernel requested the other rows early (tests).
size_t backend_cuda_attention_early_ops(const backend &b);
// decode_layers calls that ran as the fused one-token kernel (decode_fused.cu) so far (tests).
size_t backend_cuda_fused_decodes(const backend &b);
// Whether this device runs that kernel at all (sm_90 or newer, cooperative launch, and turned on
// with ENDLESS_CUDA_FUSED_DECODE=1: it is slower than the separate launches so far); shapes and
// types decide the rest.
bool backend_cuda_fused_decode_available();
// With ENDLESS_CUDA_FUSED_PROFILE=1: that kernel's time per phase (block 0) since the last call, one
// line; "" otherwise (benchmarks).
std::string backend_cuda_fused_decode_profile();
// Precise mode (also ENDLESS_CUDA_PRECISE=1): prefill products of F16/BF16 weights with the
// activations in two 16-bit parts (~1e-6 instead of ~1e-3) and every attention in fp32; the
// default rounds prefill operands to 16 bits for tensor cores, as transformers and llama.cpp do.
void backend_cuda_set_precise(backend &b, bool on);
// Benchmark knob: decode fusions of rms_norm and kv_store into the matrix-vector launches (default on).
void backend_cuda_set_fusion(backend &b, bool on);
// Prefill products keep a BF16 copy of each quantized weight they read (default on; off with
// ENDLESS_CUDA_PREFILL_BF16=0). on = false frees them and makes none; reserve_bytes: the free device
// memory a new copy must leave (SIZE_MAX: an eighth of the card). For tests and the benchmark.
void backend_cuda_set_prefill_copies(backend &b, bool on, size_t reserve_bytes = SIZE_MAX);
// How many copies exist and (bytes) their device memory.
size_t backend_cuda_prefill_copies(const backend &b, size_t *bytes = nullptr);
// Free device memory now (cudaMemGetInfo on the backend's device), bytes.
size_t backend_cuda_free_memory(backend &b);
// Destroys the captured graphs (benchmarks: what a later step costs without them).
void backend_cuda_drop_graphs(backend &b);
// Benchmark knob: prefill products on cuBLAS where it loads (default) or on our own kernel.
void backend_cuda_set_cublas(backend &b, bool on);
// What runs the prefill products: "cublas" or "own kernels (<why>)".
std::string backend_cuda_gemm_engine(backend &b);
// Benchmark tuning: key tiles per split-K block of the decode attention (default 1).
void backend_cuda_set_attn_decode1(bool on);
// The sm_90a prefill attention (attention_wgmma.cu): whether this build and device run it, and which
// head dims take it (0 none, 1 128 = the default, 2 64 and 128; cuda_attention_set_wgmma; returns the
// mode in force before).
bool backend_cuda_attn_wgmma_available();
int backend_cuda_set_attn_wgmma(int mode);
}
