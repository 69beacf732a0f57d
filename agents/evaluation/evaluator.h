#pragma once
// Runs an evaluation: each row's answer is produced (by the target: an agent, document QA) or,
// without a target, taken from the row; scored by the deterministic metrics (metrics.h); and
// judged by every judge that applies (judges.h); then pass rates are aggregated per judge with
// a seeded 95% bootstrap interval (statistics.h).
//
// Batching: answers and judge calls are issued from `concurrency` threads at once, so the
// engine's scheduler runs them in one batch; with concurrency 1 the calls go in row order, then
// judge order (what a scripted judge model relies on).
//
// Root cause of a failing row: the first of, in pipeline order,
//   error (the answer could not be produced), retrieval (recall@k of the expected context is 0,
//   or context_sufficiency / chunk_relevance said no), groundedness, correctness, relevance,
//   guidelines (guideline_adherence), safety, then custom judges in the order given;
// and judge_error when the only thing wrong is a judge that gave no valid verdict.
//
// Thread safety: evaluate() is reentrant; the target and the model must be thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/chat_model.h"
#include "agents/evaluation/eval_set.h"
#include "agents/evaluation/judges.h"
#include "agents/evaluation/statistics.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

struct TargetOutput {
    std::string response;
    std::vector<ContextChunk> retrieved_context;
    bool has_context = false;  // the target retrieves (document QA, a search tool)
    std::string trace_id;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
};
// Produces the answer to one row's request. Errors are recorded on the row, not fatal.
using Target = std::function<Result<TargetOutput>(const EvalRow&)>;

struct EvalOptions {
    std::vector<JudgeSpec> judges;
    JudgeOptions judge;
    size_t concurrency = 16;
    size_t k = 5;  // retrieval metrics @k
    int bootstrap_resamples = 1000;
    std::uint64_t seed = 20240611;
    // Cost per row, in the currency of the prices, per million tokens.
    double prompt_price_per_million = 0;
    double completion_price_per_million = 0;
};
// judges: names of built-ins (all of them when absent); custom_judges: [{name, prompt,
// rubric}]. kInvalidArgument naming the field.
Result<std::vector<JudgeSpec>> judges_from_json(const nlohmann::json& judges,
                                                const nlohmann::json& custom_judges);

struct RowResult {
    size_t index = 0;
    EvalRow row;
    std::string response;
    std::vector<ContextChunk> context;
    bool has_context = false;
    std::string trace_id;
    std::string error;  // the target's, when it failed
    std::map<std::string, Verdict> verdicts;
    std::map<std::string, std::string> judge_errors;
    nlohmann::json metrics = nlohmann::json::object();
    bool passed = false;
    std::string root_cause;  // "" when passed
};

struct JudgeAggregate {
    int n = 0;  // valid verdicts
    int passed = 0;
    int errors = 0;
    int calls = 0;
    double pass_rate = 0;
    Interval ci;
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
};

struct EvalResult {
    std::vector<RowResult> rows;
    std::vector<std::string> judge_order;
    std::map<std::string, JudgeAggregate> aggregates;
    nlohmann::json metrics = nlohmann::json::object();  // means over rows that have each metric
    double wall_s = 0;
};

// With a target, the target answers every row (a row's own response is ignored); without one,
// each row's response is judged, and a row without one records an error. kInvalidArgument when no judge
// is given and a row lacks what the run needs; per-row failures are recorded on the rows.
Result<EvalResult> evaluate(const std::vector<EvalRow>& rows, const Target& target,
                            ChatModel& judge_model, const EvalOptions& options);

// The root cause of a judged row ("" when it passed), as described above.
std::string root_cause_of(const RowResult& row, const std::vector<std::string>& judge_order,
                          const std::optional<double>& retrieval_recall);

// {"aggregates": {judge: {pass_rate, ci_low, ci_high, n, errors, calls, prompt_tokens,
// completion_tokens}}, "metrics": {...}, "judge_usage": {...}, "rows": [{index, request,
// response, expected_response, verdicts: {judge: {verdict, rationale}}, judge_errors, metrics,
// root_cause, trace_id, retrieved_context}]}
nlohmann::json eval_result_json(const EvalResult& result);

// Runs `fn(i)` for i in [0, n) on up to `threads` threads.
void parallel_for(size_t n, size_t threads, const std::function<void(size_t)>& fn);

}  // namespace sluice::agents::evaluation
