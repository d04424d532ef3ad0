// Run-time choice of the CPU kernel set. cpuid says what the processor implements; xgetbv says
// whether the OS saves the AVX / AVX-512 register state (without that, using them faults).
// The kernel set can be forced lower (tests compare every level against the reference).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "cpu/cpu_internal.h"
#include "cpu/cpu_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace endless {

namespace {

struct cpu_features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
};

cpu_features cpu_read_features() {
    cpu_features f;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    const unsigned max_leaf = a;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return f;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    const bool os_avx = (xlo & 0x6) == 0x6;       // XMM and YMM state
    const bool os_avx512 = (xlo & 0xe6) == 0xe6;  // plus opmask, ZMM_Hi256, Hi16_ZMM
    if (!os_avx) return f;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    if (max_leaf < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = (b >> 5) & 1;
    if (os_avx512) {
        f.avx512f = (b >> 16) & 1;
        f.avx512dq = (b >> 17) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.avx512vnni = (c >> 11) & 1;
    }
#endif
    return f;
}

const cpu_features &cpu_get_features() {
    static const cpu_features f = cpu_read_features();
    return f;
}

std::atomic<int> g_isa{-1};

}  // namespace

cpu_isa cpu_detect_isa() {
    const cpu_features &f = cpu_get_features();
#if defined(__x86_64__)
    const bool avx2 = f.avx2 && f.fma && f.f16c;
    if (avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) return CPU_ISA_AVX512;
    if (avx2) return CPU_ISA_AVX2;
#endif
    (void)f;
    return CPU_ISA_SCALAR;
}

const char *cpu_isa_name(cpu_isa isa) {
    switch (isa) {
    case CPU_ISA_SCALAR: return "scalar";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

// The starting kernel set: the best this machine has, or lower when ENDLESS_CPU_ISA names a
// lower one (scalar, avx2, avx512), so whole-model tests can run on every kernel set.
int cpu_initial_isa() {
    int v = (int)cpu_detect_isa();
    if (const char *env = std::getenv("ENDLESS_CPU_ISA")) {
        for (int l = CPU_ISA_SCALAR; l <= CPU_ISA_AVX512; l++)
            if (std::strcmp(env, cpu_isa_name((cpu_isa)l)) == 0) v = std::min(v, l);
    }
    return v;
}

cpu_isa cpu_get_isa() {
    int v = g_isa.load(std::memory_order_relaxed);
    if (v < 0) {
        v = cpu_initial_isa();
        g_isa.store(v, std::memory_order_relaxed);
    }
    return (cpu_isa)v;
}

cpu_isa cpu_set_isa(cpu_isa isa) {
    const cpu_isa prev = cpu_get_isa();
    int v = (int)isa;
    if (v < 0) v = 0;
    if (v > (int)cpu_detect_isa()) v = (int)cpu_detect_isa();
    g_isa.store(v, std::memory_order_relaxed);
    return prev;
}

}  // namespace endless
