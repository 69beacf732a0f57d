// `sluice model init-tiny` and `sluice generate` through the real binary.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "child_process.h"

namespace {

using sluice::testing::ChildProcess;
using namespace std::chrono_literals;

// Runs the binary to completion; returns its exit code and stdout (the last line).
struct Run {
    int code = -1;
    std::string last_line;
    std::string errors;
};

Run run_sluice(const std::vector<std::string>& args, const std::filesystem::path& stdout_file) {
    std::vector<std::string> argv = {"/bin/sh", "-c", ""};
    std::string command = std::string("'") + SLUICE_BINARY + "'";
    for (const auto& arg : args) {
        command += " '" + arg + "'";
    }
    argv[2] = command + " > '" + stdout_file.string() + "'";
    ChildProcess process(argv);
    Run run;
    auto code = process.wait(120s);
    REQUIRE(code.has_value());
    run.code = *code;
    run.errors = process.output();
    std::ifstream in(stdout_file);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) {
            run.last_line = line;
        }
    }
    return run;
}

}  // namespace

TEST_CASE("init-tiny writes a checkpoint with its tokenizer and generate runs it") {
    auto dir = std::filesystem::temp_directory_path() /
               ("sluice-model-" + std::to_string(std::random_device{}()));
    auto out = dir / "stdout.txt";
    std::filesystem::create_directories(dir);
    auto model = dir / "tiny";

    Run init = run_sluice({"model", "init-tiny", "--out", model.string(), "--seed", "7"}, out);
    REQUIRE_MESSAGE(init.code == 0, init.errors);
    for (const char* file : {"config.json", "model.safetensors", "tokenizer.json",
                             "tokenizer_config.json"}) {
        CHECK(std::filesystem::exists(model / file));
    }

    Run text = run_sluice({"generate", "--model", model.string(), "--prompt", "Hello there",
                           "--max-tokens", "12", "--json"},
                          out);
    REQUIRE_MESSAGE(text.code == 0, text.errors);
    auto result = nlohmann::json::parse(text.last_line);
    CHECK(result["usage"]["prompt_tokens"] == 2);  // "Hello", " there" in cl100k_base
    CHECK(result["ids"].size() == result["usage"]["completion_tokens"].get<std::size_t>());
    CHECK(result["text"].is_string());
    CHECK(result["timings"]["decode_tokens_per_second"].get<double>() > 0);

    // Greedy decoding is deterministic: the same prompt as ids gives the same continuation.
    Run same = run_sluice({"generate", "--model", model.string(), "--prompt-ids", "9906,1070",
                           "--max-tokens", "12", "--json"},
                          out);
    REQUIRE_MESSAGE(same.code == 0, same.errors);
    CHECK(nlohmann::json::parse(same.last_line)["ids"] == result["ids"]);

    // --logit-bias: banning the first greedy token changes the first token; forcing one repeats it.
    const int first = result["ids"][0];
    Run banned = run_sluice({"generate", "--model", model.string(), "--prompt-ids", "9906,1070",
                             "--max-tokens", "2", "--temperature", "0", "--logit-bias",
                             std::to_string(first) + "=-100", "--json"},
                            out);
    REQUIRE_MESSAGE(banned.code == 0, banned.errors);
    CHECK(nlohmann::json::parse(banned.last_line)["ids"][0] != first);
    Run forced = run_sluice({"generate", "--model", model.string(), "--prompt-ids", "9906,1070",
                             "--max-tokens", "3", "--logit-bias", "17=100", "--json"},
                            out);
    REQUIRE_MESSAGE(forced.code == 0, forced.errors);
    CHECK(nlohmann::json::parse(forced.last_line)["ids"] == nlohmann::json({17, 17, 17}));
    Run bias_typo = run_sluice({"generate", "--model", model.string(), "--prompt-ids", "1",
                                "--logit-bias", "17:100"},
                               out);
    CHECK(bias_typo.code == 2);
    CHECK(bias_typo.errors.find("expected ID=BIAS") != std::string::npos);
    Run bias_range = run_sluice({"generate", "--model", model.string(), "--prompt-ids", "1",
                                 "--logit-bias", "17=250"},
                                out);
    CHECK(bias_range.code == 1);
    CHECK(bias_range.errors.find("[-100, 100]") != std::string::npos);

    Run chat = run_sluice({"generate", "--model", model.string(), "--prompt", "Hi", "--chat",
                           "--max-tokens", "4", "--json"},
                          out);
    REQUIRE_MESSAGE(chat.code == 0, chat.errors);
    // The chat template adds the system and turn markers around the user's text.
    CHECK(nlohmann::json::parse(chat.last_line)["usage"]["prompt_tokens"].get<int>() > 10);

    Run bad = run_sluice({"generate", "--model", (dir / "nowhere").string(), "--prompt-ids", "1"},
                         out);
    CHECK(bad.code == 1);
    CHECK(bad.errors.find("sluice generate:") != std::string::npos);
    std::filesystem::remove_all(dir);
}
