#include "agents/agent_runtime.h"

#include "agents/http_tools.h"
#include "agents/retrieval_tool.h"
#include "agents/sql_tools.h"
#include "common/log.h"

namespace sluice::agents {

using nlohmann::json;

AgentRuntime::AgentRuntime(governance::Governance& gov, AgentStore& store, TraceStore& traces,
                           retrieval::IndexManager* indexes, ModelResolver models,
                           ModelGovernor governor)
    : gov_(gov),
      store_(store),
      traces_(traces),
      indexes_(indexes),
      models_(std::move(models)),
      governor_(std::move(governor)) {}

Result<std::shared_ptr<Tool>> AgentRuntime::build_tool(const std::string& function_name) {
    SLUICE_ASSIGN_OR_RETURN(ToolSpec spec, store_.tool(function_name));
    const json& config = spec.config;
    switch (spec.kind) {
        case ToolKind::kSqlQuery:
            return std::shared_ptr<Tool>(std::make_shared<SqlQueryTool>(
                spec.name, spec.description,
                SqlSource{config["schema"].get<std::string>(),
                          config["database"].get<std::string>()},
                SqlLimits{}, gov_));
        case ToolKind::kSqlTemplate: {
            SLUICE_ASSIGN_OR_RETURN(
                auto tool, SqlTemplateTool::make(spec.name, spec.description,
                                                 config["sql"].get<std::string>(),
                                                 config["parameters"],
                                                 SqlSource{config["schema"].get<std::string>(),
                                                           config["database"].get<std::string>()},
                                                 SqlLimits{}, gov_));
            return std::shared_ptr<Tool>(std::move(tool));
        }
        case ToolKind::kVectorSearch: {
            if (indexes_ == nullptr) {
                return failed_precondition("tool '" + spec.name + "': no vector indexes here");
            }
            return std::shared_ptr<Tool>(std::make_shared<VectorSearchTool>(
                spec.name, spec.description, *indexes_, config["index"].get<std::string>(),
                gov_.authorizer()));
        }
        case ToolKind::kHttpRequest: {
            SLUICE_ASSIGN_OR_RETURN(Connection connection,
                                    store_.connection(config["connection"].get<std::string>()));
            return std::shared_ptr<Tool>(std::make_shared<HttpRequestTool>(
                spec.name, spec.description, std::move(connection), gov_.authorizer()));
        }
        case ToolKind::kHttpEndpoint: {
            SLUICE_ASSIGN_OR_RETURN(Connection connection,
                                    store_.connection(config["connection"].get<std::string>()));
            return std::shared_ptr<Tool>(std::make_shared<HttpEndpointTool>(
                spec.name, spec.description, config["method"].get<std::string>(),
                config["url"].get<std::string>(), config["parameters"], std::move(connection),
                gov_.authorizer()));
        }
    }
    return internal_error("unknown tool kind");
}

Result<ToolContext> AgentRuntime::context_for(const governance::RequestContext& request) {
    ToolContext context;
    context.request = request;
    SLUICE_ASSIGN_OR_RETURN(context.groups, gov_.authorizer().groups_of(request.principal_id));
    context.reader = {request.principal, context.groups};
    return context;
}

AgentRuntime::PreparedRun::PreparedRun() = default;
AgentRuntime::PreparedRun::PreparedRun(PreparedRun&&) noexcept = default;
AgentRuntime::PreparedRun::~PreparedRun() = default;

Result<AgentRuntime::PreparedRun> AgentRuntime::prepare(
    const governance::RequestContext& caller, const std::string& agent,
    std::vector<inference::ChatMessage> messages, std::optional<std::int64_t>* retry_after_s,
    const RunOptions& options) {
    SLUICE_RETURN_IF_ERROR(gov_.authorizer().require(caller, governance::Privilege::kExecute,
                                                     governance::SecurableType::kAgent, agent));
    SLUICE_ASSIGN_OR_RETURN(AgentSpec spec, store_.agent(agent));
    if (messages.empty() || messages.back().role != "user") {
        return invalid_argument("messages: the last message must be the user's");
    }
    governance::RequestContext identity = caller;
    if (!spec.run_as.empty()) {
        SLUICE_ASSIGN_OR_RETURN(governance::Principal service,
                                gov_.store().principal(spec.run_as));
        if (service.kind != governance::PrincipalKind::kServicePrincipal) {
            return failed_precondition("agent '" + agent + "': run_as '" + spec.run_as +
                                       "' is not a service principal");
        }
        identity.principal_id = service.id;
        identity.principal = service.name;
        governance::AuditEvent event = governance::audit_event_for(caller);
        event.action = "agent.run_as";
        event.securable = "agent:" + agent;
        event.result = "ok";
        event.details = json{{"run_as", service.name}}.dump();
        SLUICE_RETURN_IF_ERROR(gov_.audit().append(std::move(event)));
    }
    PreparedRun prepared;
    prepared.caller_ = caller;
    prepared.agent_ = agent;
    SLUICE_ASSIGN_OR_RETURN(prepared.context_, context_for(identity));
    std::vector<std::shared_ptr<Tool>> tools;
    for (const std::string& name : spec.tools) {
        SLUICE_ASSIGN_OR_RETURN(auto tool, build_tool(name));
        tools.push_back(std::move(tool));
    }
    SLUICE_ASSIGN_OR_RETURN(prepared.box_, Toolbox::make(std::move(tools), &gov_.authorizer()));
    SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<ChatModel> model, models_(spec.endpoint));
    SLUICE_ASSIGN_OR_RETURN(prepared.planner_, planner_named(spec.planner));
    RunRequest& request = prepared.request_;
    request.instructions = spec.instructions;
    request.messages = std::move(messages);
    request.budgets = spec.budgets;
    request.options = options;
    ModelUseRequest use_request{caller,
                                identity,
                                agent,
                                spec.endpoint.empty() ? model->name() : spec.endpoint,
                                first_turn_estimate(*model, request),
                                request.messages};
    if (governor_) {
        SLUICE_ASSIGN_OR_RETURN(prepared.use_, governor_(use_request, model, retry_after_s));
    } else {
        prepared.use_ = recorded_model_use(gov_, std::move(use_request), model);
    }
    return prepared;
}

