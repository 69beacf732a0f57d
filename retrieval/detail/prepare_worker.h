#pragma once
// The sync engine's second thread: runs Index::prepare() (chunking, analysis, embedding) for the
// batches the syncing thread hands it, one at a time and in the order handed, so that the next
// batches are prepared while the syncing thread commits the current one. The queue is bounded
// by the caller (the sync engine hands over at most SyncOptions::pipeline_depth batches ahead of
// the one it commits), so backpressure is the caller waiting on the oldest future.
//
// Thread safety: submit() and cancel_queued() from the one syncing thread; the futures may be
// waited on from it. The destructor cancels what is queued and joins the thread.

#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "common/result.h"
#include "retrieval/index.h"

namespace sluice::retrieval::detail {

class PrepareWorker {
public:
    // `index` must outlive the worker.
    explicit PrepareWorker(const Index& index);
    ~PrepareWorker();
    PrepareWorker(const PrepareWorker&) = delete;
    PrepareWorker& operator=(const PrepareWorker&) = delete;

    // Queues `write`; the future holds Index::prepare()'s result.
    std::future<Result<PreparedWrite>> submit(IndexWrite write);
    // Ends every write not yet started with kCancelled; the one in progress finishes.
    void cancel_queued();

private:
    struct Job {
        IndexWrite write;
        std::promise<Result<PreparedWrite>> done;
    };
    void run(const std::stop_token& stop);

    const Index& index_;
    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::deque<Job> jobs_;  // guarded by mutex_
    std::jthread thread_;
};

}  // namespace sluice::retrieval::detail
