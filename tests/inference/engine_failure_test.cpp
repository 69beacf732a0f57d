// The engine over a backend that stops for good (a failed rank of a parallel engine): the
// request in the failing step ends with the backend's error, later submissions are refused with
// kUnavailable naming the cause, and the host is told once through on_failure.
#include <doctest/doctest.h>

#include <chrono>
#include <future>

#include "fake_backend.h"
#include "inference/engine.h"

namespace sluice::inference {
namespace {

using testing::FakeBackend;

EngineRequest greedy_request(std::vector<int32_t> prompt, int32_t max_tokens) {
    EngineRequest request;
    request.prompt = std::move(prompt);
    request.sampling.temperature = 0;
    request.max_tokens = max_tokens;
    return request;
}

Status drain(RequestHandle& handle) {
    StreamEvent event;
    while (handle.next(&event, std::chrono::milliseconds(100)) !=
           RequestHandle::Poll::kFinished) {
    }
    return handle.status();
}

TEST_CASE("engine: a backend that stops for good stops serving with its reason") {
    auto backend = std::make_unique<FakeBackend>();
    const Status rank_failure(StatusCode::kAborted, "rank 1 aborted: device lost");
    backend->fail_after(3, rank_failure);
    std::promise<Status> reported;
    auto reported_future = reported.get_future();
    int calls = 0;
    EngineOptions options;
    options.kv_cache = {4, 64};
    options.on_failure = [&](const Status& why) {
        ++calls;
        reported.set_value(why);
    };
    auto engine = Engine::open(std::move(backend), nullptr, options);
    REQUIRE_MESSAGE(engine.ok(), engine.status().to_string());

    auto handle = (*engine)->submit(greedy_request({1, 2, 3}, 20));
    REQUIRE(handle.ok());
    const Status ended = drain(*handle);
    CHECK(ended.code() == StatusCode::kAborted);
    CHECK(ended.message() == "rank 1 aborted: device lost");

    // Generous: the engine thread reports right after the failed step.
    REQUIRE(reported_future.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
    const Status why = reported_future.get();
    CHECK(why.code() == StatusCode::kUnavailable);
    CHECK(why.message() == "the model stopped serving: rank 1 aborted: device lost");

    const auto refused = (*engine)->submit(greedy_request({4, 5}, 4));
    CHECK(refused.status() == why);
    CHECK((*engine)->check_capacity() == why);
    engine->reset();
    CHECK(calls == 1);
}

}  // namespace
}  // namespace sluice::inference
