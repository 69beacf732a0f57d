// An agent run's use of the served model is governed as a call of the OpenAI routes: EXECUTE on
// the catalog model (for the identity the run acts as), the caller's limits, the endpoint's
// guardrails on what the model reads (the conversation, tool results) and writes, and the run's
// tokens charged to the caller under the agent's name.

#include "app/agent_model_use.h"

#include "../agents/agents_fixture.h"
#include "agents/agent_runtime.h"
#include "agents/scripted_chat_model.h"

namespace sluice::app {
namespace {

using agents::testing::World;
using governance::PiiAction;
using governance::Privilege;
using governance::SecurableType;
using nlohmann::json;

const std::string kModel = "main.models.llm";
const std::string kAgent = "main.tools.helper";
const std::string kEndpoint = "scripted";

// A governed world with the SQL tool over Chinook, the agent, the catalog model and a runtime
// whose runs use a scripted model under the server's governor.
struct AgentWorld {
    World world;
    std::filesystem::path db;
    std::unique_ptr<agents::AgentStore> store;
    std::unique_ptr<agents::TraceStore> traces;
    std::shared_ptr<agents::ScriptedChatModel> model;
    std::unique_ptr<agents::AgentRuntime> runtime;
    bool ready = false;

    AgentWorld() {
        if (!world.govern_chinook(&db)) {
            return;
        }
        auto opened_store =
            agents::AgentStore::open(world.dir.path / "catalog.db", world.gov->secrets());
        auto opened_traces = agents::TraceStore::open(world.dir.path / "catalog.db");
        REQUIRE(opened_store.ok());
        REQUIRE(opened_traces.ok());
        store = std::move(*opened_store);
        traces = std::move(*opened_traces);
        world.function("main.tools.sql_query");
        REQUIRE(store
                    ->put_tool(*agents::tool_from_json(
                        json{{"name", "main.tools.sql_query"},
                             {"kind", "sql_query"},
                             {"config", {{"schema", "music.store"}, {"database", db.string()}}}}))
                    .ok());
        auto& s = world.gov->store();
        REQUIRE(s.create_securable(SecurableType::kAgent, kAgent, world.owner.id, "", {}).ok());
        REQUIRE(
            s.create_securable(SecurableType::kSchema, "main.models", world.owner.id, "", {}).ok());
        REQUIRE(s.create_securable(SecurableType::kModel, kModel, world.owner.id, "", {}).ok());
        agents::AgentSpec spec;
        spec.name = kAgent;
        spec.tools = {"main.tools.sql_query"};
        REQUIRE(store->put_agent(spec).ok());
        world.grant(SecurableType::kAgent, kAgent, "alice", Privilege::kExecute);
        world.grant(SecurableType::kFunction, "main.tools.sql_query", "alice", Privilege::kExecute);
        world.grant(SecurableType::kSchema, "main.models", "alice", Privilege::kUseSchema);
        world.grant(SecurableType::kModel, kModel, "alice", Privilege::kExecute);
        runtime = std::make_unique<agents::AgentRuntime>(
            *world.gov, *store, *traces, nullptr,
            [this](const std::string&) -> Result<std::shared_ptr<agents::ChatModel>> {
                return std::shared_ptr<agents::ChatModel>(model);
            },
            agent_model_governor(*world.gov, [] { return kModel; }));
        ready = true;
    }

    // The next runs answer from `script`.
    void script(const json& turns) {
        auto made = agents::ScriptedChatModel::make(turns);
        REQUIRE(made.ok());
        model = std::move(*made);
    }

    void guardrails(PiiAction input, PiiAction output) {
        governance::EndpointSettings settings;
        settings.name = kEndpoint;
        settings.guardrails.input = input;
        settings.guardrails.output = output;
        REQUIRE(world.gov->endpoints().put(settings, "owner").ok());
    }

    Result<agents::InvokeResult> ask(const std::string& question,
                                     std::vector<agents::AgentEvent>* events = nullptr) {
        agents::EventSink sink;
        if (events != nullptr) {
            sink = [events](const agents::AgentEvent& event) { events->push_back(event); };
        }
        return runtime->invoke(world.as(world.alice), kAgent, {{"user", question, {}, {}}}, sink);
    }

