// Shared helpers of the CUDA kernels: error checks, warp reductions, half/bf16 conversions and
// the device-side decoding of the GGUF block types (layouts in ggml_types.h, semantics in
// quant.cpp, which is the reference every kernel here must match).
#pragma once
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "error.h"
#include "ggml_types.h"

namespace endless {

// Throws endless::error with the call site and CUDA's text: every CUDA call is checked.
inline void cuda_check(cudaError_t err, const char *what, const char *file, int line) {
    if (err == cudaSuccess) return;
    // Clear the thread's last-error slot: a recoverable error (out of memory) left there would be
    // reported again by the next launch check on this thread (a libuv worker that serves other
    // sessions), as if that launch had failed. Sticky errors stay sticky regardless.
    cudaGetLastError();
    const endless_status st = err == cudaErrorMemoryAllocation ? ENDLESS_ERR_OUT_OF_MEMORY : ENDLESS_ERR_DEVICE;
    fail(st, std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                 "): " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}
#define CUDA_CHECK(call) ::endless::cuda_check((call), #call, __FILE__, __LINE__)
// After each kernel launch: launch-configuration errors surface here, at the op that caused them.
#define CUDA_CHECK_LAUNCH(name) ::endless::cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)

// Block geometry of the types the kernels take, kept here so endless_cuda needs no symbol of
// endless_core (the core links the CUDA library, not the other way round).
inline int cuda_block_values(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: return 1;
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: return 32;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K: return 256;
    default: return 0;
    }
}
inline size_t cuda_block_bytes(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: return 4;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: return 2;
    case GGML_TYPE_Q8_0: return sizeof(block_q8_0);
    case GGML_TYPE_Q4_0: return sizeof(block_q4_0);
    case GGML_TYPE_Q4_K: return sizeof(block_q4_k);
    case GGML_TYPE_Q6_K: return sizeof(block_q6_k);
    default: return 0;
    }
}
inline size_t cuda_row_bytes(ggml_type t, int64_t n) {
    const int bv = cuda_block_values(t);
    return bv ? (size_t)(n / bv) * cuda_block_bytes(t) : 0;
}
inline const char *cuda_type_name(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: return "F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_BF16: return "BF16";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_K: return "Q4_K";
    case GGML_TYPE_Q6_K: return "Q6_K";
    default: return "an unsupported type";
    }
}

inline unsigned cuda_blocks(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

// A device attribute of the current device, asked once per device (fallback if it cannot be read).
template <cudaDeviceAttr A>
int cuda_device_attr(int fallback) {
    static std::atomic<int> cache[64];  // value + 1; 0: not asked yet
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
        cudaGetLastError();
        return fallback;
    }
    int c = cache[dev].load(std::memory_order_relaxed);
    if (c == 0) {
        int v = 0;
        if (cudaDeviceGetAttribute(&v, A, dev) != cudaSuccess) {
            cudaGetLastError();
            v = fallback;
        }
        c = v + 1;
        cache[dev].store(c, std::memory_order_relaxed);
    }
    return c - 1;
}

// Programmatic dependent launch (sm_90 and newer) for the decode kernels: a kernel launched with
// cuda_launch_pdl may start while the kernel before it is finishing, so its weight loads (which
// depend on nothing) overlap the other kernel's tail and its own launch. Such a kernel calls
// dev_pdl_wait() before it reads anything an earlier kernel wrote, and dev_pdl_release() after it,
// which lets the next kernel start early in turn. On by default where the device has it;
// ENDLESS_CUDA_PDL=0 turns it off (then it is a plain launch and the two calls do nothing).
inline bool cuda_pdl_enabled() {
    static const bool allowed = [] {
        const char *v = std::getenv("ENDLESS_CUDA_PDL");
        return !(v && std::strcmp(v, "0") == 0);
    }();
    return allowed && cuda_device_attr<cudaDevAttrComputeCapabilityMajor>(0) >= 9;
}

template <class... P, class... A>
void cuda_launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A &&...args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    if (cuda_pdl_enabled()) {
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
    }
    cuda_check(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), "kernel launch", __FILE__, __LINE__);
}

