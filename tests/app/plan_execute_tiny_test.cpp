// Plan-and-execute on the real engine with the random tiny model: the answers mean nothing, but
// the plumbing must hold — every plan is JSON of the plan schema with each step's arguments of
// its tool's schema (constrained decoding), the steps run in order, a failed step brings a
// re-plan that sees the failure, budgets stop the run with their message, and the trace shows it
// all.

#include <doctest/doctest.h>

#include <atomic>

#include <nlohmann/json.hpp>

#include "agents/argument_check.h"
#include "agents/engine_chat_model.h"
#include "agents/planner.h"
#include "app/model_host.h"
#include "tiny_model_folder.h"

namespace sluice::app {
namespace {

using nlohmann::json;

const json kDigitSchema = {{"type", "object"},
                           {"properties", {{"n", {{"type", "integer"}, {"minimum", 0},
                                                  {"maximum", 9}}}}},
                           {"required", {"n"}},
                           {"additionalProperties", false}};
const json kColourSchema = {
    {"type", "object"},
    {"properties", {{"colour", {{"type", "string"}, {"enum", {"red", "green", "blue"}}}}}},
    {"required", {"colour"}},
    {"additionalProperties", false}};

// A tool whose first `failures` calls fail, as a flaky service would; the calls are counted.
class FlakyTool final : public agents::Tool {
public:
    FlakyTool(std::string name, json parameters, int failures)
        : Tool(std::move(name), "Looks something up.", std::move(parameters)),
          failures_(failures) {}
    Result<json> invoke(const agents::ToolContext&, const json& arguments) override {
        if (calls_++ < failures_) {
            return unavailable("the lookup service is down; try again");
        }
        return json{{"found", arguments}};
    }
    int calls() const { return calls_; }

private:
    int failures_;
    std::atomic<int> calls_{0};
};

struct TinyPlanner {
    testing::TinyModelFolder folder{"sluice-plan-tiny"};
    std::unique_ptr<ModelHost> host;
    std::shared_ptr<agents::ChatModel> model;

