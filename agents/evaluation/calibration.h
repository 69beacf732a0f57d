#pragma once
// Judges against people: for each judge, the traces that both a judge verdict and a human label
// exist for (a rating of 4-5 or "up" is yes, 1-2 or "down" no, 3 no label; a trace's latest
// labelled feedback counts), with their agreement and Cohen's kappa (statistics.h).
//
// And corrections back into the set: feedback that carries a correction becomes an evaluation
// row whose expected_response is the correction, for the request the trace answered.
//
// Thread safety: pure functions.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agents/evaluation/eval_set.h"
#include "agents/evaluation/eval_store.h"
#include "common/result.h"

namespace sluice::agents::evaluation {

// trace id -> judge -> verdict (true = yes).
using JudgedTraces = std::map<std::string, std::map<std::string, bool>>;

// Verdicts of stored runs' rows (those with a trace id) and of monitor verdicts.
void collect_run_verdicts(const nlohmann::json& run, JudgedTraces* out);
void collect_monitor_verdicts(const std::vector<MonitorVerdict>& verdicts, JudgedTraces* out);

// {"judges": {name: {"n", "agreement", "kappa"}}}; with `judge` not empty only that judge,
// whose figures are also at the top level ({"judge", "n", "agreement", "kappa"}).
nlohmann::json calibrate(const JudgedTraces& verdicts, const std::vector<Feedback>& feedback,
                         const std::string& judge);

// The request a trace answered (its root span's "question"); kNotFound when unknown.
using RequestOfTrace = std::function<Result<std::string>(const std::string& trace_id)>;
// One row per feedback with a correction, oldest first (a trace's latest correction wins).
// Feedback whose trace is unknown is skipped. kInvalidArgument when no correction is left.
Result<std::vector<EvalRow>> rows_from_corrections(const std::vector<Feedback>& feedback,
                                                   const RequestOfTrace& request_of);

}  // namespace sluice::agents::evaluation
