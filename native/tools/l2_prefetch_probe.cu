// Does an L2 prefetch issued by one kernel make the next kernel's streaming reads faster, and what
// does issuing it cost? A measurement tool, not part of the build (it decided against prefetching
// decode weights with prefetch instructions: NOTES.md, fifth session). On the GPU machine:
//   nvcc -std=c++17 -O3 -arch=sm_90 native/tools/l2_prefetch_probe.cu -o /tmp/probe && /tmp/probe
// Prints, for S MiB of weights read the way matvec.cu reads them (16-byte loads around L1):
//   cold      L2 flushed before the read
//   l2        the same bytes read just before (an upper bound for what a prefetch can give)
//   bulk/line prefetched by an earlier kernel (cp.async.bulk.prefetch / prefetch.global.L2) and
//             given time to land
//   overlap   prefetch kernel and read kernel back to back (what the backend does)
//   pf-kernel the prefetching kernel alone (does a block wait for its bulk prefetches?)
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace {

constexpr uint32_t CHUNK = 16384;  // bytes one thread requests at a time
struct prefetch_range {
    const void *ptr;
    uint32_t bytes;
    int bulk;  // cp.async.bulk.prefetch per chunk, or prefetch.global.L2 per 128 bytes
};

// Chunk c of the range goes to thread c mod (blocks x threads).
__device__ void l2_prefetch(const prefetch_range &pf) {
    const unsigned g = blockIdx.x * blockDim.x + threadIdx.x, G = gridDim.x * blockDim.x;
    const unsigned nc = (pf.bytes + CHUNK - 1) / CHUNK;
    for (unsigned c = g; c < nc; c += G) {
        const uint32_t off = c * CHUNK, size = min(CHUNK, pf.bytes - off);
        const char *p = static_cast<const char *>(pf.ptr) + off;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        if (pf.bulk) {
            asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(size) : "memory");
            continue;
        }
#endif
        for (uint32_t o = 0; o < size; o += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
    }
}

__global__ void read_kernel(const uint4 *p, size_t n, unsigned *sink) {
    unsigned acc = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint4 v;
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p + i));
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) sink[0] = acc;
}

__global__ void prefetch_kernel(prefetch_range pf) { l2_prefetch(pf); }

__global__ void spin_kernel(long long cycles) {
    const long long t0 = clock64();
    while (clock64() - t0 < cycles) {
    }
}

#define CK(x) check((x), #x)
void check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return;
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
}

}  // namespace

int main() {
    cudaDeviceProp prop{};
    CK(cudaGetDeviceProperties(&prop, 0));
    const int n_sm = prop.multiProcessorCount;
    int clock_khz = 0;
    CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    std::printf("%s, %d SMs, L2 %d MiB\n", prop.name, n_sm, prop.l2CacheSize >> 20);
    const size_t W_BYTES = 64u << 20, E_BYTES = 512u << 20;
    uint8_t *w = nullptr, *e = nullptr;
    unsigned *sink = nullptr;
    CK(cudaMalloc(&w, W_BYTES));
    CK(cudaMalloc(&e, E_BYTES));
    CK(cudaMalloc(&sink, 4));
    CK(cudaMemset(w, 1, W_BYTES));
    CK(cudaMemset(e, 2, E_BYTES));
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    auto flush = [&] { read_kernel<<<4 * n_sm, 512>>>((const uint4 *)e, E_BYTES / 16, sink); };
    auto read = [&](size_t bytes) { read_kernel<<<4 * n_sm, 512>>>((const uint4 *)w, bytes / 16, sink); };
    auto prefetch = [&](size_t bytes, int bulk, int blocks) {
        prefetch_kernel<<<blocks, 128>>>(prefetch_range{w, (uint32_t)bytes, bulk});
    };
    auto timed = [&](auto &&setup, auto &&body) {
        float best = 1e9f, sum = 0.0f;
        const int reps = 20;
        for (int r = 0; r < reps; r++) {
            setup();
            CK(cudaEventRecord(a));
            body();
            CK(cudaEventRecord(b));
            CK(cudaEventSynchronize(b));
            float ms = 0.0f;
            CK(cudaEventElapsedTime(&ms, a, b));
            best = ms < best ? ms : best;
            sum += ms;
        }
        return std::make_pair(best * 1000.0f, sum / reps * 1000.0f);
    };
    const long long land = (long long)(clock_khz) * 200 / 1000;  // ~200 us of clock
    for (size_t mib : {4, 8, 16, 24, 32}) {
        const size_t s = mib << 20;
        auto pr = [&](const char *what, std::pair<float, float> t) {
            std::printf("%3zu MiB %-10s best %8.2f us  mean %8.2f us  (%6.0f GB/s best)\n", mib, what, t.first, t.second,
                        s / (t.first * 1e3));
        };
        pr("cold", timed([&] { flush(); }, [&] { read(s); }));
        pr("l2", timed([&] { flush(); read(s); }, [&] { read(s); }));
        pr("bulk", timed([&] { flush(); prefetch(s, 1, n_sm); spin_kernel<<<1, 1>>>(land); }, [&] { read(s); }));
        pr("line", timed([&] { flush(); prefetch(s, 0, n_sm); spin_kernel<<<1, 1>>>(land); }, [&] { read(s); }));
        pr("overlap-b", timed([&] { flush(); }, [&] { prefetch(s, 1, n_sm); read(s); }));
        pr("overlap-l", timed([&] { flush(); }, [&] { prefetch(s, 0, n_sm); read(s); }));
        pr("pfk-bulk", timed([&] { flush(); }, [&] { prefetch(s, 1, n_sm); }));
        pr("pfk-line", timed([&] { flush(); }, [&] { prefetch(s, 0, n_sm); }));
        pr("pfk-b-1blk", timed([&] { flush(); }, [&] { prefetch(s, 1, 1); }));
    }
    CK(cudaDeviceSynchronize());
    return 0;
}