    TinyPlanner() {
        ModelSettings settings;
        settings.path = folder.model_dir();
        host = std::make_unique<ModelHost>(settings, nullptr);
        REQUIRE(host->load().ok());
        auto made = agents::EngineChatModel::make(host->engine(), host->chat_template(),
                                                  host->model_id());
        REQUIRE(made.ok());
        model = std::move(*made);
    }
};

agents::RunRequest question(const std::string& text, agents::Budgets budgets = {}) {
    agents::RunRequest request;
    request.instructions = "Use the tools to answer.";
    request.messages.push_back({"user", text, {}, {}});
    request.budgets = budgets;
    return request;
}

std::vector<const agents::Span*> spans_named(const agents::TraceRecord& record,
                                             const std::string& name) {
    std::vector<const agents::Span*> out;
    for (const auto& span : record.spans) {
        if (span.name == name) {
            out.push_back(&span);
        }
    }
    return out;
}

// Checks a plan's text as written by the model, independently of the planner's own parsing.
void check_plan_text(const std::string& text) {
    INFO("plan: " << text);
    json plan = json::parse(text, nullptr, false);
    REQUIRE_FALSE(plan.is_discarded());
    REQUIRE(plan.is_object());
    REQUIRE(plan.size() == 1);
    REQUIRE(plan["steps"].is_array());
    CHECK(plan["steps"].size() <= 8);
    for (const json& step : plan["steps"]) {
        REQUIRE(step.size() == 2);
        const std::string tool = step["tool"];
        REQUIRE((tool == "digit" || tool == "colour"));
        CHECK(agents::check_arguments(tool == "digit" ? kDigitSchema : kColourSchema,
                                      step["arguments"])
                  .ok());
    }
}

}  // namespace

TEST_CASE("plan and execute on the random tiny model: constrained plans, steps, re-plans, trace") {
    TinyPlanner tiny;
    // Every call of either tool fails: each plan with steps fails at its first, so the run
    // re-plans until max_replans is spent, then answers from what happened.
    auto digit = std::make_shared<FlakyTool>("digit", kDigitSchema, 1000);
    auto colour = std::make_shared<FlakyTool>("colour", kColourSchema, 1000);
    auto box = agents::Toolbox::make({digit, colour}, nullptr);
    REQUIRE(box.ok());

    int replanned_runs = 0;
    int stepped_runs = 0;
    int answered_runs = 0;
    for (const char* text : {"Which digit and colour?", "Pick a number.", "What colour is it?",
                             "Look up the digit 7 and the colour blue."}) {
        agents::Trace trace("alice", "req_plan");
        agents::ToolContext context;
        context.trace = &trace;
        std::vector<std::string> types;
        agents::RunRequest request = question(text, {.max_steps = 8, .max_tokens = 100000});
        request.max_replans = 2;
        auto result = agents::PlanAndExecutePlanner().run(
            request, context, *box, *tiny.model,
            [&](const agents::AgentEvent& e) { types.push_back(e.type); });
        REQUIRE_MESSAGE(result.ok(), result.status().to_string());
        agents::TraceRecord record = trace.record();
        auto plans = spans_named(record, "plan");
        auto answers = spans_named(record, "answer");
        REQUIRE_FALSE(plans.empty());
        int tool_spans = 0;
        for (const auto& span : record.spans) {
            tool_spans += span.kind == agents::SpanKind::kTool ? 1 : 0;
        }
        MESSAGE(std::string(text) << ": " << plans.size() << " plans, " << tool_spans
                                  << " tool calls, stop " << agents::stop_reason_name(result->stop));
        for (const auto* plan : plans) {
            check_plan_text(plan->outputs["text"].get<std::string>());
            CHECK(plan->prompt_tokens > 0);
            CHECK(plan->completion_tokens > 0);
        }
        // Each plan ran until its first (failing) step: one tool span per plan with steps.
        CHECK(tool_spans == result->tool_calls);
        CHECK(tool_spans <= static_cast<int>(plans.size()));
        for (const auto& span : record.spans) {
            if (span.kind == agents::SpanKind::kTool) {
                CHECK(span.error == "the lookup service is down; try again");
            }
        }
        // A failed step brings another plan, up to max_replans; then the answer turn.
        if (tool_spans > 0) {
            ++stepped_runs;
            if (plans.size() > 1) {
                ++replanned_runs;
            }
        }
        // Unless the random model proposes the same failing call a third time: the loop guard
        // then stops the run without an answer turn.
        CHECK(plans.size() <= 3);
        const bool looped = result->stop == agents::StopReason::kLoop;
        CHECK((result->stop == agents::StopReason::kAnswer || looped));
        CHECK(answers.size() == (looped ? 0u : 1u));
        if (looped) {
            CHECK(plans.size() == 3);
        } else {
            ++answered_runs;
        }
        CHECK(types.front() == "step");
        CHECK(types.back() == "final");
        CHECK(result->steps == static_cast<int>(plans.size() + answers.size()));
    }
    // The random model plans steps at least once, and a failed step was re-planned.
    CHECK(stepped_runs > 0);
    CHECK(replanned_runs > 0);
    CHECK(answered_runs > 0);
}

TEST_CASE("plan and execute on the random tiny model: budgets stop the run with their message") {
    TinyPlanner tiny;
    auto digit = std::make_shared<FlakyTool>("digit", kDigitSchema, 1000);
    auto colour = std::make_shared<FlakyTool>("colour", kColourSchema, 1000);
    auto box = agents::Toolbox::make({digit, colour}, nullptr);
    REQUIRE(box.ok());

    agents::Trace trace("alice", "req_budget");
    agents::ToolContext context;
    context.trace = &trace;
    // One model turn: the plan, and no turn is left for a re-plan or the answer.
    auto steps = agents::PlanAndExecutePlanner().run(question("Which digit?", {.max_steps = 1}),
                                                     context, *box, *tiny.model, {});
    REQUIRE(steps.ok());
    CHECK(steps->stop == agents::StopReason::kStepBudget);
    CHECK(steps->answer == "Stopped without an answer: the step budget of 1 model turns is spent.");
    CHECK(steps->steps == 1);
    CHECK(trace.record().spans[0].outputs["stop_reason"] == "step_budget");

    // A token budget smaller than the planning prompt: the first turn spends it.
    auto tokens = agents::PlanAndExecutePlanner().run(
        question("Which digit?", {.max_tokens = 64}), context, *box, *tiny.model, {});
    REQUIRE(tokens.ok());
    CHECK(tokens->stop == agents::StopReason::kTokenBudget);
    CHECK(tokens->answer.starts_with("Stopped without an answer: the token budget of 64 tokens"));
    CHECK(tokens->prompt_tokens + tokens->completion_tokens >= 64);
}

}  // namespace sluice::app