Result<InvokeResult> AgentRuntime::run(PreparedRun prepared, const EventSink& events,
                                       std::stop_token stop) {
    const governance::RequestContext& caller = prepared.caller_;
    Trace trace(caller.principal, caller.request_id);
    ToolContext& context = prepared.context_;
    context.trace = &trace;
    context.stop = std::move(stop);
    // Every answer carries its trace id: the final event gets it too.
    EventSink with_trace = [&events, &trace](const AgentEvent& event) {
        if (!events) {
            return;
        }
        if (event.type != "final") {
            events(event);
            return;
        }
        AgentEvent final_event = event;
        final_event.data["trace_id"] = trace.id();
        events(final_event);
    };
    if (events) {
        // First, so that a client that leaves early still knows where the run is recorded.
        events({"trace", {{"trace_id", trace.id()}}});
    }
    auto run = prepared.planner_->run(prepared.request_, context, prepared.box_,
                                      prepared.use_->model(), with_trace);
    prepared.use_->finish(run.ok() ? &*run : nullptr);
    TraceRecord record = trace.record();
    if (Status saved = traces_.save(record); !saved.ok()) {
        log::error("agents", "cannot store a trace",
                   {{"trace_id", trace.id()}, {"error", saved.message()},
                    {"request_id", caller.request_id}});
    }
    if (!run.ok()) {
        return run.status();
    }
    return InvokeResult{std::move(*run), trace.id(), prepared.agent_};
}

Result<InvokeResult> AgentRuntime::invoke(const governance::RequestContext& caller,
                                          const std::string& agent,
                                          std::vector<inference::ChatMessage> messages,
                                          const EventSink& events, std::stop_token stop) {
    SLUICE_ASSIGN_OR_RETURN(PreparedRun prepared, prepare(caller, agent, std::move(messages)));
    return run(std::move(prepared), events, std::move(stop));
}

}  // namespace sluice::agents
