#pragma once
// Two runs side by side, row by row (rows are matched by their index in the set).
//
// Per judge, over the rows both runs judged:
//   a_pass_rate, b_pass_rate   on those rows;
//   win_rate                   B against A: (rows B passed and A failed + half the ties) / rows;
//                              0.5 when the runs never differ;
//   p_value                    exact McNemar test on the discordant rows (statistics.h);
//   significant                p_value < 0.05.
// Per metric that is not pass/fail (exact_match, token_f1, retrieval_*, latency_ms,
// total_tokens), over the rows both runs have it: a_mean, b_mean, difference (B - A), its 95%
// paired-bootstrap interval, p_value and significant (statistics.h; 2,000 resamples, a fixed
// seed so that a comparison is reproducible).
// Rows: {"index", "a": {judge: verdict}, "b": {...}, "changed"} where changed says whether any
// judge's verdict differs between the runs.
//
// Thread safety: pure functions.

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace sluice::agents::evaluation {

inline constexpr double kSignificanceLevel = 0.05;

// `a` and `b` are stored run objects (their "id" and "rows"). kInvalidArgument when either has
// no rows array.
Result<nlohmann::json> compare_runs(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace sluice::agents::evaluation
