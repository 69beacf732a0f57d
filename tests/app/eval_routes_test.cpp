// The evaluation REST API over loopback HTTP, in process, with the server's authentication and
// audit wiring and a scripted model answering for agents and judges.
#include "app/eval_routes.h"

#include <doctest/doctest.h>

#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "agents/scripted_chat_model.h"
#include "app/build_info.h"
#include "app/catalog_routes.h"
#include "app/governance_http.h"
#include "app/index_deps.h"

using namespace sluice::app;
using namespace sluice::governance;
using nlohmann::json;
namespace agents = sluice::agents;

namespace {

const std::string kVerdict = R"({"rationale":"looks right","verdict":"yes"})";

struct Site {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("sluice-eval-" + std::to_string(std::random_device{}()));
    std::unique_ptr<Governance> gov;
    std::unique_ptr<sluice::retrieval::IndexManager> indexes;
    std::unique_ptr<agents::AgentStore> agent_store;
    std::unique_ptr<agents::TraceStore> traces;
    std::unique_ptr<agents::evaluation::EvalStore> eval_store;
    std::shared_ptr<agents::ChatModel> model;
    std::unique_ptr<agents::AgentRuntime> runtime;
    std::unique_ptr<agents::evaluation::Monitor> monitor;
    std::unique_ptr<EvalServices> services;
    Metrics metrics{build_info()};
    std::unique_ptr<HttpServer> server;
    std::jthread thread;
    std::string admin, alice, bob;

    Site() {
        std::filesystem::create_directories(dir);
        gov = std::move(*Governance::open(dir));
        admin = (*gov->bootstrap_admin())->secret;
        Store& s = gov->store();
        Principal owner = *s.principal("admin");
        Principal alice_p = *s.create_principal("alice", PrincipalKind::kUser, false);
        Principal bob_p = *s.create_principal("bob", PrincipalKind::kUser, false);
        alice = s.create_token(alice_p.id, "", std::nullopt)->secret;
        bob = s.create_token(bob_p.id, "", std::nullopt)->secret;
        REQUIRE(s.create_securable(SecurableType::kCatalog, "main", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kSchema, "main.qa", owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kAgent, "main.qa.helper", owner.id, "", {}).ok());
        grant(SecurableType::kCatalog, "main", "alice", Privilege::kUseCatalog);
        grant(SecurableType::kSchema, "main.qa", "alice", Privilege::kUseSchema);
        grant(SecurableType::kSchema, "main.qa", "alice", Privilege::kCreateTable);
        grant(SecurableType::kAgent, "main.qa.helper", "alice", Privilege::kExecute);

        auto catalog = dir / kCatalogFile;
        indexes = std::move(*sluice::retrieval::IndexManager::open(dir / "indexes",
                                                                   server_index_deps()));
        agent_store = std::move(*agents::AgentStore::open(catalog, gov->secrets()));
        traces = std::move(*agents::TraceStore::open(catalog));
        eval_store = std::move(*agents::evaluation::EvalStore::open(catalog));
        model = std::move(*agents::ScriptedChatModel::make(json::array({{{"content", kVerdict}}}),
                                                           true));
        agents::AgentSpec spec;
        spec.name = "main.qa.helper";
        REQUIRE(agent_store->put_agent(spec).ok());
        runtime = std::make_unique<agents::AgentRuntime>(
            *gov, *agent_store, *traces, indexes.get(),
            [this](const std::string&) -> sluice::Result<std::shared_ptr<agents::ChatModel>> {
                return model;
            });
        auto source = [this]() -> sluice::Result<std::shared_ptr<agents::ChatModel>> {
            return model;
        };
        monitor = std::make_unique<agents::evaluation::Monitor>(*eval_store, source,
                                                                agents::evaluation::JudgeOptions{});
        services = std::make_unique<EvalServices>(EvalServices{
            *gov, *indexes, *eval_store, *traces, *runtime, source, monitor.get()});
        server = std::make_unique<HttpServer>(
            HttpServerOptions{.host = "127.0.0.1", .port = 0, .threads = 4, .access_log = false},
            metrics);
        Governance& g = *gov;
        govern_requests(*server, g);
        add_eval_routes(*server, *services);
        add_feedback_routes(*server, *services);
        add_catalog_routes(*server, g);
        REQUIRE(server->bind().ok());
        thread = std::jthread([this] { (void)server->serve(); });
    }
    ~Site() {
        server->stop();
        thread.join();
        server.reset();
        monitor.reset();
        indexes.reset();  // writes its snapshots into dir
        gov.reset();
        std::filesystem::remove_all(dir);
    }

