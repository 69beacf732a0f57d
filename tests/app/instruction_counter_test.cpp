// InstructionCounter (app/instruction_counter.h): the instructions of threads started after it
// opened count once they have ended. Where the system offers no counter the test says so and
// checks only that the counter says why.

#include "app/instruction_counter.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <thread>

using sluice::app::InstructionCounter;

namespace {

// At least one instruction per iteration: the volatile store cannot be folded away.
std::uint64_t spin(std::uint64_t iterations) {
    volatile std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < iterations; ++i) {
        sink = i;
    }
    return sink;
}

}  // namespace

TEST_CASE("instruction counter: threads started after it opened count once they end") {
    InstructionCounter counter;
    const auto before = counter.read();
    if (!before) {
        CHECK_FALSE(counter.why_unavailable().empty());
        MESSAGE("no instruction counter here (" << counter.why_unavailable() << "); skipped");
        return;
    }
    constexpr std::uint64_t kIterations = 20'000'000;
    std::uint64_t last = 0;
    std::thread worker([&last] { last = spin(kIterations); });
    worker.join();
    CHECK(last == kIterations - 1);
    const auto after_worker = counter.read();
    REQUIRE(after_worker);
    // The worker's loop alone is more than kIterations instructions; the calling thread did
    // almost nothing meanwhile.
    CHECK(*after_worker - *before >= kIterations);

    InstructionCounter fresh;
    const auto start = fresh.read();
    REQUIRE(start);
    CHECK(*start < kIterations);  // a counter opened now has not seen the worker
}
