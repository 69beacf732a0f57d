#pragma once
// `sluice bench eval [--model DIR] [--calls N] [--rationale-chars N] [--json]`: AI judges on the
// in-process engine (the tiny preset written to a temporary folder unless --model names a
// checkpoint). N answered rows are judged for relevance (one call each) with 1 and with 16
// calls in flight, so that the scheduler batches them:
//   judge calls/s at each concurrency, judge tokens per call, and the share of replies that are
//   valid verdicts of the schema (100% is the contract: the grammar allows nothing else).
// Replies are sampled (temperature 1, a seed per call) so that a random model explores the
// whole grammar rather than one greedy path.

#include "app/cli.h"

namespace sluice::app {

void add_eval_bench(Cli& cli);

}  // namespace sluice::app
