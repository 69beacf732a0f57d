// Evaluation through the real binary with the tiny model: a set imported over REST, document QA
// evaluated over an index with judges on the served engine, and the live-traffic monitor judging
// QA answers and agents served as OpenAI models as they are served.

#include <httplib.h>

#include <chrono>
#include <thread>

#include <nlohmann/json.hpp>

#include "doctest/doctest.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ok_json;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;

httplib::Result send(const ServerProcess& server, const std::string& method,
                     const std::string& path, const json& body = nullptr) {
    return server.send(server.admin_token, method, path, body);
}

}  // namespace

TEST_CASE("evaluation over HTTP with the tiny model: a QA run and the live-traffic monitor") {
    ServerProcess server("eval", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string kUc = "/api/2.1/unity-catalog";
    ok_json(send(server, "POST", kUc + "/catalogs", {{"name", "main"}}));
    ok_json(send(server, "POST", kUc + "/schemas", {{"name", "qa"}, {"catalog_name", "main"}}));
    ok_json(send(server, "POST", "/api/2.0/vector-search/indexes",
                 {{"name", "docs"}, {"embedding_dimension", 64}}));
    json docs = json::array(
        {{{"id", "holidays"}, {"uri", "file:///holidays.md"},
          {"text", "Employees receive twenty five days of paid holiday per year."},
          {"acl", {{"principals", {"admin"}}}}},
         {{"id", "parking"}, {"uri", "file:///parking.md"},
          {"text", "Parking spaces are assigned by the facilities team."},
          {"acl", {{"principals", {"admin"}}}}}});
    ok_json(send(server, "POST", "/api/2.0/vector-search/indexes/docs/upsert-data",
                 {{"inputs_json", docs.dump()}}));

    std::string jsonl =
        R"({"request": "How many holiday days?", "expected_response": "twenty five days", "expected_retrieved_context": [{"doc_uri": "file:///holidays.md"}]})"
        "\n"
        R"({"request": "Who assigns parking spaces?", "expected_response": "the facilities team", "expected_retrieved_context": [{"doc_uri": "file:///parking.md"}]})"
        "\n";
    json set = ok_json(
        send(server, "POST", "/api/eval/sets", {{"name", "main.qa.golden"}, {"jsonl", jsonl}}));
    CHECK(set["version"] == 1);
    json run = ok_json(send(server, "POST", "/api/eval/runs",
                            {{"qa", {{"index", "docs"}, {"options", {{"max_tokens", 8}}}}},
                             {"set", "main.qa.golden"},
                             {"judges", {"relevance", "groundedness"}},
                             {"rationale_max_chars", 16}}));
    CHECK(run["agent"] == "qa:docs");
    REQUIRE(run["rows"].size() == 2);
    for (const auto& row : run["rows"]) {
        CHECK(row["trace_id"].get<std::string>().size() == 32);
        CHECK(row["metrics"]["retrieval_recall"] == 1.0);  // each gold document is retrieved
        CHECK(row["metrics"].contains("token_f1"));
    }
    // Random weights decide nothing, but every judge call came back as a verdict.
    CHECK(run["aggregates"]["relevance"]["n"] == 2);
    CHECK(run["aggregates"]["groundedness"]["n"] == 2);
    CHECK(run["judge_usage"]["calls"] == 4);
    auto report = send(server, "GET", "/api/eval/runs/" + run["id"].get<std::string>() +
                                          "/report.html");
    REQUIRE(report);
    CHECK(report->status == 200);

    // Every QA answer from now on is judged in the background.
    ok_json(send(server, "PUT", "/api/eval/monitor", {{"fraction", 1}, {"judges", {"relevance"}}}));
    json answer = ok_json(send(server, "POST", "/api/qa",
                               {{"question", "How many holiday days?"},
                                {"index", "docs"},
                                {"options", {{"max_tokens", 4}}}}));
    json monitor;
    for (int attempt = 0; attempt < 600; ++attempt) {
        monitor = ok_json(send(server, "GET", "/api/eval/monitor"));
        if (monitor["counts"]["judged"] == 1) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    CHECK(monitor["counts"]["sampled"] == 1);
    REQUIRE(monitor["counts"]["judged"] == 1);
    REQUIRE(monitor["recent"].size() == 1);
    CHECK(monitor["recent"][0]["trace_id"] == answer["trace_id"]);
    CHECK(monitor["recent"][0]["judge"] == "relevance");

    // An agent served as an OpenAI model is live traffic too.
    ok_json(send(server, "POST", kUc + "/agents",
                 {{"name", "helper"}, {"catalog_name", "main"}, {"schema_name", "qa"}}));
    ok_json(send(server, "PUT", "/api/agents/main.qa.helper",
                 {{"instructions", "Answer briefly."},
                  {"budgets", {{"max_steps", 1}, {"max_tokens", 64}}}}));
    json chat =
        ok_json(send(server, "POST", "/v1/chat/completions",
                     {{"model", "agents/main.qa.helper"},
                      {"messages", {{{"role", "user"}, {"content", "Who assigns parking?"}}}}}));
    for (int attempt = 0; attempt < 600; ++attempt) {
        monitor = ok_json(send(server, "GET", "/api/eval/monitor"));
        if (monitor["counts"]["judged"] == 2) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    CHECK(monitor["counts"]["sampled"] == 2);
    REQUIRE(monitor["counts"]["judged"] == 2);
    bool agent_judged = false;
    for (const auto& verdict : monitor["recent"]) {
        agent_judged = agent_judged || verdict["trace_id"] == chat["trace_id"];
    }
    CHECK(agent_judged);
}
