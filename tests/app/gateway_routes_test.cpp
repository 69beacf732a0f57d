// The AI-gateway and lineage REST routes over loopback HTTP, in process, with the server's
// authentication wiring (audit records held back and made durable before the response).
#include "app/gateway_routes.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "app/build_info.h"
#include "app/catalog_routes.h"
#include "app/governance_http.h"
#include "app/lineage_routes.h"
#include "app/policy_routes.h"
#include "app/principal_routes.h"
#include "app/source_catalog.h"

using namespace sluice::app;
using namespace sluice::governance;
using nlohmann::json;

namespace {

struct Site {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("sluice-gateway-" + std::to_string(std::random_device{}()));
    std::unique_ptr<Governance> gov;
    Metrics metrics{build_info()};
    std::unique_ptr<HttpServer> server;
    std::jthread thread;
    std::string admin, alice, bob;
    Principal alice_p, bob_p;

    explicit Site(GovernanceOptions options = {}) {
        std::filesystem::create_directories(dir);
        gov = std::move(*Governance::open(dir, options));
        admin = (*gov->bootstrap_admin())->secret;
        Store& s = gov->store();
        alice_p = *s.create_principal("alice", PrincipalKind::kUser, false);
        bob_p = *s.create_principal("bob", PrincipalKind::kUser, false);
        alice = s.create_token(alice_p.id, "", std::nullopt)->secret;
        bob = s.create_token(bob_p.id, "", std::nullopt)->secret;
        server = std::make_unique<HttpServer>(
            HttpServerOptions{.host = "127.0.0.1", .port = 0, .threads = 4, .access_log = false},
            metrics);
        Governance& g = *gov;
        govern_requests(*server, g);
        add_gateway_routes(*server, g);
        add_lineage_routes(*server, g);
        add_catalog_routes(*server, g);
        add_policy_routes(*server, g);
        add_principal_routes(*server, g);
        REQUIRE(server->bind().ok());
        thread = std::jthread([this] { (void)server->serve(); });
    }
    ~Site() {
        server->stop();
        thread.join();
        server.reset();
        gov.reset();
        std::filesystem::remove_all(dir);
    }

    httplib::Result call(const std::string& token, const std::string& method,
                         const std::string& path, const json& body = nullptr) {
        httplib::Client c("127.0.0.1", server->port());
        httplib::Headers h = {{"Authorization", "Bearer " + token}};
        if (method == "GET") {
            return c.Get(path, h);
        }
        if (method == "DELETE") {
            return c.Delete(path, h);
        }
        if (method == "PUT") {
            return c.Put(path, h, body.dump(), "application/json");
        }
        if (method == "PATCH") {
            return c.Patch(path, h, body.dump(), "application/json");
        }
        return c.Post(path, h, body.dump(), "application/json");
    }

    json ok(const httplib::Result& r) {
        REQUIRE(r);
        INFO(r->body);
        REQUIRE(r->status == 200);
        return json::parse(r->body);
    }

    // Audit records matching every (field, value) pair.
    std::int64_t audit_count(const std::vector<std::pair<std::string, std::string>>& where) {
        std::ostringstream out;
        REQUIRE(export_audit_log(dir / "catalog.db", 0, 0, out).ok());
        std::istringstream lines(out.str());
        std::int64_t n = 0;
        for (std::string line; std::getline(lines, line);) {
            json record = json::parse(line);
            bool match = true;
            for (const auto& [field, value] : where) {
                match = match && record[field] == value;
            }
            n += match ? 1 : 0;
        }
        return n;
    }
};

}  // namespace

