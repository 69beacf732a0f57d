// Evaluation targets: an agent's answer carries the passages its search tools returned (read from
// its trace), so the context judges and retrieval metrics work for agents as they do for QA.

#include "agents/agent_store.h"
#include "agents/evaluation/targets.h"
#include "agents/scripted_chat_model.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"
#include "retrieval/index_manager.h"

namespace sluice::agents::evaluation {
namespace {

using governance::Privilege;
using governance::SecurableType;
using nlohmann::json;

retrieval::Document doc(const std::string& key, const std::string& text,
                        std::vector<std::string> readers) {
    retrieval::Document d;
    d.key = key;
    d.uri = "file:///docs/" + key + ".md";
    d.title = key;
    d.text = text;
    d.acl.principals = std::move(readers);
    return d;
}

Span tool_span(json result, std::string error = "") {
    Span span;
    span.kind = SpanKind::kTool;
    span.name = "search";
    span.outputs = {{"result", std::move(result)}};
    span.error = std::move(error);
    return span;
}

}  // namespace

TEST_CASE("searched_context: the hits of successful tool spans, in call order") {
    TraceRecord trace;
    CHECK_FALSE(searched_context(trace).has_value());

    trace.spans.push_back(tool_span({{"rows", json::array()}}));  // not a search tool
    trace.spans.push_back(tool_span({{"hits", json::array()}}, "index unavailable"));
    CHECK_FALSE(searched_context(trace).has_value());

    trace.spans.push_back(tool_span({{"hits", json::array()}}));  // searched, found nothing
    auto none = searched_context(trace);
    REQUIRE(none.has_value());
    CHECK(none->empty());

    trace.spans.push_back(tool_span(
        {{"hits", {{{"uri", "file:///a"}, {"text", "alpha"}}, {{"uri", 7}, {"text", "bad"}}}}}));
    trace.spans.push_back(tool_span({{"hits", {{{"uri", "file:///b"}, {"text", "beta"}}}}}));
    auto found = searched_context(trace);
    REQUIRE(found.has_value());
    REQUIRE(found->size() == 2);
    CHECK((*found)[0].doc_uri == "file:///a");
    CHECK((*found)[0].content == "alpha");
    CHECK((*found)[1].doc_uri == "file:///b");
}

TEST_CASE("agent_target: the agent's searches, as the caller, are the row's retrieved context") {
    testing::World world;
    auto indexes = retrieval::IndexManager::open(world.dir.path / "indexes", {});
    REQUIRE(indexes.ok());
    retrieval::IndexSettings settings;
    settings.name = "main.tools.docs";
    settings.dimension = 256;
    settings.factory = "Flat";
    auto index = (*indexes)->create(settings);
    REQUIRE(index.ok());
    REQUIRE((*index)
                ->upsert({doc("holidays", "Employees receive twenty five days of paid holiday.",
                              {"alice"}),
                          doc("secret", "The holiday bonus list is confidential.", {"bob"})})
                .ok());

    auto store = AgentStore::open(world.dir.path / "catalog.db", world.gov->secrets());
    auto traces = TraceStore::open(world.dir.path / "catalog.db");
    REQUIRE(store.ok());
    REQUIRE(traces.ok());
    world.function("main.tools.search");
    REQUIRE((*store)
                ->put_tool(*tool_from_json(json{{"name", "main.tools.search"},
                                                {"kind", "vector_search"},
                                                {"config", {{"index", "main.tools.docs"}}}}))
                .ok());
    REQUIRE(world.gov->store()
                .create_securable(SecurableType::kVectorIndex, "main.tools.docs", world.owner.id,
                                  "", {})
                .ok());
    world.grant(SecurableType::kVectorIndex, "main.tools.docs", "alice", Privilege::kSelect);
    REQUIRE(
        world.gov->store()
            .create_securable(SecurableType::kAgent, "main.tools.reader", world.owner.id, "", {})
            .ok());
    world.grant(SecurableType::kAgent, "main.tools.reader", "alice", Privilege::kExecute);
    world.grant(SecurableType::kFunction, "main.tools.search", "alice", Privilege::kExecute);
    AgentSpec reader;
    reader.name = "main.tools.reader";
    reader.tools = {"main.tools.search"};
    REQUIRE((*store)->put_agent(reader).ok());

    auto resolver = [&](const std::string&) -> Result<std::shared_ptr<ChatModel>> {
        // Each run gets its own script: search, then answer.
        auto model = ScriptedChatModel::make(json::parse(R"([
            {"tool_calls": [{"name": "search", "arguments": {"query": "holiday days"}}]},
            {"content": "Twenty five days."}])"));
        if (!model.ok()) {
            return model.status();
        }
        return std::shared_ptr<ChatModel>(std::move(*model));
    };
    AgentRuntime runtime(*world.gov, **store, **traces, indexes->get(), resolver);
    EvalRow row;
    row.request = "How many days of holiday do employees get?";

    Target searching = agent_target(runtime, **traces, "main.tools.reader", world.as(world.alice));
    auto answer = searching(row);
    REQUIRE(answer.ok());
    CHECK(answer->response == "Twenty five days.");
    CHECK(answer->has_context);
    // Only what alice may read: bob's document never reaches her context.
    REQUIRE(answer->retrieved_context.size() == 1);
    CHECK(answer->retrieved_context[0].doc_uri == "file:///docs/holidays.md");
    CHECK(answer->retrieved_context[0].content.find("twenty five days") != std::string::npos);
    CHECK_FALSE(answer->trace_id.empty());
}

TEST_CASE("agent_target: an agent that searched nothing reports no context") {
    testing::World world;
    auto store = AgentStore::open(world.dir.path / "catalog.db", world.gov->secrets());
    auto traces = TraceStore::open(world.dir.path / "catalog.db");
    REQUIRE(store.ok());
    REQUIRE(traces.ok());
    REQUIRE(
        world.gov->store()
            .create_securable(SecurableType::kAgent, "main.tools.talker", world.owner.id, "", {})
            .ok());
    world.grant(SecurableType::kAgent, "main.tools.talker", "alice", Privilege::kExecute);
    AgentSpec talker;
    talker.name = "main.tools.talker";
    REQUIRE((*store)->put_agent(talker).ok());
    auto resolver = [&](const std::string&) -> Result<std::shared_ptr<ChatModel>> {
        auto model = ScriptedChatModel::make(json::parse(R"([{"content": "I cannot say."}])"));
        if (!model.ok()) {
            return model.status();
        }
        return std::shared_ptr<ChatModel>(std::move(*model));
    };
    AgentRuntime runtime(*world.gov, **store, **traces, nullptr, resolver);
    EvalRow row;
    row.request = "Anything?";
    auto answer = agent_target(runtime, **traces, "main.tools.talker", world.as(world.alice))(row);
    REQUIRE(answer.ok());
    CHECK(answer->response == "I cannot say.");
    CHECK_FALSE(answer->has_context);
    CHECK(answer->retrieved_context.empty());
}

}  // namespace sluice::agents::evaluation
