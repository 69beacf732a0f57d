// Generation over the CPU backend with a golden checkpoint: greedy equals the reference, seeds
// reproduce, stops and limits end sequences, and batched generation equals one at a time.
#include "inference/generator.h"

#include <doctest/doctest.h>

#include "inference/cpu_backend.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

struct Fixture {
    Fixture() : golden(testing::load_json(testing::golden_dir("a_d64_gqa") + "/golden.json")) {
        auto opened = open_cpu_backend(testing::golden_dir("a_d64_gqa"), {WeightFormat::kAsStored, 2});
        REQUIRE(opened.ok());
        backend = std::move(*opened);
        REQUIRE(backend->configure_kv_cache({4, 128}).ok());
    }
    nlohmann::json golden;
    std::unique_ptr<Backend> backend;
    KvBlockPool pool{128, 4};
};

GenerationRequest greedy_request(const nlohmann::json& golden_case, int32_t max_tokens) {
    GenerationRequest request;
    request.prompt = testing::to_ids(golden_case["ids"]);
    request.sampling.temperature = 0.0f;
    request.max_tokens = max_tokens;
    return request;
}

}  // namespace

TEST_CASE("generate: greedy decoding reproduces the reference continuations") {
    Fixture f;
    for (const auto& golden_case : f.golden["cases"]) {
        Timings timings;
        auto result = generate(*f.backend, f.pool, greedy_request(golden_case, 16), &timings);
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        CHECK(result->ids == testing::to_ids(golden_case["greedy"]));
        CHECK(result->finish == FinishReason::kLength);
        CHECK(result->usage.completion_tokens == 16);
        CHECK(timings.decode_tokens == 15);
        CHECK(f.pool.n_free() == 128);  // blocks are returned
    }
}

TEST_CASE("generate: a batch gives each request what it gets alone") {
    Fixture f;
    std::vector<GenerationRequest> requests;
    for (const auto& golden_case : f.golden["cases"]) {
        requests.push_back(greedy_request(golden_case, 16));
    }
    requests[1].max_tokens = 5;
    requests.push_back(requests[0]);
    requests.back().sampling = {.temperature = 0.8f, .top_p = 0.9f, .seed = 11};
    auto batch = generate_batch(*f.backend, f.pool, requests);
    REQUIRE_MESSAGE(batch.ok(), batch.status().to_string());
    for (size_t i = 0; i < requests.size(); ++i) {
        auto alone = generate(*f.backend, f.pool, requests[i]);
        REQUIRE(alone.ok());
        CHECK(batch->results[i].ids == alone->ids);
    }
    CHECK(batch->results[1].ids.size() == 5);
}

TEST_CASE("generate: seeded sampling is reproducible") {
    Fixture f;
    GenerationRequest request = greedy_request(f.golden["cases"][2], 12);
    request.sampling = {.temperature = 1.0f, .top_k = 50, .seed = 42, .top_logprobs = 2};
    auto first = generate(*f.backend, f.pool, request);
    auto second = generate(*f.backend, f.pool, request);
    REQUIRE((first.ok() && second.ok()));
    CHECK(first->ids == second->ids);
    request.sampling.seed = 43;
    auto other = generate(*f.backend, f.pool, request);
    REQUIRE(other.ok());
    CHECK(other->ids != first->ids);
    for (const SampledToken& token : first->tokens) {
        REQUIRE(token.top.size() == 2);
        CHECK(token.logprob <= token.top[0].logprob);
    }
}

TEST_CASE("generate: stop tokens, stop sequences, text matchers and cancellation end early") {
    Fixture f;
    const auto& golden_case = f.golden["cases"][1];  // greedy: 477 506 147 109 114 473 473 ...
    const auto expected = testing::to_ids(golden_case["greedy"]);

    GenerationRequest stop_token = greedy_request(golden_case, 16);
    stop_token.stop_tokens = {expected[3]};
    auto result = generate(*f.backend, f.pool, stop_token);
    REQUIRE(result.ok());
    CHECK(result->ids == std::vector<int32_t>(expected.begin(), expected.begin() + 3));
    CHECK(result->finish == FinishReason::kStopToken);
    CHECK(result->usage.completion_tokens == 4);

    GenerationRequest stop_sequence = greedy_request(golden_case, 16);
    stop_sequence.stop_sequences = {{expected[2], expected[3]}, {99999}};
    result = generate(*f.backend, f.pool, stop_sequence);
    REQUIRE(result.ok());
    CHECK(result->ids == std::vector<int32_t>(expected.begin(), expected.begin() + 2));
    CHECK(result->finish == FinishReason::kStopSequence);

    struct AfterThree : TextStopMatcher {
        int seen = 0;
        bool on_token(int32_t) override { return ++seen == 3; }
    } matcher;
    GenerationRequest text = greedy_request(golden_case, 16);
    text.text_stop = &matcher;
    result = generate(*f.backend, f.pool, text);
    REQUIRE(result.ok());
    CHECK(result->ids.size() == 3);
    CHECK(result->finish == FinishReason::kStopText);

    GenerationRequest cancel = greedy_request(golden_case, 16);
    int calls = 0;
    cancel.on_token = [&](const SampledToken&) { return ++calls < 2; };
    result = generate(*f.backend, f.pool, cancel);
    REQUIRE(result.ok());
    CHECK(result->finish == FinishReason::kCancelled);
    CHECK(result->ids.size() == 2);
}

TEST_CASE("generate: bad requests and a full pool are errors") {
    Fixture f;
    GenerationRequest empty;
    CHECK(generate(*f.backend, f.pool, empty).status().code() == StatusCode::kInvalidArgument);
    GenerationRequest bad_id = greedy_request(f.golden["cases"][0], 4);
    bad_id.prompt = {600};
    CHECK(generate(*f.backend, f.pool, bad_id).status().message().find("600") != std::string::npos);
    GenerationRequest too_long = greedy_request(f.golden["cases"][0], 4);
    too_long.prompt.assign(200, 1);
    CHECK(generate(*f.backend, f.pool, too_long).status().code() == StatusCode::kInvalidArgument);
    KvBlockPool tiny(2, 4);
    GenerationRequest request = greedy_request(f.golden["cases"][2], 16);
    CHECK(generate(*f.backend, tiny, request).status().code() == StatusCode::kResourceExhausted);
}

}  // namespace sluice::inference
