// Every op of the backend interface against plain double-precision references, on fresh random
// inputs, for every backend under test: the CPU backend at each instruction-set level this
// machine supports (and with 1 and 3 threads), and the CUDA backend when it is built and a device
// exists. Inputs go through alloc/upload/download so a device backend runs the same tests.
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"
#include "error.h"
#include "quant.h"
#include "sampler.h"
#include "test_util.h"
#ifdef ENDLESS_WITH_CUDA
#include "cuda/backend_cuda.h"
#endif

using namespace endless;

namespace {

// ---------------------------------------------------------------- backends under test

struct backend_case {
    std::string label;
    std::function<std::unique_ptr<backend>()> create;
    std::function<void()> enter;  // e.g. force an instruction-set level
    std::function<void()> leave;
};

std::vector<backend_case> backends_under_test() {
    std::vector<backend_case> list;
    const cpu_isa best = cpu_detect_isa();
    for (int isa = CPU_ISA_SCALAR; isa <= (int)best; isa++) {
        // at the AVX-512 level, with and without AMX where the machine has it
        bool amx_levels[2] = {false, false};
        int n_amx = 1;
#if defined(__x86_64__)
        if (isa == CPU_ISA_AVX512 && cpu_amx_available()) { amx_levels[1] = true; n_amx = 2; }
#endif
        for (int ai = 0; ai < n_amx; ai++)
            for (int threads : {1, 3}) {
                const bool amx = amx_levels[ai];
                backend_case c;
                c.label = std::string("cpu/") + cpu_isa_name((cpu_isa)isa) + (amx ? "+amx" : "") + "/t" + std::to_string(threads);
                c.create = [threads] { return backend_cpu_create(threads); };
                c.enter = [isa, amx] {
                    cpu_set_isa((cpu_isa)isa);
#if defined(__x86_64__)
                    cpu_set_amx(amx);
#endif
                };
                c.leave = [best] {
                    cpu_set_isa(best);
#if defined(__x86_64__)
                    cpu_set_amx(true);
#endif
                };
                list.push_back(c);
            }
    }
#ifdef ENDLESS_WITH_CUDA
    const int n_dev = backend_cuda_device_count();
    if (n_dev == 0) {
        std::printf("  SKIP cuda: backend built but no CUDA device is usable here\n");
    } else {
        // precise mode is held to the CPU's bounds; the default rounds prefill operands to 16 bits
        for (bool precise : {true, false}) {
            backend_case c;
            c.label = precise ? "cuda:0/precise" : "cuda:0";
            c.create = [precise] {
                auto b = backend_cuda_create(0);
                backend_cuda_set_precise(*b, precise);
                return b;
            };
            c.enter = [] {};
            c.leave = [] {};
            list.push_back(c);
        }
    }
#else
    static bool said = false;
    if (!said) std::printf("  (cuda backend not built: testing cpu only)\n");
    said = true;
#endif
    return list;
}

template <typename F>
void for_each_backend(F body) {
    static bool listed = false;
    if (!listed) {
        listed = true;
        std::string names;
        for (auto &c : backends_under_test()) names += (names.empty() ? "" : ", ") + c.label;
        std::printf("  backends under test: %s\n", names.c_str());
    }
    for (auto &c : backends_under_test()) {
        c.enter();
        auto b = c.create();
        const int before = test::failures();
        try {
            body(*b, c.label);
        } catch (const std::exception &e) {
            std::printf("  FAIL %s: exception: %s\n", c.label.c_str(), e.what());
            test::failures()++;
        }
        if (test::failures() != before) std::printf("  (failures above on backend %s)\n", c.label.c_str());
        b.reset();
        c.leave();
    }
}

// Backend memory holding a copy of host data.
struct dev_buf {
    backend &b;
    void *p;
    size_t bytes;
    dev_buf(backend &be, size_t n) : b(be), p(be.alloc(n)), bytes(n) {}
    dev_buf(backend &be, const void *src, size_t n) : dev_buf(be, n) { b.upload(p, src, n); }
    template <typename T>
    explicit dev_buf(backend &be, const std::vector<T> &v) : dev_buf(be, v.data(), v.size() * sizeof(T)) {}
    ~dev_buf() { b.release(p); }
    float *f() const { return (float *)p; }
    template <typename T>
    std::vector<T> get(size_t count) const {
        std::vector<T> v(count);
        b.download(v.data(), p, count * sizeof(T));
        b.synchronize();
        return v;
    }
};

int rand_int(int lo, int hi) {  // inclusive
    return std::uniform_int_distribution<int>(lo, hi)(test::rng());
}

size_t type_row_bytes(ggml_type t, int64_t n) {
    switch (t) {
    case GGML_TYPE_F32: return 4 * n;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: return 2 * n;
    case GGML_TYPE_Q8_0: return n / 32 * sizeof(block_q8_0);
    case GGML_TYPE_Q4_0: return n / 32 * sizeof(block_q4_0);
    case GGML_TYPE_Q4_K: return n / 256 * sizeof(block_q4_k);
    case GGML_TYPE_Q6_K: return n / 256 * sizeof(block_q6_k);
    default: return 0;
    }
}

int type_block(ggml_type t) {
    switch (t) {
    case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: return 32;
    case GGML_TYPE_Q4_K: case GGML_TYPE_Q6_K: return 256;
    default: return 1;
    }
}

const char *type_name(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: return "F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_BF16: return "BF16";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_K: return "Q4_K";
    case GGML_TYPE_Q6_K: return "Q6_K";
    default: return "?";
    }
}

