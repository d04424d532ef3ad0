// Every op of the CUDA backend against plain double-precision references (built on quant.h's
// dequantizers, which define the tensor types) on fresh random inputs, with poisoned outputs so
// an unwritten element fails. Also: CUDA-graph replay of a repeated op sequence, bad arguments
// and out-of-memory errors. Skipped, with a message, where the build has no CUDA or the machine
// has no device.
#include "test_util.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <tuple>

#include "backend.h"
#include "error.h"
#include "quant.h"
#include "sampler.h"
#ifdef ENDLESS_WITH_CUDA
#include "cuda/backend_cuda.h"
#endif

#ifdef ENDLESS_WITH_CUDA
using namespace endless;

namespace {

backend &be() {
    static std::unique_ptr<backend> b = backend_cuda_create(0);
    return *b;
}

// Device buffer of floats with upload/download helpers.
struct dbuf {
    void *p = nullptr;
    size_t n = 0;
    explicit dbuf(size_t count) : n(count) { p = be().alloc(count * sizeof(float) + 16); }
    dbuf(const std::vector<float> &v) : dbuf(v.size()) { be().upload(p, v.data(), v.size() * sizeof(float)); }
    ~dbuf() { be().release(p); }
    dbuf(const dbuf &) = delete;
    float *f() const { return (float *)p; }
    void poison() {
        std::vector<float> v(n, std::numeric_limits<float>::quiet_NaN());
        be().upload(p, v.data(), n * sizeof(float));
    }
    std::vector<float> get() const {
        std::vector<float> v(n);
        be().download(v.data(), p, n * sizeof(float));
        return v;
    }
};

// A backend switch set off in the environment (its variable is "0"), as the tests run under gpu-check.sh.
bool env_off(const char *name) {
    const char *e = std::getenv(name);
    return e && std::strcmp(e, "0") == 0;
}
bool all_finite(const std::vector<float> &v) {
    for (float x : v) if (!std::isfinite(x)) return false;
    return true;
}

const ggml_type ALL_TYPES[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                               GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};

// Error bound of a decode product (n <= 8 tokens) against double precision on the stored weights:
// fp32 accumulation, except quantized rows in the default mode, whose activations are quantized to
// int8 as the CPU backend quantizes them (test_backend_ops' bound for quantized types).
bool quantized(ggml_type t) { return t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16; }
double decode_tol(ggml_type t, int n, bool precise) { return quantized(t) && n <= 8 && !precise ? 1.5e-2 : 2e-5; }

// A random weight of type t, quantized from random floats; bytes on the host and on the device.
struct test_weight {
    std::vector<uint8_t> bytes;
    weight w;
    test_weight(ggml_type t, int64_t ne0, int64_t ne1) {
        const size_t row = ggml_row_size(t, ne0);
        bytes.resize(row * ne1);
        for (int64_t r = 0; r < ne1; r++) {
            auto f = test::random_floats(ne0);
            quantize_row(t, f.data(), bytes.data() + r * row, ne0);
        }
        w.type = t; w.ne0 = ne0; w.ne1 = ne1; w.nbytes = bytes.size();
        w.data = be().place_weight(bytes.data(), bytes.size());
    }
    ~test_weight() { be().release(const_cast<void *>(w.data)); }
    std::vector<float> row(int64_t r) const {
        std::vector<float> v(w.ne0);
        dequantize_row(w.type, bytes.data() + r * ggml_row_size(w.type, w.ne0), v.data(), w.ne0);
        return v;
    }
};

TEST(cuda_get_rows_all_types) {
    for (ggml_type t : ALL_TYPES) {
        for (int64_t ne0 : {256, 512, 40}) {
            if (ne0 % ggml_type_info(t).block_size) continue;
            test_weight tw(t, ne0, 37);
            std::vector<int32_t> ids = {0, 36, 5, 5, 17};
            dbuf out(ids.size() * ne0);
            out.poison();
            be().get_rows(tw.w, ids.data(), (int)ids.size(), out.f());
            auto got = out.get();
            std::vector<float> ref;
            for (int32_t id : ids) { auto r = tw.row(id); ref.insert(ref.end(), r.begin(), r.end()); }
            const double e = test::rel_error(got.data(), ref.data(), ref.size());
            CHECK_MSG(all_finite(got) && e < 1e-6, "type %s ne0 %lld: rel error %g", ggml_type_info(t).name, (long long)ne0, e);
        }
    }
}

// y[i][r] = b[r] + sum_k W[r][k] in[i][k] for n rows of K inputs and M outputs, summed in double and
// rounded to float once: the reference of a product.
template <typename T>
std::vector<float> reference_product(const test_weight &tw, const std::vector<T> &in, int n, int64_t K, int64_t M,
                                     const std::vector<float> *b = nullptr) {
    std::vector<float> y((size_t)n * M);
    for (int64_t r = 0; r < M; r++) {
        const auto wr = tw.row(r);
        for (int i = 0; i < n; i++) {
            double acc = b ? (*b)[r] : 0.0;
            for (int64_t k = 0; k < K; k++) acc += (double)wr[k] * in[(size_t)i * K + k];
            y[(size_t)i * M + r] = (float)acc;
        }
    }
    return y;
}
// y[n, M] = x[n, K] W^T for the whole weight.
std::vector<float> reference_product(const test_weight &tw, const std::vector<float> &x, int n) {
    return reference_product(tw, x, n, tw.w.ne0, tw.w.ne1);
}

void check_matmul(ggml_type t, int64_t K, int64_t M, int n) {
    test_weight tw(t, K, M);
    auto x = test::random_floats((size_t)n * K);
    dbuf dx(x), dy((size_t)n * M);
    const std::vector<float> ref = reference_product(tw, x, n);
    // n <= 8 (and F32 weights) run in fp32; larger n on tensor cores with 16-bit operands: by
    // default the activations are rounded to 16 bits (~1e-3); in precise mode F16/BF16 products
    // take them as two 16-bit parts and match fp32
    const bool tc = n > 8 && t != GGML_TYPE_F32 && K % 32 == 0;
    for (bool precise : {true, false}) {
        backend_cuda_set_precise(be(), precise);
        dy.poison();
        be().matmul(tw.w, dx.f(), n, dy.f());
        auto got = dy.get();
        const double e = test::rel_error(got.data(), ref.data(), ref.size());
        const bool float16 = t == GGML_TYPE_BF16 || t == GGML_TYPE_F16;
        // quantized: f16 operands on our kernel, bf16 on cuBLAS (weights decoded to bf16: ~2e-3)
        const double tol = !tc ? decode_tol(t, n, precise) : float16 ? (precise ? 2e-5 : 5e-3) : 4e-3;
        CHECK_MSG(all_finite(got) && e < tol, "matmul type %s K %lld M %lld n %d %s: rel error %g (tol %g)",
                  ggml_type_info(t).name, (long long)K, (long long)M, n, precise ? "precise" : "default", e, tol);
    }
    backend_cuda_set_precise(be(), false);
}

// rms_norm in double (eps 1e-6), rows of d.
std::vector<double> reference_rms_norm(const std::vector<float> &x, const std::vector<float> &g, int n, int64_t d) {
    std::vector<double> xn((size_t)n * d);
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int64_t k = 0; k < d; k++) ss += (double)x[i * d + k] * x[i * d + k];
        const double r = 1.0 / std::sqrt(ss / d + 1e-6);
        for (int64_t k = 0; k < d; k++) xn[i * d + k] = x[i * d + k] * r * g[k];
    }
    return xn;
}

// The model's attention input block (model.cpp): rms_norm, the q, k and v products, their biases.
void issue_norm_qkv(const dbuf &x, const dbuf &g, const dbuf &xn, const test_weight &wq, const test_weight &wk, const test_weight &wv,
                    const dbuf &q, const dbuf &k, const dbuf &v, const dbuf &bq, const dbuf &bk, const dbuf &bv, int n) {
    const int d = (int)wq.w.ne0;
    be().rms_norm(x.f(), g.f(), n, d, 1e-6f, xn.f());
    be().matmul(wq.w, xn.f(), n, q.f());
    be().matmul(wk.w, xn.f(), n, k.f());
    be().matmul(wv.w, xn.f(), n, v.f());
    be().add_bias(q.f(), bq.f(), n, (int)wq.w.ne1);
    be().add_bias(k.f(), bk.f(), n, (int)wk.w.ne1);
    be().add_bias(v.f(), bv.f(), n, (int)wv.w.ne1);
}

// The decode fusions: rms_norm held back into the following matrix-vector launch(es) (q/k/v
// sharing one input, gate/up with SwiGLU), bias and the K/V store in their epilogue. Every buffer
// must end up as the separate ops would leave it: the normalized rows, q/k/v, the cache rows.
void check_fused_decode(ggml_type t, int n, bool precise, int64_t d = 256, int64_t nkv = 64, int64_t ff = 96) {
    backend_cuda_set_precise(be(), precise);
    const double tol = decode_tol(t, n, precise);
    const int64_t n_slots = 12;
    test_weight wq(t, d, d), wk(t, d, nkv), wv(t, d, nkv);
    auto x = test::random_floats((size_t)n * d, -3, 3), g = test::random_floats(d, 0.5f, 1.5f);
    auto bq = test::random_floats(d), bk = test::random_floats(nkv), bv = test::random_floats(nkv);
    auto kc0 = test::random_floats((size_t)n_slots * nkv), vc0 = test::random_floats((size_t)n_slots * nkv);
    std::vector<int32_t> slots(n);
    for (int i = 0; i < n; i++) slots[i] = (int32_t)((7 + 5 * i) % n_slots);
    dbuf dx(x), dg(g), dxn((size_t)n * d), dq((size_t)n * d), dk((size_t)n * nkv), dv((size_t)n * nkv);
    dbuf dbq(bq), dbk(bk), dbv(bv), dkc(kc0), dvc(vc0);
    dxn.poison();
    issue_norm_qkv(dx, dg, dxn, wq, wk, wv, dq, dk, dv, dbq, dbk, dbv, n);
    be().kv_store(dkc.f(), dvc.f(), dk.f(), dv.f(), slots.data(), n, (int)nkv);
    // host reference
    const std::vector<double> xn = reference_rms_norm(x, g, n, d);
    auto product = [&](test_weight &tw, const std::vector<float> &b, int64_t M) { return reference_product(tw, xn, n, d, M, &b); };
    const auto rq = product(wq, bq, d), rk = product(wk, bk, nkv), rv = product(wv, bv, nkv);
    std::vector<float> rkc = kc0, rvc = vc0, rxn(xn.begin(), xn.end());
    for (int i = 0; i < n; i++)
        for (int64_t c = 0; c < nkv; c++) {
            rkc[slots[i] * nkv + c] = rk[i * nkv + c];
            rvc[slots[i] * nkv + c] = rv[i * nkv + c];
        }
    const char *tn = ggml_type_info(t).name;
    CHECK_MSG(test::rel_error(dxn.get().data(), rxn.data(), rxn.size()) < 1e-5, "fused rms_norm output, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dq.get().data(), rq.data(), rq.size()) < tol, "fused q, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dk.get().data(), rk.data(), rk.size()) < tol, "fused k, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dv.get().data(), rv.data(), rv.size()) < tol, "fused v, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dkc.get().data(), rkc.data(), rkc.size()) < tol, "fused k cache store, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dvc.get().data(), rvc.data(), rvc.size()) < tol, "fused v cache store, %s n %d", tn, n);

    // gate/up: the norm again, SwiGLU into gate's buffer
    test_weight wgt(t, d, ff), wup(t, d, ff);
    dbuf dgate((size_t)n * ff), dup((size_t)n * ff);
    dxn.poison();
    be().rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dxn.f());
    be().matmul(wgt.w, dxn.f(), n, dgate.f());
    be().matmul(wup.w, dxn.f(), n, dup.f());
    be().swiglu(dgate.f(), dup.f(), (size_t)n * ff, dgate.f());
    const std::vector<float> zero(ff, 0.0f);
    const auto rg = product(wgt, zero, ff), ru = product(wup, zero, ff);
    std::vector<float> rs((size_t)n * ff);
    for (size_t i = 0; i < rs.size(); i++) rs[i] = (float)((double)rg[i] / (1.0 + std::exp(-(double)rg[i])) * ru[i]);
    CHECK_MSG(test::rel_error(dxn.get().data(), rxn.data(), rxn.size()) < 1e-5, "fused rms_norm output (ffn), %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dup.get().data(), ru.data(), ru.size()) < tol, "fused up, %s n %d", tn, n);
    CHECK_MSG(test::rel_error(dgate.get().data(), rs.data(), rs.size()) < 2 * tol, "fused swiglu, %s n %d", tn, n);
    backend_cuda_set_precise(be(), false);
}

