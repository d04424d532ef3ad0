// Tests of the reference conversions in quant.cpp: hand-built blocks with known values must
// decode exactly (the "reference dequantizer" test, layouts as ggml defines them), and
// quantize -> dequantize round trips of fresh random data must stay within per-type bounds.
#include <cstring>
#include <vector>

#include "error.h"
#include "quant.h"
#include "test_util.h"

using namespace endless;

namespace {

size_t test_row_bytes(ggml_type t, int64_t n) {
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

}  // namespace

TEST(q4_0_known_block) {
    block_q4_0 b;
    b.d = 0x3800;  // 0.5
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    dequantize_row(GGML_TYPE_Q4_0, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        CHECK_MSG(y[j] == 0.5f * (float)(j - 8), "value %d: %g", j, y[j]);
        CHECK_MSG(y[j + 16] == 0.5f * (float)(7 - j), "value %d: %g", j + 16, y[j + 16]);
    }
}

TEST(q8_0_known_block) {
    block_q8_0 b;
    b.d = 0x3400;  // 0.25
    for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)(j * 8 - 128);
    float y[32];
    dequantize_row(GGML_TYPE_Q8_0, &b, y, 32);
    for (int j = 0; j < 32; j++) CHECK(y[j] == 0.25f * (float)(j * 8 - 128));
}

TEST(q4_k_known_block) {
    // 6-bit scales and mins of the 8 sub-blocks, and their packed bytes written out by hand
    // (bytes 0..3: sc[0..3] | top bits of sc[4..7]; 4..7: m[0..3] | top bits of m[4..7];
    // 8..11: low nibbles of sc[4..7] | low nibbles of m[4..7] << 4).
    const int sc[8] = {1, 2, 3, 4, 17, 33, 48, 63};
    const int m[8] = {5, 6, 7, 8, 16, 1, 62, 32};
    const uint8_t packed[12] = {0x41, 0x82, 0xC3, 0xC4, 0x45, 0x06, 0xC7, 0x88, 0x01, 0x11, 0xE0, 0x0F};
    block_q4_k b;
    b.d = 0x3C00;     // 1.0
    b.dmin = 0x3800;  // 0.5
    std::memcpy(b.scales, packed, 12);
    for (int i = 0; i < 128; i++) b.qs[i] = (uint8_t)((i % 16) | (((i * 7) % 16) << 4));
    std::vector<float> y(256);
    dequantize_row(GGML_TYPE_Q4_K, &b, y.data(), 256);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            // sub-block j: bytes 32*(j/2)..+31, low nibble for even j, high for odd j
            const uint8_t byte = b.qs[32 * (j / 2) + l];
            const int q = (j % 2 == 0) ? (byte & 15) : (byte >> 4);
            const float expect = 1.0f * (float)(sc[j] * q) - 0.5f * (float)m[j];
            CHECK_MSG(y[32 * j + l] == expect, "sub-block %d value %d: %g != %g", j, l, y[32 * j + l], expect);
        }
}

TEST(q6_k_known_block) {
    int q[256];  // 6-bit unsigned codes; value = d * scale[i/16] * (q - 32)
    for (int i = 0; i < 256; i++) q[i] = (i * 13 + 5) % 64;
    block_q6_k b;
    b.d = 0x3400;  // 0.25
    for (int s = 0; s < 16; s++) b.scales[s] = (int8_t)(s * 9 - 70);
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int *p = q + 128 * h;
            b.ql[64 * h + l] = (uint8_t)((p[l] & 15) | ((p[l + 64] & 15) << 4));
            b.ql[64 * h + 32 + l] = (uint8_t)((p[l + 32] & 15) | ((p[l + 96] & 15) << 4));
            b.qh[32 * h + l] = (uint8_t)((p[l] >> 4) | ((p[l + 32] >> 4) << 2) | ((p[l + 64] >> 4) << 4) |
                                         ((p[l + 96] >> 4) << 6));
        }
    std::vector<float> y(256);
    dequantize_row(GGML_TYPE_Q6_K, &b, y.data(), 256);
    for (int i = 0; i < 256; i++) {
        const float expect = 0.25f * (float)(b.scales[i / 16] * (q[i] - 32));
        CHECK_MSG(y[i] == expect, "value %d: %g != %g", i, y[i], expect);
    }
}

