#include "agents/planner.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "agents/argument_check.h"
#include "common/log.h"

namespace sluice::agents {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Tool results longer than this are cut before they go back to the model: a whole table in the
// prompt helps nobody and eats the token budget.
constexpr size_t kMaxToolResultChars = 8000;

// Steps a plan may have: a bound on the plan's length, so that its JSON closes within a turn.
constexpr int kMaxPlanSteps = 8;

// The error of a span cut short because the client went away.
constexpr std::string_view kCancelledError = "cancelled: the client went away";

struct CallOutcome {
    inference::ToolCall call;
    Result<json> result = json();
};

// What both planners share: the budgets, counters, loop and invalid-argument bookkeeping, the
// event sink, and the spans.
class Run {
public:
    Run(const RunRequest& request, const ToolContext& context, const Toolbox& tools,
        ChatModel& model, const EventSink& events, std::string_view planner)
        : request_(request),
          tools_(tools),
          model_(model),
          events_(events),
          start_(Clock::now()),
          span_(context.trace, SpanKind::kAgent, std::string(planner), context.parent_span,
                {{"instructions", request.instructions},
                 {"question", request.messages.empty() ? "" : request.messages.back().content},
                 {"budgets", budgets_to_json(request.budgets)}}) {
        context_ = context;
        context_.parent_span = span_.id();
        double wall = request.budgets.max_wall_s;
        auto until = start_ + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(wall));
        context_.deadline = std::min(context.deadline, until);
        if (!request.instructions.empty()) {
            result_.transcript.push_back({"system", request.instructions, {}, {}});
        }
        for (const auto& message : request.messages) {
            result_.transcript.push_back(message);
        }
    }

    void emit(std::string type, json data) {
        if (events_) {
            events_({std::move(type), std::move(data)});
        }
    }

    // The budget that is spent before another model turn, if any.
    std::optional<StopReason> spent_before_turn() const {
        if (cancelled()) {
            return StopReason::kCancelled;
        }
        const Budgets& budgets = request_.budgets;
        if (result_.steps >= budgets.max_steps) {
            return StopReason::kStepBudget;
        }
        if (tokens_used() >= budgets.max_tokens || completion_left() <= 0) {
            return StopReason::kTokenBudget;
        }
        if (Clock::now() >= context_.deadline) {
            return StopReason::kTimeBudget;
        }
        return std::nullopt;
    }

    bool cancelled() const { return context_.stop.stop_requested(); }

    std::int64_t tokens_used() const {
        return result_.prompt_tokens + result_.completion_tokens;
    }

    // Completion tokens the request's max_completion_tokens leaves (no bound: the most there is).
    std::int64_t completion_left() const {
        const auto& limit = request_.options.max_completion_tokens;
        return limit ? *limit - result_.completion_tokens : INT64_MAX;
    }

    // Whether the last turn stopped at the request's max_completion_tokens rather than at its
    // own end: an answer it gave is cut there.
    bool last_turn_cut() const { return last_turn_cut_; }

    // One model turn over `messages`, streamed as "tokens" events when `stream`. A turn cut
    // short by the stop token comes back with `cancelled` set; callers finish the run then.
    Result<ModelReply> turn(const std::vector<inference::ChatMessage>& messages,
                            std::vector<inference::ToolDefinition> tools, json response_schema,
                            bool stream, std::string_view what) {
        ++result_.steps;
        emit("step", {{"step", result_.steps}, {"kind", what}});
        SpanScope span(context_.trace, SpanKind::kLlm, std::string(what), context_.parent_span,
                       {{"messages", messages.size()}, {"tools", tools.size()}});
        ModelRequest request;
        request.messages = messages;
        request.tools = std::move(tools);
        request.response_schema = std::move(response_schema);
        std::int64_t left = request_.budgets.max_tokens - tokens_used();
        const std::int64_t turn_max = std::max<std::int64_t>(
            1, std::min({std::int64_t{request_.max_tokens_per_turn}, left, completion_left()}));
        request.max_tokens = static_cast<int>(turn_max);
        request.temperature = request_.options.temperature;
        request.top_p = request_.options.top_p;
        request.seed = request_.options.seed;
        request.stop = context_.stop;
        if (stream) {
            request.on_text = [this](std::string_view text) {
                emit("tokens", {{"text", std::string(text)}});
            };
        }
        auto reply = model_.complete(request);
        if (!reply.ok()) {
            span.fail(reply.status().message());
            return reply.status();
        }
        result_.prompt_tokens += reply->prompt_tokens;
        last_turn_cut_ = turn_max == completion_left() && reply->completion_tokens >= turn_max;
        result_.completion_tokens += reply->completion_tokens;
        span.add_tokens(reply->prompt_tokens, reply->completion_tokens);
        json calls = json::array();
        for (const auto& call : reply->calls) {
            calls.push_back({{"name", call.name}, {"arguments", call.arguments}});
        }
        span.set_outputs({{"text", reply->text}, {"tool_calls", calls}});
        if (reply->cancelled) {
            span.fail(std::string(kCancelledError));
        }
        return reply;
    }