TEST_CASE("each request's authentication is durable before its response, in one commit") {
    Site site;
    auto r = site.call(site.alice, "GET", "/api/2.0/serving-endpoints/dbrx/ai-gateway");
    REQUIRE(r);
    CHECK(r->status == 200);
    std::string id = r->get_header_value("X-Request-Id");
    CHECK(site.audit_count({{"action", "authenticate"}, {"request_id", id}}) == 1);
    CHECK(site.gov->audit().deferred_count() == 0);
    // With a record of its own, the request's authentication is written with it.
    auto limits = site.call(site.bob, "POST", "/api/2.0/sluice/limits",
                            {{"kind", "tokens/day"}, {"limit", 5}});
    REQUIRE(limits);
    CHECK(limits->status == 403);
    id = limits->get_header_value("X-Request-Id");
    CHECK(site.audit_count({{"request_id", id}}) == 2);
    // A bad token is audited at once and never deferred.
    auto bad = site.call("slc_nope", "GET", "/api/2.0/sluice/limits");
    REQUIRE(bad);
    CHECK(bad->status == 401);
    CHECK(site.audit_count({{"action", "authenticate"}, {"result", "deny"}}) == 1);
}

TEST_CASE("endpoint settings: admins change them, everyone reads them") {
    Site site;
    json body = {{"guardrails",
                  {{"input", {{"pii", {{"behavior", "MASK"}}}}},
                   {"output", {{"pii", {{"behavior", "BLOCK"}}}}},
                   {"pii_types", {"email", "iban"}}}},
                 {"pricing", {{"input_per_million", 1.5}, {"output_per_million", 4}}}};
    auto denied = site.call(site.alice, "PUT", "/api/2.0/serving-endpoints/dbrx/ai-gateway", body);
    REQUIRE(denied);
    CHECK(denied->status == 403);
    json stored = site.ok(site.call(site.admin, "PUT",
                                    "/api/2.0/serving-endpoints/dbrx/ai-gateway", body));
    CHECK(stored["guardrails"]["input"]["pii"]["behavior"] == "MASK");
    CHECK(stored["guardrails"]["pii_types"] == json({"email", "iban"}));
    // A partial update keeps the rest.
    site.ok(site.call(site.admin, "PUT", "/api/2.0/serving-endpoints/dbrx/ai-gateway",
                      {{"pricing", {{"cached_input_per_million", 0.25}}}}));
    json read = site.ok(site.call(site.alice, "GET", "/api/2.0/serving-endpoints/dbrx/ai-gateway"));
    CHECK(read["configured"] == true);
    CHECK(read["guardrails"]["output"]["pii"]["behavior"] == "BLOCK");
    CHECK(read["pricing"]["input_per_million"] == 1.5);
    CHECK(read["pricing"]["cached_input_per_million"] == 0.25);
    auto invalid = site.call(site.admin, "PUT", "/api/2.0/serving-endpoints/dbrx/ai-gateway",
                             {{"guardrails", {{"input", {{"pii", {{"behavior", "REDACT"}}}}}}}});
    REQUIRE(invalid);
    CHECK(invalid->status == 400);
    CHECK(site.ok(site.call(site.bob, "GET", "/api/2.0/serving-endpoints"))["endpoints"].size() ==
          1);
}

