// Governance through the real binary: bootstrap token, offline break-glass tokens beside a
// running server, and an authorisation matrix (securable types × privileges × kinds of
// principal) with the audit record of each decision, then `sluice audit verify`.
#include <doctest/doctest.h>
#include <httplib.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "child_process.h"
#include "run_sluice.h"

namespace {

using sluice::testing::ChildProcess;
using nlohmann::json;
using namespace std::chrono_literals;

std::filesystem::path fresh_dir() {
    return std::filesystem::temp_directory_path() /
           ("sluice-it-gov-" + std::to_string(std::random_device{}()));
}

using sluice::testing::run_sluice;

std::string last_line(const std::string& text) {
    std::string trimmed = text.substr(0, text.find_last_not_of('\n') + 1);
    return trimmed.substr(trimmed.rfind('\n') + 1);
}

struct Api {
    int port;
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10, 0);
        return c;
    }
    httplib::Result get(const std::string& token, const std::string& path) const {
        return client().Get(path, {{"Authorization", "Bearer " + token}});
    }
    httplib::Result send(const std::string& token, const std::string& method,
                         const std::string& path, const json& body) const {
        auto c = client();
        httplib::Headers h = {{"Authorization", "Bearer " + token}};
        if (method == "PATCH") {
            return c.Patch(path, h, body.dump(), "application/json");
        }
        if (method == "PUT") {
            return c.Put(path, h, body.dump(), "application/json");
        }
        return c.Post(path, h, body.dump(), "application/json");
    }
    json ok(httplib::Result result) const {
        REQUIRE(result);
        INFO(result->body);
        REQUIRE(result->status == 200);
        return result->body.empty() ? json() : json::parse(result->body);
    }
};

const std::string kUc = "/api/2.1/unity-catalog";

}  // namespace

