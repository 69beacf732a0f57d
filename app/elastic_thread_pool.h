#pragma once
// The HTTP server's connection threads: a task queue that starts a thread for a task (a
// connection) when none is idle, up to a ceiling. http_server.cpp hands it to httplib.
//
// httplib serves a connection start to finish on one thread: a streamed response keeps its
// thread for the whole answer, and a keep-alive connection keeps it while idle (up to the
// keep-alive timeout). With a fixed pool of N threads, N open streams make every new request
// wait in the pool's queue until a stream ends, which turns a 429 meant to be instant into a
// wait of seconds. This pool keeps `min_threads` threads always and grows by one thread per
// connection that finds none idle, up to `max_threads`; a grown thread that has had nothing to
// do for `idle_exit` ends. Past `max_threads`, connections wait in order for a free thread.
//
// Thread safety: thread-safe; enqueue() must not be called after shutdown(). The destructor
// shuts down if that was not done.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace sluice::app {

struct ElasticPoolStats {
    int threads = 0;    // alive
    int idle = 0;       // alive and waiting for work
    int queued = 0;     // connections waiting for a thread
    int peak = 0;       // most threads alive at once
};

class ElasticThreadPool {
public:
    // Requires 1 <= min_threads <= max_threads.
    ElasticThreadPool(int min_threads, int max_threads,
                      std::chrono::milliseconds idle_exit = std::chrono::seconds(30));
    ~ElasticThreadPool();
    ElasticThreadPool(const ElasticThreadPool&) = delete;
    ElasticThreadPool& operator=(const ElasticThreadPool&) = delete;

    void enqueue(std::function<void()> fn);
    // Runs the queued tasks to the end, then joins every thread.
    void shutdown();

    ElasticPoolStats stats() const;

private:
    struct Worker {
        std::thread thread;
        bool done = false;  // the loop has returned; the thread can be joined at once
    };

    void start_worker();  // requires mutex_
    void worker_loop(std::list<Worker>::iterator self);
    void reap_done();  // requires mutex_; joins workers that have ended

    const int min_threads_;
    const int max_threads_;
    const std::chrono::milliseconds idle_exit_;

    mutable std::mutex mutex_;
    std::condition_variable work_;
    std::deque<std::function<void()>> jobs_;  // guarded by mutex_
    std::list<Worker> workers_;               // guarded by mutex_
    int alive_ = 0;                           // guarded by mutex_; workers not done
    int idle_ = 0;                            // guarded by mutex_
    int starting_ = 0;  // guarded by mutex_; started, not yet waiting for work
    int peak_ = 0;                            // guarded by mutex_
    bool shutdown_ = false;                   // guarded by mutex_
};

}  // namespace sluice::app
