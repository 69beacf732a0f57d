// `sluice eval` end to end in process: import a set, judge its answers with the tiny model,
// compare and report, on a data directory the commands open themselves.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "agents/evaluation/eval_store.h"
#include "app/cli.h"
#include "app/tokenize_command.h"
#include "governance/governance.h"
#include "inference/hf_tokenizer.h"
#include "inference/tiny_model.h"

using namespace sluice::app;
namespace eval = sluice::agents::evaluation;

namespace {

int run(std::vector<std::string> args) {
    args.insert(args.begin(), "sluice");
    std::vector<const char*> argv;
    for (const auto& arg : args) {
        argv.push_back(arg.c_str());
    }
    Cli cli;
    return cli.run(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("sluice eval: import, sets, run with the tiny model, compare, report") {
    auto dir = std::filesystem::temp_directory_path() /
               ("sluice-eval-cli-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto tokenizer = open_cli_tokenizer(std::filesystem::path(SLUICE_SOURCE_DIR) /
                                        "inference/assets/cl100k_base.tiktoken");
    REQUIRE(tokenizer.ok());
    sluice::inference::TinyModelOptions tiny{.preset = sluice::inference::TinyPreset::kTiny};
    tiny.write_tokenizer = [&](const std::string& out) {
        return sluice::inference::write_hf_tokenizer_files(**tokenizer, out);
    };
    REQUIRE(sluice::inference::write_tiny_model((dir / "tiny").string(), tiny).ok());
    const std::string data = (dir / "data").string();
    const std::string model = (dir / "tiny").string();
    std::ofstream(dir / "set.jsonl")
        << "{\"request\": \"Capital of France?\", \"expected_response\": \"Paris\", "
           "\"response\": \"Paris\"}\n{\"request\": \"Say hi\", \"response\": \"hi\"}\n";
    std::ofstream(dir / "bad.jsonl") << "{\"request\": \"a\"}\n{\"request\": 1}\n";

    CHECK(run({"eval", "import", "--data-dir", data, "--set", "main.qa.cli",
               (dir / "set.jsonl").string()}) == 0);
    CHECK(run({"eval", "import", "--data-dir", data, "--set", "main.qa.cli",
               (dir / "bad.jsonl").string()}) == 1);
    CHECK(run({"eval", "import", "--data-dir", data, "--set", "noschema",
               (dir / "set.jsonl").string()}) == 1);
    CHECK(run({"eval", "sets", "--data-dir", data, "--json"}) == 0);
    for (int i = 0; i < 2; ++i) {
        CHECK(run({"eval", "run", "--data-dir", data, "--model", model, "--set", "main.qa.cli",
                   "--judges", "relevance,correctness", "--rationale-chars", "16"}) == 0);
    }
    CHECK(run({"eval", "run", "--data-dir", data, "--model", model, "--set", "main.qa.none"}) ==
          1);
    std::vector<std::string> ids;
    {
        auto store = eval::EvalStore::open(std::filesystem::path(data) /
                                           sluice::governance::kCatalogFile);
        REQUIRE(store.ok());
        auto runs = (*store)->list_runs();
        REQUIRE(runs.ok());
        REQUIRE(runs->size() == 2);
        for (const auto& [summary, body] : *runs) {
            ids.push_back(summary.id);
            CHECK(body["judge_usage"]["calls"] == 3);  // relevance twice, correctness once
            CHECK(body["aggregates"]["relevance"]["n"].get<int>() +
                      body["aggregates"]["relevance"]["errors"].get<int>() ==
                  2);
        }
    }
    CHECK(run({"eval", "compare", "--data-dir", data, ids[0], ids[1]}) == 0);
    const std::string html = (dir / "report.html").string();
    CHECK(run({"eval", "report", "--data-dir", data, ids[0], "--out", html}) == 0);
    std::stringstream text;
    text << std::ifstream(html).rdbuf();
    CHECK(text.str().find("Capital of France?") != std::string::npos);
    CHECK(run({"eval", "report", "--data-dir", data, "run_0000000000000000"}) == 1);
    std::filesystem::remove_all(dir);
}
