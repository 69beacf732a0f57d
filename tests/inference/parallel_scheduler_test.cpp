// Continuous batching over the parallel CPU backend: several greedy requests admitted together,
// their prompts prefilled in chunks between the others' decode steps, must each produce the
// golden reference's greedy continuation, on 2 and 4 ranks of both plans and on the 2 x 2, 2 x 4
// and 4 x 2 tensor x expert grids.
#include <doctest/doctest.h>

#include <map>

#include "inference/cpu_backend.h"
#include "inference/scheduler.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

struct TokenSink final : RequestSink {
    void on_event(StreamEvent event) override {
        for (const auto& token : event.tokens) {
            tokens.push_back(token.id);
        }
    }
    void on_finish(const Status& final_status, const Usage& /*usage*/,
                   std::vector<float> /*embedding*/) override {
        status = final_status;
        finished = true;
    }
    std::vector<int32_t> tokens;
    Status status;
    bool finished = false;
};

void check_scheduled(ParallelConfig parallel) {
    const std::string dir = testing::golden_dir("a_d64_gqa");
    const auto golden = testing::load_json(dir + "/golden.json");
    CpuBackendOptions options;
    options.n_threads = 1;
    options.parallel = parallel;
    auto backend = open_cpu_backend(dir, options);
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    REQUIRE((*backend)->configure_kv_cache({4, 128}).ok());
    SchedulerOptions scheduler_options;
    scheduler_options.max_batch_tokens = 12;  // prompts of 33 and 48 tokens take several chunks
    Scheduler scheduler(**backend, nullptr, scheduler_options);

    std::map<uint64_t, std::shared_ptr<TokenSink>> sinks;
    std::map<uint64_t, std::vector<int32_t>> expected;
    uint64_t id = 0;
    for (const auto& golden_case : golden["cases"]) {
        EngineRequest request;
        request.prompt = testing::to_ids(golden_case["ids"]);
        request.sampling.temperature = 0;
        expected[id] = testing::to_ids(golden_case["greedy"]);
        request.max_tokens = static_cast<int32_t>(expected[id].size());
        REQUIRE(scheduler.validate(request).ok());
        sinks[id] = std::make_shared<TokenSink>();
        scheduler.add(id, std::move(request), sinks[id]);
        ++id;
    }
    int64_t mixed_steps = 0;
    for (int guard = 0; !scheduler.idle(); ++guard) {
        REQUIRE(guard < 10000);
        const int64_t running_before = scheduler.stats().running;
        auto stepped = scheduler.step();
        REQUIRE_MESSAGE(stepped.ok(), stepped.status().to_string());
        mixed_steps += running_before > 1 ? 1 : 0;
    }
    CHECK(mixed_steps > 0);  // the requests did share steps
    for (const auto& [request_id, sink] : sinks) {
        INFO("request " << request_id);
        REQUIRE(sink->finished);
        CHECK_MESSAGE(sink->status.ok(), sink->status.to_string());
        CHECK(sink->tokens == expected[request_id]);
    }
}

TEST_CASE(
    "parallel cpu: scheduled requests give the reference's greedy continuations (all plans)") {
    for (int n_ranks : {2, 4}) {
        for (ParallelPlan plan : {ParallelPlan::kTensor, ParallelPlan::kExpert}) {
            INFO(parallel_plan_name(plan) << " plan, " << n_ranks << " ranks");
            ParallelConfig parallel;
            (plan == ParallelPlan::kTensor ? parallel.tensor : parallel.expert) = n_ranks;
            check_scheduled(parallel);
        }
    }
    for (auto [tensor, expert] : {std::pair{2, 2}, std::pair{2, 4}, std::pair{4, 2}}) {
        INFO("tensor " << tensor << " x expert " << expert);
        ParallelConfig parallel;
        parallel.tensor = tensor;
        parallel.expert = expert;
        check_scheduled(parallel);
    }
}

}  // namespace
}  // namespace sluice::inference