// The prefill fusions: an rms_norm or a swiglu followed by a cuBLAS product writes the product's
// bf16 input in its own launch; the f32 outputs must still be exactly the separate ops' outputs.
TEST(cuda_fused_prefill_ops) {
    const int n = 64;
    const int64_t d = 512, ff = 768;
    test_weight w1(GGML_TYPE_BF16, d, ff), w2(GGML_TYPE_Q8_0, ff, d);
    auto x = test::random_floats((size_t)n * d, -3, 3), g = test::random_floats(d, 0.5f, 1.5f);
    auto gate = test::random_floats((size_t)n * ff, -6, 6), up = test::random_floats((size_t)n * ff);
    dbuf dx(x), dg(g), dxn((size_t)n * d), dy((size_t)n * ff), dgate(gate), dup(up), dz((size_t)n * d);
    be().rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dxn.f());
    be().matmul(w1.w, dxn.f(), n, dy.f());
    be().swiglu(dgate.f(), dup.f(), (size_t)n * ff, dgate.f());
    be().matmul(w2.w, dgate.f(), n, dz.f());
    std::vector<float> rxn((size_t)n * d), rs((size_t)n * ff);
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int64_t k = 0; k < d; k++) ss += (double)x[i * d + k] * x[i * d + k];
        const double r = 1.0 / std::sqrt(ss / d + 1e-6);
        for (int64_t k = 0; k < d; k++) rxn[i * d + k] = (float)(x[i * d + k] * r * g[k]);
    }
    for (size_t i = 0; i < rs.size(); i++) rs[i] = (float)((double)gate[i] / (1.0 + std::exp(-(double)gate[i])) * up[i]);
    const auto ry = reference_product(w1, rxn, n, d, ff), rz = reference_product(w2, rs, n, ff, d);
    CHECK_MSG(test::rel_error(dxn.get().data(), rxn.data(), rxn.size()) < 1e-5, "rms_norm output beside a cuBLAS product");
    CHECK_MSG(test::rel_error(dgate.get().data(), rs.data(), rs.size()) < 1e-6, "swiglu output beside a cuBLAS product");
    // bf16 operands (and a Q8_0 weight decoded to bf16): ~2e-3
    CHECK_MSG(test::rel_error(dy.get().data(), ry.data(), ry.size()) < 5e-3, "product of the normalized rows");
    CHECK_MSG(test::rel_error(dz.get().data(), rz.data(), rz.size()) < 5e-3, "product of the swiglu output");
}

// Prefill q/k/v (n > 8, cuBLAS): the three biases join their products' epilogues (cuBLASLt) where no
// later op stands in the way. Every output must be what the separate ops give: against double (bf16
// operands, ~2e-3) and against the same ops with the fusions off (one more rounding of y at most).
// Two orders that must not fold: a later product writing the bias buffer, and one reading the
// unbiased output.
TEST(cuda_prefill_biases_in_product_epilogue) {
    for (ggml_type t : {GGML_TYPE_BF16, GGML_TYPE_Q8_0})
    for (int n : {64, 300}) {
        const char *tn = ggml_type_info(t).name;
        const int64_t d = 256, nkv = 64;
        test_weight wq(t, d, d), wk(t, d, nkv), wv(t, d, nkv), w2(GGML_TYPE_BF16, d, nkv);
        auto x = test::random_floats((size_t)n * d, -3, 3), g = test::random_floats(d, 0.5f, 1.5f);
        auto bq = test::random_floats(d), bk = test::random_floats(nkv), bv = test::random_floats(nkv);
        dbuf dx(x), dg(g), dxn((size_t)n * d), dq((size_t)n * d), dk((size_t)n * nkv), dv((size_t)n * nkv), dz((size_t)n * nkv);
        dbuf dbq(bq), dbk(bk), dbv(bv), dbb(16 * nkv);
        const std::vector<double> xn = reference_rms_norm(x, g, n, d);
        auto product = [&](test_weight &tw, const auto &in, const std::vector<float> *b, int64_t M) {
            return reference_product(tw, in, n, d, M, b);
        };
        const auto rq = product(wq, xn, &bq, d), rk = product(wk, xn, &bk, nkv), rv = product(wv, xn, &bv, nkv);
        std::vector<std::vector<float>> outs[2];
        for (bool fuse : {true, false}) {
            backend_cuda_set_fusion(be(), fuse);
            for (dbuf *b : {&dq, &dk, &dv}) b->poison();
            issue_norm_qkv(dx, dg, dxn, wq, wk, wv, dq, dk, dv, dbq, dbk, dbv, n);
            outs[fuse ? 0 : 1] = {dq.get(), dk.get(), dv.get()};
        }
        backend_cuda_set_fusion(be(), true);
        const std::vector<float> *want[3] = {&rq, &rk, &rv};
        const char *names[3] = {"q", "k", "v"};
        for (int i = 0; i < 3; i++) {
            const double e = test::rel_error(outs[0][i].data(), want[i]->data(), want[i]->size());
            const double es = test::rel_error(outs[0][i].data(), outs[1][i].data(), want[i]->size());
            CHECK_MSG(e < 5e-3 && es < 1e-5, "%s n %d %s + bias: %g against double, %g against the separate ops", tn, n, names[i], e, es);
        }
        // q's bias buffer written between the product and its bias (by `write`): q must get what was
        // written there (want_bias), not what the buffer held when the product ran
        auto check_written_bias = [&](const std::function<void()> &write, const std::vector<float> &want_bias, const char *what) {
            be().rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dxn.f());
            be().matmul(wq.w, dxn.f(), n, dq.f());
            write();
            be().add_bias(dq.f(), dbb.f(), n, (int)d);
            const auto want = product(wq, xn, &want_bias, d);
            const auto got = dq.get();
            CHECK_MSG(test::rel_error(got.data(), want.data(), want.size()) < 5e-3, "%s n %d: bias written by %s", tn, n, what);
        };
        // by a later product (16 tokens' k, a cuBLAS product; the first 4 tokens' are q's bias)
        const auto rk16 = product(wk, xn, nullptr, nkv);
        check_written_bias([&] { be().matmul(wk.w, dxn.f(), 16, dbb.f()); }, std::vector<float>(rk16.begin(), rk16.begin() + d),
                           "a later product");
        // by a held-back rms_norm (one row of x normalized)
        check_written_bias([&] { be().rms_norm(dx.f(), dg.f(), 1, (int)d, 1e-6f, dbb.f()); },
                           std::vector<float>(xn.begin(), xn.begin() + d), "a held-back norm");
        // a later product reads the output before its bias
        be().rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dxn.f());
        be().matmul(wq.w, dxn.f(), n, dq.f());
        be().matmul(w2.w, dq.f(), n, dz.f());
        be().add_bias(dq.f(), dbq.f(), n, (int)d);
        {
            const auto q0 = product(wq, xn, nullptr, d);
            const auto rz = product(w2, q0, nullptr, nkv);
            const auto got = dz.get();
            CHECK_MSG(test::rel_error(got.data(), rz.data(), rz.size()) < 5e-3, "%s n %d: product of the output before its bias", tn, n);
            const auto gq = dq.get();
            CHECK_MSG(test::rel_error(gq.data(), rq.data(), rq.size()) < 5e-3, "%s n %d: output with its bias after a reader", tn, n);
        }
    }
}

// discard(): the f32 rows of an rms_norm that only cuBLAS products read (through its bf16 copy) are
// not written once the caller discards them (they stay as they were: poisoned here), and the
// products are right; an op that reads the f32 rows in between keeps them written and right.
TEST(cuda_discard_drops_norm_rows_only_products_read) {
    const int n = 64;
    const int64_t d = 256, M = 96;
    test_weight w(GGML_TYPE_BF16, d, M);
    auto x = test::random_floats((size_t)n * d, -3, 3), g = test::random_floats(d, 0.5f, 1.5f), z0 = test::random_floats((size_t)n * d);
    dbuf dx(x), dg(g), dxn((size_t)n * d), dy((size_t)n * M), dz(z0);
    const std::vector<double> xn = reference_rms_norm(x, g, n, d);
    const std::vector<float> ryf = reference_product(w, xn, n, d, M);
    for (bool reader : {false, true}) {
        dxn.poison();
        dy.poison();
        be().upload(dz.p, z0.data(), z0.size() * 4);
        be().rms_norm(dx.f(), dg.f(), n, (int)d, 1e-6f, dxn.f());
        be().matmul(w.w, dxn.f(), n, dy.f());
        if (reader) be().add(dz.f(), dxn.f(), (size_t)n * d);  // reads the f32 rows
        be().discard(dxn.f(), (size_t)n * d * 4);
        const auto y = dy.get(), rows = dxn.get(), z = dz.get();
        CHECK_MSG(test::rel_error(y.data(), ryf.data(), ryf.size()) < 5e-3, "product beside a discarded norm (reader %d)", reader);
        if (reader) {
            std::vector<float> rz(z0);
            for (size_t i = 0; i < rz.size(); i++) rz[i] += (float)xn[i];
            CHECK_MSG(test::rel_error(z.data(), rz.data(), rz.size()) < 1e-5, "a reader of the norm's rows before the discard");
        } else {
            bool untouched = true;
            for (float v : rows) untouched = untouched && std::isnan(v);
            CHECK_MSG(untouched, "the discarded f32 rows were written");
        }
    }
}