const ggml_type ALL_TYPES[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                               GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};

// A random weight of the type, as file bytes.
std::vector<uint8_t> make_weight(ggml_type t, int64_t k, int64_t m) {
    std::vector<uint8_t> bytes(type_row_bytes(t, k) * m);
    for (int64_t r = 0; r < m; r++) {
        std::vector<float> row = test::random_floats(k);
        quantize_row(t, row.data(), bytes.data() + r * type_row_bytes(t, k), k);
    }
    return bytes;
}

// Error bounds of matmul against the exact product with the stored weight: f32/f16/bf16
// accumulate in f32; quantized types also quantize the activations to 8 bits. `rel` bounds
// ||y - ref|| / ||ref|| over a whole output (checked when it has enough elements to be a steady
// statistic); `worst` bounds every single output's error relative to ||w_r|| * ||x_i||.
struct matmul_tol { double rel, worst; };
// The CUDA backend's default mode runs products of more than 8 tokens on tensor cores with the
// activations rounded to 16 bits (bf16: 2^-9 relative per value), like transformers and llama.cpp.
bool rounds_to_16bit(const std::string &label) { return label == "cuda:0"; }
matmul_tol matmul_tolerance(ggml_type t, const std::string &label, int n) {
    switch (t) {
    case GGML_TYPE_F16: case GGML_TYPE_BF16:
        if (rounds_to_16bit(label) && n > 8) return {5e-3, 1e-3};
        return {2e-5, 2e-6};
    case GGML_TYPE_F32: return {2e-5, 2e-6};
    default: return {1.5e-2, 4e-3};
    }
}

}  // namespace

// ---------------------------------------------------------------- thread pool, isa

TEST(thread_pool_covers_range_once) {
    for (int threads : {1, 2, 3, 5}) {
        thread_pool pool(threads);
        CHECK(pool.size() == threads);
        for (int64_t n : {0, 1, 2, 3, 7, 1000}) {
            for (int rep = 0; rep < 50; rep++) {
                std::vector<int> hits(n, 0);
                std::vector<int> seen_thread(threads, 0);
                pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
                    for (int64_t i = b; i < e; i++) hits[i]++;
                    seen_thread[t]++;
                });
                for (int64_t i = 0; i < n; i++) CHECK_MSG(hits[i] == 1, "threads %d n %lld index %lld hit %d times", threads, (long long)n, (long long)i, hits[i]);
            }
        }
        // an exception in any chunk reaches the caller, and the pool keeps working
        bool caught = false;
        try {
            pool.parallel_for(100, [&](int64_t b, int64_t, int) { if (b > 0 || threads == 1) throw std::runtime_error("boom"); });
        } catch (const std::runtime_error &) { caught = true; }
        CHECK(caught);
        std::vector<int> hits(10, 0);
        pool.parallel_for(10, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; i++) hits[i]++; });
        CHECK(std::count(hits.begin(), hits.end(), 1) == 10);
    }
}

TEST(isa_detect_and_set) {
    const cpu_isa best = cpu_detect_isa();
    const cpu_isa start = cpu_get_isa();  // lower than best only when ENDLESS_CPU_ISA asks
    std::printf("  this machine: %s (starting with %s)\n", cpu_isa_name(best), cpu_isa_name(start));
    CHECK(start <= best);
    const cpu_isa prev = cpu_set_isa(CPU_ISA_SCALAR);
    CHECK(prev == start);
    CHECK(cpu_get_isa() == CPU_ISA_SCALAR);
    cpu_set_isa((cpu_isa)99);  // clamped to what exists
    CHECK(cpu_get_isa() == best);
}

// ---------------------------------------------------------------- memory

TEST(memory_ops) {
    for_each_backend([](backend &b, const std::string &label) {
        std::vector<float> a = test::random_floats(1001);
        dev_buf d1(b, a), d2(b, a.size() * 4);
        b.copy(d2.p, d1.p, a.size() * 4);
        std::vector<float> back = d2.get<float>(a.size());
        CHECK(std::memcmp(back.data(), a.data(), a.size() * 4) == 0);
        if (b.is_host()) CHECK(((uintptr_t)d1.p & 63) == 0);
        bool threw = false;
        try { b.alloc((size_t)1 << 62); } catch (const endless::error &e) { threw = e.status() == ENDLESS_ERR_OUT_OF_MEMORY; }
        CHECK_MSG(threw, "%s: huge alloc must throw out of memory", label.c_str());
    });
}

// ---------------------------------------------------------------- matmul, get_rows

