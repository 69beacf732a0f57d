// A definition (agent, tool, connection) goes with its catalog object: whichever way the object
// is deleted, the next object of that name starts without it, so no one who can create one takes
// over what an admin approved (a run_as, a SQL tool's database, a sealed secret).

#include <sqlite3.h>

#include "agents/agent_store.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {

using governance::SecurableType;
using nlohmann::json;

namespace {

void put_all(AgentStore& store) {
    AgentSpec agent;
    agent.name = "main.tools.helper";
    agent.run_as = "svc";
    REQUIRE(store.put_agent(agent).ok());
    auto tool = tool_from_json(json{
        {"name", "main.tools.lookup"}, {"kind", "vector_search"}, {"config", {{"index", "docs"}}}});
    REQUIRE(tool.ok());
    REQUIRE(store.put_tool(*tool).ok());
    auto connection = connection_from_json(
        json{{"name", "crm"}, {"allowed_hosts", {"crm.local"}}, {"secret", "s"}});
    REQUIRE(connection.ok());
    REQUIRE(store.put_connection(*connection).ok());
}

void create_objects(testing::World& world) {
    auto& s = world.gov->store();
    REQUIRE(s.create_securable(SecurableType::kAgent, "main.tools.helper", world.owner.id, "", {})
                .ok());
    world.function("main.tools.lookup");
    REQUIRE(s.create_securable(SecurableType::kConnection, "crm", world.owner.id, "", {}).ok());
}

void check_none(AgentStore& store) {
    CHECK(store.agent("main.tools.helper").status().code() == StatusCode::kNotFound);
    CHECK(store.tool("main.tools.lookup").status().code() == StatusCode::kNotFound);
    CHECK(store.connection("crm").status().code() == StatusCode::kNotFound);
}

}  // namespace

TEST_CASE("a definition is deleted with its catalog object, also by a forced schema delete") {
    testing::World world;
    auto store = AgentStore::open(world.dir.path / "catalog.db", world.gov->secrets());
    REQUIRE(store.ok());
    create_objects(world);
    put_all(**store);
    REQUIRE((*store)->agent("main.tools.helper").ok());

    auto& s = world.gov->store();
    SUBCASE("each object deleted on its own") {
        REQUIRE(s.delete_securable(SecurableType::kAgent, "main.tools.helper", false).ok());
        REQUIRE(s.delete_securable(SecurableType::kFunction, "main.tools.lookup", false).ok());
        REQUIRE(s.delete_securable(SecurableType::kConnection, "crm", false).ok());
    }
    SUBCASE("the schema forced, the connection on its own") {
        REQUIRE(s.delete_securable(SecurableType::kSchema, "main.tools", true).ok());
        REQUIRE(s.delete_securable(SecurableType::kConnection, "crm", false).ok());
        REQUIRE(
            s.create_securable(SecurableType::kSchema, "main.tools", world.bob.id, "", {}).ok());
    }
    check_none(**store);
    // Made again by someone else, the objects have no definitions to inherit.
    create_objects(world);
    check_none(**store);
}

TEST_CASE("definitions orphaned before they followed their objects are removed at open") {
    testing::World world;
    const auto catalog = world.dir.path / "catalog.db";
    {
        auto store = AgentStore::open(catalog, world.gov->secrets());
        REQUIRE(store.ok());
        create_objects(world);
        put_all(**store);
    }
    // A catalog written before the trigger: objects deleted, their definitions left.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(catalog.c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "DROP TRIGGER agent_objects_follow", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
    sqlite3_close(db);
    auto& s = world.gov->store();
    REQUIRE(s.delete_securable(SecurableType::kSchema, "main.tools", true).ok());
    REQUIRE(s.create_securable(SecurableType::kSchema, "main.tools", world.owner.id, "", {}).ok());

    auto store = AgentStore::open(catalog, world.gov->secrets());
    REQUIRE(store.ok());
    REQUIRE(
        s.create_securable(SecurableType::kAgent, "main.tools.helper", world.bob.id, "", {}).ok());
    world.function("main.tools.lookup");
    CHECK((*store)->agent("main.tools.helper").status().code() == StatusCode::kNotFound);
    CHECK((*store)->tool("main.tools.lookup").status().code() == StatusCode::kNotFound);
    // The connection's object was not deleted: its definition stays.
    CHECK((*store)->connection("crm")->secret == "s");
    // And the trigger is back for what is deleted from now on.
    REQUIRE(s.delete_securable(SecurableType::kConnection, "crm", false).ok());
    CHECK((*store)->connection("crm").status().code() == StatusCode::kNotFound);
}

}  // namespace sluice::agents