TEST_CASE("limits through REST; usage is visible to its principal and to admins") {
    Site site;
    json limit = site.ok(site.call(site.admin, "POST", "/api/2.0/sluice/limits",
                                   {{"principal", "alice"},
                                    {"endpoint", "dbrx"},
                                    {"kind", "tokens/day"},
                                    {"limit", 1000}}));
    CHECK(limit["used"] == 0);
    site.ok(site.call(site.admin, "POST", "/api/2.0/sluice/limits",
                      {{"kind", "requests/min"}, {"limit", 100}}));
    auto bad = site.call(site.admin, "POST", "/api/2.0/sluice/limits",
                         {{"kind", "tokens/week"}, {"limit", 1}});
    REQUIRE(bad);
    CHECK(bad->status == 400);

    RequestContext as_alice{site.alice_p.id, "alice", "req_a", "", ""};
    RequestContext as_bob{site.bob_p.id, "bob", "req_b", "", ""};
    UsageReport report;
    report.tokens = {600, 400, 0};
    auto reservation = site.gov->usage().reserve(as_alice, "dbrx", 900);
    REQUIRE(reservation.ok());
    REQUIRE(site.gov->usage().settle(std::move(*reservation), report).ok());
    REQUIRE(site.gov->usage().record(as_bob, "dbrx", report).ok());
    auto spent = site.gov->usage().reserve(as_alice, "dbrx", 1);
    CHECK(spent.status().code() == sluice::StatusCode::kResourceExhausted);

    // alice sees her limits (hers and everyone's), not bob's usage.
    json mine = site.ok(site.call(site.alice, "GET", "/api/2.0/sluice/limits"));
    CHECK(mine["limits"].size() == 2);
    json alice_usage = site.ok(site.call(site.alice, "GET", "/api/2.0/sluice/usage?group_by=principal"));
    REQUIRE(alice_usage["usage"].size() == 1);
    CHECK(alice_usage["usage"][0]["principal"] == "alice");
    CHECK(alice_usage["usage"][0]["input_tokens"] == 600);
    auto others = site.call(site.alice, "GET", "/api/2.0/sluice/usage?principal=bob");
    REQUIRE(others);
    CHECK(others->status == 403);
    json all = site.ok(site.call(site.admin, "GET",
                                 "/api/2.0/sluice/usage?group_by=principal,endpoint,day&from=2000-01-01"));
    CHECK(all["usage"].size() == 2);
    auto bad_day = site.call(site.admin, "GET", "/api/2.0/sluice/usage?from=yesterday");
    REQUIRE(bad_day);
    CHECK(bad_day->status == 400);

    site.ok(site.call(site.admin, "DELETE",
                      "/api/2.0/sluice/limits/" + std::to_string(limit["id"].get<int>())));
    CHECK(site.gov->usage().reserve(as_alice, "dbrx", 1).ok());
}

TEST_CASE("settings and limits refuse members they do not apply, naming them") {
    Site site;
    const std::string gateway = "/api/2.0/serving-endpoints/dbrx/ai-gateway";
    auto refused = [&](const std::string& method, const std::string& path, const json& body,
                       const std::string& named) {
        auto r = site.call(site.admin, method, path, body);
        REQUIRE(r);
        CHECK_MESSAGE(r->status == 400, body.dump());
        CHECK_MESSAGE(r->body.find("'" + named + "'") != std::string::npos, r->body);
    };
    // Each would have answered 200 and left the endpoint without the guardrail or price asked.
    refused("PUT", gateway, {{"guardrail", {{"input", {{"pii", {{"behavior", "BLOCK"}}}}}}}},
            "guardrail");
    refused("PUT", gateway, {{"guardrails", {{"inputs", {{"pii", {{"behavior", "BLOCK"}}}}}}}},
            "inputs");
    refused("PUT", gateway, {{"guardrails", {{"safety", true}}}}, "safety");
    refused("PUT", gateway,
            {{"guardrails", {{"output", {{"pii", {{"behavior", "MASK"}, {"types", {"email"}}}}}}}}},
            "types");
    refused("PUT", gateway,
            {{"guardrails", {{"output", {{"pii", {{"behavior", "MASK"}}}, {"topics", 1}}}}}},
            "topics");
    refused("PUT", gateway, {{"pricing", {{"input_price", 3}}}}, "input_price");
    // A price whose sums overflow to infinity (written as null) is refused.
    auto huge =
        site.call(site.admin, "PUT", gateway, {{"pricing", {{"input_per_million", 1e308}}}});
    REQUIRE(huge);
    CHECK(huge->status == 400);
    CHECK_MESSAGE(huge->body.find("at most 1000000000, found 1e+308") != std::string::npos,
                  huge->body);
    json read = site.ok(site.call(site.admin, "GET", gateway));
    CHECK(read["configured"] == false);
    // What GET answers goes back unchanged.
    read["pricing"]["input_per_million"] = 2;
    json stored = site.ok(site.call(site.admin, "PUT", gateway, read));
    CHECK(stored["pricing"]["input_per_million"] == 2);

    // A misspelt principal would have limited every caller.
    refused("POST", "/api/2.0/sluice/limits",
            {{"principle", "alice"}, {"kind", "tokens/day"}, {"limit", 10}}, "principle");
    refused("POST", "/api/2.0/sluice/limits",
            {{"principal", "alice"}, {"endpont", "dbrx"}, {"kind", "tokens/day"}, {"limit", 10}},
            "endpont");
    // Past 2^63 - 1 it is refused as it is written, never wrapped into a negative number.
    auto beyond = site.call(
        site.admin, "POST", "/api/2.0/sluice/limits",
        {{"principal", "alice"}, {"kind", "tokens/day"}, {"limit", 9223372036854775808ULL}});
    REQUIRE(beyond);
    CHECK(beyond->status == 400);
    CHECK_MESSAGE(beyond->body.find("is 9223372036854775808, beyond the largest integer") !=
                      std::string::npos,
                  beyond->body);
    CHECK(site.ok(site.call(site.admin, "GET", "/api/2.0/sluice/limits"))["limits"].empty());
    RequestContext as_bob{site.bob_p.id, "bob", "req_b", "", ""};
    CHECK(site.gov->usage().reserve(as_bob, "dbrx", 100).ok());
}

