// Catalog agents: definitions round-trip; invoke checks EXECUTE, runs tools as the caller or as
// the configured service principal (audited), and stores the trace.

#include "agents/agent_runtime.h"

#include "agents/scripted_chat_model.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {

using nlohmann::json;
using governance::Privilege;
using governance::SecurableType;

TEST_CASE("definitions parse with clear errors and round-trip through catalog.db") {
    CHECK(agent_from_json(json{{"name", "a.b"}}).status().message() ==
          "name 'a.b': expected catalog.schema.name");
    CHECK(agent_from_json(json{{"name", "a.b.c"}, {"planner", "x"}}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(tool_from_json(json{{"name", "a.b.c"}, {"kind", "sql_query"}}).status().message() ==
          "config.schema: required string for a sql_query tool");
    CHECK(connection_from_json(json{{"name", "c"}}).status().message() ==
          "allowed_hosts: expected a non-empty array of host[:port]");
    // A misspelt member is refused: "tool" for "tools" stored an agent without its tools.
    CHECK(agent_from_json(json{{"name", "a.b.c"}, {"tool", {"a.b.search"}}}).status().message() ==
          "agent: unknown field 'tool' (expected name, endpoint, instructions, tools, budgets, "
          "planner, run_as)");
    CHECK(tool_from_json(json{{"name", "a.b.c"},
                              {"kind", "vector_search"},
                              {"config", {{"index", "docs"}}},
                              {"descripton", "x"}})
              .status()
              .message() ==
          "tool: unknown field 'descripton' (expected name, kind, description, config)");
    CHECK(connection_from_json(json{{"name", "c"}, {"allowed_hosts", {"h"}}, {"timeout", 5}})
              .status()
              .message()
              .starts_with("connection: unknown field 'timeout' (expected name"));
    // What GET shows in place of the secret may come back with a definition.
    CHECK(connection_from_json(json{{"name", "c"}, {"allowed_hosts", {"h"}}, {"has_secret", true}})
              .ok());
    // 2^32 + 1 is out of range, not a timeout of 1 ms.
    CHECK(connection_from_json(
              json{{"name", "c"}, {"allowed_hosts", {"h"}}, {"timeout_ms", 4294967297LL}})
              .status()
              .message() == "timeout_ms: expected an integer in 1..600000");
    testing::TempDir dir("store");
    auto secrets = governance::SecretBox::from_key(std::string(32, 'k'));
    REQUIRE(secrets.ok());
    auto store = AgentStore::open(dir.path / "catalog.db", **secrets);
    REQUIRE(store.ok());
    auto spec = agent_from_json(json::parse(
        R"({"name": "main.tools.helper", "instructions": "Be brief.", "tools": ["main.tools.sql_query"], "budgets": {"max_steps": 3}})"));
    REQUIRE(spec.ok());
    REQUIRE((*store)->put_agent(*spec).ok());
    auto back = (*store)->agent("main.tools.helper");
    REQUIRE(back.ok());
    CHECK(back->budgets.max_steps == 3);
    CHECK(back->tools == std::vector<std::string>{"main.tools.sql_query"});
    auto connection = connection_from_json(
        json{{"name", "crm"}, {"allowed_hosts", {"crm.local"}}, {"secret", "s"}});
    REQUIRE(connection.ok());
    REQUIRE((*store)->put_connection(*connection).ok());
    CHECK((*store)->connection("crm")->secret == "s");
    CHECK(connection_to_json(*connection, false).dump().find("\"s\"") == std::string::npos);
    CHECK((*store)->remove("agent", "main.tools.nope").code() == StatusCode::kNotFound);
}

TEST_CASE("invoke: EXECUTE on the agent, tools as the caller or as the service principal") {
    testing::World world;
    std::filesystem::path db;
    if (!world.govern_chinook(&db)) {
        return;
    }
    auto store = AgentStore::open(world.dir.path / "catalog.db", world.gov->secrets());
    auto traces = TraceStore::open(world.dir.path / "catalog.db");
    REQUIRE(store.ok());
    REQUIRE(traces.ok());
    world.function("main.tools.sql_query");
    REQUIRE((*store)
                ->put_tool(*tool_from_json(json{{"name", "main.tools.sql_query"},
                                                {"kind", "sql_query"},
                                                {"config",
                                                 {{"schema", "music.store"},
                                                  {"database", db.string()}}}}))
                .ok());
    REQUIRE(world.gov->store()
                .create_securable(SecurableType::kAgent, "main.tools.helper", world.owner.id, "", {})
                .ok());
    AgentSpec spec;
    spec.name = "main.tools.helper";
    spec.tools = {"main.tools.sql_query"};
    REQUIRE((*store)->put_agent(spec).ok());
    const char* script_text = R"([
        {"tool_calls": [{"name": "sql_query", "arguments": {"query": "SELECT COUNT(*) FROM Customer"}}]},
        {"content": "done"}])";
    auto resolver = [&](const std::string&) -> Result<std::shared_ptr<ChatModel>> {
        auto model = ScriptedChatModel::make(json::parse(script_text));
        if (!model.ok()) {
            return model.status();
        }
        return std::shared_ptr<ChatModel>(std::move(*model));
    };
    AgentRuntime runtime(*world.gov, **store, **traces, nullptr, resolver);
    std::vector<inference::ChatMessage> ask = {{"user", "How many customers?", {}, {}}};

    // Bob may not execute the agent.
    auto denied = runtime.invoke(world.as(world.bob), "main.tools.helper", ask, {});
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);

    // Bob may execute the agent and the tool, but reads no table: the tool fails as bob.
    world.grant(SecurableType::kAgent, "main.tools.helper", "bob", Privilege::kExecute);
    world.grant(SecurableType::kFunction, "main.tools.sql_query", "bob", Privilege::kExecute);
    std::vector<AgentEvent> events;
    auto as_bob = runtime.invoke(world.as(world.bob), "main.tools.helper", ask,
                                 [&](const AgentEvent& e) { events.push_back(e); });
    REQUIRE(as_bob.ok());
    json result;
    for (const auto& e : events) {
        if (e.type == "tool_result") {
            result = e.data;
        }
    }
    CHECK(result["ok"] == false);
    CHECK(result["error"].get<std::string>().find("SELECT") != std::string::npos);
    CHECK(events.back().type == "final");
    CHECK(events.back().data["trace_id"] == as_bob->trace_id);
    auto trace = (*traces)->get(as_bob->trace_id);
    REQUIRE(trace.ok());
    CHECK(trace->principal == "bob");
    CHECK(trace->spans.size() >= 3);

    // Run as the service principal, which may read Customer: the switch is audited.
    world.grant(SecurableType::kCatalog, "music", "svc", Privilege::kUseCatalog);
    world.grant(SecurableType::kSchema, "music.store", "svc", Privilege::kUseSchema);
    world.grant(SecurableType::kTable, "music.store.customers", "svc", Privilege::kSelect);
    world.grant(SecurableType::kCatalog, "main", "svc", Privilege::kUseCatalog);
    world.grant(SecurableType::kSchema, "main.tools", "svc", Privilege::kUseSchema);
    world.grant(SecurableType::kFunction, "main.tools.sql_query", "svc", Privilege::kExecute);
    spec.run_as = "svc";
    REQUIRE((*store)->put_agent(spec).ok());
    events.clear();
    auto as_svc = runtime.invoke(world.as(world.bob), "main.tools.helper", ask,
                                 [&](const AgentEvent& e) { events.push_back(e); });
    REQUIRE(as_svc.ok());
    for (const auto& e : events) {
        if (e.type == "tool_result") {
            CHECK(e.data["ok"] == true);
            CHECK(e.data["result"]["rows"][0][0] == 21);
        }
    }
    // The switch to the service principal is on the audit log, naming the caller.
    {
        sqlite3* catalog = nullptr;
        REQUIRE(sqlite3_open_v2((world.dir.path / "catalog.db").c_str(), &catalog,
                                SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
        sqlite3_stmt* stmt = nullptr;
        REQUIRE(sqlite3_prepare_v2(catalog,
                                   "SELECT principal, securable, details FROM audit_log "
                                   "WHERE action = 'agent.run_as'",
                                   -1, &stmt, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
        CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "bob");
        CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1))) ==
              "agent:main.tools.helper");
        CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 2)))
                  .find("svc") != std::string::npos);
        sqlite3_finalize(stmt);
        sqlite3_close(catalog);
    }
    spec.run_as = "alice";  // a user, not a service principal
    REQUIRE((*store)->put_agent(spec).ok());
    CHECK(runtime.invoke(world.as(world.bob), "main.tools.helper", ask, {}).status().code() ==
          StatusCode::kFailedPrecondition);
}

}  // namespace sluice::agents
