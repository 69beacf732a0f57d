// Vector indexes as catalog securables through the real binary: SELECT decides queries, QA and
// evaluations as the caller (403 and an audit record without it, 200 after a grant, 403 on the
// very next request after a revoke, grants made with the REST API or `sluice catalog`), MODIFY
// decides writes, CREATE_TABLE creation, MANAGE drops; the effective-permissions view explains
// an index like any securable; and an index stored before indexes were catalog objects is
// registered at start-up and keeps its URLs.

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "child_process.h"
#include "doctest/doctest.h"
#include "retrieval/index_manager.h"
#include "run_sluice.h"
#include "sluice_server.h"

namespace {

using nlohmann::json;
using sluice::testing::ok_json;
using sluice::testing::ServerProcess;

const std::string kUc = "/api/2.1/unity-catalog";
const std::string kIndexes = "/api/2.0/vector-search/indexes";

int status_of(const httplib::Result& result) {
    REQUIRE(result);
    return result->status;
}

// The audit records of `action` on `securable` by `principal`, as their results, in order.
std::vector<std::string> decisions(const ServerProcess& server, const std::string& principal,
                                   const std::string& action, const std::string& securable) {
    auto trail = server.send(server.admin_token, "GET", "/api/2.0/sluice/audit?limit=100000");
    REQUIRE(trail);
    REQUIRE(trail->status == 200);
    std::vector<std::string> out;
    std::istringstream lines(trail->body);
    for (std::string line; std::getline(lines, line);) {
        json record = json::parse(line);
        if (record["principal"] == principal && record["action"] == action &&
            record["securable"] == securable) {
            out.push_back(record["result"]);
        }
    }
    return out;
}

json policy_rows() {
    return json::array({{{"id", "holidays"},
                         {"title", "Holiday policy"},
                         {"uri", "file:///holidays.md"},
                         {"text", "Employees receive twenty five days of paid holiday per year."},
                         {"acl", {{"principals", {"admin", "analyst"}}}}}});
}

}  // namespace

