#pragma once
// The worker threads of a parallel backend, one per rank: run_step() hands every rank the same
// step and returns when all of them have finished it. The CPU and CUDA parallel backends run
// their ranks this way; what a rank does with a step (and with its failure: abort the group, so
// that no other rank waits forever) is the backend's `work`.
//
// Thread safety: run_step() from one thread at a time (the scheduler's); `work(rank)` runs on
// rank's thread. Whatever the caller writes before run_step() is visible to every `work` call
// of that step, and whatever `work` writes is visible to the caller after run_step() returns.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::inference::detail {

class RankWorkers {
public:
    // Starts `n_ranks` threads; `work(rank)` runs one step of rank `rank`.
    RankWorkers(std::size_t n_ranks, std::function<void(std::size_t rank)> work)
        : work_(std::move(work)) {
        for (std::size_t r = 0; r < n_ranks; ++r) {
            threads_.emplace_back([this, r] { loop(r); });
        }
    }

    // Stops the threads between steps and joins them.
    ~RankWorkers() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        step_cv_.notify_all();
        threads_.clear();  // joins
    }

    RankWorkers(const RankWorkers&) = delete;
    RankWorkers& operator=(const RankWorkers&) = delete;

    void run_step() {
        std::unique_lock lock(mutex_);
        pending_ = threads_.size();
        ++step_;
        step_cv_.notify_all();
        done_cv_.wait(lock, [&] { return pending_ == 0; });
    }

private:
    void loop(std::size_t rank) {
        std::uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock lock(mutex_);
                step_cv_.wait(lock, [&] { return stopping_ || step_ != seen; });
                if (stopping_) {
                    return;
                }
                seen = step_;
            }
            work_(rank);
            {
                std::lock_guard lock(mutex_);
                --pending_;
            }
            done_cv_.notify_one();
        }
    }

    const std::function<void(std::size_t)> work_;
    std::mutex mutex_;
    std::condition_variable step_cv_;  // a new step, or stopping
    std::condition_variable done_cv_;  // a rank finished the step
    std::uint64_t step_ = 0;           // guarded by mutex_
    std::size_t pending_ = 0;          // guarded by mutex_
    bool stopping_ = false;            // guarded by mutex_
    std::vector<std::jthread> threads_;  // last: joined first
};

}  // namespace sluice::inference::detail