    void grant(SecurableType type, const std::string& name, const std::string& who,
               Privilege privilege) {
        auto securable = gov->store().securable(type, name);
        REQUIRE(securable.ok());
        auto owner = gov->store().principal("admin");
        REQUIRE(gov->store()
                    .update_permissions(securable->id, type, {{who, {privilege}, {}}}, owner->id)
                    .ok());
    }

    httplib::Result call(const std::string& token, const std::string& method,
                         const std::string& path, const json& body = nullptr) {
        httplib::Client c("127.0.0.1", server->port());
        c.set_read_timeout(60, 0);
        httplib::Headers h = {{"Authorization", "Bearer " + token}};
        if (method == "GET") {
            return c.Get(path, h);
        }
        if (method == "PUT") {
            return c.Put(path, h, body.dump(), "application/json");
        }
        if (method == "DELETE") {
            return c.Delete(path, h);
        }
        return c.Post(path, h, body.dump(), "application/json");
    }

    json ok(const httplib::Result& r) {
        REQUIRE(r);
        INFO(r->body);
        REQUIRE(r->status == 200);
        return json::parse(r->body);
    }

    int status(const httplib::Result& r) {
        REQUIRE(r);
        return r->status;
    }

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

json rows() {
    return json::array({{{"request", "Capital of France?"}, {"expected_response", "Paris"},
                         {"response", "Paris"}},
                        {{"request", "Capital of Italy?"}, {"expected_response", "Rome"},
                         {"response", "Milan"}},
                        {{"request", "Say hi"}, {"response", "<b>hi</b>"}}});
}

}  // namespace

TEST_CASE("eval REST: sets are governed tables with versions, import and export") {
    Site site;
    json v1 = site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                                {{"name", "main.qa.set"}, {"rows", rows()}}));
    CHECK(v1["name"] == "main.qa.set");
    CHECK(v1["version"] == 1);
    CHECK(v1["n_rows"] == 3);
    json v2 = site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                                {{"name", "main.qa.set"},
                                 {"jsonl", "{\"request\": \"one\"}\n{\"request\": \"two\"}\n"}}));
    CHECK(v2["version"] == 2);
    CHECK(v2["n_rows"] == 2);
    // The set is a catalog table owned by its creator.
    auto table = site.gov->store().securable(SecurableType::kTable, "main.qa.set");
    REQUIRE(table.ok());
    CHECK(table->owner == "alice");
    CHECK(table->tags.at("kind") == "eval_set");

    auto bad = site.call(site.alice, "POST", "/api/eval/sets",
                         {{"name", "main.qa.set"},
                          {"rows", json::array({{{"request", "a"}}, {{"request", "b"}, {"x", 1}}})}});
    CHECK(site.status(bad) == 400);
    CHECK(json::parse(bad->body)["error"]["message"] == "rows[1]: unknown field 'x'");
    auto bad_line = site.call(site.alice, "POST", "/api/eval/sets",
                              {{"name", "main.qa.set"}, {"jsonl", "{\"request\": \"a\"}\n{]"}});
    CHECK(json::parse(bad_line->body)["error"]["message"] == "line 2: not valid JSON");
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/sets",
                                {{"name", "noschema"}, {"rows", rows()}})) == 400);

    json sets = site.ok(site.call(site.alice, "GET", "/api/eval/sets"));
    REQUIRE(sets["sets"].size() == 1);
    CHECK(sets["sets"][0]["name"] == "main.qa.set");
    CHECK(sets["sets"][0]["latest_version"] == 2);
    CHECK(sets["sets"][0]["n_rows"] == 2);
    CHECK(sets["sets"][0]["created_at"].is_number());
    json versions = site.ok(site.call(site.alice, "GET", "/api/eval/sets/main.qa.set"));
    CHECK(versions["versions"].size() == 2);
    CHECK(versions["versions"][0]["n_rows"] == 3);
    json first = site.ok(site.call(site.alice, "GET", "/api/eval/sets/main.qa.set/rows?version=1"));
    CHECK(first["rows"] == rows());
    auto exported = site.call(site.alice, "GET", "/api/eval/sets/main.qa.set/export?version=2");
    REQUIRE(exported);
    CHECK(exported->status == 200);
    CHECK(exported->body == "{\"request\":\"one\"}\n{\"request\":\"two\"}\n");
    CHECK(site.status(site.call(site.alice, "GET",
                                "/api/eval/sets/main.qa.set/rows?version=9")) == 404);
    CHECK(site.status(site.call(site.alice, "GET",
                                "/api/eval/sets/main.qa.set/rows?version=x")) == 400);

    // An outsider: no CREATE_TABLE, no SELECT, and the set is not listed to him.
    CHECK(site.status(site.call(site.bob, "POST", "/api/eval/sets",
                                {{"name", "main.qa.set"}, {"rows", rows()}})) == 403);
    CHECK(site.status(site.call(site.bob, "POST", "/api/eval/sets",
                                {{"name", "main.qa.other"}, {"rows", rows()}})) == 403);
    CHECK(site.status(site.call(site.bob, "GET", "/api/eval/sets/main.qa.set/rows")) == 403);
    CHECK(site.ok(site.call(site.bob, "GET", "/api/eval/sets"))["sets"].empty());
    CHECK(site.audit_count({{"principal", "bob"}, {"result", "deny"}}) == 3);
    CHECK(site.audit_count({{"principal", "alice"}, {"action", "eval_set.version"}}) == 2);
    CHECK(site.audit_count({{"principal", "alice"}, {"action", "securable.create"}}) == 1);

    // The set's table dropped (through the catalog API), its versions stay: whoever made a new
    // table of that name would own and read them, so only an admin may.
    Store& store = site.gov->store();
    REQUIRE(store.delete_securable(SecurableType::kTable, "main.qa.set", false).ok());
    site.grant(SecurableType::kCatalog, "main", "bob", Privilege::kUseCatalog);
    site.grant(SecurableType::kSchema, "main.qa", "bob", Privilege::kUseSchema);
    site.grant(SecurableType::kSchema, "main.qa", "bob", Privilege::kCreateTable);
    CHECK(site.status(site.call(site.bob, "POST", "/api/eval/sets",
                                {{"name", "main.qa.set"}, {"rows", rows()}})) == 403);
    CHECK(store.securable(SecurableType::kTable, "main.qa.set").status().code() ==
          sluice::StatusCode::kNotFound);
    // A plain table of that name is not the set: its grants open nothing of it.
    auto bob_p = store.principal("bob");
    REQUIRE(store.create_securable(SecurableType::kTable, "main.qa.set", bob_p->id, "", {}).ok());
    CHECK(site.status(site.call(site.bob, "GET", "/api/eval/sets/main.qa.set/rows")) == 404);
    CHECK(site.ok(site.call(site.bob, "GET", "/api/eval/sets"))["sets"].empty());
    // An admin takes the set back.
    REQUIRE(store.delete_securable(SecurableType::kTable, "main.qa.set", false).ok());
    json v3 = site.ok(site.call(site.admin, "POST", "/api/eval/sets",
                                {{"name", "main.qa.set"}, {"rows", rows()}}));
    CHECK(v3["version"] == 3);
}

