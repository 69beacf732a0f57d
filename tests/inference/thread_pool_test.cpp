// The CPU thread pool: every task of every loop runs exactly once and its writes are visible when
// parallel_for returns, across many back-to-back loops (the decode pattern), loops with fewer
// tasks than threads, loops whose tasks wait so that workers are still busy when the caller runs
// out of tasks, and pools that are destroyed idle or right after use.
#include "inference/cpu/thread_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace sluice::inference::cpu {

TEST_CASE("thread pool: every task of many back-to-back loops runs exactly once") {
    for (int threads : {1, 2, 4}) {
        ThreadPool pool(threads);
        CHECK(pool.n_threads() == threads);
        std::vector<int> runs(1000, 0);
        for (int loop = 0; loop < 2000; ++loop) {
            const int64_t n = 1 + (loop * 37) % 300;  // 1 .. 300 tasks, fewer than threads too
            pool.parallel_for(n, [&](int64_t i) { ++runs[static_cast<size_t>(i)]; });
            int64_t wrong = 0;
            for (int64_t i = 0; i < 1000; ++i) {
                wrong += runs[static_cast<size_t>(i)] != (i < n ? 1 : 0);
                runs[static_cast<size_t>(i)] = 0;
            }
            INFO("threads " << threads << " loop " << loop << " tasks " << n);
            REQUIRE(wrong == 0);
        }
    }
}

TEST_CASE("thread pool: parallel_for waits for tasks still running on workers") {
    ThreadPool pool(3);
    for (int loop = 0; loop < 20; ++loop) {
        std::vector<int> done(8, 0);
        std::atomic<int> started{0};
        pool.parallel_for(8, [&](int64_t i) {
            started.fetch_add(1);
            // Long enough that the caller runs out of tasks while workers hold some.
            std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 3)));
            done[static_cast<size_t>(i)] = 1;
        });
        CHECK(started.load() == 8);
        for (int value : done) {
            CHECK(value == 1);
        }
    }
}

TEST_CASE("thread pool: empty loops run nothing and pools shut down idle or after use") {
    {
        ThreadPool idle(4);  // destroyed without a loop
    }
    ThreadPool pool(4);
    int calls = 0;
    pool.parallel_for(0, [&](int64_t) { ++calls; });
    pool.parallel_for(-3, [&](int64_t) { ++calls; });
    CHECK(calls == 0);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(100, [&](int64_t i) { sum.fetch_add(i); });
    CHECK(sum.load() == 4950);
}

}  // namespace sluice::inference::cpu
