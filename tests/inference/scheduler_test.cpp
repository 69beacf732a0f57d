// Scheduler tests over FakeBackend, whose output depends on what the KV blocks hold: batching,
// chunked prefill, prefix sharing, copy-on-write and preemption must all leave every sequence's
// output equal to that sequence computed alone.
#include "inference/scheduler.h"

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <random>

#include "fake_backend.h"
#include "scheduler_fixture.h"

namespace {

using namespace sluice::inference;
using sluice::Status;
using sluice::StatusCode;
using namespace sluice::inference::testing;

}  // namespace

TEST_CASE("batched, chunked requests give what each gives alone") {
    SchedulerOptions options;
    options.max_batch_tokens = 16;  // forces prompt chunks
    Fixture f(256, options);
    std::mt19937 rng(1);
    std::vector<std::pair<std::vector<int32_t>, std::shared_ptr<RecordingSink>>> runs;
    for (uint64_t id = 0; id < 12; ++id) {
        auto prompt = random_prompt(rng, 5 + id * 7);
        runs.emplace_back(prompt, f.add(id, greedy(prompt, 9)));
    }
    f.run();
    for (const auto& [prompt, sink] : runs) {
        CHECK(sink->finishes == 1);
        CHECK(sink->status.ok());
        CHECK(sink->choices[0] == reference(prompt, 9));
        CHECK(sink->finish[0] == FinishReason::kLength);
        CHECK(sink->usage.completion_tokens == 9);
    }
    // Several sequences shared steps, and no step went over the budget.
    bool batched = false;
    for (const auto& step : f.backend.steps) {
        CHECK(step.tokens <= 16);
        batched = batched || step.sequences > 1;
    }
    CHECK(batched);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("a shared prefix is computed once and reported as cached") {
    Fixture f(64);
    std::mt19937 rng(2);
    auto system = random_prompt(rng, 40);
    auto first = system;
    first.push_back(1);
    first.push_back(2);
    auto sink_a = f.add(1, greedy(first, 5));
    f.run();
    CHECK(sink_a->usage.cached_tokens == 0);

    auto second = system;
    second.push_back(3);
    auto sink_b = f.add(2, greedy(second, 5));
    f.run();
    // 40 shared tokens are 10 full blocks of 4.
    CHECK(sink_b->usage.cached_tokens == 40);
    CHECK(sink_b->choices[0] == reference(second, 5));
    CHECK(f.scheduler->stats().cached_prompt_tokens == 40);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("preemption under a small cache recomputes and still gives the right answers") {
    SchedulerOptions options;
    options.max_batch_tokens = 64;
    Fixture f(24, options);  // 96 positions for 6 requests of up to 50
    std::mt19937 rng(3);
    std::vector<std::pair<std::vector<int32_t>, std::shared_ptr<RecordingSink>>> runs;
    for (uint64_t id = 0; id < 6; ++id) {
        auto prompt = random_prompt(rng, 10 + id);
        runs.emplace_back(prompt, f.add(id, greedy(prompt, 30)));
    }
    f.run();
    CHECK(f.scheduler->stats().preemptions > 0);
    for (const auto& [prompt, sink] : runs) {
        CHECK(sink->status.ok());
        CHECK(sink->choices[0] == reference(prompt, 30));
    }
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("running sequences get a token every step while a long prompt is prefilled") {
    SchedulerOptions options;
    options.max_batch_tokens = 8;
    Fixture f(256, options);
    std::mt19937 rng(4);
    auto short_sink = f.add(1, greedy(random_prompt(rng, 3), 40));
    REQUIRE(*f.scheduler->step());  // prefill of the short prompt, first token
    auto long_sink = f.add(2, greedy(random_prompt(rng, 200), 2));
    int prefill_steps = 0;
    while (long_sink->choices[0].empty()) {
        const size_t before = short_sink->choices[0].size();
        REQUIRE(*f.scheduler->step());
        CHECK(short_sink->choices[0].size() == before + 1);
        ++prefill_steps;
    }
    // 200 tokens at 7 a step (one of 8 goes to the decode).
    CHECK(prefill_steps == (200 + 6) / 7);
    f.run();
}

TEST_CASE("step counters tell decode-only steps from steps with prompt chunks") {
    SchedulerOptions options;
    options.max_batch_tokens = 8;
    Fixture f(256, options);
    std::mt19937 rng(4);
    f.add(1, greedy(random_prompt(rng, 3), 40));
    REQUIRE(*f.scheduler->step());  // the short prompt's prefill: a step with a prompt chunk
    f.add(2, greedy(random_prompt(rng, 200), 2));
    f.run();
    const SchedulerStats stats = f.scheduler->stats();
    // 1 prefill step, then 200 prompt tokens at 7 a step beside the short one's decode; the
    // short one's last 10 tokens (and the long one's second) come from decode-only steps.
    CHECK(stats.mixed_steps == 1 + (200 + 6) / 7);
    CHECK(stats.decode_only_steps == 10);
    CHECK(stats.steps == stats.mixed_steps + stats.decode_only_steps);
    // Every token but a sequence's first is computed by a decode row: 39 + 1.
    CHECK(stats.decode_rows == 40);
    CHECK(stats.generated_tokens == 42);
    CHECK(stats.prompt_tokens == 203);
    CHECK(stats.mixed_seconds >= 0);
    CHECK(stats.decode_only_seconds >= 0);
    CHECK(stats.longest_step_seconds >= 0);
}

TEST_CASE("higher priority is admitted first; equal priority in arrival order") {
    SchedulerOptions options;
    options.max_running = 1;
    Fixture f(256, options);
    std::mt19937 rng(5);
    std::vector<int> order;
    auto low = f.add(1, greedy(random_prompt(rng, 4), 2));
    auto mid = f.add(2, greedy(random_prompt(rng, 4), 2));
    auto high_request = greedy(random_prompt(rng, 4), 2);
    high_request.priority = 5;
    auto high = f.add(3, std::move(high_request));
    std::map<RecordingSink*, int> id = {{low.get(), 1}, {mid.get(), 2}, {high.get(), 3}};
    while (!f.scheduler->idle()) {
        REQUIRE(*f.scheduler->step());
        for (auto* sink : {high.get(), low.get(), mid.get()}) {
            if (sink->finishes == 1 && std::find(order.begin(), order.end(), id[sink]) ==
                                           order.end()) {
                order.push_back(id[sink]);
            }
        }
    }
    CHECK(order == std::vector<int>{3, 1, 2});
}

TEST_CASE("n > 1 forks the prompt's blocks and copies the shared partial block on write") {
    Fixture f(64);
    std::mt19937 rng(6);
    auto prompt = random_prompt(rng, 10);  // 2 full blocks and a partial one
    EngineRequest request;
    request.prompt = prompt;
    request.n = 3;
    request.max_tokens = 6;
    request.sampling.temperature = 1.0f;
    request.sampling.seed = 77;
    auto sink = f.add(1, request);
    f.run();
    CHECK(sink->status.ok());
    CHECK(sink->choices.size() == 3);
    CHECK(f.backend.copies >= 2);  // two of the three copied the partial block
    CHECK(sink->usage.prompt_tokens == 10);
    CHECK(sink->usage.completion_tokens == 18);

    // Each choice equals a single request with the choice's seed: the shared blocks held the
    // right contents, and each copy was taken before the first write.
    for (int32_t c = 0; c < 3; ++c) {
        Fixture alone(64);
        EngineRequest single = request;
        single.n = 1;
        single.sampling.seed = 77 + static_cast<uint64_t>(c);
        auto single_sink = alone.add(1, single);
        alone.run();
        CHECK(single_sink->choices[0] == sink->choices[c]);
    }
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("a block copy the backend fails fails the step, its requests and frees their blocks") {
    Fixture f(64);
    std::mt19937 rng(16);
    EngineRequest request;
    request.prompt = random_prompt(rng, 10);  // a partial last block, shared by the forks
    request.n = 3;
    request.max_tokens = 6;
    request.sampling.temperature = 1.0f;
    request.sampling.seed = 5;
    auto forked = f.add(1, request);
    auto other = f.add(2, greedy(random_prompt(rng, 9), 6));
    // The prompts, then the forks' first decode, which must copy the shared partial block.
    REQUIRE(*f.scheduler->step());
    f.backend.fail_copies(Status(StatusCode::kAborted, "parallel group aborted: node 1 is gone"));
    const auto stepped = f.scheduler->step();
    REQUIRE_FALSE(stepped.ok());
    CHECK(stepped.status().code() == StatusCode::kAborted);
    CHECK(stepped.status().message() == "parallel group aborted: node 1 is gone");
    CHECK(forked->finishes == 1);
    CHECK(forked->status.message() == "parallel group aborted: node 1 is gone");
    // The step ran nothing: no forward was made with a half-planned batch.
    CHECK(f.backend.steps.size() == 1);
    // The other request was planned in the same step and fails with it, or waits; either way,
    // failing everything still leaves no block held.
    f.scheduler->fail_all(Status(StatusCode::kUnavailable, "the engine stopped"));
    CHECK(other->finishes == 1);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("stop tokens end a choice without being reported") {
    Fixture f(64);
    std::mt19937 rng(7);
    auto prompt = random_prompt(rng, 6);
    auto expected = reference(prompt, 5);
    auto request = greedy(prompt, 5);
    request.stop_tokens = {expected[2]};
    auto sink = f.add(1, request);
    f.run();
    const auto stop_at = std::find(expected.begin(), expected.end(), expected[2]);
    CHECK(sink->choices[0] == std::vector<int32_t>(expected.begin(), stop_at));
    CHECK(sink->finish[0] == FinishReason::kStopToken);
}

TEST_CASE("cancel frees the request's blocks at once") {
    Fixture f(64);
    std::mt19937 rng(8);
    auto sink = f.add(1, greedy(random_prompt(rng, 20), 100));
    REQUIRE(*f.scheduler->step());
    REQUIRE(*f.scheduler->step());
    CHECK(f.scheduler->stats().blocks.n_in_use > 0);
    f.scheduler->cancel(1);
    CHECK(sink->status.code() == StatusCode::kCancelled);
    CHECK(sink->finishes == 1);
    check_no_blocks_held(*f.scheduler);
    f.scheduler->cancel(1);  // unknown now: ignored
    CHECK(sink->finishes == 1);
}

TEST_CASE("a request past its deadline ends with deadline exceeded") {
    Fixture f(64);
    std::mt19937 rng(9);
    auto request = greedy(random_prompt(rng, 4), 1000);
    request.timeout_s = 1e-9;
    auto sink = f.add(1, request);
    f.run();
    CHECK(sink->status.code() == StatusCode::kDeadlineExceeded);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("embeddings are the normalised mean of the hidden states, chunked or not") {
    SchedulerOptions options;
    options.max_batch_tokens = 8;
    Fixture f(64, options);
    std::mt19937 rng(10);
    auto prompt = random_prompt(rng, 21);
    EngineRequest request;
    request.prompt = prompt;
    request.embed = true;
    auto sink = f.add(1, request);
    f.run();
    REQUIRE(sink->status.ok());
    std::vector<double> mean(FakeBackend::kEmbd, 0.0);
    for (size_t p = 1; p <= prompt.size(); ++p) {
        auto row = FakeBackend::hidden_state(FakeBackend::hash_tokens(prompt, p));
        for (size_t j = 0; j < row.size(); ++j) {
            mean[j] += row[j] / static_cast<double>(prompt.size());
        }
    }
    double norm = 0;
    for (double v : mean) {
        norm += v * v;
    }
    REQUIRE(sink->embedding.size() == mean.size());
    for (size_t j = 0; j < mean.size(); ++j) {
        CHECK(sink->embedding[j] == doctest::Approx(mean[j] / std::sqrt(norm)).epsilon(1e-5));
    }
    CHECK(sink->usage.prompt_tokens == 21);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("validation names the problem") {
    Fixture f(8);
    auto expect = [&](EngineRequest request, const std::string& fragment) {
        Status status = f.scheduler->validate(request);
        CHECK(status.code() == StatusCode::kInvalidArgument);
        CHECK_MESSAGE(status.message().find(fragment) != std::string::npos, status.message());
    };
    expect(greedy({}, 4), "no tokens");
    expect(greedy({1, 99}, 4), "outside [0, 64)");
    expect(greedy(std::vector<int32_t>(40, 1), 4), "KV-cache blocks");
    expect(greedy({1}, 0), "max_tokens");
    auto many = greedy({1}, 1);
    many.n = 0;
    expect(many, "n must be");
    auto stops = greedy({1}, 1);
    stops.stop_strings = {"x"};
    expect(stops, "tokenizer");
}

TEST_CASE("10,000 random requests with random cancellations leak no block") {
    SchedulerOptions options;
    options.max_batch_tokens = 48;
    options.max_running = 24;
    Fixture f(48, options);
    std::mt19937 rng(11);
    std::vector<std::vector<int32_t>> prefixes;
    for (int i = 0; i < 8; ++i) {
        prefixes.push_back(random_prompt(rng, 4 + static_cast<size_t>(i) * 3));
    }
    std::map<uint64_t, std::shared_ptr<RecordingSink>> live;
    std::vector<std::shared_ptr<RecordingSink>> all;
    uint64_t next_id = 0;
    while (next_id < 10000 || !f.scheduler->idle()) {
        const int arrivals = next_id < 10000 ? static_cast<int>(rng() % 4) : 0;
        for (int a = 0; a < arrivals; ++a) {
            auto prompt = prefixes[rng() % prefixes.size()];
            auto tail = random_prompt(rng, rng() % 12);
            prompt.insert(prompt.end(), tail.begin(), tail.end());
            EngineRequest request = greedy(prompt, 1 + static_cast<int32_t>(rng() % 16));
            request.n = rng() % 5 == 0 ? 2 : 1;
            request.sampling.temperature = request.n > 1 ? 0.7f : 0.0f;
            request.priority = static_cast<int32_t>(rng() % 3);
            auto sink = f.add(next_id, request);
            live[next_id] = sink;
            all.push_back(sink);
            ++next_id;
        }
        if (!live.empty() && rng() % 5 == 0) {
            auto it = live.begin();
            std::advance(it, rng() % live.size());
            f.scheduler->cancel(it->first);
        }
        auto stepped = f.scheduler->step();
        REQUIRE(stepped.ok());
        std::erase_if(live, [](const auto& entry) { return entry.second->finishes > 0; });
    }
    for (const auto& sink : all) {
        CHECK(sink->finishes == 1);
    }
    check_no_blocks_held(*f.scheduler);
    CHECK(f.scheduler->stats().preemptions > 0);
    CHECK(f.scheduler->stats().cached_prompt_tokens > 0);
}
