#include "agents/evaluation/evaluator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "agents/evaluation/metrics.h"

namespace sluice::agents::evaluation {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// One model call of one judge on one row (chunk_relevance asks once per chunk).
struct JudgeCall {
    size_t row = 0;
    size_t judge = 0;
    std::vector<inference::ChatMessage> messages;
    Result<Verdict> verdict = Status(StatusCode::kInternal, "not run");
};

JudgeInput input_of(const RowResult& row) {
    JudgeInput input;
    input.request = row.row.request;
    input.response = row.response;
    input.expected = row.row.gold_answers();
    input.expected_facts = row.row.expected_facts;
    input.context = row.context;
    input.has_context = row.has_context;
    input.guidelines = row.row.guidelines;
    return input;
}

// Merges the calls of one judge on one row into its verdict.
void settle(RowResult& row, const JudgeSpec& spec, std::vector<const JudgeCall*> calls,
            JudgeAggregate& aggregate) {
    int yes = 0;
    int valid = 0;
    std::string rationale;
    std::string error;
    for (const JudgeCall* call : calls) {
        ++aggregate.calls;
        if (!call->verdict.ok()) {
            error = call->verdict.status().message();
            continue;
        }
        ++valid;
        yes += call->verdict->yes ? 1 : 0;
        rationale = call->verdict->rationale;
        aggregate.prompt_tokens += call->verdict->prompt_tokens;
        aggregate.completion_tokens += call->verdict->completion_tokens;
        row.metrics["judge_prompt_tokens"] =
            row.metrics.value("judge_prompt_tokens", std::int64_t{0}) + call->verdict->prompt_tokens;
        row.metrics["judge_completion_tokens"] =
            row.metrics.value("judge_completion_tokens", std::int64_t{0}) + call->verdict->completion_tokens;
    }
    if (valid == 0) {
        row.judge_errors[spec.name] = error;
        ++aggregate.errors;
        return;
    }
    Verdict verdict;
    if (spec.name == "chunk_relevance" && !spec.custom) {
        // A passage list passes when at least half of the passages judged are relevant.
        verdict.yes = 2 * yes >= valid;
        verdict.rationale = std::to_string(yes) + " of " + std::to_string(valid) +
                            " retrieved passages judged relevant";
        row.metrics["chunk_relevance_precision"] = static_cast<double>(yes) / valid;
    } else {
        verdict.yes = yes == 1;
        verdict.rationale = rationale;
    }
    ++aggregate.n;
    aggregate.passed += verdict.yes ? 1 : 0;
    row.verdicts[spec.name] = verdict;
}

void deterministic_metrics(RowResult& row, const EvalOptions& options,
                           std::int64_t prompt_tokens, std::int64_t completion_tokens) {
    json& m = row.metrics;
    m["prompt_tokens"] = prompt_tokens;
    m["completion_tokens"] = completion_tokens;
    m["total_tokens"] = prompt_tokens + completion_tokens;
    m["cost"] = (static_cast<double>(prompt_tokens) * options.prompt_price_per_million +
                 static_cast<double>(completion_tokens) * options.completion_price_per_million) /
                1e6;
    std::vector<std::string> golds = row.row.gold_answers();
    if (!golds.empty()) {
        m["exact_match"] = exact_match(row.response, golds);
        m["token_f1"] = token_f1(row.response, golds);
    }
    if (!row.row.expected_retrieved_context.empty() && row.has_context) {
        RetrievalScores scores =
            retrieval_scores(row.context, row.row.expected_retrieved_context, options.k);
        m["retrieval_precision"] = scores.precision;
        m["retrieval_recall"] = scores.recall;
        m["retrieval_ndcg"] = scores.ndcg;
    }
}

std::string cause_name(const std::string& judge) {
    if (judge == "context_sufficiency" || judge == "chunk_relevance") {
        return "retrieval";
    }
    if (judge == "guideline_adherence") {
        return "guidelines";
    }
    return judge;
}

}  // namespace

void parallel_for(size_t n, size_t threads, const std::function<void(size_t)>& fn) {
    threads = std::max<size_t>(1, std::min(threads, n));
    if (threads == 1) {
        for (size_t i = 0; i < n; ++i) {
            fn(i);
        }
        return;
    }
    std::atomic<size_t> next{0};
    std::vector<std::jthread> workers;
    for (size_t t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
                fn(i);
            }
        });
    }
}