TEST(matmul_every_type) {
    struct shape { int64_t k, m; int n; };
    for_each_backend([](backend &b, const std::string &label) {
        for (ggml_type t : ALL_TYPES) {
            const int bs = type_block(t);
            // odd sizes, n = 1 and n > 1 (every remainder mod 4), more rows than one chunk, and
            // long rows that the driver splits into slices of the inner dimension
            static const shape shapes_f[] = {{67, 5, 1}, {67, 33, 3}, {130, 130, 17}, {1024, 9, 300}, {24, 1, 2}, {4352, 5, 66}};
            static const shape shapes_32[] = {{32, 7, 1}, {96, 33, 2}, {1184, 45, 17}, {4096, 9, 80}, {64, 1, 5}, {8960, 5, 66}};
            static const shape shapes_256[] = {{256, 7, 1}, {768, 37, 3}, {512, 130, 17}, {2048, 9, 150}, {256, 1, 4}, {8960, 5, 66}};
            const shape *shapes = bs == 1 ? shapes_f : bs == 32 ? shapes_32 : shapes_256;
            for (int si = 0; si < 6; si++) {
                const shape &s = shapes[si];
                std::vector<uint8_t> wb = make_weight(t, s.k, s.m);
                std::vector<float> x = test::random_floats((size_t)s.k * s.n);
                dev_buf dw(b, wb), dx(b, x), dy(b, (size_t)s.n * s.m * 4);
                weight w;
                w.type = t;
                w.ne0 = s.k;
                w.ne1 = s.m;
                w.data = dw.p;
                w.nbytes = wb.size();
                b.matmul(w, dx.f(), s.n, dy.f());
                std::vector<float> y = dy.get<float>((size_t)s.n * s.m);
                std::vector<float> ref((size_t)s.n * s.m);
                double worst = 0;
                std::vector<float> wrow(s.k);
                for (int64_t r = 0; r < s.m; r++) {
                    const uint8_t *row = wb.data() + r * type_row_bytes(t, s.k);
                    dequantize_row(t, row, wrow.data(), s.k);
                    double wn = 0;
                    for (float v : wrow) wn += (double)v * v;
                    for (int i = 0; i < s.n; i++) {
                        const float *xi = x.data() + (size_t)i * s.k;
                        ref[(size_t)i * s.m + r] = (float)dot_row_reference(t, row, xi, s.k);
                        double xn = 0;
                        for (int64_t j = 0; j < s.k; j++) xn += (double)xi[j] * xi[j];
                        // per output: error relative to ||w_r|| * ||x_i|| (catches one wrong row)
                        const double e = std::fabs((double)y[(size_t)i * s.m + r] - ref[(size_t)i * s.m + r]) /
                                         (std::sqrt(wn * xn) + 1e-30);
                        worst = std::max(worst, e);
                    }
                }
                const double rel = y.size() >= 64 ? test::rel_error(y.data(), ref.data(), y.size()) : 0.0;
                const matmul_tol tol = matmul_tolerance(t, label, s.n);
                CHECK_MSG(rel <= tol.rel && worst <= tol.worst,
                          "%s %s k=%lld m=%lld n=%d: relative error %g (tol %g), worst output %g (tol %g)", label.c_str(),
                          type_name(t), (long long)s.k, (long long)s.m, s.n, rel, tol.rel, worst, tol.worst);
            }
        }
        // bad weights are refused with a clear error
        std::vector<float> x(64, 1.0f), y(64);
        dev_buf dx(b, x), dy(b, 64 * 4);
        weight w;
        w.type = GGML_TYPE_Q4_K;
        w.ne0 = 100;
        w.ne1 = 1;
        w.data = dx.p;
        bool threw = false;
        try { b.matmul(w, dx.f(), 1, dy.f()); } catch (const endless::error &e) { threw = e.status() == ENDLESS_ERR_INVALID_ARGUMENT; }
        CHECK_MSG(threw, "%s: Q4_K row of 100 must be refused", label.c_str());
        w.type = GGML_TYPE_Q5_K;
        w.ne0 = 256;
        threw = false;
        try { b.matmul(w, dx.f(), 1, dy.f()); } catch (const endless::error &e) { threw = e.status() == ENDLESS_ERR_UNSUPPORTED; }
        CHECK_MSG(threw, "%s: Q5_K must be refused as unsupported", label.c_str());
    });
}

TEST(get_rows_every_type) {
    for_each_backend([](backend &b, const std::string &label) {
        for (ggml_type t : ALL_TYPES) {
            const int64_t k = type_block(t) == 1 ? 37 : 2 * type_block(t), m = 11;
            std::vector<uint8_t> wb = make_weight(t, k, m);
            dev_buf dw(b, wb), dout(b, 5 * k * 4);
            weight w;
            w.type = t;
            w.ne0 = k;
            w.ne1 = m;
            w.data = dw.p;
            w.nbytes = wb.size();
            const int32_t ids[5] = {3, 0, 10, 3, 7};
            b.get_rows(w, ids, 5, dout.f());
            std::vector<float> out = dout.get<float>(5 * k), expect(k);
            for (int i = 0; i < 5; i++) {
                dequantize_row(t, wb.data() + ids[i] * type_row_bytes(t, k), expect.data(), k);
                CHECK_MSG(std::memcmp(expect.data(), out.data() + i * k, k * 4) == 0, "%s %s row %d", label.c_str(), type_name(t), ids[i]);
            }
            const int32_t bad[1] = {11};
            bool threw = false;
            try { b.get_rows(w, bad, 1, dout.f()); } catch (const endless::error &e) { threw = e.status() == ENDLESS_ERR_INVALID_ARGUMENT; }
            CHECK_MSG(threw, "%s: row id past the end must be refused", label.c_str());
        }
    });
}

