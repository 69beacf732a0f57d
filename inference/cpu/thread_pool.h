#pragma once
// A fixed pool of worker threads for data-parallel loops inside one forward step.
//
// parallel_for(n, fn) runs fn(i) for every i in [0, n) across the workers and the calling thread
// and returns when all are done. Tasks are taken from a shared atomic counter, so uneven tasks
// balance themselves. Workers sleep on a condition variable between loops.
//
// Thread safety: one caller at a time (the backend's owning thread); `fn` runs concurrently with
// itself and must only write disjoint data per task.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::inference::cpu {

class ThreadPool {
public:
    // `n_threads` counts the caller: 1 runs everything inline.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int n_threads() const { return static_cast<int>(workers_.size()) + 1; }

    void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& fn);

private:
    void worker_loop(std::stop_token stop);
    void run_tasks();

    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::condition_variable done_;
    uint64_t generation_ = 0;  // guarded by mutex_
    int active_ = 0;           // workers still inside the current loop; guarded by mutex_
    const std::function<void(int64_t)>* fn_ = nullptr;
    int64_t n_tasks_ = 0;
    std::atomic<int64_t> next_{0};
    std::vector<std::jthread> workers_;
};

}  // namespace sluice::inference::cpu