TEST(cuda_fused_decode_ops) {
    for (ggml_type t : ALL_TYPES)
        for (int n : {1, 3, 8})
            for (bool precise : {false, true}) check_fused_decode(t, n, precise);
    // the 1.5B shape's q/k/v (2048 rows of 1536): two warps a row would be 1.1 waves on an H100 / H200,
    // so the float kernels run the last rows on one warp each (matvec_launch_k)
    for (ggml_type t : {GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_Q8_0})
        for (int n : {1, 2}) check_fused_decode(t, n, false, 1536, 256);
    // one token over more rows than a wave of warps holds (q/k/v 9728 rows in three members with
    // biases and the K/V store, gate/up pairs of 9000 rows): matvec_float_stream_kernel
    for (ggml_type t : {GGML_TYPE_BF16, GGML_TYPE_F16}) check_fused_decode(t, 1, false, 1536, 4096, 9000);
    // quantized rows of more than one 2048-value stretch with the norm fused
    for (ggml_type t : {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K}) check_fused_decode(t, 1, false, 4352, 256);
}

// Tokens of quantized rows in the default mode (matvec_int8_kernel): x quantized to int8 in shared
// memory (per 32 values for Q8_0 / Q4_0, per 256 for Q4_K / Q6_K), integer dot products, warps
// looping over more rows than the grid has warps (12,000 rows), rows of two stretches and a partial
// one (K 2304, 4352), also on fewer rows than the grid has warps (700, 1000, and the down product's
// 8960 x 1536, with its residual add too), one and three tokens, the fused norm and SwiGLU pair.
// Against double precision with the int8 bound, and against the CPU backend, which quantizes the
// activations the same way: there only the summation order differs (a float x would miss by the
// CPU's quantization error, ~4e-3).
TEST(cuda_int8_products_match_cpu_backend) {
    auto cpu = backend_cpu_create(2);
    for (ggml_type t : {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K}) {
        const char *tn = ggml_type_info(t).name;
        // (8960 x 1536 rows: the down product's shape; 12000 rows: more rows than the grid has warps;
        // 700 and 1000: fewer, so some warps only quantize x; K 4352 and 8960: over 4096 values, so the
        // kernel that quantizes x with 10 loads a lane in flight, mvq_launch)
        for (auto [K, M] : {std::pair<int64_t, int64_t>{2304, 12000}, {4352, 12000}, {8960, 1536}, {2304, 700}, {4352, 1000}})
        for (int n : {1, 3}) {
            test_weight tw(t, K, M);
            auto x = test::random_floats((size_t)n * K, -2, 2);
            dbuf dx(x), dy((size_t)n * M);
            dy.poison();
            be().matmul(tw.w, dx.f(), n, dy.f());
            const auto got = dy.get();
            const std::vector<float> ref = reference_product(tw, x, n);
            std::vector<float> cref((size_t)n * M);
            weight cw = tw.w;  // (a host backend reads the bytes in place)
            cw.data = tw.bytes.data();
            float *cx = (float *)cpu->alloc((size_t)n * K * 4), *cy = (float *)cpu->alloc((size_t)n * M * 4);
            cpu->upload(cx, x.data(), (size_t)n * K * 4);
            cpu->matmul(cw, cx, n, cy);
            cpu->download(cref.data(), cy, (size_t)n * M * 4);
            cpu->release(cx);
            cpu->release(cy);
            const double e = test::rel_error(got.data(), ref.data(), ref.size()), ec = test::rel_error(got.data(), cref.data(), ref.size());
            std::printf("  %s %d token(s) K %lld x %lld rows: error %.3g against double, %.3g against the CPU backend\n", tn, n, (long long)K,
                        (long long)M, e, ec);
            CHECK_MSG(all_finite(got) && e < 1.5e-2 && ec < 1e-3, "%s %d token(s) K %lld: error %g against double, %g against the CPU backend",
                      tn, n, (long long)K, e, ec);
        }
        {  // the down product as the layer issues it: y += W x (the residual add in the epilogue)
            const int64_t K = 8960, M = 1536;
            test_weight tw(t, K, M);
            auto x = test::random_floats((size_t)K, -2, 2), y0 = test::random_floats((size_t)M, -1, 1);
            dbuf dx(x), dy(y0), tmp((size_t)M);
            be().matmul_add(tw.w, dx.f(), 1, dy.f(), tmp.f());
            const auto got = dy.get();
            std::vector<float> ref = reference_product(tw, x, 1);
            for (int64_t r = 0; r < M; r++) ref[r] += y0[r];
            const double e = test::rel_error(got.data(), ref.data(), ref.size());
            std::printf("  %s one token K %lld x %lld rows + residual: error %.3g against double\n", tn, (long long)K, (long long)M, e);
            CHECK_MSG(all_finite(got) && e < 1.5e-2, "%s product + residual add: error %g against double", tn, e);
        }
        // rms_norm, then gate/up (one launch, SwiGLU in its epilogue): 9000 pairs of rows
        const int64_t d = 1536, ff = 9000;
        test_weight wg(t, d, ff), wu(t, d, ff);
        auto x = test::random_floats((size_t)d, -3, 3), g = test::random_floats(d, 0.5f, 1.5f);
        dbuf dx(x), dg(g), dxn((size_t)d), dgate((size_t)ff), dup((size_t)ff);
        dxn.poison();
        be().rms_norm(dx.f(), dg.f(), 1, (int)d, 1e-6f, dxn.f());
        be().matmul(wg.w, dxn.f(), 1, dgate.f());
        be().matmul(wu.w, dxn.f(), 1, dup.f());
        be().swiglu(dgate.f(), dup.f(), (size_t)ff, dgate.f());
        std::vector<float> xn(d);
        double ss = 0;
        for (int64_t k = 0; k < d; k++) ss += (double)x[k] * x[k];
        for (int64_t k = 0; k < d; k++) xn[k] = (float)(x[k] / std::sqrt(ss / d + 1e-6) * g[k]);
        std::vector<float> ru(ff), rs(ff);
        for (int64_t r = 0; r < ff; r++) {
            auto a = wg.row(r), b = wu.row(r);
            double sg = 0, su = 0;
            for (int64_t k = 0; k < d; k++) { sg += (double)a[k] * xn[k]; su += (double)b[k] * xn[k]; }
            ru[r] = (float)su;
            rs[r] = (float)(sg / (1.0 + std::exp(-sg)) * su);
        }
        const double en = test::rel_error(dxn.get().data(), xn.data(), d), eu = test::rel_error(dup.get().data(), ru.data(), ff),
                     es = test::rel_error(dgate.get().data(), rs.data(), ff);
        std::printf("  %s one token, fused norm + SwiGLU pair, %lld pairs: norm %.3g, up %.3g, swiglu %.3g against double\n", tn,
                    (long long)ff, en, eu, es);
        CHECK_MSG(en < 1e-5 && eu < 1.5e-2 && es < 3e-2, "%s fused norm + SwiGLU: norm %g, up %g, swiglu %g", tn, en, eu, es);
    }
}

TEST(cuda_matmul_all_types_small_n) {
    for (ggml_type t : ALL_TYPES)
        for (int n : {1, 2, 3, 8})
            for (int64_t K : {256, 1536, 2304}) check_matmul(t, K, 67, n);
    // long float rows: one block per row
    for (ggml_type t : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16})
        for (int n : {1, 3, 8}) check_matmul(t, 8960, 37, n);
    // ... with the residual add and a bias in its epilogue; and one token over more rows than a wave
    // of warps holds (matvec_float_stream_kernel: warps looping over rows)
    for (auto [K, M, n] : {std::tuple<int64_t, int64_t, int>{4608, 53, 2}, {1536, 9000, 1}}) {
        test_weight tw(GGML_TYPE_BF16, K, M);
        auto x = test::random_floats((size_t)n * K), b = test::random_floats(M), h0 = test::random_floats((size_t)n * M);
        dbuf dx(x), db(b), dy((size_t)n * M), dh(h0);
        be().matmul(tw.w, dx.f(), n, dy.f());
        be().add_bias(dy.f(), db.f(), n, (int)M);
        be().add(dh.f(), dy.f(), (size_t)n * M);
        std::vector<float> ry((size_t)n * M), rh = h0;
        for (int64_t r = 0; r < M; r++) {
            auto wr = tw.row(r);
            for (int i = 0; i < n; i++) {
                double acc = b[r];
                for (int64_t k = 0; k < K; k++) acc += (double)wr[k] * x[(size_t)i * K + k];
                ry[(size_t)i * M + r] = (float)acc;
                rh[(size_t)i * M + r] += (float)acc;
            }
        }
        CHECK_MSG(test::rel_error(dy.get().data(), ry.data(), ry.size()) < 2e-5, "rows of %lld + bias", (long long)K);
        CHECK_MSG(test::rel_error(dh.get().data(), rh.data(), rh.size()) < 2e-5, "rows of %lld + bias + residual add", (long long)K);
    }
    for (ggml_type t : {GGML_TYPE_F16, GGML_TYPE_BF16}) check_matmul(t, 1536, 9000, 1);
    check_matmul(GGML_TYPE_F16, 40, 33, 3);   // rows not a multiple of 8 values
    check_matmul(GGML_TYPE_F32, 36, 20, 2);
    check_matmul(GGML_TYPE_BF16, 1000, 20, 1);
}

TEST(cuda_matmul_all_types_prefill) {
    // cuBLAS where it loads (BF16 and quantized weights), and our own tensor-core kernel
    for (bool cublas : {true, false}) {
        backend_cuda_set_cublas(be(), cublas);
        for (ggml_type t : ALL_TYPES)
            for (int n : {9, 64, 130}) check_matmul(t, 512, 200, n);
        check_matmul(GGML_TYPE_Q8_0, 1536, 256, 300);
        check_matmul(GGML_TYPE_BF16, 1536, 129, 257);
        check_matmul(GGML_TYPE_F16, 40, 33, 20);  // K % 32 != 0: the fp32 path
    }
    backend_cuda_set_cublas(be(), true);
    std::printf("  prefill products: %s\n", backend_cuda_gemm_engine(be()).c_str());
}