// ---------------------------------------------------------------- elementwise ops

TEST(elementwise_ops) {
    for_each_backend([](backend &b, const std::string &label) {
        for (int n : {1, 5, 40}) {
            const int dim = 1 + rand_int(1, 900);
            std::vector<float> x = test::random_floats((size_t)n * dim, -3, 3), g = test::random_floats(dim);
            // rms_norm
            dev_buf dx(b, x), dg(b, g), dy(b, x.size() * 4);
            const float eps = 1e-5f;
            b.rms_norm(dx.f(), dg.f(), n, dim, eps, dy.f());
            std::vector<float> y = dy.get<float>(x.size()), ref(x.size());
            for (int i = 0; i < n; i++) {
                double ss = 0;
                for (int j = 0; j < dim; j++) ss += (double)x[i * dim + j] * x[i * dim + j];
                const double r = 1.0 / std::sqrt(ss / dim + eps);
                for (int j = 0; j < dim; j++) ref[i * dim + j] = (float)(x[i * dim + j] * r * g[j]);
            }
            CHECK_MSG(test::rel_error(y.data(), ref.data(), y.size()) < 1e-6, "%s rms_norm n=%d dim=%d", label.c_str(), n, dim);
            // add_bias
            b.add_bias(dx.f(), dg.f(), n, dim);
            y = dx.get<float>(x.size());
            for (int i = 0; i < n; i++)
                for (int j = 0; j < dim; j++) ref[i * dim + j] = x[i * dim + j] + g[j];
            CHECK_MSG(test::rel_error(y.data(), ref.data(), y.size()) < 1e-7, "%s add_bias", label.c_str());
            // add
            std::vector<float> a = test::random_floats(x.size()), c = test::random_floats(x.size());
            dev_buf da(b, a), dc(b, c);
            b.add(da.f(), dc.f(), a.size());
            y = da.get<float>(a.size());
            for (size_t i = 0; i < a.size(); i++) ref[i] = a[i] + c[i];
            CHECK_MSG(test::rel_error(y.data(), ref.data(), y.size()) < 1e-7, "%s add", label.c_str());
            // swiglu
            std::vector<float> gate = test::random_floats(x.size(), -8, 8);
            dev_buf dgate(b, gate), dout(b, x.size() * 4);
            b.swiglu(dgate.f(), dc.f(), x.size(), dout.f());
            y = dout.get<float>(x.size());
            for (size_t i = 0; i < x.size(); i++) ref[i] = (float)(gate[i] / (1.0 + std::exp(-(double)gate[i])) * c[i]);
            CHECK_MSG(test::rel_error(y.data(), ref.data(), y.size()) < 1e-6, "%s swiglu", label.c_str());
        }
        // gates far out on both sides (exp must neither overflow nor lose the small side)
        {
            const std::vector<float> g = {-100, -50, -20, -3, -1e-3f, 0, 1e-3f, 3, 20, 50, 100, -87.5f, 88.5f, -0.5f, 7, -7, 1, 2};
            std::vector<float> u = test::random_floats(g.size()), ref(g.size());
            dev_buf dg(b, g), du(b, u), dout(b, g.size() * 4);
            b.swiglu(dg.f(), du.f(), g.size(), dout.f());
            std::vector<float> y = dout.get<float>(g.size());
            for (size_t i = 0; i < g.size(); i++) ref[i] = (float)(g[i] / (1.0 + std::exp(-(double)g[i])) * u[i]);
            for (size_t i = 0; i < g.size(); i++)
                CHECK_MSG(std::fabs(y[i] - ref[i]) <= 1e-6 * std::fabs(ref[i]) + 1e-30, "%s swiglu(%g) = %g, expected %g", label.c_str(), g[i], y[i] / u[i], ref[i] / u[i]);
        }
        // large counts take the threaded path
        const size_t big = 200003;
        std::vector<float> a = test::random_floats(big), c = test::random_floats(big), ref(big);
        dev_buf da(b, a), dc(b, c), dout(b, big * 4);
        b.swiglu(da.f(), dc.f(), big, dout.f());
        std::vector<float> y = dout.get<float>(big);
        for (size_t i = 0; i < big; i++) ref[i] = (float)(a[i] / (1.0 + std::exp(-(double)a[i])) * c[i]);
        CHECK_MSG(test::rel_error(y.data(), ref.data(), big) < 1e-6, "%s swiglu large", label.c_str());
        b.add(da.f(), dc.f(), big);
        y = da.get<float>(big);
        for (size_t i = 0; i < big; i++) ref[i] = a[i] + c[i];
        CHECK_MSG(test::rel_error(y.data(), ref.data(), big) < 1e-7, "%s add large", label.c_str());
    });
}