TEST_CASE("index privileges through the HTTP API: SELECT, MODIFY, CREATE_TABLE, MANAGE") {
    ServerProcess server("index-gov", sluice::testing::tiny_model_dir());
    server.wait_model_ready(true);
    const std::string admin = server.admin_token;
    auto send = [&](const std::string& token, const std::string& method, const std::string& path,
                    const json& body = nullptr) { return server.send(token, method, path, body); };
    auto patch = [&](const std::string& path, const json& changes) {
        httplib::Client c("127.0.0.1", server.port);
        return c.Patch(path, {{"Authorization", "Bearer " + admin}},
                       json{{"changes", changes}}.dump(), "application/json");
    };
    std::map<std::string, std::string> tokens;
    for (const char* user : {"analyst", "stranger"}) {
        ok_json(send(admin, "POST", "/api/2.0/sluice/principals", {{"name", user}}));
        tokens[user] =
            ok_json(send(admin, "POST", "/api/2.0/token/create", {{"principal", user}}))["token_value"];
    }
    const std::string analyst = tokens["analyst"];
    ok_json(send(admin, "POST", kUc + "/catalogs", {{"name", "kb"}}));
    ok_json(send(admin, "POST", kUc + "/schemas", {{"name", "hr"}, {"catalog_name", "kb"}}));
    json created = ok_json(send(admin, "POST", kIndexes,
                                {{"name", "kb.hr.policies"}, {"embedding_dimension", 64}}));
    CHECK(created["full_name"] == "kb.hr.policies");
    ok_json(send(admin, "POST", kIndexes + "/kb.hr.policies/upsert-data",
                 {{"inputs_json", policy_rows().dump()}}));
    // The index is a catalog object owned by its creator.
    json securable = ok_json(send(admin, "GET", kUc + "/vector-indexes/kb.hr.policies"));
    CHECK(securable["owner"] == "admin");

    const json query = {{"query_text", "holiday days"}, {"num_results", 3}};
    const json qa = {{"question", "How many holiday days?"},
                     {"index", "kb.hr.policies"},
                     {"options", {{"max_tokens", 2}}}};
    const std::string path = kIndexes + "/kb.hr.policies/query";
    // The analyst's access list admits the document, but without SELECT nothing is read.
    CHECK(status_of(send(analyst, "POST", path, query)) == 403);
    CHECK(status_of(send(analyst, "POST", "/api/qa", qa)) == 403);
    CHECK(decisions(server, "analyst", "authorize:SELECT", "vector_index:kb.hr.policies") ==
          std::vector<std::string>{"deny", "deny"});

    ok_json(patch(kUc + "/permissions/catalog/kb",
                  {{{"principal", "analyst"}, {"add", {"USE_CATALOG", "USE_SCHEMA"}}}}));
    // GRANT through the CLI, as for any securable.
    const std::string server_url = "http://127.0.0.1:" + std::to_string(server.port);
    auto catalog_cli = [&](const std::string& verb) {
        return sluice::testing::run_sluice({"catalog", "--server", server_url, "--token", admin,
                                            verb, "vector_index", "kb.hr.policies", "analyst",
                                            "SELECT"})
            .first;
    };
    REQUIRE(catalog_cli("grant") == 0);
    json hits = ok_json(send(analyst, "POST", path, query));
    CHECK(hits["result"]["data_array"].size() == 1);
    json answer = ok_json(send(analyst, "POST", "/api/qa", qa));
    CHECK(answer["citations"].size() == 1);
    // The stored name and the catalog name are the same here; describe needs SELECT or BROWSE.
    CHECK(ok_json(send(analyst, "GET", kIndexes + "/kb.hr.policies"))["full_name"] ==
          "kb.hr.policies");
    // "Why can the analyst read it?" names the grant.
    json why = ok_json(send(analyst, "GET", kUc + "/effective-permissions/vector_index/kb.hr.policies"));
    bool explained = false;
    for (const auto& p : why["privilege_assignments"][0]["privileges"]) {
        if (p["privilege"] == "SELECT") {
            CHECK(p["allowed"] == true);
            CHECK(p["source"] == "grant");
            explained = true;
        }
    }
    CHECK(explained);
    // SELECT is not MODIFY, and dropping needs MANAGE.
    CHECK(status_of(send(analyst, "POST", kIndexes + "/kb.hr.policies/upsert-data",
                         {{"inputs_json", policy_rows().dump()}})) == 403);
    CHECK(status_of(send(analyst, "POST", kIndexes + "/kb.hr.policies/delete-data",
                         {{"primary_keys", {"holidays"}}})) == 403);
    {
        httplib::Client c("127.0.0.1", server.port);
        auto dropped = c.Delete(kIndexes + "/kb.hr.policies", {{"Authorization", "Bearer " + analyst}});
        CHECK(status_of(dropped) == 403);
    }
    // The listing shows what the caller may see.
    CHECK(ok_json(send(analyst, "GET", kIndexes))["vector_indexes"].size() == 1);
    CHECK(ok_json(send(tokens["stranger"], "GET", kIndexes))["vector_indexes"].empty());

    // An evaluation set the analyst may read, to show that the run is refused for the index.
    ok_json(send(admin, "POST", "/api/eval/sets",
                 {{"name", "kb.hr.faq"},
                  {"rows", {{{"request", "How many holiday days?"},
                             {"expected_response", "Twenty five."}}}}}));
    ok_json(patch(kUc + "/permissions/table/kb.hr.faq",
                  {{{"principal", "analyst"}, {"add", {"SELECT"}}}}));

    // A revoke (through the CLI) holds on the very next request.
    REQUIRE(catalog_cli("revoke") == 0);
    CHECK(status_of(send(analyst, "POST", path, query)) == 403);
    CHECK(status_of(send(analyst, "POST", "/api/qa", qa)) == 403);
    CHECK(status_of(send(analyst, "POST", "/api/eval/runs",
                         {{"qa", {{"index", "kb.hr.policies"}}}, {"set", "kb.hr.faq"}})) == 403);
    CHECK(decisions(server, "analyst", "authorize:SELECT", "vector_index:kb.hr.policies") ==
          std::vector<std::string>{"deny", "deny", "allow", "allow", "allow", "deny", "deny",
                                   "deny"});

    // Creating needs CREATE_TABLE on the schema; the creator owns the index and may drop it.
    const json mine = {{"name", "kb.hr.mine"}, {"embedding_dimension", 64}};
    CHECK(status_of(send(analyst, "POST", kIndexes, mine)) == 403);
    ok_json(patch(kUc + "/permissions/schema/kb.hr",
                  {{{"principal", "analyst"}, {"add", {"CREATE_TABLE"}}}}));
    ok_json(send(analyst, "POST", kIndexes, mine));
    CHECK(ok_json(send(admin, "GET", kUc + "/vector-indexes/kb.hr.mine"))["owner"] == "analyst");
    ok_json(send(analyst, "POST", kIndexes + "/kb.hr.mine/upsert-data",
                 {{"inputs_json", policy_rows().dump()}}));
    CHECK(ok_json(send(analyst, "POST", kIndexes + "/kb.hr.mine/query", query))["result"]
              ["data_array"].size() == 1);
    CHECK(status_of(send(tokens["stranger"], "POST", kIndexes + "/kb.hr.mine/query", query)) ==
          403);
    {
        httplib::Client c("127.0.0.1", server.port);
        auto dropped = c.Delete(kIndexes + "/kb.hr.mine", {{"Authorization", "Bearer " + analyst}});
        CHECK(status_of(dropped) == 200);
    }
    CHECK(status_of(send(admin, "GET", kUc + "/vector-indexes/kb.hr.mine")) == 404);
    CHECK(status_of(send(admin, "GET", kIndexes + "/kb.hr.mine")) == 404);

    // A plain name, as every index had before, lives in vector_search.default and answers to
    // both names.
    json plain = ok_json(send(admin, "POST", kIndexes, {{"name", "docs"}, {"embedding_dimension", 64}}));
    CHECK(plain["name"] == "docs");
    CHECK(plain["full_name"] == "vector_search.default.docs");
    ok_json(send(admin, "POST", kIndexes + "/vector_search.default.docs/upsert-data",
                 {{"inputs_json", policy_rows().dump()}}));
    CHECK(ok_json(send(admin, "POST", kIndexes + "/docs/query", query))["result"]["data_array"]
              .size() == 1);
    CHECK(status_of(send(analyst, "POST", kIndexes + "/docs/query", query)) == 403);

    // Deleting the catalog entry deletes the index with it (else start-up would register it
    // again); the analyst may not, the admin may.
    httplib::Client c("127.0.0.1", server.port);
    const std::string entry = kUc + "/vector-indexes/vector_search.default.docs";
    CHECK(status_of(c.Delete(entry, {{"Authorization", "Bearer " + analyst}})) == 403);
    CHECK(status_of(c.Delete(entry, {{"Authorization", "Bearer " + admin}})) == 200);
    CHECK(status_of(send(admin, "GET", kIndexes + "/docs")) == 404);
    CHECK(status_of(send(admin, "GET", entry)) == 404);
}