TEST_CASE("eval REST: a set is deleted whole, by those who manage it") {
    Site site;
    Store& store = site.gov->store();
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    // Not through the catalog API, alone or with its schema: its versions would stay behind.
    auto dropped = site.call(site.admin, "DELETE", "/api/2.1/unity-catalog/tables/main.qa.set");
    CHECK(site.status(dropped) == 409);
    CHECK(dropped->body.find("DELETE /api/eval/sets/main.qa.set") != std::string::npos);
    CHECK(site.status(site.call(site.admin, "DELETE",
                                "/api/2.1/unity-catalog/schemas/main.qa?force=true")) == 409);
    CHECK(store.securable(SecurableType::kTable, "main.qa.set").ok());
    // Bob may not; to alice (the owner) it goes with its versions.
    CHECK(site.status(site.call(site.bob, "DELETE", "/api/eval/sets/main.qa.set")) == 403);
    json deleted = site.ok(site.call(site.alice, "DELETE", "/api/eval/sets/main.qa.set"));
    CHECK(deleted == json{{"name", "main.qa.set"}, {"deleted_versions", 2}});
    CHECK(store.securable(SecurableType::kTable, "main.qa.set").status().code() ==
          sluice::StatusCode::kNotFound);
    CHECK(site.ok(site.call(site.admin, "GET", "/api/eval/sets"))["sets"].empty());
    CHECK(site.status(site.call(site.alice, "DELETE", "/api/eval/sets/main.qa.set")) == 404);
    // The name is free: a new set starts at version 1, without an admin.
    json fresh = site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                                   {{"name", "main.qa.set"}, {"rows", rows()}}));
    CHECK(fresh["version"] == 1);
    // Versions without a table (an older drop): only an admin deletes them.
    REQUIRE(store.delete_securable(SecurableType::kTable, "main.qa.set", false).ok());
    CHECK(site.status(site.call(site.alice, "DELETE", "/api/eval/sets/main.qa.set")) == 403);
    CHECK(site.ok(site.call(site.admin, "DELETE", "/api/eval/sets/main.qa.set")) ==
          json{{"name", "main.qa.set"}, {"deleted_versions", 1}});
    // A plain table of a set's name is not a set.
    auto plain = site.call(site.admin, "POST", "/api/2.1/unity-catalog/tables",
                           {{"name", "plain"}, {"catalog_name", "main"}, {"schema_name", "qa"}});
    CHECK(site.status(plain) == 200);
    CHECK(site.status(site.call(site.admin, "DELETE", "/api/eval/sets/main.qa.plain")) == 404);
    CHECK(site.audit_count({{"principal", "alice"}, {"action", "eval_set.delete"}}) == 1);
}

