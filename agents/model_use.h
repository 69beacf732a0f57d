#pragma once
// ModelUse: the model one agent run talks to, opened for the run's caller, and what the run
// spent, settled once the run ends.
//
// AgentRuntime opens one per run through its ModelGovernor when it has one. The server's
// (app/agent_model_use.h) governs the model as the OpenAI routes do: EXECUTE on the catalog model
// for the identity the run acts as, room under the caller's limits for the first turn, the
// endpoint's guardrails on what the model reads (the conversation, tool results) and writes
// (answer text), and the tokens charged when the run ends. Without a governor (offline runs:
// `sluice eval run`), recorded_model_use() gives the model as it is and records the run's tokens
// as a usage row of the caller.
//
// Thread safety: a ModelUse belongs to one run; its model may be called from the run's threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agents/chat_model.h"
#include "agents/planner.h"
#include "common/result.h"
#include "governance/governance.h"

namespace sluice::agents {

struct ModelUseRequest {
    governance::RequestContext caller;  // who asked: charged, named in the usage row
    governance::RequestContext
        identity;                       // who the run acts as: the caller, or the run_as principal
    std::string agent;                  // the agent's full name (the usage row's agent)
    std::string endpoint;               // the model endpoint's name
    std::int64_t estimated_tokens = 0;  // the first turn's prompt and longest answer
    // The conversation the first turn sends (the instructions aside), for input checks that
    // refuse the run before it starts.
    std::vector<inference::ChatMessage> conversation;
};

class ModelUse {
public:
    virtual ~ModelUse() = default;
    // The model the run talks to.
    virtual ChatModel& model() = 0;
    // Settles the run once it has ended: `run` is its result, or null when it failed.
    virtual void finish(const RunResult* run) = 0;
};

// Opens the model's use for one run, or refuses it (kPermissionDenied, kNotFound,
// kInvalidArgument for input a policy blocks, kResourceExhausted naming the limit — then
// `retry_after_s`, when given, holds the hint —, kUnavailable when a decision cannot be
// audited).
using ModelGovernor = std::function<Result<std::unique_ptr<ModelUse>>(
    const ModelUseRequest& request, std::shared_ptr<ChatModel> model,
    std::optional<std::int64_t>* retry_after_s)>;

// The model as it is; finish() records a successful run's tokens in governance usage (status
// "ok", or "cancelled" when the caller went away). `gov` must outlive the use.
std::unique_ptr<ModelUse> recorded_model_use(governance::Governance& gov, ModelUseRequest request,
                                             std::shared_ptr<ChatModel> model);

// What the run's first model turn may take: the instructions and the conversation, plus the
// longest answer of a turn, at most the run's token budget.
std::int64_t first_turn_estimate(const ChatModel& model, const RunRequest& request);

}  // namespace sluice::agents
