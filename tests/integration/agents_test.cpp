// Document QA, traces and agents through the real binary with the tiny model: the answers are
// meaningless, the plumbing (retrieval as the caller, citations, traces, tools, grants, the
// OpenAI face of agents) is not.

#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "doctest/doctest.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ok_json;
using sluice::testing::ServerProcess;
using sluice::testing::tiny_model_dir;

const std::string kUc = "/api/2.1/unity-catalog";

httplib::Result send(const ServerProcess& server, const std::string& token,
                     const std::string& method, const std::string& path, const json& body) {
    return server.send(token, method, path, body);
}

}  // namespace

TEST_CASE("document QA, traces and a catalog agent over HTTP with the tiny model") {
    ServerProcess server("agents", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string admin = server.admin_token;

    ok_json(send(server, admin, "POST", "/api/2.0/vector-search/indexes",
                 {{"name", "docs"}, {"embedding_dimension", 64}}));
    json rows = json::array(
        {{{"id", "holidays"}, {"title", "Holiday policy"}, {"uri", "file:///holidays.md"},
          {"text", "Employees receive twenty five days of paid holiday per year."},
          {"acl", {{"principals", {"admin"}}}}},
         {{"id", "secret"}, {"title", "Board minutes"}, {"uri", "file:///board.md"},
          {"text", "The holiday budget for the board is confidential."},
          {"acl", {{"principals", {"board-member"}}}}}});
    ok_json(send(server, admin, "POST", "/api/2.0/vector-search/indexes/docs/upsert-data",
                 {{"inputs_json", rows.dump()}}));

    // Non-streamed: an answer with citations the caller may read, and its trace.
    json answer = ok_json(send(server, admin, "POST", "/api/qa",
                               {{"question", "How many holiday days?"},
                                {"index", "docs"},
                                {"options", {{"max_tokens", 8}}}}));
    CHECK(answer["answer"].is_string());
    CHECK(answer["refused"] == false);
    REQUIRE(answer["citations"].size() == 1);
    CHECK(answer["citations"][0]["uri"] == "file:///holidays.md");
    CHECK(answer["citations"][0]["char_end"] == 60);
    CHECK(answer["usage"]["completion_tokens"].get<int>() <= 8);
    std::string trace_id = answer["trace_id"];
    json trace = ok_json(send(server, admin, "GET", "/api/traces/" + trace_id, json()));
    CHECK(trace["principal"] == "admin");
    CHECK(trace["spans"].size() == 4);
    json otlp = ok_json(send(server, admin, "GET", "/api/traces/" + trace_id + "/otlp", json()));
    CHECK(otlp["resourceSpans"][0]["scopeSpans"][0]["spans"].size() == 4);

    // Streamed: tokens, then the final event with the trace id.
    auto streamed = send(server, admin, "POST", "/api/qa",
                         {{"question", "holiday days"}, {"index", "docs"}, {"stream", true},
                          {"options", {{"max_tokens", 4}}}});
    REQUIRE(streamed);
    CHECK(streamed->status == 200);
    CHECK(streamed->body.find("event: trace") != std::string::npos);
    CHECK(streamed->body.find("event: final") != std::string::npos);

    // Both answers are charged to the caller, as agent "qa" on the model's endpoint.
    json usage =
        ok_json(send(server, admin, "GET", "/api/2.0/sluice/usage?group_by=agent", json()));
    std::int64_t qa_requests = 0;
    for (const json& row : usage["usage"]) {
        if (row.value("agent", "") == "qa") {
            qa_requests += row["requests"].get<std::int64_t>();
            CHECK(row["output_tokens"].get<std::int64_t>() > 0);
        }
    }
    CHECK(qa_requests == 2);

    // Nothing readable: the refusal.
    json refused = ok_json(send(server, admin, "POST", "/api/qa",
                                {{"question", "zebra quantum xylophone"}, {"index", "docs"}}));
    CHECK(refused["refused"] == true);
    auto missing = send(server, admin, "POST", "/api/qa", {{"index", "docs"}});
    REQUIRE(missing);
    CHECK(missing->status == 400);

    // A catalog agent with a vector_search tool.
    ok_json(send(server, admin, "POST", kUc + "/catalogs", {{"name", "main"}}));
    ok_json(send(server, admin, "POST", kUc + "/schemas",
                 {{"name", "tools"}, {"catalog_name", "main"}}));
    ok_json(send(server, admin, "POST", kUc + "/functions",
                 {{"name", "search"}, {"catalog_name", "main"}, {"schema_name", "tools"}}));
    ok_json(send(server, admin, "POST", kUc + "/agents",
                 {{"name", "helper"}, {"catalog_name", "main"}, {"schema_name", "tools"}}));
    ok_json(send(server, admin, "PUT", "/api/tools/main.tools.search",
                 {{"kind", "vector_search"},
                  {"description", "Search the documents"},
                  {"config", {{"index", "docs"}}}}));
    json agent = ok_json(send(server, admin, "PUT", "/api/agents/main.tools.helper",
                              {{"instructions", "Answer from the documents."},
                               {"tools", {"main.tools.search"}},
                               {"budgets", {{"max_steps", 2}, {"max_tokens", 2000}}}}));
    CHECK(agent["budgets"]["max_steps"] == 2);
    json run = ok_json(send(server, admin, "POST", "/api/agents/main.tools.helper/invoke",
                            {{"input", "How many holiday days?"}}));
    CHECK(run["answer"].is_string());
    CHECK(run["steps"].get<int>() <= 2);
    CHECK(run["trace_id"].get<std::string>().size() == 32);
    json run_trace = ok_json(
        send(server, admin, "GET", "/api/traces/" + run["trace_id"].get<std::string>(), json()));
    CHECK(run_trace["spans"][0]["kind"] == "agent");

    auto events = send(server, admin, "POST", "/api/agents/main.tools.helper/invoke",
                       {{"input", "holidays?"}, {"stream", true}});
    REQUIRE_MESSAGE(events, httplib::to_string(events.error()));
    CHECK(events->body.find("event: step") != std::string::npos);
    CHECK(events->body.find("event: final") != std::string::npos);

    json chat = ok_json(send(server, admin, "POST", "/v1/chat/completions",
                             {{"model", "agents/main.tools.helper"},
                              {"messages", {{{"role", "user"}, {"content", "holidays?"}}}}}));
    CHECK(chat["object"] == "chat.completion");
    CHECK(chat["model"] == "agents/main.tools.helper");
    CHECK(chat["trace_id"].get<std::string>().size() == 32);

    // A user without EXECUTE on the agent is refused; without a trace of their own, the
    // admin's traces do not exist for them.
    ok_json(send(server, admin, "POST", "/api/2.0/sluice/principals", {{"name", "stranger"}}));
    std::string stranger = ok_json(send(server, admin, "POST", "/api/2.0/token/create",
                                        {{"principal", "stranger"}}))["token_value"];
    auto denied = send(server, stranger, "POST", "/api/agents/main.tools.helper/invoke",
                       {{"input", "hi"}});
    REQUIRE(denied);
    CHECK(denied->status == 403);
    auto hidden = send(server, stranger, "GET", "/api/traces/" + trace_id, json());
    REQUIRE(hidden);
    CHECK(hidden->status == 404);
    // Trace reads are on record, the refused one too.
    {
        auto trail = send(server, admin, "GET", "/api/2.0/sluice/audit?limit=100000", json());
        REQUIRE(trail);
        REQUIRE(trail->status == 200);
        std::vector<std::string> reads;
        std::istringstream lines(trail->body);
        for (std::string line; std::getline(lines, line);) {
            json record = json::parse(line);
            if (record["action"] == "trace.read" && record["securable"] == "trace:" + trace_id) {
                reads.push_back(record["principal"].get<std::string>() + " " +
                                record["result"].get<std::string>());
            }
        }
        CHECK(std::find(reads.begin(), reads.end(), "admin ok") != reads.end());
        CHECK(std::find(reads.begin(), reads.end(), "stranger error") != reads.end());
    }
    auto definition = send(server, stranger, "PUT", "/api/agents/main.tools.helper",
                           {{"instructions", "x"}});
    REQUIRE(definition);
    CHECK(definition->status == 403);
    // The stranger may not read the index at all (no SELECT on vector_search.default.docs).
    auto theirs = send(server, stranger, "POST", "/api/qa",
                       {{"question", "holiday days"}, {"index", "docs"}});
    REQUIRE(theirs);
    CHECK(theirs->status == 403);
    // With SELECT, the stranger's QA sees no document (the access lists name only admin).
    httplib::Client c("127.0.0.1", server.port);
    auto granted = c.Patch(kUc + "/permissions/catalog/vector_search",
                           {{"Authorization", "Bearer " + admin}},
                           json{{"changes",
                                 {{{"principal", "stranger"},
                                   {"add", {"USE_CATALOG", "USE_SCHEMA", "SELECT"}}}}}}
                               .dump(),
                           "application/json");
    REQUIRE(granted);
    REQUIRE(granted->status == 200);
    json refused_theirs = ok_json(send(server, stranger, "POST", "/api/qa",
                                       {{"question", "holiday days"}, {"index", "docs"}}));
    CHECK(refused_theirs["refused"] == true);
}

TEST_CASE("document QA's model reads the retrieved passages under the input policy") {
    ServerProcess server("qa-guardrails", tiny_model_dir());
    server.wait_model_ready(true);
    const std::string admin = server.admin_token;
    const std::string model =
        ok_json(send(server, admin, "GET", "/v1/models", json()))["data"][0]["id"];
    ok_json(send(server, admin, "POST", "/api/2.0/vector-search/indexes",
                 {{"name", "docs"}, {"embedding_dimension", 64}}));
    json rows = json::array(
        {{{"id", "support"},
          {"title", "Support desk"},
          {"uri", "file:///support.md"},
          {"text", "The support desk answers mail sent to jane.doe@example.com within a day."},
          {"acl", {{"principals", {"admin"}}}}}});
    ok_json(send(server, admin, "POST", "/api/2.0/vector-search/indexes/docs/upsert-data",
                 {{"inputs_json", rows.dump()}}));
    auto guard_input = [&](const std::string& behavior) {
        ok_json(send(server, admin, "PUT", "/api/2.0/serving-endpoints/" + model + "/ai-gateway",
                     {{"guardrails", {{"input", {{"pii", {{"behavior", behavior}}}}}}}}));
    };
    const json ask = {{"question", "How fast does the support desk answer mail?"},
                      {"index", "docs"},
                      {"options", {{"max_tokens", 4}}}};

    // The question holds nothing personal; the passage does: not the caller's input (403).
    guard_input("BLOCK");
    auto blocked = send(server, admin, "POST", "/api/qa", ask);
    REQUIRE(blocked);
    CHECK(blocked->status == 403);
    CHECK(blocked->body.find("retrieved passages") != std::string::npos);
    CHECK(blocked->body.find("jane.doe") == std::string::npos);
    json streamed = ask;
    streamed["stream"] = true;
    auto blocked_stream = send(server, admin, "POST", "/api/qa", streamed);
    REQUIRE(blocked_stream);
    CHECK(blocked_stream->body.find("event: error") != std::string::npos);
    CHECK(blocked_stream->body.find("retrieved passages") != std::string::npos);
    CHECK(blocked_stream->body.find("event: tokens") == std::string::npos);

    // Masked, the model reads the label and the answer is given; the citation keeps the text
    // the caller may read.
    guard_input("MASK");
    json answer = ok_json(send(server, admin, "POST", "/api/qa", ask));
    REQUIRE(answer["citations"].size() == 1);
    CHECK(answer["usage"]["prompt_tokens"].get<int>() > 0);
}

TEST_CASE("sluice ask answers from the data directory as the given reader") {
    using namespace std::chrono_literals;
    auto dir = sluice::testing::fresh_test_dir("ask");
    {
        sluice::testing::ChildProcess serve({SLUICE_BINARY, "serve", "--port", "0", "--data-dir",
                                             dir.string()},
                                            {{"SLUICE_LOG_ACCESS_LOG", "false"}});
        auto listening = serve.wait_for_line("\"listening\"", 20s);
        REQUIRE_MESSAGE(listening.has_value(), serve.output());
        std::string address = json::parse(*listening).at("address");
        std::string output = serve.output();
        std::string token = output.substr(output.find("admin token: ") + 13, 76);
        httplib::Client c("127.0.0.1", std::stoi(address.substr(address.rfind(':') + 1)));
        httplib::Headers headers = {{"Authorization", "Bearer " + token}};
        auto created = c.Post("/api/2.0/vector-search/indexes", headers,
                              json{{"name", "docs"}, {"embedding_dimension", 64}}.dump(),
                              "application/json");
        REQUIRE(created);
        REQUIRE(created->status == 200);
        json rows = json::array({{{"id", "holidays"}, {"title", "Holiday policy"},
                                  {"uri", "file:///holidays.md"},
                                  {"text", "Employees receive twenty five days of paid holiday."},
                                  {"acl", {{"groups", {"staff"}}}}}});
        auto upserted = c.Post("/api/2.0/vector-search/indexes/docs/upsert-data", headers,
                               json{{"inputs_json", rows.dump()}}.dump(), "application/json");
        REQUIRE(upserted);
        REQUIRE(upserted->status == 200);
        // An index whose vectors come with its rows: `sluice search`, which sends text only,
        // queries it lexically unless told otherwise.
        auto vectors = c.Post(
            "/api/2.0/vector-search/indexes", headers,
            json{{"name", "vectors"}, {"embedder", "none"}, {"embedding_dimension", 3}}.dump(),
            "application/json");
        REQUIRE(vectors);
        REQUIRE(vectors->status == 200);
        json vector_rows = json::array({{{"id", "v1"},
                                         {"text", "holiday calendar"},
                                         {"vector", {1, 0, 0}},
                                         {"acl", {{"groups", {"staff"}}}}}});
        auto vectors_upserted =
            c.Post("/api/2.0/vector-search/indexes/vectors/upsert-data", headers,
                   json{{"inputs_json", vector_rows.dump()}}.dump(), "application/json");
        REQUIRE(vectors_upserted);
        REQUIRE(vectors_upserted->status == 200);
        // A reader with SELECT on the index (and a stranger without) for the commands below.
        for (const char* user : {"visitor", "outsider"}) {
            auto made = c.Post("/api/2.0/sluice/principals", headers,
                               json{{"name", user}}.dump(), "application/json");
            REQUIRE(made);
            REQUIRE(made->status == 200);
        }
        auto granted = c.Patch(
            "/api/2.1/unity-catalog/permissions/catalog/vector_search", headers,
            json{{"changes",
                  {{{"principal", "visitor"}, {"add", {"USE_CATALOG", "USE_SCHEMA", "SELECT"}}}}}}
                .dump(),
            "application/json");
        REQUIRE(granted);
        REQUIRE(granted->status == 200);
        serve.signal(SIGTERM);
        REQUIRE(serve.wait(20s) == 0);
    }
    auto [code, out] = sluice::testing::run_sluice(
        {"ask", "--data-dir", dir.string(), "--model", tiny_model_dir(), "--index", "docs",
         "--group", "staff", "--max-tokens", "4", "--json", "holiday days"});
    REQUIRE(code == 0);
    json answer = json::parse(out);
    REQUIRE(answer["citations"].size() == 1);
    CHECK(answer["citations"][0]["uri"] == "file:///holidays.md");
    CHECK(answer["trace_id"].get<std::string>().size() == 32);
    auto [outsider_code, outsider] = sluice::testing::run_sluice(
        {"ask", "--data-dir", dir.string(), "--model", tiny_model_dir(), "--index", "docs",
         "--principal", "visitor", "--json", "holiday days"});
    REQUIRE(outsider_code == 0);
    CHECK(json::parse(outsider)["refused"] == true);

    // `sluice search` opens the same index the same way, as the same kind of reader.
    auto [search_code, found] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "docs", "--group", "staff", "--json",
         "--query", "holiday days"});
    REQUIRE(search_code == 0);
    json hits = json::parse(found);
    REQUIRE(hits["result"]["data_array"].size() == 1);
    CHECK(hits["manifest"]["column_count"] == 9);  // where the hit is, its text, its score
    auto [columns_code, chosen] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "docs", "--group", "staff", "--json",
         "--columns", "score,uri", "--fusion", "rrf", "--query", "holiday days"});
    REQUIRE(columns_code == 0);
    json chosen_hits = json::parse(chosen);
    CHECK(chosen_hits["manifest"]["columns"] ==
          json::array({{{"name", "score"}}, {{"name", "uri"}}}));
    REQUIRE(chosen_hits["result"]["data_array"].size() == 1);
    CHECK(chosen_hits["result"]["data_array"][0][1] == "file:///holidays.md");
    auto [hidden_code, hidden] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "docs", "--principal", "visitor",
         "--json", "--query", "holiday days"});
    REQUIRE(hidden_code == 0);
    CHECK(json::parse(hidden)["result"]["data_array"].empty());
    auto [lexical_code, lexical] =
        sluice::testing::run_sluice({"search", "--data-dir", dir.string(), "--index", "vectors",
                                     "--group", "staff", "--json", "--query", "holiday"});
    REQUIRE(lexical_code == 0);
    CHECK(json::parse(lexical)["result"]["data_array"].size() == 1);
    auto [hybrid_code, hybrid] =
        sluice::testing::run_sluice({"search", "--data-dir", dir.string(), "--index", "vectors",
                                     "--group", "staff", "--mode", "hybrid", "--query", "holiday"});
    CHECK(hybrid_code != 0);  // asked for explicitly: no vector to rank by
    auto [missing_code, missing] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "nope", "--query", "x"});
    CHECK(missing_code != 0);
    // Without SELECT on the index (visitor's grant above is all that tells them apart), the
    // commands refuse; so they do for a principal the catalog does not know.
    auto [denied_code, denied] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "docs", "--principal", "outsider",
         "--query", "holiday days"});
    CHECK(denied_code != 0);
    auto [refused_code, refused] = sluice::testing::run_sluice(
        {"ask", "--data-dir", dir.string(), "--model", tiny_model_dir(), "--index", "docs",
         "--principal", "outsider", "holiday days"});
    CHECK(refused_code != 0);
    auto [unknown_code, unknown] = sluice::testing::run_sluice(
        {"search", "--data-dir", dir.string(), "--index", "docs", "--principal", "nobody",
         "--query", "holiday days"});
    CHECK(unknown_code != 0);
    std::filesystem::remove_all(dir);
}
