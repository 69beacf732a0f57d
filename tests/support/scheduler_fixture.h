#pragma once
// What scheduler tests share: a sink recording a request's results, greedy references computed
// from FakeBackend's definition, and a fixture owning a fake backend and a scheduler.

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "fake_backend.h"
#include "inference/scheduler.h"

namespace sluice::inference::testing {

struct RecordingSink final : RequestSink {
    void on_prompt_logprobs(std::vector<SampledToken> scores) override {
        prompt_scores_before_events = events == 0;
        prompt_scores.push_back(std::move(scores));
    }
    void on_event(StreamEvent event) override {
        auto& choice = choices[event.choice];
        for (const auto& token : event.tokens) {
            choice.push_back(token.id);
        }
        if (event.finish) {
            finish[event.choice] = *event.finish;
        }
        ++events;
    }
    void on_finish(const Status& final_status, const Usage& final_usage,
                   std::vector<float> final_embedding) override {
        ++finishes;
        status = final_status;
        usage = final_usage;
        embedding = std::move(final_embedding);
    }
    std::map<int32_t, std::vector<int32_t>> choices;
    std::map<int32_t, FinishReason> finish;
    int events = 0;
    int finishes = 0;
    Status status;
    Usage usage;
    std::vector<float> embedding;
    std::vector<std::vector<SampledToken>> prompt_scores;  // one entry per on_prompt_logprobs
    bool prompt_scores_before_events = false;
};

// What greedy decoding on the fake gives for `prompt` alone.
inline std::vector<int32_t> reference(std::vector<int32_t> tokens, int32_t max_tokens) {
    std::vector<int32_t> out;
    for (int32_t i = 0; i < max_tokens; ++i) {
        const auto next = static_cast<int32_t>(FakeBackend::hash_tokens(tokens, tokens.size()) %
                                               FakeBackend::kVocab);
        out.push_back(next);
        tokens.push_back(next);
    }
    return out;
}

inline std::vector<int32_t> random_prompt(std::mt19937& rng, size_t n) {
    std::uniform_int_distribution<int32_t> token(0, FakeBackend::kVocab - 1);
    std::vector<int32_t> prompt(n);
    for (auto& id : prompt) {
        id = token(rng);
    }
    return prompt;
}

inline EngineRequest greedy(std::vector<int32_t> prompt, int32_t max_tokens) {
    EngineRequest request;
    request.prompt = std::move(prompt);
    request.sampling.temperature = 0;
    request.max_tokens = max_tokens;
    return request;
}

// Steps until nothing is left, each step required to succeed.
inline void run_to_idle(Scheduler& scheduler) {
    for (int guard = 0; !scheduler.idle(); ++guard) {
        REQUIRE(guard < 100000);
        auto stepped = scheduler.step();
        REQUIRE_MESSAGE(stepped.ok(), stepped.status().to_string());
    }
}

struct Fixture {
    explicit Fixture(int32_t n_blocks, SchedulerOptions options = {}, int32_t block_size = 4) {
        REQUIRE(backend.configure_kv_cache({block_size, n_blocks}).ok());
        scheduler = std::make_unique<Scheduler>(backend, nullptr, options);
    }
    std::shared_ptr<RecordingSink> add(uint64_t id, EngineRequest request) {
        REQUIRE(scheduler->validate(request).ok());
        auto sink = std::make_shared<RecordingSink>();
        scheduler->add(id, std::move(request), sink);
        return sink;
    }
    void run() { run_to_idle(*scheduler); }
    FakeBackend backend;
    std::unique_ptr<Scheduler> scheduler;
};

inline void check_no_blocks_held(const Scheduler& scheduler) {
    const SchedulerStats stats = scheduler.stats();
    CHECK(stats.blocks.n_in_use == 0);
    CHECK(stats.blocks.n_free + stats.blocks.n_evictable == stats.blocks.n_blocks);
    CHECK(stats.running == 0);
    CHECK(stats.waiting == 0);
}

}  // namespace sluice::inference::testing