// The greedy pick where the logits are (backend::argmax) against the host's greedy_index: ties
// (the first index wins), NaN (never wins), -0 and +0 (equal), all -inf, the largest value at the
// ends, lengths across the launch's stretches, a start that is not 16-byte aligned.
TEST(argmax_matches_greedy_index) {
    for_each_backend([](backend &b, const std::string &label) {
        for (int64_t n : {1, 2, 7, 255, 1024, 1025, 4097, 151936, 200003}) {
            for (int pattern = 0; pattern < 7; pattern++) {
                std::vector<float> x = test::random_floats((size_t)n + 1, -4, 4);
                float *v = x.data() + 1;  // (the device copy starts 4 bytes into its allocation)
                switch (pattern) {
                case 1:  // a tie of the largest value, far apart
                    v[n / 3] = v[n - 1] = 9.0f;
                    break;
                case 2:  // NaN everywhere the largest would be, the largest after them
                    for (int64_t i = 0; i < n; i += 3) v[i] = NAN;
                    v[n - 1] = 5.0f;
                    break;
                case 3:  // every value the same: index 0
                    std::fill(v, v + n, 1.5f);
                    break;
                case 4:  // -0 and +0 as the largest: the first of them
                    for (int64_t i = 0; i < n; i++) v[i] = -1.0f;
                    v[n / 2] = -0.0f;
                    v[n - 1] = 0.0f;
                    break;
                case 5:  // nothing above -inf (NaN and -inf): index 0
                    for (int64_t i = 0; i < n; i++) v[i] = i % 2 ? -INFINITY : NAN;
                    break;
                case 6:  // +inf at the end and the start
                    v[n - 1] = INFINITY;
                    v[0] = INFINITY;
                    break;
                default:
                    break;
                }
                dev_buf dx(b, x), dout(b, 4);
                b.argmax(dx.f() + 1, n, (int32_t *)dout.p, argmax_penalty{});
                const int32_t got = dout.get<int32_t>(1)[0], want = greedy_index(v, (int32_t)n);
                CHECK_MSG(got == want, "%s argmax n=%lld pattern %d: %d, expected %d", label.c_str(), (long long)n, pattern, got, want);
                // with a repetition penalty: the sampler's greedy draw over the same recent tokens
                // (the largest values among them, so the penalty decides; some ids twice, some
                // outside the vocabulary, which the sampler drops)
                std::vector<int32_t> recent;
                for (int i = 0; i < 40; i++) recent.push_back(rand_int(0, (int)n - 1));
                recent.push_back((int32_t)n / 3);
                recent.push_back((int32_t)n - 1);
                recent.push_back((int32_t)n + 5);
                recent.push_back(-2);
                for (float penalty : {1.3f, 0.7f, 1e-3f}) {
                    endless_sampler_params sp = endless_sampler_default_params();
                    sp.temperature = 0.0f;
                    sp.repeat_penalty = penalty;
                    sp.repeat_last_n = 64;
                    sampler smp(sp);
                    const std::vector<int32_t> ids = smp.penalized_ids(recent.data(), (int32_t)recent.size(), (int32_t)n);
                    b.argmax(dx.f() + 1, n, (int32_t *)dout.p, argmax_penalty{ids.data(), (int)ids.size(), penalty});
                    const int32_t gp = dout.get<int32_t>(1)[0];
                    const int32_t wp = smp.sample(v, (int32_t)n, recent.data(), (int32_t)recent.size());
                    CHECK_MSG(gp == wp, "%s argmax n=%lld pattern %d penalty %g: %d, the sampler draws %d", label.c_str(), (long long)n, pattern,
                              penalty, gp, wp);
                }
                // x is left as it was
                const std::vector<float> back = dx.get<float>(x.size());
                CHECK_MSG(std::memcmp(back.data(), x.data(), x.size() * 4) == 0, "%s argmax changed its input", label.c_str());
            }
        }
        // bad lengths and penalized ids fail clearly
        dev_buf dx(b, 16 * 4), dout(b, 4);
        const int32_t unsorted[2] = {3, 1}, outside[1] = {16};
        const argmax_penalty bad[4] = {{}, {unsorted, 2, 1.1f}, {outside, 1, 1.1f}, {unsorted, 1, -1.0f}};
        for (int c = 0; c < 6; c++) {
            bool threw = false;
            try {
                b.argmax(dx.f(), c < 2 ? -3 * c : 16, (int32_t *)dout.p, c < 2 ? bad[0] : c < 5 ? bad[c - 1] : argmax_penalty{unsorted, ARGMAX_MAX_PENALIZED + 1, 1.1f});
            } catch (const error &) {
                threw = true;
            }
            CHECK_MSG(threw, "%s argmax case %d did not fail", label.c_str(), c);
        }
    });
}

