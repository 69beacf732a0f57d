// The connection threads: a task that finds every thread busy gets a new one up to the ceiling,
// past it tasks wait in order, grown threads end when idle, and shutdown runs what is queued.
#include "app/elastic_thread_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace sluice::app;
using namespace std::chrono_literals;

namespace {

// Tasks that hold their thread until released, counting how many have started.
struct Gate {
    std::mutex mutex;
    std::condition_variable changed;
    int started = 0;
    bool open = false;

    std::function<void()> task() {
        return [this] {
            std::unique_lock lock(mutex);
            ++started;
            changed.notify_all();
            changed.wait(lock, [this] { return open; });
        };
    }
    // Waits until `n` tasks have started; false if that has not happened within 10 s (a
    // task that never gets a thread).
    bool wait_started(int n) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, 10s, [&] { return started >= n; });
    }
    void release() {
        std::lock_guard lock(mutex);
        open = true;
        changed.notify_all();
    }
};

}  // namespace

TEST_CASE("elastic pool: a task that finds every thread busy gets a new one") {
    ElasticThreadPool pool(1, 3);
    Gate gate;
    for (int i = 0; i < 3; ++i) {
        pool.enqueue(gate.task());
    }
    // Three tasks run at once although one thread is configured: none waits for another.
    CHECK(gate.wait_started(3));
    CHECK(pool.stats().threads == 3);
    CHECK(pool.stats().peak == 3);

    // At the ceiling a task waits for a thread, in order.
    pool.enqueue(gate.task());
    CHECK(pool.stats().queued == 1);
    CHECK(pool.stats().threads == 3);
    gate.release();
    CHECK(gate.wait_started(4));
    pool.shutdown();
    CHECK(pool.stats().threads == 0);
}

TEST_CASE("elastic pool: grown threads end when idle, down to the floor") {
    ElasticThreadPool pool(2, 8, 20ms);
    Gate gate;
    for (int i = 0; i < 6; ++i) {
        pool.enqueue(gate.task());
    }
    REQUIRE(gate.wait_started(6));
    CHECK(pool.stats().threads == 6);
    gate.release();
    int threads = -1;
    for (int i = 0; i < 500 && threads != 2; ++i) {
        std::this_thread::sleep_for(10ms);
        threads = pool.stats().threads;
    }
    CHECK(threads == 2);
    // The pool still serves after shrinking.
    std::atomic<int> ran{0};
    for (int i = 0; i < 4; ++i) {
        pool.enqueue([&ran] { ++ran; });
    }
    pool.shutdown();
    CHECK(ran.load() == 4);
}

TEST_CASE("elastic pool: shutdown runs the tasks still queued") {
    std::atomic<int> ran{0};
    {
        ElasticThreadPool pool(1, 1);
        Gate gate;
        pool.enqueue(gate.task());
        REQUIRE(gate.wait_started(1));
        for (int i = 0; i < 5; ++i) {
            pool.enqueue([&ran] { ++ran; });
        }
        CHECK(pool.stats().queued == 5);
        gate.release();
        pool.shutdown();
    }
    CHECK(ran.load() == 5);
}