    // Whether this call is the third identical one of the run.
    bool is_loop(const inference::ToolCall& call) {
        return ++seen_calls_[call.name + "\n" + dump_safe(call.arguments)] >= 3;
    }

    bool tool_budget_allows(size_t more) const {
        return result_.tool_calls + static_cast<int>(more) <= request_.budgets.max_tool_calls;
    }

    // Runs the calls, in parallel when there are several; events in call order.
    std::vector<CallOutcome> call_tools(const std::vector<inference::ToolCall>& calls) {
        std::vector<CallOutcome> outcomes(calls.size());
        for (size_t i = 0; i < calls.size(); ++i) {
            outcomes[i].call = calls[i];
            emit("tool_call",
                 {{"id", calls[i].id}, {"name", calls[i].name}, {"arguments", calls[i].arguments}});
        }
        result_.tool_calls += static_cast<int>(calls.size());
        auto call_one = [this](CallOutcome& outcome) {
            outcome.result = tools_.call(context_, outcome.call.name, outcome.call.arguments);
        };
        if (calls.size() == 1) {
            call_one(outcomes[0]);
        } else {
            std::vector<std::jthread> workers;
            for (auto& outcome : outcomes) {
                workers.emplace_back([&call_one, &outcome] { call_one(outcome); });
            }
        }  // joined here
        for (const auto& outcome : outcomes) {
            json event = {{"id", outcome.call.id}, {"name", outcome.call.name},
                          {"ok", outcome.result.ok()}};
            if (outcome.result.ok()) {
                event["result"] = *outcome.result;
            } else {
                event["error"] = outcome.result.status().message();
            }
            emit("tool_result", std::move(event));
        }
        return outcomes;
    }

    // Whether an invalid-arguments failure of this tool has been shown to the model before;
    // records it when not.
    bool invalid_again(const std::string& tool) { return !invalid_shown_.insert(tool).second; }

    // The message a tool result is to the model.
    static std::string tool_message(const Result<json>& result) {
        std::string text = result.ok() ? dump_safe(*result)
                                       : dump_safe(json{{"error", result.status().message()}});
        if (text.size() > kMaxToolResultChars) {
            text = text.substr(0, kMaxToolResultChars) + "... (cut at " +
                   std::to_string(kMaxToolResultChars) + " characters)";
        }
        return text;
    }

    Result<RunResult> finish(StopReason reason, std::string answer) {
        result_.stop = reason;
        const bool answered = reason == StopReason::kAnswer || reason == StopReason::kMaxTokens;
        result_.answer = answered ? std::move(answer) : stop_message(reason);
        if (reason != StopReason::kAnswer) {
            log::info("agents", "run stopped",
                      {{"reason", std::string(stop_reason_name(reason))},
                       {"request_id", context_.request.request_id},
                       {"steps", result_.steps},
                       {"tool_calls", result_.tool_calls}});
        }
        emit("final", {{"answer", result_.answer},
                       {"stop_reason", stop_reason_name(reason)},
                       {"steps", result_.steps},
                       {"tool_calls", result_.tool_calls},
                       {"usage",
                        {{"prompt_tokens", result_.prompt_tokens},
                         {"completion_tokens", result_.completion_tokens}}}});
        span_.add_tokens(0, 0);
        if (reason == StopReason::kCancelled) {
            span_.fail(std::string(kCancelledError));
        }
        span_.set_outputs({{"answer", result_.answer},
                           {"stop_reason", stop_reason_name(reason)},
                           {"steps", result_.steps},
                           {"tool_calls", result_.tool_calls},
                           {"prompt_tokens", result_.prompt_tokens},
                           {"completion_tokens", result_.completion_tokens}});
        return std::move(result_);
    }