TEST_CASE("eval REST: runs, reports, comparison, feedback, calibration and corrections") {
    Site site;
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    // The rows' own responses, judged.
    json a = site.ok(site.call(site.alice, "POST", "/api/eval/runs",
                               {{"set", "main.qa.set"},
                                {"judges", {"correctness", "relevance"}},
                                {"concurrency", 1}}));
    CHECK(a["set_version"] == 1);
    CHECK(a["status"] == "succeeded");
    CHECK(a["aggregates"]["correctness"]["n"] == 2);
    CHECK(a["aggregates"]["correctness"]["pass_rate"] == 1.0);
    CHECK(a["aggregates"]["relevance"]["ci_low"] == 1.0);
    CHECK(a["metrics"]["exact_match"].get<double>() == doctest::Approx(0.5));
    REQUIRE(a["rows"].size() == 3);
    CHECK(a["rows"][1]["verdicts"]["correctness"]["verdict"] == "yes");
    CHECK(a["rows"][1]["verdicts"]["correctness"]["rationale"] == "looks right");
    CHECK(a["rows"][1]["metrics"]["exact_match"] == 0.0);
    CHECK(a["rows"][0]["root_cause"] == "");
    // The agent answers every row, each with a trace.
    json b = site.ok(site.call(site.alice, "POST", "/api/eval/runs",
                               {{"agent", "main.qa.helper"}, {"set", "main.qa.set"},
                                {"judges", {"relevance"}},
                                {"custom_judges", {{{"name", "polite"}, {"prompt", "{response}"},
                                                    {"rubric", "polite"}}}}}));
    std::string trace = b["rows"][0]["trace_id"];
    CHECK(trace.size() == 32);
    CHECK(b["aggregates"].contains("polite"));
    CHECK(b["rows"][0]["response"] == kVerdict);
    CHECK(site.status(site.call(site.bob, "POST", "/api/eval/runs",
                                {{"agent", "main.qa.helper"}, {"set", "main.qa.set"}})) == 403);
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/runs",
                                {{"set", "main.qa.set"}, {"judges", {"nope"}}})) == 400);
    // The judges' tokens are charged to the caller in governance's usage, and so are the
    // agent's runs that answered the rows.
    UsageQuery by_agent;
    by_agent.group_by = {UsageDimension::kAgent};
    auto spent = site.gov->usage().query(by_agent);
    REQUIRE(spent.ok());
    REQUIRE(spent->size() == 2);
    for (const auto& row : *spent) {
        if (row.agent == "eval.judges") {
            CHECK(row.tokens.input_tokens ==
                  a["judge_usage"]["prompt_tokens"].get<std::int64_t>() +
                      b["judge_usage"]["prompt_tokens"].get<std::int64_t>());
        } else {
            CHECK(row.agent == "main.qa.helper");
            CHECK(row.requests == 3);
            CHECK(row.tokens.input_tokens > 0);
        }
    }

    json runs = site.ok(site.call(site.alice, "GET", "/api/eval/runs"));
    REQUIRE(runs["runs"].size() == 2);
    CHECK(runs["runs"][0]["pass_rates"]["correctness"] == 1.0);
    CHECK(runs["runs"][1]["agent"] == "main.qa.helper");
    CHECK(site.ok(site.call(site.bob, "GET", "/api/eval/runs"))["runs"].empty());
    std::string id_a = a["id"];
    std::string id_b = b["id"];
    json got = site.ok(site.call(site.alice, "GET", "/api/eval/runs/" + id_a));
    CHECK(got["rows"] == a["rows"]);
    CHECK(site.status(site.call(site.bob, "GET", "/api/eval/runs/" + id_a)) == 403);
    auto html = site.call(site.alice, "GET", "/api/eval/runs/" + id_a + "/report.html");
    REQUIRE(html);
    CHECK(html->status == 200);
    CHECK(html->get_header_value("Content-Type").find("text/html") == 0);
    CHECK(html->body.find("&lt;b&gt;hi&lt;/b&gt;") != std::string::npos);
    CHECK(html->body.find("<b>hi</b>") == std::string::npos);
    json compared =
        site.ok(site.call(site.alice, "GET", "/api/eval/compare?a=" + id_a + "&b=" + id_b));
    CHECK(compared["a"] == id_a);
    CHECK(compared["judges"]["relevance"]["p_value"] == 1.0);
    CHECK(compared["judges"]["relevance"]["significant"] == false);
    CHECK(compared["rows"].size() == 3);
    CHECK(site.status(site.call(site.alice, "GET", "/api/eval/compare?a=" + id_a)) == 400);

    // Feedback on the agent's trace: its principal may, an outsider may not even see it.
    json fb = site.ok(site.call(site.alice, "POST", "/api/feedback",
                                {{"trace_id", trace}, {"rating", "down"},
                                 {"correction", "It is Paris."}, {"comment", "wrong format"}}));
    CHECK(fb["label"] == "no");
    CHECK(site.status(site.call(site.bob, "POST", "/api/feedback",
                                {{"trace_id", trace}, {"rating", 5}})) == 404);
    CHECK(site.status(site.call(site.alice, "POST", "/api/feedback",
                                {{"trace_id", trace}, {"rating", 9}})) == 400);
    json listed = site.ok(site.call(site.alice, "GET", "/api/feedback?trace_id=" + trace));
    REQUIRE(listed["feedback"].size() == 1);
    CHECK(listed["feedback"][0]["correction"] == "It is Paris.");
    // The answer to the write shows the time stored, as the listing does (it used to say 0).
    CHECK(fb["created_at"].get<std::int64_t>() > 0);
    CHECK(fb["created_at"] == listed["feedback"][0]["created_at"]);
    CHECK(fb["id"] == listed["feedback"][0]["id"]);
    CHECK(site.audit_count({{"principal", "alice"}, {"action", "feedback.create"}}) == 1);
    CHECK(site.audit_count({{"principal", "bob"}, {"action", "feedback.create"}}) == 1);

    // The judge said yes on that trace; the person said no.
    json calibration = site.ok(site.call(site.alice, "GET", "/api/eval/calibration?judge=relevance"));
    CHECK(calibration["n"] == 1);
    CHECK(calibration["agreement"] == 0.0);

    json corrected =
        site.ok(site.call(site.alice, "POST", "/api/eval/sets/main.qa.set/corrections", json::object()));
    CHECK(corrected["version"] == 2);
    CHECK(corrected["n_rows"] == 4);
    json latest = site.ok(site.call(site.alice, "GET", "/api/eval/sets/main.qa.set/rows"));
    CHECK(latest["rows"][3]["request"] == "Capital of France?");
    CHECK(latest["rows"][3]["expected_response"] == "It is Paris.");
    CHECK(latest["rows"][3]["source_trace_id"] == trace);
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/sets/main.qa.set/corrections",
                                json::object())) == 400);  // nothing new to add
    // Corrections to a set that does not exist make nothing: a table owned by the caller used
    // to be created before the 404, taking the name from whoever would create the set.
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/sets/main.qa.none/corrections",
                                json::object())) == 404);
    CHECK(site.gov->store().securable(SecurableType::kTable, "main.qa.none").status().code() ==
          sluice::StatusCode::kNotFound);
}