TEST(round_trip_error_bounds) {
    struct bound { ggml_type type; double rel; };
    // Uniform data in [-1, 1]: the bounds are about 1.5x the expected rms error of each format.
    const bound bounds[] = {
        {GGML_TYPE_F32, 0.0},   {GGML_TYPE_F16, 1e-3},  {GGML_TYPE_BF16, 6e-3}, {GGML_TYPE_Q8_0, 1.2e-2},
        {GGML_TYPE_Q4_0, 0.11}, {GGML_TYPE_Q4_K, 0.10}, {GGML_TYPE_Q6_K, 0.03},
    };
    const int64_t n = 256 * 13;
    for (const auto &bd : bounds) {
        for (float amp : {1.0f, 1e-3f, 300.0f}) {
            std::vector<float> x = test::random_floats(n, -amp, amp);
            std::vector<uint8_t> q(test_row_bytes(bd.type, n));
            std::vector<float> y(n);
            quantize_row(bd.type, x.data(), q.data(), n);
            dequantize_row(bd.type, q.data(), y.data(), n);
            const double e = test::rel_error(y.data(), x.data(), n);
            CHECK_MSG(e <= bd.rel, "type %u amplitude %g: relative error %g > %g", (unsigned)bd.type, amp, e, bd.rel);
            // dot_row_reference is the dequantized row times x, in double
            std::vector<float> v = test::random_floats(n);
            double expect = 0;
            for (int64_t i = 0; i < n; i++) expect += (double)y[i] * v[i];
            const double got = dot_row_reference(bd.type, q.data(), v.data(), n);
            CHECK_MSG(std::fabs(got - expect) <= 1e-9 * (std::fabs(expect) + amp), "type %u dot %g != %g",
                      (unsigned)bd.type, got, expect);
        }
    }
}

TEST(zero_and_constant_blocks) {
    const ggml_type types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    for (ggml_type t : types) {
        std::vector<float> x(512, 0.0f), y(512, 1.0f);
        std::vector<uint8_t> q(test_row_bytes(t, 512));
        quantize_row(t, x.data(), q.data(), 512);
        dequantize_row(t, q.data(), y.data(), 512);
        for (float v : y) CHECK_MSG(v == 0.0f, "type %u: zero input decodes to %g", (unsigned)t, v);
        std::fill(x.begin(), x.end(), -0.75f);
        quantize_row(t, x.data(), q.data(), 512);
        dequantize_row(t, q.data(), y.data(), 512);
        CHECK_MSG(test::rel_error(y.data(), x.data(), 512) < 0.02, "type %u: constant row error %g", (unsigned)t,
                  test::rel_error(y.data(), x.data(), 512));
    }
}

TEST(bad_arguments_throw) {
    float x[300] = {0};
    uint8_t buf[1024] = {0};
    bool threw = false;
    try { dequantize_row(GGML_TYPE_Q4_K, buf, x, 300); } catch (const endless::error &e) {
        threw = e.status() == ENDLESS_ERR_INVALID_ARGUMENT;
    }
    CHECK(threw);
    threw = false;
    try { quantize_row(GGML_TYPE_Q5_K, x, buf, 256); } catch (const endless::error &e) {
        threw = e.status() == ENDLESS_ERR_UNSUPPORTED;
    }
    CHECK(threw);
    threw = false;
    try { dot_row_reference((ggml_type)99, buf, x, 32); } catch (const endless::error &e) {
        threw = e.status() == ENDLESS_ERR_UNSUPPORTED;
    }
    CHECK(threw);
}

TEST_MAIN()
