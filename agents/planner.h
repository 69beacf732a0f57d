#pragma once
// Planners run a conversation to an answer within budgets, calling tools and writing spans.
//
// FunctionCallingPlanner: each step asks the model for one assistant turn with the tools offered
// (calls constrained to their schemas by the engine's tool-call grammar); the calls of a turn run
// in parallel; their results go back as tool messages; a turn without calls is the answer.
// PlanAndExecutePlanner: the model first writes a JSON plan (a list of tool calls, constrained
// to the plan schema), the steps run in order, a failed step makes the model re-plan (at most
// `max_replans` times) with what happened so far, and a last turn writes the answer from the
// results.
//
// Both stop, with a final message saying which and why, when a budget is spent (model turns,
// tokens, wall time, tool calls), when the same call with the same arguments comes a third time
// (a loop), or when the model sends invalid arguments again after being shown the error once.
// When the context's stop token is requested (the client hung up), a run stops before its next
// model turn or tool call, and a model turn in flight is cut short (its engine request cancelled);
// the run ends with StopReason::kCancelled and counts the tokens spent up to then.
// Events (step, tool_call, tool_result, tokens, final) go to the sink in order, on the calling
// thread.
//
// Thread safety: planners are stateless; run() may be called from many threads at once.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/chat_model.h"
#include "agents/tool.h"
#include "common/result.h"

namespace sluice::agents {

struct Budgets {
    int max_steps = 8;                // model turns
    std::int64_t max_tokens = 16384;  // prompt + completion tokens over the run
    double max_wall_s = 120;
    int max_tool_calls = 16;
};
// kInvalidArgument naming the field; reads max_steps, max_tokens, max_wall_s, max_tool_calls.
Result<Budgets> budgets_from_json(const nlohmann::json& json, Budgets defaults = {});
nlohmann::json budgets_to_json(const Budgets& budgets);

enum class StopReason {
    kAnswer,
    kStepBudget,
    kTokenBudget,
    kTimeBudget,
    kToolCallBudget,
    kLoop,
    kInvalidArguments,
    kCancelled,  // the caller went away (ToolContext::stop)
    // The answer was cut at the request's max_completion_tokens; the run's answer is the text
    // up to there (an OpenAI "length" finish).
    kMaxTokens,
};
std::string_view stop_reason_name(StopReason reason);  // "answer", "step_budget", ...

struct AgentEvent {
    std::string type;  // "step", "tool_call", "tool_result", "tokens", "final"
    nlohmann::json data;
};
using EventSink = std::function<void(const AgentEvent&)>;

// What the caller of a run asks of its model turns, as a chat completion request does of an
// agent served as a model.
struct RunOptions {
    double temperature = 0.0;  // each turn's; greedy unless asked
    double top_p = 1.0;
    std::uint64_t seed = 0;
    // Completion tokens the whole run may generate (the request's max_tokens), within the
    // agent's own budgets; absent: only those.
    std::optional<std::int64_t> max_completion_tokens;
};

struct RunRequest {
    std::string instructions;                       // the system message
    std::vector<inference::ChatMessage> messages;   // the conversation so far, user last
    Budgets budgets;
    RunOptions options;
    int max_tokens_per_turn = 256;
    int max_replans = 2;  // plan-and-execute only
};

struct RunResult {
    std::string answer;  // the model's answer, or the message saying why the run stopped
    StopReason stop = StopReason::kAnswer;
    int steps = 0;
    int tool_calls = 0;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::vector<inference::ChatMessage> transcript;  // everything said, tools included
};

class Planner {
public:
    virtual ~Planner() = default;
    // Errors: the model's (engine unavailable, queue full). Tool failures are not errors: they
    // go back to the model as results.
    virtual Result<RunResult> run(const RunRequest& request, const ToolContext& context,
                                  const Toolbox& tools, ChatModel& model,
                                  const EventSink& events) const = 0;
    virtual std::string_view name() const = 0;
};

class FunctionCallingPlanner final : public Planner {
public:
    Result<RunResult> run(const RunRequest& request, const ToolContext& context,
                          const Toolbox& tools, ChatModel& model,
                          const EventSink& events) const override;
    std::string_view name() const override { return "function_calling"; }
};

class PlanAndExecutePlanner final : public Planner {
public:
    Result<RunResult> run(const RunRequest& request, const ToolContext& context,
                          const Toolbox& tools, ChatModel& model,
                          const EventSink& events) const override;
    std::string_view name() const override { return "plan_and_execute"; }
};

// "function_calling" or "plan_and_execute"; kInvalidArgument otherwise.
Result<const Planner*> planner_named(std::string_view name);

}  // namespace sluice::agents