TEST_CASE("eval REST: monitor settings are for admins; best-of-N answers with its candidates") {
    Site site;
    CHECK(site.status(site.call(site.alice, "PUT", "/api/eval/monitor", {{"fraction", 1}})) == 403);
    json set = site.ok(site.call(site.admin, "PUT", "/api/eval/monitor",
                                 {{"fraction", 0.5}, {"judges", {"safety"}}}));
    CHECK(set["settings"]["fraction"] == 0.5);
    CHECK(set["settings"]["judges"] == json::array({"safety"}));
    CHECK(site.status(site.call(site.admin, "PUT", "/api/eval/monitor", {{"fraction", -1}})) ==
          400);
    CHECK(site.audit_count({{"principal", "alice"}, {"result", "deny"}}) >= 1);

    json best = site.ok(site.call(site.alice, "POST", "/api/eval/best-of-n",
                                  {{"input", "Say hi"}, {"n", 3}}));
    CHECK(best["candidates"].size() == 3);
    CHECK(best["candidates"][0]["score"] == 2);  // relevance and safety both said yes
    CHECK(best["best_index"] == 0);
    // Bounds are checked before the model runs, on the integer as written: 2^32 + 1 used to be
    // read as 1 and one candidate was sampled.
    for (json n : {json(40), json(0), json(4294967297LL), json(18446744073709551615ULL)}) {
        CAPTURE(n);
        auto refused =
            site.call(site.alice, "POST", "/api/eval/best-of-n", {{"input", "x"}, {"n", n}});
        CHECK(site.status(refused) == 400);
        CHECK(json::parse(refused->body)["error"]["message"] ==
              "n: expected an integer from 1 to 16");
    }
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/best-of-n",
                                {{"input", "x"}, {"max_tokens", 4294967297LL}})) == 400);
    // A request the judges cannot score is refused before the model runs, and audited so.
    auto& scripted = dynamic_cast<agents::ScriptedChatModel&>(*site.model);
    const size_t model_calls = scripted.calls();
    auto unscored = site.call(site.alice, "POST", "/api/eval/best-of-n",
                              {{"input", "x"}, {"n", 1}, {"judges", {"correctness"}}});
    CHECK(site.status(unscored) == 400);
    CHECK(unscored->body.find("none applies") != std::string::npos);
    CHECK(scripted.calls() == model_calls);
    CHECK(site.audit_count(
              {{"principal", "alice"}, {"action", "eval.best_of_n"}, {"result", "ok"}}) == 1);
    CHECK(site.audit_count(
              {{"principal", "alice"}, {"action", "eval.best_of_n"}, {"result", "error"}}) == 1);
}

