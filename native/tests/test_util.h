// A minimal test harness for the C++ tests: CHECK macros that count failures, a fresh-random
// helper, and main() boilerplate via TEST_MAIN. Each test_*.cpp is its own executable (ctest).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace test {

inline int &failures() { static int n = 0; return n; }
inline std::vector<std::pair<std::string, std::function<void()>>> &registry() {
    static std::vector<std::pair<std::string, std::function<void()>>> r;
    return r;
}
struct registrar {
    registrar(const char *name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};
// Fresh random inputs each run unless ENDLESS_TEST_SEED is set; the seed is printed on failure.
inline std::mt19937_64 &rng() {
    static std::mt19937_64 r([] {
        const char *s = std::getenv("ENDLESS_TEST_SEED");
        uint64_t seed = s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
        std::printf("seed %llu (ENDLESS_TEST_SEED to repeat)\n", (unsigned long long)seed);
        return seed;
    }());
    return r;
}
inline std::vector<float> random_floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto &x : v) x = d(rng());
    return v;
}
// ||a - b|| / ||b||
inline double rel_error(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; num += d * d; den += (double)b[i] * b[i]; }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace test

#define TEST(name) \
    static void name(); \
    static test::registrar name##_registrar(#name, name); \
    static void name()

#define CHECK(cond) do { if (!(cond)) { \
    std::printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); test::failures()++; } } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) { \
    std::printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); std::printf(__VA_ARGS__); \
    std::printf("\n"); test::failures()++; } } while (0)

#define TEST_MAIN() \
    int main() { \
        for (auto &t : test::registry()) { \
            int before = test::failures(); \
            t.second(); \
            std::printf("%s %s\n", test::failures() == before ? "ok  " : "FAIL", t.first.c_str()); \
        } \
        if (test::failures()) { std::printf("%d check(s) failed\n", test::failures()); return 1; } \
        return 0; \
    }