// The SwiGLU feed-forward block with its residual add (backend::ffn_swiglu_add), and a product
// with its residual add (backend::matmul_add). The block runs after an
// rms_norm of x as the model issues it (so a backend's norm fusion is in play): decode-sized and
// prefill-sized n, BF16 and Q8_0 weights, against double precision on the stored weights. The
// error is measured on what the op adds to x.
TEST(fused_residual_ops_match_reference) {
    for_each_backend([](backend &b, const std::string &label) {
        const int64_t d = 256, ff = 704;
        for (ggml_type t : {GGML_TYPE_BF16, GGML_TYPE_Q8_0}) {
            const std::vector<uint8_t> wg = make_weight(t, d, ff), wu = make_weight(t, d, ff), wd = make_weight(t, ff, d);
            dev_buf dwg(b, wg), dwu(b, wu), dwd(b, wd);
            auto as_weight = [t](const dev_buf &buf, int64_t k, int64_t m) {
                weight w;
                w.type = t;
                w.ne0 = k;
                w.ne1 = m;
                w.data = buf.p;
                w.nbytes = buf.bytes;
                return w;
            };
            const weight gate = as_weight(dwg, d, ff), up = as_weight(dwu, d, ff), down = as_weight(dwd, ff, d);
            std::vector<float> Wg((size_t)ff * d), Wu((size_t)ff * d), Wd((size_t)d * ff);
            for (int64_t r = 0; r < ff; r++) {
                dequantize_row(t, wg.data() + r * type_row_bytes(t, d), Wg.data() + r * d, d);
                dequantize_row(t, wu.data() + r * type_row_bytes(t, d), Wu.data() + r * d, d);
            }
            for (int64_t r = 0; r < d; r++) dequantize_row(t, wd.data() + r * type_row_bytes(t, ff), Wd.data() + r * ff, ff);
            for (int n : {3, 40}) {
                std::vector<float> x = test::random_floats((size_t)n * d, -2, 2), g = test::random_floats(d, 0.5f, 1.5f);
                dev_buf dx(b, x), dg(b, g), dh(b, x.size() * 4), dgate(b, (size_t)n * ff * 4), dup(b, (size_t)n * ff * 4);
                b.rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dh.f());
                b.ffn_swiglu_add(dx.f(), dh.f(), gate, up, down, n, dgate.f(), dup.f(), dh.f());
                const std::vector<float> y = dx.get<float>(x.size());
                std::vector<float> got(x.size()), ref(x.size());
                std::vector<double> h(d), sv(ff);
                for (int i = 0; i < n; i++) {
                    const float *xi = x.data() + (size_t)i * d;
                    double ss = 0;
                    for (int64_t j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
                    const double rr = 1.0 / std::sqrt(ss / d + 1e-6);
                    for (int64_t j = 0; j < d; j++) h[j] = xi[j] * rr * g[j];
                    for (int64_t r = 0; r < ff; r++) {
                        double a = 0, c = 0;
                        for (int64_t j = 0; j < d; j++) { a += Wg[r * d + j] * h[j]; c += Wu[r * d + j] * h[j]; }
                        sv[r] = a / (1.0 + std::exp(-a)) * c;
                    }
                    for (int64_t r = 0; r < d; r++) {
                        double o = 0;
                        for (int64_t j = 0; j < ff; j++) o += Wd[r * ff + j] * sv[j];
                        ref[(size_t)i * d + r] = (float)o;
                        got[(size_t)i * d + r] = y[(size_t)i * d + r] - xi[r];
                    }
                }
                // 16-bit operands (CUDA's default mode for prefill) and 8-bit activations
                // (quantized weights on the CPU) both stay within ~1e-2 through the two products
                const double tol = t == GGML_TYPE_BF16 && !(rounds_to_16bit(label) && n > 8) ? 1e-4 : 3e-2;
                const double e = test::rel_error(got.data(), ref.data(), got.size());
                CHECK_MSG(e <= tol, "%s ffn_swiglu_add %s n=%d: relative error %g (tol %g)", label.c_str(), type_name(t), n, e, tol);

                // matmul_add: y += W_down s on the same shapes (s: fresh values)
                std::vector<float> sx = test::random_floats((size_t)n * ff), y0 = test::random_floats((size_t)n * d, -2, 2);
                dev_buf ds(b, sx), dy(b, y0), dtmp(b, (size_t)n * d * 4);
                b.matmul_add(down, ds.f(), n, dy.f(), dtmp.f());
                const std::vector<float> y1 = dy.get<float>(y0.size());
                for (int i = 0; i < n; i++)
                    for (int64_t r = 0; r < d; r++) {
                        double o = 0;
                        for (int64_t j = 0; j < ff; j++) o += (double)Wd[r * ff + j] * sx[(size_t)i * ff + j];
                        ref[(size_t)i * d + r] = (float)o;
                        got[(size_t)i * d + r] = y1[(size_t)i * d + r] - y0[(size_t)i * d + r];
                    }
                const matmul_tol mt = matmul_tolerance(t, label, n);
                const double e2 = test::rel_error(got.data(), ref.data(), got.size());
                CHECK_MSG(e2 <= mt.rel, "%s matmul_add %s n=%d: relative error %g (tol %g)", label.c_str(), type_name(t), n, e2, mt.rel);
            }
        }
    });
}