TEST_CASE("authorisation matrix through the HTTP API, every decision audited") {
    auto dir = fresh_dir();
    ChildProcess serve({SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()});
    auto listening = serve.wait_for_line("\"listening\"", 20s);
    REQUIRE_MESSAGE(listening.has_value(), serve.output());
    std::string address = json::parse(*listening).at("address");
    Api api{std::stoi(address.substr(address.rfind(':') + 1))};
    std::string output = serve.output();
    auto marker = output.find("admin token: ");
    REQUIRE(marker != std::string::npos);
    std::string admin = output.substr(marker + 13, 76);
    CHECK(output.find("SLUICE ADMIN TOKEN") != std::string::npos);

    // Principals: owner, direct grantee, member of a group, member of a nested group,
    // unrelated user. Tokens: one per user, issued by the admin; one offline (break-glass)
    // while the server runs.
    for (const char* group : {"readers", "team"}) {
        api.ok(api.send(admin, "POST", "/api/2.0/sluice/principals", {{"name", group}, {"kind", "group"}}));
    }
    std::map<std::string, std::string> tokens;
    for (const char* user : {"owner", "direct", "member", "nested", "stranger"}) {
        api.ok(api.send(admin, "POST", "/api/2.0/sluice/principals", {{"name", user}}));
        tokens[user] = api.ok(api.send(admin, "POST", "/api/2.0/token/create",
                                       {{"principal", user}}))["token_value"];
    }
    api.ok(api.send(admin, "PUT", "/api/2.0/sluice/groups/readers/members/member", json::object()));
    api.ok(api.send(admin, "PUT", "/api/2.0/sluice/groups/readers/members/team", json::object()));
    api.ok(api.send(admin, "PUT", "/api/2.0/sluice/groups/team/members/nested", json::object()));
    auto cycle = api.send(admin, "PUT", "/api/2.0/sluice/groups/team/members/readers", json::object());
    REQUIRE(cycle);
    CHECK(cycle->status == 409);

    auto [code, printed] = run_sluice({"token", "create", "--data-dir", dir.string(),
                                        "--principal", "breakglass", "--admin"});
    REQUIRE(code == 0);
    std::string breakglass = json::parse(last_line(printed))["token"];
    CHECK(api.ok(api.get(breakglass, "/api/2.0/sluice/me"))["is_metastore_admin"] == true);

    // The admin lets `owner` create a catalog; owner builds the tree and owns all of it.
    api.ok(api.send(admin, "PATCH", kUc + "/permissions/metastore/metastore",
                    {{"changes", {{{"principal", "owner"}, {"add", {"CREATE_CATALOG"}}}}}}));
    std::string owner = tokens["owner"];
    api.ok(api.send(owner, "POST", kUc + "/catalogs", {{"name", "main"}, {"comment", "prod"}}));
    api.ok(api.send(owner, "POST", kUc + "/schemas", {{"name", "sales"}, {"catalog_name", "main"}}));
    struct Object {
        std::string collection;
        std::string type;
        std::string privilege;
    };
    std::vector<Object> objects = {{"tables", "table", "SELECT"},
                                   {"volumes", "volume", "READ_VOLUME"},
                                   {"functions", "function", "EXECUTE"},
                                   {"models", "model", "EXECUTE"},
                                   {"vector-indexes", "vector_index", "SELECT"},
                                   {"agents", "agent", "EXECUTE"}};
    for (const auto& o : objects) {
        if (o.type == "vector_index") {
            // A real index, made through the vector search API (CREATE_TABLE on the schema,
            // which the owner of the schema holds), so that its data path is checked too.
            api.ok(api.send(owner, "POST", "/api/2.0/vector-search/indexes",
                            {{"name", "main.sales.x"}, {"embedding_dimension", 16}}));
        } else {
            api.ok(api.send(owner, "POST", kUc + "/" + o.collection,
                            {{"name", "x"}, {"catalog_name", "main"}, {"schema_name", "sales"}}));
        }
        // The direct grantee gets the object's privilege; the readers group gets it on the
        // catalog (inherited by every object below).
        api.ok(api.send(owner, "PATCH", kUc + "/permissions/" + o.type + "/main.sales.x",
                        {{"changes", {{{"principal", "direct"}, {"add", {o.privilege}}}}}}));
        api.ok(api.send(owner, "PATCH", kUc + "/permissions/catalog/main",
                        {{"changes", {{{"principal", "readers"}, {"add", {o.privilege}}}}}}));
    }
    api.ok(api.send(owner, "PATCH", kUc + "/permissions/catalog/main",
                    {{"changes", {{{"principal", "readers"}, {"add", {"USE_CATALOG", "USE_SCHEMA"}}},
                                  {{"principal", "direct"}, {"add", {"USE_CATALOG", "USE_SCHEMA"}}}}}}));

    // A short-lived and a revoked token for `member`.
    std::string expiring = api.ok(api.send(tokens["member"], "POST", "/api/2.0/token/create",
                                           {{"lifetime_seconds", 1}}))["token_value"];
    auto revoked_info = api.ok(api.send(tokens["member"], "POST", "/api/2.0/token/create", json::object()));
    std::string revoked = revoked_info["token_value"];
    api.ok(api.send(tokens["member"], "POST", "/api/2.0/token/delete",
                    {{"token_id", revoked_info["token_info"]["token_id"]}}));
    std::this_thread::sleep_for(1100ms);

    struct Caller {
        std::string name;
        std::string token;
        int expected;  // HTTP status for reading an object's effective permission check
    };
    std::vector<Caller> callers = {{"owner", owner, 200},
                                   {"direct", tokens["direct"], 200},
                                   {"member", tokens["member"], 200},
                                   {"nested", tokens["nested"], 200},
                                   {"stranger", tokens["stranger"], 403},
                                   {"admin", admin, 200},
                                   {"revoked", revoked, 401},
                                   {"expired", expiring, 401}};
    int audited_decisions = 0;
    for (const auto& o : objects) {
        for (const auto& caller : callers) {
            // The decision on the object's own privilege, through effective-permissions
            // for identity (open to oneself) and through a grant change that needs MANAGE.
            auto explained = api.get(caller.token, kUc + "/effective-permissions/" + o.type + "/main.sales.x");
            REQUIRE(explained);
            CAPTURE(caller.name);
            CAPTURE(o.type);
            if (caller.expected == 401) {
                CHECK(explained->status == 401);
                continue;
            }
            REQUIRE(explained->status == 200);
            bool allowed = false;
            std::string source;
            json body = json::parse(explained->body);
            for (const auto& p : body["privilege_assignments"][0]["privileges"]) {
                if (p["privilege"] == o.privilege) {
                    allowed = p["allowed"];
                    source = p["source"];
                }
            }
            CHECK(allowed == (caller.expected == 200));
            if (caller.name == "owner") {
                CHECK(source == "ownership");
            } else if (caller.name == "admin") {
                CHECK(source == "metastore_admin");
            } else if (caller.expected == 200) {
                CHECK(source == "grant");
            }
            // MANAGE (grant changes) only for the owner and the admin.
            auto grant = api.send(caller.token, "PATCH", kUc + "/permissions/" + o.type + "/main.sales.x",
                                  {{"changes", {{{"principal", "stranger"}, {"add", {"BROWSE"}}}}}});
            REQUIRE(grant);
            bool may_manage = caller.name == "owner" || caller.name == "admin";
            CHECK(grant->status == (may_manage ? 200 : 403));
            if (o.type == "vector_index") {
                // The index's own data path decides as the effective permissions say.
                auto queried = api.send(caller.token, "POST",
                                        "/api/2.0/vector-search/indexes/main.sales.x/query",
                                        {{"query_text", "anything"}});
                REQUIRE(queried);
                CHECK(queried->status == caller.expected);
            }
            ++audited_decisions;
        }
    }
    // Revoking the group grant takes effect on the very next request.
    api.ok(api.send(owner, "PATCH", kUc + "/permissions/catalog/main",
                    {{"changes", {{{"principal", "readers"}, {"remove", {"SELECT"}}}}}}));
    auto table = api.get(tokens["nested"], kUc + "/tables/main.sales.x");
    REQUIRE(table);
    auto after = api.get(tokens["nested"], kUc + "/effective-permissions/table/main.sales.x");
    bool still = false;
    json after_body = json::parse(after->body);
    for (const auto& p : after_body["privilege_assignments"][0]["privileges"]) {
        still = still || (p["privilege"] == "SELECT" && p["allowed"] == true);
    }
    CHECK_FALSE(still);

    // The audit trail holds the denies and allows with the deciding grant, and failed logins.
    auto audit = api.get(admin, "/api/2.0/sluice/audit?limit=100000");
    REQUIRE(audit);
    REQUIRE(audit->status == 200);
    std::string trail = audit->body;
    CHECK(trail.find("\"action\":\"authorize:MANAGE\"") != std::string::npos);
    CHECK(trail.find("\"principal\":\"stranger\"") != std::string::npos);
    CHECK(trail.find("\"result\":\"deny\"") != std::string::npos);
    CHECK(trail.find("was revoked") != std::string::npos);
    CHECK(trail.find("has expired") != std::string::npos);
    CHECK(trail.find("token.create.offline") != std::string::npos);
    CHECK(trail.find("grant.update") != std::string::npos);
    CHECK(trail.find(tokens["stranger"].substr(4)) == std::string::npos);  // never a secret
    auto forbidden = api.get(tokens["stranger"], "/api/2.0/sluice/audit");
    REQUIRE(forbidden);
    CHECK(forbidden->status == 403);
    CHECK(audited_decisions == static_cast<int>(objects.size()) * 6);

    serve.signal(SIGTERM);
    CHECK(serve.wait(20s) == 0);
    auto [verify_code, verify_out] = run_sluice({"audit", "verify", "--data-dir", dir.string()});
    CHECK(verify_code == 0);
    CHECK(json::parse(last_line(verify_out))["ok"] == true);
    std::filesystem::remove_all(dir);
}