    std::string stop_message(StopReason reason) const {
        const Budgets& budgets = request_.budgets;
        switch (reason) {
            case StopReason::kStepBudget:
                return "Stopped without an answer: the step budget of " +
                       std::to_string(budgets.max_steps) + " model turns is spent.";
            case StopReason::kTokenBudget:
                if (completion_left() <= 0) {
                    return "Stopped without an answer: the request's max_tokens of " +
                           std::to_string(*request_.options.max_completion_tokens) +
                           " completion tokens is spent.";
                }
                return "Stopped without an answer: the token budget of " +
                       std::to_string(budgets.max_tokens) + " tokens is spent (" +
                       std::to_string(tokens_used()) + " used).";
            case StopReason::kTimeBudget:
                return "Stopped without an answer: the time budget of " +
                       json(budgets.max_wall_s).dump() + " s is spent.";
            case StopReason::kToolCallBudget:
                return "Stopped without an answer: the tool-call budget of " +
                       std::to_string(budgets.max_tool_calls) + " calls would be passed.";
            case StopReason::kLoop:
                return "Stopped without an answer: the same tool call with the same arguments "
                       "was proposed three times (a loop).";
            case StopReason::kInvalidArguments:
                return "Stopped without an answer: the model sent invalid tool arguments again "
                       "after being shown the error.";
            case StopReason::kCancelled:
                return "Stopped without an answer: the client went away.";
            case StopReason::kAnswer:
            case StopReason::kMaxTokens:
                break;
        }
        return "";
    }

    RunResult& result() { return result_; }
    std::vector<inference::ChatMessage>& transcript() { return result_.transcript; }
    const ToolContext& context() const { return context_; }

private:
    const RunRequest& request_;
    const Toolbox& tools_;
    ChatModel& model_;
    const EventSink& events_;
    Clock::time_point start_;
    SpanScope span_;
    bool last_turn_cut_ = false;
    ToolContext context_;
    RunResult result_;
    std::map<std::string, int> seen_calls_;
    std::set<std::string> invalid_shown_;
};

// The plan's shape, checked after generation: steps naming offered tools, with object
// arguments (each tool checks its own arguments when called).
json plan_shape(const Toolbox& tools) {
    json names = json::array();
    for (const auto& definition : tools.definitions()) {
        names.push_back(definition.name);
    }
    return {{"type", "object"},
            {"properties",
             {{"steps",
               {{"type", "array"},
                {"maxItems", kMaxPlanSteps},
                {"items",
                 {{"type", "object"},
                  {"properties", {{"tool", {{"type", "string"}, {"enum", names}}},
                                  {"arguments", {{"type", "object"}}}}},
                  {"required", {"tool", "arguments"}},
                  {"additionalProperties", false}}}}}}},
            {"required", {"steps"}},
            {"additionalProperties", false}};
}

// The schema the plan is generated under: each step is one of the tools with that tool's own
// argument schema (anyOf, discriminated by the tool's name), so that a constrained model cannot
// plan a call its tool would refuse for its shape.
json plan_schema(const Toolbox& tools) {
    json steps = json::array();
    for (const auto& definition : tools.definitions()) {
        json arguments = definition.parameters.is_object() ? definition.parameters
                                                            : json{{"type", "object"}};
        steps.push_back({{"type", "object"},
                         {"properties", {{"tool", {{"const", definition.name}}},
                                         {"arguments", std::move(arguments)}}},
                         {"required", {"tool", "arguments"}},
                         {"additionalProperties", false}});
    }
    // Without tools the only plan is the empty one.
    json array = steps.empty() ? json{{"type", "array"}, {"maxItems", 0}}
                               : json{{"type", "array"},
                                      {"maxItems", kMaxPlanSteps},
                                      {"items", {{"anyOf", steps}}}};
    return {{"type", "object"},
            {"properties", {{"steps", std::move(array)}}},
            {"required", {"steps"}},
            {"additionalProperties", false}};
}

std::string plan_instructions(const Toolbox& tools, const json& schema) {
    std::string text =
        "First write a plan as one JSON object that follows this schema, and nothing else:\n" +
        schema.dump() + "\nEach step calls one tool with its arguments. Tools:\n";
    for (const auto& definition : tools.definitions()) {
        text += "- " + definition.name + ": " + definition.description +
                " Arguments: " + definition.parameters.dump() + "\n";
    }
    return text;
}

}  // namespace

