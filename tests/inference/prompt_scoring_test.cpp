// Prompt scoring (EngineRequest::prompt_logprobs, legacy echo with logprobs): every prompt token
// after the first gets its logprob under the rows the fake computes for the tokens before it,
// whatever chunks, prefix-cache hits, preemptions and batching the scheduler chose.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "fake_backend.h"
#include "inference/scheduler.h"
#include "scheduler_fixture.h"

namespace {

using namespace sluice::inference;
using namespace sluice::inference::testing;

EngineRequest scored(std::vector<int32_t> prompt, int32_t max_tokens, int32_t top_n) {
    EngineRequest request = greedy(std::move(prompt), max_tokens);
    request.prompt_logprobs = top_n;
    return request;
}

// What the scores of `prompt` must be: token p + 1 under the row of positions 0 .. p.
std::vector<SampledToken> reference_scores(const std::vector<int32_t>& prompt, int32_t top_n) {
    std::vector<SampledToken> scores;
    for (size_t p = 0; p + 1 < prompt.size(); ++p) {
        const std::vector<float> row =
            FakeBackend::logits_row(FakeBackend::hash_tokens(prompt, p + 1));
        scores.push_back(score_token(row, prompt[p + 1], top_n));
    }
    return scores;
}

void check_scores(const RecordingSink& sink, const std::vector<int32_t>& prompt, int32_t top_n) {
    REQUIRE(sink.prompt_scores.size() == 1);  // handed over once
    CHECK(sink.prompt_scores_before_events);
    const std::vector<SampledToken>& got = sink.prompt_scores[0];
    const std::vector<SampledToken> want = reference_scores(prompt, top_n);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i].id == want[i].id);
        CHECK(got[i].logprob == want[i].logprob);
        REQUIRE(got[i].top.size() == want[i].top.size());
        for (size_t k = 0; k < got[i].top.size(); ++k) {
            CHECK(got[i].top[k].id == want[i].top[k].id);
            CHECK(got[i].top[k].logprob == want[i].top[k].logprob);
        }
    }
}

}  // namespace

TEST_CASE("score_token gives the log-softmax and the top tokens, ties by lower id") {
    const std::vector<float> logits = {1.0f, 3.0f, 3.0f, -2.0f, 2.0f};
    double sum = 0;
    for (float v : logits) {
        sum += std::exp(v);
    }
    const SampledToken token = score_token(logits, 4, 3);
    CHECK(token.id == 4);
    CHECK(token.logprob == doctest::Approx(2.0 - std::log(sum)));
    REQUIRE(token.top.size() == 3);
    CHECK(token.top[0].id == 1);
    CHECK(token.top[1].id == 2);
    CHECK(token.top[2].id == 4);
    CHECK(token.top[2].logprob == token.logprob);
    CHECK(score_token(logits, 0, 0).top.empty());
    CHECK(score_token(logits, 0, 20).top.size() == logits.size());
}

