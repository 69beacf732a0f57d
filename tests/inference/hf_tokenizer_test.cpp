#include "inference/hf_tokenizer.h"

#include <cstdlib>

#include "inference/detail/byte_codecs.h"
#include "tokenizer_fixture.h"

namespace sluice::inference {
namespace {

using testing::dbrx_tokenizer;

std::filesystem::path temp_dir(const std::string& name) {
    auto dir = std::filesystem::path(SLUICE_BINARY_DIR) / "hf_tokenizer_test" / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path);
    out << text;
}

// The ranks written as Hugging Face files, loaded back once for all cases.
const Tokenizer& hf_round_trip() {
    static const std::unique_ptr<Tokenizer> tokenizer = [] {
        auto dir = temp_dir("written");
        Status written = write_hf_tokenizer_files(dbrx_tokenizer(), dir);
        if (!written.ok()) {
            FAIL("writing tokenizer files: " << written.to_string());
        }
        write(dir / "config.json", R"({"model_type": "dbrx", "vocab_size": 100352})");
        auto opened = open_hf_tokenizer(dir);
        if (!opened) {
            FAIL("loading the written files: " << opened.status().to_string());
        }
        return std::move(*opened);
    }();
    return *tokenizer;
}

TEST_CASE("written Hugging Face files load as the same tokenizer") {
    const Tokenizer& hf = hf_round_trip();
    const Tokenizer& ranks = dbrx_tokenizer();
    CHECK(!hf.rank_mode());
    CHECK(hf.whole_piece_lookup());
    CHECK(hf.vocab_size() == dbrx::kVocabSize);
    CHECK(hf.n_bpe_ids() == ranks.n_bpe_ids());
    CHECK(hf.special_tokens().size() == ranks.special_tokens().size());
    for (const SpecialToken& special : dbrx_special_tokens()) {
        CHECK(hf.special_token_id(special.text) == special.id);
    }
    for (TokenId id = 0; id < ranks.n_bpe_ids(); ++id) {
        REQUIRE(hf.token_bytes(id) == ranks.token_bytes(id));
    }
    auto config = nlohmann::json::parse(std::ifstream(
        std::filesystem::path(SLUICE_BINARY_DIR) / "hf_tokenizer_test/written/tokenizer_config.json"));
    CHECK(config["eos_token"] == "<|endoftext|>");
    CHECK(config["pad_token"] == "<|pad|>");
}

TEST_CASE("both loaders give identical ids on the parity corpus") {
    const Tokenizer& hf = hf_round_trip();
    const Tokenizer& ranks = dbrx_tokenizer();
    auto cases = testing::read_cases(std::filesystem::path(SLUICE_SOURCE_DIR) /
                                     "tests/inference/data/tokenizer_cases.jsonl");
    const char* env = std::getenv("SLUICE_TOKENIZER_CASES");
    if (env != nullptr && std::filesystem::exists(env)) {
        auto generated = testing::read_cases(env);
        cases.insert(cases.end(), generated.begin(), generated.end());
    }
    REQUIRE(cases.size() >= 200);
    int differ = 0;
    for (const auto& c : cases) {
        for (auto mode : {SpecialTokenMode::kOrdinary, SpecialTokenMode::kAllowed}) {
            if (*hf.encode(c.text, mode) != *ranks.encode(c.text, mode) && differ++ < 5) {
                CHECK_MESSAGE(false, "differs: " << testing::shown(c.text));
            }
        }
    }
    CHECK(differ == 0);
    MESSAGE(cases.size() << " texts compared in both modes");
}

nlohmann::json tiny_tokenizer_json() {
    nlohmann::json vocab = nlohmann::json::object();
    for (int byte = 0; byte < 256; ++byte) {
        vocab[detail::byte_level_encode(std::string(1, static_cast<char>(byte)))] = byte;
    }
    vocab["ab"] = 256;
    vocab["\xC4\xA0" "ab"] = 257;  // " ab"
    return {{"version", "1.0"},
            {"added_tokens", nlohmann::json::array({{{"id", 300}, {"content", "<|end|>"}, {"special", true}}})},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"vocab", vocab},
              {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"}),
                                                 nlohmann::json::array({"\xC4\xA0", "ab"})})}}}};
}

TEST_CASE("a GPT-2 style file with array merges and the GPT-2 regex loads") {
    auto dir = temp_dir("tiny");
    write(dir / "tokenizer.json", tiny_tokenizer_json().dump());
    write(dir / "tokenizer_config.json", R"({"eos_token": "<|end|>"})");
    auto tokenizer = open_hf_tokenizer(dir);
    REQUIRE_MESSAGE(tokenizer.ok(), tokenizer.status().to_string());
    CHECK(*(*tokenizer)->encode(" ab a") == std::vector<TokenId>{257, ' ', 'a'});
    CHECK(*(*tokenizer)->encode("x<|end|>", SpecialTokenMode::kAllowed) ==
          std::vector<TokenId>{'x', 300});
    CHECK((*tokenizer)->vocab_size() == 301);
}

TEST_CASE("unsupported or malformed tokenizer files are named errors") {
    auto dir = temp_dir("bad");
    CHECK(open_hf_tokenizer(dir).status().code() == StatusCode::kNotFound);

    write(dir / "tokenizer.json", "{not json");
    CHECK(open_hf_tokenizer(dir).status().code() == StatusCode::kInvalidArgument);

    auto doc = tiny_tokenizer_json();
    doc["normalizer"] = {{"type", "NFC"}};
    write(dir / "tokenizer.json", doc.dump());
    auto status = open_hf_tokenizer(dir).status();
    CHECK(status.code() == StatusCode::kNotSupported);
    CHECK(status.message().find("normalizer 'NFC'") != std::string::npos);

    doc = tiny_tokenizer_json();
    doc["model"]["merges"].push_back("a zz");
    write(dir / "tokenizer.json", doc.dump());
    status = open_hf_tokenizer(dir).status();
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK(status.message().find("model.merges[2]") != std::string::npos);

    doc = tiny_tokenizer_json();
    doc["model"]["byte_fallback"] = true;
    write(dir / "tokenizer.json", doc.dump());
    CHECK(open_hf_tokenizer(dir).status().code() == StatusCode::kNotSupported);

    doc = tiny_tokenizer_json();
    doc["model"].erase("vocab");
    write(dir / "tokenizer.json", doc.dump());
    CHECK(open_hf_tokenizer(dir).status().code() == StatusCode::kInvalidArgument);

    write(dir / "tokenizer.json", tiny_tokenizer_json().dump());
    write(dir / "tokenizer_config.json", R"({"eos_token": "<|missing|>"})");
    status = open_hf_tokenizer(dir).status();
    CHECK(status.message() == "tokenizer_config.json: eos_token '<|missing|>' is not an added token");
}

}  // namespace
}  // namespace sluice::inference
