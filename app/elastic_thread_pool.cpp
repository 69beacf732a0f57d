#include "app/elastic_thread_pool.h"

#include <algorithm>

#include "common/check.h"

namespace sluice::app {

ElasticThreadPool::ElasticThreadPool(int min_threads, int max_threads,
                                     std::chrono::milliseconds idle_exit)
    : min_threads_(min_threads), max_threads_(max_threads), idle_exit_(idle_exit) {
    SLUICE_CHECK(min_threads >= 1 && min_threads <= max_threads,
                 "elastic thread pool needs 1 <= min_threads <= max_threads");
    std::lock_guard lock(mutex_);
    for (int i = 0; i < min_threads_; ++i) {
        start_worker();
    }
}

ElasticThreadPool::~ElasticThreadPool() {
    bool running = false;
    {
        std::lock_guard lock(mutex_);
        running = !shutdown_;
    }
    if (running) {
        shutdown();
    }
}

void ElasticThreadPool::start_worker() {
    workers_.emplace_back();
    auto self = std::prev(workers_.end());
    self->thread = std::thread([this, self] { worker_loop(self); });
    ++alive_;
    ++starting_;
    peak_ = std::max(peak_, alive_);
}

void ElasticThreadPool::reap_done() {
    for (auto it = workers_.begin(); it != workers_.end();) {
        if (!it->done) {
            ++it;
            continue;
        }
        // Done was set as the loop's last act under the mutex: the thread is returning and
        // needs no lock to do so.
        it->thread.join();
        it = workers_.erase(it);
    }
}

void ElasticThreadPool::enqueue(std::function<void()> fn) {
    {
        std::lock_guard lock(mutex_);
        SLUICE_CHECK(!shutdown_, "enqueue after shutdown");
        reap_done();
        jobs_.push_back(std::move(fn));
        // Every queued job not matched by an idle thread (or one about to be) gets a new one,
        // so that a connection never waits behind streams while the ceiling allows a thread.
        if (static_cast<int>(jobs_.size()) > idle_ + starting_ && alive_ < max_threads_) {
            start_worker();
        }
    }
    work_.notify_one();
}

void ElasticThreadPool::worker_loop(std::list<Worker>::iterator self) {
    std::unique_lock lock(mutex_);
    --starting_;
    while (true) {
        ++idle_;
        const bool woken =
            work_.wait_for(lock, idle_exit_, [this] { return shutdown_ || !jobs_.empty(); });
        --idle_;
        if (!jobs_.empty()) {
            std::function<void()> job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            job();
            job = nullptr;  // whatever the connection held goes before the lock is retaken
            lock.lock();
            continue;
        }
        if (shutdown_) {
            break;
        }
        if (!woken && alive_ > min_threads_) {
            break;  // idle past idle_exit_ and above the floor
        }
    }
    --alive_;
    self->done = true;
}

void ElasticThreadPool::shutdown() {
    std::list<Worker> all;
    {
        std::lock_guard lock(mutex_);
        shutdown_ = true;
        // Iterators into the list stay valid across splice, so the workers' `self` still holds.
        all.splice(all.end(), workers_);
    }
    work_.notify_all();
    for (Worker& worker : all) {
        worker.thread.join();
    }
}

ElasticPoolStats ElasticThreadPool::stats() const {
    std::lock_guard lock(mutex_);
    return ElasticPoolStats{.threads = alive_,
                            .idle = idle_,
                            .queued = static_cast<int>(jobs_.size()),
                            .peak = peak_};
}

}  // namespace sluice::app