Result<std::vector<JudgeSpec>> judges_from_json(const json& judges, const json& custom_judges) {
    std::vector<JudgeSpec> out;
    if (judges.is_null()) {
        for (const auto& name : builtin_judge_names()) {
            out.push_back(*builtin_judge(name));
        }
    } else {
        if (!judges.is_array()) {
            return invalid_argument("judges: expected an array of judge names");
        }
        for (size_t i = 0; i < judges.size(); ++i) {
            if (!judges[i].is_string()) {
                return invalid_argument("judges[" + std::to_string(i) + "]: expected a string");
            }
            auto spec = builtin_judge(judges[i].get<std::string>());
            if (!spec.ok()) {
                return invalid_argument("judges[" + std::to_string(i) +
                                        "]: " + spec.status().message());
            }
            out.push_back(std::move(*spec));
        }
    }
    if (!custom_judges.is_null()) {
        if (!custom_judges.is_array()) {
            return invalid_argument("custom_judges: expected an array of {name, prompt, rubric}");
        }
        for (size_t i = 0; i < custom_judges.size(); ++i) {
            SLUICE_ASSIGN_OR_RETURN(
                JudgeSpec spec, custom_judge_from_json(custom_judges[i],
                                                       "custom_judges[" + std::to_string(i) + "]"));
            out.push_back(std::move(spec));
        }
    }
    for (size_t i = 0; i < out.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            if (out[i].name == out[j].name) {
                return invalid_argument("judge '" + out[i].name + "' is named twice");
            }
        }
    }
    if (out.empty()) {
        return invalid_argument("judges: name at least one judge");
    }
    return out;
}

std::string root_cause_of(const RowResult& row, const std::vector<std::string>& judge_order,
                          const std::optional<double>& retrieval_recall) {
    if (!row.error.empty()) {
        return "error";
    }
    if (retrieval_recall && *retrieval_recall == 0) {
        return "retrieval";
    }
    for (const auto& judge : judge_order) {
        auto it = row.verdicts.find(judge);
        if (it != row.verdicts.end() && !it->second.yes) {
            return cause_name(judge);
        }
    }
    return row.judge_errors.empty() ? "" : "judge_error";
}

Result<EvalResult> evaluate(const std::vector<EvalRow>& rows, const Target& target,
                            ChatModel& judge_model, const EvalOptions& options) {
    if (rows.empty()) {
        return invalid_argument("the evaluation set has no rows");
    }
    Clock::time_point start = Clock::now();
    EvalResult result;
    result.rows.resize(rows.size());
    // Root-cause order: built-ins in pipeline order, then custom judges as given.
    for (const auto& name : builtin_judge_names()) {
        for (const auto& spec : options.judges) {
            if (!spec.custom && spec.name == name) {
                result.judge_order.push_back(name);
            }
        }
    }
    for (const auto& spec : options.judges) {
        if (spec.custom) {
            result.judge_order.push_back(spec.name);
        }
    }

    // 1. Answers, concurrently.
    parallel_for(rows.size(), options.concurrency, [&](size_t i) {
        RowResult& out = result.rows[i];
        out.index = i;
        out.row = rows[i];
        std::int64_t prompt_tokens = 0;
        std::int64_t completion_tokens = 0;
        Clock::time_point begun = Clock::now();
        if (!target && rows[i].response) {
            out.response = *rows[i].response;
            out.has_context = rows[i].retrieved_context.has_value();
            out.context = rows[i].retrieved_context.value_or(std::vector<ContextChunk>{});
            out.trace_id = rows[i].source_trace_id;
        } else if (!target) {
            out.error = "the row has no response and the run has no agent to produce one";
        } else {
            Result<TargetOutput> answer = target(rows[i]);
            if (!answer.ok()) {
                out.error = answer.status().message();
            } else {
                out.response = answer->response;
                out.context = answer->retrieved_context;
                out.has_context = answer->has_context;
                out.trace_id = answer->trace_id;
                prompt_tokens = answer->prompt_tokens;
                completion_tokens = answer->completion_tokens;
            }
        }
        out.metrics["latency_ms"] =
            std::chrono::duration<double, std::milli>(Clock::now() - begun).count();
        if (out.error.empty()) {
            deterministic_metrics(out, options, prompt_tokens, completion_tokens);
        }
    });

    // 2. Judge calls, concurrently.
    std::vector<JudgeCall> calls;
    for (size_t r = 0; r < result.rows.size(); ++r) {
        if (!result.rows[r].error.empty()) {
            continue;
        }
        JudgeInput input = input_of(result.rows[r]);
        for (size_t j = 0; j < options.judges.size(); ++j) {
            if (!judge_applies(options.judges[j], input)) {
                continue;
            }
            for (auto& messages : judge_prompts(options.judges[j], input)) {
                calls.push_back({r, j, std::move(messages), Status(StatusCode::kInternal, "")});
            }
        }
    }
    parallel_for(calls.size(), options.concurrency, [&](size_t i) {
        JudgeOptions judge = options.judge;
        judge.seed += i;
        calls[i].verdict = ask_judge(judge_model, calls[i].messages, judge);
    });

    // 3. Verdicts, root causes, aggregates.
    for (const auto& spec : options.judges) {
        result.aggregates[spec.name] = JudgeAggregate{};
    }
    std::map<std::pair<size_t, size_t>, std::vector<const JudgeCall*>> grouped;
    for (const auto& call : calls) {
        grouped[{call.row, call.judge}].push_back(&call);
    }
    for (const auto& [key, group] : grouped) {
        const JudgeSpec& spec = options.judges[key.second];
        settle(result.rows[key.first], spec, group, result.aggregates[spec.name]);
    }
    std::map<std::string, std::vector<int>> outcomes;
    std::map<std::string, std::pair<double, int>> sums;
    for (auto& row : result.rows) {
        std::optional<double> recall;
        if (row.metrics.contains("retrieval_recall")) {
            recall = row.metrics["retrieval_recall"].get<double>();
        }
        row.root_cause = root_cause_of(row, result.judge_order, recall);
        row.passed = row.root_cause.empty();
        for (const auto& [judge, verdict] : row.verdicts) {
            outcomes[judge].push_back(verdict.yes ? 1 : 0);
        }
        for (const auto& [name, value] : row.metrics.items()) {
            sums[name].first += value.get<double>();
            sums[name].second += 1;
        }
    }
    for (auto& [name, aggregate] : result.aggregates) {
        if (aggregate.n > 0) {
            aggregate.pass_rate = static_cast<double>(aggregate.passed) / aggregate.n;
            aggregate.ci =
                bootstrap_interval(outcomes[name], options.bootstrap_resamples, options.seed);
        }
    }
    for (const auto& [name, sum] : sums) {
        result.metrics[name] = sum.first / sum.second;
    }
    int passed_rows = 0;
    for (const auto& row : result.rows) {
        passed_rows += row.passed ? 1 : 0;
    }
    result.metrics["row_pass_rate"] = static_cast<double>(passed_rows) / result.rows.size();
    result.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
}