TEST_CASE("an index stored before indexes were catalog objects is registered at start-up") {
    using namespace std::chrono_literals;
    auto dir = sluice::testing::fresh_test_dir("index-migrate");
    std::string admin;
    {
        sluice::testing::ChildProcess serve(
            {SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()},
            {{"SLUICE_LOG_ACCESS_LOG", "false"}});
        admin = sluice::testing::wait_listening(serve).admin_token;
        serve.signal(SIGTERM);
        REQUIRE(serve.wait(20s) == 0);
    }
    // Written as the previous release did: straight into the data directory's indexes.
    {
        auto indexes = sluice::retrieval::IndexManager::open(dir / "indexes", {});
        REQUIRE(indexes.ok());
        sluice::retrieval::IndexSettings settings;
        settings.name = "legacy";
        settings.dimension = 64;
        auto index = (*indexes)->create(settings);
        REQUIRE(index.ok());
        sluice::retrieval::Document d;
        d.key = "holidays";
        d.uri = "file:///holidays.md";
        d.text = "Employees receive twenty five days of paid holiday per year.";
        d.acl.principals = {"admin"};
        REQUIRE((*index)->upsert({d}).ok());
        REQUIRE((*indexes)->snapshot_all().ok());
    }
    sluice::testing::ChildProcess serve(
        {SLUICE_BINARY, "serve", "--port", "0", "--data-dir", dir.string()},
        {{"SLUICE_LOG_ACCESS_LOG", "false"}});
    const int port = sluice::testing::wait_listening(serve).port;
    httplib::Client c("127.0.0.1", port);
    c.set_bearer_token_auth(admin);
    // Its old URL still answers, and the catalog knows it, owned by the admin.
    auto found = c.Post(kIndexes + "/legacy/query",
                        json{{"query_text", "holiday days"}}.dump(), "application/json");
    REQUIRE(found);
    CHECK(found->status == 200);
    CHECK(json::parse(found->body)["result"]["data_array"].size() == 1);
    auto entry = c.Get(kUc + "/vector-indexes/vector_search.default.legacy");
    REQUIRE(entry);
    REQUIRE(entry->status == 200);
    CHECK(json::parse(entry->body)["owner"] == "admin");
    serve.signal(SIGTERM);
    CHECK(serve.wait(20s) == 0);
    std::filesystem::remove_all(dir);
}