TEST_CASE("eval REST: judging uses the model as its callers may: EXECUTE, guardrails, limits") {
    Site site;
    Store& s = site.gov->store();
    const Principal owner = *s.principal("admin");
    REQUIRE(s.create_securable(SecurableType::kModel, "main.qa.dbrx", owner.id, "", {}).ok());
    site.services->model_securable = [] { return std::string("main.qa.dbrx"); };
    const json ask = {{"input", "Say hi"}, {"n", 2}};

    // Without EXECUTE on the catalog model: refused before the model runs, and audited.
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/best-of-n", ask)) == 403);
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/runs",
                                {{"set", "main.qa.nothing"}})) != 200);
    CHECK(site.audit_count({{"principal", "alice"}, {"result", "deny"}}) >= 1);
    site.grant(SecurableType::kModel, "main.qa.dbrx", "alice", Privilege::kExecute);
    json best = site.ok(site.call(site.alice, "POST", "/api/eval/best-of-n", ask));
    const std::int64_t used = best["usage"]["total_tokens"].get<std::int64_t>();
    CHECK(used > 0);

    // The tokens are charged to the caller on the judging endpoint, as agent eval.judges.
    LimitSpec spec;
    spec.principal = "alice";
    spec.kind = LimitKind::kTokensPerDay;
    spec.max = used;  // spent already: no room for another call today
    REQUIRE(site.gov->usage().set_limit(spec, "admin").ok());
    auto refused = site.call(site.alice, "POST", "/api/eval/best-of-n", ask);
    CHECK(site.status(refused) == 429);

    // The endpoint's input policy sees the input (bob has room and EXECUTE).
    site.grant(SecurableType::kCatalog, "main", "bob", Privilege::kUseCatalog);
    site.grant(SecurableType::kSchema, "main.qa", "bob", Privilege::kUseSchema);
    site.grant(SecurableType::kModel, "main.qa.dbrx", "bob", Privilege::kExecute);
    EndpointSettings settings;
    settings.name = "scripted";
    settings.guardrails.input = PiiAction::kBlock;
    REQUIRE(site.gov->endpoints().put(settings, "admin").ok());
    auto blocked = site.call(site.bob, "POST", "/api/eval/best-of-n",
                             {{"input", "mail john.doe@example.com"}, {"n", 1}});
    CHECK(site.status(blocked) == 400);
    CHECK(site.ok(site.call(site.bob, "POST", "/api/eval/best-of-n", ask))["candidates"].size() ==
          2);
}

