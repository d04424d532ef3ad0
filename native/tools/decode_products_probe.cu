// Probe (not part of the build): the decode step's matrix-vector launches exactly as the CUDA
// backend issues them (matvec.cu, with its fusions), without attention, against the plain
// streaming kernels of persistent_probe.cu's "sep-pdl". Qwen2.5-1.5B shape, BF16, 28 layers,
// one token; every variant is a CUDA graph, replayed. Per layer:
//   qkv   rms_norm fused in, q/k/v as one launch (3 members), biases, K/V cache store
//   o     residual add in the epilogue
//   gu    rms_norm fused in, gate/up pairs with SwiGLU in the epilogue
//   down  residual add in the epilogue
// Prints us per launch of each kind (28 launches of that kind back to back) and ms per step.
// Build and run on the GPU machine (name another matvec.cu, e.g. an older one, to compare it):
//   nvcc -std=c++17 -O3 --use_fast_math -arch=sm_90 -Inative/include -Inative/src \
//     -o /tmp/dp native/tools/decode_products_probe.cu native/src/cuda/matvec.cu && /tmp/dp
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/matvec.cuh"
#include "probe_util.cuh"

using namespace endless;

namespace {

constexpr int L = 28, D = 1536, KV = 256, FF = 8960, CTX = 4096;

weight bf16_weight(const void *data, int64_t rows, int64_t cols) {
    weight w;
    w.type = GGML_TYPE_BF16;
    w.ne0 = cols;
    w.ne1 = rows;
    w.data = data;
    w.nbytes = (size_t)rows * cols * 2;
    return w;
}

}  // namespace