TEST_CASE("lineage over REST hides what the caller may not browse") {
    Site site;
    Store& s = site.gov->store();
    Principal owner = *s.create_principal("owner", PrincipalKind::kUser, false);
    REQUIRE(s.create_securable(SecurableType::kCatalog, "main", owner.id, "", {}).ok());
    REQUIRE(s.create_securable(SecurableType::kSchema, "main.hr", owner.id, "", {}).ok());
    REQUIRE(s.create_securable(SecurableType::kTable, "main.hr.salaries", owner.id, "", {}).ok());
    REQUIRE(s.create_securable(SecurableType::kTable, "main.hr.report", owner.id, "", {}).ok());
    auto report = s.securable(SecurableType::kTable, "main.hr.report");
    REQUIRE(s.update_permissions(report->id, SecurableType::kTable,
                                 {{"alice", {Privilege::kBrowse}, {}}}, owner.id)
                .ok());
    auto denied = site.call(site.alice, "POST", "/api/2.1/lineage/edges",
                            {{"edges", {{{"source", "table:main.hr.salaries"},
                                         {"target", "table:main.hr.report"}}}}});
    REQUIRE(denied);
    CHECK(denied->status == 403);
    site.ok(site.call(site.admin, "POST", "/api/2.1/lineage/edges",
                      {{"edges",
                        {{{"source", "source:postgres://hr/payroll"},
                          {"source_governed_by", "table:main.hr.salaries"},
                          {"target", "table:main.hr.salaries"}},
                         {{"source", "table:main.hr.salaries"}, {"target", "table:main.hr.report"}}}}}));

    auto r = site.call(site.alice, "GET",
                       "/api/2.1/lineage/upstream?node=table:main.hr.report&depth=5");
    json graph = site.ok(r);
    CHECK(r->body.find("salaries") == std::string::npos);
    CHECK(r->body.find("payroll") == std::string::npos);
    CHECK(graph["nodes"].size() == 3);
    CHECK(graph["hidden_nodes"] == 2);
    CHECK(graph["edges"].size() == 2);
    json full = site.ok(site.call(site.admin, "GET",
                                  "/api/2.1/lineage/upstream?node=table:main.hr.report&depth=5"));
    CHECK(full["hidden_nodes"] == 0);
    CHECK(full.dump().find("postgres://hr/payroll") != std::string::npos);

    auto hidden_root = site.call(site.alice, "GET",
                                 "/api/2.1/lineage/downstream?node=table:main.hr.salaries");
    REQUIRE(hidden_root);
    CHECK(hidden_root->status == 403);
    auto bad_node = site.call(site.alice, "GET", "/api/2.1/lineage/upstream?node=main.hr.report");
    REQUIRE(bad_node);
    CHECK(bad_node->status == 400);
    auto bad_depth = site.call(site.admin, "GET",
                               "/api/2.1/lineage/upstream?node=table:main.hr.report&depth=99");
    REQUIRE(bad_depth);
    CHECK(bad_depth->status == 400);
}

