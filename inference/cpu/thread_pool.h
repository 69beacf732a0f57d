#pragma once
// A fixed pool of worker threads for data-parallel loops inside one forward step.
//
// parallel_for(n, fn) runs fn(i) for every i in [0, n) across the workers and the calling thread
// and returns when all are done. Tasks are claimed one at a time from a shared counter, so uneven
// tasks balance themselves.
//
// A decode step runs several loops per layer, each a few hundred microseconds long, on machines
// whose cores are often shared with other processes. Two choices follow from that:
// - A loop ends when its tasks are done, not when every worker has checked in: a worker that the
//   operating system has not scheduled yet takes no task and is not waited for (the caller runs
//   the tasks alone). Each loop is a numbered round, and a task is claimed by a compare-and-swap
//   on (round, next index), so a worker that wakes late cannot claim a task of a later round with
//   the function of an earlier one.
// - Between loops a worker spins briefly before it sleeps, because the next loop of the same step
//   usually starts within microseconds and a sleeping thread takes far longer to wake.
//
// Thread safety: one caller at a time (the backend's owning thread); `fn` runs concurrently with
// itself and must only write disjoint data per task.

#include <atomic>
#include <cstdint>
#include <functional>
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
    void worker_loop(const std::stop_token& stop);
    // Claims and runs tasks of `round` until none is left or the round is over.
    void run_tasks(uint32_t round, const std::function<void(int64_t)>& fn, uint32_t n_tasks);

    // The published round; workers wait on it. Written only by the caller.
    std::atomic<uint32_t> round_{0};
    // (round << 32) | next task index of the current round.
    std::atomic<uint64_t> work_{0};
    // Tasks of the current round finished; the caller waits on it.
    std::atomic<uint32_t> done_{0};
    // The current round's loop, written before round_ is published.
    std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
    std::atomic<uint32_t> n_tasks_{0};
    std::vector<std::jthread> workers_;
};

}  // namespace sluice::inference::cpu