TEST_CASE("eval REST: a document QA run answers every row as POST /api/qa does: charged, guarded") {
    Site site;
    Store& s = site.gov->store();
    const Principal owner = *s.principal("admin");
    sluice::retrieval::IndexSettings settings;
    settings.name = "main.qa.docs";
    auto index = site.indexes->create(settings);
    REQUIRE(index.ok());
    sluice::retrieval::Document doc;
    doc.key = "holidays";
    doc.uri = "file:///holidays.md";
    doc.title = "Holidays";
    doc.text = "Employees get twenty five holiday days. Ask jane.doe@example.com about them.";
    doc.acl.principals = {"alice", "bob"};
    REQUIRE((*index)->upsert({doc}).ok());
    REQUIRE(s.create_securable(SecurableType::kVectorIndex, "main.qa.docs", owner.id, "", {}).ok());
    site.grant(SecurableType::kVectorIndex, "main.qa.docs", "alice", Privilege::kSelect);
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"},
                       {"rows", json::array({{{"request", "How many holiday days?"}},
                                             {{"request", "Which holiday days apply?"}}})}}));
    const json run_request = {{"set", "main.qa.set"},
                              {"qa", {{"index", "main.qa.docs"}}},
                              {"judges", {"relevance"}},
                              {"concurrency", 1}};

    // The answers' tokens are the caller's, as agent "qa", beside the judges'.
    json run = site.ok(site.call(site.alice, "POST", "/api/eval/runs", run_request));
    REQUIRE(run["rows"].size() == 2);
    CHECK(run["rows"][0]["response"] == kVerdict);
    CHECK(run["status"] == "succeeded");
    UsageQuery by_agent;
    by_agent.group_by = {UsageDimension::kAgent};
    auto spent = site.gov->usage().query(by_agent);
    REQUIRE(spent.ok());
    std::int64_t qa_requests = 0;
    std::int64_t qa_tokens = 0;
    for (const auto& row : *spent) {
        if (row.agent == "qa") {
            qa_requests = row.requests;
            qa_tokens = row.tokens.input_tokens + row.tokens.output_tokens;
        }
    }
    CHECK(qa_requests == 2);
    CHECK(qa_tokens > 0);
    CHECK(static_cast<double>(qa_tokens) ==
          doctest::Approx(run["metrics"]["total_tokens"].get<double>() * 2));

    // The passages reach the model through the endpoint's input policy: a blocking one leaves
    // the rows unanswered rather than sending the address to the model.
    EndpointSettings endpoint;
    endpoint.name = "scripted";
    endpoint.guardrails.input = PiiAction::kBlock;
    REQUIRE(site.gov->endpoints().put(endpoint, "admin").ok());
    json blocked = site.ok(site.call(site.alice, "POST", "/api/eval/runs", run_request));
    CHECK(blocked["status"] == "completed_with_errors");
    for (const json& row : blocked["rows"]) {
        CHECK(row["root_cause"] == "error");
        CHECK(row.value("error", "").find("the retrieved passages") != std::string::npos);
    }
}

