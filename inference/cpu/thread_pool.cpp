#include "inference/cpu/thread_pool.h"

namespace sluice::inference::cpu {

ThreadPool::ThreadPool(int n_threads) {
    for (int i = 1; i < n_threads; ++i) {
        workers_.emplace_back([this](std::stop_token stop) { worker_loop(stop); });
    }
}

ThreadPool::~ThreadPool() {
    for (auto& worker : workers_) {
        worker.request_stop();
    }
    wake_.notify_all();
    workers_.clear();  // joins
}

void ThreadPool::run_tasks() {
    for (int64_t i = next_.fetch_add(1); i < n_tasks_; i = next_.fetch_add(1)) {
        (*fn_)(i);
    }
}

void ThreadPool::worker_loop(std::stop_token stop) {
    uint64_t seen = 0;
    while (true) {
        {
            std::unique_lock lock(mutex_);
            if (!wake_.wait(lock, stop, [&] { return generation_ != seen; })) {
                return;  // stop requested
            }
            seen = generation_;
        }
        run_tasks();
        std::lock_guard lock(mutex_);
        if (--active_ == 0) {
            done_.notify_one();
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
    {
        std::lock_guard lock(mutex_);
        fn_ = &fn;
        n_tasks_ = n_tasks;
        next_.store(0);
        active_ = static_cast<int>(workers_.size());
        ++generation_;
    }
    wake_.notify_all();
    run_tasks();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return active_ == 0; });
    fn_ = nullptr;
}

}  // namespace sluice::inference::cpu
