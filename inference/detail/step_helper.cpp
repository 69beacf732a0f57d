#include "inference/detail/step_helper.h"

#include <utility>

namespace sluice::inference::detail {

StepHelper::StepHelper() : thread_([this](std::stop_token stop) { loop(stop); }) {}

StepHelper::~StepHelper() {
    wait();
    thread_.request_stop();
    cv_.notify_all();
}

void StepHelper::start(std::function<void()> job) {
    std::lock_guard lock(mutex_);
    job_ = std::move(job);
    running_ = true;
    cv_.notify_all();
}

void StepHelper::wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !running_; });
}

void StepHelper::loop(std::stop_token stop) {
    std::unique_lock lock(mutex_);
    while (cv_.wait(lock, stop, [&] { return static_cast<bool>(job_); })) {
        std::function<void()> job = std::move(job_);
        job_ = nullptr;
        lock.unlock();
        job();
        lock.lock();
        running_ = false;
        cv_.notify_all();
    }
}

}  // namespace sluice::inference::detail
