// Structured output end to end: every schema under data/schemas is sampled 20 times at
// temperature 1 from a random tiny DBRX under its grammar. Finished outputs must parse and pass
// an independent validator (schema_validator.h); outputs cut by max_tokens must be valid prefixes
// by the matcher and by the independent prefix checker.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "grammar_test_support.h"
#include "inference/cpu_backend.h"
#include "inference/generator.h"
#include "inference/tiny_model.h"
#include "inference_test_support.h"
#include "schema_validator.h"

namespace sluice::inference {
namespace {

std::vector<std::filesystem::path> schema_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(
             std::filesystem::path(SLUICE_SOURCE_DIR) / "tests/inference/data/schemas")) {
        if (entry.path().extension() == ".json") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TEST_CASE("structured output: 20 samples per schema from a random model all conform") {
    const auto files = schema_files();
    REQUIRE(files.size() >= 40);
    testing::TempDir dir;
    auto written = write_tiny_model(dir.path(), {.preset = TinyPreset::kTiny, .seed = 7});
    REQUIRE_MESSAGE(written.ok(), written.status().to_string());
    auto backend = open_cpu_backend(dir.path(), {WeightFormat::kAsStored, 2});
    REQUIRE_MESSAGE(backend.ok(), backend.status().to_string());
    constexpr int kSamples = 20;
    constexpr int32_t kMaxTokens = 32;
    const int32_t blocks_per_sequence = (8 + kMaxTokens) / 16 + 1;
    REQUIRE((*backend)->configure_kv_cache({16, kSamples * blocks_per_sequence}).ok());
    KvBlockPool pool(kSamples * blocks_per_sequence, 16);
    const Tokenizer& tokenizer = testing::dbrx_tokenizer();
    auto prompt = tokenizer.encode("Answer in JSON.");
    REQUIRE(prompt.ok());

    int finished = 0;
    int cut = 0;
    for (const auto& file : files) {
        CAPTURE(file.filename().string());
        const std::string schema_text = read_text(file);
        const auto grammar = testing::compile_schema_text(schema_text);
        const testing::SchemaValidator validator(nlohmann::json::parse(schema_text));
        std::vector<GrammarMatcher> matchers(kSamples, GrammarMatcher(grammar));
        std::vector<GenerationRequest> requests(kSamples);
        for (int i = 0; i < kSamples; ++i) {
            requests[i].prompt = *prompt;
            requests[i].sampling = {.temperature = 1.0f, .seed = static_cast<uint64_t>(1000 + i)};
            requests[i].max_tokens = kMaxTokens;
            requests[i].stop_tokens = {dbrx::kImEnd, dbrx::kEndOfText};
            requests[i].constraint = &matchers[static_cast<size_t>(i)];
        }
        auto batch = generate_batch(**backend, pool, requests);
        REQUIRE_MESSAGE(batch.ok(), batch.status().to_string());
        for (const GenerationResult& result : batch->results) {
            auto text = tokenizer.decode(result.ids);
            REQUIRE(text.ok());
            CAPTURE(*text);
            // The matcher, fresh, follows the same tokens.
            GrammarMatcher replay(grammar);
            for (int32_t id : result.ids) {
                REQUIRE(replay.accept_token(id).ok());
            }
            if (result.finish == FinishReason::kStopToken) {
                ++finished;
                CHECK(replay.is_accepting());
                auto parsed = nlohmann::json::parse(*text, nullptr, false);
                REQUIRE_FALSE(parsed.is_discarded());
                CHECK(validator.validate(parsed) == "");
            } else {
                REQUIRE(result.finish == FinishReason::kLength);
                ++cut;
                CHECK(validator.validate_prefix(*text) == "");
            }
        }
    }
    MESSAGE("finished " << finished << ", cut by max_tokens " << cut);
    // A test that no sample ever finishes would not test the complete outputs at all.
    CHECK(finished >= 40);
}

}  // namespace sluice::inference
