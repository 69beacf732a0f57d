// The engine over the real CPU backend and a tiny random checkpoint: hidden states from the
// backend, the engine thread, streaming, cancellation, queue limits and embeddings.
#include "inference/engine.h"

#include <doctest/doctest.h>

#include <cmath>

#include "inference/cpu_backend.h"
#include "inference/generator.h"
#include "inference/grammar_matcher.h"
#include "inference/tiny_model.h"
#include "inference/tokenizer_files.h"
#include "inference_test_support.h"

namespace sluice::inference {
namespace {

using namespace std::chrono_literals;

const std::string& tiny_dir() { return testing::tiny_model_dir(3); }

std::shared_ptr<const Tokenizer> cl100k() {
    static std::shared_ptr<const Tokenizer> tokenizer = [] {
        auto opened = open_dbrx_tiktoken(std::string(SLUICE_SOURCE_DIR) +
                                         "/inference/assets/cl100k_base.tiktoken");
        REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
        return std::shared_ptr<const Tokenizer>(std::move(*opened));
    }();
    return tokenizer;
}

std::unique_ptr<Engine> open_engine(int32_t max_queued = 64, int32_t n_blocks = 256) {
    auto backend = open_cpu_backend(tiny_dir(), {WeightFormat::kAsStored, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    EngineOptions options;
    options.kv_cache = {16, n_blocks};
    options.scheduler.max_batch_tokens = 64;
    options.max_queued = max_queued;
    auto engine = Engine::open(std::move(*backend), cl100k(), options);
    REQUIRE_MESSAGE(engine.ok(), engine.status().to_string());
    return std::move(*engine);
}

struct Collected {
    std::vector<int32_t> ids;
    std::string text;
    std::optional<FinishReason> finish;
};

Collected drain(RequestHandle& handle) {
    Collected out;
    StreamEvent event;
    while (handle.next(&event, 1s) != RequestHandle::Poll::kFinished) {
        for (const auto& token : event.tokens) {
            out.ids.push_back(token.id);
        }
        out.text += event.text;
        if (event.finish) {
            out.finish = event.finish;
        }
        event = {};
    }
    return out;
}

}  // namespace

TEST_CASE("cpu backend: final hidden states come back for the entries that ask") {
    auto backend = open_cpu_backend(tiny_dir(), {WeightFormat::kAsStored, 2});
    REQUIRE(backend.ok());
    REQUIRE((*backend)->configure_kv_cache({16, 8}).ok());
    const std::vector<int32_t> a = {1, 2, 3, 4, 5};
    const std::vector<int32_t> b = {9, 8, 7};
    const std::vector<int32_t> table_a = {0};
    const std::vector<int32_t> table_b = {1};
    ForwardBatch batch;
    batch.sequences.push_back({a, 0, table_a, LogitsRows::kLast, true});
    batch.sequences.push_back({b, 0, table_b, LogitsRows::kLast, false});
    auto out = (*backend)->forward(batch);
    REQUIRE(out.ok());
    CHECK(out->n_embd == (*backend)->config().d_model);
    CHECK(out->hidden_n_rows == std::vector<int64_t>{5, 0});
    CHECK(out->hidden.size() == static_cast<size_t>(5 * out->n_embd));
    // After the final LayerNorm each row has mean ~0 (weights are the norm's scale only).
    for (int64_t r = 0; r < 5; ++r) {
        auto row = out->hidden_row(0, r);
        double norm = 0;
        for (float v : row) {
            norm += static_cast<double>(v) * v;
        }
        CHECK(norm > 0);
    }
    // Asking for hidden states changes no logits (beyond the rounding of another batch shape).
    const std::vector<int32_t> table_c = {2};
    ForwardBatch plain;
    plain.sequences.push_back({a, 0, table_c, LogitsRows::kLast, false});
    auto again = (*backend)->forward(plain);
    REQUIRE(again.ok());
    auto r1 = out->row(0);
    auto r2 = again->row(0);
    CHECK(testing::relative_max_diff(std::vector<float>(r1.begin(), r1.end()),
                                     std::vector<float>(r2.begin(), r2.end())) < 1e-5);
}

TEST_CASE("engine: greedy output equals the single-sequence generator") {
    auto engine = open_engine();
    EngineRequest request;
    request.prompt = {100, 2000, 300, 40};
    request.sampling.temperature = 0;
    request.max_tokens = 8;
    auto handle = engine->submit(request);
    REQUIRE(handle.ok());
    Collected got = drain(*handle);
    REQUIRE(handle->status().ok());

    auto backend = open_cpu_backend(tiny_dir(), {WeightFormat::kAsStored, 2});
    REQUIRE(backend.ok());
    REQUIRE((*backend)->configure_kv_cache({16, 16}).ok());
    KvBlockPool pool(16, 16);
    GenerationRequest reference;
    reference.prompt = request.prompt;
    reference.sampling.temperature = 0;
    reference.max_tokens = 8;
    auto expected = generate(**backend, pool, reference);
    REQUIRE(expected.ok());
    CHECK(got.ids == expected->ids);
    CHECK(got.finish == FinishReason::kLength);
    CHECK(handle->usage().completion_tokens == 8);
    auto text = cl100k()->decode_text(got.ids);
    REQUIRE(text.ok());
    CHECK(got.text == *text);
}

TEST_CASE("engine: text stop strings cut the text before the stop") {
    auto engine = open_engine();
    EngineRequest request;
    request.prompt = {100, 2000, 300, 40};
    request.sampling.temperature = 0;
    request.max_tokens = 12;
    auto handle = engine->submit(request);
    REQUIRE(handle.ok());
    const std::string full = drain(*handle).text;
    REQUIRE(full.size() > 4);
    // Stop on a piece from the middle of what the model writes.
    const std::string stop = full.substr(full.size() / 2, 2);
    request.stop_strings = {stop};
    auto stopped = engine->submit(request);
    REQUIRE(stopped.ok());
    Collected cut = drain(*stopped);
    CHECK(cut.text == full.substr(0, full.find(stop)));
    CHECK(cut.finish == FinishReason::kStopText);
}

TEST_CASE("engine: cancel ends a long request and frees its blocks") {
    auto engine = open_engine();
    EngineRequest request;
    request.prompt = std::vector<int32_t>(40, 500);
    request.max_tokens = 3000;
    auto handle = engine->submit(request);
    REQUIRE(handle.ok());
    StreamEvent event;
    while (handle->next(&event, 1s) != RequestHandle::Poll::kEvent) {
    }
    handle->cancel();
    while (handle->next(&event, 1s) != RequestHandle::Poll::kFinished) {
    }
    CHECK(handle->status().code() == StatusCode::kCancelled);
    // Statistics are published after each loop of the engine thread.
    for (int i = 0; i < 200 && engine->stats().scheduler.blocks.n_in_use != 0; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    CHECK(engine->stats().scheduler.blocks.n_in_use == 0);
}

TEST_CASE("engine: a full queue refuses at once") {
    auto engine = open_engine(/*max_queued=*/1, /*n_blocks=*/4);
    EngineRequest big;
    big.prompt = std::vector<int32_t>(40, 7);  // 3 of the 4 blocks
    big.max_tokens = 2000;
    std::vector<RequestHandle> accepted;
    int refused = 0;
    for (int i = 0; i < 6; ++i) {
        auto handle = engine->submit(big);
        if (handle.ok()) {
            accepted.push_back(std::move(*handle));
        } else {
            CHECK(handle.status().code() == StatusCode::kResourceExhausted);
            ++refused;
        }
    }
    CHECK(refused >= 1);
    CHECK(engine->stats().requests_rejected == refused);
    // The cheap check agrees with submit() while the queue stays full, and counts its refusals.
    if (engine->stats().queued >= 1) {
        Status full = engine->check_capacity();
        CHECK(full.code() == StatusCode::kResourceExhausted);
        CHECK(full.message().find("at capacity") != std::string::npos);
        CHECK(engine->stats().requests_rejected == refused + 1);
    }
    accepted.clear();  // cancelled: the queue drains
    Status room = Status(StatusCode::kResourceExhausted, "not checked");
    for (int i = 0; i < 200 && !room.ok(); ++i) {
        std::this_thread::sleep_for(10ms);
        if (engine->stats().queued == 0) {
            room = engine->check_capacity();
        }
    }
    CHECK(room.ok());
}

TEST_CASE("engine: embeddings are unit vectors, equal for equal texts") {
    auto engine = open_engine();
    std::vector<std::string> texts = {"refund policy", "shipping times", "refund policy"};
    Usage usage;
    auto vectors = engine->embed(texts, &usage);
    REQUIRE_MESSAGE(vectors.ok(), vectors.status().to_string());
    REQUIRE(vectors->size() == 3);
    for (const auto& v : *vectors) {
        CHECK(v.size() == static_cast<size_t>(engine->model_config().d_model));
        double norm = 0;
        for (float x : v) {
            norm += static_cast<double>(x) * x;
        }
        CHECK(std::sqrt(norm) == doctest::Approx(1.0).epsilon(1e-4));
    }
    // Equal texts give the same vector up to the rounding of different batch shapes.
    auto dot = [](const std::vector<float>& x, const std::vector<float>& y) {
        double sum = 0;
        for (size_t i = 0; i < x.size(); ++i) {
            sum += static_cast<double>(x[i]) * y[i];
        }
        return sum;
    };
    CHECK(dot((*vectors)[0], (*vectors)[2]) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(dot((*vectors)[0], (*vectors)[1]) < 0.999);
    CHECK(usage.prompt_tokens == 6);

    std::vector<std::string> bad = {"fine", std::string("bad \xff")};
    auto error = engine->embed(bad);
    CHECK(error.status().code() == StatusCode::kInvalidArgument);
    CHECK(error.status().message().find("input[1]") != std::string::npos);
}

TEST_CASE("engine: each choice of a constrained request follows its own grammar matcher") {
    auto engine = open_engine();
    const GrammarCompiler compiler(*cl100k());
    auto grammar = compiler.compile_grammar_text(R"(root ::= "yes" | "no" | "maybe so")");
    REQUIRE_MESSAGE(grammar.ok(), grammar.status().to_string());
    EngineRequest request;
    request.prompt = {100, 2000, 300, 40};
    request.sampling = {.temperature = 1.0f, .seed = 11};
    request.max_tokens = 16;
    request.n = 4;
    request.stop_tokens = {dbrx::kEndOfText, dbrx::kImEnd};
    request.constraint.emplace(*grammar);
    auto handle = engine->submit(request);
    REQUIRE(handle.ok());
    std::vector<std::string> texts(4);
    std::vector<std::optional<FinishReason>> finishes(4);
    StreamEvent event;
    while (handle->next(&event, 1s) != RequestHandle::Poll::kFinished) {
        REQUIRE(event.choice < 4);
        texts[static_cast<size_t>(event.choice)] += event.text;
        if (event.finish) {
            finishes[static_cast<size_t>(event.choice)] = event.finish;
        }
        event = {};
    }
    REQUIRE(handle->status().ok());
    for (size_t c = 0; c < 4; ++c) {
        CAPTURE(c);
        CAPTURE(texts[c]);
        // A shared matcher would have been fed the other choices' tokens and refused these.
        CHECK((texts[c] == "yes" || texts[c] == "no" || texts[c] == "maybe so"));
        REQUIRE(finishes[c].has_value());
        CHECK(*finishes[c] == FinishReason::kStopToken);
    }
}

TEST_CASE("engine: a constrained choice cut by max_tokens is a prefix of the grammar") {
    auto engine = open_engine();
    const GrammarCompiler compiler(*cl100k());
    auto grammar = compiler.compile_grammar_text(R"(root ::= "[" [0-9]{40} "]")");
    REQUIRE_MESSAGE(grammar.ok(), grammar.status().to_string());
    EngineRequest request;
    request.prompt = {100, 2000, 300, 40};
    request.sampling = {.temperature = 1.0f, .seed = 5};
    request.max_tokens = 3;
    request.stop_tokens = {dbrx::kEndOfText, dbrx::kImEnd};
    request.constraint.emplace(*grammar);
    auto handle = engine->submit(request);
    REQUIRE(handle.ok());
    Collected got = drain(*handle);
    REQUIRE(handle->status().ok());
    CHECK(got.finish == FinishReason::kLength);
    CHECK(got.ids.size() == 3);
    GrammarMatcher check(*grammar);
    CHECK(check.accept_bytes(got.text).ok());
    REQUIRE(!got.text.empty());
    CHECK(got.text[0] == '[');
}

}  // namespace sluice::inference
