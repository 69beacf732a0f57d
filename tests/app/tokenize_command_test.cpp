#include "app/tokenize_command.h"

#include <sstream>

#include <doctest/doctest.h>

#include "inference/tokenizer_files.h"

namespace sluice::app {
namespace {

const inference::Tokenizer& tokenizer() {
    static const auto opened = inference::open_dbrx_tiktoken(
        std::filesystem::path(SLUICE_SOURCE_DIR) / "inference/assets/cl100k_base.tiktoken");
    REQUIRE(opened.ok());
    return **opened;
}

struct Outcome {
    int rc;
    std::string out;
    std::string err;
};

Outcome tokenize(const std::string& input, TokenizeOptions options = {}) {
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    int rc = run_tokenize(tokenizer(), options, in, out, err);
    return {rc, out.str(), err.str()};
}

Outcome detokenize(const std::string& input) {
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    int rc = run_detokenize(tokenizer(), in, out, err);
    return {rc, out.str(), err.str()};
}

TEST_CASE("tokenize writes ids, counts, and honours the special mode") {
    auto plain = tokenize("{\"text\": \"hello world\"}\n\n{\"text\": \"<|im_end|>\"}\n");
    CHECK(plain.rc == 0);
    CHECK(plain.out == "{\"ids\":[15339,1917]}\n{\"ids\":[27,91,318,6345,91,29]}\n");
    auto allowed = tokenize("{\"text\": \"<|im_end|>\"}\n",
                            {.mode = inference::SpecialTokenMode::kAllowed});
    CHECK(allowed.out == "{\"ids\":[100279]}\n");
    CHECK(tokenize("{\"text\": \"hello world\"}\n", {.count = true}).out == "{\"count\":2}\n");
}

TEST_CASE("detokenize writes text and repairs split characters") {
    auto ok = detokenize("{\"ids\": [15339, 1917]}\n");
    CHECK(ok.rc == 0);
    CHECK(ok.out == "{\"text\":\"hello world\"}\n");
}

TEST_CASE("bad lines stop with the line number and a non-zero exit code") {
    auto not_json = tokenize("{\"text\": \"a\"}\nnope\n");
    CHECK(not_json.rc == 1);
    CHECK(not_json.out == "{\"ids\":[64]}\n");
    CHECK(not_json.err.starts_with("line 2: not JSON"));
    CHECK(tokenize("{\"txt\": \"a\"}\n").err == "line 1: expected an object with a string \"text\"\n");
    auto bad_id = detokenize("{\"ids\": [1]}\n\n{\"ids\": [5, 100300]}\n");
    CHECK(bad_id.rc == 1);
    CHECK(bad_id.err ==
          "line 3: token id 100300 at position 1 is not assigned to any token (vocabulary padding "
          "or a gap)\n");
    CHECK(detokenize("{\"ids\": [1.5]}\n").err == "line 1: ids[0] is 1.5, expected a token id\n");
    CHECK(detokenize("{\"ids\": [99999999999]}\n").rc == 1);
}

TEST_CASE("the default tokenizer path honours SLUICE_TOKENIZER") {
    setenv("SLUICE_TOKENIZER", "/some/where.tiktoken", 1);
    CHECK(default_tokenizer_path().value() == "/some/where.tiktoken");
    unsetenv("SLUICE_TOKENIZER");
    CHECK(open_cli_tokenizer("/does/not/exist").status().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace sluice::app
