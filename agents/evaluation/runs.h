#pragma once
// An evaluation run from start to stored result: the set's rows are read (a version, or the
// latest), evaluated (evaluator.h), and the run object is stored with its id:
//
//   {"id", "agent", "set", "set_version", "created_at" (ms), "status", "principal", "judges",
//    "n_rows", "aggregates", "metrics", "judge_usage", "rows", ...}
//
// status is "succeeded" when every row was answered and judged, "completed_with_errors" when
// some row has an error or a judge gave no verdict.
//
// Thread safety: reentrant; what is borrowed must be thread-safe.

#include <string>

#include <nlohmann/json.hpp>

#include "agents/evaluation/eval_store.h"
#include "agents/evaluation/evaluator.h"

namespace sluice::agents::evaluation {

struct RunSpec {
    std::string agent;  // what answered: an agent's name, "qa:<index>", or "" (rows' responses)
    std::string set;
    int version = 0;  // 0: the latest
    std::string principal;
};

// The store's errors (kNotFound for an unknown set or version), evaluate()'s.
Result<nlohmann::json> run_and_store(EvalStore& store, const RunSpec& spec, const Target& target,
                                     ChatModel& judge_model, const EvalOptions& options);

// The listing shape: {"id", "agent", "set", "set_version", "created_at", "status", "n_rows",
// "pass_rates": {judge: rate}}.
nlohmann::json run_summary_json(const nlohmann::json& run);

}  // namespace sluice::agents::evaluation