Result<Budgets> budgets_from_json(const json& value, Budgets defaults) {
    if (value.is_null()) {
        return defaults;
    }
    if (!value.is_object()) {
        return invalid_argument("budgets: expected an object");
    }
    Budgets out = defaults;
    auto positive_int = [&](const char* field, auto* into, std::int64_t max) -> Status {
        if (!value.contains(field)) {
            return Status();
        }
        const json& v = value[field];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > max) {
            return invalid_argument(std::string("budgets.") + field +
                                    ": expected an integer in 1.." + std::to_string(max));
        }
        *into = static_cast<std::remove_pointer_t<decltype(into)>>(v.get<std::int64_t>());
        return Status();
    };
    SLUICE_RETURN_IF_ERROR(positive_int("max_steps", &out.max_steps, 1000));
    SLUICE_RETURN_IF_ERROR(positive_int("max_tokens", &out.max_tokens, 100000000));
    SLUICE_RETURN_IF_ERROR(positive_int("max_tool_calls", &out.max_tool_calls, 10000));
    if (value.contains("max_wall_s")) {
        const json& v = value["max_wall_s"];
        if (!v.is_number() || v.get<double>() <= 0 || v.get<double>() > 86400) {
            return invalid_argument("budgets.max_wall_s: expected a number of seconds in (0, 86400]");
        }
        out.max_wall_s = v.get<double>();
    }
    for (const auto& [key, unused] : value.items()) {
        if (key != "max_steps" && key != "max_tokens" && key != "max_tool_calls" &&
            key != "max_wall_s") {
            return invalid_argument("budgets: unknown field '" + key + "'");
        }
    }
    return out;
}

json budgets_to_json(const Budgets& budgets) {
    return {{"max_steps", budgets.max_steps},
            {"max_tokens", budgets.max_tokens},
            {"max_wall_s", budgets.max_wall_s},
            {"max_tool_calls", budgets.max_tool_calls}};
}

std::string_view stop_reason_name(StopReason reason) {
    switch (reason) {
        case StopReason::kAnswer: return "answer";
        case StopReason::kStepBudget: return "step_budget";
        case StopReason::kTokenBudget: return "token_budget";
        case StopReason::kTimeBudget: return "time_budget";
        case StopReason::kToolCallBudget: return "tool_call_budget";
        case StopReason::kLoop: return "loop";
        case StopReason::kInvalidArguments: return "invalid_arguments";
        case StopReason::kCancelled: return "cancelled";
        case StopReason::kMaxTokens:
            return "max_tokens";
    }
    return "answer";
}

Result<RunResult> FunctionCallingPlanner::run(const RunRequest& request,
                                              const ToolContext& context, const Toolbox& tools,
                                              ChatModel& model, const EventSink& events) const {
    Run run(request, context, tools, model, events, name());
    while (true) {
        if (auto spent = run.spent_before_turn()) {
            return run.finish(*spent, "");
        }
        SLUICE_ASSIGN_OR_RETURN(ModelReply reply,
                                run.turn(run.transcript(), tools.definitions(), json(), true,
                                         "model"));
        if (reply.cancelled || (!reply.calls.empty() && run.cancelled())) {
            return run.finish(StopReason::kCancelled, "");
        }
        if (reply.calls.empty()) {
            run.transcript().push_back({"assistant", reply.text, {}, {}});
            return run.finish(run.last_turn_cut() ? StopReason::kMaxTokens : StopReason::kAnswer,
                              reply.text);
        }
        if (!run.tool_budget_allows(reply.calls.size())) {
            return run.finish(StopReason::kToolCallBudget, "");
        }
        for (const auto& call : reply.calls) {
            if (run.is_loop(call)) {
                return run.finish(StopReason::kLoop, "");
            }
        }
        run.transcript().push_back({"assistant", reply.text, reply.calls, {}});
        std::vector<CallOutcome> outcomes = run.call_tools(reply.calls);
        for (const auto& outcome : outcomes) {
            if (!outcome.result.ok() &&
                outcome.result.status().code() == StatusCode::kInvalidArgument &&
                run.invalid_again(outcome.call.name)) {
                return run.finish(StopReason::kInvalidArguments, "");
            }
            run.transcript().push_back(
                {"tool", Run::tool_message(outcome.result), {}, outcome.call.id});
        }
    }
}

