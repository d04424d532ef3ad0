// get_rows: one thread per 16 values of an output row, decoded by the shared block decoder.
#include "get_rows.cuh"
#include "cuda_common.cuh"

namespace endless {

namespace {

__global__ void get_rows_kernel(ggml_type type, const uint8_t *data, size_t row_bytes, int64_t ne0,
                                const int32_t *ids, int n, float *out, bool aligned) {
    const int64_t chunks = ne0 / 16;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y;
    if (idx >= chunks || i >= n) return;
    const uint8_t *row = data + (size_t)ids[i] * row_bytes;
    float v[16];
    dev_dequant16(type, row, idx * 16, v);
    float *dst = out + (size_t)i * ne0 + idx * 16;
    if (aligned) {
        float4 *o = reinterpret_cast<float4 *>(dst);
#pragma unroll
        for (int j = 0; j < 4; j++) o[j] = make_float4(v[4 * j], v[4 * j + 1], v[4 * j + 2], v[4 * j + 3]);
    } else {
#pragma unroll
        for (int j = 0; j < 16; j++) dst[j] = v[j];
    }
}

// Float types whose rows are not a multiple of 16 values: one thread per value.
__global__ void get_rows_scalar_kernel(ggml_type type, const uint8_t *data, size_t row_bytes, int64_t ne0,
                                       const int32_t *ids, int n, float *out) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y;
    if (k >= ne0 || i >= n) return;
    const uint8_t *row = data + (size_t)ids[i] * row_bytes;
    float v;
    if (type == GGML_TYPE_F32) v = reinterpret_cast<const float *>(row)[k];
    else if (type == GGML_TYPE_F16) v = dev_fp16_to_f32(reinterpret_cast<const uint16_t *>(row)[k]);
    else v = dev_bf16_to_f32(reinterpret_cast<const uint16_t *>(row)[k]);
    out[(size_t)i * ne0 + k] = v;
}

}  // namespace

void cuda_get_rows(const weight &w, const int32_t *ids, int n, float *out, cudaStream_t stream) {
    if (n <= 0) return;
    const size_t row_bytes = cuda_row_bytes(w.type, w.ne0);
    const bool aligned = ((uintptr_t)out % 16) == 0 && w.ne0 % 4 == 0;
    const bool float_type = w.type == GGML_TYPE_F32 || w.type == GGML_TYPE_F16 || w.type == GGML_TYPE_BF16;
    // float rows are read with 16-byte loads: only where every row starts 16-byte aligned
    const bool rows_aligned = ((uintptr_t)w.data % 16) == 0 && row_bytes % 16 == 0;
    if (w.ne0 % 16 == 0 && (!float_type || rows_aligned)) {
        const dim3 grid(cuda_blocks((size_t)(w.ne0 / 16), 128), (unsigned)n);
        get_rows_kernel<<<grid, 128, 0, stream>>>(w.type, (const uint8_t *)w.data, row_bytes, w.ne0, ids, n, out, aligned);
    } else {
        const dim3 grid(cuda_blocks((size_t)w.ne0, 256), (unsigned)n);
        get_rows_scalar_kernel<<<grid, 256, 0, stream>>>(w.type, (const uint8_t *)w.data, row_bytes, w.ne0, ids, n, out);
    }
    CUDA_CHECK_LAUNCH("get_rows");
}

}  // namespace endless
