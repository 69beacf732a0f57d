#include "inference/cpu/thread_pool.h"

#include <algorithm>
#include <limits>

namespace sluice::inference::cpu {

namespace {

// Spins before sleeping: about 20-60 µs of PAUSE on current x86 cores, longer than the gap
// between two loops of one decode step and far shorter than the gap between steps.
constexpr int kSpins = 2000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

constexpr uint64_t kIndexMask = 0xffffffffULL;

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    for (int i = 1; i < n_threads; ++i) {
        workers_.emplace_back([this](std::stop_token stop) { worker_loop(stop); });
    }
}

ThreadPool::~ThreadPool() {
    for (auto& worker : workers_) {
        worker.request_stop();
    }
    // A round that no task belongs to: it only wakes the workers, which then see the stop.
    round_.fetch_add(1, std::memory_order_release);
    round_.notify_all();
    workers_.clear();  // joins
}

void ThreadPool::run_tasks(uint32_t round, const std::function<void(int64_t)>& fn,
                           uint32_t n_tasks) {
    uint64_t current = work_.load(std::memory_order_acquire);
    while ((current >> 32) == round && (current & kIndexMask) < n_tasks) {
        if (!work_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
            continue;  // `current` now holds the value that won
        }
        fn(static_cast<int64_t>(current & kIndexMask));
        if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_tasks) {
            done_.notify_one();
        }
        current = work_.load(std::memory_order_acquire);
    }
}

void ThreadPool::worker_loop(const std::stop_token& stop) {
    // Round 0 is the pool's state at construction; a worker that starts late must still see
    // the rounds (and the stop) published before it ran.
    uint32_t seen = 0;
    while (true) {
        uint32_t round = round_.load(std::memory_order_acquire);
        for (int spin = 0; round == seen && spin < kSpins; ++spin) {
            cpu_relax();
            round = round_.load(std::memory_order_acquire);
        }
        while (round == seen) {
            round_.wait(seen, std::memory_order_acquire);
            round = round_.load(std::memory_order_acquire);
        }
        if (stop.stop_requested()) {
            return;
        }
        seen = round;
        // Read after the round's acquire: these belong to `round` or to a later round, and a
        // later round's values are never used because the claim checks the round number (the
        // caller retires the old round in work_ before it writes them).
        const std::function<void(int64_t)>* fn = fn_.load(std::memory_order_acquire);
        const uint32_t n_tasks = n_tasks_.load(std::memory_order_acquire);
        if (fn != nullptr) {
            run_tasks(round, *fn, n_tasks);
        }
    }
}

void ThreadPool::parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
    if (n_tasks <= 0) {
        return;
    }
    if (workers_.empty() || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; ++i) {
            fn(i);
        }
        return;
    }
    // The task index travels in 32 bits; larger loops run as several rounds.
    constexpr int64_t kMaxRound = std::numeric_limits<uint32_t>::max();
    if (n_tasks > kMaxRound) {
        for (int64_t base = 0; base < n_tasks; base += kMaxRound) {
            parallel_for(std::min(kMaxRound, n_tasks - base), [&](int64_t i) { fn(base + i); });
        }
        return;
    }
    const auto count = static_cast<uint32_t>(n_tasks);
    const uint32_t round = round_.load(std::memory_order_relaxed) + 1;
    // The previous round's counter is retired before the new loop is described: a worker that
    // reads this round's fn_ or n_tasks_ (release/acquire) then sees the new round in work_, so
    // it can never pair the new task count with the previous round's index and function.
    work_.store(static_cast<uint64_t>(round) << 32, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    fn_.store(&fn, std::memory_order_release);
    n_tasks_.store(count, std::memory_order_release);
    round_.store(round, std::memory_order_release);
    round_.notify_all();

    run_tasks(round, fn, count);

    // Only tasks already claimed by a worker can be left; wait for them to finish.
    uint32_t done = done_.load(std::memory_order_acquire);
    for (int spin = 0; done != count && spin < kSpins; ++spin) {
        cpu_relax();
        done = done_.load(std::memory_order_acquire);
    }
    while (done != count) {
        done_.wait(done, std::memory_order_acquire);
        done = done_.load(std::memory_order_acquire);
    }
}

}  // namespace sluice::inference::cpu