TEST_CASE("UTC days parse to the epoch") {
    CHECK(parse_utc_day("1970-01-01").value() == 0);
    CHECK(parse_utc_day("2000-03-01").value() == 951'868'800'000'000);
    CHECK_FALSE(parse_utc_day("2000-13-01").ok());
    CHECK_FALSE(parse_utc_day("20000-1-01").ok());
    // Days past the month's end were read as days of the next month (2026-02-31: March 3).
    CHECK_FALSE(parse_utc_day("2026-02-31").ok());
    CHECK_FALSE(parse_utc_day("2026-02-29").ok());
    CHECK_FALSE(parse_utc_day("2026-04-31").ok());
    CHECK_FALSE(parse_utc_day("1900-02-29").ok());
    CHECK(parse_utc_day("2000-02-29").value() == 951'782'400'000'000);
    CHECK(parse_utc_day("2024-02-29").ok());
    CHECK(parse_utc_day("2026-12-31").ok());
    // Digits only where the format has them.
    CHECK_FALSE(parse_utc_day("2026-01- 1").ok());
    CHECK_FALSE(parse_utc_day("+026-01-01").ok());
    CHECK_FALSE(parse_utc_day("2026-+1-01").ok());
}

TEST_CASE("row filters and column masks are defined over REST against the table's columns") {
    Site site;
    const std::string uc = "/api/2.1/unity-catalog";
    site.ok(site.call(site.admin, "POST", uc + "/catalogs", {{"name", "main"}}));
    site.ok(site.call(site.admin, "POST", uc + "/schemas", {{"name", "crm"}, {"catalog_name", "main"}}));
    auto bad_columns = site.call(site.admin, "POST", uc + "/tables",
                                 {{"name", "people"}, {"catalog_name", "main"},
                                  {"schema_name", "crm"},
                                  {"columns", {{{"name", "id"}}, {{"name", "ID"}}}}});
    REQUIRE(bad_columns);
    CHECK(bad_columns->status == 400);
    site.ok(site.call(site.admin, "POST", uc + "/tables",
                      {{"name", "people"},
                       {"catalog_name", "main"},
                       {"schema_name", "crm"},
                       {"columns",
                        {{{"name", "id"}, {"type_name", "INT"}},
                         {{"name", "email"}, {"type_name", "STRING"}},
                         {{"name", "region"}, {"type_name", "STRING"}}}}}));
    const std::string table = uc + "/tables/main.crm.people";
    auto denied = site.call(site.alice, "PUT", table + "/row-filter",
                            {{"expression", "region = 'EU'"}});
    REQUIRE(denied);
    CHECK(denied->status == 403);
    json shown = site.ok(site.call(site.admin, "PUT", table + "/row-filter",
                                   {{"expression", "region = 'EU' OR is_account_group_member('all')"}}));
    CHECK(shown["row_filter"]["expression"] == "region = 'EU' OR is_account_group_member('all')");
    CHECK(shown["columns"].size() == 3);
    auto unknown = site.call(site.admin, "PUT", table + "/row-filter", {{"expression", "salary > 1"}});
    REQUIRE(unknown);
    CHECK(unknown->status == 400);
    CHECK(unknown->body.find("not a column") != std::string::npos);
    site.ok(site.call(site.admin, "PUT", table + "/column-masks/email",
                      {{"expression", "CASE WHEN email = current_user() THEN email ELSE NULL END"}}));
    auto no_column = site.call(site.admin, "PUT", table + "/column-masks/phone",
                               {{"expression", "NULL"}});
    REQUIRE(no_column);
    CHECK(no_column->status == 404);
    auto hidden = site.call(site.alice, "GET", table + "/policies");
    REQUIRE(hidden);
    CHECK(hidden->status == 403);
    site.ok(site.call(site.admin, "PATCH", uc + "/permissions/table/main.crm.people",
                      {{"changes", {{{"principal", "alice"}, {"add", {"BROWSE"}}}}}}));
    json policies = site.ok(site.call(site.alice, "GET", table + "/policies"));
    CHECK(policies["column_masks"].size() == 1);
    CHECK(policies["column_masks"][0]["column"] == "email");
    // Dropping a column a policy reads is refused; the filter can be deleted.
    auto drop = site.call(site.admin, "PUT", table + "/columns",
                          {{"columns", {{{"name", "id"}}, {{"name", "email"}}}}});
    REQUIRE(drop);
    CHECK(drop->status == 409);
    site.ok(site.call(site.admin, "DELETE", table + "/row-filter"));
    site.ok(site.call(site.admin, "PUT", table + "/columns",
                      {{"columns", {{{"name", "id"}}, {{"name", "email"}}}}}));
}

