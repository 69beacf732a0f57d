#include "retrieval/detail/prepare_worker.h"

namespace sluice::retrieval::detail {

PrepareWorker::PrepareWorker(const Index& index)
    : index_(index), thread_([this](std::stop_token stop) { run(stop); }) {}

PrepareWorker::~PrepareWorker() {
    cancel_queued();
    thread_.request_stop();
    {
        std::lock_guard lock(mutex_);
        wake_.notify_all();
    }
    thread_.join();
}

std::future<Result<PreparedWrite>> PrepareWorker::submit(IndexWrite write) {
    Job job{std::move(write), {}};
    auto future = job.done.get_future();
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    wake_.notify_all();
    return future;
}

void PrepareWorker::cancel_queued() {
    std::deque<Job> dropped;
    {
        std::lock_guard lock(mutex_);
        dropped.swap(jobs_);
    }
    for (Job& job : dropped) {
        job.done.set_value(Status(StatusCode::kCancelled, "prepare cancelled: the sync stopped"));
    }
}

void PrepareWorker::run(const std::stop_token& stop) {
    while (true) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            if (!wake_.wait(lock, stop, [this] { return !jobs_.empty(); })) {
                return;
            }
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job.done.set_value(index_.prepare(job.write));
    }
}

}  // namespace sluice::retrieval::detail