TEST_CASE("a scored prompt gets every token's logprob across prompt chunks, then generates") {
    SchedulerOptions options;
    options.max_batch_tokens = 8;  // the 29-token prompt takes four chunks
    Fixture f(64, options);
    std::mt19937 rng(21);
    const auto prompt = random_prompt(rng, 29);
    auto sink = f.add(1, scored(prompt, 5, 3));
    f.run();
    CHECK(sink->status.ok());
    check_scores(*sink, prompt, 3);
    CHECK(sink->choices[0] == reference(prompt, 5));
    CHECK(sink->usage.completion_tokens == 5);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("a one-token prompt has nothing to score and still hands over its empty scores") {
    Fixture f(16);
    auto sink = f.add(1, scored({7}, 2, 1));
    f.run();
    REQUIRE(sink->prompt_scores.size() == 1);
    CHECK(sink->prompt_scores[0].empty());
    CHECK(sink->choices[0] == reference({7}, 2));
}

TEST_CASE("a scored prompt computes the positions the prefix cache holds") {
    Fixture f(64);
    std::mt19937 rng(22);
    const auto prompt = random_prompt(rng, 30);
    auto warm = f.add(1, greedy(prompt, 2));
    f.run();
    auto again = f.add(2, scored(prompt, 2, 0));
    f.run();
    CHECK(again->usage.cached_tokens == 0);
    check_scores(*again, prompt, 0);
    // The scored request published its blocks like any other: an unscored one hits them.
    auto after = f.add(3, greedy(prompt, 2));
    f.run();
    CHECK(after->usage.cached_tokens == 28);
    CHECK(after->choices[0] == reference(prompt, 2));
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("max_tokens 0 scores the prompt and ends every choice without sampling") {
    Fixture f(64);
    std::mt19937 rng(23);
    const auto prompt = random_prompt(rng, 13);
    EngineRequest request = scored(prompt, 0, 2);
    request.n = 3;
    request.sampling.temperature = 0.8f;
    auto sink = f.add(1, request);
    f.run();
    CHECK(sink->status.ok());
    check_scores(*sink, prompt, 2);
    CHECK(sink->usage.completion_tokens == 0);
    CHECK(sink->usage.prompt_tokens == 13);
    REQUIRE(sink->finish.size() == 3);
    for (int32_t c = 0; c < 3; ++c) {
        CHECK(sink->finish[c] == FinishReason::kLength);
        CHECK(sink->choices[c].empty());
    }
    CHECK(f.scheduler->stats().generated_tokens == 0);
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("a prompt of the whole context can be scored when nothing is generated") {
    Fixture f(1100);
    const auto max_seq_len = static_cast<size_t>(f.backend.config().max_seq_len);
    std::mt19937 rng(24);
    const auto prompt = random_prompt(rng, max_seq_len);
    CHECK(f.scheduler->validate(scored(prompt, 0, 0)).ok());
    CHECK_FALSE(f.scheduler->validate(scored(prompt, 1, 0)).ok());
}

TEST_CASE("scoring validation names the problem") {
    Fixture f(16);
    auto message = [&](const EngineRequest& request) {
        return f.scheduler->validate(request).message();
    };
    CHECK(message(greedy({1, 2}, 0)).find("max_tokens must be >= 1") != std::string::npos);
    CHECK(message(scored({1, 2}, -1, 0)).find("max_tokens must be >= 0") != std::string::npos);
    CHECK(message(scored({1, 2}, 1, 21)).find("prompt_logprobs must be in [-1, 20]") !=
          std::string::npos);
    EngineRequest embed = scored({1, 2}, 1, 0);
    embed.embed = true;
    CHECK(message(embed).find("cannot score its prompt") != std::string::npos);
}

TEST_CASE("scores survive preemption mid-prompt and are not handed over twice") {
    SchedulerOptions options;
    options.max_batch_tokens = 8;
    options.prefix_caching = true;
    Fixture f(14, options);  // 56 positions: the long prompts cannot all stay
    std::mt19937 rng(25);
    std::vector<std::pair<std::vector<int32_t>, std::shared_ptr<RecordingSink>>> runs;
    for (uint64_t id = 0; id < 4; ++id) {
        auto prompt = random_prompt(rng, 20 + id * 5);
        EngineRequest request = scored(prompt, 16, 2);
        request.priority = static_cast<int32_t>(id);  // later arrivals push earlier ones out
        runs.emplace_back(prompt, f.add(id, request));
        REQUIRE(f.scheduler->step().ok());
    }
    f.run();
    CHECK(f.scheduler->stats().preemptions > 0);
    for (const auto& [prompt, sink] : runs) {
        CHECK(sink->status.ok());
        check_scores(*sink, prompt, 2);
        CHECK(sink->choices[0] == reference(prompt, 16));
    }
    check_no_blocks_held(*f.scheduler);
}

TEST_CASE("random scored and unscored requests with cancellations give exact scores") {
    SchedulerOptions options;
    options.max_batch_tokens = 24;
    Fixture f(16, options);  // 64 positions: requests of up to 44 preempt each other
    std::mt19937 rng(26);
    const auto shared = random_prompt(rng, 12);
    struct Run {
        std::vector<int32_t> prompt;
        int32_t top_n;
        std::shared_ptr<RecordingSink> sink;
    };
    std::vector<Run> runs;
    std::vector<uint64_t> cancelled;
    for (uint64_t id = 0; id < 600; ++id) {
        auto prompt = shared;
        auto tail = random_prompt(rng, 1 + rng() % 20);
        prompt.insert(prompt.end(), tail.begin(), tail.end());
        const bool score = rng() % 2 == 0;
        const auto top_n = static_cast<int32_t>(rng() % 4);
        EngineRequest request = score ? scored(prompt, static_cast<int32_t>(rng() % 12), top_n)
                                      : greedy(prompt, 1 + static_cast<int32_t>(rng() % 12));
        request.n = rng() % 4 == 0 ? 2 : 1;
        request.priority = static_cast<int32_t>(rng() % 2);
        runs.push_back({prompt, score ? top_n : -1, f.add(id, request)});
        if (rng() % 3 == 0) {
            REQUIRE(f.scheduler->step().ok());
        }
        if (rng() % 10 == 0) {
            f.scheduler->cancel(id - rng() % 3);
        }
    }
    f.run();
    CHECK(f.scheduler->stats().preemptions > 0);
    for (const Run& run : runs) {
        CHECK(run.sink->finishes == 1);
        if (run.top_n < 0) {
            CHECK(run.sink->prompt_scores.empty());
            continue;
        }
        // A request cancelled before its prompt was computed has no scores; any other has them.
        if (run.sink->status.ok() || !run.sink->prompt_scores.empty()) {
            check_scores(*run.sink, run.prompt, run.top_n);
        }
    }
    check_no_blocks_held(*f.scheduler);
}