// Prefill products of quantized weights read a BF16 copy of the weight made at its first product
// (backend_cuda_set_prefill_copies): bit for bit what decoding the weight before every product gives
// (the same BF16 values), for a product, a product with the add, and the FFN block; the copy follows
// bytes uploaded over its weight, goes with the weight's buffer, is not made without room, and gives
// way to an allocation that needs its memory.
TEST(cuda_prefill_bf16_copies_of_quantized_weights) {
    const int n = 96;
    const int64_t d = 512, ff = 1024;
    size_t base_bytes = 0;
    const size_t base = backend_cuda_prefill_copies(be(), &base_bytes);
    auto same = [](const std::vector<float> &a, const std::vector<float> &b) {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
    };
    for (ggml_type t : {GGML_TYPE_Q8_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K}) {
        const char *tn = ggml_type_info(t).name;
        test_weight wg(t, d, ff), wu(t, d, ff), wd(t, ff, d), wo(t, d, d);
        const auto x = test::random_floats((size_t)n * d), h = test::random_floats((size_t)n * d), r0 = test::random_floats((size_t)n * d);
        dbuf dx(x), dh(h), dy((size_t)n * d), dz((size_t)n * d), dr((size_t)n * d), tmp((size_t)n * d);
        dbuf dgate((size_t)n * ff), dup((size_t)n * ff), dout((size_t)n * ff);
        auto run = [&] {
            dy.poison();
            be().matmul(wo.w, dx.f(), n, dy.f());
            be().upload(dz.p, r0.data(), r0.size() * sizeof(float));
            be().matmul_add(wo.w, dx.f(), n, dz.f(), tmp.f());
            be().upload(dr.p, r0.data(), r0.size() * sizeof(float));
            be().ffn_swiglu_add(dr.f(), dh.f(), wg.w, wu.w, wd.w, n, dgate.f(), dup.f(), dout.f());
            std::vector<float> all = dy.get(), z = dz.get(), r = dr.get();
            all.insert(all.end(), z.begin(), z.end());
            all.insert(all.end(), r.begin(), r.end());
            return all;
        };
        backend_cuda_set_prefill_copies(be(), false);
        const auto decoded = run();
        CHECK_MSG(backend_cuda_prefill_copies(be()) == 0, "%s: copies while off", tn);
        backend_cuda_set_prefill_copies(be(), true);
        const auto first = run(), again = run();
        size_t bytes = 0;
        const size_t count = backend_cuda_prefill_copies(be(), &bytes);
        CHECK_MSG(count == base + 4 && bytes == base_bytes + (size_t)(3 * d * ff + d * d) * 2, "%s: %zu copies, %zu bytes", tn, count,
                  bytes);
        CHECK_MSG(all_finite(decoded) && same(first, decoded) && same(again, decoded), "%s: products on the copies differ", tn);
        const auto ry = reference_product(wo, x, n);
        CHECK_MSG(test::rel_error(again.data(), ry.data(), ry.size()) < 4e-3, "%s: product on the copy", tn);

        // new bytes over a weight: its copy goes and the next product reads them
        test_weight other(t, d, d);
        be().upload(const_cast<void *>(wo.w.data), other.bytes.data(), other.bytes.size());
        CHECK_MSG(backend_cuda_prefill_copies(be()) == base + 3, "%s: copy kept past an upload over its weight", tn);
        be().matmul(wo.w, dx.f(), n, dy.f());
        const auto ro = reference_product(other, x, n);
        CHECK_MSG(test::rel_error(dy.get().data(), ro.data(), ro.size()) < 4e-3, "%s: product after the upload", tn);
        CHECK_MSG(backend_cuda_prefill_copies(be()) == base + 4, "%s: no copy made again", tn);
    }
    CHECK_MSG(backend_cuda_prefill_copies(be(), &base_bytes) == base, "copies outlive their weights");

    // no room: none made, the product decodes as before
    {
        backend_cuda_set_prefill_copies(be(), true, (size_t)1 << 60);
        test_weight w(GGML_TYPE_Q8_0, d, d);
        const auto x = test::random_floats((size_t)n * d);
        dbuf dx(x), dy((size_t)n * d);
        be().matmul(w.w, dx.f(), n, dy.f());
        const auto ry = reference_product(w, x, n);
        CHECK_MSG(test::rel_error(dy.get().data(), ry.data(), ry.size()) < 4e-3 && backend_cuda_prefill_copies(be()) == base,
                  "a copy made without room");
    }
    // an allocation that fits only without the copies: they go, it succeeds, none are made after
    {
        backend_cuda_set_prefill_copies(be(), true, 0);
        test_weight w(GGML_TYPE_Q8_0, 4096, 4096);
        const int m = 16;
        const auto x = test::random_floats((size_t)m * 4096);
        dbuf dx(x), dy((size_t)m * 4096);
        be().matmul(w.w, dx.f(), m, dy.f());
        size_t bytes = 0;
        CHECK(backend_cuda_prefill_copies(be(), &bytes) == base + 1);
        be().synchronize();
        const size_t want = backend_cuda_free_memory(be()) + (size_t)(4096 * 4096 * 2) / 2;
        void *big = nullptr;
        try { big = be().alloc(want); } catch (const error &e) { std::printf("  alloc of %zu bytes: %s\n", want, e.what()); }
        CHECK_MSG(big && backend_cuda_prefill_copies(be()) == 0, "the copies did not give way to an allocation");
        if (big) be().release(big);
        dy.poison();
        be().matmul(w.w, dx.f(), m, dy.f());
        const auto ry = reference_product(w, x, m);
        CHECK_MSG(test::rel_error(dy.get().data(), ry.data(), ry.size()) < 4e-3 && backend_cuda_prefill_copies(be()) == 0,
                  "product after the copies gave way");
    }
    backend_cuda_set_prefill_copies(be(), true);
}

TEST(cuda_matmul_large_activations) {
    // rows with values past f16's comfortable range are scaled before our f16 tensor-core path;
    // cuBLAS takes bf16 (f32's range, 8-bit mantissa: ~2e-3)
    test_weight tw(GGML_TYPE_Q8_0, 256, 64);
    auto x = test::random_floats(16 * 256, -1.0f, 1.0f);
    for (int i = 0; i < 16; i++) x[(size_t)i * 256 + 7] = 60000.0f * (i % 2 ? 1 : -1);
    dbuf dx(x), dy(16 * 64);
    std::vector<float> ref(16 * 64);
    for (int r = 0; r < 64; r++) {
        auto wr = tw.row(r);
        for (int i = 0; i < 16; i++) {
            double s = 0;
            for (int k = 0; k < 256; k++) s += (double)wr[k] * x[(size_t)i * 256 + k];
            ref[(size_t)i * 64 + r] = (float)s;
        }
    }
    for (bool cublas : {false, true}) {
        backend_cuda_set_cublas(be(), cublas);
        be().matmul(tw.w, dx.f(), 16, dy.f());
        auto got = dy.get();
        const double e = test::rel_error(got.data(), ref.data(), ref.size());
        CHECK_MSG(all_finite(got) && e < (cublas ? 4e-3 : 2e-3), "%s: rel error %g", cublas ? "cublas" : "own kernel", e);
    }
    backend_cuda_set_cublas(be(), true);
}

TEST(cuda_elementwise_ops) {
    const int n = 5, dim = 1536 + 3;
    auto x = test::random_floats((size_t)n * dim, -3, 3), g = test::random_floats(dim), b = test::random_floats(dim);
    auto u = test::random_floats((size_t)n * dim, -3, 3);
    dbuf dx(x), dg(g), db(b), du(u), dy((size_t)n * dim);
    // rms_norm
    dy.poison();
    be().rms_norm(dx.f(), dg.f(), n, dim, 1e-6f, dy.f());
    auto got = dy.get();
    std::vector<float> ref((size_t)n * dim);
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int k = 0; k < dim; k++) ss += (double)x[(size_t)i * dim + k] * x[(size_t)i * dim + k];
        const double r = 1.0 / std::sqrt(ss / dim + 1e-6);
        for (int k = 0; k < dim; k++) ref[(size_t)i * dim + k] = (float)(x[(size_t)i * dim + k] * r * g[k]);
    }
    CHECK_MSG(test::rel_error(got.data(), ref.data(), ref.size()) < 1e-5, "rms_norm");
    // add_bias
    be().copy(dy.p, dx.p, x.size() * 4);
    be().add_bias(dy.f(), db.f(), n, dim);
    got = dy.get();
    for (int i = 0; i < n; i++) for (int k = 0; k < dim; k++) ref[(size_t)i * dim + k] = x[(size_t)i * dim + k] + b[k];
    CHECK_MSG(test::rel_error(got.data(), ref.data(), ref.size()) < 1e-6, "add_bias");
    // add
    be().copy(dy.p, dx.p, x.size() * 4);
    be().add(dy.f(), du.f(), x.size());
    got = dy.get();
    for (size_t i = 0; i < x.size(); i++) ref[i] = x[i] + u[i];
    CHECK_MSG(test::rel_error(got.data(), ref.data(), ref.size()) < 1e-6, "add");
    // swiglu
    dy.poison();
    be().swiglu(dx.f(), du.f(), x.size(), dy.f());
    got = dy.get();
    for (size_t i = 0; i < x.size(); i++) ref[i] = (float)((double)x[i] / (1.0 + std::exp(-(double)x[i])) * u[i]);
    CHECK_MSG(test::rel_error(got.data(), ref.data(), ref.size()) < 1e-5, "swiglu");
}

TEST(cuda_kv_store) {
    const int n_slots = 50, row = 2 * 24, n = 7;
    auto kc = test::random_floats((size_t)n_slots * row), vc = test::random_floats((size_t)n_slots * row);
    auto k = test::random_floats((size_t)n * row), v = test::random_floats((size_t)n * row);
    dbuf dkc(kc), dvc(vc), dk(k), dv(v);
    std::vector<int32_t> slots = {3, 49, 0, 17, 18, 4, 30};
    be().kv_store(dkc.f(), dvc.f(), dk.f(), dv.f(), slots.data(), n, row);
    for (int i = 0; i < n; i++)
        for (int e = 0; e < row; e++) {
            kc[(size_t)slots[i] * row + e] = k[(size_t)i * row + e];
            vc[(size_t)slots[i] * row + e] = v[(size_t)i * row + e];
        }
    auto gk = dkc.get(), gv = dvc.get();
    CHECK(gk == kc);
    CHECK(gv == vc);
}

// attn_args semantics in double: query i at position n_fixed + hi - lo - 1 sees the fixed keys at
// 0..n_fixed-1 and window entries j in [lo, hi) at n_fixed + j - lo.
std::vector<float> attention_reference(const attn_args &a, const std::vector<float> &q, const std::vector<float> &kc,
                                       const std::vector<float> &vc, const std::vector<float> &cs, const std::vector<float> &sn) {
    const int hd = a.head_dim, half = a.n_rot / 2, G = a.n_head / a.n_head_kv;
    auto rope = [&](const float *src, int pos, std::vector<double> &dst) {
        dst.assign(src, src + hd);
        for (int p = 0; p < half; p++) {
            const int d0 = a.mode == ROPE_MODE_NEOX ? p : 2 * p, d1 = a.mode == ROPE_MODE_NEOX ? p + half : 2 * p + 1;
            const double c = cs[(size_t)pos * half + p], s = sn[(size_t)pos * half + p];
            dst[d0] = src[d0] * c - src[d1] * s;
            dst[d1] = src[d0] * s + src[d1] * c;
        }
    };
    std::vector<float> out((size_t)a.n_q * a.n_head * hd);
    std::vector<double> qr, kr;
    for (int i = 0; i < a.n_q; i++) {
        const int lo = a.win_lo[i], hi = a.win_hi[i];
        std::vector<std::pair<int, int>> vis;  // (slot, position)
        for (int t = 0; t < a.n_fixed; t++) vis.push_back({a.keys[t], t});
        for (int j = lo; j < hi; j++) vis.push_back({a.keys[a.n_fixed + j], a.n_fixed + j - lo});
        const int qpos = a.n_fixed + hi - lo - 1;
        for (int h = 0; h < a.n_head; h++) {
            const int kvh = h / G;
            rope(&q[((size_t)i * a.n_head + h) * hd], qpos, qr);
            std::vector<double> sc(vis.size());
            double mx = -1e300;
            for (size_t t = 0; t < vis.size(); t++) {
                rope(&kc[((size_t)vis[t].first * a.n_head_kv + kvh) * hd], vis[t].second, kr);
                double s = 0;
                for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
                sc[t] = s * a.scale;
                mx = std::max(mx, sc[t]);
            }
            double sum = 0;
            for (auto &s : sc) { s = std::exp(s - mx); sum += s; }
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (size_t t = 0; t < vis.size(); t++) o += sc[t] * vc[((size_t)vis[t].first * a.n_head_kv + kvh) * hd + d];
                out[((size_t)i * a.n_head + h) * hd + d] = (float)(o / sum);
            }
        }
    }
    return out;
}

