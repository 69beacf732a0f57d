// Output overlap (scheduler.h): the text of a step's tokens is released on a helper thread while
// the next forward pass runs. Over FakeBackend and the real cl100k tokenizer (the fake's 64 token
// ids are single printable characters), every request must see exactly what it sees when the
// text is released at once: the same events, text, tokens, finishes and usage.
#include <doctest/doctest.h>

#include <map>
#include <random>

#include "fake_backend.h"
#include "inference/scheduler.h"
#include "scheduler_fixture.h"
#include "tokenizer_fixture.h"

namespace sluice::inference {
namespace {

using testing::dbrx_tokenizer;
using testing::FakeBackend;

// Everything a request was told, event by event.
struct Transcript final : RequestSink {
    struct Event {
        int32_t choice = 0;
        std::string text;
        std::vector<int32_t> tokens;
        std::optional<FinishReason> finish;
        bool operator==(const Event&) const = default;
    };
    void on_event(StreamEvent event) override {
        Event e{event.choice, event.text, {}, event.finish};
        for (const SampledToken& token : event.tokens) {
            e.tokens.push_back(token.id);
        }
        events.push_back(std::move(e));
    }
    void on_finish(const Status& final_status, const Usage& final_usage,
                   std::vector<float>) override {
        ++finishes;
        status = final_status;
        usage = final_usage;
    }
    // The events of one choice (choices interleave differently only by arrival).
    std::vector<Event> of(int32_t choice) const {
        std::vector<Event> out;
        for (const Event& e : events) {
            if (e.choice == choice) {
                out.push_back(e);
            }
        }
        return out;
    }
    std::vector<Event> events;
    int finishes = 0;
    Status status;
    Usage usage;
};

struct Run {
    Run(bool overlap, int32_t n_blocks, int32_t sampling_threads = 1) {
        REQUIRE(backend.configure_kv_cache({4, n_blocks}).ok());
        SchedulerOptions options;
        options.overlap_output = overlap;
        options.host_sampling_threads = sampling_threads;
        options.max_batch_tokens = 24;
        scheduler = std::make_unique<Scheduler>(backend, &dbrx_tokenizer(), options);
    }
    std::shared_ptr<Transcript> add(uint64_t id, const EngineRequest& request) {
        REQUIRE(scheduler->validate(request).ok());
        auto sink = std::make_shared<Transcript>();
        scheduler->add(id, request, sink);
        return sink;
    }
    void run() { testing::run_to_idle(*scheduler); }
    int64_t positions_computed() const {
        int64_t n = 0;
        for (const auto& step : backend.steps) {
            n += step.tokens;
        }
        return n;
    }
    FakeBackend backend;
    std::unique_ptr<Scheduler> scheduler;
};

std::string text_of(const std::vector<int32_t>& ids) {
    auto text = dbrx_tokenizer().decode(ids);
    REQUIRE(text.ok());
    return *text;
}

// A request of random shape: greedy or seeded sampling, one or more choices, stop strings of
// one or two of the fake's characters (they hit often), up to 40 tokens.
EngineRequest random_request(std::mt19937& rng) {
    std::uniform_int_distribution<int32_t> token(0, FakeBackend::kVocab - 1);
    EngineRequest request;
    const int n_prompt = std::uniform_int_distribution<int>(1, 30)(rng);
    for (int i = 0; i < n_prompt; ++i) {
        request.prompt.push_back(token(rng));
    }
    request.max_tokens = std::uniform_int_distribution<int32_t>(1, 40)(rng);
    request.n = rng() % 4 == 0 ? 2 : 1;
    if (rng() % 2 == 0) {
        request.sampling.temperature = 0;
    } else {
        request.sampling.temperature = 0.9f;
        request.sampling.seed = rng();
    }
    const int n_stops = static_cast<int>(rng() % 3);
    for (int s = 0; s < n_stops; ++s) {
        std::vector<int32_t> ids = {token(rng)};
        if (rng() % 2 == 0) {
            ids.push_back(token(rng));
        }
        request.stop_strings.push_back(text_of(ids));
    }
    if (rng() % 5 == 0) {
        request.stop_tokens.push_back(token(rng));
    }
    return request;
}

void check_same(const Transcript& overlapped, const Transcript& at_once, int32_t n) {
    CHECK(overlapped.finishes == 1);
    CHECK(at_once.finishes == 1);
    CHECK(overlapped.status.code() == at_once.status.code());
    CHECK(overlapped.usage.prompt_tokens == at_once.usage.prompt_tokens);
    CHECK(overlapped.usage.completion_tokens == at_once.usage.completion_tokens);
    for (int32_t c = 0; c < n; ++c) {
        INFO("choice " << c);
        CHECK(overlapped.of(c) == at_once.of(c));
    }
}

}  // namespace

TEST_CASE("output overlap: every request sees what releasing at once shows it, and choices made "
          "on two threads are the ones made on one") {
    // A roomy cache, and one small enough that sequences are preempted holding unreleased text.
    for (const int32_t n_blocks : {512, 24}) {
        INFO("cache of " << n_blocks << " blocks");
        // Overlapped with the host's choices on two threads, against all on one thread at once.
        Run overlapped(true, n_blocks, 2);
        Run at_once(false, n_blocks, 1);
        std::mt19937 rng(static_cast<uint32_t>(n_blocks));
        std::vector<std::pair<std::shared_ptr<Transcript>, std::shared_ptr<Transcript>>> sinks;
        std::vector<int32_t> choices;
        for (uint64_t id = 1; id <= 120; ++id) {
            const EngineRequest request = random_request(rng);
            sinks.emplace_back(overlapped.add(id, request), at_once.add(id, request));
            choices.push_back(request.n);
        }
        overlapped.run();
        at_once.run();
        int stopped_by_text = 0;
        for (size_t i = 0; i < sinks.size(); ++i) {
            INFO("request " << i + 1);
            check_same(*sinks[i].first, *sinks[i].second, choices[i]);
            for (const auto& event : sinks[i].second->events) {
                stopped_by_text += event.finish == FinishReason::kStopText ? 1 : 0;
            }
        }
        CHECK(stopped_by_text > 10);  // the stop strings were exercised
        const SchedulerStats stats = overlapped.scheduler->stats();
        CHECK(stats.overlapped_outputs > 500);
        CHECK(at_once.scheduler->stats().overlapped_outputs == 0);
        CHECK(stats.generated_tokens == at_once.scheduler->stats().generated_tokens);
        CHECK(stats.blocks.n_in_use == 0);
        CHECK(at_once.scheduler->stats().blocks.n_in_use == 0);
        if (n_blocks == 24) {
            CHECK(stats.preemptions > 0);
        }
    }
}

TEST_CASE("output overlap: a stop string found a step late costs one position, not a token") {
    Run overlapped(true, 64);
    Run at_once(false, 64);
    // The stop string is the text of the 6th and 7th greedy tokens, where it first occurs.
    EngineRequest probe;
    probe.prompt = {5, 9, 13};
    probe.sampling.temperature = 0;
    probe.max_tokens = 20;
    Run plain(false, 64);
    auto free_run = plain.add(1, probe);
    plain.run();
    std::vector<int32_t> ids;
    for (const auto& event : free_run->events) {
        ids.insert(ids.end(), event.tokens.begin(), event.tokens.end());
    }
    REQUIRE(ids.size() == 20);
    const std::string stop = text_of({ids[5], ids[6]});
    REQUIRE(text_of(std::vector<int32_t>(ids.begin(), ids.begin() + 6)).find(stop) ==
            std::string::npos);
    probe.stop_strings = {stop};

    auto a = overlapped.add(1, probe);
    auto b = at_once.add(1, probe);
    overlapped.run();
    at_once.run();
    check_same(*a, *b, 1);
    REQUIRE(!a->events.empty());
    CHECK(a->events.back().finish == FinishReason::kStopText);
    CHECK(a->usage.completion_tokens == 7);
    // The overlapped run computed the position after the stop before it knew.
    CHECK(overlapped.positions_computed() == at_once.positions_computed() + 1);
}

TEST_CASE("output overlap: the last token comes with its finish, without waiting a step") {
    Run overlapped(true, 64);
    EngineRequest request;
    request.prompt = {1, 2, 3};
    request.sampling.temperature = 0;
    request.max_tokens = 3;
    auto sink = overlapped.add(1, request);
    int steps = 0;
    while (sink->finishes == 0) {
        REQUIRE(steps < 10);
        REQUIRE(overlapped.scheduler->step().ok());
        ++steps;
    }
    CHECK(steps == 3);  // the prompt with the first token, then two decodes
    CHECK(overlapped.scheduler->idle());
    REQUIRE(sink->events.size() == 3);
    CHECK(sink->events[2].finish == FinishReason::kLength);
    CHECK(sink->events[0].tokens.size() == 1);
    CHECK(sink->events[1].tokens.size() == 1);
}

TEST_CASE("output overlap: a cancelled or expired request ends with its unreleased text dropped") {
    Run overlapped(true, 64);
    EngineRequest request;
    request.prompt = {7, 8};
    request.sampling.temperature = 0;
    request.max_tokens = 50;
    auto cancelled = overlapped.add(1, request);
    auto kept = overlapped.add(2, request);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(overlapped.scheduler->step().ok());
    }
    // The 4th step's token is unreleased now; the request ends without it.
    overlapped.scheduler->cancel(1);
    CHECK(cancelled->finishes == 1);
    CHECK(cancelled->status.code() == StatusCode::kCancelled);
    const size_t seen = cancelled->events.size();
    overlapped.run();
    CHECK(cancelled->events.size() == seen);  // nothing after the finish
    CHECK(kept->finishes == 1);
    CHECK(kept->usage.completion_tokens == 50);
    CHECK(overlapped.scheduler->stats().blocks.n_in_use == 0);
}

}  // namespace sluice::inference
