// Two launches (programmatic dependent launches, like the decode kernels before them): blocks of
// 256 threads take consecutive stretches of x and write one partial each, then one block takes
// the largest partial. A candidate is the 64-bit key (order(x) << 32) | (UINT32_MAX - i), where
// order() maps floats to unsigned integers in the same order (NaN as -inf, -0 as +0, so equal
// values compare equal as they do on the host); the largest key is the largest value and, among
// equal values, the first index. Keys compare the same in any reduction order. A repetition
// penalty: the block's threads bring the penalized ids into shared memory and each value finds
// whether it is one of them by binary search; x / penalty and x * penalty are rounded as on the
// host (__fdiv_rn, __fmul_rn: --use_fast_math would make the division approximate).
#include "argmax.cuh"
#include "backend.h"
#include "cuda_common.cuh"

#include <algorithm>

namespace endless {

namespace {

constexpr int AM_THREADS = 256;
constexpr int AM_PER_THREAD = 4;  // values a thread takes before the block's stretch ends

__device__ __forceinline__ uint64_t am_key(float v, int64_t i) {
    uint32_t b = __float_as_uint(v);
    if (v != v) b = 0xff800000u;  // NaN: -inf
    if (v == 0.0f) b = 0;          // -0: +0
    const uint32_t ord = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return ((uint64_t)ord << 32) | (uint64_t)(0xffffffffu - (uint32_t)i);
}

__device__ __forceinline__ uint64_t am_block_max(uint64_t k) {
    __shared__ uint64_t red[AM_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) k = max(k, __shfl_xor_sync(0xffffffffu, k, o));
    if (lane == 0) red[warp] = k;
    __syncthreads();
    if (warp == 0) {
        k = lane < AM_THREADS / 32 ? red[lane] : 0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) k = max(k, __shfl_xor_sync(0xffffffffu, k, o));
    }
    return k;  // (valid on thread 0)
}

__global__ void __launch_bounds__(AM_THREADS) argmax_partial_kernel(const float *x, int64_t n, int64_t stretch, uint64_t *partials,
                                                                     const int32_t *pen, float penalty) {
    __shared__ int32_t sids[ARGMAX_MAX_PENALIZED];
    // (staged by the host: no kernel writes them, so they load before the wait)
    const int n_ids = pen ? min(max(__ldg(pen), 0), ARGMAX_MAX_PENALIZED) : 0;
    for (int i = threadIdx.x; i < n_ids; i += AM_THREADS) sids[i] = __ldg(pen + 1 + i);
    if (n_ids) __syncthreads();
    dev_pdl_wait();
    dev_pdl_release();
    const int64_t begin = (int64_t)blockIdx.x * stretch, end = min(n, begin + stretch);
    uint64_t k = 0;  // below every candidate's key (index < 2^32 - 1)
    for (int64_t i = begin + threadIdx.x; i < end; i += AM_THREADS) {
        float v = __ldg(x + i);
        if (n_ids) {
            int lo = 0, hi = n_ids;  // the first id >= i
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                if (sids[mid] < i) lo = mid + 1;
                else hi = mid;
            }
            if (lo < n_ids && sids[lo] == i) v = v > 0.0f ? __fdiv_rn(v, penalty) : __fmul_rn(v, penalty);
        }
        k = max(k, am_key(v, i));
    }
    k = am_block_max(k);
    if (threadIdx.x == 0) partials[blockIdx.x] = k;
}

__global__ void __launch_bounds__(AM_THREADS) argmax_final_kernel(const uint64_t *partials, int n_partials, int32_t *out) {
    dev_pdl_wait();
    dev_pdl_release();
    uint64_t k = 0;
    for (int i = threadIdx.x; i < n_partials; i += AM_THREADS) k = max(k, __ldcg(partials + i));
    k = am_block_max(k);
    if (threadIdx.x == 0) out[0] = (int32_t)(0xffffffffu - (uint32_t)(k & 0xffffffffu));
}

}  // namespace

void cuda_argmax(const float *x, int64_t n, int32_t *out, uint64_t *partials, const int32_t *pen, float penalty,
                 cudaStream_t stream) {
    if (n <= 0 || n >= (int64_t)INT32_MAX) fail(ENDLESS_ERR_INVALID_ARGUMENT, "cuda argmax: " + std::to_string(n) + " values");
    const int64_t stretch = std::max<int64_t>((n + CUDA_ARGMAX_MAX_BLOCKS - 1) / CUDA_ARGMAX_MAX_BLOCKS, AM_THREADS * AM_PER_THREAD);
    const int blocks = (int)((n + stretch - 1) / stretch);
    cuda_launch_pdl(argmax_partial_kernel, dim3(blocks), dim3(AM_THREADS), 0, stream, x, n, stretch, partials, pen, penalty);
    cuda_launch_pdl(argmax_final_kernel, dim3(1), dim3(AM_THREADS), 0, stream, (const uint64_t *)partials, blocks, out);
    CUDA_CHECK_LAUNCH("argmax");
}

}  // namespace endless