json eval_result_json(const EvalResult& result) {
    json aggregates = json::object();
    std::int64_t judge_prompt = 0;
    std::int64_t judge_completion = 0;
    int judge_calls = 0;
    for (const auto& [name, a] : result.aggregates) {
        aggregates[name] = {{"pass_rate", a.pass_rate},   {"ci_low", a.ci.low},
                            {"ci_high", a.ci.high},       {"n", a.n},
                            {"passed", a.passed},         {"errors", a.errors},
                            {"calls", a.calls},           {"prompt_tokens", a.prompt_tokens},
                            {"completion_tokens", a.completion_tokens}};
        judge_prompt += a.prompt_tokens;
        judge_completion += a.completion_tokens;
        judge_calls += a.calls;
    }
    json rows = json::array();
    for (const auto& row : result.rows) {
        json verdicts = json::object();
        for (const auto& [name, verdict] : row.verdicts) {
            verdicts[name] = verdict_to_json(verdict);
        }
        json out = {{"index", row.index},
                    {"request", row.row.request},
                    {"response", row.response},
                    {"expected_response", row.row.expected_response
                                              ? json(*row.row.expected_response)
                                              : json(nullptr)},
                    {"verdicts", verdicts},
                    {"judge_errors", row.judge_errors},
                    {"metrics", row.metrics},
                    {"passed", row.passed},
                    {"root_cause", row.root_cause},
                    {"trace_id", row.trace_id}};
        if (row.has_context) {
            out["retrieved_context"] = context_to_json(row.context);
        }
        if (!row.error.empty()) {
            out["error"] = row.error;
        }
        rows.push_back(std::move(out));
    }
    return {{"aggregates", aggregates},
            {"metrics", result.metrics},
            {"judge_order", result.judge_order},
            {"judge_usage",
             {{"calls", judge_calls},
              {"prompt_tokens", judge_prompt},
              {"completion_tokens", judge_completion},
              {"total_tokens", judge_prompt + judge_completion}}},
            {"wall_s", result.wall_s},
            {"rows", rows}};
}

}  // namespace sluice::agents::evaluation