TEST_CASE("eval REST: another reader of a set sees runs of its responses, not another's answers") {
    Site site;
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    site.grant(SecurableType::kCatalog, "main", "bob", Privilege::kUseCatalog);
    site.grant(SecurableType::kSchema, "main.qa", "bob", Privilege::kUseSchema);
    site.grant(SecurableType::kTable, "main.qa.set", "bob", Privilege::kSelect);
    // Judged responses come from the set, which bob reads too; the agent's answers were
    // produced as alice (her documents, her tool results), like her traces.
    json own = site.ok(site.call(site.alice, "POST", "/api/eval/runs",
                                 {{"set", "main.qa.set"}, {"judges", {"relevance"}}}));
    json answered = site.ok(site.call(
        site.alice, "POST", "/api/eval/runs",
        {{"agent", "main.qa.helper"}, {"set", "main.qa.set"}, {"judges", {"relevance"}}}));
    const std::string own_id = own["id"];
    const std::string answered_id = answered["id"];

    json listed = site.ok(site.call(site.bob, "GET", "/api/eval/runs"));
    REQUIRE(listed["runs"].size() == 1);
    CHECK(listed["runs"][0]["id"] == own_id);
    CHECK(site.ok(site.call(site.bob, "GET", "/api/eval/runs/" + own_id))["rows"] == own["rows"]);
    CHECK(site.status(site.call(site.bob, "GET", "/api/eval/runs/" + answered_id)) == 404);
    CHECK(site.status(
              site.call(site.bob, "GET", "/api/eval/runs/" + answered_id + "/report.html")) == 404);
    CHECK(site.status(site.call(site.bob, "GET",
                                "/api/eval/compare?a=" + own_id + "&b=" + answered_id)) == 404);
    // Its principal and admins read it.
    CHECK(site.ok(site.call(site.alice, "GET", "/api/eval/runs"))["runs"].size() == 2);
    CHECK(site.ok(site.call(site.alice, "GET", "/api/eval/runs/" + answered_id))["rows"] ==
          answered["rows"]);
    CHECK(site.ok(site.call(site.admin, "GET", "/api/eval/runs/" + answered_id))["rows"] ==
          answered["rows"]);
    // Nor do its verdicts count in bob's calibration.
    site.ok(site.call(site.alice, "POST", "/api/feedback",
                      {{"trace_id", answered["rows"][0]["trace_id"]}, {"rating", "down"}}));
    CHECK(site.ok(site.call(site.alice, "GET", "/api/eval/calibration?judge=relevance"))["n"] == 1);
    CHECK(site.ok(site.call(site.bob, "GET", "/api/eval/calibration?judge=relevance"))["n"] == 0);
}

TEST_CASE("eval REST: a misspelt member is a 400 naming it, not a request served with defaults") {
    Site site;
    auto refused = [&](const std::string& path, const json& body, const std::string& fragment) {
        CAPTURE(path);
        CAPTURE(body);
        auto answer = site.call(site.alice, "POST", path, body);
        CHECK(site.status(answer) == 400);
        CHECK(json::parse(answer->body)["error"]["message"].get<std::string>().find(fragment) !=
              std::string::npos);
    };
    refused("/api/eval/sets", {{"name", "main.qa.set"}, {"rows", rows()}, {"version", 3}},
            "unrecognized request parameters: 'version'; accepted: jsonl, name, rows");
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    // "judge" for "judges" ran every built-in judge.
    refused("/api/eval/runs", {{"set", "main.qa.set"}, {"judge", {"relevance"}}},
            "unrecognized request parameters: 'judge'; accepted: agent, bootstrap_resamples");
    refused("/api/eval/runs",
            {{"set", "main.qa.set"}, {"qa", {{"index", "main.qa.docs"}, {"option", {{"k", 1}}}}}},
            "qa: unrecognized request parameters: 'option'; accepted: index, options");
    refused("/api/eval/best-of-n", {{"input", "Say hi"}, {"candidates", 2}},
            "unrecognized request parameters: 'candidates'");
    refused("/api/feedback",
            {{"trace_id", std::string(32, 'a')}, {"rating", "up"}, {"coment", "x"}},
            "feedback: unknown field 'coment'");
    CHECK(site.ok(site.call(site.alice, "GET", "/api/eval/runs"))["runs"].empty());
}

TEST_CASE("eval REST: a run refused for what it asks is no use of the judging model") {
    Site site;
    site.ok(site.call(site.alice, "POST", "/api/eval/sets",
                      {{"name", "main.qa.set"}, {"rows", rows()}}));
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/runs",
                                {{"set", "main.qa.set"}, {"agent", 5}})) == 400);
    CHECK(site.status(site.call(site.alice, "POST", "/api/eval/runs",
                                {{"set", "main.qa.set"}, {"qa", {{"index", "main.qa.none"}}}})) ==
          404);
    CHECK(site.status(site.call(site.bob, "POST", "/api/eval/runs",
                                {{"set", "main.qa.set"}, {"agent", "main.qa.helper"}})) == 403);
    // They used to be charged as judge requests of no tokens, against the caller's limits.
    UsageQuery by_agent;
    by_agent.group_by = {UsageDimension::kAgent};
    auto spent = site.gov->usage().query(by_agent);
    REQUIRE(spent.ok());
    CHECK(spent->empty());
    site.ok(site.call(site.alice, "POST", "/api/eval/runs",
                      {{"set", "main.qa.set"}, {"judges", {"relevance"}}}));
    spent = site.gov->usage().query(by_agent);
    REQUIRE(spent.ok());
    REQUIRE(spent->size() == 1);
    CHECK((*spent)[0].agent == "eval.judges");
    CHECK((*spent)[0].requests == 1);
}