TEST(kv_store_writes_slots) {
    for_each_backend([](backend &b, const std::string &label) {
        const int n_slots = 13, row = 2 * 24, n = 4;
        std::vector<float> kc(n_slots * row, -1.0f), vc(n_slots * row, -2.0f);
        std::vector<float> k = test::random_floats(n * row), v = test::random_floats(n * row);
        dev_buf dkc(b, kc), dvc(b, vc), dk(b, k), dv(b, v);
        const int32_t slots[n] = {12, 0, 5, 6};
        b.kv_store(dkc.f(), dvc.f(), dk.f(), dv.f(), slots, n, row);
        std::vector<float> kc2 = dkc.get<float>(kc.size()), vc2 = dvc.get<float>(vc.size());
        for (int i = 0; i < n; i++) {
            std::copy(k.begin() + i * row, k.begin() + (i + 1) * row, kc.begin() + slots[i] * row);
            std::copy(v.begin() + i * row, v.begin() + (i + 1) * row, vc.begin() + slots[i] * row);
        }
        CHECK_MSG(kc == kc2 && vc == vc2, "%s kv_store", label.c_str());
    });
}

// ---------------------------------------------------------------- attention

namespace {

// The documented semantics of attn_args, in double precision.
void attention_reference(const attn_args &a, const std::vector<float> &rc, const std::vector<float> &rs, std::vector<float> &out) {
    const int hd = a.head_dim, half = a.n_rot / 2, ratio = a.n_head / a.n_head_kv;
    auto rope = [&](const float *src, int pos, std::vector<double> &dst) {
        dst.assign(src, src + hd);
        for (int i = 0; i < half; i++) {
            const int i0 = a.mode == ROPE_MODE_NEOX ? i : 2 * i, i1 = a.mode == ROPE_MODE_NEOX ? i + half : 2 * i + 1;
            const double c = rc[(size_t)pos * half + i], s = rs[(size_t)pos * half + i];
            dst[i0] = src[i0] * c - src[i1] * s;
            dst[i1] = src[i0] * s + src[i1] * c;
        }
    };
    out.assign((size_t)a.n_q * a.n_head * hd, 0.0f);
    std::vector<double> q, k;
    for (int i = 0; i < a.n_q; i++) {
        std::vector<int> slots, pos;
        for (int j = 0; j < a.n_fixed; j++) { slots.push_back(a.keys[j]); pos.push_back(j); }
        for (int j = a.win_lo[i]; j < a.win_hi[i]; j++) {
            slots.push_back(a.keys[a.n_fixed + j]);
            pos.push_back(a.n_fixed + (j - a.win_lo[i]));
        }
        const int q_pos = a.n_fixed + (a.win_hi[i] - a.win_lo[i]) - 1;
        for (int h = 0; h < a.n_head; h++) {
            const int g = h / ratio;
            rope(a.q + ((size_t)i * a.n_head + h) * hd, q_pos, q);
            std::vector<double> sc(slots.size());
            double mx = -1e300;
            for (size_t v = 0; v < slots.size(); v++) {
                rope(a.k_cache + ((size_t)slots[v] * a.n_head_kv + g) * hd, pos[v], k);
                double d = 0;
                for (int j = 0; j < hd; j++) d += q[j] * k[j];
                sc[v] = d * a.scale;
                mx = std::max(mx, sc[v]);
            }
            double sum = 0;
            for (double &s : sc) { s = std::exp(s - mx); sum += s; }
            for (int j = 0; j < hd; j++) {
                double o = 0;
                for (size_t v = 0; v < slots.size(); v++) o += sc[v] / sum * a.v_cache[((size_t)slots[v] * a.n_head_kv + g) * hd + j];
                out[((size_t)i * a.n_head + h) * hd + j] = (float)o;
            }
        }
    }
}

}  // namespace

