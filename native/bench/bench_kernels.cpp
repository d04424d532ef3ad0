// Benchmark of the CPU matmul kernels (not a test): for a Qwen2.5-1.5B-sized FFN weight,
// 1536x8960 and 8960x1536, in F16, BF16, Q8_0, Q4_0, Q4_K and Q6_K, at n = 1 (decode) and
// n = 64 (prefill), with 1 and 2 threads. Prints ms per call, weight GB/s, tokens/s of this one
// matmul (n / time) and GFLOP/s. By default the weight is cycled through copies totalling more
// than 1 GiB so each call reads it from memory as a real model's decode does (the L3 of these
// machines is large); --hot uses one copy. Also: plain memory read bandwidth (the decode
// roofline) and one layer of attention (Qwen2.5-1.5B heads) at 1024 and 4096 keys.
//   bench_kernels [--isa scalar|avx2|avx512|all] [--threads 1,2] [--n 1,64] [--types F16,Q8_0,...] [--hot]
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <time.h>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"
#include "error.h"
#include "quant.h"

using namespace endless;

namespace {

struct bench_type { const char *name; ggml_type type; int block; size_t block_bytes; };
const bench_type BENCH_TYPES[] = {
    {"F32", GGML_TYPE_F32, 1, 4},
    {"F16", GGML_TYPE_F16, 1, 2},
    {"BF16", GGML_TYPE_BF16, 1, 2},
    {"Q8_0", GGML_TYPE_Q8_0, 32, sizeof(block_q8_0)},
    {"Q4_0", GGML_TYPE_Q4_0, 32, sizeof(block_q4_0)},
    {"Q4_K", GGML_TYPE_Q4_K, 256, sizeof(block_q4_k)},
    {"Q6_K", GGML_TYPE_Q6_K, 256, sizeof(block_q6_k)},
};

std::vector<int> bench_parse_ints(const char *s) {
    std::vector<int> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) v.push_back(std::atoi(item.c_str()));
    return v;
}

