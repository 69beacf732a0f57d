#pragma once
// AgentRuntime: runs catalog agents for a caller.
//
//   invoke(caller, "main.support.helper", messages, events)
//     1. requires EXECUTE on the agent (audited, as the caller);
//     2. picks the identity the tools run as: the caller, or — when the agent names a service
//        principal in run_as — that principal, audited as "agent.run_as" with the caller named;
//     3. builds the agent's tools from their definitions (each call still requires EXECUTE on
//        the function and, below it, SELECT / USE_CONNECTION / document access of the identity);
//     4. runs the agent's planner with its budgets and model, recording a trace (the first
//        event is "trace" with its id, then the planner's events);
//     5. stores the trace in catalog.db and returns its id with the answer.
//
// Thread safety: thread-safe; invocations run concurrently.

#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "agents/agent_store.h"
#include "agents/chat_model.h"
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
    // All must outlive the runtime; `indexes` may be null (no vector_search tools).
    AgentRuntime(governance::Governance& gov, AgentStore& store, TraceStore& traces,
                 retrieval::IndexManager* indexes, ModelResolver models);

    // The tool for a function name, from its stored definition.
    Result<std::shared_ptr<Tool>> build_tool(const std::string& function_name);

    // Errors: kPermissionDenied without EXECUTE on the agent; kNotFound for an unknown agent or
    // a tool without a definition; the model's errors. Budget exhaustion is not an error, and
    // neither is `stop` being requested (the caller hung up): the run then ends with
    // StopReason::kCancelled at its next model turn or tool call.
    // The tokens a run spent are recorded in governance usage (endpoint: the agent's, or the
    // served model's name; agent: its full name; status "ok" or "cancelled").
    Result<InvokeResult> invoke(const governance::RequestContext& caller,
                                const std::string& agent,
                                std::vector<inference::ChatMessage> messages,
                                const EventSink& events, std::stop_token stop = {});

    // The identity context (request + reader + groups) for a principal, from governance.
    Result<ToolContext> context_for(const governance::RequestContext& request);

private:
    void record_usage(const governance::RequestContext& caller, const std::string& endpoint,
                      const std::string& agent, const RunResult& run, double latency_ms);

    governance::Governance& gov_;
    AgentStore& store_;
    TraceStore& traces_;
    retrieval::IndexManager* indexes_;
    ModelResolver models_;
};

}  // namespace sluice::agents