TEST_CASE("a permission change with a member it does not take is refused whole") {
    Site site;
    const std::string uc = "/api/2.1/unity-catalog";
    site.ok(site.call(site.admin, "POST", uc + "/catalogs", {{"name", "main"}}));
    site.ok(
        site.call(site.admin, "POST", uc + "/schemas", {{"name", "s"}, {"catalog_name", "main"}}));
    site.ok(site.call(site.admin, "POST", uc + "/tables",
                      {{"name", "t"}, {"catalog_name", "main"}, {"schema_name", "s"}}));
    const std::string url = uc + "/permissions/catalog/main";
    site.ok(site.call(
        site.admin, "PATCH", url,
        {{"changes",
          {{{"principal", "alice"}, {"add", {"USE_CATALOG", "USE_SCHEMA", "SELECT"}}}}}}));
    auto select_held = [&] {
        auto d = site.gov->authorizer().check(site.alice_p.id, Privilege::kSelect,
                                              SecurableType::kTable, "main.s.t");
        REQUIRE(d.ok());
        return d->allowed;
    };
    REQUIRE(select_held());
    // "revoke" is not a member of a change: it used to answer 200 and keep the grant.
    auto misspelt = site.call(site.admin, "PATCH", url,
                              {{"changes",
                                {{{"principal", "alice"}, {"revoke", {"SELECT"}}},
                                 {{"principal", "bob"}, {"add", {"USE_CATALOG"}}}}}});
    REQUIRE(misspelt);
    CHECK(misspelt->status == 400);
    CHECK(misspelt->body.find("'revoke'") != std::string::npos);
    CHECK(select_held());
    json grants = site.ok(site.call(site.admin, "GET", url));
    CHECK(grants["privilege_assignments"].size() == 1);  // bob's grant was not made either
    site.ok(site.call(site.admin, "PATCH", url,
                      {{"changes", {{{"principal", "alice"}, {"remove", {"SELECT"}}}}}}));
    CHECK_FALSE(select_held());
}