// CPU time of the calling thread: with other jobs sharing the machine this is a steadier
// measure of a single-threaded kernel than the wall clock
double bench_thread_cpu() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bench_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char **argv) {
    std::vector<int> threads = {1, 2}, ns = {1, 64};
    std::string isa_arg = "best", types_arg = "F16,BF16,Q8_0,Q4_0,Q4_K,Q6_K";
    bool hot = false;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto next = [&]() -> const char * {
            if (i + 1 >= argc) { std::fprintf(stderr, "bench_kernels: %s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "--isa") isa_arg = next();
        else if (a == "--threads") threads = bench_parse_ints(next());
        else if (a == "--n") ns = bench_parse_ints(next());
        else if (a == "--types") types_arg = next();
        else if (a == "--hot") hot = true;
        else { std::fprintf(stderr, "bench_kernels: unknown argument %s\n", a.c_str()); return 2; }
    }
    std::vector<cpu_isa> isas;
    const cpu_isa best = cpu_detect_isa();
    if (isa_arg == "best") isas = {best};
    else if (isa_arg == "all") for (int l = 0; l <= (int)best; l++) isas.push_back((cpu_isa)l);
    else {
        bool found = false;
        for (int l = 0; l <= (int)best; l++)
            if (isa_arg == cpu_isa_name((cpu_isa)l)) { isas.push_back((cpu_isa)l); found = true; }
        if (!found) { std::fprintf(stderr, "bench_kernels: isa %s not available here\n", isa_arg.c_str()); return 2; }
    }

#if defined(__x86_64__)
    std::printf("kernels: best %s%s\n", cpu_isa_name(best), cpu_amx_enabled() ? " (+ AMX-INT8 for Q8_0, Q4_0, Q4_K at n >= 16)" : "");
#endif
    // the roofline for decode: how fast plain reads stream through memory here
    {
        const size_t count = ((size_t)1 << 30) / sizeof(float);
        std::vector<float> big(count, 1.0f);
        for (int nt : threads) {
            thread_pool pool(nt);
            std::vector<double> part(nt);
            double best_gbs = 0;
            for (int rep = 0; rep < 3; rep++) {
                const double t0 = bench_now();
                pool.parallel_for((int64_t)nt, [&](int64_t b, int64_t, int t) {
                    const size_t lo = count * b / nt, hi = count * (b + 1) / nt;
                    float s[16] = {0};
                    for (size_t i = lo; i + 16 <= hi; i += 16)
                        for (int j = 0; j < 16; j++) s[j] += big[i + j];
                    double tot = 0;
                    for (float v : s) tot += v;
                    part[t] = tot;
                });
                const double sec = bench_now() - t0;
                best_gbs = std::max(best_gbs, count * sizeof(float) / sec / 1e9);
            }
            std::printf("memory read bandwidth, %d thread(s): %.2f GB/s (check %g)\n", nt, best_gbs, part[0]);
        }
    }
    std::printf("%-6s %-6s %-11s %4s %3s %9s %8s %10s %8s %9s\n", "isa", "type", "ne0 x ne1", "n", "thr", "ms/call", "GB/s",
                "tok/s-eq", "GFLOP/s", "cpu-ms/t0");
    std::mt19937 rng(1234);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const int64_t shapes[2][2] = {{1536, 8960}, {8960, 1536}};
    for (const bench_type &bt : BENCH_TYPES) {
        if (("," + types_arg + ",").find("," + std::string(bt.name) + ",") == std::string::npos) continue;
        for (const auto &sh : shapes) {
            const int64_t k = sh[0], m = sh[1];
            const size_t row_bytes = (size_t)(k / bt.block) * bt.block_bytes, bytes = row_bytes * m;
            const size_t copies = hot ? 1 : std::max<size_t>(2, ((size_t)1 << 30) / bytes + 1);
            std::vector<uint8_t> data(bytes * copies);
            std::vector<float> row(k);
            for (int64_t r = 0; r < m; r++) {
                for (auto &v : row) v = dist(rng);
                quantize_row(bt.type, row.data(), data.data() + r * row_bytes, k);
            }
            for (size_t c = 1; c < copies; c++) std::memcpy(data.data() + c * bytes, data.data(), bytes);
            const int n_max = *std::max_element(ns.begin(), ns.end());
            std::vector<float> x((size_t)n_max * k), y((size_t)n_max * m);
            for (auto &v : x) v = dist(rng);
            for (cpu_isa isa : isas) {
                cpu_set_isa(isa);
                for (int nt : threads) {
                    thread_pool pool(nt);
                    for (int n : ns) {
                        weight w;
                        w.type = bt.type;
                        w.ne0 = k;
                        w.ne1 = m;
                        w.nbytes = bytes;
                        size_t c = 0;
                        auto call = [&] {
                            w.data = data.data() + (c++ % copies) * bytes;
                            cpu_matmul(pool, w, x.data(), n, y.data());
                        };
                        for (int i = 0; i < 3; i++) call();
                        int iters = 0;
                        const double t0 = bench_now(), c0 = bench_thread_cpu();
                        double t1 = t0;
                        while (iters < 5 || t1 - t0 < 0.4) {
                            call();
                            iters++;
                            t1 = bench_now();
                        }
                        const double sec = (t1 - t0) / iters, cpu = (bench_thread_cpu() - c0) / iters;
                        std::printf("%-6s %-6s %5lldx%-5lld %4d %3d %9.3f %8.2f %10.1f %8.1f %9.3f\n", cpu_isa_name(isa), bt.name,
                                    (long long)k, (long long)m, n, nt, sec * 1e3, bytes / sec / 1e9, n / sec,
                                    2.0 * n * k * m / sec / 1e9, cpu * 1e3);
                        std::fflush(stdout);
                    }
                }
            }
            cpu_set_isa(best);
        }
    }

    // attention of one layer, Qwen2.5-1.5B shape (12 heads, 2 KV heads, head_dim 128, NEOX),
    // 4 sinks + a window, for a decode query and a 64-query prefill chunk
    std::printf("\nattention (12/2 heads x 128, NEOX): one layer\n%-6s %6s %4s %3s %9s %12s\n", "isa", "keys", "n_q", "thr",
                "ms/call", "ms/28 layers");
    for (int n_keys : {1024, 4096}) {
        const int n_head = 12, n_kv = 2, hd = 128, n_fixed = 4, n_win = n_keys - n_fixed;
        std::vector<float> kc((size_t)n_keys * n_kv * hd), vc(kc.size()), q((size_t)64 * n_head * hd), out(q.size());
        for (auto &v : kc) v = dist(rng);
        for (auto &v : vc) v = dist(rng);
        for (auto &v : q) v = dist(rng);
        std::vector<float> rc((size_t)(n_keys + 1) * hd / 2), rs(rc.size());
        for (int p = 0; p <= n_keys; p++)
            for (int i = 0; i < hd / 2; i++) {
                rc[(size_t)p * hd / 2 + i] = std::cos(p * std::pow(1e6f, -2.0f * i / hd));
                rs[(size_t)p * hd / 2 + i] = std::sin(p * std::pow(1e6f, -2.0f * i / hd));
            }
        std::vector<int32_t> keys(n_keys), lo(64), hi(64);
        for (int i = 0; i < n_keys; i++) keys[i] = i;
        for (cpu_isa isa : isas) {
            cpu_set_isa(isa);
            for (int nt : threads) {
                auto be = backend_cpu_create(nt);
                for (int n_q : {1, 64}) {
                    for (int i = 0; i < n_q; i++) { lo[i] = 0; hi[i] = n_win - n_q + 1 + i; }
                    attn_args a;
                    a.q = q.data(); a.k_cache = kc.data(); a.v_cache = vc.data(); a.out = out.data();
                    a.keys = keys.data(); a.n_keys = n_keys; a.n_fixed = n_fixed;
                    a.win_lo = lo.data(); a.win_hi = hi.data(); a.n_q = n_q;
                    a.n_head = n_head; a.n_head_kv = n_kv; a.head_dim = hd; a.n_rot = hd; a.mode = ROPE_MODE_NEOX;
                    a.rope_cos = rc.data(); a.rope_sin = rs.data(); a.scale = 1.0f / std::sqrt((float)hd);
                    be->attention(a);
                    int iters = 0;
                    const double t0 = bench_now();
                    double t1 = t0;
                    while (iters < 3 || t1 - t0 < 0.3) { be->attention(a); iters++; t1 = bench_now(); }
                    const double ms = (t1 - t0) / iters * 1e3;
                    std::printf("%-6s %6d %4d %3d %9.3f %12.2f\n", cpu_isa_name(isa), n_keys, n_q, nt, ms, ms * 28);
                }
            }
        }
        cpu_set_isa(best);
    }
    return 0;
}