Result<RunResult> PlanAndExecutePlanner::run(const RunRequest& request,
                                             const ToolContext& context, const Toolbox& tools,
                                             ChatModel& model, const EventSink& events) const {
    Run run(request, context, tools, model, events, name());
    const json schema = plan_schema(tools);
    const json shape = plan_shape(tools);
    std::vector<inference::ChatMessage> planning = run.transcript();
    std::string instructions = request.instructions.empty() ? "" : request.instructions + "\n\n";
    instructions += plan_instructions(tools, schema);
    if (!planning.empty() && planning.front().role == "system") {
        planning.front().content = instructions;
    } else {
        planning.insert(planning.begin(), {"system", instructions, {}, {}});
    }
    std::string results;  // what the steps returned, for re-planning and the answer
    int replans = 0;
    bool shown_invalid_plan = false;
    while (true) {
        if (auto spent = run.spent_before_turn()) {
            return run.finish(*spent, "");
        }
        SLUICE_ASSIGN_OR_RETURN(ModelReply reply, run.turn(planning, {}, schema, false, "plan"));
        if (reply.cancelled) {
            return run.finish(StopReason::kCancelled, "");
        }
        json plan = json::parse(reply.text, nullptr, false);
        Status valid = plan.is_discarded() ? invalid_argument("the plan is not JSON")
                                           : check_arguments(shape, plan);
        planning.push_back({"assistant", reply.text, {}, {}});
        if (!valid.ok()) {
            if (shown_invalid_plan) {
                return run.finish(StopReason::kInvalidArguments, "");
            }
            shown_invalid_plan = true;
            planning.push_back({"user", "That plan is invalid: " + valid.message() +
                                            ". Write the plan again.", {}, {}});
            continue;
        }
        const json& steps = plan["steps"];
        if (!run.tool_budget_allows(steps.size())) {
            return run.finish(StopReason::kToolCallBudget, "");
        }
        std::string failure;
        for (size_t i = 0; i < steps.size(); ++i) {
            inference::ToolCall call{"step_" + std::to_string(i + 1),
                                     steps[i]["tool"].get<std::string>(), steps[i]["arguments"]};
            if (run.is_loop(call)) {
                return run.finish(StopReason::kLoop, "");
            }
            if (run.cancelled()) {
                return run.finish(StopReason::kCancelled, "");
            }
            std::vector<CallOutcome> outcome = run.call_tools({call});
            results += "Step " + std::to_string(i + 1) + " (" + call.name + "): " +
                       Run::tool_message(outcome[0].result) + "\n";
            if (!outcome[0].result.ok()) {
                failure = outcome[0].result.status().message();
                break;
            }
        }
        if (failure.empty()) {
            break;
        }
        if (replans >= request.max_replans) {
            results += "The plan failed and no re-planning is left.\n";
            break;
        }
        ++replans;
        planning.push_back({"user", "Results so far:\n" + results + "A step failed: " + failure +
                                        "\nWrite a new plan for what is left.", {}, {}});
    }
    if (auto spent = run.spent_before_turn()) {
        return run.finish(*spent, "");
    }
    std::vector<inference::ChatMessage> answering = run.transcript();
    answering.push_back({"user", "Tool results:\n" + results +
                                     "Answer the question from these results.", {}, {}});
    SLUICE_ASSIGN_OR_RETURN(ModelReply answer, run.turn(answering, {}, json(), true, "answer"));
    if (answer.cancelled) {
        return run.finish(StopReason::kCancelled, "");
    }
    run.transcript().push_back({"assistant", answer.text, {}, {}});
    return run.finish(run.last_turn_cut() ? StopReason::kMaxTokens : StopReason::kAnswer,
                      answer.text);
}

Result<const Planner*> planner_named(std::string_view name) {
    static const FunctionCallingPlanner kFunctionCalling;
    static const PlanAndExecutePlanner kPlanAndExecute;
    if (name == kFunctionCalling.name()) {
        return static_cast<const Planner*>(&kFunctionCalling);
    }
    if (name == kPlanAndExecute.name()) {
        return static_cast<const Planner*>(&kPlanAndExecute);
    }
    return invalid_argument("planner '" + std::string(name) +
                            "': expected function_calling or plan_and_execute");
}

}  // namespace sluice::agents
