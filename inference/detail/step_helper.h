#pragma once
// One helper thread that runs a job beside the caller's own work: the scheduler hands it what
// can be done while a forward pass runs (token masks, releasing the previous step's text) and
// waits for it after the pass. A persistent thread, so that a step does not pay for creating one.
//
//   helper.start([&] { ... });   // returns at once
//   backend.forward(batch);      // meanwhile
//   helper.wait();               // the job has finished; its writes are visible here
//
// Thread safety: start() and wait() from one owning thread, in pairs; the job must not throw.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace sluice::inference::detail {

class StepHelper {
public:
    StepHelper();
    ~StepHelper();  // waits for a started job, then stops the thread
    StepHelper(const StepHelper&) = delete;
    StepHelper& operator=(const StepHelper&) = delete;

    // Precondition: no job is running (every start() was followed by wait()).
    void start(std::function<void()> job);
    // Returns once the started job has finished; at once when none was started.
    void wait();

private:
    void loop(std::stop_token stop);

    std::mutex mutex_;
    std::condition_variable_any cv_;
    std::function<void()> job_;  // guarded by mutex_; set by start(), cleared when done
    bool running_ = false;       // guarded by mutex_
    std::jthread thread_;        // last: stopped and joined first
};

}  // namespace sluice::inference::detail