int main() {
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
    const size_t per_layer = (size_t)(D + 2 * KV) * D + (size_t)D * D + 2 * (size_t)FF * D + (size_t)D * FF;
    uint16_t *W;
    CK(cudaMalloc(&W, per_layer * L * 2 + 256));
    {
        std::vector<uint16_t> h(per_layer);
        uint32_t s = 12345;
        for (auto &v : h) { s = s * 1664525u + 1013904223u; v = (uint16_t)((0x3c00 | ((s >> 16) & 0x01ff)) ^ ((s >> 8) & 0x8000)); }
        for (int l = 0; l < L; l++) CK(cudaMemcpy(W + per_layer * l, h.data(), per_layer * 2, cudaMemcpyHostToDevice));
    }
    // activations and per-layer small tensors (biases, norm gains) in one buffer
    float *buf;
    const size_t nbuf = 64 << 20;
    CK(cudaMalloc(&buf, nbuf * 4));
    {
        std::vector<float> h(nbuf / 16, 0.01f);
        CK(cudaMemcpy(buf, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
    }
    size_t off = 0;
    auto take = [&](size_t n) { float *p = buf + off; off += (n + 63) / 64 * 64; return p; };
    float *resid = take(D), *h = take(D), *q = take(D), *k = take(KV), *v = take(KV), *att = take(D), *tmp = take(D);
    float *gate = take(FF), *up = take(FF), *act = take(FF);
    float *kc = take((size_t)CTX * KV), *vc = take((size_t)CTX * KV);
    int32_t *slot = reinterpret_cast<int32_t *>(take(16));
    CK(cudaMemset(slot, 0, 64));
    std::vector<cuda_matvec_set> sets[4];
    std::vector<const float *> xs[4];
    for (int l = 0; l < L; l++) {
        const uint16_t *w = W + per_layer * l;
        const uint16_t *wq = w, *wk = wq + (size_t)D * D, *wv = wk + (size_t)KV * D, *wo = wv + (size_t)KV * D;
        const uint16_t *wg = wo + (size_t)D * D, *wu = wg + (size_t)FF * D, *wd = wu + (size_t)FF * D;
        float *bq = take(D), *bk = take(KV), *bv = take(KV), *g1 = take(D), *g2 = take(D);
        cuda_matvec_set s{};
        s.n_members = 3;
        s.w[0] = bf16_weight(wq, D, D); s.w[1] = bf16_weight(wk, KV, D); s.w[2] = bf16_weight(wv, KV, D);
        s.y[0] = q; s.y[1] = k; s.y[2] = v;
        s.bias[0] = bq; s.bias[1] = bk; s.bias[2] = bv;
        s.norm_x = resid; s.norm_g = g1; s.norm_eps = 1e-6f;
        s.kv_dst[1] = kc; s.kv_dst[2] = vc; s.kv_slots = slot;
        sets[0].push_back(s); xs[0].push_back(h);
        s = cuda_matvec_set{};
        s.n_members = 1;
        s.w[0] = bf16_weight(wo, D, D); s.y[0] = tmp; s.acc[0] = resid;
        sets[1].push_back(s); xs[1].push_back(att);
        s = cuda_matvec_set{};
        s.n_members = 2;
        s.w[0] = bf16_weight(wg, FF, D); s.w[1] = bf16_weight(wu, FF, D);
        s.y[0] = gate; s.y[1] = up; s.swiglu_out = act;
        s.norm_x = resid; s.norm_g = g2; s.norm_eps = 1e-6f;
        sets[2].push_back(s); xs[2].push_back(h);
        s = cuda_matvec_set{};
        s.n_members = 1;
        s.w[0] = bf16_weight(wd, D, FF); s.y[0] = tmp; s.acc[0] = resid;
        sets[3].push_back(s); xs[3].push_back(act);
    }
    if (off > nbuf) { std::printf("buffer too small\n"); return 1; }
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const char *names[4] = {"qkv", "o", "gate/up", "down"};
    const double mb[4] = {(double)(D + 2 * KV) * D * 2 / 1e6, (double)D * D * 2 / 1e6, 2.0 * FF * D * 2 / 1e6, (double)D * FF * 2 / 1e6};
    const int reps = 20;
    for (int round = 0; round < 2; round++) {
        const float step = time_graph(st, [&] {
            for (int l = 0; l < L; l++)
                for (int kind = 0; kind < 4; kind++) cuda_matvec_set_run(sets[kind][l], xs[kind][l], 1, st);
        }, reps);
        std::printf("round %d: step (products only) %.3f ms\n", round, step);
        for (int kind = 0; kind < 4; kind++) {
            const float ms = time_graph(st, [&] {
                for (int l = 0; l < L; l++) cuda_matvec_set_run(sets[kind][l], xs[kind][l], 1, st);
            }, reps);
            const double us = ms * 1e3 / L;
            std::printf("  %-8s %7.2f us per launch  %6.0f GB/s\n", names[kind], us, mb[kind] * 1e-3 / (us * 1e-6));
        }
    }
    // what the fusions cost: the same launches without one of them
    struct variant { const char *name; int kind; void (*edit)(cuda_matvec_set &); };
    const variant vs[] = {
        {"qkv, no norm", 0, [](cuda_matvec_set &s) { s.norm_x = nullptr; s.norm_g = nullptr; }},
        {"qkv, no bias/kv", 0, [](cuda_matvec_set &s) { for (int i = 0; i < 3; i++) { s.bias[i] = nullptr; s.kv_dst[i] = nullptr; } s.kv_slots = nullptr; }},
        {"qkv, bare", 0, [](cuda_matvec_set &s) { s.norm_x = nullptr; s.norm_g = nullptr; for (int i = 0; i < 3; i++) { s.bias[i] = nullptr; s.kv_dst[i] = nullptr; } s.kv_slots = nullptr; }},
        {"o, no acc", 1, [](cuda_matvec_set &s) { s.acc[0] = nullptr; }},
        {"gate/up, no norm", 2, [](cuda_matvec_set &s) { s.norm_x = nullptr; s.norm_g = nullptr; }},
        {"down, no acc", 3, [](cuda_matvec_set &s) { s.acc[0] = nullptr; }},
    };
    for (const variant &v : vs) {
        std::vector<cuda_matvec_set> e = sets[v.kind];
        for (auto &s : e) v.edit(s);
        const float ms = time_graph(st, [&] {
            for (int l = 0; l < L; l++) cuda_matvec_set_run(e[l], xs[v.kind][l], 1, st);
        }, reps);
        std::printf("  %-18s %7.2f us per launch\n", v.name, ms * 1e3 / L);
    }
    return 0;
}
