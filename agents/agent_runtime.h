#pragma once
// AgentRuntime: runs catalog agents for a caller.
//
//   invoke(caller, "main.support.helper", messages, events)
//     1. requires EXECUTE on the agent (audited, as the caller);
//     2. picks the identity the tools run as: the caller, or — when the agent names a service
//        principal in run_as — that principal, audited as "agent.run_as" with the caller named;
//     3. builds the agent's tools from their definitions (each call still requires EXECUTE on
//        the function and, below it, SELECT / USE_CONNECTION / document access of the identity);
//     4. opens the model's use for the run (model_use.h): through the governor when there is
//        one (the server's checks the privilege on the model, the caller's limits and the
//        endpoint's guardrails), otherwise the model as it is;
//     5. runs the agent's planner with its budgets and model, recording a trace (the first
//        event is "trace" with its id, then the planner's events);
//     6. settles the model's use with the tokens spent, stores the trace in catalog.db and
//        returns its id with the answer.
//
// Thread safety: thread-safe; invocations run concurrently.

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agents/agent_store.h"
#include "agents/chat_model.h"
#include "agents/model_use.h"
#include "agents/planner.h"
#include "agents/tool.h"
#include "agents/trace.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::agents {

// Resolves an agent's model endpoint ("" for the served model) to a model.
using ModelResolver = std::function<Result<std::shared_ptr<ChatModel>>(const std::string&)>;

struct InvokeResult {
    RunResult run;
    std::string trace_id;
    std::string agent;
};

class AgentRuntime {
public:
    // All must outlive the runtime; `indexes` may be null (no vector_search tools). Without a
    // `governor` runs use the model as it is and their tokens are recorded as usage.
    AgentRuntime(governance::Governance& gov, AgentStore& store, TraceStore& traces,
                 retrieval::IndexManager* indexes, ModelResolver models,
                 ModelGovernor governor = {});

    // The tool for a function name, from its stored definition.
    Result<std::shared_ptr<Tool>> build_tool(const std::string& function_name);

    // A run that has passed every check that can refuse it, ready to start.
    class PreparedRun {
    public:
        PreparedRun(PreparedRun&&) noexcept;
        ~PreparedRun();

    private:
        friend class AgentRuntime;
        PreparedRun();
        governance::RequestContext caller_;
        std::string agent_;
        ToolContext context_;
        Toolbox box_;
        const Planner* planner_ = nullptr;
        RunRequest request_;
        std::unique_ptr<ModelUse> use_;
    };

    // Steps 1 to 4 (above): whatever refuses the run refuses it here, before anything is sent,
    // so that a streamed route can answer with an HTTP status. Errors: kPermissionDenied
    // without EXECUTE on the agent; kNotFound for an unknown agent or a tool without a
    // definition; kInvalidArgument unless the user speaks last; the governor's refusals (then
    // `retry_after_s`, when given, holds a limit's hint). `options` are the caller's, for each
    // model turn (planner.h).
    Result<PreparedRun> prepare(const governance::RequestContext& caller, const std::string& agent,
                                std::vector<inference::ChatMessage> messages,
                                std::optional<std::int64_t>* retry_after_s = nullptr,
                                const RunOptions& options = {});
    // Steps 5 and 6. Errors: the model's. Budget exhaustion is not an error, and neither is
    // `stop` being requested (the caller hung up): the run then ends with
    // StopReason::kCancelled at its next model turn or tool call. The tokens a run spent are
    // settled in governance usage (endpoint: the agent's, or the served model's name; agent:
    // its full name).
    Result<InvokeResult> run(PreparedRun prepared, const EventSink& events,
                             std::stop_token stop = {});
    // prepare() then run().
    Result<InvokeResult> invoke(const governance::RequestContext& caller,
                                const std::string& agent,
                                std::vector<inference::ChatMessage> messages,
                                const EventSink& events, std::stop_token stop = {});

    // The identity context (request + reader + groups) for a principal, from governance.
    Result<ToolContext> context_for(const governance::RequestContext& request);

private:
    governance::Governance& gov_;
    AgentStore& store_;
    TraceStore& traces_;
    retrieval::IndexManager* indexes_;
    ModelResolver models_;
    ModelGovernor governor_;
};

}  // namespace sluice::agents
