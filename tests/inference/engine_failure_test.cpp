// The engine over a backend that stops for good (a failed rank of a parallel engine): the
// request in the failing step ends with the backend's error, later submissions are refused with
// kUnavailable naming the cause, and the host is told once through on_failure — also when the
// backend fails while the engine is idle (a node of an engine spanning nodes died).
#include <doctest/doctest.h>

#include <atomic>
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

// A FakeBackend whose health another thread can break, as a parallel group's control channel
// does when a node dies.
class BreakableBackend final : public Backend {
public:
    std::string name() const override { return fake_.name(); }
    const ModelConfig& config() const override { return fake_.config(); }
    BackendMemory memory() const override { return fake_.memory(); }
    int64_t active_weight_bytes() const override { return 0; }
    Status configure_kv_cache(const KvCacheSpec& spec) override {
        return fake_.configure_kv_cache(spec);
    }
    KvCacheSpec kv_cache_spec() const override { return fake_.kv_cache_spec(); }
    Result<ForwardOutput> forward(const ForwardBatch& batch) override {
        SLUICE_RETURN_IF_ERROR(health());
        return fake_.forward(batch);
    }
    Status copy_kv_block(int32_t src, int32_t dst) override {
        return fake_.copy_kv_block(src, dst);
    }
    Status health() const override {
        return broken_->load() ? Status(StatusCode::kAborted, "node 1 is gone")
                               : Status::ok_status();
    }

    std::shared_ptr<std::atomic<bool>> broken_ = std::make_shared<std::atomic<bool>>(false);

private:
    FakeBackend fake_;
};

TEST_CASE("engine: a backend that fails while the engine is idle stops it without a request") {
    auto backend = std::make_unique<BreakableBackend>();
    const auto broken = backend->broken_;
    std::promise<Status> reported;
    auto reported_future = reported.get_future();
    EngineOptions options;
    options.kv_cache = {4, 64};
    options.on_failure = [&](const Status& why) { reported.set_value(why); };
    auto engine = Engine::open(std::move(backend), nullptr, options);
    REQUIRE_MESSAGE(engine.ok(), engine.status().to_string());
    auto handle = (*engine)->submit(greedy_request({1, 2, 3}, 4));
    REQUIRE(handle.ok());
    REQUIRE(drain(*handle).ok());

    broken->store(true);  // no request is running or coming
    REQUIRE(reported_future.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
    const Status why = reported_future.get();
    CHECK(why.message() == "the model stopped serving: node 1 is gone");
    CHECK((*engine)->submit(greedy_request({4, 5}, 4)).status() == why);
}

}  // namespace
}  // namespace sluice::inference
