// `sluice eval` end to end in process: import a set, judge its answers with the tiny model,
// compare and report, on a data directory the commands open themselves.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "agents/evaluation/eval_store.h"
#include "app/cli.h"
#include "governance/governance.h"
#include "tiny_model_folder.h"

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

TEST_CASE("sluice eval import gives the set its table, owned by an admin") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("sluice-eval-import-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    const std::string data = (dir / "data").string();
    std::ofstream(dir / "set.jsonl") << "{\"request\": \"Say hi\", \"response\": \"hi\"}\n";
    using sluice::governance::SecurableType;
    CHECK(run({"token", "create", "--data-dir", data, "--principal", "ops", "--admin"}) == 0);
    {
        auto gov = sluice::governance::Governance::open(data);
        REQUIRE(gov.ok());
        auto& store = (*gov)->store();
        const auto ops = store.principal("ops")->id;
        REQUIRE(store.create_securable(SecurableType::kCatalog, "main", ops, "", {}).ok());
        REQUIRE(store.create_securable(SecurableType::kSchema, "main.qa", ops, "", {}).ok());
    }
    CHECK(run({"eval", "import", "--data-dir", data, "--set", "main.qa.imported",
               (dir / "set.jsonl").string()}) == 0);
    // Without its schema the set is imported all the same, without a table.
    CHECK(run({"eval", "import", "--data-dir", data, "--set", "main.nowhere.set",
               (dir / "set.jsonl").string()}) == 0);
    auto gov = sluice::governance::Governance::open(data);
    REQUIRE(gov.ok());
    CHECK((*gov)->store().securable(SecurableType::kTable, "main.nowhere.set").status().code() ==
          sluice::StatusCode::kNotFound);
    auto table = (*gov)->store().securable(SecurableType::kTable, "main.qa.imported");
    REQUIRE(table.ok());
    CHECK(table->tags.at("kind") == "eval_set");
    CHECK(table->owner_id == (*gov)->store().principal("ops")->id);
    std::filesystem::remove_all(dir);
}

TEST_CASE("sluice eval: import, sets, run with the tiny model, compare, report") {
    sluice::testing::TinyModelFolder folder("sluice-eval-cli");
    const std::filesystem::path& dir = folder.path;
    const std::string data = (dir / "data").string();
    const std::string model = folder.model_dir();
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
}