TEST_CASE("metrics can require authentication") {
    auto dir = fresh_dir();
    ChildProcess serve({SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()},
                       {{"SLUICE_SERVER_METRICS_PUBLIC", "false"}});
    auto listening = serve.wait_for_line("\"listening\"", 20s);
    REQUIRE(listening.has_value());
    std::string address = json::parse(*listening).at("address");
    Api api{std::stoi(address.substr(address.rfind(':') + 1))};
    auto metrics = api.client().Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->status == 401);
    auto health = api.client().Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    serve.signal(SIGTERM);
    CHECK(serve.wait(20s) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("lineage, limits and endpoint settings through the CLI against a running server") {
    auto dir = fresh_dir();
    ChildProcess serve({SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()});
    auto listening = serve.wait_for_line("\"listening\"", 20s);
    REQUIRE_MESSAGE(listening.has_value(), serve.output());
    std::string address = json::parse(*listening).at("address");
    Api api{std::stoi(address.substr(address.rfind(':') + 1))};
    std::string output = serve.output();
    std::string admin = output.substr(output.find("admin token: ") + 13, 76);
    api.ok(api.send(admin, "POST", "/api/2.0/sluice/principals", {{"name", "alice"}}));
    std::string alice = api.ok(api.send(admin, "POST", "/api/2.0/token/create",
                                        {{"principal", "alice"}}))["token_value"];
    std::string server = "http://" + address;
    auto as = [&server](const std::string& token, std::vector<std::string> args) {
        // The token travels in the environment, never on the command line.
        std::string command = "SLUICE_SERVER='" + server + "' SLUICE_TOKEN='" + token + "' " +
                              SLUICE_BINARY;
        for (const auto& arg : args) {
            command += " '" + arg + "'";
        }
        std::string out;
        FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
        REQUIRE(pipe != nullptr);
        char buffer[4096];
        while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
            out += buffer;
        }
        int status = ::pclose(pipe);
        return std::pair{WEXITSTATUS(status), out};
    };

    // The admin builds a catalog with one table alice may browse, fed by a hidden one.
    api.ok(api.send(admin, "POST", kUc + "/catalogs", {{"name", "main"}}));
    api.ok(api.send(admin, "POST", kUc + "/schemas", {{"name", "hr"}, {"catalog_name", "main"}}));
    for (const char* table : {"salaries", "report"}) {
        api.ok(api.send(admin, "POST", kUc + "/tables",
                        {{"name", table}, {"catalog_name", "main"}, {"schema_name", "hr"}}));
    }
    api.ok(api.send(admin, "PATCH", kUc + "/permissions/table/main.hr.report",
                    {{"changes", {{{"principal", "alice"}, {"add", {"BROWSE"}}}}}}));
    api.ok(api.send(admin, "POST", "/api/2.1/lineage/edges",
                    {{"edges", {{{"source", "table:main.hr.salaries"},
                                 {"target", "table:main.hr.report"}}}}}));

    auto [up_code, up] = as(alice, {"lineage", "upstream", "table:main.hr.report", "--depth", "2"});
    INFO(up);
    CHECK(up_code == 0);
    json graph = json::parse(last_line(up));
    CHECK(graph["hidden_nodes"] == 1);
    CHECK(up.find("salaries") == std::string::npos);
    auto [down_code, down] = as(alice, {"lineage", "downstream", "table:main.hr.salaries"});
    CHECK(down_code == 1);
    CHECK(json::parse(last_line(down))["error"]["code"] == "permission_denied");

    auto [set_code, set] = as(admin, {"usage", "set-limit", "--kind", "tokens/day", "--limit",
                                      "5000", "--principal", "alice", "--endpoint", "dbrx"});
    INFO(set);
    CHECK(set_code == 0);
    CHECK(json::parse(last_line(set))["limit"] == 5000);
    auto [refused_code, refused] = as(alice, {"usage", "set-limit", "--kind", "tokens/day",
                                              "--limit", "1"});
    CHECK(refused_code == 1);
    auto [limits_code, limits] = as(alice, {"usage", "limits"});
    CHECK(limits_code == 0);
    CHECK(json::parse(last_line(limits))["limits"].size() == 1);
    auto [usage_code, usage] = as(alice, {"usage", "show", "--group-by", "endpoint"});
    CHECK(usage_code == 0);
    CHECK(json::parse(last_line(usage))["usage"].empty());

    auto [endpoint_code, endpoint] = as(admin, {"endpoint", "set", "dbrx", "--input-pii", "mask",
                                                "--output-pii", "block", "--input-price", "2.5"});
    INFO(endpoint);
    CHECK(endpoint_code == 0);
    auto [get_code, got] = as(alice, {"endpoint", "get", "dbrx"});
    CHECK(get_code == 0);
    json settings = json::parse(last_line(got));
    CHECK(settings["guardrails"]["input"]["pii"]["behavior"] == "MASK");
    CHECK(settings["pricing"]["input_per_million"] == 2.5);

    serve.signal(SIGTERM);
    CHECK(serve.wait(20s) == 0);
    auto [verify_code, verify_out] = run_sluice({"audit", "verify", "--data-dir", dir.string()});
    CHECK(verify_code == 0);
    std::filesystem::remove_all(dir);
}