TEST_CASE("the catalog API neither makes a table a source nor re-binds a source's index") {
    Site site;
    Store& store = site.gov->store();
    const std::string uc = "/api/2.1/unity-catalog";
    // alice owns a schema and, in it, a source feeding her own index.
    REQUIRE(store.create_securable(SecurableType::kCatalog, "team", site.alice_p.id, "", {}).ok());
    REQUIRE(store.create_securable(SecurableType::kSchema, "team.s", site.alice_p.id, "", {}).ok());
    REQUIRE(create_source_object(store, "team.s", "feed", site.alice_p.id, "alice_idx").ok());
    auto index_of_feed = [&] { return find_source_object(store, "feed")->index; };

    // Re-binding through tags would skip MODIFY on the index the sync then writes into.
    auto rebind = site.call(site.alice, "PATCH", uc + "/tables/team.s.feed",
                            {{"tags", {{"kind", "source"}, {"index", "payroll"}}}});
    REQUIRE(rebind);
    CHECK(rebind->status == 400);
    CHECK(rebind->body.find("/api/sources") != std::string::npos);
    CHECK(index_of_feed() == "alice_idx");
    auto untag =
        site.call(site.alice, "PATCH", uc + "/tables/team.s.feed", {{"tags", json::object()}});
    REQUIRE(untag);
    CHECK(untag->status == 400);
    CHECK(index_of_feed() == "alice_idx");
    CHECK(site.audit_count({{"action", "securable.update"}, {"result", "error"}}) == 2);
    // Other tags, and fields other than tags, may change.
    json kept = site.ok(
        site.call(site.alice, "PATCH", uc + "/tables/team.s.feed",
                  {{"tags", {{"kind", "source"}, {"index", "alice_idx"}, {"team", "support"}}}}));
    CHECK(kept["tags"]["team"] == "support");
    site.ok(site.call(site.alice, "PATCH", uc + "/tables/team.s.feed", {{"comment", "docs"}}));
    CHECK(index_of_feed() == "alice_idx");
    // Nor is a source dropped here, leaving its definition behind.
    auto drop = site.call(site.alice, "DELETE", uc + "/tables/team.s.feed");
    REQUIRE(drop);
    CHECK(drop->status == 409);
    CHECK(drop->body.find("DELETE /api/sources/feed") != std::string::npos);
    CHECK(index_of_feed() == "alice_idx");
    // Nor with its schema or catalog, forced: they stay whole.
    for (const std::string& path :
         {uc + "/schemas/team.s?force=true", uc + "/catalogs/team?force=true"}) {
        auto forced = site.call(site.alice, "DELETE", path);
        REQUIRE(forced);
        CHECK(forced->status == 409);
        CHECK(forced->body.find("DELETE /api/sources/feed") != std::string::npos);
        CHECK(index_of_feed() == "alice_idx");
        CHECK(store.securable(SecurableType::kSchema, "team.s").ok());
    }
    // A vector index below goes through its own API first, too.
    REQUIRE(store.create_securable(SecurableType::kSchema, "team.v", site.alice_p.id, "", {}).ok());
    REQUIRE(
        store.create_securable(SecurableType::kTable, "team.v.t", site.alice_p.id, "", {}).ok());
    REQUIRE(
        store.create_securable(SecurableType::kVectorIndex, "team.v.idx", site.alice_p.id, "", {})
            .ok());
    auto with_index = site.call(site.alice, "DELETE", uc + "/schemas/team.v?force=true");
    REQUIRE(with_index);
    CHECK(with_index->status == 409);
    CHECK(with_index->body.find("vector-indexes/team.v.idx") != std::string::npos);
    CHECK(store.securable(SecurableType::kTable, "team.v.t").ok());
    site.ok(site.call(site.alice, "DELETE", uc + "/vector-indexes/team.v.idx"));
    site.ok(site.call(site.alice, "DELETE", uc + "/schemas/team.v?force=true"));
    CHECK(store.securable(SecurableType::kTable, "team.v.t").status().code() ==
          sluice::StatusCode::kNotFound);

    // A table made a source by its tags would stand for another source of the same name.
    auto pose = site.call(site.alice, "POST", uc + "/tables",
                          {{"name", "hr_docs"},
                           {"catalog_name", "team"},
                           {"schema_name", "s"},
                           {"tags", {{"kind", "source"}, {"index", "alice_idx"}}}});
    REQUIRE(pose);
    CHECK(pose->status == 400);
    site.ok(site.call(site.alice, "POST", uc + "/tables",
                      {{"name", "hr_docs"},
                       {"catalog_name", "team"},
                       {"schema_name", "s"},
                       {"tags", {{"kind", "lookup"}}}}));
    auto retag = site.call(site.alice, "PATCH", uc + "/tables/team.s.hr_docs",
                           {{"tags", {{"kind", "source"}, {"index", "alice_idx"}}}});
    REQUIRE(retag);
    CHECK(retag->status == 400);
    CHECK(find_source_object(store, "hr_docs").status().code() == sluice::StatusCode::kNotFound);

    // Nor may a table pose as an evaluation set (whose grants open its versions and runs), or a
    // set's tag be taken off.
    for (const json& tags : {json{{"kind", "eval_set"}}}) {
        auto eval_pose = site.call(
            site.alice, "POST", uc + "/tables",
            {{"name", "qa_set"}, {"catalog_name", "team"}, {"schema_name", "s"}, {"tags", tags}});
        REQUIRE(eval_pose);
        CHECK(eval_pose->status == 400);
        CHECK(eval_pose->body.find("POST /api/eval/sets") != std::string::npos);
        auto eval_retag =
            site.call(site.alice, "PATCH", uc + "/tables/team.s.hr_docs", {{"tags", tags}});
        REQUIRE(eval_retag);
        CHECK(eval_retag->status == 400);
    }
}

