// CPU kernels behind the CPU backend: a thread pool, and SIMD kernels chosen at run time
// (AVX-512 / AVX2+FMA / portable C++). Each fast kernel has the plain reference in quant.h
// or here beside it; native/tests compares them on fresh random inputs.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "backend.h"

namespace endless {

// A fixed pool of worker threads; parallel_for splits [0, n) into contiguous chunks, one per
// thread, and returns when all are done. The calling thread takes part. Not reentrant.
class thread_pool {
public:
    explicit thread_pool(int n_threads);
    ~thread_pool();
    int size() const;
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int thread)> &fn);
private:
    struct impl;
    impl *impl_;
};

enum cpu_isa : int { CPU_ISA_SCALAR = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 };
cpu_isa cpu_detect_isa();            // what this processor supports (cpuid + OS support)
const char *cpu_isa_name(cpu_isa isa);
// Force a kernel set (tests compare them); returns the previous one. Clamped to what exists.
cpu_isa cpu_set_isa(cpu_isa isa);
cpu_isa cpu_get_isa();

// y[n, w.ne1] = x[n, w.ne0] * W^T for every supported weight type, threaded over rows of W
// (and tiled over n for prefill). Quantized weights are never dequantized as whole matrices:
// activations are quantized per row (to Q8 blocks) and the dot products run on integers.
void cpu_matmul(thread_pool &pool, const weight &w, const float *x, int n, float *y);

// out[n, w.ne0] = rows of w (any supported type) as f32.
void cpu_get_rows(const weight &w, const int32_t *ids, int n, float *out);

}  // namespace endless