struct attn_case {
    int n_q, n_head, n_head_kv, head_dim, n_rot;
    rope_mode mode;
    int n_fixed, n_win;  // window entries in the key list
    bool sliding;        // query i's window ends at n_win - n_q + i + 1 (prefill); else all end at n_win
    int max_window;      // visible window length per query (0: all)
};

// both_kernels: where the sm_90a prefill attention runs (backend_cuda_attn_wgmma_available), the
// default mode once more on it (head dims 64 and 128) and once on the mma.sync kernel, both errors
// printed (NOTES.md, eleventh session: the shipped model's streaming test failed by a hair with
// head dim 64 on the wgmma kernel).
void check_attention(const attn_case &c, bool both_kernels = false) {
    const int hd = c.head_dim, n_keys = c.n_fixed + c.n_win, n_slots = n_keys + 23;
    const int row = c.n_head_kv * hd;
    auto q = test::random_floats((size_t)c.n_q * c.n_head * hd, -2, 2);
    auto kc = test::random_floats((size_t)n_slots * row, -2, 2), vc = test::random_floats((size_t)n_slots * row);
    // key list: a random permutation of slots (the ring wraps, branches sit anywhere)
    std::vector<int32_t> slots(n_slots);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), test::rng());
    std::vector<int32_t> keys(slots.begin(), slots.begin() + n_keys);
    std::vector<int32_t> lo(c.n_q), hi(c.n_q);
    for (int i = 0; i < c.n_q; i++) {
        hi[i] = c.sliding ? c.n_win - c.n_q + i + 1 : c.n_win;
        lo[i] = c.max_window ? std::max(0, hi[i] - c.max_window) : 0;
    }
    const int n_pos = n_keys + 1, half = c.n_rot / 2;
    std::vector<float> cs((size_t)n_pos * std::max(half, 1)), sn(cs.size());
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            const double theta = std::pow(10000.0, -2.0 * i / c.n_rot);
            cs[(size_t)p * half + i] = (float)std::cos(p * theta);
            sn[(size_t)p * half + i] = (float)std::sin(p * theta);
        }
    dbuf dq(q), dk(kc), dv(vc), dcs(cs), dsn(sn), dout((size_t)c.n_q * c.n_head * hd);
    attn_args a;
    a.q = dq.f(); a.k_cache = dk.f(); a.v_cache = dv.f(); a.out = dout.f();
    a.keys = keys.data(); a.n_keys = n_keys; a.n_fixed = c.n_fixed; a.win_lo = lo.data(); a.win_hi = hi.data();
    a.n_q = c.n_q; a.n_head = c.n_head; a.n_head_kv = c.n_head_kv; a.head_dim = hd; a.n_rot = c.n_rot; a.mode = c.mode;
    a.rope_cos = dcs.f(); a.rope_sin = dsn.f(); a.scale = 1.0f / std::sqrt((float)hd);
    auto ref = attention_reference(a, q, kc, vc, cs, sn);
    // precise mode: every shape in fp32; by default many queries (prefill) may run on tensor
    // cores with f16 operands (~1e-3)
    // (the default mode twice: the second call, same shapes and buffers, may replay as a graph)
    for (int run = 0; run < 3; run++) {
        const bool precise = run == 0;
        backend_cuda_set_precise(be(), precise);
        dout.poison();
        be().attention(a);
        auto got = dout.get();
        const double e = test::rel_error(got.data(), ref.data(), ref.size());
        const double tol = precise || c.n_q < 16 ? 1e-4 : 5e-3;
        CHECK_MSG(all_finite(got) && e < tol,
                  "attention %s n_q %d heads %d/%d hd %d rot %d mode %d fixed %d win %d sliding %d max_window %d: rel error %g",
                  precise ? "precise" : "default", c.n_q, c.n_head, c.n_head_kv, hd, c.n_rot, (int)c.mode, c.n_fixed, c.n_win,
                  (int)c.sliding, c.max_window, e);
    }
    backend_cuda_set_precise(be(), false);
    if (both_kernels && backend_cuda_attn_wgmma_available()) {
        double err[2];
        int mode_before = -1;
        for (int k = 0; k < 2; k++) {  // 2: the wgmma kernel for head dims 64 and 128; 0: mma.sync only
            const int before = backend_cuda_set_attn_wgmma(k == 0 ? 2 : 0);
            if (k == 0) mode_before = before;
            dout.poison();
            be().attention(a);
            auto got = dout.get();
            err[k] = all_finite(got) ? test::rel_error(got.data(), ref.data(), ref.size()) : 1e30;
        }
        backend_cuda_set_attn_wgmma(mode_before);  // (ENDLESS_CUDA_ATTN_WGMMA=0 runs stay on mma.sync)
        std::printf("  attention n_q %d heads %d/%d hd %d fixed %d win %d max_window %d: rel error wgmma %.3g, mma.sync %.3g\n", c.n_q,
                    c.n_head, c.n_head_kv, hd, c.n_fixed, c.n_win, c.max_window, err[0], err[1]);
        CHECK_MSG(err[0] < 5e-3 && err[1] < 5e-3, "attention n_q %d hd %d: wgmma %g, mma.sync %g", c.n_q, hd, err[0], err[1]);
    }
}

TEST(cuda_attention_decode) {
    check_attention({1, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 300, false, 0});
    check_attention({1, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 5000, false, 4096});  // split-K, window slides
    check_attention({1, 8, 8, 64, 64, ROPE_MODE_NORM, 1, 77, false, 0});          // no GQA
    check_attention({1, 32, 2, 40, 24, ROPE_MODE_NORM, 0, 9, false, 0});          // partial rotary, 16 heads a group, no sinks
    check_attention({2, 6, 1, 256, 256, ROPE_MODE_NEOX, 3, 1500, true, 0});       // two queries, head_dim 256
    check_attention({1, 4, 2, 6, 6, ROPE_MODE_NEOX, 2, 1, false, 0});             // tiny: the query sees only itself + sinks
    // one query, head_dim 64 / 128 fully rotated, <= 8 heads a group: attention_decode1.cu's warp
    // kernel (partial rotary and head_dim 96 stay on attention_decode_kernel): 3 heads a group, a
    // window shorter than the key list, no fixed keys, 40000 keys (more rounds per block), 8 heads
    // a group with 5 fixed keys (a warp's keys both fixed and window), no GQA
    check_attention({1, 8, 2, 128, 64, ROPE_MODE_NEOX, 4, 1000, false, 0});
    check_attention({1, 6, 2, 64, 64, ROPE_MODE_NORM, 1, 3000, false, 1020});
    check_attention({1, 6, 3, 96, 32, ROPE_MODE_NEOX, 0, 500, false, 100});
    check_attention({1, 4, 1, 128, 128, ROPE_MODE_NORM, 4, 40000, false, 0});
    check_attention({1, 16, 2, 128, 128, ROPE_MODE_NEOX, 5, 700, false, 300});
    check_attention({1, 4, 4, 128, 128, ROPE_MODE_NORM, 4, 200, false, 0});
    check_attention({1, 12, 2, 64, 64, ROPE_MODE_NEOX, 0, 64, false, 0});
}

// One query of the 1.5B shape (12 heads over 2 KV heads, head_dim 128, NEOX RoPE) over n_fixed +
// n_win keys: random q and caches of n_slots rows on host and device, the slots shuffled (a key
// list takes any of them), attn_args ready but for keys and out.
struct decode_attn_setup {
    static constexpr int hd = 128, n_head = 12, n_head_kv = 2, row = n_head_kv * hd, half = hd / 2;
    const int n_fixed, n_win, n_keys, n_slots;
    std::vector<float> q, kc, vc, cs, sn;
    std::vector<int32_t> slots, lo = {0}, hi;
    std::unique_ptr<dbuf> dq, dk, dv, dcs, dsn;
    attn_args a;
    decode_attn_setup(int fixed, int win, int n_slot_rows)
        : n_fixed(fixed), n_win(win), n_keys(fixed + win), n_slots(n_slot_rows), hi{win} {
        q = test::random_floats((size_t)n_head * hd, -2, 2);
        kc = test::random_floats((size_t)n_slots * row, -2, 2);
        vc = test::random_floats((size_t)n_slots * row);
        cs.resize((size_t)(n_keys + 1) * half);
        sn.resize(cs.size());
        for (int p = 0; p <= n_keys; p++)
            for (int i = 0; i < half; i++) {
                const double theta = std::pow(10000.0, -2.0 * i / hd);
                cs[(size_t)p * half + i] = (float)std::cos(p * theta);
                sn[(size_t)p * half + i] = (float)std::sin(p * theta);
            }
        slots.resize(n_slots);
        std::iota(slots.begin(), slots.end(), 0);
        std::shuffle(slots.begin(), slots.end(), test::rng());
        dq = std::make_unique<dbuf>(q);
        dk = std::make_unique<dbuf>(kc);
        dv = std::make_unique<dbuf>(vc);
        dcs = std::make_unique<dbuf>(cs);
        dsn = std::make_unique<dbuf>(sn);
        a.q = dq->f(); a.k_cache = dk->f(); a.v_cache = dv->f();
        a.n_keys = n_keys; a.n_fixed = n_fixed; a.win_lo = lo.data(); a.win_hi = hi.data();
        a.n_q = 1; a.n_head = n_head; a.n_head_kv = n_head_kv; a.head_dim = hd; a.n_rot = hd; a.mode = ROPE_MODE_NEOX;
        a.rope_cos = dcs->f(); a.rope_sin = dsn->f(); a.scale = 1.0f / std::sqrt((float)hd);
    }
    // the reference of a (its keys and out as set) over the host caches
    double error(const attn_args &r, const std::vector<float> &got) const {
        const auto ref = attention_reference(r, q, kc, vc, cs, sn);
        return all_finite(got) ? test::rel_error(got.data(), ref.data(), ref.size()) : INFINITY;
    }
};