TEST_CASE("another principal's token is, to a non-admin, a token that does not exist") {
    Site site;
    Store& store = site.gov->store();
    auto alice_tokens = store.tokens(site.alice_p.id);
    REQUIRE(alice_tokens.ok());
    REQUIRE(alice_tokens->size() == 1);
    const std::string id = (*alice_tokens)[0].id;
    auto theirs = site.call(site.bob, "POST", "/api/2.0/token/delete", {{"token_id", id}});
    auto missing = site.call(site.bob, "POST", "/api/2.0/token/delete",
                             {{"token_id", "tok_0123456789abcdef"}});
    REQUIRE(theirs);
    REQUIRE(missing);
    CHECK(theirs->status == 404);
    CHECK(missing->status == 404);
    auto message = [](const httplib::Result& r) {
        return json::parse(r->body)["error"]["message"].get<std::string>();
    };
    CHECK(message(theirs) == "token " + id + " does not exist");
    CHECK(message(missing) == "token tok_0123456789abcdef does not exist");
    CHECK_FALSE(store.token(id)->revoked_at_ms.has_value());
    CHECK(site.audit_count({{"principal", "bob"},
                            {"action", "admin:token.revoke_for_other"},
                            {"result", "deny"}}) == 1);
    // An admin revokes it; its owner could have too.
    site.ok(site.call(site.admin, "POST", "/api/2.0/token/delete", {{"token_id", id}}));
    CHECK(store.token(id)->revoked_at_ms.has_value());
}

TEST_CASE("the audit routes take whole integers for their numeric parameters") {
    Site site;
    auto lines = [](const std::string& body) { return std::count(body.begin(), body.end(), '\n'); };
    auto two = site.call(site.admin, "GET", "/api/2.0/sluice/audit?limit=2");
    REQUIRE(two);
    CHECK(two->status == 200);
    CHECK(lines(two->body) == 2);
    // stoll read "1x" as 1 and "2e9" as 2: the answer was cut where the caller did not ask.
    for (const std::string query : {"limit=1x", "limit=2e9", "after_seq=abc",
                                    "after_seq=", "after_seq=99999999999999999999", "limit=%2B3"}) {
        auto r = site.call(site.admin, "GET", "/api/2.0/sluice/audit?" + query);
        REQUIRE(r);
        CHECK_MESSAGE(r->status == 400, query);
    }
    auto verify = site.call(site.admin, "GET", "/api/2.0/sluice/audit/verify?expect_checkpoint=1z");
    REQUIRE(verify);
    CHECK(verify->status == 400);
    CHECK(verify->body.find("expect_checkpoint") != std::string::npos);
}

TEST_CASE("answered before its records are committed, a request is still in the audit API's answer") {
    GovernanceOptions options;
    options.audit.acknowledge = AuditAcknowledge::kQueued;
    options.audit.gather = std::chrono::hours(1);  // the writer commits only when someone waits
    Site site(options);
    auto r = site.call(site.alice, "GET", "/api/2.0/serving-endpoints/dbrx/ai-gateway");
    REQUIRE(r);
    CHECK(r->status == 200);
    std::string id = r->get_header_value("X-Request-Id");
    // Answered, yet its authentication is only queued: the database does not hold it yet.
    CHECK(site.audit_count({{"request_id", id}}) == 0);
    CHECK(site.gov->audit().queued() >= 1);
    // The audit API writes what is queued before it reads.
    auto trail = site.call(site.admin, "GET", "/api/2.0/sluice/audit?limit=100000");
    REQUIRE(trail);
    REQUIRE(trail->status == 200);
    CHECK(trail->body.find("\"request_id\":\"" + id + "\"") != std::string::npos);
    CHECK(site.audit_count({{"action", "authenticate"}, {"request_id", id}}) == 1);
    auto verified = site.call(site.admin, "GET", "/api/2.0/sluice/audit/verify");
    REQUIRE(verified);
    CHECK(verified->status == 200);
    CHECK(json::parse(verified->body)["ok"] == true);
}
