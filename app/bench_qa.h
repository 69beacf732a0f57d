#pragma once
// `sluice bench qa [--model DIR] [--requests N] [--json]`: document QA and agent orchestration
// in process, on the CPU default (the tiny preset written to a temporary folder unless --model
// names a checkpoint):
//   1. end-to-end QA latency split by stage (retrieve, pack, prefill, decode), p50 and p99,
//      one user;
//   2. answers/s with 1 and 16 concurrent users (each asking one question after another);
//   3. orchestration overhead per planner step: a function-calling agent with a scripted
//      model (no model compute) calling a governed vector_search tool — everything but the
//      model: planning, EXECUTE checks with their audit records, argument checks, retrieval,
//      tracing — p50 and p99 per step.
// The corpus is 400 generated documents readable by the benchmark's reader.

#include "app/cli.h"

namespace sluice::app {

void add_qa_bench(Cli& cli);

}  // namespace sluice::app
