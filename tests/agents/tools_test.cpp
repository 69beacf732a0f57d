// Tools against real stores: sql_query over Chinook with grants, row filters and masks in force;
// http_request against a local server through a connection; EXECUTE checks; argument checks.

#include <httplib.h>

#include <thread>

#include "agents/argument_check.h"
#include "agents/http_tools.h"
#include "agents/sql_tools.h"
#include "agents/retrieval_tool.h"
#include "agents/tool.h"
#include "inference/json_schema_grammar.h"
#include "agents_fixture.h"
#include "doctest/doctest.h"

namespace sluice::agents {
namespace {

using nlohmann::json;
using testing::World;

ToolContext context_for(const World& world, const governance::Principal& p) {
    ToolContext context;
    context.request = world.as(p);
    context.reader = {p.name, {}};
    return context;
}

}  // namespace

TEST_CASE("arguments are checked against the schema with a message naming the place") {
    json schema = {{"type", "object"},
                   {"properties",
                    {{"query", {{"type", "string"}, {"minLength", 1}}},
                     {"k", {{"type", "integer"}, {"minimum", 1}, {"maximum", 20}}},
                     {"mode", {{"enum", {"a", "b"}}}}}},
                   {"required", {"query"}},
                   {"additionalProperties", false}};
    CHECK(check_arguments(schema, {{"query", "x"}, {"k", 3}}).ok());
    CHECK(check_arguments(schema, {{"k", 3}}).message() ==
          "arguments: missing required property 'query'");
    CHECK(check_arguments(schema, {{"query", "x"}, {"k", "3"}}).message() ==
          "arguments.k: expected integer, found string");
    CHECK(check_arguments(schema, {{"query", "x"}, {"k", 30}}).message() ==
          "arguments.k: expected at most 20, found 30");
    CHECK(check_arguments(schema, {{"query", ""}}).code() == StatusCode::kInvalidArgument);
    CHECK(check_arguments(schema, {{"query", "x"}, {"mode", "c"}}).message().find("one of") !=
          std::string::npos);
    CHECK(check_arguments(schema, {{"query", "x"}, {"extra", 1}}).message() ==
          "arguments: unknown property 'extra'");
    CHECK(check_arguments(schema, json::array()).message() ==
          "arguments: expected object, found array");
}

TEST_CASE("sql_query reads governed tables as the caller: filters, masks, grants, limits") {
    World world;
    std::filesystem::path db;
    if (!world.govern_chinook(&db)) {
        return;
    }
    world.function("main.tools.sql_query");
    world.grant(governance::SecurableType::kFunction, "main.tools.sql_query", "alice",
                governance::Privilege::kExecute);
    world.grant(governance::SecurableType::kFunction, "main.tools.sql_query", "bob",
                governance::Privilege::kExecute);
    auto tool = std::make_shared<SqlQueryTool>("main.tools.sql_query", "SQL over the music store",
                                               SqlSource{"music.store", db}, SqlLimits{},
                                               *world.gov);
    auto box = Toolbox::make({tool}, &world.gov->authorizer());
    REQUIRE(box.ok());
    ToolContext alice = context_for(world, world.alice);

    // The row filter keeps USA and Canada: 13 + 8 of Chinook's 59 customers.
    auto countries = box->call(alice, "sql_query",
                               {{"query", "SELECT Country, COUNT(*) FROM Customer GROUP BY "
                                          "Country ORDER BY Country"}});
    REQUIRE(countries.ok());
    CHECK((*countries)["rows"] == json::parse(R"([["Canada", 8], ["USA", 13]])"));

    // The mask replaces every e-mail address; a join with Invoice sees filtered customers only.
    auto emails = box->call(alice, "sql_query",
                            {{"query", "SELECT DISTINCT Email FROM Customer"}});
    REQUIRE(emails.ok());
    CHECK((*emails)["rows"] == json::parse(R"([["***"]])"));
    auto joined = box->call(alice, "sql_query",
                            {{"query", "SELECT COUNT(DISTINCT i.CustomerId) FROM Invoice i JOIN "
                                       "Customer c ON c.CustomerId = i.CustomerId"}});
    REQUIRE(joined.ok());
    CHECK((*joined)["rows"][0][0] == 21);

    // In group `global`, the filter and the mask let everything through.
    REQUIRE(world.gov->store().create_principal("global", governance::PrincipalKind::kGroup, false)
                .ok());
    REQUIRE(world.gov->store().add_member("global", "alice").ok());
    auto all = box->call(alice, "sql_query", {{"query", "SELECT COUNT(*) FROM Customer"}});
    REQUIRE_MESSAGE(all.ok(), all.status().message());
    CHECK((*all)["rows"][0][0] == 59);

    // A governed table without SELECT, an ungoverned table, the schema table, a write.
    auto employee = box->call(alice, "sql_query", {{"query", "SELECT * FROM Employee"}});
    CHECK(employee.status().code() == StatusCode::kPermissionDenied);
    auto artist = box->call(alice, "sql_query", {{"query", "SELECT * FROM Artist"}});
    CHECK(artist.status().code() == StatusCode::kPermissionDenied);
    CHECK(artist.status().message().find("not a governed table") != std::string::npos);
    auto master = box->call(alice, "sql_query", {{"query", "SELECT * FROM src.sqlite_master"}});
    CHECK(master.status().code() == StatusCode::kPermissionDenied);
    // The statement runs where only the governed copies are: its own schema table is empty,
    // and the source cannot be named past the copies.
    auto own_master = box->call(alice, "sql_query", {{"query", "SELECT * FROM sqlite_master"}});
    REQUIRE(own_master.ok());
    CHECK((*own_master)["rows"].empty());
    auto qualified = box->call(alice, "sql_query",
                               {{"query", "SELECT COUNT(*) FROM src.Customer"}});
    CHECK_FALSE(qualified.ok());
    auto drop = box->call(alice, "sql_query", {{"query", "DELETE FROM Customer"}});
    CHECK(drop.status().code() == StatusCode::kInvalidArgument);
    auto two = box->call(alice, "sql_query",
                         {{"query", "SELECT 1 FROM Customer; SELECT 2 FROM Customer"}});
    CHECK(two.status().code() == StatusCode::kInvalidArgument);
    auto attach = box->call(alice, "sql_query", {{"query", "ATTACH 'x.db' AS x"}});
    CHECK(attach.status().code() == StatusCode::kInvalidArgument);
    auto pragma = box->call(alice, "sql_query", {{"query", "PRAGMA table_info(Customer)"}});
    CHECK_FALSE(pragma.ok());

    // Bob holds EXECUTE on the tool but no SELECT on the table: the tool runs with his rights.
    auto as_bob = box->call(context_for(world, world.bob), "sql_query",
                            {{"query", "SELECT COUNT(*) FROM Customer"}});
    CHECK(as_bob.status().code() == StatusCode::kPermissionDenied);

    // Row limit.
    SqlLimits small;
    small.max_rows = 5;
    auto limited = run_governed_sql(*world.gov, alice, {"music.store", db},
                                    "SELECT InvoiceId FROM Invoice", json::object(), small);
    REQUIRE(limited.ok());
    CHECK((*limited)["row_count"] == 5);
    CHECK((*limited)["truncated"] == true);

    // Time limit: a recursive CTE that would count far past the deadline.
    SqlLimits quick;
    quick.timeout_ms = 50;
    auto slow = run_governed_sql(*world.gov, alice, {"music.store", db},
                                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                                 "SELECT COUNT(*) FROM n",
                                 json::object(), quick);
    CHECK_MESSAGE(slow.status().code() == StatusCode::kDeadlineExceeded, slow.status().message());
}

TEST_CASE("a SQL template tool binds named arguments and needs EXECUTE") {
    World world;
    std::filesystem::path db;
    if (!world.govern_chinook(&db)) {
        return;
    }
    world.function("main.tools.invoices_of");
    json schema = {{"type", "object"},
                   {"properties", {{"customer_id", {{"type", "integer"}, {"minimum", 1}}}}},
                   {"required", {"customer_id"}},
                   {"additionalProperties", false}};
    auto bad = SqlTemplateTool::make("main.tools.invoices_of", "", "SELECT :nope", schema,
                                     {"music.store", db}, {}, *world.gov);
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    // A schema of the wrong shape is refused, never thrown out of the JSON library.
    for (const json& wrong : {json{{"type", 5}}, json{{"type", {"object"}}},
                              json{{"type", "object"}, {"properties", {"customer_id"}}}}) {
        auto refused = SqlTemplateTool::make("main.tools.invoices_of", "", "SELECT :customer_id",
                                             wrong, {"music.store", db}, {}, *world.gov);
        CHECK_MESSAGE(refused.status().code() == StatusCode::kInvalidArgument, wrong.dump());
    }
    auto made = SqlTemplateTool::make(
        "main.tools.invoices_of", "Invoices of a customer",
        "SELECT COUNT(*) FROM Invoice WHERE CustomerId = :customer_id", schema,
        {"music.store", db}, {}, *world.gov);
    REQUIRE(made.ok());
    std::shared_ptr<Tool> tool = std::move(*made);
    auto box = Toolbox::make({tool}, &world.gov->authorizer());
    REQUIRE(box.ok());
    ToolContext alice = context_for(world, world.alice);
    auto denied = box->call(alice, "invoices_of", {{"customer_id", 1}});
    CHECK(denied.status().code() == StatusCode::kPermissionDenied);
    world.grant(governance::SecurableType::kFunction, "main.tools.invoices_of", "alice",
                governance::Privilege::kExecute);
    auto count = box->call(alice, "invoices_of", {{"customer_id", 1}});
    REQUIRE(count.ok());
    CHECK((*count)["rows"][0][0] == 7);
    CHECK(box->call(alice, "invoices_of", {{"customer_id", "1; DROP"}}).status().code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("http_request goes through its connection: secret, allowed hosts, limits, rights") {
    httplib::Server server;
    std::string seen_secret;
    server.Get("/status", [&](const httplib::Request& req, httplib::Response& res) {
        seen_secret = req.get_header_value("X-Api-Key");
        res.set_content("{\"ok\": true}", "application/json");
    });
    server.Get("/big", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(100000, 'x'), "text/plain");
    });
    int port = server.bind_to_any_port("127.0.0.1");
    std::thread serving([&] { server.listen_after_bind(); });

    World world;
    REQUIRE(world.gov->store()
                .create_securable(governance::SecurableType::kConnection, "status_api",
                                  world.owner.id, "", {})
                .ok());
    world.function("main.tools.http_request");
    world.grant(governance::SecurableType::kFunction, "main.tools.http_request", "alice",
                governance::Privilege::kExecute);
    world.grant(governance::SecurableType::kFunction, "main.tools.http_request", "bob",
                governance::Privilege::kExecute);
    world.grant(governance::SecurableType::kConnection, "status_api", "alice",
                governance::Privilege::kUseConnection);
    Connection connection{"status_api", {"127.0.0.1:" + std::to_string(port)}, "X-Api-Key",
                          "s3cret", 2000, 1000};
    auto tool = std::make_shared<HttpRequestTool>("main.tools.http_request", "HTTP", connection,
                                                  world.gov->authorizer());
    auto box = Toolbox::make({tool}, &world.gov->authorizer());
    REQUIRE(box.ok());
    std::string base = "http://127.0.0.1:" + std::to_string(port);
    ToolContext alice = context_for(world, world.alice);

    auto ok = box->call(alice, "http_request", {{"method", "GET"}, {"url", base + "/status"}});
    REQUIRE(ok.ok());
    CHECK((*ok)["status"] == 200);
    CHECK((*ok)["body"] == "{\"ok\": true}");
    CHECK(seen_secret == "s3cret");
    CHECK(ok->dump().find("s3cret") == std::string::npos);

    auto big = box->call(alice, "http_request", {{"method", "GET"}, {"url", base + "/big"}});
    REQUIRE(big.ok());
    CHECK((*big)["truncated"] == true);
    CHECK((*big)["body"].get<std::string>().size() == 1000);

    auto elsewhere = box->call(alice, "http_request",
                               {{"method", "GET"}, {"url", "http://evil.example:8080/steal"}});
    CHECK(elsewhere.status().code() == StatusCode::kPermissionDenied);
    CHECK(elsewhere.status().message().find("not allowed") != std::string::npos);
    auto other_port = box->call(alice, "http_request",
                                {{"method", "GET"}, {"url", "http://127.0.0.1:1/x"}});
    CHECK(other_port.status().code() == StatusCode::kPermissionDenied);
    auto ftp = box->call(alice, "http_request", {{"method", "GET"}, {"url", "ftp://127.0.0.1/"}});
    CHECK(ftp.status().code() == StatusCode::kInvalidArgument);

    // Bob may execute the tool but not use the connection.
    auto as_bob = box->call(context_for(world, world.bob), "http_request",
                            {{"method", "GET"}, {"url", base + "/status"}});
    CHECK(as_bob.status().code() == StatusCode::kPermissionDenied);

    HttpEndpointTool endpoint("main.tools.status", "", "GET", base + "/{page}",
                              {{"type", "object"},
                               {"properties", {{"page", {{"type", "string"}}}}},
                               {"required", {"page"}}},
                              connection, world.gov->authorizer());
    auto page = endpoint.invoke(alice, {{"page", "status"}});
    REQUIRE(page.ok());
    CHECK((*page)["status"] == 200);

    server.stop();
    serving.join();
}

TEST_CASE("every built-in tool's schema compiles into the tool-call grammar") {
    World world;
    auto indexes = retrieval::IndexManager::open(world.dir.path / "indexes", {});
    REQUIRE(indexes.ok());
    std::vector<std::shared_ptr<Tool>> tools = {
        std::make_shared<SqlQueryTool>("main.tools.sql_query", "", SqlSource{}, SqlLimits{},
                                       *world.gov),
        std::make_shared<HttpRequestTool>("main.tools.http_request", "", Connection{},
                                          world.gov->authorizer()),
        std::make_shared<VectorSearchTool>("main.tools.search", "", **indexes, "docs",
                                           world.gov->authorizer())};
    std::vector<inference::ToolSpec> specs;
    for (const auto& tool : tools) {
        specs.push_back({tool_call_name(*tool),
                         nlohmann::ordered_json::parse(tool->parameters().dump())});
    }
    auto grammar = inference::tool_call_grammar(specs, inference::ToolChoice{});
    CHECK_MESSAGE(grammar.ok(), grammar.status().message());
}

TEST_CASE("toolbox: unknown tools, duplicate names, EXECUTE denied") {
    World world;
    world.function("main.tools.sql_query");
    auto tool = std::make_shared<SqlQueryTool>("main.tools.sql_query", "", SqlSource{}, SqlLimits{},
                                               *world.gov);
    auto duplicate = Toolbox::make({tool, tool}, &world.gov->authorizer());
    CHECK(duplicate.status().code() == StatusCode::kInvalidArgument);
    auto box = Toolbox::make({tool}, &world.gov->authorizer());
    REQUIRE(box.ok());
    ToolContext bob = context_for(world, world.bob);
    CHECK(box->call(bob, "nope", json::object()).status().code() == StatusCode::kNotFound);
    CHECK(box->call(bob, "sql_query", {{"query", "SELECT 1"}}).status().code() ==
          StatusCode::kPermissionDenied);
    REQUIRE(box->definitions().size() == 1);
    CHECK(box->definitions()[0].name == "sql_query");
}

}  // namespace sluice::agents