#ifdef __CUDACC__
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float dev_fp16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float dev_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
// Two halves / bf16s packed in a 32-bit word -> two floats.
__device__ __forceinline__ float2 dev_half2_to_f32(uint32_t w) {
    return __half22float2(*reinterpret_cast<const __half2 *>(&w));
}
__device__ __forceinline__ float2 dev_bf162_to_f32(uint32_t w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}
__device__ __forceinline__ void dev_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void dev_pdl_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// e^x to ~3e-7 relative in float, independent of --use_fast_math (which turns expf into the
// approximate __expf: ~1e-5 off near |x| = 88): e^x = 2^k e^r with k = rint(x / ln 2) and
// r = x - k ln 2 taken in two parts (the high part has 11 trailing zero bits, so k * hi is exact),
// |r| <= ln 2 / 2, and e^r = 2^(r / ln 2) through the hardware exp2 (~2 ulp on that range).
__device__ __forceinline__ float dev_exp(float x) {
    x = fminf(fmaxf(x, -104.0f), 89.0f);  // past these e^x is 0 or inf in float anyway
    const float k = rintf(x * 1.44269504f);
    const float r = fmaf(k, -1.428606820e-06f, fmaf(k, -0.693145752f, x));
    return ldexpf(exp2f(r * 1.44269504f), (int)k);
}
// silu(g) * u with round-to-nearest division and product (fast math would approximate them)
__device__ __forceinline__ float dev_swiglu(float g, float u) { return __fmul_rn(__fdiv_rn(g, 1.0f + dev_exp(-g)), u); }
// The RMS norm's scale 1 / sqrt(ss / n + eps), each step rounded to nearest (fast math would
// approximate the division and the square root): within an ulp or two of the double computation.
__device__ __forceinline__ float dev_rms_scale(float ss, float n, float eps) {
    return __frsqrt_rn(__fadd_rn(__fdiv_rn(ss, n), eps));
}
// Byte k (0..3) of w as a signed int8 turned into float without the quarter-rate I2F:
// 0x4B000000 | u is the float 2^23 + u, so (byte ^ 0x80) placed there gives 2^23 + q + 128.
__device__ __forceinline__ float dev_i8_to_f32(uint32_t w_xor80, int k) {
    return __uint_as_float(__byte_perm(w_xor80, 0x4B000000u, 0x7650 | k)) - 8388736.0f;
}
// Low/high nibble n (0..7) of w as float: same trick, 2^23 + nibble.
__device__ __forceinline__ uint32_t dev_load_u16(const uint8_t *p) { return *reinterpret_cast<const uint16_t *>(p); }
// 4 bytes at a 2-byte aligned address.
__device__ __forceinline__ uint32_t dev_load_u32_a2(const uint8_t *p) {
    const uint16_t *q = reinterpret_cast<const uint16_t *>(p);
    return (uint32_t)q[0] | ((uint32_t)q[1] << 16);
}

// Q4_K: scale and min of sub-block j (0..7) from the 12 packed bytes (see quant.cpp).
__device__ __forceinline__ void dev_q4k_scale_min(const uint8_t *s, int j, int &sc, int &m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// 16 consecutive values k0..k0+15 (k0 % 16 == 0) of a row of any supported type, as floats.
// The reference semantics for the tiled kernels; the matrix-vector kernels have faster paths.
__device__ __forceinline__ void dev_dequant16(ggml_type type, const uint8_t *row, int64_t k0, float *out) {
    switch (type) {
    case GGML_TYPE_F32: {
        const float4 *p = reinterpret_cast<const float4 *>(row + k0 * 4);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float4 v = p[i];
            out[4 * i] = v.x; out[4 * i + 1] = v.y; out[4 * i + 2] = v.z; out[4 * i + 3] = v.w;
        }
        break;
    }
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: {
        const uint4 *p = reinterpret_cast<const uint4 *>(row + k0 * 2);
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint4 v = p[i];
            const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 f = type == GGML_TYPE_F16 ? dev_half2_to_f32(w[j]) : dev_bf162_to_f32(w[j]);
                out[8 * i + 2 * j] = f.x; out[8 * i + 2 * j + 1] = f.y;
            }
        }
        break;
    }
    case GGML_TYPE_Q8_0: {
        const uint8_t *b = row + (k0 / 32) * 34;
        const float d = dev_fp16_to_f32(dev_load_u16(b));
        const uint8_t *q = b + 2 + (k0 % 32);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t w = dev_load_u32_a2(q + 4 * i) ^ 0x80808080u;
#pragma unroll
            for (int k = 0; k < 4; k++) out[4 * i + k] = d * dev_i8_to_f32(w, k);
        }
        break;
    }
    case GGML_TYPE_Q4_0: {
        const uint8_t *b = row + (k0 / 32) * 18;
        const float d = dev_fp16_to_f32(dev_load_u16(b));
        const int shift = (k0 % 32) ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 16; i++) out[i] = d * (float)(((b[2 + i] >> shift) & 0x0f) - 8);
        break;
    }
    case GGML_TYPE_Q4_K: {
        const uint8_t *b = row + (k0 / 256) * 144;
        const int idx = (int)(k0 % 256), j = idx / 32, l0 = idx % 32;
        int sc, m;
        dev_q4k_scale_min(b + 4, j, sc, m);
        const float d = dev_fp16_to_f32(dev_load_u16(b)) * (float)sc;
        const float dm = dev_fp16_to_f32(dev_load_u16(b + 2)) * (float)m;
        const uint8_t *q = b + 16 + 32 * (j / 2) + l0;
        const int shift = (j & 1) * 4;
#pragma unroll
        // no fused multiply-add: get_rows must equal quant.cpp's dequantizer bit for bit
        for (int i = 0; i < 16; i++) out[i] = __fsub_rn(__fmul_rn(d, (float)((q[i] >> shift) & 0x0f)), dm);
        break;
    }
    case GGML_TYPE_Q6_K: {
        const uint8_t *b = row + (k0 / 256) * 210;
        const int idx = (int)(k0 % 256), h = idx / 128, r = idx % 128, k = r / 32, l0 = r % 32;
        const float d = dev_fp16_to_f32(dev_load_u16(b + 208)) * (float)(int8_t)b[192 + idx / 16];
        const uint8_t *ql = b + 64 * h + l0 + 32 * (k & 1);
        const uint8_t *qh = b + 128 + 32 * h + l0;
        const int lshift = k < 2 ? 0 : 4;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            const int v = ((ql[i] >> lshift) & 0x0f) | (((qh[i] >> (2 * k)) & 3) << 4);
            out[i] = d * (float)(v - 32);
        }
        break;
    }
    default:
        for (int i = 0; i < 16; i++) out[i] = 0.0f;
        break;
    }
}
#endif

}  // namespace endless
