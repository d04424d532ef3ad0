// The CPU backend's thread pool. A token step calls parallel_for a few hundred times, each job
// lasting tens of microseconds, so workers are persistent and spin briefly on a generation
// counter before falling back to a condition variable; waking a sleeping thread costs more than
// many of those jobs. The calling thread runs chunk 0 itself; with one thread no worker exists.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <system_error>
#include <mutex>
#include <thread>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_CPU_RELAX() _mm_pause()
#else
#define POOL_CPU_RELAX() std::this_thread::yield()
#endif

namespace endless {

namespace {
// How long an idle worker keeps spinning before it sleeps: long enough to bridge the gap
// between two ops of a decode step, short enough not to burn a core between tokens.
constexpr auto POOL_SPIN_TIME = std::chrono::microseconds(300);
}  // namespace

struct thread_pool::impl {
    int n_threads = 1;
    std::vector<std::thread> workers;

    // the current job
    const std::function<void(int64_t, int64_t, int)> *fn = nullptr;
    int64_t n = 0;
    std::atomic<uint64_t> generation{0};  // bumped once per job; workers watch it
    std::atomic<int> pending{0};          // workers still running the current job
    std::atomic<bool> stop{false};

    // sleeping workers
    std::mutex mutex;
    std::condition_variable cv;
    std::atomic<int> sleepers{0};

    // the first exception thrown by a worker, rethrown by parallel_for
    std::mutex error_mutex;
    std::exception_ptr error;

    void run_chunk(int t) {
        const int64_t begin = n * t / n_threads, end = n * (t + 1) / n_threads;
        if (begin >= end) return;
        try {
            (*fn)(begin, end, t);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }

    void worker_main(int t) {
        uint64_t seen = 0;
        for (;;) {
            // spin, then sleep, until a new generation (or stop) appears
            auto spin_start = std::chrono::steady_clock::now();
            int iter = 0;
            for (;;) {
                if (generation.load(std::memory_order_acquire) != seen || stop.load(std::memory_order_acquire)) break;
                POOL_CPU_RELAX();
                if (++iter % 256 == 0 && std::chrono::steady_clock::now() - spin_start > POOL_SPIN_TIME) {
                    std::unique_lock<std::mutex> lock(mutex);
                    sleepers.fetch_add(1);
                    cv.wait(lock, [&] { return generation.load() != seen || stop.load(); });
                    sleepers.fetch_sub(1);
                    spin_start = std::chrono::steady_clock::now();
                }
            }
            if (stop.load(std::memory_order_acquire)) return;
            seen = generation.load(std::memory_order_acquire);
            run_chunk(t);
            pending.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
};

thread_pool::thread_pool(int n_threads) : impl_(new impl) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 1024) {
        delete impl_;
        fail(ENDLESS_ERR_INVALID_ARGUMENT, "thread_pool: absurd thread count " + std::to_string(n_threads));
    }
    impl_->n_threads = n_threads;
    try {
        for (int t = 1; t < n_threads; t++) impl_->workers.emplace_back([this, t] { impl_->worker_main(t); });
    } catch (const std::system_error &e) {
        impl_->stop.store(true);
        { std::lock_guard<std::mutex> lock(impl_->mutex); }
        impl_->cv.notify_all();
        for (auto &w : impl_->workers) w.join();
        delete impl_;
        fail(ENDLESS_ERR_INTERNAL, std::string("thread_pool: cannot start threads: ") + e.what());
    }
}

thread_pool::~thread_pool() {
    impl_->stop.store(true);
    {
        std::lock_guard<std::mutex> lock(impl_->mutex);
    }
    impl_->cv.notify_all();
    for (auto &w : impl_->workers) w.join();
    delete impl_;
}

int thread_pool::size() const { return impl_->n_threads; }

void thread_pool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)> &fn) {
    if (n <= 0) return;
    impl &p = *impl_;
    if (p.n_threads == 1 || n == 1) {
        fn(0, n, 0);
        return;
    }
    p.fn = &fn;
    p.n = n;
    p.error = nullptr;
    p.pending.store(p.n_threads - 1, std::memory_order_relaxed);
    p.generation.fetch_add(1, std::memory_order_seq_cst);
    if (p.sleepers.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(p.mutex);
        p.cv.notify_all();
    }
    p.run_chunk(0);
    // more threads than free cores: stop hogging the core a worker needs after a while
    for (int spins = 0; p.pending.load(std::memory_order_acquire) > 0; spins++) {
        if (spins < 20000) POOL_CPU_RELAX();
        else std::this_thread::yield();
    }
    if (p.error) {
        std::exception_ptr e = p.error;
        p.error = nullptr;
        std::rethrow_exception(e);
    }
}

}  // namespace endless