// The backend stages a key list once per batch and finds it again by its bytes (every layer of a
// step passes the same one): key lists that change inside one batch, in the same host array or
// in another one with the same bytes, must each be used as given.
TEST(cuda_attention_key_lists_in_one_batch) {
    decode_attn_setup t(4, 1500, 2 * 1504);
    const int n_keys = t.n_keys, out_n = t.n_head * t.hd;
    const std::vector<int32_t> keys_a(t.slots.begin(), t.slots.begin() + n_keys), keys_b(t.slots.end() - n_keys, t.slots.end());
    dbuf out1(out_n), out2(out_n), out3(out_n), out4(out_n);
    attn_args &a = t.a;
    std::vector<int32_t> list = keys_a, other = keys_a;
    for (int round = 0; round < 3; round++) {  // the later rounds may replay one graph
        list = keys_a;
        a.keys = list.data(); a.out = out1.f();
        be().attention(a);
        a.out = out2.f();
        be().attention(a);           // same array, same bytes: staged once
        list = keys_b;
        a.out = out3.f();
        be().attention(a);           // same array, new bytes
        a.keys = other.data(); a.out = out4.f();
        be().attention(a);           // another array with the first bytes
        const std::vector<float> got[4] = {out1.get(), out2.get(), out3.get(), out4.get()};
        for (int i = 0; i < 4; i++) {
            attn_args r = a;
            r.keys = i == 2 ? keys_b.data() : keys_a.data();
            const double e = t.error(r, got[i]);
            CHECK_MSG(e < 1e-4, "round %d, attention %d of the batch: rel error %g", round, i + 1, e);
        }
    }
}

// The one-query kernel requests the K/V rows before it waits for the kernels before it, all but
// the rows the batch has written so far (kv_store's slots: the backend passes them). Rows written
// in the batch by kv_store (one, several, more than the kernel takes alone), by a small upload or a
// device copy (then every row waits) must each be seen; three rounds, new slots each, so a replayed
// graph must take the new slots too.
TEST(cuda_attention_reads_rows_written_in_its_batch) {
    decode_attn_setup t(4, 1500, 1544);
    const int n_keys = t.n_keys, row = t.row;
    const std::vector<int32_t> keys(t.slots.begin(), t.slots.begin() + n_keys);
    std::vector<float> &kc = t.kc, &vc = t.vc;
    float *dk = t.dk->f(), *dv = t.dv->f();
    dbuf out((size_t)t.n_head * t.hd), src(row);
    attn_args &a = t.a;
    a.keys = keys.data();
    a.out = out.f();
    for (int round = 0; round < 3; round++) {
        // kv_store of the newest window entry (the decode step), of three entries (one fixed), of
        // six (more than the kernel waits for alone), then a small upload and a copy
        const std::vector<std::vector<int>> stored = {{n_keys - 1 - round}, {1, 700 + round, n_keys - 2}, {5, 6, 7, 8, 20 + round, 10}};
        for (size_t c = 0; c < stored.size(); c++) {
            const int n = (int)stored[c].size();
            auto nk = test::random_floats((size_t)n * row, -2, 2), nv = test::random_floats((size_t)n * row);
            std::vector<int32_t> ss;
            for (int i = 0; i < n; i++) {
                const int32_t sl = keys[stored[c][i]];
                ss.push_back(sl);
                std::copy(nk.begin() + (size_t)i * row, nk.begin() + (size_t)(i + 1) * row, kc.begin() + (size_t)sl * row);
                std::copy(nv.begin() + (size_t)i * row, nv.begin() + (size_t)(i + 1) * row, vc.begin() + (size_t)sl * row);
            }
            dbuf dnk(nk), dnv(nv);
            be().kv_store(dk, dv, dnk.f(), dnv.f(), ss.data(), n, row);
            const size_t early = backend_cuda_attention_early_ops(be());
            be().attention(a);
            // the stored slots are known (up to 4: CUDA_A1_MAX_FRESH), so the rest load early
            CHECK_MSG(backend_cuda_attention_early_ops(be()) - early == (n <= 4 ? 1u : 0u), "round %d, case %zu: early loads %s", round, c,
                      n <= 4 ? "not used" : "used with more fresh rows than the kernel takes");
            const double e = t.error(a, out.get());  // one batch: the uploads, kv_store, attention
            CHECK_MSG(e < 1e-4, "round %d, case %zu: rel error %g", round, c, e);
        }
        // a queued upload into one window row's K and a device copy into another's V
        auto nk = test::random_floats(row, -2, 2), nv = test::random_floats(row);
        const int32_t s1 = keys[n_keys - 3 - round], s2 = keys[t.n_fixed + 10 + round];
        std::copy(nk.begin(), nk.end(), kc.begin() + (size_t)s1 * row);
        std::copy(nv.begin(), nv.end(), vc.begin() + (size_t)s2 * row);
        be().upload(src.f(), nv.data(), row * 4);
        be().synchronize();
        be().upload(dk + (size_t)s1 * row, nk.data(), row * 4);
        be().copy(dv + (size_t)s2 * row, src.f(), row * 4);
        const size_t early = backend_cuda_attention_early_ops(be());
        be().attention(a);
        CHECK_MSG(backend_cuda_attention_early_ops(be()) == early, "round %d: early loads after an upload into the cache", round);
        const double e = t.error(a, out.get());
        CHECK_MSG(e < 1e-4, "round %d, upload and copy: rel error %g", round, e);
    }
}

TEST(cuda_attention_prefill) {
    check_attention({37, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 300, true, 0});
    check_attention({100, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 700, true, 256});  // each query its own window
    check_attention({64, 8, 8, 64, 32, ROPE_MODE_NORM, 0, 64, true, 0});
    check_attention({20, 6, 3, 256, 256, ROPE_MODE_NORM, 5, 50, true, 10});
    check_attention({33, 16, 1, 24, 24, ROPE_MODE_NEOX, 1, 40, true, 0});
}

// A repeated op sequence runs as a CUDA graph from its second repetition; staged contents (the
// ids) change between repetitions and the results must follow them.
// Many-query attention as prefill chunks give it: by default on tensor cores (cuda/attention_mma.cu,
// f16 operands: Q times the scale, the rotated K, V and the probabilities, ~5e-4 relative per
// value, ~1e-3 on the output, hence 5e-3), and in precise mode on the fp32 kernels (1e-4).
TEST(cuda_attention_prefill_tensor_cores) {
    // {n_q, n_head, n_head_kv, head_dim, n_rot, mode, n_fixed (sinks), n_win, sliding (causal chunk), max_window}
    check_attention({16, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 5000, false, 0});     // few rows, long keys: split-K
    check_attention({16, 12, 2, 128, 128, ROPE_MODE_NEOX, 0, 5000, true, 4092});   // no sinks, sliding window
    check_attention({64, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 3000, true, 0});      // causal chunk at the end of a long window
    check_attention({300, 12, 2, 128, 128, ROPE_MODE_NEOX, 0, 300, true, 0});      // a fresh causal chunk
    check_attention({1024, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 1024, true, 0});    // the usual prefill chunk
    check_attention({1024, 6, 1, 128, 128, ROPE_MODE_NEOX, 4, 1500, true, 700});   // sliding window per query
    check_attention({16, 8, 8, 64, 64, ROPE_MODE_NORM, 4, 2000, true, 0});
    check_attention({64, 8, 8, 64, 64, ROPE_MODE_NORM, 0, 64, true, 0});
    check_attention({300, 8, 8, 64, 64, ROPE_MODE_NORM, 4, 1200, true, 512});
    check_attention({1024, 8, 8, 64, 64, ROPE_MODE_NORM, 0, 1024, true, 300});
    check_attention({16, 16, 2, 64, 32, ROPE_MODE_NEOX, 4, 4000, false, 0});       // partial rotary
    check_attention({64, 16, 2, 64, 32, ROPE_MODE_NEOX, 4, 5000, true, 4092});
    check_attention({300, 16, 2, 64, 32, ROPE_MODE_NORM, 0, 900, true, 0});
    check_attention({1024, 16, 2, 64, 32, ROPE_MODE_NEOX, 4, 1100, true, 256});
    // head_dim 256 (32-key tiles); padded head dims (96 runs as 128, 48 as 64, 208 as 256); no
    // rotation at all; a query that sees one window entry
    check_attention({20, 6, 3, 256, 256, ROPE_MODE_NORM, 5, 150, true, 40});
    check_attention({64, 8, 1, 256, 128, ROPE_MODE_NEOX, 4, 1000, true, 0});
    check_attention({25, 4, 2, 208, 64, ROPE_MODE_NEOX, 2, 120, false, 0});
    check_attention({100, 8, 2, 96, 96, ROPE_MODE_NEOX, 4, 700, true, 256});
    check_attention({37, 6, 3, 48, 16, ROPE_MODE_NORM, 1, 300, false, 0});
    check_attention({40, 4, 4, 64, 0, ROPE_MODE_NORM, 2, 500, true, 0});
    check_attention({16, 4, 2, 64, 64, ROPE_MODE_NEOX, 2, 16, true, 1});
}

// The sm_90a prefill attention (attention_wgmma.cu) against the mma.sync kernel on the same inputs,
// both against double: the shipped model's attention shape in its streaming test (6 / 2 heads of 64,
// NORM rope, 1 sink + 20 pinned, a 96-key window, a 150-token chunk) and the 1.5B shape.
TEST(cuda_attention_prefill_wgmma_against_mma) {
    if (!backend_cuda_attn_wgmma_available()) {
        std::printf("  (the sm_90a attention kernel is not built or this device is not compute capability 9.0: nothing to compare)\n");
        return;
    }
    // {n_q, n_head, n_head_kv, head_dim, n_rot, mode, n_fixed, n_win, sliding, max_window}
    check_attention({150, 6, 2, 64, 64, ROPE_MODE_NORM, 21, 245, true, 96}, true);
    check_attention({150, 6, 2, 64, 64, ROPE_MODE_NORM, 1, 150, true, 0}, true);
    check_attention({512, 6, 2, 64, 64, ROPE_MODE_NORM, 21, 700, true, 96}, true);
    // (256 queries: the double-precision reference of the 1024 this case had took ~50 s on the GPU machine)
    check_attention({256, 12, 2, 128, 128, ROPE_MODE_NEOX, 4, 5000, true, 4092}, true);
    check_attention({300, 12, 2, 128, 128, ROPE_MODE_NEOX, 0, 300, true, 0}, true);
}