    // alice's usage rows under the agent: requests and tokens.
    governance::UsageAggregate usage() {
        governance::UsageQuery query;
        query.group_by = {governance::UsageDimension::kAgent};
        query.principal = "alice";
        auto rows = world.gov->usage().query(query);
        REQUIRE(rows.ok());
        for (const auto& row : *rows) {
            if (row.agent == kAgent) {
                return row;
            }
        }
        return {};
    }
};

// A tool call whose result carries an e-mail address built from Customer's unmasked columns.
const json kMailLookup = {
    {"tool_calls",
     {{{"name", "sql_query"},
       {"arguments",
        {{"query",
          "SELECT lower(FirstName) || '.' || lower(LastName) || '@example.com' AS mail "
          "FROM Customer ORDER BY CustomerId LIMIT 1"}}}}}}};

}  // namespace

TEST_CASE("an agent run needs EXECUTE on the model, for the identity it acts as") {
    AgentWorld w;
    if (!w.ready) {
        return;
    }
    w.script(json::array({{{"content", "done"}}}));
    auto& s = w.world.gov->store();
    auto model = s.securable(SecurableType::kModel, kModel);
    REQUIRE(model.ok());
    REQUIRE(s.update_permissions(model->id, SecurableType::kModel,
                                 {{"alice", {}, {Privilege::kExecute}}}, w.world.owner.id)
                .ok());
    auto denied = w.ask("Hello");
    REQUIRE(denied.status().code() == StatusCode::kPermissionDenied);
    CHECK(denied.status().message().find("EXECUTE") != std::string::npos);
    CHECK(w.model->calls() == 0);
    CHECK(w.usage().requests == 0);

    // Run as a service principal that holds EXECUTE: its right is lent to the caller.
    w.world.grant(SecurableType::kCatalog, "main", "svc", Privilege::kUseCatalog);
    w.world.grant(SecurableType::kSchema, "main.models", "svc", Privilege::kUseSchema);
    w.world.grant(SecurableType::kModel, kModel, "svc", Privilege::kExecute);
    auto spec = w.store->agent(kAgent);
    REQUIRE(spec.ok());
    spec->run_as = "svc";
    REQUIRE(w.store->put_agent(*spec).ok());
    auto lent = w.ask("Hello");
    REQUIRE(lent.ok());
    CHECK(lent->run.answer == "done");
    // The caller is charged, under the agent's name.
    CHECK(w.usage().requests == 1);
}

TEST_CASE("the caller's limits are reserved before the run and its tokens charged after") {
    AgentWorld w;
    if (!w.ready) {
        return;
    }
    w.script(json::array({kMailLookup, {{"content", "one two three"}}}));
    auto first = w.ask("Who is the first customer?");
    REQUIRE(first.ok());
    const auto row = w.usage();
    CHECK(row.requests == 1);
    CHECK(row.tokens.input_tokens == first->run.prompt_tokens);
    CHECK(row.tokens.output_tokens == first->run.completion_tokens);
    CHECK(first->run.completion_tokens > 0);

    // A run prepared and never started holds its reservation until dropped, then gives it
    // back without a usage row.
    governance::LimitSpec roomy;
    roomy.principal = "alice";
    roomy.kind = governance::LimitKind::kTokensPerDay;
    roomy.max = 1000000;
    REQUIRE(w.world.gov->usage().set_limit(roomy, "owner").ok());
    auto used = [&] {
        auto limits = w.world.gov->usage().limits();
        REQUIRE(limits.ok());
        REQUIRE(limits->size() == 1);
        return limits->front().used;
    };
    const std::int64_t before = used();
    {
        auto prepared = w.runtime->prepare(w.world.as(w.world.alice), kAgent,
                                           {{"user", "Who is the first customer?", {}, {}}});
        REQUIRE(prepared.ok());
        CHECK(used() > before);
    }
    CHECK(used() == before);
    CHECK(w.usage().requests == 1);
    REQUIRE(w.world.gov->usage().delete_limit(w.world.gov->usage().limits()->front().id).ok());

    governance::LimitSpec limit;
    limit.principal = "alice";
    limit.kind = governance::LimitKind::kTokensPerDay;
    limit.max = first->run.prompt_tokens + first->run.completion_tokens + 10;
    REQUIRE(w.world.gov->usage().set_limit(limit, "owner").ok());
    w.script(json::array({{{"content", "done"}}}));
    auto refused = w.ask("Who is the first customer?");
    REQUIRE(refused.status().code() == StatusCode::kResourceExhausted);
    CHECK(refused.status().message().find("tokens/day") != std::string::npos);
    CHECK(w.model->calls() == 0);
    CHECK(w.usage().requests == 1);
}

TEST_CASE("input guardrails cover the conversation and the tool results") {
    AgentWorld w;
    if (!w.ready) {
        return;
    }
    SUBCASE("masked: the model reads labels, in the question and in the tool's result") {
        w.guardrails(PiiAction::kMask, PiiAction::kNone);
        w.script(json::array({kMailLookup, {{"content", "found it"}}}));
        auto run = w.ask("Mail jane.doe@example.com about the first customer");
        REQUIRE(run.ok());
        auto requests = w.model->requests();
        REQUIRE(requests.size() == 2);
        std::string seen;
        for (const auto& message : requests[1].messages) {
            seen += message.role + ": " + message.content + "\n";
        }
        INFO(seen);
        CHECK(seen.find("[EMAIL]") != std::string::npos);
        CHECK(seen.find("@example.com") == std::string::npos);
        // The tool did return the address: the trace holds it (read only by alice and admins).
        auto trace = w.traces->get(run->trace_id);
        REQUIRE(trace.ok());
        CHECK(agents::trace_to_json(*trace).dump().find("@example.com") != std::string::npos);
    }
    SUBCASE("blocked: a question is refused before the model, a tool result stops the run") {
        w.guardrails(PiiAction::kBlock, PiiAction::kNone);
        w.script(json::array({kMailLookup, {{"content", "found it"}}}));
        auto refused = w.ask("Mail jane.doe@example.com");
        REQUIRE(refused.status().code() == StatusCode::kInvalidArgument);
        CHECK(refused.status().message().find("1 email") != std::string::npos);
        CHECK(refused.status().message().find("jane.doe") == std::string::npos);
        CHECK(w.model->calls() == 0);

        auto stopped = w.ask("Who is the first customer?");
        REQUIRE(stopped.status().code() == StatusCode::kPermissionDenied);
        CHECK(stopped.status().message().rfind("a tool result: ", 0) == 0);
        CHECK(stopped.status().message().find("@example.com") == std::string::npos);
        CHECK(w.model->calls() == 1);  // the turn that called the tool, not the one after
        // The turn that ran is charged.
        CHECK(w.usage().requests == 1);
        CHECK(w.usage().tokens.output_tokens > 0);
    }
}

TEST_CASE("output guardrails cover the answer, streamed and whole") {
    AgentWorld w;
    if (!w.ready) {
        return;
    }
    const json answer = json::array({{{"content", "Write to jane.doe@example.com today"}}});
    SUBCASE("masked") {
        w.guardrails(PiiAction::kNone, PiiAction::kMask);
        w.script(answer);
        auto whole = w.ask("Whom do I write to?");
        REQUIRE(whole.ok());
        CHECK(whole->run.answer == "Write to [EMAIL] today");

        w.script(answer);
        std::vector<agents::AgentEvent> events;
        auto streamed = w.ask("Whom do I write to?", &events);
        REQUIRE(streamed.ok());
        CHECK(streamed->run.answer == "Write to [EMAIL] today");
        std::string tokens;
        for (const auto& event : events) {
            CHECK(event.data.dump().find("jane.doe") == std::string::npos);
            if (event.type == "tokens") {
                tokens += event.data["text"].get<std::string>();
            }
        }
        CHECK(tokens == "Write to [EMAIL] today");
    }
    SUBCASE("blocked: the answer is withheld and the run's tokens still charged") {
        w.guardrails(PiiAction::kNone, PiiAction::kBlock);
        w.script(answer);
        std::vector<agents::AgentEvent> events;
        auto blocked = w.ask("Whom do I write to?", &events);
        REQUIRE(blocked.status().code() == StatusCode::kPermissionDenied);
        CHECK(blocked.status().message().find("withheld") != std::string::npos);
        for (const auto& event : events) {
            CHECK(event.data.dump().find("jane.doe") == std::string::npos);
        }
        CHECK(w.usage().requests == 1);
        CHECK(w.usage().tokens.output_tokens > 0);
    }
}

}  // namespace sluice::app