TEST(attention_matches_reference) {
    // windows: 0 = every query its own random window, 1 = a causal prefill chunk (one win_lo,
    // growing win_hi), 2 = a sliding window (win_lo and win_hi both advance), 3 = one win_lo,
    // random win_hi. Long windows with few queries and kv heads make a multi-threaded backend
    // split the keys into ranges and merge the partial softmaxes.
    struct cfg { int n_head, n_head_kv, head_dim, n_rot; rope_mode mode; int n_fixed, n_win, n_q, windows; };
    const cfg cfgs[] = {
        {4, 4, 64, 64, ROPE_MODE_NORM, 4, 20, 1, 0},   {4, 2, 64, 64, ROPE_MODE_NEOX, 1, 33, 5, 0},
        {8, 2, 40, 24, ROPE_MODE_NORM, 0, 17, 6, 0},   {8, 2, 40, 24, ROPE_MODE_NEOX, 3, 50, 3, 0},
        {12, 3, 128, 128, ROPE_MODE_NEOX, 4, 70, 9, 0}, {2, 1, 18, 0, ROPE_MODE_NORM, 2, 9, 4, 0},
        {6, 6, 32, 16, ROPE_MODE_NEOX, 0, 1, 1, 0},    {4, 1, 64, 64, ROPE_MODE_NORM, 5, 0, 2, 0},
        {8, 4, 64, 64, ROPE_MODE_NORM, 4, 40, 7, 1},   {8, 2, 128, 128, ROPE_MODE_NEOX, 1, 300, 16, 1},
        {4, 1, 48, 32, ROPE_MODE_NEOX, 0, 30, 6, 2},   {4, 2, 64, 64, ROPE_MODE_NORM, 2, 25, 5, 2},
        {4, 1, 64, 64, ROPE_MODE_NORM, 4, 800, 1, 0},  {8, 2, 64, 32, ROPE_MODE_NEOX, 2, 600, 1, 0},
        {4, 1, 32, 32, ROPE_MODE_NEOX, 0, 900, 3, 3},  {6, 2, 80, 80, ROPE_MODE_NORM, 1, 1000, 2, 3},
    };
    for_each_backend([&](backend &b, const std::string &label) {
        for (const cfg &c : cfgs) {
            const int n_keys = c.n_fixed + c.n_win, n_slots = n_keys + 7;
            const int half = c.n_rot / 2, n_pos = n_keys + 1;
            std::vector<float> q = test::random_floats((size_t)c.n_q * c.n_head * c.head_dim, -2, 2);
            std::vector<float> kc = test::random_floats((size_t)n_slots * c.n_head_kv * c.head_dim, -2, 2);
            std::vector<float> vc = test::random_floats((size_t)n_slots * c.n_head_kv * c.head_dim);
            std::vector<float> rc((size_t)n_pos * std::max(half, 1)), rs(rc.size());
            for (int p = 0; p < n_pos; p++)
                for (int i = 0; i < half; i++) {
                    const double theta = p * std::pow(10000.0, -2.0 * i / std::max(c.n_rot, 1));
                    rc[(size_t)p * half + i] = (float)std::cos(theta);
                    rs[(size_t)p * half + i] = (float)std::sin(theta);
                }
            // cache slots in a random order; every query its own window
            std::vector<int32_t> keys(n_slots);
            std::iota(keys.begin(), keys.end(), 0);
            std::shuffle(keys.begin(), keys.end(), test::rng());
            keys.resize(n_keys);
            std::vector<int32_t> lo(c.n_q), hi(c.n_q);
            for (int i = 0; i < c.n_q; i++) {
                if (c.n_win == 0) { lo[i] = hi[i] = 0; continue; }
                if (c.windows == 1) { lo[i] = 0; hi[i] = c.n_win - c.n_q + 1 + i; continue; }
                if (c.windows == 2) { hi[i] = c.n_win - c.n_q + 1 + i; lo[i] = std::max(0, hi[i] - 12); continue; }
                if (c.windows == 3) { lo[i] = 0; hi[i] = i == 0 ? rand_int(1, 20) : rand_int(1, c.n_win); continue; }
                hi[i] = i == 0 ? c.n_win : rand_int(1, c.n_win);
                lo[i] = rand_int(0, c.n_fixed > 0 ? hi[i] : hi[i] - 1);
            }
            dev_buf dq(b, q), dkc(b, kc), dvc(b, vc), drc(b, rc), drs(b, rs), dout(b, q.size() * 4);
            attn_args a;
            a.q = dq.f();
            a.k_cache = dkc.f();
            a.v_cache = dvc.f();
            a.out = dout.f();
            a.keys = keys.data();
            a.n_keys = n_keys;
            a.n_fixed = c.n_fixed;
            a.win_lo = lo.data();
            a.win_hi = hi.data();
            a.n_q = c.n_q;
            a.n_head = c.n_head;
            a.n_head_kv = c.n_head_kv;
            a.head_dim = c.head_dim;
            a.n_rot = c.n_rot;
            a.mode = c.mode;
            a.rope_cos = drc.f();
            a.rope_sin = drs.f();
            a.scale = 1.0f / std::sqrt((float)c.head_dim);
            b.attention(a);
            std::vector<float> out = dout.get<float>(q.size()), ref;
            attn_args ah = a;  // the reference reads host copies
            ah.q = q.data();
            ah.k_cache = kc.data();
            ah.v_cache = vc.data();
            attention_reference(ah, rc, rs, ref);
            const double e = test::rel_error(out.data(), ref.data(), out.size());
            // many queries on tensor cores (f16 operands) in the CUDA default mode
            const double tol = rounds_to_16bit(label) && c.n_q >= 16 ? 5e-3 : 2e-5;
            CHECK_MSG(e < tol, "%s attention heads %d/%d dim %d rot %d mode %d fixed %d win %d q %d: error %g", label.c_str(),
                      c.n_head, c.n_head_kv, c.head_dim, c.n_rot, (int)c.mode, c.n_fixed, c.n_win, c.n_q, e);
        }
        // a window outside the key list is refused
        std::vector<float> buf(64 * 64, 0.0f), tab(64, 1.0f);
        dev_buf d(b, buf), dt(b, tab);
        const int32_t keys[2] = {0, 1}, lo[1] = {0}, hi[1] = {3};
        attn_args a;
        a.q = a.k_cache = a.v_cache = d.f();
        a.out = d.f();
        a.keys = keys;
        a.n_keys = 2;
        a.win_lo = lo;
        a.win_hi = hi;
        a.n_q = 1;
        a.n_head = a.n_head_kv = 1;
        a.head_dim = a.n_rot = 8;
        a.rope_cos = a.rope_sin = dt.f();
        bool threw = false;
        try { b.attention(a); } catch (const endless::error &e) { threw = e.status() == ENDLESS_ERR_INVALID_ARGUMENT; }
        CHECK_MSG(threw, "%s: window past the keys must be refused", label.c_str());
    });
}

TEST_MAIN()