// The greedy pick with a repetition penalty whose id count changes every step (the distinct tokens
// of a sliding window), in batches that are otherwise the same: each pick must follow its own ids,
// and the steps must still replay one graph (the count is staged, not part of the launch).
TEST(cuda_argmax_penalty_follows_staged_ids_under_graph_replay) {
    const int n = 151936;
    std::vector<float> x = test::random_floats(n, -4, 4);
    dbuf dx(x), a(64), b(64), out(1);
    size_t launches0 = 0;
    backend_cuda_graph_stats(be(), &launches0, nullptr);
    for (int step = 0; step < 12; step++) {
        // the largest values at a few ids, some of them penalized this step
        const int32_t top = (int32_t)(test::rng()() % n);
        std::vector<float> xs = x;
        xs[top] = 9.0f;
        xs[(top + 5000) % n] = 8.0f;
        be().upload(dx.f(), xs.data(), (size_t)n * 4);
        be().synchronize();
        std::vector<int32_t> ids;
        const int count = 3 + (step * 11) % 60;
        for (int i = 0; i < count; i++) ids.push_back((int32_t)(test::rng()() % n));
        if (step % 2 == 0) ids.push_back(top);
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        for (int i = 0; i < 8; i++) be().add(a.f(), b.f(), 64);  // (enough ops for a graph)
        be().argmax(dx.f(), n, (int32_t *)out.p, argmax_penalty{ids.data(), (int)ids.size(), 2.0f});
        int32_t got = -1;
        be().download(&got, out.p, 4);
        const int32_t want = greedy_index_penalized(xs.data(), n, ids.data(), (int)ids.size(), 2.0f);
        CHECK_MSG(got == want, "step %d (%zu ids): %d, expected %d", step, ids.size(), got, want);
    }
    size_t launches1 = 0;
    backend_cuda_graph_stats(be(), &launches1, nullptr);
    if (!env_off("ENDLESS_CUDA_GRAPHS")) CHECK_MSG(launches1 - launches0 >= 8, "graph launches %zu of 12 steps", launches1 - launches0);
}

// A batch seen twice in a row runs as direct launches and is then captured behind them; later uses
// replay the graph. For a many-token batch (a prefill chunk on cuBLAS) and a few-token one (a decode
// step's matrix-vector launches): every round's results equal the first's, one capture, replays after.
TEST(cuda_graph_captured_behind_a_direct_run) {
    const bool graphs = !env_off("ENDLESS_CUDA_GRAPHS");
    test_weight w(GGML_TYPE_BF16, 256, 256);
    for (int n : {300, 4}) {
        // eight inputs, so that the eight products stay eight launches (enough for a graph)
        std::vector<float> xv = test::random_floats(8 * (size_t)n * 256);
        dbuf x(xv), y(8 * (size_t)n * 256);
        auto round = [&] {
            y.poison();
            for (int i = 0; i < 8; i++) be().matmul(w.w, x.f() + (size_t)i * n * 256, n, y.f() + (size_t)i * n * 256);
            return y.get();
        };
        const std::vector<float> first = round();  // (also grows the scratch, which splits this batch)
        size_t captures0 = 0, launches0 = 0;
        backend_cuda_graph_stats(be(), &launches0, &captures0);
        for (int r = 1; r <= 5; r++) CHECK_MSG(round() == first, "n %d: round %d differs from the first", n, r);
        size_t captures1 = 0, launches1 = 0;
        backend_cuda_graph_stats(be(), &launches1, &captures1);
        if (graphs)
            CHECK_MSG(captures1 - captures0 == 1 && launches1 - launches0 >= 3, "n %d: %zu captures, %zu graph launches in 5 rounds",
                      n, captures1 - captures0, launches1 - launches0);
    }
}

TEST(cuda_graph_replay_follows_staged_inputs) {
    test_weight emb(GGML_TYPE_Q8_0, 256, 100), wq(GGML_TYPE_BF16, 256, 256);
    std::vector<float> g(256, 1.0f);
    dbuf dg(g), h(256), t(256), y(256);
    size_t launches0 = 0;
    backend_cuda_graph_stats(be(), &launches0, nullptr);
    for (int step = 0; step < 5; step++) {
        const int32_t id = (int32_t)(test::rng()() % 100);
        be().get_rows(emb.w, &id, 1, h.f());
        for (int l = 0; l < 4; l++) {
            be().rms_norm(h.f(), dg.f(), 1, 256, 1e-6f, t.f());
            be().matmul(wq.w, t.f(), 1, y.f());
            be().add(h.f(), y.f(), 256);
        }
        auto got = h.get();
        // reference
        auto hv = emb.row(id);
        for (int l = 0; l < 4; l++) {
            double ss = 0;
            for (float v : hv) ss += (double)v * v;
            const double r = 1.0 / std::sqrt(ss / 256 + 1e-6);
            std::vector<double> tv(256);
            for (int k = 0; k < 256; k++) tv[k] = hv[k] * r;
            std::vector<float> add(256);
            for (int o = 0; o < 256; o++) {
                auto wr = wq.row(o);
                double s = 0;
                for (int k = 0; k < 256; k++) s += wr[k] * tv[k];
                add[o] = (float)s;
            }
            for (int k = 0; k < 256; k++) hv[k] += add[k];
        }
        const double e = test::rel_error(got.data(), hv.data(), 256);
        CHECK_MSG(e < 1e-5, "step %d: rel error %g", step, e);
    }
    size_t launches1 = 0;
    backend_cuda_graph_stats(be(), &launches1, nullptr);
    // (step 0 grows the scratch, which splits its batch; a batch is captured behind its direct run at
    // its second use in a row: steps 3 and 4 replay)
    if (!env_off("ENDLESS_CUDA_GRAPHS")) CHECK_MSG(launches1 - launches0 >= 2, "graph launches %zu", launches1 - launches0);
}

#ifndef ENDLESS_NO_CPU_BACKEND  // (scripts/gpu-check.sh's standalone build has no CPU backend)
// The op sequence of a transformer layer (as model.cpp issues it: biases, GQA attention over a
// sink + window cache, residual adds, SwiGLU) on the CUDA backend and on the CPU backend, step
// after step with changing tokens and slots: covers the fused matrix-vector epilogues, staging
// and graph replay against an independent implementation.
struct mini_model {
    static constexpr int d = 256, n_head = 8, n_head_kv = 2, hd = 32, ff = 512, vocab = 300, n_layer = 2, n_slots = 96;
    backend &b;
    weight emb, wq[n_layer], wk[n_layer], wv[n_layer], wo[n_layer], wg[n_layer], wu[n_layer], wd[n_layer];
    float *bq[n_layer], *bk[n_layer], *bv[n_layer], *n1[n_layer], *n2[n_layer], *kc[n_layer], *vc[n_layer];
    float *onorm, *rc, *rs, *x, *h, *q, *k, *v, *att, *gate, *up, *logits;
    std::vector<void *> owned;
    // the FFN as model.cpp issues it (backend::ffn_swiglu_add), and the layers run `repeat` times a step
    // (a longer step from the same weights and caches)
    bool ffn_op = false;
    int repeat = 1;
    static std::vector<std::vector<uint8_t>> &host_weights() { static std::vector<std::vector<uint8_t>> w; return w; }
    static std::vector<std::vector<float>> &host_vecs() { static std::vector<std::vector<float>> v; return v; }
    size_t wi = 0, vi = 0;
    weight W(ggml_type t, int64_t ne0, int64_t ne1) {
        auto &hw = host_weights();
        if (wi == hw.size()) {
            std::vector<uint8_t> bytes(ggml_row_size(t, ne0) * ne1);
            for (int64_t r = 0; r < ne1; r++) {
                auto f = test::random_floats(ne0, -0.3f, 0.3f);
                quantize_row(t, f.data(), bytes.data() + r * ggml_row_size(t, ne0), ne0);
            }
            hw.push_back(bytes);
        }
        const auto &bytes = hw[wi++];
        weight w;
        w.type = t; w.ne0 = ne0; w.ne1 = ne1; w.nbytes = bytes.size();
        w.data = b.place_weight(bytes.data(), bytes.size());
        // as model.cpp: a host backend may use the bytes in place (then they are not ours to release)
        if (!b.is_host() || w.data != bytes.data()) owned.push_back(const_cast<void *>(w.data));
        return w;
    }
    float *V(size_t n, float lo, float hi) {
        auto &hv = host_vecs();
        if (vi == hv.size()) hv.push_back(test::random_floats(n, lo, hi));
        const auto &v = hv[vi++];
        float *p = (float *)b.alloc(n * 4);
        b.upload(p, v.data(), n * 4);
        owned.push_back(p);
        return p;
    }
    float *A(size_t n) { float *p = (float *)b.alloc(n * 4); owned.push_back(p); return p; }
    mini_model(backend &be, ggml_type t, int max_n) : b(be) {
        emb = W(t, d, vocab);  // every row length here (256, 512) suits every type, K-quants included
        for (int l = 0; l < n_layer; l++) {
            wq[l] = W(t, d, n_head * hd); wk[l] = W(t, d, n_head_kv * hd); wv[l] = W(t, d, n_head_kv * hd);
            wo[l] = W(t, n_head * hd, d); wg[l] = W(t, d, ff); wu[l] = W(t, d, ff); wd[l] = W(t, ff, d);
            bq[l] = V(n_head * hd, -0.2f, 0.2f); bk[l] = V(n_head_kv * hd, -0.2f, 0.2f); bv[l] = V(n_head_kv * hd, -0.2f, 0.2f);
            n1[l] = V(d, 0.8f, 1.2f); n2[l] = V(d, 0.8f, 1.2f);
            kc[l] = V((size_t)n_slots * n_head_kv * hd, -1, 1); vc[l] = V((size_t)n_slots * n_head_kv * hd, -1, 1);
        }
        onorm = V(d, 0.8f, 1.2f);
        std::vector<float> cs(200 * hd / 2), sn(cs.size());
        for (int p = 0; p < 200; p++)
            for (int i = 0; i < hd / 2; i++) {
                const double th = p * std::pow(10000.0, -2.0 * i / hd);
                cs[p * hd / 2 + i] = (float)std::cos(th);
                sn[p * hd / 2 + i] = (float)std::sin(th);
            }
        rc = A(cs.size()); rs = A(sn.size());
        b.upload(rc, cs.data(), cs.size() * 4);
        b.upload(rs, sn.data(), sn.size() * 4);
        x = A((size_t)max_n * d); h = A((size_t)max_n * n_head * hd); q = A((size_t)max_n * n_head * hd);
        k = A((size_t)max_n * n_head_kv * hd); v = A((size_t)max_n * n_head_kv * hd); att = A((size_t)max_n * n_head * hd);
        gate = A((size_t)max_n * ff); up = A((size_t)max_n * ff); logits = A(vocab);
    }
    ~mini_model() { for (void *p : owned) b.release(p); }
    // fused: one-token steps through backend::decode_layers (as model.cpp issues them)
    std::vector<float> forward(const std::vector<int32_t> &tokens, const std::vector<int32_t> &slots, const std::vector<int32_t> &keys,
                               int n_fixed, const std::vector<int32_t> &lo, const std::vector<int32_t> &hi, bool fused = false) {
        const int n = (int)tokens.size(), nq = n_head * hd, nkv = n_head_kv * hd;
        b.get_rows(emb, tokens.data(), n, x);
        if (fused && n == 1) {
            layer_ref refs[n_layer];
            for (int l = 0; l < n_layer; l++) {
                layer_ref &r = refs[l];
                r.wq = wq[l]; r.wk = wk[l]; r.wv = wv[l]; r.wo = wo[l]; r.gate = wg[l]; r.up = wu[l]; r.down = wd[l];
                r.bq = bq[l]; r.bk = bk[l]; r.bv = bv[l]; r.attn_norm = n1[l]; r.ffn_norm = n2[l]; r.k_cache = kc[l]; r.v_cache = vc[l];
            }
            decode_args da;
            da.x = x; da.layers = refs; da.n_layer = n_layer; da.n_embd = d; da.n_ff = ff; da.eps = 1e-6f;
            attn_args &a = da.attn;
            a.keys = keys.data(); a.n_keys = (int)keys.size(); a.n_fixed = n_fixed; a.win_lo = lo.data(); a.win_hi = hi.data();
            a.n_q = 1; a.n_head = n_head; a.n_head_kv = n_head_kv; a.head_dim = hd; a.n_rot = hd; a.mode = ROPE_MODE_NEOX;
            a.rope_cos = rc; a.rope_sin = rs; a.scale = 1.0f / std::sqrt((float)hd);
            da.slot = slots[0]; da.q = q; da.att = att; da.h = gate;
            fused = b.decode_layers(da);
        }
        for (int i = 0; i < n_layer * repeat && !fused; i++) {
            const int l = i % n_layer;
            b.rms_norm(x, n1[l], n, d, 1e-6f, h);
            b.matmul(wq[l], h, n, q);
            b.matmul(wk[l], h, n, k);
            b.matmul(wv[l], h, n, v);
            b.add_bias(q, bq[l], n, nq);
            b.add_bias(k, bk[l], n, nkv);
            b.add_bias(v, bv[l], n, nkv);
            b.kv_store(kc[l], vc[l], k, v, slots.data(), n, nkv);
            attn_args a;
            a.q = q; a.k_cache = kc[l]; a.v_cache = vc[l]; a.out = att;
            a.keys = keys.data(); a.n_keys = (int)keys.size(); a.n_fixed = n_fixed; a.win_lo = lo.data(); a.win_hi = hi.data();
            a.n_q = n; a.n_head = n_head; a.n_head_kv = n_head_kv; a.head_dim = hd; a.n_rot = hd; a.mode = ROPE_MODE_NEOX;
            a.rope_cos = rc; a.rope_sin = rs; a.scale = 1.0f / std::sqrt((float)hd);
            b.attention(a);
            b.matmul(wo[l], att, n, h);
            b.add(x, h, (size_t)n * d);
            b.rms_norm(x, n2[l], n, d, 1e-6f, h);
            if (ffn_op) {
                b.ffn_swiglu_add(x, h, wg[l], wu[l], wd[l], n, gate, up, h);
                continue;
            }
            b.matmul(wg[l], h, n, gate);
            b.matmul(wu[l], h, n, up);
            b.swiglu(gate, up, (size_t)n * ff, gate);
            b.matmul(wd[l], gate, n, h);
            b.add(x, h, (size_t)n * d);
        }
        b.rms_norm(x + (size_t)(n - 1) * d, onorm, 1, d, 1e-6f, h);
        b.matmul(emb, h, 1, logits);
        std::vector<float> out(vocab + (size_t)n * d);
        b.download(out.data(), logits, vocab * 4);
        b.download(out.data() + vocab, x, (size_t)n * d * 4);
        return out;
    }
};

TEST(cuda_layer_sequence_matches_cpu_backend) {
    auto cpu = backend_cpu_create(2);
    for (bool precise : {true, false})
    for (ggml_type t : {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K}) {
        backend_cuda_set_precise(be(), precise);
        mini_model::host_weights().clear();
        mini_model::host_vecs().clear();
        mini_model mg(be(), t, 24), mc(*cpu, t, 24);
        const bool quant = t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16;
        // the CPU quantizes activations to 8 bits for quantized weights (measured on an H100 host: up to
        // 0.08 after 2 layers and 30 steps, once 0.146 for Q4_K at step 29 over the ~40 runs of
        // 2026-11-26); a staging or graph bug moves the outputs by O(1)
        // by default the 20-token chunk's products and attention round operands to 16 bits (~1e-3 each;
        // measured up to 0.0215 on an H100, the engine's CUDA tests allow 4e-2 for BF16)
        const double tol = quant ? 0.2 : precise ? 2e-4 : 4e-2;
        // a prompt chunk (n = 20: tensor cores for n > 8), then single-token steps (graphs after the second),
        // then a 3-token chunk; sinks 0..3, window ring in slots 4..
        int pos = 0;
        auto step = [&](int n) {
            std::vector<int32_t> tokens(n), slots(n), keys, lo(n), hi(n);
            for (int i = 0; i < n; i++) { tokens[i] = (int32_t)(test::rng()() % mini_model::vocab); slots[i] = 4 + (pos + i) % 80; }
            // fixed: sinks in slots 90..93 (stored once, before); window: every token so far in age order
            const int n_fixed = 4;
            for (int i = 0; i < n_fixed; i++) keys.push_back(90 + i);
            const int first = std::max(0, pos + n - 40);  // window of 40
            for (int p = first; p < pos + n; p++) keys.push_back(4 + p % 80);
            for (int i = 0; i < n; i++) { hi[i] = pos + i + 1 - first; lo[i] = std::max(0, hi[i] - 40); }
            // the last five one-token steps through decode_layers (on sm_90: one kernel for F16/BF16 in
            // the default mode; its graph captured at the second and replayed)
            const bool fused = n == 1 && pos >= 29;
            auto g = mg.forward(tokens, slots, keys, n_fixed, lo, hi, fused);
            auto c = mc.forward(tokens, slots, keys, n_fixed, lo, hi, fused);
            const double e = test::rel_error(g.data(), c.data(), g.size());
            CHECK_MSG(all_finite(g) && e < tol, "type %s %s, %d tokens at %d: CUDA vs CPU rel error %g (tol %g)",
                      ggml_type_info(t).name, precise ? "precise" : "default", n, pos, e, tol);
            pos += n;
        };
        const size_t fused0 = backend_cuda_fused_decodes(be());
        step(20);
        for (int s = 0; s < 6; s++) step(1);
        step(3);
        for (int s = 0; s < 5; s++) step(1);
        const size_t fused = backend_cuda_fused_decodes(be()) - fused0;
        const bool expect = !precise && (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) && backend_cuda_fused_decode_available();
        CHECK_MSG(fused == (expect ? 5u : 0u), "type %s %s: %zu fused decode steps, expected %d", ggml_type_info(t).name,
                  precise ? "precise" : "default", fused, expect ? 5 : 0);
    }
    backend_cuda_set_precise(be(), false);
}

// A token step of many layers goes to the device as two batches: its first layers as soon as the host
// has issued them, then the rest (cuda_backend::ffn_swiglu_add, after a host sync). Every step must equal
// the CPU backend's, and both batches must replay as graphs (two launches a step once captured).
TEST(cuda_token_step_in_two_batches_matches_cpu_and_replays) {
    auto cpu = backend_cpu_create(2);
    mini_model::host_weights().clear();
    mini_model::host_vecs().clear();
    mini_model mg(be(), GGML_TYPE_BF16, 8), mc(*cpu, GGML_TYPE_BF16, 8);
    for (mini_model *m : {&mg, &mc}) {
        m->ffn_op = true;
        m->repeat = 5;  // 10 layers: ~5 launches each, so the first batch ends after about three
    }
    size_t launches0 = 0, launches1 = 0;
    int pos = 0;
    for (int s = 0; s < 9; s++) {
        const int32_t token = (int32_t)(test::rng()() % mini_model::vocab), slot = 4 + pos % 80;
        std::vector<int32_t> keys;
        for (int i = 0; i < 4; i++) keys.push_back(90 + i);
        const int first = std::max(0, pos + 1 - 40);
        for (int p = first; p <= pos; p++) keys.push_back(4 + p % 80);
        const std::vector<int32_t> lo = {std::max(0, pos + 1 - first - 40)}, hi = {pos + 1 - first};
        if (s == 5) backend_cuda_graph_stats(be(), &launches0, nullptr);
        const auto g = mg.forward({token}, {slot}, keys, 4, lo, hi);
        const auto c = mc.forward({token}, {slot}, keys, 4, lo, hi);
        const double e = test::rel_error(g.data(), c.data(), g.size());
        CHECK_MSG(all_finite(g) && e < 4e-2, "step %d: CUDA vs CPU rel error %g", s, e);
        pos++;
    }
    backend_cuda_graph_stats(be(), &launches1, nullptr);
    if (!env_off("ENDLESS_CUDA_GRAPHS")) CHECK_MSG(launches1 - launches0 >= (env_off("ENDLESS_CUDA_STEP_SPLIT") ? 4u : 8u), "%zu graph launches in 4 steps", launches1 - launches0);
}

#endif

TEST(cuda_bad_arguments_and_out_of_memory) {
    test_weight emb(GGML_TYPE_F16, 64, 10);
    dbuf out(64);
    const int32_t bad = 10;
    bool threw = false;
    try { be().get_rows(emb.w, &bad, 1, out.f()); } catch (const error &e) { threw = e.status() == ENDLESS_ERR_INVALID_ARGUMENT; }
    CHECK(threw);
    threw = false;
    try { be().alloc((size_t)1 << 50); } catch (const error &e) {
        threw = e.status() == ENDLESS_ERR_OUT_OF_MEMORY && std::string(e.what()).find("out of memory") != std::string::npos;
    }
    CHECK(threw);
    weight q5 = emb.w;
    q5.type = GGML_TYPE_Q5_0;
    threw = false;
    try { be().matmul(q5, out.f(), 1, out.f()); } catch (const error &e) { threw = e.status() == ENDLESS_ERR_UNSUPPORTED; }
    CHECK(threw);
    // still usable after the errors
    const int32_t id = 3;
    be().get_rows(emb.w, &id, 1, out.f());
    auto got = out.get();
    auto ref = emb.row(3);
    CHECK(test::rel_error(got.data(), ref.data(), 64) < 1e-6);
}

}  // namespace

int main() {
    const int n = backend_cuda_device_count();
    if (n == 0) {
        std::printf("SKIP test_cuda_ops: no CUDA device (built with CUDA, but no driver or GPU here)\n");
        return 0;
    }
    std::printf("device: %s\n", be().name().c_str());
    // ENDLESS_TEST_ONLY=a,b: only the tests whose names contain one of these (for compute-sanitizer runs)
    const char *only = std::getenv("ENDLESS_TEST_ONLY");
    auto wanted = [&](const std::string &name) {
        if (!only || !*only) return true;
        std::string list = only;
        for (size_t p = 0; p <= list.size();) {
            const size_t q = std::min(list.find(',', p), list.size());
            if (q > p && name.find(list.substr(p, q - p)) != std::string::npos) return true;
            p = q + 1;
        }
        return false;
    };
    for (auto &t : test::registry()) {
        if (!wanted(t.first)) continue;
        int before = test::failures();
        try {
            t.second();
        } catch (const std::exception &e) {
            std::printf("  FAIL exception: %s\n", e.what());
            test::failures()++;
        }
        std::printf("%s %s\n", test::failures() == before ? "ok  " : "FAIL", t.first.c_str());
    }
    if (test::failures()) { std::printf("%d check(s) failed\n", test::failures()); return 1; }
    return 0;
}
#else
int main() {
    std::printf("SKIP test_cuda_ops: built without CUDA\n");
    return 0;
}
#endif
